//! `pactor seed --dir DIR`: a long-running seeder for a mirror or seedbox directory. It seeds
//! every file listed in DIR's `<repo>.torrents` whose bytes give the listed infohash, read-only,
//! and rescans DIR so new releases are picked up and removed files dropped without a restart.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::cli::SeedArgs;
use crate::config::{self, Settings};
use crate::index::Index;
use crate::interrupt::Interrupt;
use crate::swarm::{Handle, Swarm, SwarmConfig};
use crate::torrent::Info;
use crate::ui;

/// A seeded file, remembered by what would show it changed.
struct Seeded {
    handle: Handle,
    size: u64,
    mtime: SystemTime,
}

pub fn run(args: &SeedArgs) -> Result<()> {
    let settings = Settings::load(
        &args.pactor_conf,
        args.pactor_conf == Path::new("/etc/pactor.conf"),
    )?;
    let upload_bps = match &args.upload_rate {
        Some(rate) => Some(config::rate(rate).map_err(|e| anyhow::anyhow!("--upload-rate: {e}"))?),
        None => settings.max_upload_rate,
    };
    let listen = args.listen.unwrap_or_else(|| {
        let port = if settings.listen_port == 0 {
            6881
        } else {
            settings.listen_port
        };
        SocketAddr::from(([0, 0, 0, 0], port))
    });
    let mut trackers = settings.trackers.clone();
    for (_, index) in read_indexes(&args.dir) {
        trackers.extend(index.trackers);
    }
    trackers.sort();
    trackers.dedup();
    let config = SwarmConfig {
        listen: Some(listen),
        dht: settings.dht,
        lsd: settings.lsd,
        trackers,
        upload_bps,
        download_bps: None,
        peer_limit: args.peer_limit,
    };
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    runtime.block_on(async {
        let interrupt = Interrupt::listen()?;
        let swarm = Swarm::start(&config, &args.dir).await?;
        let mut seeded: HashMap<String, Seeded> = HashMap::new();
        loop {
            rescan(&swarm, &args.dir, &mut seeded).await;
            println!(
                ":: seeding {} files from {} on {listen}",
                seeded.len(),
                args.dir.display()
            );
            tokio::select! {
                _ = interrupt.wait() => break,
                _ = tokio::time::sleep(Duration::from_secs(args.rescan.max(1))) => {}
            }
        }
        swarm.stop().await;
        anyhow::Ok(())
    })
}

/// Every `<repo>.torrents` in `dir` that parses; the bad ones are reported and skipped.
fn read_indexes(dir: &Path) -> Vec<(PathBuf, Index)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("torrents") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| Index::parse(&b).map_err(|e| e.to_string()))
        {
            Ok((index, warnings)) => {
                for w in warnings {
                    ui::warning(&format!("{}: {w}", path.display()));
                }
                out.push((path, index));
            }
            Err(e) => ui::warning(&format!("{}: {e}", path.display())),
        }
    }
    out
}

async fn rescan(swarm: &Swarm, dir: &Path, seeded: &mut HashMap<String, Seeded>) {
    let mut wanted = HashMap::new();
    for (_, index) in read_indexes(dir) {
        wanted.extend(index.files);
    }
    // Drop what is gone or changed on disk.
    let stale: Vec<String> = seeded
        .iter()
        .filter(|(name, s)| {
            !wanted.contains_key(*name) || file_state(&dir.join(name)) != Some((s.size, s.mtime))
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in stale {
        if let Some(s) = seeded.remove(&name) {
            swarm.forget(&s.handle, false).await;
            say(&format!(" stopped seeding {name}"));
        }
    }
    for (name, entry) in wanted {
        if seeded.contains_key(&name) {
            continue;
        }
        let path = dir.join(&name);
        let Some((size, mtime)) = file_state(&path).filter(|(size, _)| *size == entry.size) else {
            continue;
        };
        let info = match tokio::task::spawn_blocking(move || Info::from_file(&path)).await {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                ui::warning(&format!("{name}: {e}"));
                continue;
            }
            Err(_) => continue,
        };
        if info.info_hash() != entry.info_hash {
            ui::warning(&format!(
                "{name}: its bytes do not give the published infohash; not seeding it"
            ));
            continue;
        }
        match swarm.seed(&info, dir).await {
            Ok(handle) => {
                seeded.insert(
                    name,
                    Seeded {
                        handle,
                        size,
                        mtime,
                    },
                );
            }
            Err(e) => ui::warning(&format!("{name}: could not seed: {e:#}")),
        }
    }
}

/// A status line; a daemon whose stdout went away (a closed pipe, a stopped journal reader)
/// keeps seeding rather than dying on the write.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Size and mtime of a regular file (never through a symlink).
fn file_state(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    Some((meta.len(), meta.modified().ok()?))
}
