//! The root process's side: it starts the download process, asks it for torrent indexes and
//! for the prefetch, draws its progress, takes the files it offers into the cache
//! ([`Intake`]), passes on the signals it gets, and stops it after the commit.
//!
//! The child is `/proc/self/exe` started afresh (never a fork of this multi-threaded process),
//! in its own session: no controlling terminal to write to, and the terminal's signals reach
//! the root process only, which decides what the child hears. Its stdin, stdout and stderr are
//! pipes: stdout and stderr are each read by a thread of its own, and stdin is written without
//! blocking ([`ChildSender`]), so a child that stops reading or floods its output cannot block
//! the root process.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::intake::{Expected, Intake};
use super::protocol::{
    self, Failure, FrameError, IndexOutcome, IndexRequest, Level, MAX_INLINE_FILE, PrefetchJob,
    Progress, Refusal, Report, Staged, Start, SwarmSettings, ToChild, ToParent, VERSION, clean,
};
use super::sandbox::{self, Plan, Staging};
use super::sender::ChildSender;
use crate::indexes::{self, Fetched, Notes, Stale};
use crate::interrupt::{Follower, Interrupt};
use crate::progress::{DownloadProgress, FileProgress};
use crate::transaction::PackageFile;
use crate::ui;

/// The argument that makes `pactor` the download process.
pub const CHILD_ARG: &str = "__pactor-download-process";

/// A swarm copy larger than this is copied as its pieces are verified, so that it is in the
/// cache moments after its last piece. Any smaller copy is taken whole when the child offers it,
/// sealed (`swarm::storage`): one sha256 pass instead of a read, a write and the pass, but
/// after the last piece rather than during the transfer. At this size that pass takes about
/// 70 ms; a 1 GB package would wait half a second for it.
const FOLLOWED_SWARM_COPY: u64 = 128 << 20;

/// How long the child may take to stop after a signal was passed on to it.
const GRACE: Duration = Duration::from_secs(10);

/// What the download process is started with.
#[derive(Debug, Clone)]
pub struct Setup {
    pub sandbox: Plan,
    /// Why it runs unsandboxed, said once when it starts.
    pub notice: Option<&'static str>,
    /// The cache verified files go into (the first writable CacheDir), or why there is none.
    pub dest: Result<PathBuf, String>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub debug: bool,
}

/// The download process, started when first needed and kept (seeding) until [`stop`].
///
/// [`stop`]: Downloads::stop
pub struct Downloads {
    setup: Setup,
    interrupt: Interrupt,
    running: Option<Fetcher>,
}

impl Downloads {
    pub fn new(setup: Setup, interrupt: Interrupt) -> Downloads {
        Downloads {
            setup,
            interrupt,
            running: None,
        }
    }

    /// The running download process, started now if need be.
    pub async fn fetcher(&mut self) -> Result<&mut Fetcher> {
        if self.running.is_none() {
            if let Some(notice) = self.setup.notice {
                ui::warning(notice);
            }
            self.running = Some(Fetcher::start(&self.setup, self.interrupt.clone())?);
        }
        Ok(self.running.as_mut().expect("just started"))
    }

    /// Lends the running download process to a task of its own (the receipt of the indexes
    /// while this thread plans the transaction): until it is given back, the process is
    /// neither started again nor stopped from here.
    pub fn lend(&mut self) -> Option<Fetcher> {
        self.running.take()
    }

    /// Takes back what [`Downloads::lend`] lent.
    pub fn give_back(&mut self, fetcher: Fetcher) {
        self.running = Some(fetcher);
    }

    /// Stops the download process (and its seeding) at the end of a run that fetched all it
    /// had to; the bytes it uploaded.
    pub async fn stop(mut self) -> u64 {
        let Some(fetcher) = self.running.take() else {
            return 0;
        };
        let uploaded = fetcher.stop().await;
        self.tidy(Partials::Drop);
        uploaded
    }

    /// Removes the staging directory once the download process is gone, as pacman removes its
    /// `download-*` directories: `pacman -Sc` and `-Scc` take every entry of the cache for a
    /// package file, and report one they cannot read or unlink.
    fn tidy(&self, partials: Partials) {
        if let Ok(dest) = &self.setup.dest {
            let staging = Staging::of(dest);
            if partials == Partials::Drop || !staging.has_partials() {
                staging.remove();
            }
        }
    }
}

/// What the staging directory's partial files are worth when the run ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Partials {
    /// The next run resumes them.
    Keep,
    /// The run fetched every file it needed.
    Drop,
}

impl Drop for Downloads {
    /// A run that ended early (an error, a signal, or only the indexes to refresh): the staging
    /// directory stays if a partial file in it can be resumed.
    fn drop(&mut self) {
        if let Some(fetcher) = self.running.take() {
            drop(fetcher);
            self.tidy(Partials::Keep);
        }
    }
}

/// The indexes a refresh kept, by repo.
pub type Recorded = HashMap<String, indexes::Loaded>;

/// Indexes asked for and not yet received: proof that an answer is owed, to be taken with
/// [`Fetcher::receive_indexes`].
#[must_use = "the child's answer must be received before anything else is asked"]
pub struct PendingIndexes {
    stale: Vec<Stale>,
}

pub struct Fetcher {
    child: Child,
    outbox: ChildSender,
    inbox: mpsc::UnboundedReceiver<Result<ToParent, FrameError>>,
    stderr: Option<std::thread::JoinHandle<()>>,
    intake: Arc<Intake>,
    interrupt: Interrupt,
    /// The signal passed on to the child, and when.
    forwarded: Option<tokio::time::Instant>,
    /// Whether its greeting came. It is awaited with the first answer, not at the start: a
    /// request sent before it waits in the pipe, and the child's start-up (about 10 ms)
    /// overlaps what this process does meanwhile.
    greeted: bool,
    stopped: bool,
    /// The child stops with this process on Ctrl-Z.
    _follower: Follower,
}

impl Fetcher {
    fn start(setup: &Setup, interrupt: Interrupt) -> Result<Fetcher> {
        let dest = setup.dest.clone().map_err(|e| anyhow!(e))?;
        let staging = Staging::of(&dest);
        staging
            .prepare(&setup.sandbox)
            .context("could not prepare the staging directory")?;
        let owner = match &setup.sandbox.user {
            Some(user) => Some(sandbox::lookup_user(user)?.0),
            None => None,
        };
        let mut command = Command::new("/proc/self/exe");
        command
            .arg(CHILD_ARG)
            .current_dir(&staging.fetch)
            // librqbit keeps DHT state in the user's cache directory: the child's is its own.
            .env("XDG_CACHE_HOME", staging.fetch.join(".cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setsid is async-signal-safe and touches nothing of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .context("could not start the download process")?;
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let start = Start {
            version: VERSION,
            sandbox: setup.sandbox.clone(),
            fetch_dir: staging.fetch.clone(),
            connect_timeout_ms: setup.connect_timeout.as_millis() as u64,
            idle_timeout_ms: setup.idle_timeout.as_millis() as u64,
            debug: setup.debug,
        };
        // A child that died at once is reported below, from its exit status.
        let _ = protocol::write_frame(&mut stdin, &ToChild::Start(start));

        // Dropping every sender is the child's end of input: it stops.
        let outbox =
            ChildSender::new(stdin).context("could not set up the download process's input")?;
        let (tx, inbox) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            loop {
                let frame = protocol::read_frame::<ToParent>(&mut stdout, protocol::MAX_FRAME);
                let last = frame.is_err();
                if tx.send(frame).is_err() || last {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || forward_stderr(stderr));
        let intake = Arc::new(Intake::new(staging, dest, owner));
        let follower = interrupt.follow(child.id());
        let fetcher = Fetcher {
            _follower: follower,
            child,
            outbox,
            inbox,
            stderr: Some(stderr),
            intake,
            interrupt,
            forwarded: None,
            greeted: false,
            stopped: false,
        };
        Ok(fetcher)
    }

    /// The child's greeting, awaited before its first answer.
    async fn greeting(&mut self) -> Result<()> {
        match tokio::time::timeout(Duration::from_secs(30), self.receive()).await {
            Ok(Ok(ToParent::Hello { version: VERSION })) => {
                self.greeted = true;
                Ok(())
            }
            Ok(Ok(other)) => Err(self.refuse(&format!("{other:?} before its greeting"))),
            Ok(Err(e)) => Err(e.context("the download process did not start")),
            Err(_) => Err(self.refuse("nothing for 30 s after it started")),
        }
    }

    fn send(&self, message: ToChild) {
        self.outbox.send(&message);
    }

    /// The next message, with signals passed on to the child while waiting. Lines the child
    /// wants shown are returned too: the caller knows whether progress bars are up.
    async fn next(&mut self) -> Result<ToParent> {
        if !self.greeted {
            self.greeting().await?;
        }
        self.receive().await
    }

    /// The next message, greeting or not.
    async fn receive(&mut self) -> Result<ToParent> {
        loop {
            let deadline = self.forwarded.map(|at| at + GRACE);
            let message = tokio::select! {
                message = self.inbox.recv() => message,
                _ = self.interrupt.wait(), if self.forwarded.is_none() => {
                    let signum = self.interrupt.signal().unwrap_or(libc::SIGTERM);
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc::kill(self.child.id() as i32, signum) };
                    self.forwarded = Some(tokio::time::Instant::now());
                    continue;
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    let _ = self.child.kill();
                    self.forwarded = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                    continue;
                }
            };
            return match message {
                Some(Ok(message)) => Ok(message),
                None | Some(Err(FrameError::Closed)) => Err(self.died()),
                Some(Err(e)) => Err(self.refuse(&e.to_string())),
            };
        }
    }

    /// The child ended its output: why, in words.
    fn died(&mut self) -> anyhow::Error {
        let status = self.child.wait();
        self.stopped = true;
        self.join_stderr();
        match status {
            Ok(status) => anyhow!("the download process ended unexpectedly ({status})"),
            Err(e) => anyhow!("the download process ended unexpectedly ({e})"),
        }
    }

    /// A protocol violation: the child is killed; whatever it said is not believed.
    fn refuse(&mut self, what: &str) -> anyhow::Error {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped = true;
        self.join_stderr();
        anyhow!(
            "the download process broke the protocol ({}); stopped it",
            clean(what)
        )
    }

    fn join_stderr(&mut self) {
        if let Some(stderr) = self.stderr.take() {
            let _ = stderr.join();
        }
    }

    /// The signal the run was interrupted by, as pacman's exit code.
    fn interrupted(&self) -> Option<anyhow::Error> {
        self.interrupt
            .signal()
            .map(|signum| anyhow!(crate::ExitQuietly(128 + signum as u8)))
    }

    /// Fetches the `stale` indexes and keeps them in `dir`.
    pub async fn refresh_indexes(&mut self, stale: Vec<Stale>, dir: &Path) -> Result<Recorded> {
        let pending = self.request_indexes(stale, None);
        let mut notes = Notes::default();
        let recorded = self.receive_indexes(pending, dir, &mut notes).await;
        notes.show();
        recorded
    }

    /// Asks for the `stale` indexes without waiting: the child fetches them while this process
    /// goes on (with the planning of the transaction), and [`Fetcher::receive_indexes`] keeps
    /// them. Nothing else may be asked in between. With `warm_up`, the child also starts the
    /// swarm of the prefetch to come meanwhile, if an index lists files.
    pub fn request_indexes(
        &mut self,
        stale: Vec<Stale>,
        warm_up: Option<SwarmSettings>,
    ) -> PendingIndexes {
        let requests = stale
            .iter()
            .map(|s| IndexRequest {
                urls: s.urls.clone(),
            })
            .collect();
        self.send(ToChild::RefreshIndexes { requests, warm_up });
        PendingIndexes { stale }
    }

    /// The answer to [`Fetcher::request_indexes`]: the indexes it fetched are kept in `dir`,
    /// and returned by repo. What there is to tell the user goes to `notes`.
    pub async fn receive_indexes(
        &mut self,
        pending: PendingIndexes,
        dir: &Path,
        notes: &mut Notes,
    ) -> Result<Recorded> {
        let stale = &pending.stale;
        let outcomes = loop {
            match self.next().await {
                Ok(ToParent::Say { level, text }) => notes.say(level, clean(&text)),
                Ok(ToParent::Indexes(outcomes)) if outcomes.len() == stale.len() => break outcomes,
                Ok(other) => return Err(self.refuse(&format!("{other:?}"))),
                Err(e) => return Err(self.interrupted().unwrap_or(e)),
            }
        };
        if let Some(interrupted) = self.interrupted() {
            return Err(interrupted);
        }
        let mut recorded = Recorded::new();
        for (n, (stale, outcome)) in stale.iter().zip(outcomes).enumerate() {
            let fetched = match outcome {
                IndexOutcome::Fetched => {
                    match self.intake.index(n, crate::index::MAX_INDEX_BYTES) {
                        Ok(bytes) => Fetched::Index(bytes),
                        Err(e) => {
                            tracing::info!("torrent index of {}: {e}", stale.repo);
                            Fetched::Failed
                        }
                    }
                }
                IndexOutcome::PublishesNothing => Fetched::Nothing,
                IndexOutcome::Failed => Fetched::Failed,
            };
            if let Some(loaded) = indexes::record(dir, stale, fetched, notes) {
                recorded.insert(stale.repo.clone(), loaded);
            }
        }
        Ok(recorded)
    }

    /// Runs the prefetch of `job` in the child, taking each file it offers into the cache.
    /// Returns the child's report, with the count of files placed by the root process.
    pub async fn prefetch(&mut self, job: PrefetchJob) -> Result<Report> {
        for file in &job.files {
            if !crate::index::valid_file_name(&file.filename) {
                bail!(
                    "the database names a package file {:?}, which is not a plain file name",
                    file.filename
                );
            }
        }
        let files = job.files.clone();
        self.send(ToChild::Prefetch(Box::new(job)));
        let mut run = Run {
            files: &files,
            intake: self.intake.clone(),
            outbox: self.outbox.clone(),
            progress: None,
            bars: HashMap::new(),
            pipes: HashMap::new(),
            placed_here: HashSet::new(),
            signatures: Vec::new(),
            placed: Arc::default(),
        };
        let result = loop {
            let message = match self.next().await {
                Ok(message) => message,
                Err(e) => break Err(e),
            };
            match message {
                ToParent::Say { level, text } => run.say(level, &clean(&text)),
                ToParent::Progress(progress) => {
                    if let Err(why) = run.progress(progress) {
                        break Err(self.refuse(&why));
                    }
                }
                ToParent::Ready { file, staged } => {
                    if let Err(why) = run.ready(file, staged) {
                        break Err(self.refuse(&why));
                    }
                }
                ToParent::ReadyInline { file, bytes } => {
                    if let Err(why) = run.ready_inline(file, bytes.0) {
                        break Err(self.refuse(&why));
                    }
                }
                ToParent::PrefetchDone(result) => break Ok(result),
                other => break Err(self.refuse(&format!("{other:?}"))),
            }
        };
        // No copy may still be on its way into the cache once this returns.
        let placed = run.settle().await;
        if let Some(interrupted) = self.interrupted() {
            return Err(interrupted);
        }
        match result? {
            Ok(report) => Ok(Report {
                files: placed,
                ..report
            }),
            Err(Failure::Interrupted) => bail!("the download process was interrupted"),
            Err(Failure::Error(message)) => Err(anyhow!("{}", clean(&message))),
        }
    }

    /// Stops the child: seeding ends, its staging copies go. The bytes it uploaded.
    pub async fn stop(mut self) -> u64 {
        self.send(ToChild::Stop);
        let mut uploaded = 0;
        let waited = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match self.inbox.recv().await {
                    Some(Ok(ToParent::Stopped { uploaded: bytes })) => break bytes,
                    Some(Ok(ToParent::Say { level, text })) => ui::say(level, &clean(&text)),
                    Some(Ok(_)) => {}
                    _ => break 0,
                }
            }
        })
        .await;
        if let Ok(bytes) = waited {
            uploaded = bytes;
        }
        // It exits within milliseconds of saying it stopped.
        let exited = tokio::time::timeout(Duration::from_secs(5), exit_of(&mut self.child)).await;
        if exited.is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.stopped = true;
        self.join_stderr();
        uploaded
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            // What it wrote before it went (an interrupted run's "interrupted: ..." line) is
            // still in the pipe: the relay prints it before this process exits.
            self.join_stderr();
        }
    }
}

/// One prefetch as the root process follows it.
struct Run<'a> {
    files: &'a [PackageFile],
    intake: Arc<Intake>,
    outbox: ChildSender,
    progress: Option<DownloadProgress>,
    bars: HashMap<u32, FileProgress>,
    /// Copies under way, per file.
    pipes: HashMap<u32, Pipe>,
    /// Small files placed by the run itself, without a copy task: a later offer of one is
    /// answered as already placed.
    placed_here: HashSet<u32>,
    signatures: Vec<JoinHandle<()>>,
    placed: Arc<AtomicUsize>,
}

/// A file's copy task and its instructions.
struct Pipe {
    steps: mpsc::UnboundedSender<Step>,
    task: JoinHandle<()>,
}

enum Step {
    /// Copy what is final of this staged file (up to this many bytes).
    Advance(Staged, u64),
    /// The child offers this staged file, complete: the copy that followed it is finished, or
    /// else the file is taken.
    Ready(Staged),
    /// The child sent the whole file from a mirror (a small one) over the pipe.
    Inline(Vec<u8>),
}

impl Step {
    /// The staged kind the child awaits a verdict for (an inline file is a mirror's copy).
    fn staged(&self) -> Staged {
        match self {
            Step::Advance(staged, _) | Step::Ready(staged) => *staged,
            Step::Inline(_) => Staged::Mirror,
        }
    }
}

impl Run<'_> {
    fn file(&self, id: u32) -> Result<&PackageFile, String> {
        self.files
            .get(id as usize)
            .ok_or_else(|| format!("file number {id} of {}", self.files.len()))
    }

    fn say(&self, level: Level, text: &str) {
        match &self.progress {
            Some(progress) => progress.say(level, text),
            None => ui::say(level, text),
        }
    }

    fn progress(&mut self, event: Progress) -> Result<(), String> {
        match event {
            Progress::Start { files, bytes } => {
                self.progress = Some(DownloadProgress::new(files as usize, bytes));
            }
            Progress::FileStart { file } => {
                let f = self.file(file)?;
                let (name, size) = (f.filename.clone(), f.size);
                if let Some(progress) = &self.progress {
                    self.bars.insert(file, progress.start(&name, size));
                }
            }
            Progress::Bar {
                file,
                kept,
                active,
                swarm_prefix,
            } => {
                let size = self.file(file)?.size;
                if let Some(bar) = self.bars.get(&file) {
                    bar.show([kept[0].min(size), kept[1].min(size)], active);
                }
                // Only a large swarm copy is followed as it arrives; every other copy is taken
                // whole when offered (see FOLLOWED_SWARM_COPY).
                let hint = (size > FOLLOWED_SWARM_COPY && swarm_prefix > 0)
                    .then_some(Step::Advance(Staged::Swarm, swarm_prefix));
                if let Some(step) = hint {
                    self.pipe(file)?.steps.send(step).ok();
                }
            }
            Progress::FileDone { file } => {
                self.file(file)?;
                self.bars.remove(&file);
            }
            Progress::Warn { text } => self.say(Level::Warning, &clean(&text)),
            Progress::Finish { peers, mirrors } => {
                if let Some(progress) = self.progress.take() {
                    progress.finish(peers, mirrors);
                }
            }
        }
        Ok(())
    }

    fn ready(&mut self, file: u32, staged: Staged) -> Result<(), String> {
        let f = self.file(file)?;
        let (name, small) = (f.filename.clone(), f.size <= MAX_INLINE_FILE);
        match staged {
            Staged::Mirror | Staged::Swarm if small && !self.pipes.contains_key(&file) => {
                self.place_here(file, staged, |intake, expected| {
                    intake.take(expected, staged)
                })?;
            }
            Staged::Mirror | Staged::Swarm => {
                self.pipe(file)?.steps.send(Step::Ready(staged)).ok();
            }
            Staged::Signature => {
                let (intake, outbox) = (self.intake.clone(), self.outbox.clone());
                self.signatures.push(tokio::spawn(async move {
                    let placed = tokio::task::spawn_blocking(move || intake.signature(&name))
                        .await
                        .unwrap_or_else(|e| Err(Refusal::Failed(e.to_string())));
                    outbox.send(&ToChild::Verdict {
                        file,
                        staged,
                        placed,
                    });
                }));
            }
            Staged::Index => return Err("an index offered during the prefetch".into()),
        }
        Ok(())
    }

    fn ready_inline(&mut self, file: u32, bytes: Vec<u8>) -> Result<(), String> {
        let size = self.file(file)?.size;
        if size > MAX_INLINE_FILE || bytes.len() as u64 > size {
            return Err(format!(
                "{} bytes sent inline for a file of {size}",
                bytes.len()
            ));
        }
        if let Some(pipe) = self.pipes.get(&file) {
            // A copy of the file is under way: its task decides which one is placed.
            pipe.steps.send(Step::Inline(bytes)).ok();
            return Ok(());
        }
        self.place_here(file, Staged::Mirror, |intake, expected| {
            intake.place_bytes(expected, &bytes)
        })
    }

    /// Places a small file with no copy under way (the usual case: one source, at most
    /// [`MAX_INLINE_FILE`] bytes) in the run itself: hashing and writing it takes less time
    /// than handing it to a task and a blocking thread and back (1,000 files of 50 KB: 2,000
    /// fewer thread wake-ups), and answers the child.
    fn place_here(
        &mut self,
        file: u32,
        staged: Staged,
        place: impl FnOnce(&Intake, &Expected) -> Result<(), Refusal>,
    ) -> Result<(), String> {
        let verdict = if self.placed_here.contains(&file) {
            Ok(())
        } else {
            let placed = place(&self.intake, &self.expected(file)?);
            if placed.is_ok() {
                self.placed_here.insert(file);
                self.placed.fetch_add(1, Ordering::SeqCst);
            }
            placed
        };
        self.outbox.send(&ToChild::Verdict {
            file,
            staged,
            placed: verdict,
        });
        Ok(())
    }

    fn expected(&self, file: u32) -> Result<Expected, String> {
        let f = self.file(file)?;
        Ok(Expected {
            name: f.filename.clone(),
            size: f.size,
            sha256: f.sha256,
        })
    }

    fn pipe(&mut self, file: u32) -> Result<&Pipe, String> {
        let expected = self.expected(file)?;
        let placed_once = self.placed_here.contains(&file);
        let (intake, outbox, placed) = (
            self.intake.clone(),
            self.outbox.clone(),
            self.placed.clone(),
        );
        Ok(self.pipes.entry(file).or_insert_with(|| {
            let (steps, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(copy_task(
                intake,
                expected,
                CopyTask { file, placed_once },
                rx,
                outbox,
                placed,
            ));
            Pipe { steps, task }
        }))
    }

    /// Ends every copy task (a copy not offered as complete is thrown away) and returns how
    /// many files the root process placed in the cache.
    async fn settle(mut self) -> usize {
        self.bars.clear();
        for (_, pipe) in self.pipes.drain() {
            drop(pipe.steps);
            let _ = pipe.task.await;
        }
        for task in self.signatures.drain(..) {
            let _ = task.await;
        }
        self.placed.load(Ordering::SeqCst)
    }
}

/// Which file a copy task is for, and whether it is in the cache already.
struct CopyTask {
    file: u32,
    placed_once: bool,
}

/// Copies one file as it arrives and, when the child offers it, finishes, verifies and places
/// it, then tells the child the verdict.
async fn copy_task(
    intake: Arc<Intake>,
    expected: Expected,
    CopyTask {
        file,
        mut placed_once,
    }: CopyTask,
    mut steps: mpsc::UnboundedReceiver<Step>,
    outbox: ChildSender,
    placed: Arc<AtomicUsize>,
) {
    let mut copy: Option<super::intake::Copy> = None;
    // Once the file is in the cache, progress reports still on their way must not begin a
    // copy that nothing would finish (each holds a buffer and a file until the run ends).
    while let Some(step) = steps.recv().await {
        let staged = step.staged();
        let verdict = match step {
            Step::Advance(..) if placed_once => continue,
            // The other source finished too: the verified copy is already in the cache.
            Step::Ready(_) | Step::Inline(_) if placed_once => Ok(()),
            Step::Advance(staged, upto) => {
                let current = match copy.take() {
                    Some(c) if c.staged == staged => c,
                    // Pipelining follows one copy; another one is taken whole when offered.
                    Some(other) => {
                        copy = Some(other);
                        continue;
                    }
                    None => match intake.begin(&expected, staged) {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                };
                let size = expected.size;
                copy = tokio::task::spawn_blocking(move || {
                    let mut current = current;
                    // A failure here is found again, and reported, when the file is offered.
                    let _ = current.advance(upto, size);
                    current
                })
                .await
                .ok();
                continue;
            }
            // A copy under way is the swarm's (a mirror's is never followed): it stays, in
            // case these bytes are refused.
            Step::Inline(bytes) => {
                let (intake, expected) = (intake.clone(), expected.clone());
                blocking(move || intake.place_bytes(&expected, &bytes)).await
            }
            Step::Ready(staged) => {
                let followed = copy.take_if(|c| c.staged == staged);
                // The other source's copy is of no further use.
                copy = None;
                let (intake, expected) = (intake.clone(), expected.clone());
                match followed {
                    Some(c) => blocking(move || intake.finish(c, &expected)).await,
                    None => blocking(move || intake.take(&expected, staged)).await,
                }
            }
        };
        if verdict.is_ok() && !placed_once {
            placed.fetch_add(1, Ordering::SeqCst);
            placed_once = true;
        }
        outbox.send(&ToChild::Verdict {
            file,
            staged,
            placed: verdict,
        });
    }
}

/// Returns once `child` has exited (and is reaped). Every run waits for this: its process
/// descriptor wakes the wait the moment the child is gone. Polling every millisecond instead
/// (where the kernel has no pidfd, before Linux 5.3) cost a run 2.5 ms, as tokio's timer
/// rounds each sleep up to the next tick.
async fn exit_of(child: &mut Child) {
    // Already reaped (it died earlier): its pid may name another process by now. Not yet
    // reaped, the pid is the child's until `try_wait` below reaps it.
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if let Ok(fd) = i32::try_from(fd)
        && fd >= 0
    {
        // SAFETY: the descriptor was just created by pidfd_open and is owned here alone.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: an OwnedFd keeps its descriptor open, unchanged, until it is dropped with
        // the AsyncFd.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        };
        if let Ok(fd) = registered {
            // Readable once the process has exited.
            let _ = fd.readable().await;
        }
    }
    while matches!(child.try_wait(), Ok(None)) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A placement on a blocking thread: it reads and writes whole files.
async fn blocking(
    place: impl FnOnce() -> Result<(), Refusal> + Send + 'static,
) -> Result<(), Refusal> {
    tokio::task::spawn_blocking(place)
        .await
        .unwrap_or_else(|e| Err(Refusal::Failed(e.to_string())))
}

/// Passes the child's stderr on, line by line, cleaned of control characters; a line longer
/// than a few KiB is cut.
fn forward_stderr(stderr: std::process::ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(protocol::MAX_TEXT as u64 * 4)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = clean(&String::from_utf8_lossy(&line));
                if !text.is_empty() {
                    eprintln!("{text}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[tokio::test]
    async fn progress_after_the_file_is_placed_begins_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        let staging = Staging::of(&cache);
        std::fs::create_dir_all(staging.fetch.join("swarm")).unwrap();
        let intake = Arc::new(Intake::new(staging.clone(), cache.clone(), None));
        let data = vec![5u8; 300_000];
        let expected = Expected {
            name: "a-1-1-any.pkg.tar.zst".into(),
            size: data.len() as u64,
            sha256: Some(sha2::Sha256::digest(&data).into()),
        };
        std::fs::write(Staged::Swarm.path(&staging.fetch, &expected.name), &data).unwrap();
        let (steps, rx) = mpsc::unbounded_channel();
        let (mut verdicts, pipe) = std::io::pipe().unwrap();
        let outbox = ChildSender::new(pipe).unwrap();
        let placed = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(copy_task(
            intake,
            expected.clone(),
            CopyTask {
                file: 0,
                placed_once: false,
            },
            rx,
            outbox,
            placed.clone(),
        ));
        steps.send(Step::Advance(Staged::Swarm, 100_000)).unwrap();
        steps.send(Step::Ready(Staged::Swarm)).unwrap();
        // Late progress of the same file, and the other source finishing too.
        steps.send(Step::Advance(Staged::Swarm, 300_000)).unwrap();
        steps.send(Step::Advance(Staged::Mirror, 300_000)).unwrap();
        steps.send(Step::Ready(Staged::Mirror)).unwrap();
        let verdict = |v: ToChild| match v {
            ToChild::Verdict { placed, .. } => placed,
            other => panic!("{other:?}"),
        };
        let first = tokio::task::spawn_blocking(move || {
            let first = protocol::read_frame(&mut verdicts, protocol::MAX_FRAME).unwrap();
            (first, verdicts)
        })
        .await
        .unwrap();
        assert_eq!(verdict(first.0), Ok(()));
        // Nothing is copied any more: root's directory holds no copy in the making.
        let mut verdicts = first.1;
        let second = tokio::task::spawn_blocking(move || {
            protocol::read_frame(&mut verdicts, protocol::MAX_FRAME).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(verdict(second), Ok(()), "the file is in the cache");
        let copies: Vec<_> = std::fs::read_dir(&staging.work)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "fetch")
            .collect();
        assert!(copies.is_empty(), "{copies:?}");
        drop(steps);
        task.await.unwrap();
        assert_eq!(placed.load(Ordering::SeqCst), 1);
        assert_eq!(std::fs::read(cache.join(&expected.name)).unwrap(), data);
    }
}
