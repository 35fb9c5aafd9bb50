complete -c pactor -l overwrite -d 'Overwrite conflicting files (can be used more than once)' -r
complete -c pactor -l ignore -d 'Ignore a package upgrade (can be used more than once; comma-separated)' -r
complete -c pactor -l ignoregroup -d 'Ignore a group upgrade (can be used more than once; comma-separated)' -r
complete -c pactor -l config -d 'Set an alternate pacman configuration file' -r -F
complete -c pactor -s r -l root -d 'Set an alternate installation root' -r -F
complete -c pactor -s b -l dbpath -d 'Set an alternate database location' -r -F
complete -c pactor -l cachedir -d 'Set an alternate package cache location (can be used more than once)' -r -F
complete -c pactor -l hookdir -d 'Set an alternate hook location (can be used more than once)' -r -F
complete -c pactor -l gpgdir -d 'Set an alternate home directory for GnuPG' -r -F
complete -c pactor -l logfile -d 'Set an alternate log file' -r -F
complete -c pactor -l arch -d 'Set an alternate architecture (can be used more than once)' -r
complete -c pactor -l color -d 'Colorize the output' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pactor -l pactor-conf -d 'pactor\'s own settings (INI, like pacman.conf)' -r -F
complete -c pactor -l generate -d 'Generate a man page or shell completion script on stdout (for packagers)' -r -f -a "man\t''
complete-bash\t''
complete-zsh\t''
complete-fish\t''"
complete -c pactor -s S -l sync -d 'Synchronize packages (the operation pactor handles)'
complete -c pactor -s y -l refresh -d 'Download fresh package databases; twice to force a refresh of up-to-date ones'
complete -c pactor -s u -l sysupgrade -d 'Upgrade installed packages; twice to allow downgrades'
complete -c pactor -s w -l downloadonly -d 'Download packages into the cache but do not install anything'
complete -c pactor -l needed -d 'Do not reinstall up-to-date targets'
complete -c pactor -s d -l nodeps -d 'Skip dependency version checks (-dd to skip all dependency checks)'
complete -c pactor -l asdeps -d 'Install packages as non-explicitly installed'
complete -c pactor -l asexplicit -d 'Install packages as explicitly installed'
complete -c pactor -l dbonly -d 'Only modify database entries, not package files'
complete -c pactor -l noscriptlet -d 'Do not execute the install scriptlet if one exists'
complete -c pactor -l noconfirm -d 'Do not ask for any confirmation'
complete -c pactor -l confirm -d 'Always ask for confirmation'
complete -c pactor -l disable-download-timeout -d 'Accepted for pacman compatibility; pactor never aborts a slow download'
complete -c pactor -l noprogressbar -d 'Do not show progress bars'
complete -c pactor -s q -l quiet -d 'Show less information'
complete -c pactor -s v -l verbose -d 'Be verbose'
complete -c pactor -l debug -d 'Display debug messages (pactor\'s tracing output and alpm\'s debug log)'
complete -c pactor -l version -d 'Print version information'
complete -c pactor -s h -l help -d 'Print help (see more with \'--help\')'
