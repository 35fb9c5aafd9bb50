//! `pactor -S`: plan → fetch → verify → commit, top to bottom.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::SyncArgs;
use crate::config::Settings;
use crate::handle::{self, PacmanConfig};
use crate::http::Http;
use crate::indexes::{self, RepoSource};
use crate::interrupt::Interrupt;
use crate::prefetch::{Prefetch, SwarmPlan};
use crate::swarm::SwarmConfig;
use crate::transaction::{self, Planned};
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
        .block_on(async { Interrupt::listen() })
        .context("could not watch signals")?;
    let http = Http::new(settings.connect_timeout, settings.idle_timeout, interrupt);

    // Plan: refresh (databases, then the torrent indexes older than their database, or all of
    // them with -yy), then the transaction as pacman computes it.
    if args.refresh > 0 {
        transaction::refresh(&mut alpm, args.refresh >= 2)?;
    }
    let repos = repo_sources(&alpm);
    let index_dir = indexes::index_dir(Path::new(alpm.dbpath()));
    let arch = pacman
        .conf
        .architecture
        .first()
        .cloned()
        .unwrap_or_else(|| "x86_64".into());
    let asked = runtime.block_on(indexes::refresh(
        &http,
        &repos,
        &settings.torrent_indexes,
        &arch,
        &index_dir,
        args.refresh >= 2,
    ));
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
    let mut prefetch = Prefetch {
        cache_dirs: pacman.cache_dirs(),
        dest: pacman.writable_cache_dir()?,
        parallel: settings
            .parallel_downloads
            .unwrap_or(usize::try_from(pacman.conf.parallel_downloads).unwrap_or(1))
            .max(1),
        http,
        server_errors: Default::default(),
        mirror_rate: Default::default(),
        swarm: SwarmPlan {
            indexes: indexes::load(&repos, &index_dir),
            config: swarm_config(&settings),
            peers: settings.peers.clone(),
            stall: settings.stall_timeout,
        },
    };
    // An index that does not list a file about to be downloaded may predate its database (a
    // mirror publishes the index after the database): ask again before the file goes to HTTP,
    // unless it was just fetched.
    let behind = prefetch.repos_without_entries(&files);
    let behind: Vec<RepoSource> = repos
        .iter()
        .filter(|r| behind.contains(&r.name) && !asked.contains(&r.name))
        .cloned()
        .collect();
    if !behind.is_empty() {
        runtime.block_on(indexes::refresh(
            &prefetch.http,
            &behind,
            &settings.torrent_indexes,
            &arch,
            &index_dir,
            true,
        ));
        prefetch.swarm.indexes = indexes::load(&repos, &index_dir);
    }
    let (report, swarm) = runtime.block_on(prefetch.run(&files))?;
    let state_dir = settings.state_dir.clone();
    let uploaded = swarm.as_ref().map_or(0, |s| s.uploaded_bytes());
    let swarm = swarm.filter(|_| settings.seed_while_installing && !args.download_only);
    if args.download_only {
        stats::record_prefetch(&state_dir, &report, uploaded);
        return Ok(());
    }

    // Commit: offline by construction. The swarm (if any) keeps seeding on the runtime's threads.
    let committed = commit::commit(&mut alpm, pacman.cache_dirs());
    let uploaded = swarm.as_ref().map_or(uploaded, |s| s.uploaded_bytes());
    if let Some(swarm) = swarm {
        runtime.block_on(swarm.stop());
    }
    stats::record_prefetch(&state_dir, &report, uploaded);
    committed
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
fn swarm_config(settings: &Settings) -> SwarmConfig {
    let port = match settings.listen_port {
        0 => std::net::TcpListener::bind(("0.0.0.0", 0))
            .and_then(|l| l.local_addr())
            .map_or(0, |a| a.port()),
        port => port,
    };
    SwarmConfig {
        listen: (port != 0).then(|| std::net::SocketAddr::from(([0, 0, 0, 0], port))),
        dht: settings.dht,
        lsd: settings.lsd,
        trackers: settings.trackers.clone(),
        upload_bps: settings.max_upload_rate,
        download_bps: settings.max_download_rate,
        peer_limit: None,
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
