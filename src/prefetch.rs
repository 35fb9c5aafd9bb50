//! The prefetch: every file the commit needs is placed in the pacman cache before the commit,
//! so alpm never touches the network. It runs in the download process (`fetcher`): files arrive
//! in its staging directory beside the cache (same filesystem), are verified against the sync
//! database, and are then handed over to the root process, which takes (or copies), verifies
//! and links them into the cache: the cache never holds a partial or unverified file under a
//! package's name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use futures_util::StreamExt;

use crate::fetcher::Handover;
use crate::fetcher::protocol::{Refusal, Staged};
use crate::http::{FetchError, Fetched, Http};
use crate::index::{Entry, Index};
use crate::progress::{DownloadProgress, FileProgress, Source};
use crate::swarm::{Handle, HttpPeers, Swarm, SwarmConfig, Target, peer_url};
use crate::transaction::{PackageFile, SignaturePolicy};
use reqwest::StatusCode;

/// Where prefetched files go and how they are fetched.
pub struct Prefetch {
    /// Every CacheDir: a file in any of them is already there for alpm.
    pub cache_dirs: Vec<PathBuf>,
    /// The download process's staging directory.
    pub staging: PathBuf,
    pub parallel: usize,
    pub http: Http,
    /// For peers' HTTP: no proxy, a short connect timeout.
    pub peer_http: Http,
    /// Peers that answer HTTP for small files, as the run learns them.
    pub http_peers: HttpPeers,
    /// Failures per server this run: like pacman, a server that failed three times is skipped.
    pub server_errors: std::sync::Mutex<HashMap<String, u32>>,
    /// The mirrors' recent speed, against which a slow swarm is judged.
    pub mirror_rate: MirrorRate,
    /// What the swarm delivers for all files together.
    pub swarm_total: SwarmTotal,
    /// Takes verified files into the cache (the root process).
    pub handover: Arc<Handover>,
    pub swarm: SwarmPlan,
}

/// What the swarm needs, if any file turns out to have a torrent: the session starts only then.
pub struct SwarmPlan {
    /// Torrent indexes by repo name.
    pub indexes: HashMap<String, Index>,
    pub config: SwarmConfig,
    /// The session, if it was started with `config` before the prefetch.
    pub started: std::sync::Mutex<Option<Swarm>>,
    /// `Peer =` lines of pactor.conf (`host:port`).
    pub peers: Vec<String>,
    /// No bytes from the swarm for this long: the file goes to the mirrors.
    pub stall: Duration,
    /// Whether the session goes on seeding while the run commits (see
    /// [`PrefetchJob::seed_after`](crate::fetcher::protocol::PrefetchJob::seed_after)).
    pub seed_after: bool,
}

/// pacman's rule: a server with this many errors is not tried again in the same run.
const MAX_SERVER_ERRORS: u32 = 3;

/// What the prefetch did, for the final line and for tests of resumption.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub files: usize,
    pub bytes_from_peers: u64,
    pub bytes_from_mirrors: u64,
}

/// Bytes one file took from each source.
#[derive(Debug, Default, Clone, Copy)]
struct Took {
    peers: u64,
    mirrors: u64,
}

/// Signatures are small; anything larger is not a signature.
const MAX_SIG_LEN: u64 = 64 * 1024;

impl Prefetch {
    /// The staging directory, below pacman's cache like pacman's own `download-*` directories.
    pub fn staging_dir(&self) -> PathBuf {
        self.staging.clone()
    }

    /// Fetches what is missing. The swarm session, if one was needed, is returned still running:
    /// it keeps serving the fetched files to peers while the commit runs.
    pub async fn run(&self, files: &[PackageFile]) -> Result<(Report, Option<Swarm>)> {
        let mut missing: Vec<&PackageFile> =
            files.iter().filter(|f| !self.cached(&f.filename)).collect();
        // Machines that upgrade together (a fleet, a CI farm) fetch the same files. In the
        // same order they would all want the same file from the seedbox at the same time and
        // have nothing to trade; each in its own order, they hold different files early on and
        // serve them to each other.
        rand::seq::SliceRandom::shuffle(&mut missing[..], &mut rand::rng());
        let staging = self.staging_dir();
        if !missing.is_empty() || files.iter().any(|f| self.wants_sig(f)) {
            std::fs::create_dir_all(&staging).with_context(|| {
                format!("could not create staging directory {}", staging.display())
            })?;
        }

        let mut report = Report::default();
        let mut swarm = None;
        if !missing.is_empty() {
            crate::ui::section("Retrieving packages...");
            if missing.iter().any(|f| f.sha256.is_none()) {
                crate::ui::warning(
                    "the sync database has no sha256 for some packages: only their size is checked before the commit",
                );
            }
            if missing.iter().any(|f| self.swarm_entry(f).is_some()) {
                swarm = self.start_swarm(&staging).await;
            }
            if swarm.is_some() && self.swarm.seed_after {
                // What a mirror gives is seeded too: its torrent is the swarm's.
                self.handover.seed_mirror_copies_of(
                    missing
                        .iter()
                        .filter_map(|f| Some((f.filename.clone(), self.swarm_entry(f)?.info_hash))),
                );
            }
            let peers = self.peer_addrs(&missing).await;
            self.http_peers.learn(peers.iter().copied());
            let total: u64 = missing.iter().map(|f| f.size).sum();
            let progress = Arc::new(DownloadProgress::new(missing.len(), total));
            let results: Vec<(String, Result<Took, String>)> = futures_util::stream::iter(&missing)
                .map(|file| {
                    let progress = progress.clone();
                    let staging = &staging;
                    let (swarm, peers) = (swarm.as_ref(), &peers);
                    async move {
                        let took = self.fetch_one(file, staging, &progress, swarm, peers).await;
                        (file.filename.clone(), took)
                    }
                })
                .buffer_unordered(self.parallel.max(1))
                // The download process runs this on a spawned task, which must be Send; unboxed,
                // rustc cannot prove that of the closure's futures (rust-lang/rust#102211).
                .boxed()
                .collect()
                .await;
            let mut failed = Vec::new();
            for (name, result) in results {
                match result {
                    Ok(took) => {
                        report.files += 1;
                        report.bytes_from_peers += took.peers;
                        report.bytes_from_mirrors += took.mirrors;
                    }
                    Err(message) => failed.push((name, message)),
                }
            }
            if let Ok(progress) = Arc::try_unwrap(progress) {
                progress.finish(report.bytes_from_peers, report.bytes_from_mirrors);
            }
            if let Some(signum) = self.http.interrupted() {
                eprintln!(
                    "\ninterrupted: nothing was installed; partial downloads are kept in {} and resumed by the next run",
                    staging.display()
                );
                bail!(crate::ExitQuietly(128 + signum as u8));
            }
            if !failed.is_empty() {
                for (name, message) in &failed {
                    crate::ui::error(&format!(
                        "failed retrieving file '{name}' from all mirrors: {message}"
                    ));
                }
                bail!("failed to retrieve some files");
            }
        }

        for file in files.iter().filter(|f| self.wants_sig(f)) {
            self.place_signature(file, &staging).await?;
        }
        Ok((report, swarm))
    }

    /// The index entry for a file, if it agrees with the database on name, size and sha256.
    fn swarm_entry(&self, file: &PackageFile) -> Option<&Entry> {
        crate::indexes::entry_for(&self.swarm.indexes, file)
    }

    /// The session started during the planning, or one started now with the same settings;
    /// either way its torrents announce to the indexes' trackers after the configured ones.
    async fn start_swarm(&self, staging: &Path) -> Option<Swarm> {
        let started = self.swarm.started.lock().expect("no poisoning").take();
        let swarm = match started {
            Some(swarm) => swarm,
            None => match Swarm::start(&self.swarm.config, staging).await {
                Ok(swarm) => swarm,
                Err(e) => {
                    crate::ui::warning(&format!("{e:#}; using the mirrors only"));
                    return None;
                }
            },
        };
        for (repo, index) in &self.swarm.indexes {
            swarm.set_published_trackers(repo, &index.trackers);
        }
        Some(swarm)
    }

    /// `Peer =` lines and the peer hints of the indexes involved, resolved.
    async fn peer_addrs(&self, missing: &[&PackageFile]) -> Vec<SocketAddr> {
        let mut names: Vec<&String> = self.swarm.peers.iter().collect();
        for file in missing {
            if let Some(index) = self.swarm.indexes.get(&file.repo) {
                names.extend(index.peers.iter());
            }
        }
        names.sort();
        names.dedup();
        let mut addrs = Vec::new();
        for name in names {
            match tokio::net::lookup_host(name.as_str()).await {
                Ok(found) => addrs.extend(found),
                Err(e) => crate::ui::warning(&format!("peer {name}: {e}")),
            }
        }
        addrs
    }

    /// One file: from the swarm when the index has it, from the mirrors otherwise. A swarm
    /// that stalls, fails or runs far slower than the mirrors is joined by the mirrors: both
    /// fetch at once, each into its own staging file, and the first verified copy wins.
    async fn fetch_one(
        &self,
        file: &PackageFile,
        staging: &Path,
        progress: &DownloadProgress,
        swarm: Option<&Swarm>,
        peers: &[SocketAddr],
    ) -> Result<Took, String> {
        let bar = progress.start(&file.filename, file.size);
        let result = match (swarm, self.swarm_entry(file)) {
            (Some(swarm), Some(entry)) => {
                match self.ask_peers_http(file, staging, &bar, progress).await {
                    Some(result) => result,
                    None => {
                        self.swarm_first(swarm, file, entry, staging, &bar, progress, peers)
                            .await
                    }
                }
            }
            _ => self.fetch_from_mirrors(file, staging, &bar, progress).await,
        };
        result.map(|()| Took {
            peers: bar.received(Source::Peers),
            mirrors: bar.received(Source::Mirror),
        })
    }

    /// A small file from a peer that answers HTTP ([`HttpPeers`]): one request on a kept-alive
    /// connection instead of a torrent. The copy is judged like a mirror's, by the root process
    /// against the database. `None`: no peer had it (yet), and its torrent follows.
    async fn ask_peers_http(
        &self,
        file: &PackageFile,
        staging: &Path,
        bar: &FileProgress,
        progress: &DownloadProgress,
    ) -> Option<Result<(), String>> {
        let part = part_path(staging, file);
        for addr in self.http_peers.to_ask(file.size) {
            // A peer's copy is never resumed: what a partial file holds came from elsewhere.
            let _ = std::fs::remove_file(&part);
            let url = peer_url(addr, &file.filename);
            let received = std::sync::atomic::AtomicU64::new(0);
            let advance = |n: u64| {
                received.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                bar.advance(Source::Peers, n);
            };
            bar.set_active(Source::Peers, true);
            // A peer's HTTP is the quick way or none: one that takes longer than the stall
            // timeout (a capped upload) leaves the file to its torrent, which races the mirrors.
            let fetch = self.fetch_copy(&self.peer_http, &url, &part, file, &advance, 0);
            let fetched = tokio::time::timeout(self.swarm.stall, fetch)
                .await
                .unwrap_or(Err(FetchError::Idle(self.swarm.stall)));
            bar.set_active(Source::Peers, false);
            // A peer that does not have the file (yet), or is at its upload limit, is asked
            // again for the next one; one that does not speak this HTTP or sent a bad copy is not.
            let keep_asking = match fetched {
                Ok((_, Ok(()))) => return Some(Ok(())),
                Ok((_, Err(Refusal::Failed(why)))) => return Some(Err(why)),
                Err(FetchError::Interrupted) => return Some(Err("interrupted".into())),
                Ok((_, Err(Refusal::Mismatch(why)))) => {
                    progress.warn(&format!("{} from peer {addr} {why}", file.filename));
                    false
                }
                Err(FetchError::Status(
                    StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE,
                )) => true,
                Err(e) => {
                    tracing::debug!("{} from peer {addr} over HTTP: {e}", file.filename);
                    false
                }
            };
            bar.rewind(Source::Peers, received.into_inner());
            let _ = std::fs::remove_file(&part);
            if !keep_asking {
                self.http_peers.drop_peer(addr);
            }
        }
        None
    }

    async fn fetch_from_mirrors(
        &self,
        file: &PackageFile,
        staging: &Path,
        bar: &FileProgress,
        progress: &DownloadProgress,
    ) -> Result<(), String> {
        bar.set_active(Source::Mirror, true);
        let result = self.try_servers(file, staging, bar, progress).await;
        bar.set_active(Source::Mirror, false);
        result
    }

    /// The swarm alone while it does well; then, if it stalls or runs far slower than the
    /// mirrors, the swarm and the mirrors racing.
    #[allow(clippy::too_many_arguments)]
    async fn swarm_first(
        &self,
        swarm: &Swarm,
        file: &PackageFile,
        entry: &Entry,
        staging: &Path,
        bar: &FileProgress,
        progress: &DownloadProgress,
        peers: &[SocketAddr],
    ) -> Result<(), String> {
        let dir = staging.join("swarm");
        bar.set_active(Source::Peers, true);
        // The torrent's metadata comes from the peers; a busy peer may take a while to answer,
        // so asking goes on (within reason) after the stall timeout, with the mirrors racing.
        let patience = (self.swarm.stall * 6).max(Duration::from_secs(30));
        let target = Target {
            name: &file.filename,
            size: file.size,
            info_hash: entry.info_hash,
            info: entry.info(&file.filename),
        };
        let leech = swarm.leech(&target, &dir, peers, patience);
        tokio::pin!(leech);
        let leeched = tokio::select! {
            handle = &mut leech => Some(handle.map_err(|e| format!("{e:#}"))),
            _ = tokio::time::sleep(self.swarm.stall) => None,
            _ = self.http.interrupt().wait() => Some(Err("interrupted".into())),
        };
        let handle = match leeched {
            Some(Ok(handle)) => handle,
            Some(Err(why)) => {
                bar.set_active(Source::Peers, false);
                return self.swarm_gave_up(file, &why, staging, bar, progress).await;
            }
            None => {
                progress.warn(&format!(
                    "{} from peers: no metadata within {:?}; the mirrors join in",
                    file.filename, self.swarm.stall
                ));
                let added = std::sync::Mutex::new(None);
                let from_swarm = async {
                    let handle = leech.await.map_err(|e| format!("{e:#}"))?;
                    *added.lock().expect("no poisoning") = Some(handle.clone());
                    let mut watch = SwarmWatch::new(handle, file.size, self.swarm.stall);
                    self.swarm_to_the_end(swarm, &mut watch, file, bar).await
                };
                let raced = self.race(from_swarm, file, staging, bar, progress).await;
                if raced != Ok(Source::Peers)
                    && let Some(handle) = added.into_inner().expect("no poisoning")
                {
                    swarm.forget(&handle, true).await;
                }
                return raced.map(|_| ());
            }
        };
        let mut watch = SwarmWatch::new(handle.clone(), file.size, self.swarm.stall);
        let why = match watch
            .follow(
                bar,
                self.http.interrupt(),
                &self.swarm_total,
                Some(&self.mirror_rate),
            )
            .await
        {
            Ok(()) => match self.verify_swarm_copy(swarm, &handle, file, bar).await {
                Ok(()) => {
                    bar.set_active(Source::Peers, false);
                    return Ok(());
                }
                Err(why) => why,
            },
            Err(SwarmEnd::Failed(why)) => why,
            Err(SwarmEnd::Help(why)) => {
                progress.warn(&format!(
                    "{} from peers: {why}; the mirrors join in",
                    file.filename
                ));
                let from_swarm = self.swarm_to_the_end(swarm, &mut watch, file, bar);
                let raced = self.race(from_swarm, file, staging, bar, progress).await;
                if raced != Ok(Source::Peers) {
                    swarm.forget(&handle, true).await;
                }
                return raced.map(|_| ());
            }
        };
        bar.set_active(Source::Peers, false);
        swarm.forget(&handle, true).await;
        self.swarm_gave_up(file, &why, staging, bar, progress).await
    }

    async fn swarm_gave_up(
        &self,
        file: &PackageFile,
        why: &str,
        staging: &Path,
        bar: &FileProgress,
        progress: &DownloadProgress,
    ) -> Result<(), String> {
        if self.http.interrupted().is_some() {
            return Err(why.to_owned());
        }
        progress.warn(&format!(
            "{} from peers: {why}; using the mirrors",
            file.filename
        ));
        self.fetch_from_mirrors(file, staging, bar, progress).await
    }

    /// Follows a torrent, racing the mirrors, to a verified copy in the cache or a failure.
    async fn swarm_to_the_end(
        &self,
        swarm: &Swarm,
        watch: &mut SwarmWatch,
        file: &PackageFile,
        bar: &FileProgress,
    ) -> Result<(), String> {
        let result = match watch
            .follow(bar, self.http.interrupt(), &self.swarm_total, None)
            .await
        {
            Ok(()) => {
                self.verify_swarm_copy(swarm, &watch.handle, file, bar)
                    .await
            }
            Err(SwarmEnd::Failed(why) | SwarmEnd::Help(why)) => Err(why),
        };
        bar.set_active(Source::Peers, false);
        result
    }

    /// The swarm (still running) and the mirrors fetch the same file; the first verified copy
    /// is moved into the cache and the other transfer is dropped. Returns the winner.
    async fn race(
        &self,
        from_swarm: impl std::future::Future<Output = Result<(), String>>,
        file: &PackageFile,
        staging: &Path,
        bar: &FileProgress,
        progress: &DownloadProgress,
    ) -> Result<Source, String> {
        let from_mirrors = self.fetch_from_mirrors(file, staging, bar, progress);
        tokio::pin!(from_swarm, from_mirrors);
        let (mut swarm_error, mut mirror_error) = (None, None);
        loop {
            tokio::select! {
                result = &mut from_swarm, if swarm_error.is_none() => match result {
                    Ok(()) => {
                        // The mirrors' partial copy is of no further use.
                        let _ = std::fs::remove_file(part_path(staging, file));
                        return Ok(Source::Peers);
                    }
                    Err(why) => swarm_error = Some(why),
                },
                result = &mut from_mirrors, if mirror_error.is_none() => match result {
                    Ok(()) => return Ok(Source::Mirror),
                    Err(why) => mirror_error = Some(why),
                },
            }
            if let (Some(_), Some(why)) = (&swarm_error, &mirror_error) {
                return Err(why.clone());
            }
        }
    }

    /// Seals a completed swarm copy and hands it to the root process, which checks it against
    /// the database and places it in the cache. The torrent stays in the session, so the file
    /// goes on being served to other peers, read-only.
    async fn verify_swarm_copy(
        &self,
        swarm: &Swarm,
        handle: &Handle,
        file: &PackageFile,
        bar: &FileProgress,
    ) -> Result<(), String> {
        // Sealed, the file can be taken into the cache rather than copied; unsealed, the root
        // process copies it (it proves that nothing can write it before taking it).
        if let Err(e) = swarm.seal(handle) {
            tracing::debug!("{}: not sealed: {e:#}", file.filename);
        }
        // The root process hashes the copy it takes and judges it against the database: a
        // second sha256 pass here would only repeat its verdict.
        self.handover
            .place(file, Staged::Swarm)
            .await
            .map_err(|refusal| refusal.to_string())
            .inspect_err(|_| bar.rewind(Source::Peers, file.size))?;
        // Those that served it may serve the next small files over HTTP, and so may this run.
        self.http_peers.learn(swarm.peers_that_sent(handle));
        let path = Staged::Swarm.path(&self.staging, &file.filename);
        swarm.shelve(&file.filename, path, file.size);
        Ok(())
    }

    fn server_errors(&self, server: &str) -> u32 {
        self.server_errors
            .lock()
            .expect("no poisoning")
            .get(server)
            .copied()
            .unwrap_or(0)
    }

    fn count_error(&self, server: &str) {
        *self
            .server_errors
            .lock()
            .expect("no poisoning")
            .entry(server.to_owned())
            .or_default() += 1;
    }

    fn cached(&self, filename: &str) -> bool {
        self.cache_dirs
            .iter()
            .any(|dir| dir.join(filename).is_file())
    }

    fn wants_sig(&self, file: &PackageFile) -> bool {
        file.signature != SignaturePolicy::NotChecked
            && !self.cached(&format!("{}.sig", file.filename))
    }

    /// Fetches one package from its servers in order until a copy matches the database.
    /// The error says why the last server failed.
    async fn try_servers(
        &self,
        file: &PackageFile,
        staging: &Path,
        bar: &FileProgress,
        progress: &DownloadProgress,
    ) -> Result<(), String> {
        let part = part_path(staging, file);
        let advance = |n: u64| bar.advance(Source::Mirror, n);
        let mut last_error = String::from("no servers configured for repository");
        for server in &file.servers {
            if self.server_errors(server) >= MAX_SERVER_ERRORS {
                continue;
            }
            let url = format!("{}/{}", server.trim_end_matches('/'), file.filename);
            // A copy that failed verification after a resume may owe its bad bytes to an
            // earlier mirror: retry the same mirror once from scratch.
            for from_scratch in [false, true] {
                let resumed_from = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                if from_scratch && resumed_from == 0 {
                    break;
                }
                if from_scratch {
                    let _ = std::fs::remove_file(&part);
                }
                let started = Instant::now();
                let fetched = self
                    .fetch_copy(&self.http, &url, &part, file, &advance, resumed_from)
                    .await;
                match fetched {
                    Ok((fetched, placed)) => {
                        self.mirror_rate
                            .record(fetched.transferred, started.elapsed());
                        match placed {
                            Ok(()) => return Ok(()),
                            Err(Refusal::Mismatch(why)) => {
                                bar.rewind(Source::Mirror, fetched.len);
                                progress.warn(&format!(
                                    "{} from {} {why}",
                                    file.filename,
                                    host(server)
                                ));
                                last_error = why;
                                if resumed_from == 0 {
                                    break;
                                }
                            }
                            Err(Refusal::Failed(why)) => return Err(why),
                        }
                    }
                    Err(FetchError::Interrupted) => return Err("interrupted".into()),
                    Err(e) => {
                        if matches!(e, FetchError::TooLong(_)) {
                            bar.rewind(Source::Mirror, file.size);
                        }
                        progress.warn(&format!(
                            "failed retrieving file '{}' from {} : {e}",
                            file.filename,
                            host(server)
                        ));
                        self.count_error(server);
                        last_error = e.to_string();
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }

    /// One transfer of `file` from `url` (a mirror's or a peer's), `resumed_from` bytes of it
    /// already in `part`. A small file with nothing to resume comes whole over the pipe, with
    /// no staging file to create and remove, unless a copy is kept to seed.
    async fn fetch_copy(
        &self,
        http: &Http,
        url: &str,
        part: &Path,
        file: &PackageFile,
        advance: &(dyn Fn(u64) + Send + Sync),
        resumed_from: u64,
    ) -> Result<(Fetched, Result<(), Refusal>), FetchError> {
        if resumed_from == 0 && self.handover.takes_inline(&file.filename, file.size) {
            self.fetch_inline(http, url, file, advance).await
        } else {
            self.fetch_staged(http, url, part, file, advance).await
        }
    }

    /// One transfer into the staging directory, offered to the root process, which
    /// hashes its copy of the file (while the bytes arrive), or the file itself once taken,
    /// and judges it against the database; the size is checked here.
    async fn fetch_staged(
        &self,
        http: &Http,
        url: &str,
        part: &Path,
        file: &PackageFile,
        advance: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(Fetched, Result<(), Refusal>), FetchError> {
        let fetched = http.fetch(url, part, Some(file.size), advance).await?;
        let placed = if fetched.len == file.size {
            self.handover.place(file, Staged::Mirror).await
        } else {
            let _ = std::fs::remove_file(part);
            Err(Refusal::size_mismatch(fetched.len, file.size))
        };
        Ok((fetched, placed))
    }

    /// One transfer into memory, sent whole to the root process to judge and place.
    async fn fetch_inline(
        &self,
        http: &Http,
        url: &str,
        file: &PackageFile,
        advance: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(Fetched, Result<(), Refusal>), FetchError> {
        let bytes = http.fetch_to_memory(url, file.size, advance).await?;
        let len = bytes.len() as u64;
        let fetched = Fetched {
            len,
            transferred: len,
        };
        let placed = if len == file.size {
            self.handover.place_inline(file, bytes).await
        } else {
            Err(Refusal::size_mismatch(len, file.size))
        };
        Ok((fetched, placed))
    }

    /// Places `<file>.sig` in the cache: from the database when it carries the signature (no
    /// network), else from the mirrors. The signature itself is checked by alpm at commit.
    async fn place_signature(&self, file: &PackageFile, staging: &Path) -> Result<()> {
        let sig_name = format!("{}.sig", file.filename);
        let part = staging.join(format!("{sig_name}.part"));
        let _ = std::fs::remove_file(&part);
        if let Some(b64) = &file.base64_sig {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .with_context(|| {
                    format!(
                        "the database's signature for {} is not base64",
                        file.filename
                    )
                })?;
            std::fs::write(&part, bytes)?;
            return self
                .handover
                .place(file, Staged::Signature)
                .await
                .map_err(|why| anyhow::anyhow!("{sig_name}: {why}"));
        }
        let mut last_error = String::from("no servers");
        for server in &file.servers {
            let url = format!("{}/{sig_name}", server.trim_end_matches('/'));
            match self.http.fetch(&url, &part, None, &|_| {}).await {
                Ok(fetched) if fetched.len > 0 && fetched.len <= MAX_SIG_LEN => {
                    return self
                        .handover
                        .place(file, Staged::Signature)
                        .await
                        .map_err(|why| anyhow::anyhow!("{sig_name}: {why}"));
                }
                Ok(fetched) => last_error = format!("implausible signature size {}", fetched.len),
                Err(e) => last_error = e.to_string(),
            }
            let _ = std::fs::remove_file(&part);
        }
        if file.signature == SignaturePolicy::Required {
            bail!("failed retrieving file '{sig_name}' from all mirrors: {last_error}");
        }
        Ok(())
    }
}

/// The mirrors' staging file for a package.
fn part_path(staging: &Path, file: &PackageFile) -> PathBuf {
    staging.join(format!("{}.part", file.filename))
}

/// How fast the mirrors delivered this run, to judge whether a swarm is "far slower".
#[derive(Default)]
pub struct MirrorRate(std::sync::Mutex<Option<f64>>);

impl MirrorRate {
    /// Transfers this small say more about latency than about bandwidth.
    const MIN_SAMPLE: u64 = 1 << 20;
    /// With no measurement yet, a swarm is "far slower" below this (bytes per second).
    const UNKNOWN_FLOOR: f64 = 64.0 * 1024.0;
    /// A swarm this many times slower than the mirrors is joined by them.
    const FAR_SLOWER: f64 = 4.0;

    fn record(&self, bytes: u64, took: Duration) {
        if bytes < Self::MIN_SAMPLE {
            return;
        }
        let rate = bytes as f64 / took.as_secs_f64().max(1e-3);
        let mut known = self.0.lock().expect("no poisoning");
        // A moving average: recent transfers weigh most.
        *known = Some(known.map_or(rate, |old| 0.7 * old + 0.3 * rate));
    }

    /// Whether a swarm delivering `rate` bytes per second is far slower than the mirrors.
    fn far_faster_than(&self, rate: f64) -> bool {
        match *self.0.lock().expect("no poisoning") {
            Some(mirrors) => rate * Self::FAR_SLOWER < mirrors,
            None => rate < Self::UNKNOWN_FLOOR,
        }
    }
}

/// Bytes received from the swarm for all files of the run, and the rate of late.
#[derive(Default)]
pub struct SwarmTotal {
    bytes: std::sync::atomic::AtomicU64,
    samples: std::sync::Mutex<std::collections::VecDeque<(Instant, u64)>>,
}

impl SwarmTotal {
    /// Samples older than this are of no use to any rate asked for.
    const KEEP: Duration = Duration::from_secs(60);

    fn add(&self, bytes: u64) {
        let total = self
            .bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed)
            + bytes;
        let now = Instant::now();
        let mut samples = self.samples.lock().expect("no poisoning");
        samples.push_back((now, total));
        while samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Self::KEEP)
        {
            samples.pop_front();
        }
    }

    /// Bytes per second over the last `window`.
    fn rate(&self, window: Duration) -> f64 {
        let now = Instant::now();
        let total = self.bytes.load(std::sync::atomic::Ordering::Relaxed);
        let samples = self.samples.lock().expect("no poisoning");
        // The total as it was when the window opened: the last sample before it.
        let before = samples
            .iter()
            .take_while(|(t, _)| now.duration_since(*t) > window)
            .last()
            .map_or(0, |(_, bytes)| *bytes);
        (total - before) as f64 / window.as_secs_f64()
    }
}

/// Why the swarm stopped being followed.
enum SwarmEnd {
    /// It stalled or runs far slower than the mirrors: they should join in.
    Help(String),
    /// It cannot deliver the file (an error, an interrupt, a bad copy).
    Failed(String),
}

/// Follows one torrent's progress onto the file's bar, judging its speed.
struct SwarmWatch {
    handle: Handle,
    size: u64,
    stall: Duration,
    /// Verified bytes, as shown on the bar.
    verified: u64,
    /// Bytes received at all: the swarm's liveness and speed (a large piece is verified only
    /// once complete, long after its first bytes arrived).
    fetched: u64,
    started: Instant,
    last_data: Instant,
    /// (time, bytes fetched) over the last stall timeout, for the current rate.
    window: std::collections::VecDeque<(Instant, u64)>,
}

impl SwarmWatch {
    fn new(handle: Handle, size: u64, stall: Duration) -> SwarmWatch {
        let now = Instant::now();
        SwarmWatch {
            handle,
            size,
            stall,
            verified: 0,
            fetched: 0,
            started: now,
            last_data: now,
            window: std::collections::VecDeque::new(),
        }
    }

    /// The span the current rate is averaged over: the stall timeout, so a dip shorter than
    /// the stall timeout (a seeder gone, its pieces requeued) does not call the mirrors.
    fn window_len(&self) -> Duration {
        self.stall.max(Duration::from_secs(2))
    }

    /// Follows until the torrent completes. With `mirrors` (while the swarm is alone), also
    /// ends when the swarm needs help: nothing for the stall timeout, or, once it had that long
    /// to warm up, a rate far below the mirrors' with more than the stall timeout still to go.
    async fn follow(
        &mut self,
        bar: &FileProgress,
        interrupt: &crate::interrupt::Interrupt,
        total: &SwarmTotal,
        mirrors: Option<&MirrorRate>,
    ) -> Result<(), SwarmEnd> {
        // Completion wakes the loop at once (a 50 KB file takes a few milliseconds: waiting
        // for the next poll would double it); the poll still runs, as librqbit can miss a
        // wake-up, and is what sees progress, stalls and errors.
        let handle = self.handle.clone();
        let completed = handle.wait_until_completed();
        tokio::pin!(completed);
        let mut completion_seen = false;
        loop {
            let stats = self.handle.stats();
            let now = Instant::now();
            // While a torrent initializes, librqbit reports the bytes its initial check has
            // read as progress (the whole file, for a file that does not exist yet): only a
            // live torrent's progress is bytes received and verified.
            let verified = match stats.state {
                librqbit::TorrentStatsState::Live => stats.progress_bytes,
                _ => 0,
            };
            if verified > self.verified {
                bar.advance(Source::Peers, verified - self.verified);
                self.verified = verified;
                let prefix = self.handle.verified_prefix_bytes();
                bar.set_swarm_prefix(prefix);
            }
            let fetched = stats
                .live
                .as_ref()
                .map_or(0, |live| live.snapshot.fetched_bytes)
                .max(self.verified);
            tracing::trace!(
                "{}: {verified} verified, {fetched} received, {}",
                self.handle.name().unwrap_or_default(),
                stats.state
            );
            if fetched > self.fetched {
                total.add(fetched - self.fetched);
                self.fetched = fetched;
                self.last_data = now;
            }
            self.window.push_back((now, self.fetched));
            while self
                .window
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > self.window_len())
            {
                self.window.pop_front();
            }
            if stats.finished {
                return Ok(());
            }
            if let Some(error) = stats.error {
                bar.rewind(Source::Peers, self.verified);
                return Err(SwarmEnd::Failed(error));
            }
            if self.last_data.elapsed() > self.stall {
                let why = format!("no data from the swarm for {:?}", self.stall);
                return Err(match mirrors {
                    Some(_) => SwarmEnd::Help(why),
                    None => SwarmEnd::Failed(why),
                });
            }
            if let Some(mirrors) = mirrors
                && let Some(rate) = self.slow_rate(mirrors, total)
            {
                return Err(SwarmEnd::Help(format!(
                    "only {}/s from the swarm",
                    crate::ui::human(rate as u64)
                )));
            }
            tokio::select! {
                _ = &mut completed, if !completion_seen => completion_seen = true,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = interrupt.wait() => {
                    bar.rewind(Source::Peers, self.verified);
                    return Err(SwarmEnd::Failed("interrupted".into()));
                }
            }
        }
    }

    /// The current rate, if it is far below the mirrors' and the file is far from done.
    fn slow_rate(&self, mirrors: &MirrorRate, total: &SwarmTotal) -> Option<f64> {
        if self.started.elapsed() < self.window_len() {
            return None;
        }
        let (first, last) = (self.window.front()?, self.window.back()?);
        let span = last.0.duration_since(first.0).as_secs_f64();
        if span < self.window_len().as_secs_f64() * 0.9 {
            return None;
        }
        let rate = (last.1 - first.1) as f64 / span;
        let left = self.size.saturating_sub(self.verified) as f64;
        // One file may crawl while the swarm as a whole is busy (many files at once, as in a
        // fleet): the mirrors join in only if the swarm as a whole is far slower too.
        let slow = mirrors.far_faster_than(rate)
            && mirrors.far_faster_than(total.rate(self.window_len()))
            && left > rate * self.stall.as_secs_f64();
        slow.then_some(rate)
    }
}

/// The server's host for messages, as pacman names mirrors.
fn host(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swarm_is_far_slower_against_what_the_mirrors_gave() {
        let mirrors = MirrorRate::default();
        // Nothing measured: only a trickle counts as far slower.
        assert!(mirrors.far_faster_than(10_000.0));
        assert!(!mirrors.far_faster_than(200_000.0));
        // Small transfers measure latency, not bandwidth: ignored.
        mirrors.record(1000, Duration::from_secs(1));
        assert!(!mirrors.far_faster_than(200_000.0));
        // 10 MB/s from the mirrors: 2 MB/s from the swarm is far slower, 3 MB/s is not.
        mirrors.record(10_000_000, Duration::from_secs(1));
        assert!(mirrors.far_faster_than(2_000_000.0));
        assert!(!mirrors.far_faster_than(3_000_000.0));
    }

    #[test]
    fn the_swarm_total_rate_counts_what_arrived_within_the_window() {
        let total = SwarmTotal::default();
        assert_eq!(total.rate(Duration::from_secs(2)), 0.0);
        total.add(1_000_000);
        total.add(1_000_000);
        assert_eq!(total.rate(Duration::from_secs(2)), 1_000_000.0);
        std::thread::sleep(Duration::from_millis(60));
        // Older than a 50 ms window: not counted.
        assert_eq!(total.rate(Duration::from_millis(50)), 0.0);
    }

    #[test]
    fn hosts_for_messages() {
        assert_eq!(
            host("https://mirror.example/core/os/x86_64"),
            "mirror.example"
        );
        assert_eq!(host("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
    }
}
