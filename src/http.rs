//! One HTTP transfer of one file from one mirror into a `.part` file: resumed with `Range`,
//! bounded by a connect timeout and an idle timeout. There is no
//! minimum speed beyond the idle rule: a mirror is idle when a whole idle timeout brings less
//! than [`IDLE_FLOOR`] bytes, so a server that trickles a byte a second is left as one that
//! sends nothing, while any real transfer, however slow, goes on. Choosing mirrors and judging
//! the bytes is the prefetch's job.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::sync::mpsc;

use crate::interrupt::Interrupt;

/// What a finished transfer holds: the whole file's length (resumed prefix included). Its
/// bytes are judged by whoever takes the file (the root process hashes its own copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    pub len: u64,
    /// Bytes that came over the network in this transfer (the rest was already on disk).
    pub transferred: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("The requested URL returned error: {0}")]
    Status(StatusCode),
    #[error("no data for {0:?}")]
    Idle(Duration),
    #[error("less than {IDLE_FLOOR} bytes in {0:?}")]
    Trickle(Duration),
    #[error("the server sent more than the expected {0} bytes")]
    TooLong(u64),
    #[error("interrupted")]
    Interrupted,
    #[error("could not set up an HTTP client: {0}")]
    Setup(String),
    #[error("{}", root_cause(.0))]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The longest wait for a peer's HTTP to accept a connection (librqbit patch 21 gives a peer's
/// BitTorrent port as long).
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Files from this size up are fetched on the bulk runtime ([`Http::with_bulk`]), where
/// their connection's task and the file writer run side by side. Below it, a transfer is over
/// before that pays for the wake-ups between runtimes: a typical -Syu (150 files, median
/// 400 KB) took 387 -> 429 ms over HTTP with every file there.
const BULK_MIN: u64 = 8 << 20;

/// Fewer bytes than this in a whole idle timeout is no transfer at all.
pub const IDLE_FLOOR: u64 = 1024;

/// A shared HTTP client with pactor's timeouts.
#[derive(Clone)]
pub struct Http {
    /// Built on first use: building it reads the system's CA certificates (3 ms), and a run
    /// with nothing to download makes no request at all.
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
    connect_timeout: Duration,
    idle: Duration,
    interrupt: Interrupt,
    /// Whether this client is for peers: the environment's proxy settings do not apply to
    /// them, as they are reached directly (a LAN seedbox, the other machines of a fleet), and
    /// they speak plain HTTP, so no certificate authority is trusted (which spares loading the
    /// system's certificates a second time).
    peers: bool,
    /// Where transfers into files run, if not on the caller's runtime ([`Http::with_bulk`]).
    bulk: Option<Bulk>,
}

/// A runtime for transfers into files, with a client of its own: a pooled connection's task
/// runs on the runtime that opened it, so the two kinds of transfer keep apart.
#[derive(Clone)]
struct Bulk {
    runtime: tokio::runtime::Handle,
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
}

impl Http {
    pub fn new(connect_timeout: Duration, idle_timeout: Duration, interrupt: Interrupt) -> Http {
        Http {
            client: Arc::default(),
            connect_timeout,
            idle: idle_timeout,
            interrupt,
            peers: false,
            bulk: None,
        }
    }

    /// Runs the connections of transfers into files ([`Http::fetch`]) on `runtime`'s workers;
    /// transfers into memory stay on the caller's. A large file's bytes then cross from the
    /// connection's task to the file writer in parallel, while small files' many short steps
    /// wake no second worker (see `fetcher::child`).
    pub fn with_bulk(self, runtime: tokio::runtime::Handle) -> Http {
        Http {
            bulk: Some(Bulk {
                runtime,
                client: Arc::default(),
            }),
            ..self
        }
    }

    /// A client for peers, which are reached directly (no proxy) and are worth a second at
    /// most to connect to: a run falls back on their torrents.
    pub fn for_peers(&self) -> Http {
        Http {
            client: Arc::default(),
            connect_timeout: self.connect_timeout.min(PEER_CONNECT_TIMEOUT),
            idle: self.idle,
            interrupt: self.interrupt.clone(),
            peers: true,
            // Peers are asked only for files of at most 1 MiB (`swarm::SMALL_FILE`), far
            // below `BULK_MIN`: their transfers stay on the caller's runtime.
            bulk: None,
        }
    }

    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        self.client_in(&self.client)
    }

    fn client_in<'a>(
        &self,
        cell: &'a OnceLock<Result<reqwest::Client, String>>,
    ) -> Result<&'a reqwest::Client, FetchError> {
        cell.get_or_init(|| {
            let builder = reqwest::Client::builder();
            let builder = if self.peers {
                builder.no_proxy().tls_certs_only([])
            } else {
                builder
            };
            builder
                .connect_timeout(self.connect_timeout)
                .user_agent(concat!("pactor/", env!("CARGO_PKG_VERSION")))
                // Package files are already compressed; ask for the bytes as they are.
                .no_gzip()
                .build()
                .map_err(|e| root_cause(&e))
        })
        .as_ref()
        .map_err(|e| FetchError::Setup(e.clone()))
    }

    /// Downloads `url` into `part`, continuing from the bytes already there. `max_len` bounds
    /// what is accepted (the database's size); a complete `part` is returned without a request.
    /// `on_bytes` hears every chunk that arrives.
    pub async fn fetch(
        &self,
        url: &str,
        part: &Path,
        max_len: Option<u64>,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Fetched, FetchError> {
        match &self.bulk {
            Some(bulk) if max_len.is_some_and(|len| len >= BULK_MIN) => {
                let client = self.client_in(&bulk.client)?;
                let fetch = self.fetch_with(client, url, part, max_len, on_bytes);
                crate::runtime::on(&bulk.runtime, fetch).await
            }
            _ => {
                self.fetch_with(self.client()?, url, part, max_len, on_bytes)
                    .await
            }
        }
    }

    async fn fetch_with(
        &self,
        client: &reqwest::Client,
        url: &str,
        part: &Path,
        max_len: Option<u64>,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Fetched, FetchError> {
        let file = open_part(part)?;
        let mut offset = file.metadata()?.len();
        if max_len.is_some_and(|max| offset > max) {
            file.set_len(0)?;
            offset = 0;
        }
        if max_len == Some(offset) && offset > 0 {
            return Ok(Fetched {
                len: offset,
                transferred: 0,
            });
        }

        let mut request = client.get(url);
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let response = tokio::select! {
            biased;
            _ = self.interrupt.wait() => return Err(FetchError::Interrupted),
            response = self.idle_bound(request.send()) => response??,
        };
        match response.status() {
            StatusCode::PARTIAL_CONTENT if offset > 0 && range_start(&response) == Some(offset) => {
            }
            StatusCode::OK => {
                // The server ignored the range: start over.
                file.set_len(0)?;
                offset = 0;
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                // Our partial is longer than the server's file: it is not this file.
                file.set_len(0)?;
                return Err(FetchError::Status(StatusCode::RANGE_NOT_SATISFIABLE));
            }
            status => return Err(FetchError::Status(status)),
        }

        let mut writer = PartWriter::new(file, offset);
        let mut len = offset;
        let streamed = self
            .stream_body(response, &mut writer, &mut len, max_len, on_bytes)
            .await;
        // Whatever arrived before an error stays on disk for the next attempt to resume; the
        // file is closed when this returns (its taker relies on that).
        let file = writer.finish().await?;
        if let Err(e) = streamed {
            if matches!(e, FetchError::TooLong(_)) {
                file.set_len(0)?;
            }
            return Err(e);
        }
        Ok(Fetched {
            len,
            transferred: len - offset,
        })
    }

    /// Downloads all of `url` into memory (at most `max_len` bytes): for small files, where a
    /// staging file would cost more than the bytes (its creation and removal) and a lost
    /// transfer is cheap to repeat.
    pub async fn fetch_to_memory(
        &self,
        url: &str,
        max_len: u64,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Vec<u8>, FetchError> {
        let response = self.open(url, 0, None).await?;
        match response.status() {
            StatusCode::OK => {}
            status => return Err(FetchError::Status(status)),
        }
        let mut body = Vec::with_capacity(usize::try_from(max_len).unwrap_or(0));
        let mut len = 0;
        match self
            .stream_body(response, &mut body, &mut len, Some(max_len), on_bytes)
            .await
        {
            Ok(()) => Ok(body),
            // The whole file arrived before the connection broke (a Content-Length too
            // large): the bytes are judged like any others, as a staged file's would be.
            Err(FetchError::Http(_) | FetchError::Idle(_)) if len == max_len => Ok(body),
            Err(e) => Err(e),
        }
    }

    async fn stream_body(
        &self,
        response: reqwest::Response,
        writer: &mut impl Sink,
        len: &mut u64,
        max_len: Option<u64>,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), FetchError> {
        let mut stream = response.bytes_stream();
        // Bytes in the current idle window, which starts anew when it ends with enough.
        let (mut window_start, mut window_bytes) = (tokio::time::Instant::now(), 0u64);
        loop {
            let window_end = window_start + self.idle;
            let next = tokio::select! {
                biased;
                _ = self.interrupt.wait() => return Err(FetchError::Interrupted),
                next = tokio::time::timeout_at(window_end, stream.next()) => next,
            };
            let chunk = match next {
                Ok(None) => break,
                Ok(Some(chunk)) => {
                    let chunk = chunk?;
                    window_bytes += chunk.len() as u64;
                    Some(chunk)
                }
                Err(_) => None,
            };
            let now = tokio::time::Instant::now();
            if now >= window_end {
                if window_bytes < IDLE_FLOOR {
                    return Err(match window_bytes {
                        0 => FetchError::Idle(self.idle),
                        _ => FetchError::Trickle(self.idle),
                    });
                }
                (window_start, window_bytes) = (now, 0);
            }
            let Some(chunk) = chunk else { continue };
            if let Some(max) = max_len.filter(|max| *len + chunk.len() as u64 > *max) {
                return Err(FetchError::TooLong(max));
            }
            let n = chunk.len() as u64;
            *len += n;
            writer.put(chunk).await?;
            on_bytes(n);
        }
        Ok(())
    }

    /// A small file (an index) in memory: `Ok(None)` for a 404, the normal answer of a mirror
    /// that publishes nothing.
    pub async fn get_small(
        &self,
        url: &str,
        max_len: usize,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        let response = self.idle_bound(self.client()?.get(url).send()).await??;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(None),
            status => return Err(FetchError::Status(status)),
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = self.idle_bound(stream.next()).await? {
            body.extend_from_slice(&chunk?);
            if body.len() > max_len {
                return Err(FetchError::TooLong(max_len as u64));
            }
        }
        Ok(Some(body))
    }

    /// Sends a GET for `url` from byte `from` (a `Range` request when it is not 0), conditional
    /// on `if_modified_since`, and returns the response with its body unread: for callers that
    /// judge the status and consume the body themselves (`pactor serve` streams it onward).
    pub async fn open(
        &self,
        url: &str,
        from: u64,
        if_modified_since: Option<std::time::SystemTime>,
    ) -> Result<reqwest::Response, FetchError> {
        let mut request = self.client()?.get(url);
        if from > 0 {
            request = request.header(RANGE, format!("bytes={from}-"));
        }
        if let Some(since) = if_modified_since {
            request = request.header(
                reqwest::header::IF_MODIFIED_SINCE,
                httpdate::fmt_http_date(since),
            );
        }
        tokio::select! {
            biased;
            _ = self.interrupt.wait() => Err(FetchError::Interrupted),
            response = self.idle_bound(request.send()) => Ok(response??),
        }
    }

    /// The next piece of a body opened with [`Http::open`]; `None` at its end. Bounded by the
    /// idle timeout, never by a minimum speed.
    pub async fn chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, FetchError> {
        tokio::select! {
            biased;
            _ = self.interrupt.wait() => Err(FetchError::Interrupted),
            chunk = self.idle_bound(response.chunk()) => Ok(chunk??),
        }
    }

    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// The signal that interrupted the transfers, if one did.
    pub fn interrupted(&self) -> Option<i32> {
        self.interrupt.signal()
    }

    async fn idle_bound<F: std::future::Future>(&self, f: F) -> Result<F::Output, FetchError> {
        tokio::time::timeout(self.idle, f)
            .await
            .map_err(|_| FetchError::Idle(self.idle))
    }
}

/// Opens (or creates) a partial file to resume. One left root's by a run killed while the root
/// process held it (see `fetcher::intake`) cannot be written any more: it is removed and
/// started anew.
fn open_part(part: &Path) -> std::io::Result<std::fs::File> {
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(part)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            std::fs::remove_file(part)?;
            open()
        }
        other => other,
    }
}

/// Where a body's chunks go.
trait Sink {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()>;
}

impl Sink for Vec<u8> {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.extend_from_slice(&chunk);
        Ok(())
    }
}

/// Writes a body into its file on a blocking thread of its own, from the chunks as they came
/// off the socket: no buffer copies them again (a 1 GB file crossed two: a `BufWriter`'s and
/// `tokio::fs::File`'s), and the async task never waits on the disk unless the writer falls
/// [`PartWriter::QUEUE`] chunks behind.
struct PartWriter {
    chunks: mpsc::Sender<Bytes>,
    thread: tokio::task::JoinHandle<std::io::Result<std::fs::File>>,
}

impl PartWriter {
    const QUEUE: usize = 8;

    fn new(file: std::fs::File, offset: u64) -> PartWriter {
        let (tx, mut rx) = mpsc::channel::<Bytes>(Self::QUEUE);
        let thread = tokio::task::spawn_blocking(move || {
            use std::io::{IoSlice, Seek, Write};
            let mut file = file;
            file.seek(std::io::SeekFrom::Start(offset))?;
            let mut batch = Vec::with_capacity(Self::QUEUE);
            while let Some(chunk) = rx.blocking_recv() {
                batch.push(chunk);
                while batch.len() < Self::QUEUE {
                    match rx.try_recv() {
                        Ok(chunk) => batch.push(chunk),
                        Err(_) => break,
                    }
                }
                let mut slices: Vec<IoSlice> = batch.iter().map(|c| IoSlice::new(c)).collect();
                let mut slices = &mut slices[..];
                while !slices.is_empty() {
                    match file.write_vectored(slices) {
                        Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(n) => IoSlice::advance_slices(&mut slices, n),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                batch.clear();
            }
            Ok(file)
        });
        PartWriter { chunks: tx, thread }
    }

    /// Waits for everything put to be written and returns the file, or the error that stopped
    /// the writer.
    async fn finish(self) -> std::io::Result<std::fs::File> {
        drop(self.chunks);
        self.thread
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}

impl Sink for PartWriter {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        // A writer that stopped says why in `finish`.
        self.chunks
            .send(chunk)
            .await
            .map_err(|_| std::io::Error::other("the file writer stopped"))
    }
}

/// reqwest's own message names the URL, which the caller already shows; the innermost cause
/// ("Connection refused", "operation timed out") is what the user needs.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if e.is_connect() && !text.to_lowercase().contains("connect") {
        format!("could not connect: {text}")
    } else {
        text
    }
}

/// The first byte of a `206` response, from `Content-Range: bytes START-END/TOTAL`.
pub fn range_start(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    value
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}
