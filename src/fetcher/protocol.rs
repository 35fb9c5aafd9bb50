//! What the root process and the download process say to each other over their pipes: frames of
//! at most [`MAX_FRAME`] bytes, each a big-endian `u32` length and a JSON message, which a
//! message with a [`Payload`] follows with that many raw bytes. The parent
//! speaks first ([`ToChild::Start`]), the child answers [`ToParent::Hello`] with its
//! [`VERSION`]; a mismatch ends the conversation.
//!
//! The parent treats every byte the child sends as hostile: a frame over the limit, bad JSON, an
//! unknown file number or a text with control characters is a protocol error (the child is
//! killed) or is cleaned before it reaches the terminal. Nothing the child says can name a path:
//! files are numbers into the parent's own list, and where a staged file lies follows from its
//! [`Staged`] kind and the parent's own name for it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::transaction::PackageFile;

/// Bumped whenever a message changes meaning.
pub const VERSION: u32 = 5;
/// The largest message the root process reads from the child: progress and offers are a few
/// dozen bytes.
pub const MAX_FRAME: usize = 4 << 20;
/// The largest message the child reads from the root process, which it trusts: a job carries
/// the repos' torrent indexes (Arch's largest is a few MiB; each may be up to 64 MiB).
pub const MAX_JOB_FRAME: usize = 512 << 20;
/// The largest file the child sends over the pipe ([`ToParent::ReadyInline`]) rather than
/// staging it: for files this small, creating and removing a staging file costs more than
/// the bytes. It is also the largest [`Payload`] the root process reads.
pub const MAX_INLINE_FILE: u64 = 256 << 10;
/// Text from the child is cut to this many characters.
pub const MAX_TEXT: usize = 2048;

/// Everything the child needs to know before its first request; it enters the sandbox with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Start {
    pub version: u32,
    pub sandbox: super::sandbox::Plan,
    /// The child's staging directory (`<cache>/download-pactor/fetch`), the only place it
    /// writes.
    pub fetch_dir: PathBuf,
    pub connect_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub debug: bool,
}

/// A swarm session's settings (`swarm::SwarmConfig`, as the pipe carries them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SwarmSettings {
    pub listen: Option<std::net::SocketAddr>,
    pub dht: bool,
    pub lsd: bool,
    pub trackers: Vec<String>,
    pub upload_bps: Option<u32>,
    pub download_bps: Option<u32>,
    pub outgoing_peers: usize,
}

/// One repo's torrent index to fetch: the URLs to try in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexRequest {
    pub urls: Vec<String>,
}

/// What became of an [`IndexRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexOutcome {
    /// Staged as [`Staged::Index`] of the request's number.
    Fetched,
    /// A server answered 404: the repo publishes no index.
    PublishesNothing,
    /// Every URL failed.
    Failed,
}

/// The prefetch: the files the commit needs and how to get them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrefetchJob {
    pub files: Vec<PackageFile>,
    pub cache_dirs: Vec<PathBuf>,
    pub parallel: usize,
    /// The repos' torrent indexes, as the parent read and parsed them.
    pub indexes: Vec<(String, Base64)>,
    pub swarm: SwarmSettings,
    pub peers: Vec<String>,
    pub stall_ms: u64,
    /// Whether the run seeds while it commits: only then are the mirrors' copies of what the
    /// swarm knows kept and seeded after the prefetch. Otherwise (`-w`, `SeedWhileInstalling
    /// = no`) the child is stopped right after it, and keeping them would only cost one more
    /// hashing of every file and their removal while the run waits.
    pub seed_after: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToChild {
    Start(Start),
    RefreshIndexes {
        requests: Vec<IndexRequest>,
        /// The swarm of the prefetch that will follow, if one may: started as soon as an index
        /// that lists files is in, while the root process plans (the session takes about 3 ms
        /// to start). The prefetch's own settings must be these.
        warm_up: Option<SwarmSettings>,
    },
    Prefetch(Box<PrefetchJob>),
    /// The parent's word on a [`ToParent::Ready`] file: in the cache, or why not.
    Verdict {
        file: u32,
        staged: Staged,
        placed: Result<(), Refusal>,
    },
    /// Stop seeding, clean up, exit.
    Stop,
}

/// Why the root process did not place an offered file in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// Its bytes are not the database's (size or sha256): another source may have it right.
    #[error("{0}")]
    Mismatch(String),
    /// It could not be taken (opened, copied, moved into the cache): another source would
    /// fare no better.
    #[error("{0}")]
    Failed(String),
}

impl Refusal {
    /// The file has `len` bytes where the database says `size`.
    pub fn size_mismatch(len: u64, size: u64) -> Refusal {
        Refusal::Mismatch(format!("has {len} bytes where the database says {size}"))
    }
}

/// A staged file the child offers: where it lies follows from the kind and the file's name
/// (never from anything the child says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Staged {
    /// `<fetch>/<name>.part`, from a mirror.
    Mirror,
    /// `<fetch>/swarm/<name>`, from peers.
    Swarm,
    /// `<fetch>/<name>.sig.part`, the detached signature.
    Signature,
    /// `<fetch>/index-<n>.torrents`, the n-th requested torrent index.
    Index,
}

impl Staged {
    /// The staged file's path below the fetch directory, as (subdirectory, file name).
    pub fn location(self, name: &str) -> (Option<&'static str>, String) {
        match self {
            Staged::Mirror => (None, format!("{name}.part")),
            Staged::Swarm => (Some("swarm"), name.to_owned()),
            Staged::Signature => (None, format!("{name}.sig.part")),
            Staged::Index => (None, format!("index-{name}.torrents")),
        }
    }

    /// A word for the kind, for file names.
    pub fn label(self) -> &'static str {
        match self {
            Staged::Mirror => "mirror",
            Staged::Swarm => "swarm",
            Staged::Signature => "sig",
            Staged::Index => "index",
        }
    }

    pub fn path(self, fetch_dir: &Path, name: &str) -> PathBuf {
        match self.location(name) {
            (Some(sub), file) => fetch_dir.join(sub).join(file),
            (None, file) => fetch_dir.join(file),
        }
    }
}

/// How a line the child wants shown is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// `:: text` on stdout.
    Section,
    /// A plain line on stdout.
    Line,
    Warning,
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToParent {
    Hello {
        version: u32,
    },
    Say {
        level: Level,
        text: String,
    },
    /// The answer to [`ToChild::RefreshIndexes`], one outcome per request, in order.
    Indexes(Vec<IndexOutcome>),
    Progress(Progress),
    /// The file is complete in staging and passed the child's own checks: the parent verifies
    /// it, places it and answers with a [`ToChild::Verdict`]. A copy is given up when offered:
    /// the child has closed a mirror's copy, and sealed a swarm copy (its writing descriptor
    /// closed); it never writes either again (it may read it, to seed it), so the parent takes
    /// that file itself rather than a copy, unless it followed a large swarm copy as it came.
    Ready {
        file: u32,
        staged: Staged,
    },
    /// A small file from a mirror, whole, sent instead of staged (at most
    /// [`MAX_INLINE_FILE`] bytes): the parent verifies and places these bytes and answers
    /// with a [`ToChild::Verdict`] for [`Staged::Mirror`].
    ReadyInline {
        file: u32,
        bytes: Payload,
    },
    /// The prefetch ended; the child keeps seeding until [`ToChild::Stop`].
    PrefetchDone(Result<Report, Failure>),
    /// The answer to [`ToChild::Stop`].
    Stopped {
        uploaded: u64,
    },
}

/// The download progress, for the parent to draw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Progress {
    Start {
        files: u32,
        bytes: u64,
    },
    FileStart {
        file: u32,
    },
    /// A file's bytes per source (peers, mirror) and who is working on it; `swarm_prefix` is
    /// how much of the swarm copy is final (its pieces verified, from the start).
    Bar {
        file: u32,
        kept: [u64; 2],
        active: [bool; 2],
        swarm_prefix: u64,
    },
    FileDone {
        file: u32,
    },
    Warn {
        text: String,
    },
    Finish {
        peers: u64,
        mirrors: u64,
    },
}

/// `prefetch::Report`, as the pipe carries it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Report {
    pub files: usize,
    pub bytes_from_peers: u64,
    pub bytes_from_mirrors: u64,
}

/// Why a prefetch failed; the child has already said the details.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Failure {
    /// Stopped by a signal (SIGINT, SIGTERM, SIGHUP, or the parent going away).
    Interrupted,
    /// Some files could not be retrieved, or the download process failed.
    Error(String),
}

/// Bytes carried as base64 text (JSON would spend four characters on each byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64(pub Vec<u8>);

impl Serialize for Base64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Base64)
            .map_err(serde::de::Error::custom)
    }
}

/// Bytes that travel raw after their message's frame: the JSON carries only their length.
/// Base64 in JSON cost the two processes more CPU than the rest of a small file's journey
/// (encoding, escaping, scanning and decoding 1,000 files of 50 KB: 0.15 s of 0.85 s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload(pub Vec<u8>);

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0.len() as u64)
    }
}

impl<'de> Deserialize<'de> for Payload {
    /// The length only: [`read_frame`] reads the bytes that follow the frame into the zeroed
    /// vector of that length.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let len = u64::deserialize(d)?;
        if len > MAX_INLINE_FILE {
            return Err(serde::de::Error::custom(format!(
                "a payload of {len} bytes, more than {MAX_INLINE_FILE}"
            )));
        }
        Ok(Payload(vec![0; len as usize]))
    }
}

/// A message as the pipes carry it: its payload, if it has one, follows its frame.
pub trait Message: Serialize + DeserializeOwned {
    /// The payload to write after the frame.
    fn payload(&self) -> Option<&Payload> {
        None
    }
    /// The payload to read after the frame, of the length the frame announced.
    fn payload_mut(&mut self) -> Option<&mut Payload> {
        None
    }
}

impl Message for Start {}
impl Message for ToChild {}
impl Message for ToParent {
    fn payload(&self) -> Option<&Payload> {
        match self {
            ToParent::ReadyInline { bytes, .. } => Some(bytes),
            _ => None,
        }
    }
    fn payload_mut(&mut self) -> Option<&mut Payload> {
        match self {
            ToParent::ReadyInline { bytes, .. } => Some(bytes),
            _ => None,
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the other side closed the pipe")]
    Closed,
    #[error("a message of {0} bytes, more than allowed")]
    TooLarge(usize),
    #[error("a malformed message: {0}")]
    Malformed(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let body = serde_json::to_vec(message).expect("messages always serialize");
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

fn check_len(header: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Writes one message: its frame, then its payload (blocking).
pub fn write_frame<T: Message>(out: &mut impl Write, message: &T) -> std::io::Result<()> {
    out.write_all(&encode(message))?;
    if let Some(payload) = message.payload() {
        out.write_all(&payload.0)?;
    }
    out.flush()
}

/// Reads one message, a frame of at most `max` bytes and the payload it announces (blocking).
pub fn read_frame<T: Message>(input: &mut impl Read, max: usize) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    input.read_exact(&mut header).map_err(closed_at_eof)?;
    let mut body = vec![0u8; check_len(header, max)?];
    input.read_exact(&mut body)?;
    let mut message: T = decode(&body)?;
    if let Some(payload) = message.payload_mut() {
        // Deserialize checked the length against MAX_INLINE_FILE.
        input.read_exact(&mut payload.0).map_err(closed_at_eof)?;
    }
    Ok(message)
}

/// [`read_frame`] on the child's runtime: a request wakes the task that reads them, not a
/// thread that wakes it.
pub async fn read_frame_async<T: Message>(
    input: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    input.read_exact(&mut header).await.map_err(closed_at_eof)?;
    let mut body = vec![0u8; check_len(header, max)?];
    input.read_exact(&mut body).await?;
    let mut message: T = decode(&body)?;
    if let Some(payload) = message.payload_mut() {
        input
            .read_exact(&mut payload.0)
            .await
            .map_err(closed_at_eof)?;
    }
    Ok(message)
}

/// Writes one message on the child's runtime without flushing `out`, for its writer task, which
/// flushes once its queue is empty: messages that come in a burst leave in one write.
pub async fn write_unflushed_async<T: Message>(
    out: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> std::io::Result<()> {
    out.write_all(&encode(message)).await?;
    if let Some(payload) = message.payload() {
        out.write_all(&payload.0).await?;
    }
    Ok(())
}

/// The pipe ending where a frame begins (or inside its payload) is the other side gone.
fn closed_at_eof(e: std::io::Error) -> FrameError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Closed,
        _ => FrameError::Io(e),
    }
}

/// Text from the child made safe for a terminal: no control characters (no escape sequences),
/// at most [`MAX_TEXT`] characters.
pub fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(MAX_TEXT)
        .collect();
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        let message = ToParent::Ready {
            file: 3,
            staged: Staged::Swarm,
        };
        write_frame(&mut buf, &message).unwrap();
        let back: ToParent = read_frame(&mut &buf[..], MAX_FRAME).unwrap();
        assert!(matches!(
            back,
            ToParent::Ready {
                file: 3,
                staged: Staged::Swarm
            }
        ));
    }

    #[tokio::test]
    async fn the_childs_async_frames_are_the_roots_blocking_ones() {
        // The child writes on its runtime what the root process reads blocking, payload too.
        let bytes: Vec<u8> = (0..MAX_INLINE_FILE).map(|i| (i * 13 % 251) as u8).collect();
        let mut buf = Vec::new();
        for file in 0..3 {
            let message = ToParent::ReadyInline {
                file,
                bytes: Payload(bytes.clone()),
            };
            write_unflushed_async(&mut buf, &message).await.unwrap();
        }
        let mut input = &buf[..];
        for want in 0..3 {
            match read_frame::<ToParent>(&mut input, MAX_FRAME).unwrap() {
                ToParent::ReadyInline { file, bytes: b } => {
                    assert_eq!(file, want);
                    assert!(b.0 == bytes);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            read_frame::<ToParent>(&mut input, MAX_FRAME),
            Err(FrameError::Closed)
        ));

        // And reads on its runtime what the root process writes blocking; a cut frame is not a
        // message.
        let mut buf = Vec::new();
        let verdict = ToChild::Verdict {
            file: 7,
            staged: Staged::Mirror,
            placed: Ok(()),
        };
        write_frame(&mut buf, &verdict).unwrap();
        write_frame(&mut buf, &ToChild::Stop).unwrap();
        buf.truncate(buf.len() - 1);
        let mut input = &buf[..];
        assert!(matches!(
            read_frame_async::<ToChild>(&mut input, MAX_JOB_FRAME).await,
            Ok(ToChild::Verdict { file: 7, .. })
        ));
        assert!(
            read_frame_async::<ToChild>(&mut input, MAX_JOB_FRAME)
                .await
                .is_err()
        );
    }

    #[test]
    fn the_largest_inline_file_arrives_intact_after_its_frame() {
        let bytes: Vec<u8> = (0..MAX_INLINE_FILE).map(|i| (i * 7 % 251) as u8).collect();
        let mut buf = Vec::new();
        let message = ToParent::ReadyInline {
            file: 1,
            bytes: Payload(bytes.clone()),
        };
        write_frame(&mut buf, &message).unwrap();
        write_frame(&mut buf, &ToParent::Hello { version: 9 }).unwrap();
        assert!(
            buf.len() < bytes.len() + 100,
            "raw, not encoded: {} bytes",
            buf.len()
        );
        let mut input = &buf[..];
        match read_frame::<ToParent>(&mut input, MAX_FRAME).unwrap() {
            ToParent::ReadyInline { file: 1, bytes: b } => assert!(b.0 == bytes),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_frame::<ToParent>(&mut input, MAX_FRAME).unwrap(),
            ToParent::Hello { version: 9 }
        ));
    }

    #[test]
    fn a_payload_too_large_or_cut_short_is_refused() {
        let mut too_large = Vec::new();
        let body = format!(
            r#"{{"ReadyInline":{{"file":1,"bytes":{}}}}}"#,
            MAX_INLINE_FILE + 1
        );
        too_large.extend_from_slice(&(body.len() as u32).to_be_bytes());
        too_large.extend_from_slice(body.as_bytes());
        assert!(matches!(
            read_frame::<ToParent>(&mut &too_large[..], MAX_FRAME),
            Err(FrameError::Malformed(_))
        ));

        let mut cut = Vec::new();
        let message = ToParent::ReadyInline {
            file: 1,
            bytes: Payload(vec![7; 1000]),
        };
        write_frame(&mut cut, &message).unwrap();
        cut.truncate(cut.len() - 1);
        assert!(matches!(
            read_frame::<ToParent>(&mut &cut[..], MAX_FRAME),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn oversized_truncated_and_garbage_frames_are_refused() {
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_frame::<ToParent>(&mut &huge[..], MAX_FRAME),
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(
            read_frame::<ToParent>(&mut &[0u8, 0][..], MAX_FRAME),
            Err(FrameError::Closed)
        ));
        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(b"{{{{{");
        assert!(matches!(
            read_frame::<ToParent>(&mut &garbage[..], MAX_FRAME),
            Err(FrameError::Malformed(_))
        ));
        let mut short = 50u32.to_be_bytes().to_vec();
        short.extend_from_slice(b"{}");
        assert!(read_frame::<ToParent>(&mut &short[..], MAX_FRAME).is_err());
    }

    #[test]
    fn a_job_with_large_indexes_fits_the_childs_limit() {
        let job = ToChild::Prefetch(Box::new(PrefetchJob {
            files: vec![],
            cache_dirs: vec![],
            parallel: 1,
            indexes: vec![("extra".into(), Base64(vec![0xab; 8 << 20]))],
            swarm: SwarmSettings::default(),
            peers: vec![],
            stall_ms: 1,
            seed_after: true,
        }));
        let mut buf = Vec::new();
        write_frame(&mut buf, &job).unwrap();
        assert!(buf.len() < (8 << 20) * 3 / 2, "base64, not JSON arrays");
        let back: ToChild = read_frame(&mut &buf[..], MAX_JOB_FRAME).unwrap();
        let ToChild::Prefetch(job) = back else {
            panic!()
        };
        assert_eq!(job.indexes[0].1.0.len(), 8 << 20);
        assert!(matches!(
            read_frame::<ToChild>(&mut &buf[..], MAX_FRAME),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn text_is_cleaned_of_escape_sequences() {
        assert_eq!(clean("a\x1b[2Jb\rc\n"), "a[2Jbc");
        assert_eq!(clean(&"x".repeat(10_000)).len(), MAX_TEXT);
    }

    #[test]
    fn staged_paths_stay_below_the_fetch_directory() {
        let fetch = Path::new("/c/download-pactor/fetch");
        assert_eq!(
            Staged::Swarm.path(fetch, "a.pkg"),
            Path::new("/c/download-pactor/fetch/swarm/a.pkg")
        );
        assert_eq!(
            Staged::Mirror.path(fetch, "a.pkg"),
            Path::new("/c/download-pactor/fetch/a.pkg.part")
        );
        assert_eq!(
            Staged::Index.path(fetch, "2"),
            Path::new("/c/download-pactor/fetch/index-2.torrents")
        );
    }
}
