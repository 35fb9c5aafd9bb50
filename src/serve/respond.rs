//! HTTP answers: what pacman's curl expects from a mirror. `GET` and `HEAD`, byte ranges (pacman
//! resumes `.part` files), `Content-Length` always (curl checks that it got all of it),
//! `Last-Modified` (pacman's `If-Modified-Since` for databases), and plain 404s for anything a
//! database does not list.
//!
//! A package body is a window onto a file that may still be growing: it sends what is verified
//! and waits for more. Headers go out only once the first byte this client needs is verified,
//! so a fetch that fails early is a clean error status, and a fetch that fails later is a cut
//! connection (curl reports the transfer as partial and pacman tries its next server).

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use tokio::sync::watch;

use super::Server;
use super::catalog::{Catalog, MAX_SIG_BYTES, RepoDb, Unavailable};
use super::job::Plan;
use super::path::{Kind, Wanted};
use super::store::{Failure, Progress};

/// Bytes read from disk per body chunk.
const CHUNK: u64 = 256 * 1024;

pub async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let response = answer(&server, &method, &uri, &headers).await;
    // PACTOR_LOG=pactor=debug gives an access log.
    tracing::debug!("{method} {} {}", uri.path(), response.status().as_u16());
    response
}

async fn answer(server: &Arc<Server>, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    let wanted = match Wanted::parse(uri.path()) {
        Ok(wanted) => wanted,
        Err(e) => {
            tracing::info!("{}: {e}", uri.path());
            return status(StatusCode::BAD_REQUEST);
        }
    };
    if server
        .upstreams
        .servers(&wanted.repo, &wanted.arch)
        .is_empty()
    {
        // A repo nobody configured: nothing to proxy, nothing kept for it.
        return status(StatusCode::NOT_FOUND);
    }
    let repo = server.databases.repo(&wanted.repo, &wanted.arch);
    let request = Request {
        server,
        headers,
        head,
    };
    match wanted.kind() {
        Kind::Database => request.database(&repo).await,
        Kind::DatabaseSig => request.state_file(&repo.sig_file()),
        Kind::TorrentIndex => request.state_file(&repo.index_file()),
        Kind::Files => request.proxy(&wanted).await,
        Kind::Package(name) => request.package(&repo, name).await,
        Kind::Signature(package) => match repo.catalog(server).await {
            Some(catalog) if catalog.get(&wanted.file).is_some() => {
                request.package(&repo, &wanted.file).await
            }
            Some(catalog) => request.signature(&repo, &catalog, package).await,
            None => status(StatusCode::NOT_FOUND),
        },
    }
}

struct Request<'a> {
    server: &'a Arc<Server>,
    headers: &'a HeaderMap,
    head: bool,
}

impl Request<'_> {
    /// `<repo>.db`: refreshed from upstream first (one refresh for concurrent requests),
    /// then answered like a file, with `If-Modified-Since` honoured.
    async fn database(&self, repo: &RepoDb) -> Response {
        match repo.refresh(self.server, Instant::now()).await {
            Ok(()) => {}
            Err(Unavailable::NotFound) => return status(StatusCode::NOT_FOUND),
            Err(Unavailable::Unreachable) => return status(StatusCode::BAD_GATEWAY),
        }
        let Some((file, modified)) = open_plain(&repo.db_file()) else {
            return status(StatusCode::NOT_FOUND);
        };
        if let Some(since) = self.if_modified_since()
            && seconds(modified) <= seconds(since)
        {
            let mut response = status(StatusCode::NOT_MODIFIED);
            set_last_modified(&mut response, modified);
            return response;
        }
        self.whole_file(file, modified)
    }

    /// A file serve keeps in its state directory (a database signature, a torrent index).
    /// An empty index is serve's note that upstream publishes none: a 404.
    fn state_file(&self, path: &Path) -> Response {
        match open_plain(path) {
            Some((file, modified)) if file.metadata().is_ok_and(|m| m.len() > 0) => {
                self.whole_file(file, modified)
            }
            _ => status(StatusCode::NOT_FOUND),
        }
    }

    fn whole_file(&self, file: std::fs::File, modified: SystemTime) -> Response {
        let size = file.metadata().map_or(0, |m| m.len());
        let span = match span(self.headers, size) {
            Some(span) => span,
            None => return unsatisfiable(size),
        };
        respond(span, size, modified, self.content(Arc::new(file), None))
    }

    /// What a response carries: nothing for `HEAD`.
    fn content(
        &self,
        file: Arc<std::fs::File>,
        progress: Option<watch::Receiver<Progress>>,
    ) -> Content {
        if self.head {
            Content::Headers
        } else {
            Content::File(file, progress)
        }
    }

    /// A package file: from the cache when a verified copy is there, else from the one fetch
    /// of it, streamed as its verified bytes arrive.
    async fn package(&self, repo: &RepoDb, name: &str) -> Response {
        let server = self.server;
        let Some(catalog) = repo.catalog(server).await else {
            return status(StatusCode::NOT_FOUND);
        };
        let Some(entry) = catalog.get(name).cloned() else {
            return status(StatusCode::NOT_FOUND);
        };
        let Some(span) = span(self.headers, entry.size) else {
            return unsatisfiable(entry.size);
        };
        if let Some((file, modified, dir)) = server.store.cached(name, &entry).await {
            if !self.head {
                server.store.seed(server, name, &dir, None);
            }
            let content = self.content(Arc::new(file), None);
            return respond(span, entry.size, modified, content);
        }
        if self.head {
            return respond(span, entry.size, catalog.last_modified, Content::Headers);
        }
        let plan = self.plan(repo, &catalog, name, entry.clone());
        let job = match server.store.job(server, plan) {
            Ok(job) => job,
            Err(e) => {
                crate::ui::error(&format!("{name}: could not start the download: {e}"));
                return status(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        let mut progress = job.progress.clone();
        if let Err(failure) = wait_past(&mut progress, span.start).await {
            return match failure {
                Failure::NotFound => status(StatusCode::NOT_FOUND),
                Failure::Failed(_) => status(StatusCode::BAD_GATEWAY),
            };
        }
        respond(
            span,
            entry.size,
            catalog.last_modified,
            Content::File(job.reader.clone(), Some(progress)),
        )
    }

    fn plan(&self, repo: &RepoDb, catalog: &Catalog, name: &str, entry: super::DbEntry) -> Plan {
        let settings = &self.server.settings;
        let indexed = catalog.index.as_ref().and_then(|index| {
            let listed = index.files.get(name)?;
            (listed.size == entry.size && Some(listed.sha256) == entry.sha256)
                .then_some((listed, index))
        });
        let mut peers = settings.peers.clone();
        if let Some((_, index)) = indexed {
            peers.extend(index.peers.iter().cloned());
        }
        Plan {
            name: name.to_owned(),
            servers: self.server.upstreams.servers(&repo.repo, &repo.arch),
            torrent: indexed.map(|(listed, _)| listed.info_hash),
            info: indexed.and_then(|(listed, _)| listed.info(name)),
            peers,
            modified: catalog.last_modified,
            entry,
        }
    }

    /// `<package>.sig`: from the database (which may embed it), else from the index entry
    /// that agrees with the database, else the cache, else upstream (then kept in the cache).
    /// serve cannot check a signature; pacman does.
    async fn signature(&self, repo: &RepoDb, catalog: &Catalog, package: &str) -> Response {
        let Some(entry) = catalog.get(package) else {
            return status(StatusCode::NOT_FOUND);
        };
        let from_index = catalog.index.as_ref().and_then(|index| {
            let listed = index.files.get(package)?;
            (listed.size == entry.size && Some(listed.sha256) == entry.sha256)
                .then(|| listed.sig.clone())
                .flatten()
        });
        let embedded = entry.base64_sig.clone().or(from_index);
        if let Some(bytes) = embedded.and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        }) {
            return self.bytes(bytes, catalog.last_modified);
        }
        let sig_name = format!("{package}.sig");
        let store = &self.server.store;
        if let Some((file, modified)) = open_plain(&store.dest.join(&sig_name))
            && file
                .metadata()
                .is_ok_and(|m| (1..=MAX_SIG_BYTES as u64).contains(&m.len()))
        {
            return self.whole_file(file, modified);
        }
        for base in self.server.upstreams.servers(&repo.repo, &repo.arch) {
            let url = format!("{base}/{sig_name}");
            if let Ok(Some(bytes)) = self.server.http.get_small(&url, MAX_SIG_BYTES).await
                && !bytes.is_empty()
            {
                let _ = crate::atomic_write::write(&store.dest.join(&sig_name), &bytes);
                return self.bytes(bytes, catalog.last_modified);
            }
        }
        status(StatusCode::NOT_FOUND)
    }

    fn bytes(&self, bytes: Vec<u8>, modified: SystemTime) -> Response {
        let size = bytes.len() as u64;
        let Some(span) = span(self.headers, size) else {
            return unsatisfiable(size);
        };
        let body = if self.head {
            Body::empty()
        } else {
            Body::from(bytes[span.start as usize..span.end as usize].to_vec())
        };
        with_headers(span, size, modified, body)
    }

    /// `.files` databases and their signatures pass through from the first upstream that has
    /// them (serve does not need them, pacman verifies them).
    async fn proxy(&self, wanted: &Wanted) -> Response {
        let since = self.if_modified_since();
        let mut answer = StatusCode::NOT_FOUND;
        for base in self.server.upstreams.servers(&wanted.repo, &wanted.arch) {
            let url = format!("{base}/{}", wanted.file);
            let response = match self.server.http.open(&url, 0, since).await {
                Ok(response) => response,
                Err(e) => {
                    tracing::info!("{url}: {e}");
                    answer = StatusCode::BAD_GATEWAY;
                    continue;
                }
            };
            let code = response.status();
            if code == reqwest::StatusCode::NOT_MODIFIED {
                let mut out = status(StatusCode::NOT_MODIFIED);
                copy_header(&response, &mut out, header::LAST_MODIFIED);
                return out;
            }
            if code != reqwest::StatusCode::OK {
                continue;
            }
            let mut out = Response::new(Body::empty());
            copy_header(&response, &mut out, header::LAST_MODIFIED);
            copy_header(&response, &mut out, header::CONTENT_LENGTH);
            if !self.head {
                *out.body_mut() = passthrough(self.server.http.clone(), response);
            }
            return out;
        }
        status(answer)
    }

    fn if_modified_since(&self) -> Option<SystemTime> {
        let value = self.headers.get(header::IF_MODIFIED_SINCE)?.to_str().ok()?;
        httpdate::parse_http_date(value).ok()
    }
}

/// The byte range a response covers: `start..end` of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
    partial: bool,
}

/// The span a `Range` header asks for; `None` when it cannot be satisfied (a 416). Only a
/// single `bytes=` range is honoured (what curl sends); anything else is answered whole, as
/// HTTP allows.
fn span(headers: &HeaderMap, size: u64) -> Option<Span> {
    let whole = Span {
        start: 0,
        end: size,
        partial: false,
    };
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .filter(|spec| !spec.contains(','))
    else {
        return Some(whole);
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Some(whole);
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => return None,
            Some(n) => (size.saturating_sub(n), size),
            None => return Some(whole),
        },
        (false, true) => match number(first) {
            Some(start) => (start, size),
            None => return Some(whole),
        },
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(last)) if start <= last => (start, (last + 1).min(size)),
            _ => return Some(whole),
        },
        (true, true) => return Some(whole),
    };
    if start >= size {
        return None;
    }
    Some(Span {
        start,
        end,
        partial: true,
    })
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    response
}

fn unsatisfiable(size: u64) -> Response {
    let mut response = status(StatusCode::RANGE_NOT_SATISFIABLE);
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

fn set_last_modified(response: &mut Response, modified: SystemTime) {
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        response.headers_mut().insert(header::LAST_MODIFIED, value);
    }
}

fn copy_header(from: &reqwest::Response, to: &mut Response, name: header::HeaderName) {
    if let Some(value) = from.headers().get(&name) {
        to.headers_mut().insert(name, value.clone());
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Opens a regular file without following a symlink in its last component.
fn open_plain(path: &Path) -> Option<(std::fs::File, SystemTime)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    Some((file, meta.modified().unwrap_or(UNIX_EPOCH)))
}

/// The body of a file response.
enum Content {
    /// `HEAD`: the headers alone.
    Headers,
    /// The file, and while it is still being assembled, how far it is verified.
    File(Arc<std::fs::File>, Option<watch::Receiver<Progress>>),
}

/// A `200` or `206` for `span` of a file of `size` bytes. A file still being assembled is sent
/// as its verified bytes come, and cut if the fetch fails.
fn respond(span: Span, size: u64, modified: SystemTime, content: Content) -> Response {
    let body = match content {
        Content::Headers => Body::empty(),
        Content::File(file, progress) => growing_body(file, span.start, span.end, progress),
    };
    with_headers(span, size, modified, body)
}

fn with_headers(span: Span, size: u64, modified: SystemTime, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(span.end - span.start),
    );
    if span.partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(value) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{size}",
            span.start,
            span.end.saturating_sub(1)
        )) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    set_last_modified(&mut response, modified);
    response
}

/// Waits until byte `pos` is verified (or the fetch is over); returns how far the file is
/// verified.
async fn wait_past(progress: &mut watch::Receiver<Progress>, pos: u64) -> Result<u64, Failure> {
    let state = progress
        .wait_for(|p| !matches!(p, Progress::Running(available) if *available <= pos))
        .await
        .map_err(|_| Failure::Failed("the download ended".into()))?;
    match &*state {
        Progress::Running(available) => Ok(*available),
        Progress::Done => Ok(u64::MAX),
        Progress::Failed(failure) => Err(failure.clone()),
    }
}

/// The bytes `start..end` of `file`, each sent once the fetch has verified it.
fn growing_body(
    file: Arc<std::fs::File>,
    start: u64,
    end: u64,
    progress: Option<watch::Receiver<Progress>>,
) -> Body {
    struct State {
        file: Arc<std::fs::File>,
        pos: u64,
        progress: Option<watch::Receiver<Progress>>,
    }
    let stream = futures_util::stream::unfold(
        Some(State {
            file,
            pos: start,
            progress,
        }),
        move |state| async move {
            let mut state = state?;
            if state.pos >= end {
                return None;
            }
            let available = match &mut state.progress {
                None => end,
                Some(progress) => match wait_past(progress, state.pos).await {
                    Ok(available) => available.min(end),
                    Err(_) => {
                        // Cut the response: curl sees a partial transfer, pacman retries.
                        return Some((Err(std::io::Error::other("the download failed")), None));
                    }
                },
            };
            let len = (available - state.pos).min(CHUNK);
            let (file, pos) = (state.file.clone(), state.pos);
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, pos).map(|()| Bytes::from(buf))
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            match read {
                Ok(bytes) => {
                    state.pos += len;
                    Some((Ok(bytes), Some(state)))
                }
                Err(e) => Some((Err(e), None)),
            }
        },
    );
    Body::from_stream(stream)
}

/// An upstream body passed on as it arrives.
fn passthrough(http: crate::http::Http, response: reqwest::Response) -> Body {
    let stream = futures_util::stream::unfold(Some(response), move |state| {
        let http = http.clone();
        async move {
            let mut response = state?;
            match http.chunk(&mut response).await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Option<(u64, u64, bool)> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        span(&headers, size).map(|s| (s.start, s.end, s.partial))
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=10-", 100), Some((10, 100, true)));
        assert_eq!(range("bytes=10-19", 100), Some((10, 20, true)));
        assert_eq!(range("bytes=90-200", 100), Some((90, 100, true)));
        assert_eq!(range("bytes=-30", 100), Some((70, 100, true)));
        assert_eq!(range("bytes=-300", 100), Some((0, 100, true)));
        assert_eq!(range("bytes=100-", 100), None);
        assert_eq!(range("bytes=-0", 100), None);
        // Ignored: answered whole.
        for ignored in [
            "bytes=5-2",
            "bytes=0-1,5-6",
            "items=1-2",
            "bytes=x-",
            "bytes=-",
        ] {
            assert_eq!(range(ignored, 100), Some((0, 100, false)), "{ignored}");
        }
        assert_eq!(span(&HeaderMap::new(), 7).map(|s| s.end), Some(7));
    }
}
