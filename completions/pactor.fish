# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pactor_global_optspecs
    string join \n S/sync y/refresh u/sysupgrade w/downloadonly needed d/nodeps asdeps asexplicit dbonly noscriptlet overwrite= ignore= ignoregroup= noconfirm confirm config= r/root= b/dbpath= cachedir= hookdir= gpgdir= logfile= arch= color= disable-download-timeout noprogressbar q/quiet v/verbose debug pactor-conf= generate= version h/help
end

function __fish_pactor_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pactor_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pactor_using_subcommand
    set -l cmd (__fish_pactor_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pactor -n "__fish_pactor_needs_command" -l overwrite -d 'Overwrite conflicting files (can be used more than once)' -r
complete -c pactor -n "__fish_pactor_needs_command" -l ignore -d 'Ignore a package upgrade (can be used more than once; comma-separated)' -r
complete -c pactor -n "__fish_pactor_needs_command" -l ignoregroup -d 'Ignore a group upgrade (can be used more than once; comma-separated)' -r
complete -c pactor -n "__fish_pactor_needs_command" -l config -d 'Set an alternate pacman configuration file' -r -F
complete -c pactor -n "__fish_pactor_needs_command" -s r -l root -d 'Set an alternate installation root' -r -F
complete -c pactor -n "__fish_pactor_needs_command" -s b -l dbpath -d 'Set an alternate database location' -r -F
complete -c pactor -n "__fish_pactor_needs_command" -l cachedir -d 'Set an alternate package cache location (can be used more than once)' -r -F
complete -c pactor -n "__fish_pactor_needs_command" -l hookdir -d 'Set an alternate hook location (can be used more than once)' -r -F
complete -c pactor -n "__fish_pactor_needs_command" -l gpgdir -d 'Set an alternate home directory for GnuPG' -r -F
complete -c pactor -n "__fish_pactor_needs_command" -l logfile -d 'Set an alternate log file' -r -F
complete -c pactor -n "__fish_pactor_needs_command" -l arch -d 'Set an alternate architecture (can be used more than once)' -r
complete -c pactor -n "__fish_pactor_needs_command" -l color -d 'Colorize the output' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pactor -n "__fish_pactor_needs_command" -l pactor-conf -d 'pactor\'s own settings (INI, like pacman.conf)' -r -F
complete -c pactor -n "__fish_pactor_needs_command" -l generate -d 'Generate a man page or shell completion script on stdout (for packagers)' -r -f -a "man\t''
complete-bash\t''
complete-zsh\t''
complete-fish\t''"
complete -c pactor -n "__fish_pactor_needs_command" -s S -l sync -d 'Synchronize packages (the operation pactor handles)'
complete -c pactor -n "__fish_pactor_needs_command" -s y -l refresh -d 'Download fresh package databases; twice to force a refresh of up-to-date ones'
complete -c pactor -n "__fish_pactor_needs_command" -s u -l sysupgrade -d 'Upgrade installed packages; twice to allow downgrades'
complete -c pactor -n "__fish_pactor_needs_command" -s w -l downloadonly -d 'Download packages into the cache but do not install anything'
complete -c pactor -n "__fish_pactor_needs_command" -l needed -d 'Do not reinstall up-to-date targets'
complete -c pactor -n "__fish_pactor_needs_command" -s d -l nodeps -d 'Skip dependency version checks (-dd to skip all dependency checks)'
complete -c pactor -n "__fish_pactor_needs_command" -l asdeps -d 'Install packages as non-explicitly installed'
complete -c pactor -n "__fish_pactor_needs_command" -l asexplicit -d 'Install packages as explicitly installed'
complete -c pactor -n "__fish_pactor_needs_command" -l dbonly -d 'Only modify database entries, not package files'
complete -c pactor -n "__fish_pactor_needs_command" -l noscriptlet -d 'Do not execute the install scriptlet if one exists'
complete -c pactor -n "__fish_pactor_needs_command" -l noconfirm -d 'Do not ask for any confirmation'
complete -c pactor -n "__fish_pactor_needs_command" -l confirm -d 'Always ask for confirmation'
complete -c pactor -n "__fish_pactor_needs_command" -l disable-download-timeout -d 'Accepted for pacman compatibility; pactor never aborts a slow download'
complete -c pactor -n "__fish_pactor_needs_command" -l noprogressbar -d 'Do not show progress bars'
complete -c pactor -n "__fish_pactor_needs_command" -s q -l quiet -d 'Show less information'
complete -c pactor -n "__fish_pactor_needs_command" -s v -l verbose -d 'Be verbose'
complete -c pactor -n "__fish_pactor_needs_command" -l debug -d 'Display debug messages (pactor\'s tracing output and alpm\'s debug log)'
complete -c pactor -n "__fish_pactor_needs_command" -l version -d 'Print version information'
complete -c pactor -n "__fish_pactor_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pactor -n "__fish_pactor_needs_command" -a "publish" -d 'Write <repo>.torrents (the repo\'s torrent index) beside <repo>.db in DIR'
complete -c pactor -n "__fish_pactor_needs_command" -a "seed" -d 'Seed a published repo directory, or the pacman cache, to the swarm'
complete -c pactor -n "__fish_pactor_needs_command" -a "serve" -d 'Run a local pacman mirror that gets every package from the swarm'
complete -c pactor -n "__fish_pactor_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pactor -n "__fish_pactor_using_subcommand publish" -l tracker -d 'Announce URL of a tracker for the repo\'s swarm (can be used more than once)' -r
complete -c pactor -n "__fish_pactor_using_subcommand publish" -l peer -d 'A peer that seeds the repo, as HOST:PORT (a hint; can be used more than once)' -r
complete -c pactor -n "__fish_pactor_using_subcommand publish" -l torrent-files -d 'Also write <pkg>.torrent beside each package, for ordinary BitTorrent clients'
complete -c pactor -n "__fish_pactor_using_subcommand publish" -s h -l help -d 'Print help'
complete -c pactor -n "__fish_pactor_using_subcommand seed" -l dir -d 'A published repo directory (with <repo>.torrents from `pactor publish`); without it, the pacman cache is seeded: only files whose sha256 matches a sync database entry' -r -F
complete -c pactor -n "__fish_pactor_using_subcommand seed" -l config -d 'The pacman configuration whose cache and databases are used without --dir' -r -F
complete -c pactor -n "__fish_pactor_using_subcommand seed" -l listen -d 'Address for incoming peers [default: 0.0.0.0:<ListenPort from pactor.conf, else 6881>]' -r
complete -c pactor -n "__fish_pactor_using_subcommand seed" -l upload-rate -d 'Upload limit in bytes per second (K, M, G suffixes) [default: MaxUploadRate]' -r
complete -c pactor -n "__fish_pactor_using_subcommand seed" -l peer-limit -d 'Most peers per torrent' -r
complete -c pactor -n "__fish_pactor_using_subcommand seed" -l rescan -d 'Seconds between rescans of DIR for new and removed files' -r
complete -c pactor -n "__fish_pactor_using_subcommand seed" -l pactor-conf -d 'pactor\'s own settings (INI, like pacman.conf)' -r -F
complete -c pactor -n "__fish_pactor_using_subcommand seed" -s h -l help -d 'Print help'
complete -c pactor -n "__fish_pactor_using_subcommand serve" -l listen -d 'Address to answer HTTP on' -r
complete -c pactor -n "__fish_pactor_using_subcommand serve" -l config -d 'The pacman configuration whose CacheDir and servers are used' -r -F
complete -c pactor -n "__fish_pactor_using_subcommand serve" -l cachedir -d 'Where package files are kept and looked up (can be used more than once) [default: pacman.conf\'s CacheDir]' -r -F
complete -c pactor -n "__fish_pactor_using_subcommand serve" -l state-dir -d 'Where the proxied databases and torrent indexes are kept' -r -F
complete -c pactor -n "__fish_pactor_using_subcommand serve" -l pactor-conf -d 'pactor\'s own settings (INI, like pacman.conf)' -r -F
complete -c pactor -n "__fish_pactor_using_subcommand serve" -l allow-remote -d 'Allow a non-loopback --listen address (a cache for a LAN)'
complete -c pactor -n "__fish_pactor_using_subcommand serve" -s h -l help -d 'Print help'
complete -c pactor -n "__fish_pactor_using_subcommand help; and not __fish_seen_subcommand_from publish seed serve help" -f -a "publish" -d 'Write <repo>.torrents (the repo\'s torrent index) beside <repo>.db in DIR'
complete -c pactor -n "__fish_pactor_using_subcommand help; and not __fish_seen_subcommand_from publish seed serve help" -f -a "seed" -d 'Seed a published repo directory, or the pacman cache, to the swarm'
complete -c pactor -n "__fish_pactor_using_subcommand help; and not __fish_seen_subcommand_from publish seed serve help" -f -a "serve" -d 'Run a local pacman mirror that gets every package from the swarm'
complete -c pactor -n "__fish_pactor_using_subcommand help; and not __fish_seen_subcommand_from publish seed serve help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
