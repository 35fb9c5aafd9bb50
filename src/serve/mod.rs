//! `pactor serve`: a pacman mirror on this machine (or a LAN) that gets every package from the
//! swarm, for the tools that run pacman or libalpm themselves (pacstrap, paru, yay, image
//! builders). pacman is pointed at it with `Server = http://127.0.0.1:8001/$repo/$arch`.
//!
//! Databases are proxied from upstream (`catalog.rs`); a package file comes from the cache or
//! from one shared fetch (`store.rs`) that races the swarm and the mirrors (`job.rs`) and checks
//! every byte before any reader sees it (`assembly.rs`); `respond.rs` speaks HTTP the way
//! pacman's curl expects. pacman keeps its own checks: the sha256 and signature of every
//! package are verified again at commit.
//!
//! pacman aborts a transfer that receives under 1 byte/s for 10 s, counting only body bytes
//! (headers do not reset the clock: `CURLOPT_LOW_SPEED_LIMIT` in libalpm's `dload.c`). No
//! bytes may be sent before they are verified, so there is nothing legitimate to send while
//! nothing is verified; instead serve makes sure verified bytes start within that window: the
//! swarm gets at most 5 s before the mirrors join, and mirror bytes are checked piece by piece
//! against the torrent (when its info is known) so they stream at once.

mod assembly;
mod catalog;
mod job;
mod path;
mod respond;
mod store;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cli::ServeArgs;
use crate::config::Settings;
use crate::handle::PacmanConfig;
use crate::http::Http;
use crate::interrupt::Interrupt;
use crate::swarm::{Swarm, SwarmConfig};
pub use catalog::DbEntry;
use catalog::{Databases, say};
pub use path::decode_plain_name;
use store::Store;
use upstream::Upstreams;

/// How often files gone from the cache stop being seeded.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Everything a request may need.
pub struct Server {
    settings: Settings,
    http: Http,
    upstreams: Upstreams,
    databases: Databases,
    store: Store,
    /// The BitTorrent session (fetching and seeding); `None` if it could not start.
    swarm: Option<Swarm>,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    init_tracing();
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        bail!(
            "refusing to listen on {}: not a loopback address (use --allow-remote to serve other machines)",
            args.listen
        );
    }
    let settings = args.pactor_conf.load()?;
    let pacman = PacmanConfig::read(args.config.as_deref(), None);
    let needs_pacman_conf = args.cachedir.is_empty()
        || (settings.upstream.all.is_empty() && settings.upstream.repos.is_empty());
    let pacman = match pacman {
        Ok(pacman) => Some(pacman),
        Err(e) if needs_pacman_conf => return Err(e),
        Err(e) => {
            tracing::info!("{e:#}");
            None
        }
    };
    let cache_dirs: Vec<PathBuf> = match (&pacman, args.cachedir.is_empty()) {
        (Some(pacman), true) => pacman.cache_dirs(),
        _ => args.cachedir.clone(),
    };
    let dest = cache_dirs
        .iter()
        .find(|dir| writable(dir))
        .cloned()
        .with_context(|| {
            format!(
                "no writable cache directory among {}",
                cache_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let store = Store::new(cache_dirs.clone(), dest.clone()).with_context(|| {
        format!(
            "could not create the staging directory in {}",
            dest.display()
        )
    })?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| settings.state_dir.join("serve"));
    std::fs::create_dir_all(&state_dir).with_context(|| {
        format!(
            "could not create the state directory {}",
            state_dir.display()
        )
    })?;
    let (pacman_servers, arches) = match &pacman {
        Some(pacman) => (
            pacman
                .conf
                .repos
                .iter()
                .map(|r| (r.name.clone(), r.servers.clone()))
                .collect::<HashMap<_, _>>(),
            pacman.conf.architecture.clone(),
        ),
        None => (HashMap::new(), Vec::new()),
    };
    let upstreams = Upstreams::new(
        settings.upstream.clone(),
        pacman_servers,
        arches,
        args.listen,
    );
    for own in upstreams.own_addresses() {
        crate::ui::warning(&format!(
            "not using {own} as an upstream: it is this mirror's own address"
        ));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let interrupt = Interrupt::listen().context("could not watch signals")?;
        let http = Http::new(
            settings.connect_timeout,
            settings.idle_timeout,
            interrupt.clone(),
        );
        let swarm_config = swarm_config(&settings);
        let swarm = match Swarm::start(&swarm_config, &store.staging.join("swarm")).await {
            Ok(swarm) => Some(swarm),
            Err(e) => {
                crate::ui::warning(&format!("{e:#}; serving from the mirrors only"));
                None
            }
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("could not listen on {}", args.listen))?;
        let server = Arc::new(Server {
            databases: Databases::new(state_dir),
            settings,
            http,
            upstreams,
            store,
            swarm,
        });
        let repos = server.upstreams.known_repos();
        say(&format!(
            ":: serving {} on http://{} (cache {}, peers on port {})",
            if repos.is_empty() {
                "configured repos".to_string()
            } else {
                repos.join(", ")
            },
            args.listen,
            dest.display(),
            swarm_config
                .listen
                .filter(|_| server.swarm.is_some())
                .map_or_else(|| "none".to_string(), |a| a.port().to_string()),
        ));
        let sweeper = server.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                if let Some(swarm) = &sweeper.swarm {
                    sweeper.store.sweep(swarm).await;
                }
            }
        });
        let app = axum::Router::new()
            .fallback(respond::handle)
            .with_state(server.clone());
        let stopping = interrupt.clone();
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(async move { stopping.wait().await });
        tokio::select! {
            served = serve => served.context("the HTTP server failed")?,
            // Open downloads end when the fetches they wait on are interrupted; do not wait
            // for slow clients beyond that.
            _ = async {
                interrupt.wait().await;
                tokio::time::sleep(Duration::from_secs(3)).await;
            } => {}
        }
        if let Some(swarm) = &server.swarm {
            swarm.stop().await;
        }
        anyhow::Ok(())
    })
}

/// serve's session listens for peers on ListenPort (any free port when it is 0): it seeds
/// what it serves.
fn swarm_config(settings: &Settings) -> SwarmConfig {
    let port = match settings.listen_port {
        0 => std::net::TcpListener::bind(("0.0.0.0", 0))
            .and_then(|l| l.local_addr())
            .map_or(0, |a| a.port()),
        port => port,
    };
    SwarmConfig {
        listen: (port != 0).then(|| SocketAddr::from(([0, 0, 0, 0], port))),
        dht: settings.dht,
        lsd: settings.lsd,
        trackers: settings.trackers.clone(),
        upload_bps: settings.max_upload_rate,
        download_bps: settings.max_download_rate,
        peer_limit: None,
        // SuperSeed is `pactor seed`'s: a LAN cache seeds what its clients fetched.
        super_seed: false,
        outgoing_peers: settings.peers_per_package,
        runtime: None,
    }
}

fn writable(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    dir.is_dir() && unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PACTOR_LOG")
                .unwrap_or_else(|_| "pactor=warn".into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
