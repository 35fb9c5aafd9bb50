//! The download process: `pactor` re-executed by the root process (never forked from its
//! threads), reading requests on stdin and answering on the original stdout; anything it
//! prints goes to stderr, which the root process passes on, cleaned. It reads its
//! [`Start`](super::protocol::Start) first, enters the sandbox while it is still a single
//! thread, and only then starts its runtime and talks to the network.
//!
//! It runs pactor's own prefetch ([`crate::prefetch`]): the swarm, the mirrors, their race and
//! the child's own checks (which decide when to try the next mirror). Where a file used to be
//! renamed into the cache, it is now handed over ([`Handover`]): the root process copies and
//! verifies it and says whether it is in the cache. Files taken from the swarm stay in the
//! child's staging directory and are seeded from there until the root process says stop; so
//! do files a mirror gave that the swarm knows (their torrent is canonical: the same swarm).

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::protocol::{
    self, Failure, IndexOutcome, IndexRequest, PrefetchJob, Progress, Refusal, Report, Staged,
    Start, SwarmSettings, ToChild, ToParent, VERSION,
};
use crate::http::Http;
use crate::index::Index;
use crate::interrupt::Interrupt;
use crate::prefetch::{Prefetch, SwarmPlan};
use crate::swarm::{Swarm, SwarmConfig};
use crate::torrent::{Info, InfoHash};
use crate::transaction::PackageFile;

/// Messages to the root process, written in order by one task ([`write_messages`]). `None`
/// ends the stream: senders live on in the `ui` and `progress` redirects, so the writer cannot
/// wait for them all to go.
#[derive(Clone)]
struct Outbox(mpsc::UnboundedSender<Option<ToParent>>);

impl Outbox {
    fn send(&self, message: ToParent) {
        // The root process gone is noticed on stdin; nothing to do here.
        let _ = self.0.send(Some(message));
    }

    /// Ends the stream once everything sent before is written.
    fn close(&self) {
        let _ = self.0.send(None);
    }
}

/// Writes the outbox to the root process. A task, not a thread: a message sent from the
/// runtime (most are) wakes no other thread, and the messages of a burst leave in one write,
/// so the root process is woken once for them.
async fn write_messages(
    pipe: tokio::net::unix::pipe::Sender,
    mut outbox: mpsc::UnboundedReceiver<Option<ToParent>>,
) {
    use tokio::io::AsyncWriteExt as _;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 16, pipe);
    let mut next = outbox.recv().await;
    while let Some(Some(message)) = next {
        if protocol::write_unflushed_async(&mut out, &message)
            .await
            .is_err()
        {
            return;
        }
        next = match outbox.try_recv() {
            Ok(queued) => Some(queued),
            Err(_) if out.flush().await.is_err() => return,
            Err(_) => outbox.recv().await,
        };
    }
    let _ = out.flush().await;
}

/// Reads the root process's requests, and hands each verdict to the transfer awaiting it. The
/// root process gone (end of input) stops everything.
async fn read_requests(
    pipe: OwnedFd,
    requests: mpsc::UnboundedSender<ToChild>,
    verdicts: Verdicts,
    interrupt: Interrupt,
) {
    let mut input = match tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) {
        Ok(pipe) => tokio::io::BufReader::with_capacity(1 << 16, pipe),
        Err(_) => return interrupt.trigger(libc::SIGTERM),
    };
    loop {
        match protocol::read_frame_async::<ToChild>(&mut input, protocol::MAX_JOB_FRAME).await {
            Ok(ToChild::Verdict {
                file,
                staged,
                placed,
            }) => {
                if let Some(waiting) = verdicts
                    .lock()
                    .expect("no poisoning")
                    .remove(&(file, staged))
                {
                    let _ = waiting.send(placed);
                }
            }
            Ok(request) => {
                if requests.send(request).is_err() {
                    return;
                }
            }
            Err(_) => return interrupt.trigger(libc::SIGTERM),
        }
    }
}

/// The root process's verdicts, awaited by the transfers that offered the files.
type Verdicts = Arc<Mutex<HashMap<(u32, Staged), oneshot::Sender<Result<(), Refusal>>>>>;

/// The child's entry point (`pactor <INTERNAL_ARG>`).
pub fn main() -> ExitCode {
    // The protocol keeps the original stdout; fd 1 becomes stderr so that nothing printed can
    // corrupt a frame.
    // SAFETY: dup and dup2 on the standard descriptors of this single-threaded process.
    let protocol_fd = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return ExitCode::from(2);
        }
        fd
    };
    // SAFETY: `protocol_fd` was just created by dup and is owned here alone.
    let protocol_out = unsafe { OwnedFd::from_raw_fd(protocol_fd) };
    // The requests are read from fd 0 directly, unbuffered here (whatever a buffer took beyond
    // the Start frame would be lost to the reader that follows).
    // SAFETY: fd 0 is this process's stdin, which nothing else reads; the reader task owns it.
    let mut protocol_in = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(0) });
    let start: Start = match protocol::read_frame(&mut protocol_in, protocol::MAX_JOB_FRAME) {
        Ok(ToChild::Start(start)) => start,
        _ => return ExitCode::from(2),
    };
    if start.version != VERSION {
        eprintln!(
            "error: the download process speaks version {VERSION}, not {}",
            start.version
        );
        return ExitCode::from(2);
    }
    if let Err(e) = super::sandbox::enter(&start.sandbox, &start.fetch_dir, start.debug) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    crate::ui::init_tracing(start.debug);

    let (tx, messages) = mpsc::unbounded_channel();
    let outbox = Outbox(tx);
    outbox.send(ToParent::Hello { version: VERSION });
    let bars = redirect_output(&outbox);

    // One worker: see [`bulk_runtime`].
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async move {
        // Without this pipe nothing reaches the root process, which would wait for its stall
        // timeout: end now, and it sees the pipe close.
        let protocol_out = match tokio::net::unix::pipe::Sender::from_owned_fd(protocol_out) {
            Ok(pipe) => pipe,
            Err(e) => {
                eprintln!("error: could not write to the root process: {e}");
                return ExitCode::from(2);
            }
        };
        let writer = tokio::spawn(write_messages(protocol_out, messages));
        // Spawned, not run by block_on: on the workers, where the tasks it wakes and is woken
        // by run (hyper's connections, the pipes'), rather than on a thread each must wake.
        let code = tokio::spawn(serve(start, protocol_in.into(), outbox.clone(), bars))
            .await
            .unwrap_or(ExitCode::from(2));
        outbox.close();
        let _ = writer.await;
        code
    });
    // Everything the root process needs was written and flushed above, and the runtime is
    // never shut down: that would drop every task of every torrent the run seeded, one at a
    // time (a run of 1,000 small packages spent 8% of this process's CPU in it) while the root
    // process waits for this one to exit; the kernel closes the connections and files at exit
    // anyway. `_exit`, not a return from main: exit(3) would run the libraries' atexit
    // handlers (OpenSSL's cleanup among them) while the runtime's threads may still be using
    // them.
    let status = if code == ExitCode::SUCCESS { 0 } else { 2 };
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: ends this process at once; nothing after this runs, `runtime` is never dropped.
    unsafe { libc::_exit(status) }
}

/// Sends the terminal output of the prefetch (`ui`, `progress`) to the root process.
fn redirect_output(outbox: &Outbox) -> Arc<RemoteBars> {
    let say = outbox.clone();
    crate::ui::redirect(Box::new(move |level, text| {
        say.send(ToParent::Say {
            level,
            text: text.to_owned(),
        })
    }));
    let bars = Arc::new(RemoteBars {
        outbox: outbox.clone(),
        ids: Mutex::default(),
        pending: Mutex::default(),
    });
    crate::progress::redirect(bars.clone());
    let flushed = bars.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(RemoteBars::EVERY);
            flushed.flush();
        }
    });
    bars
}

async fn serve(
    start: Start,
    protocol_in: OwnedFd,
    outbox: Outbox,
    bars: Arc<RemoteBars>,
) -> ExitCode {
    // The root process passes on the signal it got: SIGHUP too, which must stop the transfers
    // cleanly here as it does there (its default action would kill this process mid-write).
    let interrupt = match Interrupt::listen_like_pacman() {
        Ok(interrupt) => interrupt,
        Err(e) => {
            eprintln!("error: could not watch signals: {e}");
            return ExitCode::from(2);
        }
    };
    let verdicts: Verdicts = Arc::default();
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    tokio::spawn(read_requests(
        protocol_in,
        requests_tx,
        verdicts.clone(),
        interrupt.clone(),
    ));
    let mut http = Http::new(
        Duration::from_millis(start.connect_timeout_ms),
        Duration::from_millis(start.idle_timeout_ms),
        interrupt.clone(),
    );
    if let Some(bulk) = bulk_runtime() {
        http = http.with_bulk(bulk);
    }
    let mut kept: Option<(Arc<Swarm>, Arc<Handover>)> = None;
    let mut parsed = ParsedIndexes::default();
    let mut warm: Option<Swarm> = None;
    while let Some(request) = requests.recv().await {
        match request {
            ToChild::RefreshIndexes { requests, warm_up } => {
                let (outcomes, fetched) = refresh_indexes(&http, &requests, &start.fetch_dir).await;
                outbox.send(ToParent::Indexes(outcomes));
                // Parsed now, while the root process plans the transaction; and the swarm
                // started, if an index lists files (a failure to start is the prefetch's to
                // report, when it tries again).
                fetched.into_iter().for_each(|bytes| parsed.keep(bytes));
                if let Some(settings) = warm_up.filter(|_| warm.is_none() && parsed.lists_files()) {
                    warm = Swarm::start(&swarm_config(settings), &start.fetch_dir)
                        .await
                        .ok();
                }
            }
            ToChild::Prefetch(job) => {
                bars.number(&job.files);
                let handover = Arc::new(Handover::new(
                    &job.files,
                    outbox.clone(),
                    verdicts.clone(),
                    start.fetch_dir.clone(),
                ));
                let (result, swarm) = prefetch(
                    *job,
                    &http,
                    &start.fetch_dir,
                    &handover,
                    &mut parsed,
                    warm.take(),
                )
                .await;
                outbox.send(ToParent::PrefetchDone(result));
                if let Some(swarm) = swarm {
                    // The commit starts now; the mirrors' copies join the swarm meanwhile.
                    let swarm = Arc::new(swarm);
                    tokio::spawn({
                        let (swarm, handover) = (swarm.clone(), handover.clone());
                        async move { handover.seed_mirror_copies(&swarm).await }
                    });
                    kept = Some((swarm, handover));
                }
            }
            ToChild::Stop => break,
            ToChild::Start(_) | ToChild::Verdict { .. } => {}
        }
    }
    // No `Swarm::stop` (librqbit sleeps a second in it): the process ends now, which closes
    // every connection and file; the seeded copies can go while still open.
    let uploaded = match kept {
        Some((swarm, handover)) => {
            handover.remove_seeded_copies();
            swarm.uploaded_bytes()
        }
        None => 0,
    };
    outbox.send(ToParent::Stopped { uploaded });
    ExitCode::SUCCESS
}

/// The runtime for the bulk of the bytes: the swarm's peers and pieces, and the mirrors'
/// transfers of large files (from `http`'s `BULK_MIN` up; see [`crate::runtime`]). Everything
/// else runs on the process's one other worker.
///
/// A run's small steps wake one another: a connection's task, the request's, the writer of
/// the pipe to the root process. With everything on two workers, nearly every wake-up also
/// woke the idle one, which found nothing to do and slept again. All on one worker, 1,000 files
/// of 50 KB took 243 -> 228 ms over HTTP and 253 -> 231 ms from peers, with a tenth less CPU;
/// but a typical -Syu from one seeder took 714 -> 826 ms, as librqbit checks pieces and writes
/// chunks inline on its workers, and one 1 GB file over HTTP 1.52 -> 1.66 s, as its
/// connection's task and the file writer no longer ran side by side. With the bulk on two
/// workers of its own, the small files took 227 -> 197 ms over HTTP and 240 -> 205 ms from
/// peers (CPU 281 -> 253 ms and 304 -> 252 ms), and the typical and 1 GB runs were unchanged.
/// `None` if the runtime cannot start: then everything runs on the one worker.
fn bulk_runtime() -> Option<tokio::runtime::Handle> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("pactor-bulk")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
        .map(|runtime| runtime.handle().clone())
}

/// The session of a run's swarm.
fn swarm_config(s: SwarmSettings) -> SwarmConfig {
    SwarmConfig {
        listen: s.listen,
        dht: s.dht,
        lsd: s.lsd,
        trackers: s.trackers,
        upload_bps: s.upload_bps,
        download_bps: s.download_bps,
        peer_limit: None,
        // What a run fetched it seeds as it was fetched: it is one peer among many.
        super_seed: false,
        outgoing_peers: s.outgoing_peers,
        runtime: bulk_runtime(),
    }
}

/// Indexes this process fetched, parsed while the root process plans the transaction. The
/// prefetch that follows brings the indexes the root process kept: bytes it has seen need not
/// be parsed again (about 3 ms for 1,000 files).
#[derive(Default)]
struct ParsedIndexes(Vec<(Vec<u8>, Index)>);

impl ParsedIndexes {
    fn keep(&mut self, bytes: Vec<u8>) {
        if let Ok((index, _)) = Index::parse(&bytes) {
            self.0.push((bytes, index));
        }
    }

    /// Whether a kept index lists any file: only then may the prefetch want a swarm.
    fn lists_files(&self) -> bool {
        self.0.iter().any(|(_, index)| !index.files.is_empty())
    }

    fn parse(&mut self, bytes: &[u8]) -> Option<Index> {
        match self.0.iter().position(|(seen, _)| seen == bytes) {
            Some(at) => Some(self.0.swap_remove(at).1),
            None => Some(Index::parse(bytes).ok()?.0),
        }
    }
}

/// Fetches each requested index into the staging directory (as [`Staged::Index`]); the
/// outcomes, and the bytes of those fetched.
async fn refresh_indexes(
    http: &Http,
    requests: &[IndexRequest],
    fetch_dir: &Path,
) -> (Vec<IndexOutcome>, Vec<Vec<u8>>) {
    let mut outcomes = Vec::new();
    let mut fetched = Vec::new();
    for (n, request) in requests.iter().enumerate() {
        let staged = Staged::Index.path(fetch_dir, &n.to_string());
        let outcome = match crate::indexes::fetch(http, &request.urls).await {
            crate::indexes::Fetched::Index(bytes) => match std::fs::write(&staged, &bytes) {
                Ok(()) => {
                    fetched.push(bytes);
                    IndexOutcome::Fetched
                }
                Err(e) => {
                    tracing::info!("{}: {e}", staged.display());
                    IndexOutcome::Failed
                }
            },
            crate::indexes::Fetched::Nothing => IndexOutcome::PublishesNothing,
            crate::indexes::Fetched::Failed => IndexOutcome::Failed,
        };
        outcomes.push(outcome);
    }
    (outcomes, fetched)
}

async fn prefetch(
    job: PrefetchJob,
    http: &Http,
    fetch_dir: &Path,
    handover: &Arc<Handover>,
    parsed: &mut ParsedIndexes,
    warm: Option<Swarm>,
) -> (Result<Report, Failure>, Option<Swarm>) {
    let indexes = job
        .indexes
        .iter()
        .filter_map(|(repo, bytes)| Some((repo.clone(), parsed.parse(&bytes.0)?)))
        .collect();
    let prefetch = Prefetch {
        cache_dirs: job.cache_dirs,
        staging: fetch_dir.to_owned(),
        parallel: job.parallel.max(1),
        http: http.clone(),
        peer_http: http.for_peers(),
        http_peers: Default::default(),
        server_errors: Default::default(),
        mirror_rate: Default::default(),
        swarm_total: Default::default(),
        handover: handover.clone(),
        swarm: SwarmPlan {
            indexes,
            config: swarm_config(job.swarm),
            started: Mutex::new(warm),
            peers: job.peers,
            stall: Duration::from_millis(job.stall_ms),
            seed_after: job.seed_after,
        },
    };
    match prefetch.run(&job.files).await {
        Ok((report, swarm)) => (
            Ok(Report {
                files: report.files,
                bytes_from_peers: report.bytes_from_peers,
                bytes_from_mirrors: report.bytes_from_mirrors,
            }),
            swarm,
        ),
        Err(e) => {
            let failure = if http.interrupted().is_some() {
                Failure::Interrupted
            } else {
                Failure::Error(format!("{e:#}"))
            };
            (Err(failure), None)
        }
    }
}

/// Offers verified staged files to the root process instead of renaming them into the cache.
pub struct Handover {
    ids: HashMap<String, u32>,
    outbox: Outbox,
    verdicts: Verdicts,
    fetch_dir: PathBuf,
    /// Swarm copies placed in the cache: seeded from here, removed at the end.
    seeded: Mutex<Vec<PathBuf>>,
    /// Files the swarm knows, by the infohash their index entry gives: a mirror's copy of one
    /// is kept in [`Handover::KEPT_DIR`] to be seeded too.
    seedable: Mutex<HashMap<String, InfoHash>>,
    /// Mirror copies kept, not yet seeded.
    kept: Mutex<Vec<(PathBuf, InfoHash)>>,
}

impl Handover {
    fn new(files: &[PackageFile], outbox: Outbox, verdicts: Verdicts, fetch_dir: PathBuf) -> Self {
        Handover {
            ids: files
                .iter()
                .enumerate()
                .map(|(i, f)| (f.filename.clone(), i as u32))
                .collect(),
            outbox,
            verdicts,
            fetch_dir,
            seeded: Mutex::default(),
            seedable: Mutex::default(),
            kept: Mutex::default(),
        }
    }

    /// Where mirrors' copies wait to be seeded: not `swarm/`, where a torrent that lost the
    /// race deletes its own file of the same name.
    pub const KEPT_DIR: &str = "seed";

    /// Keeps the mirrors' copies of these files (name and infohash) to seed them. Clears what a
    /// killed run left in [`Handover::KEPT_DIR`].
    pub fn seed_mirror_copies_of(&self, files: impl IntoIterator<Item = (String, InfoHash)>) {
        let dir = self.fetch_dir.join(Self::KEPT_DIR);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir(&dir) {
            tracing::debug!("{}: {e}; mirrors' copies are not seeded", dir.display());
            return;
        }
        self.seedable.lock().expect("no poisoning").extend(files);
    }

    /// Seeds the mirrors' copies kept so far: each is hashed into its canonical torrent, which
    /// must have the infohash the index gave (else the index and the file disagree and the
    /// copy is not seeded).
    async fn seed_mirror_copies(&self, swarm: &Swarm) {
        let kept = std::mem::take(&mut *self.kept.lock().expect("no poisoning"));
        for (path, info_hash) in kept {
            let hashed = tokio::task::spawn_blocking({
                let path = path.clone();
                move || Info::from_file(&path)
            })
            .await;
            let info = match hashed {
                Ok(Ok(info)) if info.info_hash() == info_hash => info,
                Ok(Ok(_)) => {
                    tracing::info!("{}: not the index's torrent; not seeded", path.display());
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::info!("{}: {e}; not seeded", path.display());
                    continue;
                }
                Err(_) => continue,
            };
            let dir = self.fetch_dir.join(Self::KEPT_DIR);
            if let Err(e) = swarm.seed(&info, &dir).await {
                tracing::info!("{}: {e:#}; not seeded", path.display());
            }
        }
    }

    /// Offers `file`'s `staged` copy, complete, and waits for the root process to verify it
    /// and copy it into the cache: the root's check is the one that counts, so the child
    /// does not hash what it offers. A mirror's partial file or a signature is no longer
    /// needed afterwards, whatever the verdict; a swarm copy stays, seeded until the end.
    pub async fn place(&self, file: &PackageFile, staged: Staged) -> Result<(), Refusal> {
        let verdict = self
            .offer(file, staged, |file| ToParent::Ready { file, staged })
            .await;
        let path = staged.path(&self.fetch_dir, &file.filename);
        match staged {
            Staged::Swarm if verdict.is_ok() => {
                self.seeded.lock().expect("no poisoning").push(path)
            }
            Staged::Mirror if verdict.is_ok() => self.keep_mirror_copy(&file.filename, path),
            Staged::Swarm | Staged::Index => {}
            Staged::Mirror | Staged::Signature => {
                let _ = std::fs::remove_file(path);
            }
        }
        verdict
    }

    /// Whether a mirror's copy of `name` should come whole over the pipe rather than be
    /// staged: a small file the swarm does not know (a copy to seed must be on disk).
    pub fn takes_inline(&self, name: &str, size: u64) -> bool {
        size <= protocol::MAX_INLINE_FILE
            && !self
                .seedable
                .lock()
                .expect("no poisoning")
                .contains_key(name)
    }

    /// Offers a small mirror copy, whole, to the root process, which verifies it and places it
    /// in the cache.
    pub async fn place_inline(&self, file: &PackageFile, bytes: Vec<u8>) -> Result<(), Refusal> {
        let bytes = protocol::Payload(bytes);
        self.offer(file, Staged::Mirror, |file| ToParent::ReadyInline {
            file,
            bytes,
        })
        .await
    }

    /// Sends the offer `message` makes of `file` and waits for the root process's verdict,
    /// which comes for (`file`, `staged`).
    async fn offer(
        &self,
        file: &PackageFile,
        staged: Staged,
        message: impl FnOnce(u32) -> ToParent,
    ) -> Result<(), Refusal> {
        let Some(&id) = self.ids.get(&file.filename) else {
            return Err(Refusal::Failed("not a file of this transaction".into()));
        };
        let (tx, rx) = oneshot::channel();
        self.verdicts
            .lock()
            .expect("no poisoning")
            .insert((id, staged), tx);
        self.outbox.send(message(id));
        rx.await
            .unwrap_or_else(|_| Err(Refusal::Failed("the root process went away".into())))
    }

    /// A mirror's copy, now in the cache: kept to be seeded if the swarm knows the file,
    /// removed otherwise.
    fn keep_mirror_copy(&self, name: &str, path: PathBuf) {
        let info_hash = self
            .seedable
            .lock()
            .expect("no poisoning")
            .get(name)
            .copied();
        if let Some(info_hash) = info_hash {
            let kept = self.fetch_dir.join(Self::KEPT_DIR).join(name);
            if std::fs::rename(&path, &kept).is_ok() {
                self.seeded.lock().expect("no poisoning").push(kept.clone());
                self.kept
                    .lock()
                    .expect("no poisoning")
                    .push((kept, info_hash));
                return;
            }
        }
        let _ = std::fs::remove_file(path);
    }

    /// The staged swarm copies of files now in the cache, removed once seeding stops.
    fn remove_seeded_copies(&self) {
        for path in self.seeded.lock().expect("no poisoning").drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The prefetch's progress bars, drawn by the root process: per file at most one update per
/// [`RemoteBars::EVERY`], so a fast transfer does not flood the pipe.
struct RemoteBars {
    outbox: Outbox,
    ids: Mutex<HashMap<String, u32>>,
    pending: Mutex<HashMap<u32, Latest>>,
}

/// When a file's last bar was sent, and a newer one held back until [`RemoteBars::EVERY`]
/// has passed.
struct Latest {
    sent_at: Instant,
    unsent: Option<Progress>,
}

impl RemoteBars {
    const EVERY: Duration = Duration::from_millis(100);

    /// The files' numbers: their order in the job, as the handover numbers them.
    fn number(&self, files: &[PackageFile]) {
        *self.ids.lock().expect("no poisoning") = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.filename.clone(), i as u32))
            .collect();
    }

    fn flush(&self) {
        let mut pending = self.pending.lock().expect("no poisoning");
        for latest in pending.values_mut() {
            if let Some(bar) = latest.unsent.take() {
                self.outbox.send(ToParent::Progress(bar));
                latest.sent_at = Instant::now();
            }
        }
    }
}

impl crate::progress::Sink for RemoteBars {
    fn start(&self, files: usize, bytes: u64) {
        self.outbox.send(ToParent::Progress(Progress::Start {
            files: files as u32,
            bytes,
        }));
    }

    fn file_start(&self, name: &str) -> Option<u32> {
        let id = self.ids.lock().expect("no poisoning").get(name).copied()?;
        self.outbox
            .send(ToParent::Progress(Progress::FileStart { file: id }));
        // The start counts as the first report: a file done within EVERY sends one bar, with
        // FileDone (1,000 small files: 1,000 fewer messages).
        self.pending.lock().expect("no poisoning").insert(
            id,
            Latest {
                sent_at: Instant::now(),
                unsent: None,
            },
        );
        Some(id)
    }

    fn bar(&self, file: u32, kept: [u64; 2], active: [bool; 2], swarm_prefix: u64) {
        let bar = Progress::Bar {
            file,
            kept,
            active,
            swarm_prefix,
        };
        let mut pending = self.pending.lock().expect("no poisoning");
        match pending.get_mut(&file) {
            Some(latest) if latest.sent_at.elapsed() < Self::EVERY => latest.unsent = Some(bar),
            _ => {
                self.outbox.send(ToParent::Progress(bar));
                pending.insert(
                    file,
                    Latest {
                        sent_at: Instant::now(),
                        unsent: None,
                    },
                );
            }
        }
    }

    fn file_done(&self, file: u32) {
        let mut pending = self.pending.lock().expect("no poisoning");
        if let Some(bar) = pending.remove(&file).and_then(|l| l.unsent) {
            self.outbox.send(ToParent::Progress(bar));
        }
        self.outbox
            .send(ToParent::Progress(Progress::FileDone { file }));
    }

    fn warn(&self, text: &str) {
        self.outbox.send(ToParent::Progress(Progress::Warn {
            text: text.to_owned(),
        }));
    }

    fn finish(&self, peers: u64, mirrors: u64) {
        self.flush();
        self.outbox
            .send(ToParent::Progress(Progress::Finish { peers, mirrors }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(tracker: &str) -> Vec<u8> {
        Index {
            trackers: vec![format!("http://127.0.0.1:1/{tracker}")],
            ..Index::default()
        }
        .to_bytes()
    }

    #[test]
    fn an_index_parsed_during_the_refresh_is_reused_only_for_the_same_bytes() {
        let mut parsed = ParsedIndexes::default();
        let (fetched, other) = (index("fetched"), index("other"));
        parsed.keep(fetched.clone());
        parsed.keep(b"<html>".to_vec());
        assert_eq!(parsed.0.len(), 1, "what does not parse is not kept");
        // Other bytes are parsed as they are, never answered from what was kept.
        let trackers = parsed.parse(&other).unwrap().trackers;
        assert_eq!(trackers, ["http://127.0.0.1:1/other"]);
        assert_eq!(parsed.0.len(), 1);
        let trackers = parsed.parse(&fetched).unwrap().trackers;
        assert_eq!(trackers, ["http://127.0.0.1:1/fetched"]);
        assert!(parsed.0.is_empty(), "taken, not copied");
        assert!(parsed.parse(b"garbage").is_none());
    }
}
