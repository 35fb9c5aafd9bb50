//! A misbehaving BitTorrent peer on 127.0.0.1, speaking just enough of the protocol (BEP 3
//! handshake and messages, BEP 10 extensions, BEP 9 metadata) to be believed, then failing in
//! one of the ways real peers fail. It serves the metadata it is given (the canonical info of a
//! package, or a crafted one), so a client that knows only the infohash comes to it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sha1::{Digest, Sha1};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Claims every piece and unchokes, then never answers a request.
    Withholds,
    /// Answers every request, with random bytes.
    SendsGarbage,
    /// After the handshake, random bytes instead of messages.
    SpeaksGarbage,
    /// Serves the metadata, claims nothing (only its metadata is of interest).
    MetadataOnly,
}

pub struct BadPeer {
    pub port: u16,
    stopped: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

const METADATA_PIECE: usize = 16 * 1024;
/// Our extension number for ut_metadata, as told in our extended handshake.
const OUR_UT_METADATA: u8 = 3;

impl BadPeer {
    /// A peer for the torrent whose info dictionary is `info` (bencoded), its infohash being
    /// that dictionary's SHA-1.
    pub fn start(info: Vec<u8>, behaviour: Behaviour) -> BadPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stopped = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let info = Arc::new(info);
        let (s, r, c) = (stopped.clone(), requests.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (info, r, s, c) = (info.clone(), r.clone(), s.clone(), c.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &info, behaviour, &r, &s, &c);
                });
            }
        });
        BadPeer {
            port,
            stopped,
            requests,
            connections,
        }
    }

    /// Piece requests received (block requests, message 6).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// BitTorrent connections accepted (those that opened with a handshake).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn info_hash(info: &[u8]) -> [u8; 20] {
        Sha1::digest(info).into()
    }
}

impl Drop for BadPeer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    mut stream: TcpStream,
    info: &[u8],
    behaviour: Behaviour,
    requests: &AtomicUsize,
    stopped: &AtomicBool,
    connections: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut first = [0u8; 1];
    read_fully(&mut stream, &mut first, stopped)?;
    // A pactor run also asks its peers over HTTP for small files: not a torrent's connection.
    if first[0] != 19 {
        return Ok(());
    }
    connections.fetch_add(1, Ordering::SeqCst);
    let mut handshake = [0u8; 68];
    handshake[0] = first[0];
    read_fully(&mut stream, &mut handshake[1..], stopped)?;
    if &handshake[1..20] != b"BitTorrent protocol" {
        return Ok(());
    }
    let info_hash = BadPeer::info_hash(info);
    if handshake[28..48] != info_hash {
        return Ok(());
    }
    let mut reply = Vec::with_capacity(68);
    reply.push(19);
    reply.extend_from_slice(b"BitTorrent protocol");
    reply.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
    reply.extend_from_slice(&info_hash);
    reply.extend_from_slice(b"-XX0001-badpeer00000");
    stream.write_all(&reply)?;
    if behaviour == Behaviour::SpeaksGarbage {
        let mut noise = 0x9e3779b97f4a7c15u64;
        for _ in 0..64 {
            let chunk: Vec<u8> = (0..4096)
                .map(|_| {
                    noise ^= noise << 13;
                    noise ^= noise >> 7;
                    noise ^= noise << 17;
                    noise as u8
                })
                .collect();
            if stream.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = stream.shutdown(Shutdown::Both);
        return Ok(());
    }
    let ext = format!(
        "d1:md11:ut_metadatai{OUR_UT_METADATA}ee13:metadata_sizei{}ee",
        info.len()
    );
    send(&mut stream, 20, &[&[0u8][..], ext.as_bytes()].concat())?;
    let pieces = match bencode_int(info, b"6:lengthi") {
        Some(length) => {
            let piece_length = bencode_int(info, b"12:piece lengthi").unwrap_or(1).max(1);
            length.div_ceil(piece_length) as usize
        }
        None => 1,
    };
    if behaviour != Behaviour::MetadataOnly {
        let mut bitfield = vec![0u8; pieces.div_ceil(8)];
        for i in 0..pieces {
            bitfield[i / 8] |= 0x80 >> (i % 8);
        }
        send(&mut stream, 5, &bitfield)?;
        send(&mut stream, 1, &[])?;
    }
    let mut their_ut_metadata = None;
    loop {
        let mut len = [0u8; 4];
        read_fully(&mut stream, &mut len, stopped)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            continue;
        }
        if len > 1 << 20 {
            return Ok(());
        }
        let mut message = vec![0u8; len];
        read_fully(&mut stream, &mut message, stopped)?;
        match message[0] {
            // interested: unchoke (again).
            2 if behaviour != Behaviour::MetadataOnly => send(&mut stream, 1, &[])?,
            6 => {
                requests.fetch_add(1, Ordering::SeqCst);
                if behaviour == Behaviour::SendsGarbage && message.len() >= 13 {
                    let length = u32::from_be_bytes(message[9..13].try_into().unwrap()) as usize;
                    let mut piece = message[1..9].to_vec();
                    piece.extend((0..length.min(1 << 17)).map(|i| (i * 31 + 7) as u8));
                    send(&mut stream, 7, &piece)?;
                }
            }
            20 if message.len() >= 2 => {
                let body = &message[2..];
                if message[1] == 0 {
                    their_ut_metadata = bencode_int(body, b"11:ut_metadatai").map(|n| n as u8);
                } else if message[1] == OUR_UT_METADATA {
                    let piece = bencode_int(body, b"5:piecei").unwrap_or(0) as usize;
                    let start = piece * METADATA_PIECE;
                    if let (Some(id), true) = (their_ut_metadata, start < info.len()) {
                        let end = (start + METADATA_PIECE).min(info.len());
                        let head = format!(
                            "d8:msg_typei1e5:piecei{piece}e10:total_sizei{}ee",
                            info.len()
                        );
                        let payload = [&[id][..], head.as_bytes(), &info[start..end]].concat();
                        send(&mut stream, 20, &payload)?;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Writes one BEP 3 message: its length, its id, its payload.
pub(super) fn send(stream: &mut TcpStream, id: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut message = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    message.push(id);
    message.extend_from_slice(payload);
    stream.write_all(&message)
}

/// Reads exactly `buf.len()` bytes, giving up when the peer is stopped.
fn read_fully(stream: &mut TcpStream, buf: &mut [u8], stopped: &AtomicBool) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        if stopped.load(Ordering::SeqCst) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if super::read_timed_out(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The integer after `key` (which includes its bencode prefix, up to the `i`).
fn bencode_int(bytes: &[u8], key: &[u8]) -> Option<u64> {
    let at = bytes.windows(key.len()).position(|w| w == key)? + key.len();
    let end = bytes[at..].iter().position(|b| *b == b'e')? + at;
    std::str::from_utf8(&bytes[at..end]).ok()?.parse().ok()
}

/// An address whose connection attempts go unanswered, as a peer that is gone (a machine
/// switched off after announcing itself) looks from afar: a socket listening with a backlog of
/// none, filled by one connection nobody accepts, so the kernel drops every later SYN and the
/// connecting side waits out its timeout.
pub struct Unanswering {
    pub port: u16,
    _listener: std::os::fd::OwnedFd,
    _filler: TcpStream,
}

impl Unanswering {
    /// On 127.0.0.1:`port` (any free port for 0); an error if the port is taken.
    pub fn at(port: u16) -> std::io::Result<Unanswering> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: plain socket calls on a descriptor this function owns from its creation.
        let listener = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            OwnedFd::from_raw_fd(fd)
        };
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let mut bound = addr;
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `addr` and `bound` are sockaddr_in values of the length given.
        unsafe {
            let fd = listener.as_raw_fd();
            let sa = &addr as *const libc::sockaddr_in as *const libc::sockaddr;
            if libc::bind(fd, sa, len) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            assert_eq!(libc::listen(fd, 0), 0, "listen");
            let out = &mut bound as *mut libc::sockaddr_in as *mut libc::sockaddr;
            assert_eq!(libc::getsockname(fd, out, &mut len), 0, "getsockname");
        }
        let port = u16::from_be(bound.sin_port);
        let filler = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // The queue is full now: a further attempt must not connect.
        assert!(
            TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(50)
            )
            .is_err(),
            "the unanswering address answered"
        );
        Ok(Unanswering {
            port,
            _listener: listener,
            _filler: filler,
        })
    }
}
