//! One fetch of one package file: the swarm and the mirrors racing to fill an [`Assembly`].
//!
//! The swarm goes first when the repo's index names the file's torrent. If it delivers no
//! verified piece for the stall timeout (at most 5 s: pacman gives up on a server that sends it
//! nothing for 10 s), the mirrors join in from the first missing byte, and the two race: every
//! piece is taken from whichever has it first, a mirror that falls behind the swarm is dropped,
//! a swarm that stalls is re-added (so a seeder that appears later is still found). Mirror
//! bytes are checked piece by piece against the torrent when its info is known (from the
//! swarm, or `<file>.torrent` beside the file upstream, checked against the index's infohash);
//! without it they are held until the whole file passes the database's sha256.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::Server;
use super::assembly::Assembly;
use super::catalog::{DbEntry, host};
use super::store::{Failure, Progress};
use crate::swarm::{Handle, Target};
use crate::torrent::{Info, InfoHash, parse_torrent_file};

/// What a job needs to know about its file.
pub struct Plan {
    pub name: String,
    pub entry: DbEntry,
    /// Upstream base URLs, in order.
    pub servers: Vec<String>,
    /// The canonical infohash, when the index lists the file and agrees with the database.
    pub torrent: Option<InfoHash>,
    /// The canonical torrent itself, when the index carries its pieces (small files): mirror
    /// bytes are checked piece by piece from the start, and peers need not supply metadata.
    pub info: Option<Info>,
    /// `host:port` of peers to try: pactor.conf's `Peer =` lines and the index's hints.
    pub peers: Vec<String>,
    /// The database's Last-Modified, given to the file.
    pub modified: SystemTime,
}

/// Bytes taken from each source.
#[derive(Debug, Default, Clone, Copy)]
pub struct Took {
    pub peers: u64,
    pub mirrors: u64,
}

/// pacman's rule, per file here: a server that failed this often is not asked again.
const MAX_SERVER_ERRORS: u32 = 3;
/// pacman aborts a transfer that received nothing for 10 s; serve moves to the mirrors well
/// before, whatever StallTimeout says.
const MAX_STALL: Duration = Duration::from_secs(5);
const MAX_TORRENT_FILE: usize = 256 * 1024;

/// Runs the fetch to the end: the assembly, verified whole, or why not.
pub async fn run(
    server: Arc<Server>,
    plan: Plan,
    assembly: Assembly,
    tx: watch::Sender<Progress>,
) -> Result<(Assembly, Took), Failure> {
    let mut assembly = assembly;
    if let Some(info) = plan.info.clone()
        && assembly.info().is_none()
    {
        // Built from the index's pieces and checked against its infohash: it cannot disagree
        // with the file's size or name unless the index does, and then it is not used.
        let _ = assembly.adopt(info);
    }
    let stall = server.settings.stall_timeout.min(MAX_STALL);
    let torrent = plan
        .torrent
        .filter(|hash| server.swarm.is_some() && !server.store.torrent_is_bad(hash));
    let peers = resolve(&plan.peers).await;
    let servers = plan
        .servers
        .iter()
        .map(|_| ServerState::default())
        .collect();
    let mut job = Driver {
        leech: match torrent {
            Some(_) => Leech::Waiting {
                until: Instant::now(),
            },
            None => Leech::Off,
        },
        torrent,
        server,
        plan,
        asm: assembly,
        tx,
        stall,
        peers,
        last_progress: Instant::now(),
        took: Took::default(),
        mirror: None,
        servers,
        torrent_file: TorrentFile::NotTried,
        last_error: None,
    };
    let result = job.run().await;
    job.cleanup().await;
    result.map(|took| (job.asm, took))
}

struct Driver {
    server: Arc<Server>,
    plan: Plan,
    torrent: Option<InfoHash>,
    asm: Assembly,
    tx: watch::Sender<Progress>,
    stall: Duration,
    peers: Vec<SocketAddr>,
    /// The last time the assembly grew.
    last_progress: Instant,
    took: Took,
    leech: Leech,
    mirror: Option<Mirror>,
    servers: Vec<ServerState>,
    torrent_file: TorrentFile,
    last_error: Option<String>,
}

/// The swarm side.
enum Leech {
    /// No torrent, or it turned out wrong.
    Off,
    /// Not in the session; added again at `until`.
    Waiting {
        until: Instant,
    },
    /// Being added (the metadata comes from peers).
    Adding(JoinHandle<anyhow::Result<Handle>>),
    Live(Live),
}

struct Live {
    handle: Handle,
    path: PathBuf,
    /// The engine's count of verified bytes when last looked at, and when it last changed.
    seen: u64,
    changed: Instant,
    /// When a piece was last taken from it.
    took: Instant,
    /// (seen, assembly length) at the last attempt to take pieces: nothing new, no attempt.
    tried: (u64, u64),
}

/// One mirror connection, read by its own task; dropping it closes the connection.
struct Mirror {
    server: usize,
    events: mpsc::Receiver<MirrorEvent>,
    feed: Feed,
    task: JoinHandle<()>,
}

/// Where a mirror's body stands.
#[derive(Debug, Default)]
struct Feed {
    /// The offset of the next byte the mirror will send.
    pos: u64,
    /// Bytes received and not used yet: those just before `pos`.
    buf: Vec<u8>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum MirrorEvent {
    /// The body starts at this offset (0 when the server ignored the range).
    Start(u64),
    Chunk(Bytes),
    End,
    Failed {
        why: String,
        not_found: bool,
    },
}

#[derive(Default)]
struct ServerState {
    errors: u32,
    /// It answered 404, or its bytes contradicted the torrent or the database.
    done: bool,
    not_found: bool,
}

enum TorrentFile {
    NotTried,
    Fetching(JoinHandle<Option<Info>>, Instant),
    Tried,
}

impl Driver {
    async fn run(&mut self) -> Result<Took, Failure> {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let interrupt = self.server.http.interrupt().clone();
        loop {
            if self.asm.is_full() {
                match self.asm.finish() {
                    Ok(()) => return Ok(self.took),
                    Err(why) => self.contradicted(why)?,
                }
            }
            self.poll_leech().await;
            self.take_from_swarm().await;
            self.manage_mirror().await;
            self.publish();
            if let Some(failure) = self.give_up() {
                return Err(failure);
            }
            tokio::select! {
                event = next_event(&mut self.mirror) => self.on_mirror(event),
                _ = tick.tick() => {}
                _ = interrupt.wait() => return Err(Failure::Failed("interrupted".into())),
            }
            self.publish();
        }
    }

    fn publish(&self) {
        let available = self.asm.available();
        self.tx.send_if_modified(|progress| {
            let changed = *progress != Progress::Running(available);
            *progress = Progress::Running(available);
            changed
        });
    }

    fn grew(&mut self) {
        self.last_progress = Instant::now();
    }

    /// The whole file failed the database's sha256. With the torrent's pieces all passing,
    /// the torrent is not this file's: it is not used again and the fetch fails (its readers
    /// got every byte but the last, so no client holds the wrong file under its name). Without
    /// the torrent, the mirror that sent it is wrong: start over with the next one.
    fn contradicted(&mut self, why: String) -> Result<(), Failure> {
        if self.asm.info().is_some() {
            if let Some(hash) = self.torrent {
                self.server.store.mark_torrent_bad(hash);
            }
            return Err(Failure::Failed(format!(
                "{why}; its torrent is not used again"
            )));
        }
        if let Some(mirror) = self.mirror.take() {
            self.servers[mirror.server].done = true;
        } else if let Some(state) = self.servers.iter_mut().find(|s| !s.done) {
            state.done = true;
        }
        self.last_error = Some(why);
        self.asm
            .rewind(0)
            .map_err(|e| Failure::Failed(e.to_string()))?;
        Ok(())
    }

    fn give_up(&self) -> Option<Failure> {
        let mirrors_left = self
            .servers
            .iter()
            .any(|s| !s.done && s.errors < MAX_SERVER_ERRORS);
        if mirrors_left || self.mirror.is_some() {
            return None;
        }
        let swarm_hope =
            !matches!(self.leech, Leech::Off) && self.last_progress.elapsed() < 3 * self.stall;
        if swarm_hope {
            return None;
        }
        if self.asm.len() == 0 && self.servers.iter().all(|s| s.not_found) {
            return Some(Failure::NotFound);
        }
        Some(Failure::Failed(self.last_error.clone().unwrap_or_else(
            || "no peer and no mirror delivered it".to_string(),
        )))
    }

    async fn poll_leech(&mut self) {
        let now = Instant::now();
        match &mut self.leech {
            Leech::Waiting { until } if now >= *until => {
                let (server, name, size, hash, info) = (
                    self.server.clone(),
                    self.plan.name.clone(),
                    self.plan.entry.size,
                    self.torrent.expect("a leech has a torrent"),
                    self.plan.info.clone(),
                );
                let (dir, peers, stall) = (
                    self.server.store.staging.join("swarm"),
                    self.peers.clone(),
                    self.stall,
                );
                self.leech = Leech::Adding(tokio::spawn(async move {
                    let swarm = server.swarm.as_ref().expect("a leech has a swarm");
                    let target = Target {
                        name: &name,
                        size,
                        info_hash: hash,
                        info,
                    };
                    swarm.leech(&target, &dir, &peers, stall).await
                }));
            }
            Leech::Adding(task) if task.is_finished() => {
                let added = match task.await {
                    Ok(added) => added,
                    Err(e) => Err(e.into()),
                };
                self.leech = match added {
                    Ok(handle) => self.go_live(handle).await,
                    Err(e) => {
                        // No peer supplied the metadata in time: try again (a seeder may
                        // have appeared since), after a breath.
                        tracing::debug!("{}: {e:#}", self.plan.name);
                        Leech::Waiting {
                            until: Instant::now() + Duration::from_secs(1),
                        }
                    }
                };
            }
            _ => {}
        }
    }

    /// The metadata came from peers: it must be the canonical torrent of this very file.
    async fn go_live(&mut self, handle: Handle) -> Leech {
        let hash = self.torrent.expect("a leech has a torrent");
        let info = canonical_info(&handle, hash);
        let adopted = match info {
            Ok(info) if self.asm.info().is_none() => {
                self.mirror = None; // its position may now be past a dropped tail
                self.asm.adopt(info)
            }
            Ok(info) if Some(&info) == self.asm.info() => Ok(()),
            Ok(_) => Err("the peers' torrent differs from the published one".into()),
            Err(why) => Err(why),
        };
        if let Err(why) = adopted {
            crate::ui::warning(&format!("{}: {why}; using the mirrors", self.plan.name));
            self.server.store.mark_torrent_bad(hash);
            self.forget(&handle, true).await;
            return Leech::Off;
        }
        let path = self
            .server
            .store
            .staging
            .join("swarm")
            .join(&self.plan.name);
        Leech::Live(Live {
            handle,
            path,
            seen: 0,
            changed: Instant::now(),
            took: Instant::now(),
            tried: (u64::MAX, u64::MAX),
        })
    }

    /// Takes every piece the engine has verified, in order, checking each again against the
    /// torrent (our own check: a byte is sent only if serve itself saw it match).
    async fn take_from_swarm(&mut self) {
        let Leech::Live(live) = &mut self.leech else {
            return;
        };
        let stats = live.handle.stats();
        if stats.progress_bytes != live.seen {
            live.seen = stats.progress_bytes;
            live.changed = Instant::now();
        }
        let mut taken = 0;
        if live.tried != (live.seen, self.asm.len()) {
            taken = tokio::task::block_in_place(|| take_pieces(&mut self.asm, &live.path));
            live.tried = (live.seen, self.asm.len());
        }
        if taken > 0 {
            live.took = Instant::now();
        }
        // Stalled: the engine gets nothing, or has everything and still nothing usable.
        let stalled = live.changed.elapsed() > self.stall
            || (stats.finished && live.took.elapsed() > self.stall);
        if taken > 0 {
            self.took.peers += taken;
            self.grew();
        }
        if stalled || stats.error.is_some() {
            // Added again after a while: its peers (and perhaps new ones) are tried afresh.
            let Leech::Live(live) = std::mem::replace(
                &mut self.leech,
                Leech::Waiting {
                    until: Instant::now(),
                },
            ) else {
                unreachable!()
            };
            self.forget(&live.handle, false).await;
        }
    }

    async fn manage_mirror(&mut self) {
        if let Some(mirror) = &self.mirror {
            // The swarm overtook the mirror and is moving: the mirror would only send bytes
            // that are already here.
            let swarm_moving =
                matches!(&self.leech, Leech::Live(live) if live.changed.elapsed() < self.stall);
            if swarm_moving && mirror.feed.pos > 0 && mirror.feed.pos < self.asm.len() {
                self.mirror = None;
            }
            return;
        }
        let swarm_first = !matches!(self.leech, Leech::Off);
        if swarm_first && self.last_progress.elapsed() < self.stall {
            return;
        }
        if !self.torrent_info_ready().await {
            return;
        }
        let Some(index) = self
            .servers
            .iter()
            .position(|s| !s.done && s.errors < MAX_SERVER_ERRORS)
        else {
            return;
        };
        let url = format!("{}/{}", self.plan.servers[index], self.plan.name);
        let (tx, events) = mpsc::channel(8);
        let from = self.asm.len();
        let http = self.server.http.clone();
        let task = tokio::spawn(async move { read_mirror(http, url, from, tx).await });
        self.mirror = Some(Mirror {
            server: index,
            events,
            feed: Feed {
                pos: from,
                buf: Vec::new(),
            },
            task,
        });
    }

    /// Before the mirrors are used for a file that has a torrent, the torrent's info is
    /// looked for beside the file upstream (`<file>.torrent`), so mirror bytes can be checked
    /// piece by piece and streamed. Returns whether the mirror may start.
    async fn torrent_info_ready(&mut self) -> bool {
        let Some(hash) = self.torrent else {
            return true;
        };
        if self.asm.info().is_some() {
            return true;
        }
        match &mut self.torrent_file {
            TorrentFile::NotTried => {
                let http = self.server.http.clone();
                let urls: Vec<String> = self
                    .plan
                    .servers
                    .iter()
                    .map(|s| format!("{s}/{}.torrent", self.plan.name))
                    .collect();
                let task = tokio::spawn(async move {
                    for url in urls {
                        if let Ok(Some(bytes)) = http.get_small(&url, MAX_TORRENT_FILE).await {
                            let info =
                                parse_torrent_file(&bytes).filter(|info| info.info_hash() == hash);
                            if info.is_some() {
                                return info;
                            }
                        }
                    }
                    None
                });
                self.torrent_file = TorrentFile::Fetching(task, Instant::now());
                false
            }
            TorrentFile::Fetching(task, since) => {
                if !task.is_finished() && since.elapsed() < Duration::from_secs(2) {
                    return false;
                }
                let found = if task.is_finished() {
                    futures_util::FutureExt::now_or_never(task)
                        .and_then(Result::ok)
                        .flatten()
                } else {
                    task.abort();
                    None
                };
                self.torrent_file = TorrentFile::Tried;
                if let Some(info) = found
                    && let Err(why) = self.asm.adopt(info)
                {
                    // The published torrent is not this file's: the index is wrong about it.
                    crate::ui::warning(&format!("{}.torrent: {why}", self.plan.name));
                    self.server.store.mark_torrent_bad(hash);
                    self.torrent = None;
                    self.drop_leech().await;
                }
                true
            }
            TorrentFile::Tried => true,
        }
    }

    fn on_mirror(&mut self, event: Option<MirrorEvent>) {
        let Some(mirror) = &mut self.mirror else {
            return;
        };
        let server = mirror.server;
        let problem = match event {
            Some(MirrorEvent::Start(at)) => {
                mirror.feed.pos = at;
                return;
            }
            Some(MirrorEvent::Chunk(bytes)) => {
                match take_chunk(&mut self.asm, &mut mirror.feed, &bytes) {
                    Ok(0) => return,
                    Ok(n) => {
                        self.took.mirrors += n;
                        self.grew();
                        return;
                    }
                    Err(problem) => problem,
                }
            }
            Some(MirrorEvent::End) if self.asm.is_full() => return,
            Some(MirrorEvent::End) | None => {
                Problem::Error("the server closed the transfer early".into())
            }
            Some(MirrorEvent::Failed { why, not_found }) => {
                if not_found {
                    Problem::NotFound
                } else {
                    Problem::Error(why)
                }
            }
        };
        self.mirror = None;
        let state = &mut self.servers[server];
        let base = host(&self.plan.servers[server]).to_owned();
        let why = match problem {
            Problem::NotFound => {
                state.done = true;
                state.not_found = true;
                "The requested URL returned error: 404".to_string()
            }
            Problem::Contradicts => {
                state.done = true;
                "its bytes do not match the file's torrent".to_string()
            }
            Problem::Error(why) => {
                state.errors += 1;
                why
            }
        };
        crate::ui::warning(&format!(
            "failed retrieving file '{}' from {base} : {why}",
            self.plan.name
        ));
        self.last_error = Some(why);
        if self.asm.info().is_some()
            && self.servers.iter().all(|s| s.done && !s.not_found)
            && let Some(hash) = self.torrent
        {
            // Every mirror contradicts the torrent: it is the torrent that is wrong.
            self.server.store.mark_torrent_bad(hash);
        }
    }

    /// Takes the swarm out of this fetch. A torrent being added is not aborted (that could
    /// leave one the engine has just added): the add ends within the stall timeout, and what
    /// it added for this fetch (not a seed of the finished file) is dropped then.
    async fn drop_leech(&mut self) {
        match std::mem::replace(&mut self.leech, Leech::Off) {
            Leech::Live(live) => self.forget(&live.handle, true).await,
            Leech::Adding(task) => {
                let server = self.server.clone();
                let dir = server.store.staging.join("swarm");
                tokio::spawn(async move {
                    if let (Ok(Ok(handle)), Some(swarm)) = (task.await, &server.swarm)
                        && handle.output_folder() == dir
                    {
                        swarm.forget(&handle, true).await;
                    }
                });
            }
            Leech::Off | Leech::Waiting { .. } => {}
        }
    }

    async fn forget(&self, handle: &Handle, delete_files: bool) {
        if let Some(swarm) = &self.server.swarm {
            swarm.forget(handle, delete_files).await;
        }
    }

    /// The engine's copy is not needed once the file is assembled (or given up): the file is
    /// seeded from the cache instead.
    async fn cleanup(&mut self) {
        self.mirror = None;
        self.drop_leech().await;
        let _ = std::fs::remove_file(
            self.server
                .store
                .staging
                .join("swarm")
                .join(&self.plan.name),
        );
    }
}

enum Problem {
    NotFound,
    Contradicts,
    Error(String),
}

/// Takes the consecutive pieces the engine's file holds, each checked against the torrent.
fn take_pieces(asm: &mut Assembly, path: &std::path::Path) -> u64 {
    use std::os::unix::fs::FileExt;
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let mut taken = 0;
    while let Some(piece) = asm.next_piece() {
        let mut buf = vec![0u8; (piece.end - piece.start) as usize];
        if file.read_exact_at(&mut buf, piece.start).is_err() {
            break;
        }
        match asm.offer_piece(&buf) {
            Ok(true) => taken += buf.len() as u64,
            _ => break,
        }
    }
    taken
}

/// Uses a chunk of a mirror's body: bytes before the assembly's end are already there; with
/// the torrent known, whole pieces are checked and appended; without it, bytes are appended
/// unchecked (held from readers). Returns the bytes appended.
fn take_chunk(asm: &mut Assembly, mirror: &mut Feed, chunk: &[u8]) -> Result<u64, Problem> {
    mirror.pos += chunk.len() as u64;
    if mirror.pos > asm.size() {
        return Err(Problem::Error(
            "the server sent more than the database's size".into(),
        ));
    }
    mirror.buf.extend_from_slice(chunk);
    let buf_start = mirror.pos - mirror.buf.len() as u64;
    if buf_start < asm.len() {
        let stale = (asm.len() - buf_start).min(mirror.buf.len() as u64) as usize;
        mirror.buf.drain(..stale);
    }
    if mirror.pos - (mirror.buf.len() as u64) != asm.len() || mirror.buf.is_empty() {
        return Ok(0);
    }
    let io = |e: std::io::Error| Problem::Error(e.to_string());
    if asm.info().is_none() {
        let n = mirror.buf.len() as u64;
        asm.append_unchecked(&mirror.buf).map_err(io)?;
        mirror.buf.clear();
        return Ok(n);
    }
    let mut appended = 0;
    while let Some(piece) = asm.next_piece() {
        let len = (piece.end - piece.start) as usize;
        if mirror.buf.len() < len {
            break;
        }
        if !asm.offer_piece(&mirror.buf[..len]).map_err(io)? {
            return Err(Problem::Contradicts);
        }
        mirror.buf.drain(..len);
        appended += len as u64;
    }
    Ok(appended)
}

/// Reads one mirror's body into a channel; stops when the receiver is gone.
async fn read_mirror(
    http: crate::http::Http,
    url: String,
    from: u64,
    tx: mpsc::Sender<MirrorEvent>,
) {
    let failed = |why: String, not_found: bool| MirrorEvent::Failed { why, not_found };
    let mut response = match http.open(&url, from, None).await {
        Ok(response) => response,
        Err(e) => {
            let _ = tx.send(failed(e.to_string(), false)).await;
            return;
        }
    };
    let start = match response.status() {
        StatusCode::PARTIAL_CONTENT
            if from > 0 && crate::http::range_start(&response) == Some(from) =>
        {
            from
        }
        StatusCode::OK => 0,
        StatusCode::NOT_FOUND | StatusCode::GONE => {
            let _ = tx.send(failed(String::new(), true)).await;
            return;
        }
        status => {
            let why = format!("The requested URL returned error: {}", status.as_u16());
            let _ = tx.send(failed(why, false)).await;
            return;
        }
    };
    if tx.send(MirrorEvent::Start(start)).await.is_err() {
        return;
    }
    loop {
        let event = match http.chunk(&mut response).await {
            Ok(Some(chunk)) => MirrorEvent::Chunk(chunk),
            Ok(None) => MirrorEvent::End,
            Err(e) => failed(e.to_string(), false),
        };
        let last = !matches!(event, MirrorEvent::Chunk(_));
        if tx.send(event).await.is_err() || last {
            return;
        }
    }
}

async fn next_event(mirror: &mut Option<Mirror>) -> Option<MirrorEvent> {
    match mirror {
        Some(mirror) => mirror.events.recv().await,
        None => std::future::pending().await,
    }
}

/// The torrent's info as the peers supplied it, if it is the canonical info dictionary of
/// the published infohash.
fn canonical_info(handle: &Handle, hash: InfoHash) -> Result<Info, String> {
    let bytes = handle
        .with_metadata(|m| m.info_bytes.clone())
        .map_err(|e| e.to_string())?;
    let info: Info = crate::bencode::decode(&bytes)
        .map_err(|e| format!("the peers' torrent is not a canonical one: {e}"))?;
    if info.to_bytes() != bytes[..] || info.info_hash() != hash {
        return Err("the peers' torrent is not the canonical one".into());
    }
    Ok(info)
}

async fn resolve(names: &[String]) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for name in names {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(found) => addrs.extend(found),
            Err(e) => tracing::warn!("peer {name}: {e}"),
        }
    }
    addrs.sort();
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 32 * 1024;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 + i / 509) as u8).collect()
    }

    fn assembly(dir: &std::path::Path, bytes: &[u8], with_torrent: bool) -> Assembly {
        use sha2::Digest;
        let name = "a-1-1-any.pkg.tar.zst";
        let mut asm = Assembly::create(
            &dir.join(format!("{name}.part")),
            bytes.len() as u64,
            Some(sha2::Sha256::digest(bytes).into()),
        )
        .unwrap();
        if with_torrent {
            asm.adopt(Info::from_reader(name, bytes.len() as u64, bytes).unwrap())
                .unwrap();
        }
        asm
    }

    #[test]
    fn mirror_chunks_become_verified_pieces_whatever_their_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(3 * K + 123);
        let mut asm = assembly(dir.path(), &bytes, true);
        let mut feed = Feed::default();
        let mut appended = 0;
        for chunk in bytes.chunks(10_000) {
            appended += take_chunk(&mut asm, &mut feed, chunk).ok().unwrap();
            // Only whole, checked pieces are ever appended.
            assert!(asm.len() == bytes.len() as u64 || asm.len().is_multiple_of(K as u64));
        }
        assert_eq!(appended, bytes.len() as u64);
        asm.finish().unwrap();
        assert_eq!(std::fs::read(asm.path()).unwrap(), bytes);
    }

    #[test]
    fn a_mirror_behind_the_swarm_or_ignoring_the_range_only_fills_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(4 * K);
        let mut asm = assembly(dir.path(), &bytes, true);
        // Half of piece 0 has come from the mirror when the swarm supplies pieces 0 and 1.
        let mut feed = Feed::default();
        assert_eq!(
            take_chunk(&mut asm, &mut feed, &bytes[..K / 2]).ok(),
            Some(0)
        );
        assert!(asm.offer_piece(&bytes[..K]).unwrap());
        assert!(asm.offer_piece(&bytes[K..2 * K]).unwrap());
        let mut appended = 0;
        for chunk in bytes[K / 2..3 * K].chunks(7_000) {
            appended += take_chunk(&mut asm, &mut feed, chunk).ok().unwrap();
        }
        assert_eq!(
            appended, K as u64,
            "the mirror's bytes the swarm sent are dropped"
        );
        // A server that ignored `Range: bytes=98304-` sends from 0: only the rest is used.
        let mut feed = Feed::default();
        let mut appended = 0;
        for chunk in bytes.chunks(7_000) {
            appended += take_chunk(&mut asm, &mut feed, chunk).ok().unwrap();
        }
        assert_eq!(appended, K as u64);
        asm.finish().unwrap();
        assert_eq!(std::fs::read(asm.path()).unwrap(), bytes);
    }

    #[test]
    fn a_mirror_contradicting_the_torrent_or_sending_too_much_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(2 * K);
        let mut asm = assembly(dir.path(), &bytes, true);
        let mut bad = bytes.clone();
        bad[K + 1] ^= 1;
        let mut feed = Feed::default();
        assert_eq!(
            take_chunk(&mut asm, &mut feed, &bad[..K]).ok(),
            Some(K as u64)
        );
        assert!(matches!(
            take_chunk(&mut asm, &mut feed, &bad[K..]),
            Err(Problem::Contradicts)
        ));
        assert_eq!(asm.len(), K as u64, "the good piece stays");

        let mut unchecked = assembly(dir.path(), &bytes, false);
        let mut feed = Feed::default();
        assert_eq!(
            take_chunk(&mut unchecked, &mut feed, &bytes).ok(),
            Some(2 * K as u64)
        );
        assert_eq!(unchecked.available(), 0, "held until the sha256 passes");
        assert!(matches!(
            take_chunk(&mut unchecked, &mut feed, b"x"),
            Err(Problem::Error(_))
        ));
    }
}
