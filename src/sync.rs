//! `pactor -S`: plan → fetch → verify → commit, top to bottom.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::SyncArgs;
use crate::config::Settings;
use crate::fetcher::protocol::{Base64, PrefetchJob, Report, SwarmSettings};
use crate::fetcher::{Downloads, Setup, sandbox};
use crate::handle::{self, PacmanConfig};
use crate::indexes::{self, RepoSource};
use crate::interrupt::Interrupt;
use crate::transaction::{self, PackageFile, Planned, SignaturePolicy};
use crate::ui::{self, Ui};
use crate::{ExitQuietly, callbacks, commit, stats};

pub fn run(args: SyncArgs) -> Result<()> {
    let settings = args.pactor_conf.load()?;
    tracing::debug!(
        "settings from {}: {settings:?}",
        args.pactor_conf.path.display()
    );
    let pacman = PacmanConfig::load(&args, &settings.state_dir)?;
    Ui::init(&args, pacman.conf.color);

    if args.targets.is_empty() && args.sysupgrade == 0 && args.refresh == 0 {
        bail!("no targets specified (use -h for help)");
    }
    let mut alpm = pacman.alpm()?;
    callbacks::install(&alpm, args.debug);
    if args.verbose > 0 {
        handle::print_paths(&alpm, &args);
    }
    if !args.overwrite.is_empty() {
        alpm.set_overwrite_files(args.overwrite.iter())?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let interrupt = runtime
        .block_on(async { Interrupt::listen_like_pacman() })
        .context("could not watch signals")?;
    let mut downloads =
        Downloads::new(download_setup(&pacman, &settings, &args), interrupt.clone());

    // Plan: refresh (databases, then the torrent indexes older than their database, or all of
    // them with -yy), then the transaction as pacman computes it.
    if args.refresh > 0 {
        transaction::refresh(&mut alpm, args.refresh >= 2)?;
    }
    // From here on everything happens under the database lock: a second pactor stops here and
    // changes nothing, not even a torrent index.
    if let Err(e) = alpm.trans_init(handle::trans_flags(&args)) {
        return Err(lock_error(&alpm, e));
    }
    let repos = repo_sources(&alpm);
    let index_dir = indexes::index_dir(Path::new(alpm.dbpath()));
    let arch = pacman
        .conf
        .architecture
        .first()
        .cloned()
        .unwrap_or_else(|| "x86_64".into());
    let stale = indexes::stale(
        &repos,
        &settings.torrent_indexes,
        &arch,
        &index_dir,
        args.refresh >= 2,
    );
    let refreshed: Vec<String> = stale.iter().map(|s| s.repo.clone()).collect();
    // The download process starts and fetches them while this process plans (and starts the
    // swarm the prefetch may need): neither needs the other's work before the prefetch.
    let has_targets = !args.targets.is_empty() || args.sysupgrade > 0;
    let warm_up = (has_targets && !stale.is_empty()).then(|| swarm_settings(&settings));
    // Their receipt (reading, checking and keeping each index: 3 ms for 1,000 files, ten
    // times that for Arch's repos) runs on a worker meanwhile, and says nothing until the
    // planning, which may ask questions, is over.
    let receiving = match stale.is_empty() {
        true => None,
        false => {
            let pending = runtime
                .block_on(downloads.fetcher())?
                .request_indexes(stale, warm_up.clone());
            let mut fetcher = downloads.lend().expect("started above");
            let dir = index_dir.clone();
            Some(runtime.spawn(async move {
                let mut notes = indexes::Notes::default();
                let recorded = fetcher.receive_indexes(pending, &dir, &mut notes).await;
                (fetcher, recorded, notes)
            }))
        }
    };
    let planned = match has_targets {
        true => transaction::plan(&mut alpm, &args),
        false => Ok(Planned::NothingToDo),
    };
    let received = match receiving {
        None => None,
        Some(task) => {
            let (fetcher, recorded, notes) = runtime
                .block_on(task)
                .context("the torrent indexes were not received")?;
            downloads.give_back(fetcher);
            Some((recorded, notes))
        }
    };
    // A signal at one of its questions ended the planning (the questions after it were answered
    // no): the run ends as pacman's does, whatever the planning made of those answers.
    if let Some(signum) = interrupt.signal() {
        bail!(crate::ExitQuietly(128 + signum as u8));
    }
    let recorded = match received {
        None => Default::default(),
        Some((recorded, notes)) => {
            notes.show();
            recorded?
        }
    };
    let files = match planned? {
        Planned::NothingToDo => return Ok(()),
        Planned::Proceed(files) => files,
    };
    let signatures_checked = files
        .iter()
        .any(|f| f.signature != SignaturePolicy::NotChecked);
    // The download process goes on seeding during the commit, or stops after the prefetch.
    let seed_after_prefetch = !args.download_only && settings.seed_while_installing;

    // Fetch and verify: every file lands in the cache before the commit, or nothing is installed.
    let cache_dirs = pacman.cache_dirs();
    let report = if needs_download(&files, &cache_dirs) {
        // An index that does not list a file about to be downloaded may predate its database
        // (a mirror publishes the index after the database): ask again before the file goes to
        // HTTP, unless it was just fetched.
        let mut loaded = indexes::load(&repos, &index_dir, recorded);
        let behind: Vec<RepoSource> = indexes::not_listing(&files, &loaded, &cache_dirs)
            .into_iter()
            .filter(|repo| !refreshed.contains(repo))
            .filter_map(|repo| repos.iter().find(|r| r.name == repo).cloned())
            .collect();
        let again = indexes::stale(&behind, &settings.torrent_indexes, &arch, &index_dir, true);
        if !again.is_empty() {
            let recorded = runtime.block_on(async {
                downloads
                    .fetcher()
                    .await?
                    .refresh_indexes(again, &index_dir)
                    .await
            })?;
            loaded.extend(recorded);
        }
        let job = PrefetchJob {
            files,
            cache_dirs: cache_dirs.clone(),
            parallel: settings
                .parallel_downloads
                .unwrap_or(usize::try_from(pacman.conf.parallel_downloads).unwrap_or(1))
                .max(1),
            indexes: loaded
                .into_iter()
                .map(|(repo, loaded)| (repo, Base64(loaded.raw)))
                .collect(),
            // The settings the swarm was started with, if it was.
            swarm: warm_up.unwrap_or_else(|| swarm_settings(&settings)),
            peers: settings.peers.clone(),
            stall_ms: settings.stall_timeout.as_millis() as u64,
            seed_after: seed_after_prefetch,
        };
        runtime.block_on(async { downloads.fetcher().await?.prefetch(job).await })?
    } else {
        Report::default()
    };
    let state_dir = settings.state_dir.clone();
    if !seed_after_prefetch {
        let uploaded = runtime.block_on(downloads.stop());
        stats::record_prefetch(&state_dir, &as_report(&report), uploaded);
        // With -w alpm's commit ends after checking the keyring and the packages' signatures,
        // as pacman's -Sw does. Where no signature is checked it would only hash every file
        // again against the sha256 that each was verified against on its way into the cache:
        // a second pass over the bytes, up to half the time of a fast mirror's transfer.
        if args.download_only && !signatures_checked {
            return Ok(());
        }
        return commit_interruptibly(&runtime, &mut alpm, cache_dirs, &interrupt);
    }

    // Commit: offline by construction. The download process keeps seeding meanwhile.
    let committed = commit_interruptibly(&runtime, &mut alpm, cache_dirs, &interrupt);
    let uploaded = runtime.block_on(downloads.stop());
    stats::record_prefetch(&state_dir, &as_report(&report), uploaded);
    committed
}

/// The commit, interrupted between two packages on SIGINT, SIGHUP or SIGTERM, as pacman's
/// signal handler interrupts it (`alpm_trans_interrupt`): what is installed stays installed
/// and recorded, the rest is not started, the lock is released.
fn commit_interruptibly(
    runtime: &tokio::runtime::Runtime,
    alpm: &mut alpm::Alpm,
    cache_dirs: Vec<PathBuf>,
    interrupt: &Interrupt,
) -> Result<()> {
    /// alpm's handle, for the one call pacman makes from its signal handler.
    struct HandlePtr(*mut alpm_sys::alpm_handle_t);
    // SAFETY: only alpm_trans_interrupt is called through it, which pacman calls from a
    // signal handler while the commit runs: it sets the transaction's state, nothing else.
    unsafe impl Send for HandlePtr {}
    // SAFETY: the local database belongs to this handle, which outlives the watcher (aborted
    // and awaited below).
    let handle = HandlePtr(unsafe { alpm_sys::alpm_db_get_handle(alpm.localdb().as_ptr()) });
    let interrupt = interrupt.clone();
    let watcher = runtime.spawn(async move {
        let handle = handle;
        interrupt.wait().await;
        crate::interrupt::announce(interrupt.signal().unwrap_or(libc::SIGINT));
        // SAFETY: see HandlePtr.
        unsafe { alpm_sys::alpm_trans_interrupt(handle.0) };
    });
    let committed = commit::commit(alpm, cache_dirs);
    watcher.abort();
    let _ = runtime.block_on(watcher);
    committed
}

/// Whether the download process is needed: a package missing from every cache, or a
/// signature alpm will want.
fn needs_download(files: &[PackageFile], cache_dirs: &[PathBuf]) -> bool {
    let cached = |name: &str| cache_dirs.iter().any(|dir| dir.join(name).is_file());
    files.iter().any(|f| {
        !cached(&f.filename)
            || (f.signature != SignaturePolicy::NotChecked
                && !cached(&format!("{}.sig", f.filename)))
    })
}

fn as_report(report: &Report) -> crate::prefetch::Report {
    crate::prefetch::Report {
        files: report.files,
        bytes_from_peers: report.bytes_from_peers,
        bytes_from_mirrors: report.bytes_from_mirrors,
    }
}

/// How the download process is started: sandboxed by pacman's rules, with pactor's timeouts.
fn download_setup(pacman: &PacmanConfig, settings: &Settings, args: &SyncArgs) -> Setup {
    let (sandbox, notice) = sandbox::Plan::new(
        &sandbox::Settings {
            download_user: pacman.conf.download_user.clone(),
            disable_filesystem: pacman.conf.disable_sandbox_filesystem,
            disable_syscalls: pacman.conf.disable_sandbox_syscalls,
        },
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() } == 0,
    );
    Setup {
        sandbox,
        notice,
        dest: pacman.writable_cache_dir().map_err(|e| e.to_string()),
        connect_timeout: settings.connect_timeout,
        idle_timeout: settings.idle_timeout,
        debug: args.debug,
    }
}

/// The sync repos with their servers and database files, for the torrent indexes.
fn repo_sources(alpm: &alpm::Alpm) -> Vec<RepoSource> {
    let sync_dir = Path::new(alpm.dbpath()).join("sync");
    alpm.syncdbs()
        .iter()
        .map(|db| RepoSource {
            name: db.name().to_owned(),
            servers: db.servers().iter().map(str::to_owned).collect(),
            db_file: sync_dir.join(format!("{}.db", db.name())),
        })
        .collect()
}

/// The leecher's session: it listens (so it can seed while installing) on ListenPort, or on a
/// free port when that is 0.
fn swarm_settings(settings: &Settings) -> SwarmSettings {
    let port = match settings.listen_port {
        0 => std::net::TcpListener::bind(("0.0.0.0", 0))
            .and_then(|l| l.local_addr())
            .map_or(0, |a| a.port()),
        port => port,
    };
    SwarmSettings {
        listen: (port != 0).then(|| std::net::SocketAddr::from(([0, 0, 0, 0], port))),
        dht: settings.dht,
        lsd: settings.lsd,
        trackers: settings.trackers.clone(),
        upload_bps: settings.max_upload_rate,
        download_bps: settings.max_download_rate,
        outgoing_peers: settings.peers_per_package,
    }
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
