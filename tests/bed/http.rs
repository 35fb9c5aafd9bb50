//! A one-request HTTP/1.1 client, for servers whose answer to a malformed or unexpected
//! request is the point of a test (a peer's BitTorrent port, serve's peer port).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One request on a fresh connection to 127.0.0.1:`port`: the status code and the body, or
/// `None` if the connection closed without an HTTP answer.
pub fn http(port: u16, method: &str, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // A peer that does not speak HTTP may close (and reset) the connection after the first
    // byte, before the request is all written: that is no answer, not a failed test.
    let request = format!("{method} {path} HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, answer[split + 4..].to_vec()))
}
