//! Package files on disk: the cache serve answers from, the staging directory where missing
//! files are assembled, and the one fetch per file that every client asking for it shares.
//!
//! A cache file is served only after its size and sha256 match the database entry (once per
//! file state: a changed file is checked again), and only if it is a regular file reached
//! without following a symlink. A missing file gets a [`Job`]: a task, independent of the
//! clients, that assembles it in the staging directory (see `job.rs`), publishes how many bytes
//! are verified so far, and finally moves it into the cache. Clients that arrive while it runs
//! read the same staging file as it grows; clients that arrive later find it in the cache.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use super::Server;
use super::assembly::Assembly;
use super::catalog::{DbEntry, say};
use super::job::{self, Plan, Took};
use crate::swarm::Handle;
use crate::torrent::{Info, InfoHash};

/// How far a job has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// This many leading bytes are verified and may be sent.
    Running(u64),
    /// The whole file is verified (and in the cache).
    Done,
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No source has the file at all.
    NotFound,
    Failed(String),
}

/// A file being fetched, as its readers see it.
pub struct Job {
    pub reader: Arc<std::fs::File>,
    pub progress: watch::Receiver<Progress>,
}

/// A file state: a different one must be checked again.
type Stamp = (u64, u64, u64, i64, i64);

pub struct Store {
    /// Where cached files are looked up, in pacman's order.
    cache_dirs: Vec<PathBuf>,
    /// Where fetched files go (the first writable cache directory).
    pub dest: PathBuf,
    /// `<dest>/download-pactor-serve`: files being assembled; `swarm/` holds the BitTorrent
    /// engine's own copies while they download.
    pub staging: PathBuf,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    checked: Mutex<HashMap<PathBuf, Stamp>>,
    /// Torrents whose bytes contradicted the database: not used again by this run.
    bad_torrents: Mutex<HashSet<InfoHash>>,
    /// Files seeded back to the swarm, by name.
    seeded: Mutex<HashMap<String, Seeded>>,
}

/// A file in the session: which file (a replaced or deleted one is dropped by [`Store::sweep`])
/// and its torrent, once live.
struct Seeded {
    path: PathBuf,
    stamp: Stamp,
    handle: Option<Handle>,
}

impl Store {
    pub fn new(cache_dirs: Vec<PathBuf>, dest: PathBuf) -> std::io::Result<Store> {
        let staging = dest.join("download-pactor-serve");
        // Whatever an earlier run left there was never verified: start clean.
        match std::fs::remove_dir_all(&staging) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::create_dir_all(staging.join("swarm"))?;
        Ok(Store {
            cache_dirs,
            dest,
            staging,
            jobs: Mutex::default(),
            checked: Mutex::default(),
            bad_torrents: Mutex::default(),
            seeded: Mutex::default(),
        })
    }

    pub fn torrent_is_bad(&self, hash: &InfoHash) -> bool {
        self.bad_torrents
            .lock()
            .expect("no poisoning")
            .contains(hash)
    }

    pub fn mark_torrent_bad(&self, hash: InfoHash) {
        self.bad_torrents.lock().expect("no poisoning").insert(hash);
    }

    /// A verified copy of `name` in the cache: the open file, its mtime and its directory.
    pub async fn cached(
        &self,
        name: &str,
        entry: &DbEntry,
    ) -> Option<(std::fs::File, SystemTime, PathBuf)> {
        for dir in &self.cache_dirs {
            let path = dir.join(name);
            // The final component is never followed: a symlink in the cache is not a file.
            let Ok(file) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)
            else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            if !meta.file_type().is_file() || meta.len() != entry.size {
                continue;
            }
            let stamp = stamp(&meta);
            let known = self.checked.lock().expect("no poisoning").get(&path) == Some(&stamp);
            if !known {
                let Some(expected) = entry.sha256 else {
                    // Nothing to check against: only a file this run verified itself counts.
                    continue;
                };
                let Ok(copy) = file.try_clone() else { continue };
                let hashed = tokio::task::spawn_blocking(move || sha256_of(copy)).await;
                if !matches!(hashed, Ok(Ok(sha)) if sha == expected) {
                    continue;
                }
                self.checked
                    .lock()
                    .expect("no poisoning")
                    .insert(path.clone(), stamp);
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            return Some((file, modified, dir.clone()));
        }
        None
    }

    /// The fetch of `plan.name`, started if none runs.
    pub fn job(&self, server: &Arc<Server>, plan: Plan) -> std::io::Result<Arc<Job>> {
        let mut jobs = self.jobs.lock().expect("no poisoning");
        if let Some(job) = jobs.get(&plan.name) {
            return Ok(job.clone());
        }
        let path = self.staging.join(format!("{}.part", plan.name));
        let assembly = Assembly::create(&path, plan.entry.size, plan.entry.sha256)?;
        let reader = std::fs::File::open(&path)?;
        let (tx, rx) = watch::channel(Progress::Running(0));
        let job = Arc::new(Job {
            reader: Arc::new(reader),
            progress: rx,
        });
        jobs.insert(plan.name.clone(), job.clone());
        let server = server.clone();
        tokio::spawn(async move {
            let name = plan.name.clone();
            let modified = plan.modified;
            let started = Instant::now();
            server.store.unseed(&server, &name).await;
            let result = job::run(server.clone(), plan, assembly, tx.clone()).await;
            let store = &server.store;
            match result.and_then(|(assembly, took)| {
                store
                    .install(&name, assembly.path(), modified)
                    .map(|()| (assembly, took))
            }) {
                Ok((assembly, took)) => {
                    tx.send_replace(Progress::Done);
                    report(&name, took, started);
                    let info = assembly.info().cloned();
                    store.jobs.lock().expect("no poisoning").remove(&name);
                    store.seed(&server, &name, &store.dest.clone(), info);
                }
                Err(failure) => {
                    let why = match &failure {
                        Failure::NotFound => "no upstream has it".to_string(),
                        Failure::Failed(why) => why.clone(),
                    };
                    crate::ui::warning(&format!("failed retrieving file '{name}': {why}"));
                    tx.send_replace(Progress::Failed(failure));
                    store.jobs.lock().expect("no poisoning").remove(&name);
                    let _ = std::fs::remove_file(store.staging.join(format!("{name}.part")));
                }
            }
        });
        Ok(job)
    }

    /// Moves a verified staging file into the cache, remembered as checked.
    fn install(&self, name: &str, staged: &Path, modified: SystemTime) -> Result<(), Failure> {
        let failed =
            |e: std::io::Error| Failure::Failed(format!("could not move into the cache: {e}"));
        std::fs::File::options()
            .write(true)
            .open(staged)
            .and_then(|f| f.set_modified(modified))
            .map_err(failed)?;
        let dest = self.dest.join(name);
        std::fs::rename(staged, &dest).map_err(failed)?;
        let meta = std::fs::symlink_metadata(&dest).map_err(failed)?;
        self.checked
            .lock()
            .expect("no poisoning")
            .insert(dest, stamp(&meta));
        Ok(())
    }

    /// Seeds a file serve has served (once per file): the swarm gets back what it gave, and
    /// what came from the mirrors joins it. The canonical torrent is derived from the file
    /// when it is not known yet.
    pub fn seed(&self, server: &Arc<Server>, name: &str, dir: &Path, info: Option<Info>) {
        let path = dir.join(name);
        let Some(swarm_stamp) = std::fs::symlink_metadata(&path).ok().map(|m| stamp(&m)) else {
            return;
        };
        {
            let mut seeded = self.seeded.lock().expect("no poisoning");
            if server.swarm.is_none()
                || seeded
                    .get(name)
                    .is_some_and(|s| s.path == path && s.stamp == swarm_stamp)
            {
                return;
            }
            seeded.insert(
                name.to_owned(),
                Seeded {
                    path: path.clone(),
                    stamp: swarm_stamp,
                    handle: None,
                },
            );
        }
        let (server, name, dir) = (server.clone(), name.to_owned(), dir.to_owned());
        tokio::spawn(async move {
            let Some(swarm) = &server.swarm else { return };
            let info = match info {
                Some(info) => Ok(info),
                None => tokio::task::spawn_blocking(move || Info::from_file(&path))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r),
            };
            let seeded = match info {
                Ok(info) => match swarm.seed(&info, &dir).await {
                    // The torrent was still in the session from the fetch: replace it.
                    Ok(handle) if handle.output_folder() != dir => {
                        swarm.forget(&handle, false).await;
                        swarm.seed(&info, &dir).await
                    }
                    seeded => seeded,
                },
                Err(e) => Err(e.into()),
            };
            let mut all = server.store.seeded.lock().expect("no poisoning");
            match seeded {
                Ok(handle) => {
                    if let Some(entry) = all.get_mut(&name) {
                        entry.handle = Some(handle);
                    }
                }
                Err(e) => {
                    tracing::warn!("{name}: could not seed: {e:#}");
                    all.remove(&name);
                }
            }
        });
    }

    /// Stops seeding files that were deleted or replaced (`paccache -r`, a new download):
    /// the session would otherwise hold them open, and their disk space, for good.
    pub async fn sweep(&self, swarm: &crate::swarm::Swarm) {
        let gone: Vec<Handle> = {
            let mut seeded = self.seeded.lock().expect("no poisoning");
            let names: Vec<String> = seeded
                .iter()
                .filter(|(_, s)| {
                    s.handle.is_some()
                        && std::fs::symlink_metadata(&s.path).ok().map(|m| stamp(&m))
                            != Some(s.stamp)
                })
                .map(|(name, _)| name.clone())
                .collect();
            names
                .iter()
                .filter_map(|name| seeded.remove(name)?.handle)
                .collect()
        };
        for handle in gone {
            swarm.forget(&handle, false).await;
        }
    }

    /// A file about to be fetched again is not in the cache any more: its torrent, if serve
    /// still seeds it, goes (the fetch adds it afresh).
    pub async fn unseed(&self, server: &Server, name: &str) {
        let entry = self.seeded.lock().expect("no poisoning").remove(name);
        if let (
            Some(Seeded {
                handle: Some(handle),
                ..
            }),
            Some(swarm),
        ) = (entry, &server.swarm)
        {
            swarm.forget(&handle, false).await;
        }
    }
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

fn sha256_of(mut file: std::fs::File) -> std::io::Result<[u8; 32]> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().into())
}

fn report(name: &str, took: Took, started: Instant) {
    say(&format!(
        " fetched {name}: {} from peers, {} from mirrors in {:.1} s",
        crate::ui::human(took.peers),
        crate::ui::human(took.mirrors),
        started.elapsed().as_secs_f64()
    ));
}
