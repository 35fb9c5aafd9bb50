//! A plain BitTorrent peer on the wire (BEP 3 handshake and messages, nothing else), for tests
//! that check what a seeder tells its peers: its bitfield, the pieces it offers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Message ids (BEP 3).
pub const UNCHOKE: u8 = 1;
pub const INTERESTED: u8 = 2;
pub const HAVE: u8 = 4;
pub const BITFIELD: u8 = 5;

pub struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    /// Connects to 127.0.0.1:`port` and exchanges handshakes for `info_hash`.
    pub fn connect(port: u16, info_hash: [u8; 20], peer_id: &[u8; 20]) -> Wire {
        Wire::try_connect(port, info_hash, peer_id).expect("the peer's handshake")
    }

    /// [`Wire::connect`], or `None` if nothing listens or the peer answers no handshake (it
    /// does not have the torrent, or not yet).
    pub fn try_connect(port: u16, info_hash: [u8; 20], peer_id: &[u8; 20]) -> Option<Wire> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        let mut hello = vec![19];
        hello.extend_from_slice(b"BitTorrent protocol");
        hello.extend_from_slice(&[0; 8]);
        hello.extend_from_slice(&info_hash);
        hello.extend_from_slice(peer_id);
        stream.write_all(&hello).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reply = [0u8; 68];
        stream.read_exact(&mut reply).ok()?;
        assert_eq!(&reply[1..20], b"BitTorrent protocol");
        assert_eq!(
            reply[28..48],
            info_hash,
            "the peer answers for the same torrent"
        );
        Some(Wire {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, id: u8, payload: &[u8]) {
        super::peer::send(&mut self.stream, id, payload).unwrap();
    }

    /// The messages (id, payload) received within `window`; keep-alives left out.
    pub fn messages_for(&mut self, window: Duration) -> Vec<(u8, Vec<u8>)> {
        let deadline = Instant::now() + window;
        let mut messages = Vec::new();
        loop {
            while let Some(message) = self.take_message() {
                messages.extend(message);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return messages;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return messages,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if super::read_timed_out(&e) => {}
                Err(e) => panic!("reading from the peer: {e}"),
            }
        }
    }

    /// One whole message from the buffer: `Some(None)` for a keep-alive.
    fn take_message(&mut self) -> Option<Option<(u8, Vec<u8>)>> {
        let len = u32::from_be_bytes(self.buf.get(..4)?.try_into().unwrap()) as usize;
        if self.buf.len() < 4 + len {
            return None;
        }
        let message: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
        Some(message.split_first().map(|(id, rest)| (*id, rest.to_vec())))
    }
}

/// The pieces announced by Have messages among `messages`.
pub fn haves(messages: &[(u8, Vec<u8>)]) -> Vec<u32> {
    messages
        .iter()
        .filter(|(id, _)| *id == HAVE)
        .map(|(_, p)| u32::from_be_bytes(p[..4].try_into().unwrap()))
        .collect()
}
