//! The command line, defined once: help, completions and man pages are generated from it.
//!
//! pactor handles the sync operation (`-S` with `y`, `u`, `w` and targets) and hands every
//! other pacman invocation to pacman unchanged, so it can be aliased to `pacman`. The decision
//! is made by [`classify`], which looks only at the operation letters and then lets clap judge
//! the flags: a sync invocation with a flag pactor does not implement (`-Ss`, `-Si`, `-Sc`,
//! `--print`, …) goes to pacman as well.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

use crate::complete;

/// What to do with an invocation.
#[derive(Debug)]
pub enum Invocation {
    /// A sync transaction pactor runs itself.
    Sync(Box<SyncArgs>),
    /// One of pactor's own tools (`pactor publish …`).
    Tool(Tool),
    /// pactor's own `--help` or `--version` (or a clap usage error to print).
    Builtin(clap::Error),
    /// pactor's own `--generate KIND`, for packagers.
    Generate(Generate),
    /// Anything else: exec pacman with the same argv.
    Pacman(Vec<OsString>),
}

/// Files generated from the command-line definition and the pactor.conf options table
/// (`scripts/generate` writes them all; `tests/generated.rs` fails when one is stale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// pactor(8)
    Man,
    /// pactor-publish(8)
    ManPublish,
    /// pactor-seed(8)
    ManSeed,
    /// pactor-serve(8)
    ManServe,
    /// pactor-stats(8)
    ManStats,
    /// pactor.conf(5)
    ManConf,
    /// assets/pactor.conf
    Conf,
    /// The README's table of pactor.conf options
    ReadmeOptions,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

const ABOUT: &str = "pacman -S/-Syu/-Sw that prefetches every package before the commit";
const LONG_ABOUT: &str = "\
pactor runs pacman's sync transaction with libalpm, exactly as pacman computes it, but fetches \
every needed package into the pacman cache first: from the BitTorrent swarm when the repo \
publishes a torrent index, else (or when the swarm stalls) over HTTP from the repo's mirrors in \
mirrorlist order, resuming partial files, with no low-speed abort. Every file is verified \
against the sha256 in the sync database and moved into the cache atomically; the commit then \
runs with zero network transfer.

Every operation other than -S (and -S flags pactor does not handle, such as -Ss, -Si, -Sc) is \
passed to pacman unchanged, so pactor can be aliased to pacman.";

/// pactor's whole command line: pacman's sync operation plus pactor's own tools.
#[derive(Debug, Parser)]
#[command(
    name = "pactor",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = "Operations other than -S are passed to pacman: see pacman(8).",
    disable_version_flag = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub tool: Option<Tool>,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// pactor's own tools, for mirror operators and seedboxes.
#[derive(Debug, clap::Subcommand)]
pub enum Tool {
    /// Write <repo>.torrents (the repo's torrent index) beside <repo>.db in DIR
    Publish(PublishArgs),
    /// Seed published repo directories, or the pacman cache, to the swarm
    Seed(SeedArgs),
    /// Show the bytes fetched from peers and mirrors and the bytes uploaded, per run and in total
    Stats(StatsArgs),
    /// Run a local pacman mirror that gets every package from the swarm
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Print the statistics as JSON, for scripts
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pactor_conf: PactorConf,
}

/// `pactor serve`: pacman, pacstrap, paru or yay point a `Server =` line at it.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Runs an HTTP mirror for pacman and every tool built on libalpm: put \
`Server = http://127.0.0.1:8001/$repo/$arch` first in /etc/pacman.d/mirrorlist. Databases are \
proxied from the upstream servers (pactor.conf's Upstream and Include lines; by default \
pacman.conf's servers of the repo, minus this mirror). Package files come from the cache, else \
from the swarm with the upstream mirrors as fallback, checked piece by piece and against the \
database's sha256, and are streamed to pacman as verified bytes arrive. Everything served is \
seeded back to the swarm."
)]
pub struct ServeArgs {
    /// Address to answer HTTP on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8001")]
    pub listen: std::net::SocketAddr,
    /// Allow a non-loopback --listen address (a cache for a LAN)
    #[arg(long)]
    pub allow_remote: bool,
    /// The pacman configuration whose CacheDir and servers are used
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where package files are kept and looked up (can be used more than once) [default:
    /// pacman.conf's CacheDir]
    #[arg(long, value_name = "DIR")]
    pub cachedir: Vec<PathBuf>,
    /// Where the proxied databases and torrent indexes are kept [default: <StateDir>/serve]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub pactor_conf: PactorConf,
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// A published repo directory (with <repo>.torrents from `pactor publish`); can be used
    /// more than once. Without it, the pacman cache is seeded: only files whose sha256 matches
    /// a sync database entry
    #[arg(long, value_name = "DIR")]
    pub dir: Vec<PathBuf>,
    /// The pacman configuration whose cache and databases are used without --dir
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address for incoming peers [default: 0.0.0.0:<ListenPort from pactor.conf, else 6881>]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Upload limit in bytes per second (K, M, G suffixes) [default: MaxUploadRate]
    #[arg(long, value_name = "RATE")]
    pub upload_rate: Option<String>,
    /// Most peers per torrent
    #[arg(long, value_name = "N")]
    pub peer_limit: Option<usize>,
    /// Send each piece about once and let the peers spread it (BEP 16's super-seeding), for a
    /// seedbox whose upload is scarce [default: SuperSeed]
    #[arg(long)]
    pub super_seed: bool,
    /// Seconds between rescans for new and removed files (SIGHUP rescans at once)
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub rescan: u64,
    #[command(flatten)]
    pub pactor_conf: PactorConf,
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// A repo directory: <repo>.db and its package files
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Announce URL of a tracker for the repo's swarm (can be used more than once)
    #[arg(long, value_name = "URL")]
    pub tracker: Vec<String>,
    /// A peer that seeds the repo, as HOST:PORT (a hint; can be used more than once)
    #[arg(long, value_name = "HOST:PORT")]
    pub peer: Vec<String>,
    /// Also write <pkg>.torrent beside each package, for ordinary BitTorrent clients
    #[arg(long)]
    pub torrent_files: bool,
}

/// `pactor -S[yuw] [options] [targets]`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Synchronize packages (the operation pactor handles)
    #[arg(short = 'S', long = "sync", required = true)]
    pub sync: bool,
    /// Download fresh package databases; twice to force a refresh of up-to-date ones
    #[arg(short = 'y', long = "refresh", action = ArgAction::Count)]
    pub refresh: u8,
    /// Upgrade installed packages; twice to allow downgrades
    #[arg(short = 'u', long = "sysupgrade", action = ArgAction::Count)]
    pub sysupgrade: u8,
    /// Download packages into the cache but do not install anything
    #[arg(short = 'w', long = "downloadonly")]
    pub download_only: bool,
    /// Do not reinstall up-to-date targets
    #[arg(long)]
    pub needed: bool,
    /// Skip dependency version checks (-dd to skip all dependency checks)
    #[arg(short = 'd', long = "nodeps", action = ArgAction::Count)]
    pub nodeps: u8,
    /// Install packages as non-explicitly installed
    #[arg(long)]
    pub asdeps: bool,
    /// Install packages as explicitly installed
    #[arg(long)]
    pub asexplicit: bool,
    /// Only modify database entries, not package files
    #[arg(long)]
    pub dbonly: bool,
    /// Do not execute the install scriptlet if one exists
    #[arg(long)]
    pub noscriptlet: bool,
    /// Overwrite conflicting files (can be used more than once)
    #[arg(long, value_name = "GLOB")]
    pub overwrite: Vec<String>,
    /// Ignore a package upgrade (can be used more than once; comma-separated)
    #[arg(long, value_name = "PKG", value_delimiter = ',', add = ArgValueCompleter::new(complete::packages))]
    pub ignore: Vec<String>,
    /// Ignore a group upgrade (can be used more than once; comma-separated)
    #[arg(long, value_name = "GRP", value_delimiter = ',', add = ArgValueCompleter::new(complete::groups))]
    pub ignoregroup: Vec<String>,
    /// Do not ask for any confirmation
    #[arg(long, overrides_with = "confirm")]
    pub noconfirm: bool,
    /// Always ask for confirmation
    #[arg(long, overrides_with = "noconfirm")]
    pub confirm: bool,
    /// Set an alternate pacman configuration file
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Set an alternate installation root
    #[arg(short = 'r', long, value_name = "PATH")]
    pub root: Option<PathBuf>,
    /// Set an alternate database location
    #[arg(short = 'b', long, value_name = "PATH")]
    pub dbpath: Option<PathBuf>,
    /// Set an alternate package cache location (can be used more than once)
    #[arg(long, value_name = "DIR")]
    pub cachedir: Vec<PathBuf>,
    /// Set an alternate hook location (can be used more than once)
    #[arg(long, value_name = "DIR")]
    pub hookdir: Vec<PathBuf>,
    /// Set an alternate home directory for GnuPG
    #[arg(long, value_name = "PATH")]
    pub gpgdir: Option<PathBuf>,
    /// Set an alternate log file
    #[arg(long, value_name = "PATH")]
    pub logfile: Option<PathBuf>,
    /// Set an alternate architecture (can be used more than once)
    #[arg(long, value_name = "ARCH")]
    pub arch: Vec<String>,
    /// Colorize the output
    #[arg(long, value_name = "WHEN", value_enum, num_args = 0..=1, default_missing_value = "always")]
    pub color: Option<ColorWhen>,
    /// Accepted for pacman compatibility; pactor never aborts a slow download
    #[arg(long)]
    pub disable_download_timeout: bool,
    /// Disable the download process's sandbox: downloads then run as root (both parts below)
    #[arg(long)]
    pub disable_sandbox: bool,
    /// Disable the filesystem part (Landlock) of the download process's sandbox
    #[arg(long)]
    pub disable_sandbox_filesystem: bool,
    /// Disable the syscall filter of the download process's sandbox
    #[arg(long)]
    pub disable_sandbox_syscalls: bool,
    /// Do not show progress bars
    #[arg(long)]
    pub noprogressbar: bool,
    /// Show less information (no download summary line)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Be verbose (print the paths in use first, as pacman does)
    #[arg(short = 'v', long, action = ArgAction::Count)]
    pub verbose: u8,
    /// Display debug messages (pactor's tracing output and alpm's debug log)
    #[arg(long)]
    pub debug: bool,
    #[command(flatten)]
    pub pactor_conf: PactorConf,
    /// Generate a man page or shell completion script on stdout (for packagers)
    #[arg(long, value_enum, value_name = "KIND", hide = true)]
    pub generate: Option<Generate>,
    /// Print version information
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
    /// Packages, groups, provisions (foo>=1.2) or repo/package
    #[arg(value_name = "TARGET", add = ArgValueCompleter::new(complete::targets))]
    pub targets: Vec<String>,
}

/// `--pactor-conf`, shared by every command: pactor's own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct PactorConf {
    /// pactor's own settings (INI, like pacman.conf)
    #[arg(long = "pactor-conf", value_name = "PATH", env = "PACTOR_CONF", default_value = DEFAULT_PACTOR_CONF)]
    pub path: PathBuf,
}

const DEFAULT_PACTOR_CONF: &str = "/etc/pactor.conf";

impl PactorConf {
    /// Reads the file; only the default location may be missing.
    pub fn load(&self) -> Result<crate::config::Settings, crate::config::ConfigError> {
        crate::config::Settings::load(
            &self.path,
            self.path == std::path::Path::new(DEFAULT_PACTOR_CONF),
        )
    }
}

/// The clap command, for help, completions and the man page.
pub fn command() -> clap::Command {
    Cli::command()
}

/// pactor's own tools are named by their first argument.
const TOOLS: [&str; 4] = ["publish", "seed", "serve", "stats"];

/// Decides who handles `argv` (which includes the program name).
pub fn classify(argv: Vec<OsString>) -> Invocation {
    if argv
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| TOOLS.contains(&a))
    {
        return match Cli::try_parse_from(&argv) {
            Ok(Cli {
                tool: Some(tool), ..
            }) => Invocation::Tool(tool),
            Ok(_) => unreachable!("a tool name parses as a subcommand"),
            Err(e) => Invocation::Builtin(e),
        };
    }
    let ops = operations(&argv[1..]);
    let wants_builtin = argv[1..]
        .iter()
        .any(|a| a == "-h" || a == "--help" || a == "--version" || a == "--generate");
    if ops != ['S'] && !(ops.is_empty() && wants_builtin) {
        return Invocation::Pacman(argv);
    }
    let mut argv_for_clap = argv.clone();
    if ops.is_empty() {
        // `pactor --help`: let clap see a sync op so `required` does not get in the way.
        argv_for_clap.push("-S".into());
    }
    match Cli::try_parse_from(&argv_for_clap) {
        Ok(Cli {
            tool: Some(tool), ..
        }) => Invocation::Tool(tool),
        Ok(Cli { sync: args, .. }) => match args.generate {
            Some(kind) => Invocation::Generate(kind),
            None => Invocation::Sync(Box::new(args)),
        },
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Invocation::Builtin(e)
            }
            // A flag pactor does not implement: pacman knows it, or says what is wrong.
            clap::error::ErrorKind::UnknownArgument => Invocation::Pacman(argv),
            _ => Invocation::Builtin(e),
        },
    }
}

/// The pacman operations named in `args` (upper-case short letters and long names), in order.
fn operations(args: &[OsString]) -> Vec<char> {
    const LONG: [(&str, char); 8] = [
        ("--sync", 'S'),
        ("--query", 'Q'),
        ("--remove", 'R'),
        ("--upgrade", 'U'),
        ("--files", 'F'),
        ("--database", 'D'),
        ("--deptest", 'T'),
        ("--version", 'V'),
    ];
    let mut ops = Vec::new();
    for arg in args {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        if let Some(&(_, op)) = LONG.iter().find(|(name, _)| *name == arg) {
            if op != 'V' {
                ops.push(op);
            }
        } else if let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.starts_with('-')) {
            ops.extend(cluster.chars().filter(|c| "SQRUFDTV".contains(*c)));
        }
    }
    ops.dedup();
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_str(line: &str) -> Invocation {
        classify(
            std::iter::once("pactor")
                .chain(line.split_whitespace())
                .map(Into::into)
                .collect(),
        )
    }

    #[test]
    fn sync_variants_are_pactors() {
        for line in [
            "-S foo",
            "-Syu",
            "-Syyuu --noconfirm",
            "-Sw foo",
            "--sync --refresh",
            "-S --needed core/foo",
        ] {
            assert!(matches!(classify_str(line), Invocation::Sync(_)), "{line}");
        }
        let Invocation::Sync(args) = classify_str("-Syyu --ignore a,b --ignore c x") else {
            panic!()
        };
        assert_eq!((args.refresh, args.sysupgrade), (2, 1));
        assert_eq!(args.ignore, ["a", "b", "c"]);
        assert_eq!(args.targets, ["x"]);
    }

    #[test]
    fn everything_else_goes_to_pacman() {
        for line in [
            "-Q", "-Qi foo", "-R foo", "-Ss foo", "-Si foo", "-Sc", "-Sl", "-V", "-U x.pkg",
            "-Sp foo", "",
        ] {
            assert!(
                matches!(classify_str(line), Invocation::Pacman(_)),
                "{line:?}"
            );
        }
    }

    #[test]
    fn help_and_version_are_pactors() {
        for line in ["-h", "--help", "--version", "-Sh"] {
            assert!(
                matches!(classify_str(line), Invocation::Builtin(_)),
                "{line}"
            );
        }
    }
}
