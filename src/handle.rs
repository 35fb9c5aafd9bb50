//! pacman.conf read through `pacman-conf` (crate `pacmanconf`), the command line's overrides
//! applied on top, and an alpm handle configured exactly as pacman would configure it.

use std::path::{Path, PathBuf};

use alpm::{Alpm, TransFlag};
use anyhow::{Context, Result, bail};
use pacmanconf::Config;

use crate::cli::SyncArgs;

/// pacman.conf with the command line applied, as pacman resolves it.
pub struct PacmanConfig {
    pub conf: Config,
}

impl PacmanConfig {
    /// pacman.conf as `pacman-conf` resolves it (Includes, `--root`).
    pub fn read(config: Option<&Path>, root: Option<&Path>) -> Result<PacmanConfig> {
        let mut options = Config::options();
        if let Some(config) = config {
            options.pacman_conf(config.to_string_lossy());
        }
        if let Some(root) = root {
            options.root_dir(root.to_string_lossy());
        }
        let conf = options.read().map_err(|e| {
            anyhow::anyhow!("{}", e.to_string().trim_end())
                .context("failed to read pacman.conf through pacman-conf")
        })?;
        Ok(PacmanConfig { conf })
    }

    /// pacman.conf with the sync command line's overrides applied. pacman-conf's answer is
    /// remembered in `state_dir` while the files it read are unchanged (see `conf_cache`).
    pub fn load(args: &SyncArgs, state_dir: &Path) -> Result<PacmanConfig> {
        let expanded =
            crate::conf_cache::expand(args.config.as_deref(), args.root.as_deref(), state_dir)
                .and_then(|text| text.parse::<Config>());
        let mut conf = expanded.map_err(|e| {
            anyhow::anyhow!("{}", e.to_string().trim_end())
                .context("failed to read pacman.conf through pacman-conf")
        })?;
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        if let Some(dbpath) = &args.dbpath {
            conf.db_path = path(dbpath);
        }
        if !args.cachedir.is_empty() {
            conf.cache_dir = args.cachedir.iter().map(path).collect();
        }
        if !args.hookdir.is_empty() {
            conf.hook_dir = args.hookdir.iter().map(path).collect();
        }
        if let Some(gpgdir) = &args.gpgdir {
            conf.gpg_dir = path(gpgdir);
        }
        if let Some(logfile) = &args.logfile {
            conf.log_file = path(logfile);
        }
        if !args.arch.is_empty() {
            // pacman adds --arch to pacman.conf's Architecture, in front (conf.c).
            let mut archs = args.arch.clone();
            archs.extend(
                conf.architecture
                    .drain(..)
                    .filter(|a| !args.arch.contains(a)),
            );
            conf.architecture = archs;
        }
        conf.ignore_pkg.extend(args.ignore.iter().cloned());
        conf.ignore_group.extend(args.ignoregroup.iter().cloned());
        // pactor never aborts slow transfers; alpm only ever downloads databases for us.
        conf.disable_download_timeout |= args.disable_download_timeout;
        // pacman's --disable-sandbox is both parts at once (pacman-conf prints DisableSandbox
        // of pacman.conf as the two as well). They apply to alpm's own downloader (the
        // databases) and to pactor's download process.
        conf.disable_sandbox_filesystem |= args.disable_sandbox || args.disable_sandbox_filesystem;
        conf.disable_sandbox_syscalls |= args.disable_sandbox || args.disable_sandbox_syscalls;
        Ok(PacmanConfig { conf })
    }

    /// The cache directories in pacman's order.
    pub fn cache_dirs(&self) -> Vec<PathBuf> {
        self.conf.cache_dir.iter().map(PathBuf::from).collect()
    }

    /// The first cache directory pactor can write to: prefetched files go there.
    pub fn writable_cache_dir(&self) -> Result<PathBuf> {
        for dir in self.cache_dirs() {
            if is_writable_dir(&dir) {
                return Ok(dir);
            }
        }
        bail!(
            "no writable cache directory (CacheDir: {})",
            self.conf.cache_dir.join(", ")
        )
    }

    pub fn alpm(&self) -> Result<Alpm> {
        let init_error = |e: alpm::Error| {
            anyhow::anyhow!(
                "failed to initialize alpm library:\n({}: {})",
                e,
                self.conf.db_path
            )
        };
        let mut alpm = Alpm::new(&*self.conf.root_dir, &*self.conf.db_path).map_err(init_error)?;
        // libalpm starts with its system hook directory (<root>/usr/share/libalpm/hooks/, where
        // packages install their hooks); alpm-utils replaces the list with HookDir alone, so
        // it is put back in front, as pacman adds HookDir to it.
        let system_hooks: Vec<String> = alpm.hookdirs().iter().map(str::to_owned).collect();
        // libalpm refuses a DownloadUser that does not exist; pacman says so in these words.
        if let Some(user) = &self.conf.download_user
            && crate::fetcher::sandbox::lookup_user(user).is_err()
        {
            bail!("problem setting DownloadUser '{user}' (user does not exist)");
        }
        alpm_utils::configure_alpm(&mut alpm, &self.conf).map_err(init_error)?;
        alpm.set_hookdirs(system_hooks.iter().chain(self.conf.hook_dir.iter()))
            .context("failed to set HookDir")?;
        // alpm-utils sets IgnorePkg twice and IgnoreGroup never.
        alpm.set_ignoregroups(self.conf.ignore_group.iter())
            .context("failed to set IgnoreGroup")?;
        Ok(alpm)
    }
}

/// pacman's `--verbose` preamble: the paths in use and the targets, in pacman's layout.
pub fn print_paths(alpm: &Alpm, args: &SyncArgs) {
    let list = |items: Vec<&str>| items.iter().map(|i| format!("{i}  ")).collect::<String>();
    let conf = args
        .config
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_PACMAN_CONF));
    println!("Root      : {}", alpm.root());
    println!("Conf File : {}", conf.display());
    println!("DB Path   : {}", alpm.dbpath());
    println!("Cache Dirs: {}", list(alpm.cachedirs().iter().collect()));
    println!("Hook Dirs : {}", list(alpm.hookdirs().iter().collect()));
    println!("Lock File : {}", alpm.lockfile());
    println!("Log File  : {}", alpm.logfile().unwrap_or_default());
    println!("GPG Dir   : {}", alpm.gpgdir().unwrap_or_default());
    let targets = if args.targets.is_empty() {
        "None".to_owned()
    } else {
        args.targets.join("  ")
    };
    println!("{} {targets}", console::style("Targets   :").bold());
}

/// pacman's compiled-in configuration file.
const DEFAULT_PACMAN_CONF: &str = "/etc/pacman.conf";

/// The transaction flags the command line asks for.
pub fn trans_flags(args: &SyncArgs) -> TransFlag {
    let mut flags = TransFlag::NONE;
    if args.nodeps >= 1 {
        flags |= TransFlag::NO_DEP_VERSION;
    }
    if args.nodeps >= 2 {
        flags |= TransFlag::NO_DEPS;
    }
    if args.needed {
        flags |= TransFlag::NEEDED;
    }
    if args.asdeps {
        flags |= TransFlag::ALL_DEPS;
    }
    if args.asexplicit {
        flags |= TransFlag::ALL_EXPLICIT;
    }
    if args.dbonly {
        flags |= TransFlag::DB_ONLY;
    }
    if args.noscriptlet {
        flags |= TransFlag::NO_SCRIPTLET;
    }
    if args.download_only {
        // As pacman sets them for -w: conflicts do not matter to a download.
        flags |= TransFlag::DOWNLOAD_ONLY | TransFlag::NO_CONFLICTS;
    }
    flags
}

fn is_writable_dir(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    dir.is_dir() && unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0
}
