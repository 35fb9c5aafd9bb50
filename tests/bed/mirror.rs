//! An HTTP/1.1 mirror on 127.0.0.1 that serves a directory, logs every request with the body
//! bytes it really sent, and can be told to misbehave per path: the faults real mirrors have.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Send the headers, then nothing (until the client leaves or 120 s pass).
    StallAfterHeaders,
    /// Send only this many body bytes, then close.
    Truncate(u64),
    /// Send the right length with some bytes flipped.
    Corrupt,
    /// Reset the connection (RST) halfway through the body.
    Reset,
    /// Send the body at this many bytes per second (a tenth of a second's worth at a time, or
    /// a byte at a time below 10 B/s).
    Trickle(u64),
    /// Announce a Content-Length off by this much, send the real body, close.
    WrongContentLength(i64),
    /// Wait this long before answering.
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
    pub bytes_sent: u64,
}

struct State {
    root: PathBuf,
    log: Mutex<Vec<Request>>,
    faults: Mutex<Vec<(String, Fault)>>,
    stopped: AtomicBool,
    bucket: Mutex<Option<Bucket>>,
}

struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

pub struct Mirror {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Mirror {
    pub fn start(root: &Path) -> Mirror {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            root: root.to_owned(),
            log: Mutex::default(),
            faults: Mutex::default(),
            stopped: AtomicBool::new(false),
            bucket: Mutex::new(None),
        });
        let accept_state = state.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = accept_state.clone();
                std::thread::spawn(move || serve_connection(stream, &state));
            }
        });
        Mirror {
            addr,
            state,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Makes requests whose path ends with `suffix` (or every request, for `*`) misbehave.
    pub fn set_fault(&self, suffix: &str, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap()
            .push((suffix.to_owned(), fault));
    }

    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// Caps the whole mirror's upload (all connections together) in bytes per second.
    pub fn set_rate_limit(&self, bytes_per_sec: Option<u64>) {
        *self.state.bucket.lock().unwrap() = bytes_per_sec.map(|r| Bucket {
            rate: r as f64,
            tokens: 0.0,
            last: Instant::now(),
        });
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// GET requests for paths ending with `suffix`.
    pub fn count(&self, suffix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(suffix))
            .count()
    }

    /// Body bytes sent for package files.
    pub fn package_bytes(&self) -> u64 {
        self.requests()
            .iter()
            .filter(|r| r.path.ends_with(".pkg.tar.zst"))
            .map(|r| r.bytes_sent)
            .sum()
    }

    /// Stops accepting connections; later connections are refused.
    pub fn stop(&mut self) {
        if self.state.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_connection(stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    // Headers and body are separate writes: with Nagle's algorithm the body's first segment
    // waits for the client's delayed ACK (40 ms), as no real mirror (nginx: tcp_nodelay) lets
    // it.
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0
            || state.stopped.load(Ordering::SeqCst)
        {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("/").to_owned(),
        );
        let mut range = None;
        let mut close = false;
        let mut if_modified_since = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "range" => range = Some(value.trim().to_owned()),
                    "connection" => close = value.trim().eq_ignore_ascii_case("close"),
                    "if-modified-since" => if_modified_since = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
        }
        let keep_alive = respond(&mut stream, state, &method, &path, range, if_modified_since);
        if close || !keep_alive {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Answers one request; returns whether the connection may be reused.
fn respond(
    stream: &mut TcpStream,
    state: &State,
    method: &str,
    path: &str,
    range: Option<String>,
    if_modified_since: Option<String>,
) -> bool {
    let fault = state
        .faults
        .lock()
        .unwrap()
        .iter()
        .find(|(suffix, _)| suffix == "*" || path.ends_with(suffix.as_str()))
        .map(|(_, f)| f.clone());
    let log = |status: u16, bytes_sent: u64| {
        state.log.lock().unwrap().push(Request {
            method: method.to_owned(),
            path: path.to_owned(),
            range: range.clone(),
            status,
            bytes_sent,
        });
    };
    if let Some(Fault::Delay(d)) = fault {
        std::thread::sleep(d);
    }
    if let Some(Fault::Status(code)) = fault {
        let _ = write!(
            stream,
            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\n\r\n"
        );
        log(code, 0);
        return true;
    }
    let relative = path.split('?').next().unwrap_or("").trim_start_matches('/');
    let file = state.root.join(relative);
    let content = if relative.split('/').any(|c| c == "..") {
        None
    } else {
        std::fs::File::open(&file)
            .ok()
            .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
    };
    let Some(content) = content else {
        let _ = write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        );
        log(404, 0);
        return true;
    };
    let modified = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH);
    let last_modified = http_date(modified);
    if if_modified_since.as_deref() == Some(last_modified.as_str()) && range.is_none() {
        let _ = write!(
            stream,
            "HTTP/1.1 304 Not Modified\r\nLast-Modified: {last_modified}\r\nContent-Length: 0\r\n\r\n"
        );
        log(304, 0);
        return true;
    }
    let total = content.metadata().map_or(0, |m| m.len());
    let (status, start, end) = match range.as_deref().and_then(parse_range) {
        Some((start, _)) if start >= total => {
            let _ = write!(
                stream,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\n\r\n"
            );
            log(416, 0);
            return true;
        }
        Some((start, end)) => (206, start, end.map_or(total, |e| (e + 1).min(total))),
        None => (200, 0, total),
    };
    let body_len = end - start;
    let announced = match fault {
        Some(Fault::WrongContentLength(delta)) => (body_len as i64 + delta).max(0) as u64,
        _ => body_len,
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {announced}\r\nLast-Modified: {last_modified}\r\nAccept-Ranges: bytes\r\n",
        if status == 206 {
            "Partial Content"
        } else {
            "OK"
        }
    );
    if status == 206 {
        head.push_str(&format!(
            "Content-Range: bytes {start}-{}/{total}\r\n",
            end - 1
        ));
    }
    head.push_str("\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        log(status, 0);
        return false;
    }
    if method == "HEAD" {
        log(status, 0);
        return true;
    }
    let (limit, keep_alive) = match fault {
        Some(Fault::Truncate(n)) => (n.min(body_len), false),
        Some(Fault::Reset) => (body_len / 2, false),
        Some(Fault::StallAfterHeaders) => (0, false),
        Some(Fault::WrongContentLength(_)) => (body_len, false),
        _ => (body_len, true),
    };
    let sent = send_body(stream, state, &content, start, limit, &fault);
    log(status, sent);
    match fault {
        Some(Fault::StallAfterHeaders) => {
            let until = Instant::now() + Duration::from_secs(120);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let mut probe = [0u8; 1];
            while Instant::now() < until && !state.stopped.load(Ordering::SeqCst) {
                match stream.read(&mut probe) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if super::read_timed_out(&e) => {}
                    Err(_) => break,
                }
            }
        }
        Some(Fault::Reset) => reset(stream),
        _ => {}
    }
    keep_alive && sent == body_len
}

/// Writes `len` bytes of `file` from `start`, read in chunks (a 1 GB package is never held in
/// memory), obeying the trickle fault, the corrupt fault and the mirror's rate limit.
fn send_body(
    stream: &mut TcpStream,
    state: &State,
    file: &std::fs::File,
    start: u64,
    len: u64,
    fault: &Option<Fault>,
) -> u64 {
    use std::os::unix::fs::FileExt;
    let chunk_len = match fault {
        Some(Fault::Trickle(bps)) => ((*bps / 10).max(1)) as usize,
        _ => 64 * 1024,
    };
    let mut buf = vec![0u8; chunk_len];
    let mut sent = 0u64;
    while sent < len {
        if state.stopped.load(Ordering::SeqCst) {
            break;
        }
        let want = (len - sent).min(chunk_len as u64) as usize;
        let chunk = &mut buf[..want];
        if file.read_exact_at(chunk, start + sent).is_err() {
            break;
        }
        if *fault == Some(Fault::Corrupt) {
            // Every 997th byte of the body flipped.
            for (i, byte) in chunk.iter_mut().enumerate() {
                if (sent + i as u64).is_multiple_of(997) {
                    *byte ^= 0x5a;
                }
            }
        }
        if let Some(Fault::Trickle(bps)) = fault {
            std::thread::sleep(Duration::from_secs_f64(chunk.len() as f64 / *bps as f64));
        }
        take_tokens(state, chunk.len());
        if stream.write_all(chunk).is_err() {
            break;
        }
        sent += want as u64;
    }
    let _ = stream.flush();
    sent
}

fn take_tokens(state: &State, n: usize) {
    loop {
        let wait = {
            let mut bucket = state.bucket.lock().unwrap();
            let Some(b) = bucket.as_mut() else { return };
            let now = Instant::now();
            b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * b.rate)
                .min(b.rate.max(n as f64));
            b.last = now;
            if b.tokens >= n as f64 {
                b.tokens -= n as f64;
                return;
            }
            Duration::from_secs_f64((n as f64 - b.tokens) / b.rate)
        };
        std::thread::sleep(wait.min(Duration::from_millis(50)));
    }
}

/// Closes with a TCP RST (SO_LINGER with a zero timeout), as a crashing server does.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = if end.trim().is_empty() {
        None
    } else {
        Some(end.trim().parse().ok()?)
    };
    Some((start, end))
}

/// RFC 7231 date, e.g. `Tue, 14 Nov 2023 22:13:20 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
