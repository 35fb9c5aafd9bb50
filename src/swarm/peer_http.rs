//! Small package files over plain HTTP between pactor peers, on their BitTorrent port.
//!
//! A torrent costs the same whatever its size: a session entry, a tracker announce, a TCP
//! connection with its handshakes, bitfields and requests, on both sides. For a 50 KB package
//! that is most of the work: 1,000 of them over the swarm took 0.59 s where pacman takes 0.16 s
//! from a mirror (BENCHMARKS.md). So a pactor peer also answers `GET /<file name>` on its
//! BitTorrent port for the small files it seeds, and a run asks the peers that have already
//! served it over BitTorrent for its other small files there, over one kept-alive connection,
//! before it adds their torrents. librqbit tells the two protocols apart by the first byte (a
//! handshake opens with 19; patch 23), so there is no second port to configure or announce.
//!
//! Trust does not change: a file from a peer's HTTP is judged like any mirror copy, by the root
//! process against the sync database's sha256, and a peer that sent a bad one is not asked
//! again. What is served is bounded: only files this process seeds (looked up by name, never
//! a path taken from the request), only up to [`SMALL_FILE`] bytes, only `GET` and `HEAD`,
//! under the session's upload limit, and to [`MAX_CONNECTIONS`] connections at once. A
//! super-seeder serves none: it exists to send each piece once, and whole files over HTTP to
//! every client that asks would send them K times.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode, header};
use futures_util::StreamExt;
use librqbit::{ForeignConnection, Session};
use tokio::sync::mpsc::UnboundedReceiver;

/// The largest file asked for and served over HTTP. Below this a torrent's fixed cost (a few
/// milliseconds of round trips and tasks) outweighs moving the bytes; above it, BitTorrent's
/// pieces spread the file among peers, which whole-file requests would not.
pub const SMALL_FILE: u64 = 1024 * 1024;

/// A request's headers must arrive within this; a peer that connects and says nothing is
/// dropped, and so is a kept-alive connection idle this long (hyper starts the timer as it
/// waits for the next request).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A response that cannot make progress for this long (the peer asked and takes no byte) is
/// abandoned with its connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many peers' connections are served at once; one more is closed unanswered
/// (its client leaves this peer to BitTorrent). Each holds a task and, while it sends, a file
/// of up to [`SMALL_FILE`] in memory, and anyone can connect; one whose peer says nothing for
/// [`HEADER_TIMEOUT`] or reads nothing for [`WRITE_TIMEOUT`] is closed, so no client holds a
/// slot for long without using it.
pub const MAX_CONNECTIONS: usize = 64;

/// Bytes taken from the upload limit at a time, as librqbit takes them per block.
const LIMIT_CHUNK: usize = 16 * 1024;

/// The files this process serves over HTTP, and what it sent.
#[derive(Default)]
pub(super) struct Shelf {
    files: Mutex<HashMap<String, PathBuf>>,
    uploaded: AtomicU64,
}

impl Shelf {
    pub fn put(&self, name: &str, path: PathBuf) {
        self.files
            .lock()
            .expect("no poisoning")
            .insert(name.to_owned(), path);
    }

    pub fn remove(&self, name: &str) {
        self.files.lock().expect("no poisoning").remove(name);
    }

    pub fn uploaded(&self) -> u64 {
        self.uploaded.load(Ordering::Relaxed)
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.files.lock().expect("no poisoning").get(name).cloned()
    }
}

/// Answers the connections librqbit hands over until the session is gone.
pub(super) fn serve(
    shelf: Arc<Shelf>,
    session: Weak<Session>,
    mut connections: UnboundedReceiver<ForeignConnection>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        while let Some(connection) = connections.recv().await {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!(
                    "HTTP from peer {}: {MAX_CONNECTIONS} connections served already; closed",
                    connection.addr
                );
                continue;
            };
            let (shelf, session) = (shelf.clone(), session.clone());
            tokio::spawn(async move {
                serve_connection(connection, shelf, session).await;
                drop(slot);
            });
        }
    });
}

async fn serve_connection(
    connection: ForeignConnection,
    shelf: Arc<Shelf>,
    session: Weak<Session>,
) {
    let ForeignConnection {
        addr,
        prefix,
        reader,
        writer,
    } = connection;
    let reader = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(prefix), reader);
    let mut writer = tokio_io_timeout::TimeoutWriter::new(writer);
    writer.set_timeout(Some(WRITE_TIMEOUT));
    let io = tokio::io::join(reader, Box::pin(writer));
    let service = hyper::service::service_fn(move |request| {
        let (shelf, session) = (shelf.clone(), session.clone());
        async move { Ok::<_, Infallible>(answer(&shelf, &session, &request).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("HTTP from peer {addr}: {e}");
    }
}

async fn answer<B>(
    shelf: &Arc<Shelf>,
    session: &Weak<Session>,
    request: &Request<B>,
) -> Response<Body> {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Some(path) = requested(request.uri().path()).and_then(|name| shelf.path(&name)) else {
        return status(StatusCode::NOT_FOUND);
    };
    let bytes = match read_small(&path) {
        Some(bytes) => bytes,
        None => return status(StatusCode::NOT_FOUND),
    };
    let len = bytes.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(limited(bytes::Bytes::from(bytes), session.clone(), shelf))
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .expect("a valid response")
}

/// The body, chunk by chunk as the session's upload limit allows, each counted as uploaded
/// once it is handed to the connection.
fn limited(
    bytes: bytes::Bytes,
    session: Weak<Session>,
    shelf: &Arc<Shelf>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + use<> {
    let shelf = shelf.clone();
    let chunks: Vec<bytes::Bytes> = (0..bytes.len())
        .step_by(LIMIT_CHUNK)
        .map(|at| bytes.slice(at..(at + LIMIT_CHUNK).min(bytes.len())))
        .collect();
    futures_util::stream::iter(chunks).then(move |chunk| {
        let (session, shelf) = (session.clone(), shelf.clone());
        async move {
            if let Some(session) = session.upgrade() {
                let len = NonZeroU32::new(chunk.len() as u32).expect("chunks are not empty");
                session
                    .ratelimits
                    .prepare_for_upload(len)
                    .await
                    .map_err(std::io::Error::other)?;
            }
            shelf
                .uploaded
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Ok(chunk)
        }
    })
}

/// The file name a request path asks for: one segment, percent-decoded, a plain name.
fn requested(path: &str) -> Option<String> {
    let segment = path.strip_prefix('/')?;
    crate::serve::decode_plain_name(segment)
}

/// A seeded file's bytes, if it is small enough to serve this way. Read on the worker, as
/// librqbit reads its chunks (`inline_chunk_io`): a small seeded file is in the page cache, and
/// three hops to a blocking thread (open, stat, read) cost more than the read.
fn read_small(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len > SMALL_FILE {
        return None;
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(SMALL_FILE).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

fn status(code: StatusCode) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("a valid response")
}

/// The peers a run asks for small files over HTTP: those that served it over BitTorrent (by
/// their listening address) and those pactor.conf names, until one fails to answer HTTP or
/// sends a file the database refuses.
#[derive(Default)]
pub struct HttpPeers {
    state: Mutex<PeersState>,
}

#[derive(Default)]
struct PeersState {
    /// In the order they were learned; the first ones are asked first.
    known: Vec<SocketAddr>,
    dropped: Vec<SocketAddr>,
}

/// Peers asked for one file before its torrent is added: a fleet's peers each hold a different
/// part of the update, and a miss (404) costs a round trip on a kept-alive connection.
const ASKED_PER_FILE: usize = 2;

impl HttpPeers {
    pub fn learn(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let mut state = self.state.lock().expect("no poisoning");
        for addr in addrs {
            if !state.known.contains(&addr) && !state.dropped.contains(&addr) {
                state.known.push(addr);
            }
        }
    }

    /// The peers to ask for a file of `size` bytes now: none for a large file.
    pub fn to_ask(&self, size: u64) -> Vec<SocketAddr> {
        if size > SMALL_FILE {
            return Vec::new();
        }
        let state = self.state.lock().expect("no poisoning");
        state.known.iter().take(ASKED_PER_FILE).copied().collect()
    }

    /// `addr` does not speak pactor's HTTP, or sent a file that failed verification.
    pub fn drop_peer(&self, addr: SocketAddr) {
        let mut state = self.state.lock().expect("no poisoning");
        state.known.retain(|known| *known != addr);
        if !state.dropped.contains(&addr) {
            state.dropped.push(addr);
        }
    }
}

/// Where a peer serves `name`.
pub fn url(addr: SocketAddr, name: &str) -> String {
    format!("http://{addr}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_one_plain_file() {
        assert_eq!(
            requested("/a-1-1-any.pkg.tar.zst").as_deref(),
            Some("a-1-1-any.pkg.tar.zst")
        );
        assert_eq!(
            requested("/a%3A1-1-any.pkg.tar.zst").as_deref(),
            Some("a:1-1-any.pkg.tar.zst")
        );
        for bad in [
            "",
            "/",
            "a",
            "/../etc/passwd",
            "/x/y",
            "/x%2Fy",
            "/.hidden",
            "/%zz",
        ] {
            assert_eq!(requested(bad), None, "{bad}");
        }
    }

    #[test]
    fn peers_are_asked_in_the_order_learned_until_dropped_and_never_for_large_files() {
        let peers = HttpPeers::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:3".parse().unwrap();
        assert!(peers.to_ask(10).is_empty());
        peers.learn([a, b, a, c]);
        assert_eq!(peers.to_ask(10), [a, b]);
        assert!(peers.to_ask(SMALL_FILE + 1).is_empty());
        peers.drop_peer(a);
        assert_eq!(peers.to_ask(SMALL_FILE), [b, c]);
        // A dropped peer is not learned again from a later torrent.
        peers.learn([a]);
        assert_eq!(peers.to_ask(1), [b, c]);
    }
}
