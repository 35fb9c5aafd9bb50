//! `pactor -S`: plan → fetch → verify → commit, top to bottom.

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::SyncArgs;
use crate::config::Settings;
use crate::handle::{self, PacmanConfig};
use crate::http::Http;
use crate::interrupt::Interrupt;
use crate::prefetch::Prefetch;
use crate::transaction::{self, Planned};
use crate::ui::{self, Ui};
use crate::{ExitQuietly, callbacks, commit};

pub fn run(args: SyncArgs) -> Result<()> {
    init_tracing(args.debug);
    let settings = Settings::load(&args.pactor_conf, args.pactor_conf_is_default())?;
    let pacman = PacmanConfig::load(&args)?;
    Ui::init(
        args.color,
        pacman.conf.color,
        args.noprogressbar,
        args.noconfirm && !args.confirm,
    );

    if args.targets.is_empty() && args.sysupgrade == 0 && args.refresh == 0 {
        bail!("no targets specified (use -h for help)");
    }
    let mut alpm = pacman.alpm()?;
    callbacks::install(&alpm, args.debug);
    if !args.overwrite.is_empty() {
        alpm.set_overwrite_files(args.overwrite.iter())?;
    }

    // Plan: refresh, then the transaction exactly as pacman computes it.
    if args.refresh > 0 {
        transaction::refresh(&mut alpm, args.refresh >= 2)?;
    }
    if args.targets.is_empty() && args.sysupgrade == 0 {
        return Ok(());
    }
    if let Err(e) = alpm.trans_init(handle::trans_flags(&args)) {
        return Err(lock_error(&alpm, e));
    }
    let files = match transaction::plan(&mut alpm, &args)? {
        Planned::NothingToDo => return Ok(()),
        Planned::Proceed(files) => files,
    };

    // Fetch and verify: every file lands in the cache before the commit, or nothing is installed.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let interrupt = runtime
        .block_on(async { Interrupt::listen() })
        .context("could not watch signals")?;
    let prefetch = Prefetch {
        cache_dirs: pacman.cache_dirs(),
        dest: pacman.writable_cache_dir()?,
        parallel: settings
            .parallel_downloads
            .unwrap_or(usize::try_from(pacman.conf.parallel_downloads).unwrap_or(1))
            .max(1),
        http: Http::new(settings.connect_timeout, settings.idle_timeout, interrupt)?,
        server_errors: Default::default(),
    };
    runtime.block_on(prefetch.run(&files))?;
    drop(runtime);
    if args.download_only {
        return Ok(());
    }

    // Commit: offline by construction.
    commit::commit(&mut alpm, pacman.cache_dirs())
}

/// pacman's message for a held lock, naming the lock file.
fn lock_error(alpm: &alpm::Alpm, e: alpm::Error) -> anyhow::Error {
    ui::error(&format!("failed to init transaction ({e})"));
    if e == alpm::Error::HandleLock {
        let lock = std::path::Path::new(alpm.dbpath()).join("db.lck");
        ui::error("could not lock database: File exists");
        eprintln!(
            "  if you're sure a package manager is not already\n  running, you can remove {}",
            lock.display()
        );
    }
    anyhow!(ExitQuietly(1))
}

fn init_tracing(debug: bool) {
    let filter = if debug { "pactor=debug" } else { "pactor=warn" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PACTOR_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
