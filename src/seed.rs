//! `pactor seed`: a long-running seeder. With `--dir` it serves a mirror or seedbox directory:
//! every file listed in its `<repo>.torrents` whose bytes give the listed infohash. Without it
//! it serves the local pacman cache: only files whose sha256 matches an entry of the current
//! sync databases, never another file of the cache, never through a symlink. Either way files
//! are read-only to it, and it rescans so new and removed files (and trackers new in an index)
//! are picked up without a restart:
//! every `--rescan` seconds, and at once on SIGHUP (which the pacman hook has systemd send after
//! each transaction). Its upload total goes to the statistics every minute and at exit.
//! A file is read once: what was proven is recorded in `StateDir` ([`Proven`]), so a restart
//! over many gigabytes does not hash them again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::SeedArgs;
use crate::config;
use crate::handle::PacmanConfig;
use crate::index::Index;
use crate::interrupt::Interrupt;
use crate::proven::{self, Identity, Proof, Proven};
use crate::stats;
use crate::swarm::{Handle, Swarm, SwarmConfig};
use crate::torrent::InfoHash;
use crate::ui;

/// What is seeded: published directories or the pacman cache.
enum Catalog {
    Dirs(Vec<PathBuf>),
    Cache(Box<PacmanConfig>),
}

/// The longest the upload total goes unrecorded while the seeder runs.
const STATS_FLUSH: Duration = Duration::from_secs(60);

/// What a file's bytes must give before they are offered to anyone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// The published infohash (a repo directory).
    InfoHash(InfoHash),
    /// The sync database's sha256 (the pacman cache).
    Sha256([u8; 32]),
}

/// A file that may be seeded, if its bytes pass the proof.
struct Wanted {
    dir: PathBuf,
    size: u64,
    proof: Expected,
}

struct Seeded {
    handle: Handle,
    /// A change means the file must be proven again.
    identity: Identity,
}

pub fn run(args: &SeedArgs) -> Result<()> {
    let settings = args.pactor_conf.load()?;
    let catalog = if args.dir.is_empty() {
        Catalog::Cache(Box::new(PacmanConfig::read(args.config.as_deref(), None)?))
    } else {
        Catalog::Dirs(args.dir.clone())
    };
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
    // Read once per scan: for the trackers and for the files.
    let mut indexes = Some(published(&catalog));
    let config = SwarmConfig {
        listen: Some(listen),
        dht: settings.dht,
        lsd: settings.lsd,
        // The indexes' trackers are set per directory below, so that dropped ones go.
        trackers: settings.trackers.clone(),
        upload_bps,
        download_bps: None,
        peer_limit: args.peer_limit,
        super_seed: args.super_seed || settings.super_seed,
        // A seeder fetches nothing; its peers all connect to it.
        outgoing_peers: settings.peers_per_package,
        runtime: None,
    };
    let label = match &catalog {
        Catalog::Dirs(dirs) => dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        Catalog::Cache(pacman) => pacman.conf.cache_dir.join(", "),
    };
    let mut recorder = stats::SeedRecorder::new(settings.state_dir.clone());
    let rescan_every = Duration::from_secs(args.rescan.max(1));
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    runtime.block_on(async {
        let interrupt = Interrupt::listen()?;
        let mut hangup = signal(SignalKind::hangup()).context("could not watch SIGHUP")?;
        let swarm = Swarm::start(&config, &std::env::temp_dir()).await?;
        let mut seeded: HashMap<String, Seeded> = HashMap::new();
        let mut rejected: HashMap<PathBuf, Identity> = HashMap::new();
        let mut proven = Proven::load(&settings.state_dir, &label);
        let mut save_failed = false;
        let mut flush = tokio::time::interval(rescan_every.min(STATS_FLUSH));
        let mut announced: Option<Vec<String>> = None;
        'run: loop {
            // A tracker added to an index since the last scan, or dropped from every index:
            // each torrent is added again with the trackers as they are now (the proven-files
            // record spares the hashing), as librqbit cannot change a live torrent's announce
            // URLs.
            let published = indexes.take().unwrap_or_else(|| published(&catalog));
            for (dir, indexes) in &published {
                swarm.set_published_trackers(&dir.to_string_lossy(), &index_trackers(indexes));
            }
            let now = swarm.trackers();
            if let Some(before) = &announced
                && let Some(change) = tracker_change(before, &now)
            {
                say(&format!(":: {change}; announcing every file again"));
                for (_, s) in seeded.drain() {
                    swarm.forget(&s.handle, false).await;
                }
            }
            announced = Some(now);
            match wanted(&catalog, published) {
                Ok(wanted) => {
                    rescan(&swarm, wanted, &mut seeded, &mut rejected, &mut proven).await;
                    if let Err(e) = proven.save()
                        && !std::mem::replace(&mut save_failed, true)
                    {
                        ui::warning(&format!(
                            "could not record proven files in {}: {e:#}; a restart will read them again",
                            settings.state_dir.display()
                        ));
                    }
                }
                Err(e) => ui::warning(&format!("{e:#}")),
            }
            say(&format!(
                ":: seeding {} files from {label} on {listen}, uploaded {}",
                seeded.len(),
                ui::human(swarm.uploaded_bytes())
            ));
            let next_rescan = tokio::time::sleep(rescan_every);
            tokio::pin!(next_rescan);
            loop {
                tokio::select! {
                    _ = interrupt.wait() => break 'run,
                    _ = &mut next_rescan => break,
                    _ = hangup.recv() => {
                        say(":: rescanning (SIGHUP)");
                        break;
                    }
                    _ = flush.tick() => recorder.flush(swarm.uploaded_bytes()),
                }
            }
        }
        recorder.flush(swarm.uploaded_bytes());
        swarm.stop().await;
        anyhow::Ok(())
    })
}

/// Each published directory with the indexes it holds now (none for the pacman cache).
fn published(catalog: &Catalog) -> Vec<(PathBuf, Vec<Index>)> {
    match catalog {
        Catalog::Dirs(dirs) => dirs
            .iter()
            .map(|dir| (dir.clone(), read_indexes(dir)))
            .collect(),
        Catalog::Cache(_) => Vec::new(),
    }
}

/// The trackers a directory's indexes publish.
fn index_trackers(indexes: &[Index]) -> Vec<String> {
    let mut trackers: Vec<String> = indexes
        .iter()
        .flat_map(|index| index.trackers.iter().cloned())
        .collect();
    trackers.sort();
    trackers.dedup();
    trackers
}

/// What changed between two lists of trackers, said for the log; `None` if nothing did.
fn tracker_change(before: &[String], now: &[String]) -> Option<String> {
    let missing = |from: &[String], of: &[String]| -> Vec<String> {
        from.iter().filter(|t| !of.contains(t)).cloned().collect()
    };
    let (added, dropped) = (missing(now, before), missing(before, now));
    let mut said = Vec::new();
    if !added.is_empty() {
        said.push(format!("new trackers in the index: {}", added.join(", ")));
    }
    if !dropped.is_empty() {
        said.push(format!(
            "trackers gone from the index: {}",
            dropped.join(", ")
        ));
    }
    (!said.is_empty()).then(|| said.join("; "))
}

/// The files the catalog allows, by name; for published directories, those their indexes
/// (`published`) list.
fn wanted(
    catalog: &Catalog,
    published: Vec<(PathBuf, Vec<Index>)>,
) -> Result<HashMap<String, Wanted>> {
    let mut out = HashMap::new();
    match catalog {
        Catalog::Dirs(_) => {
            for (dir, indexes) in published {
                for index in indexes {
                    for (name, entry) in index.files {
                        let proof = Expected::InfoHash(entry.info_hash);
                        out.entry(name).or_insert(Wanted {
                            dir: dir.clone(),
                            size: entry.size,
                            proof,
                        });
                    }
                }
            }
        }
        Catalog::Cache(pacman) => {
            // The sync databases as they are now: after an -Syu they list new files.
            let alpm = pacman.alpm()?;
            let mut listed: HashMap<String, (u64, [u8; 32])> = HashMap::new();
            for db in alpm.syncdbs() {
                for pkg in db.pkgs() {
                    let sha = crate::transaction::db_sha256(pkg);
                    if let (Some(name), Some(sha), Ok(size)) =
                        (pkg.filename(), sha, u64::try_from(pkg.size()))
                    {
                        listed.insert(name.to_owned(), (size, sha));
                    }
                }
            }
            for dir in pacman.cache_dirs() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if let Some(&(size, sha)) = listed.get(&name) {
                        out.entry(name).or_insert(Wanted {
                            dir: dir.clone(),
                            size,
                            proof: Expected::Sha256(sha),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Every `<repo>.torrents` in `dir` that parses; the bad ones are reported and skipped.
fn read_indexes(dir: &Path) -> Vec<Index> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("torrents") {
            continue;
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| Index::parse(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok((index, warnings)) => {
                for w in warnings {
                    ui::warning(&format!("{}: {w}", path.display()));
                }
                out.push(index);
            }
            Err(e) => ui::warning(&format!("{}: {e}", path.display())),
        }
    }
    out
}

async fn rescan(
    swarm: &Swarm,
    wanted: HashMap<String, Wanted>,
    seeded: &mut HashMap<String, Seeded>,
    rejected: &mut HashMap<PathBuf, Identity>,
    proven: &mut Proven,
) {
    // Drop what is gone, no longer wanted, or changed on disk.
    proven.retain(|path| {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        wanted.get(name).is_some_and(|w| w.dir.join(name) == path)
    });
    let stale: Vec<String> = seeded
        .iter()
        .filter(|(name, s)| {
            wanted
                .get(*name)
                .and_then(|w| proven::identity(&w.dir.join(name)))
                != Some(s.identity)
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in stale {
        if let Some(s) = seeded.remove(&name) {
            swarm.forget(&s.handle, false).await;
            say(&format!(" stopped seeding {name}"));
        }
    }
    for (name, want) in wanted {
        if seeded.contains_key(&name) {
            continue;
        }
        let path = want.dir.join(&name);
        // Regular files only (a symlink is never followed), of the listed size, not already
        // found wrong in the same state.
        let Some(identity) = proven::identity(&path).filter(|id| id.size == want.size) else {
            continue;
        };
        if rejected.get(&path) == Some(&identity) {
            continue;
        }
        let proof = match proven.get(&path, &identity) {
            Some(proof) => proof.clone(),
            None => {
                let read = {
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || {
                        crate::torrent::Info::from_file_with_sha256(&path)
                    })
                    .await
                };
                let Ok(Ok((info, sha256))) = read else {
                    continue;
                };
                Proof { info, sha256 }
            }
        };
        let matches = match want.proof {
            Expected::InfoHash(hash) => proof.info.info_hash() == hash,
            Expected::Sha256(hash) => proof.sha256 == hash,
        };
        if !matches {
            ui::warning(&format!(
                "{name}: its bytes are not the listed ones; not seeding it"
            ));
            rejected.insert(path, identity);
            continue;
        }
        match swarm.seed(&proof.info, &want.dir).await {
            Ok(handle) => {
                proven.insert(path, identity, proof);
                seeded.insert(name, Seeded { handle, identity });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_change_of_trackers_says_what_came_and_what_went() {
        let (a, b, c) = (
            "http://a/announce",
            "http://b/announce",
            "http://c/announce",
        );
        assert_eq!(tracker_change(&urls(&[a, b]), &urls(&[b, a])), None);
        assert_eq!(
            tracker_change(&urls(&[a]), &urls(&[a, b])).unwrap(),
            format!("new trackers in the index: {b}")
        );
        assert_eq!(
            tracker_change(&urls(&[a, b]), &urls(&[b, c])).unwrap(),
            format!("new trackers in the index: {c}; trackers gone from the index: {a}")
        );
    }
}
