//! Canonical torrents: one single-file BitTorrent v1 torrent per package file, derived from the
//! file alone, so that everyone holding the same bytes derives the same infohash and joins the
//! same swarm — whether they got the file from a peer, a mirror or a build.
//!
//! The info dictionary holds exactly `length`, `name` (the package file name), `piece length`
//! and `pieces`; nothing else (no `private`, no `source`, no dates). The piece length is the
//! smallest power of two from 32 KiB up that keeps the file at 1024 pieces or fewer, capped at
//! 4 MiB ([`piece_length`]); 32 KiB is mktorrent's minimum, so a stock tool reproduces every
//! canonical torrent. The last piece is shorter unless the size is an exact multiple,
//! in which case there is no extra empty piece (librqbit's `create_torrent` adds one, which is
//! why pactor writes its own).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use sha2::Sha256;

pub const MIN_PIECE_LENGTH: u64 = 32 * 1024;
pub const MAX_PIECE_LENGTH: u64 = 4 * 1024 * 1024;
pub const MAX_PIECES: u64 = 1024;

/// The canonical piece length for a file of `size` bytes.
pub fn piece_length(size: u64) -> u64 {
    let wanted = size.div_ceil(MAX_PIECES).max(1).next_power_of_two();
    wanted.clamp(MIN_PIECE_LENGTH, MAX_PIECE_LENGTH)
}

/// The info dictionary; field names are BitTorrent's, serialized in sorted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub length: u64,
    pub name: String,
    #[serde(rename = "piece length")]
    pub piece_length: u64,
    #[serde(with = "serde_bytes")]
    pub pieces: Vec<u8>,
}

/// A 20-byte BitTorrent v1 infohash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl std::fmt::Display for InfoHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Info {
    /// Hashes `reader` (exactly `length` bytes) into the canonical info for `name`.
    pub fn from_reader(name: &str, length: u64, mut reader: impl Read) -> std::io::Result<Info> {
        let piece_len = piece_length(length);
        let count = length.div_ceil(piece_len);
        let mut pieces = Vec::with_capacity(usize::try_from(count * 20).unwrap_or(0));
        let mut buf = vec![0u8; usize::try_from(piece_len).expect("piece length fits")];
        let mut left = length;
        while left > 0 {
            let want = piece_len.min(left) as usize;
            reader.read_exact(&mut buf[..want])?;
            pieces.extend_from_slice(&Sha1::digest(&buf[..want]));
            left -= want as u64;
        }
        // A file that grew while we read it is not the file we were told about.
        if reader.read(&mut [0u8; 1])? != 0 {
            return Err(std::io::Error::other("file is longer than expected"));
        }
        Ok(Info {
            length,
            name: name.to_owned(),
            piece_length: piece_len,
            pieces,
        })
    }

    /// The canonical info for the file at `path`, named by its file name.
    pub fn from_file(path: &Path) -> std::io::Result<Info> {
        let (name, length, reader) = open_named(path)?;
        Info::from_reader(&name, length, reader)
    }

    /// The canonical info and the file's sha256, from one read of the file.
    pub fn from_file_with_sha256(path: &Path) -> std::io::Result<(Info, [u8; 32])> {
        let (name, length, inner) = open_named(path)?;
        let mut reader = Sha256Reader {
            inner,
            hasher: Sha256::new(),
        };
        let info = Info::from_reader(&name, length, &mut reader)?;
        Ok((info, reader.hasher.finalize().into()))
    }

    /// The bencoded info dictionary, the bytes the infohash is taken over.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_bencode::to_bytes(self).expect("an info dict always serializes")
    }

    pub fn info_hash(&self) -> InfoHash {
        InfoHash(Sha1::digest(self.to_bytes()).into())
    }

    /// A `.torrent` file for ordinary BitTorrent clients: the info plus trackers.
    pub fn to_torrent_file(&self, trackers: &[String]) -> Vec<u8> {
        #[derive(Serialize)]
        struct Torrent<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            announce: Option<&'a str>,
            #[serde(rename = "announce-list", skip_serializing_if = "Vec::is_empty")]
            announce_list: Vec<Vec<&'a str>>,
            info: &'a Info,
        }
        let torrent = Torrent {
            announce: trackers.first().map(String::as_str),
            announce_list: trackers.iter().map(|t| vec![t.as_str()]).collect(),
            info: self,
        };
        serde_bencode::to_bytes(&torrent).expect("a torrent always serializes")
    }
}

/// A file opened for hashing, with the name its torrent carries and its length.
fn open_named(path: &Path) -> std::io::Result<(String, u64, std::io::BufReader<std::fs::File>)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("file name is not UTF-8"))?
        .to_owned();
    let file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    Ok((
        name,
        length,
        std::io::BufReader::with_capacity(1 << 20, file),
    ))
}

/// Passes bytes through while hashing them, so one read yields both digests.
struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl Info {
    /// The info dictionary `bytes` (a peer's metadata), if it is exactly the canonical torrent of
    /// a file named `name` of `size` bytes: the only torrent pactor fetches a package by. Anything
    /// else (another name, a path, another size, extra keys, several files) is refused.
    pub fn canonical_for(bytes: &[u8], name: &str, size: u64) -> Result<Info, String> {
        let info: Info = crate::bencode::decode(bytes)
            .map_err(|_| "not a single-file torrent's info".to_string())?;
        if info.name != name {
            return Err(format!("it names {:?}, not {name:?}", info.name));
        }
        if info.length != size {
            return Err(format!(
                "it has {} bytes where the database says {size}",
                info.length
            ));
        }
        let canonical = info.piece_length == piece_length(size)
            && info.pieces.len() as u64 == size.div_ceil(info.piece_length) * 20
            && info.to_bytes() == bytes;
        if !canonical {
            return Err("not the canonical torrent of the file".into());
        }
        Ok(info)
    }
}

/// The info dictionary of a `.torrent` file, if it is a canonical single-file torrent.
pub fn parse_torrent_file(bytes: &[u8]) -> Option<Info> {
    #[derive(Deserialize)]
    struct TorrentFile {
        info: Info,
    }
    let torrent: TorrentFile = crate::bencode::decode(bytes).ok()?;
    let info = torrent.info;
    // Re-encoding must give the same info: no unknown keys, canonical piece count.
    let canonical = info.piece_length == piece_length(info.length)
        && info.pieces.len() as u64 == info.length.div_ceil(info.piece_length) * 20;
    canonical.then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_length_rule() {
        assert_eq!(piece_length(1), 32 * 1024);
        assert_eq!(piece_length(32 * 1024 * 1024), 32 * 1024); // exactly 1024 pieces
        assert_eq!(piece_length(32 * 1024 * 1024 + 1), 64 * 1024);
        assert_eq!(piece_length(100 * 1024 * 1024), 128 * 1024);
        assert_eq!(piece_length(10 * 1024 * 1024 * 1024), 4 * 1024 * 1024);
        for size in [1u64, 1 << 20, 3 << 30, 1 << 40] {
            let p = piece_length(size);
            assert!(p.is_power_of_two() && (MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&p));
            assert!(size.div_ceil(p) <= MAX_PIECES || p == MAX_PIECE_LENGTH);
        }
    }

    #[test]
    fn exact_multiples_have_no_empty_piece() {
        let data = vec![7u8; 2 * 32 * 1024];
        let info = Info::from_reader("a.pkg.tar.zst", data.len() as u64, &data[..]).unwrap();
        assert_eq!(info.pieces.len(), 2 * 20);
        let info = Info::from_reader("a.pkg.tar.zst", data.len() as u64 - 1, &data[1..]).unwrap();
        assert_eq!(info.pieces.len(), 2 * 20);
    }

    #[test]
    fn the_info_dict_holds_only_the_four_fields_in_order() {
        let info = Info::from_reader("x", 3, &b"abc"[..]).unwrap();
        let bytes = info.to_bytes();
        let expected_prefix = b"d6:lengthi3e4:name1:x12:piece lengthi32768e6:pieces20:";
        assert_eq!(&bytes[..expected_prefix.len()], expected_prefix);
        assert_eq!(bytes.len(), expected_prefix.len() + 20 + 1);
    }

    #[test]
    fn torrent_files_round_trip() {
        let info = Info::from_reader("x.pkg.tar.zst", 70_000, &vec![1u8; 70_000][..]).unwrap();
        let file = info.to_torrent_file(&["http://127.0.0.1:1/announce".into()]);
        assert_eq!(parse_torrent_file(&file), Some(info));
        assert_eq!(parse_torrent_file(b"garbage"), None);
    }

    #[test]
    fn peer_metadata_must_be_the_canonical_torrent_of_the_named_file() {
        let data = vec![5u8; 70_000];
        let name = "foo-1-1-x86_64.pkg.tar.zst";
        let info = Info::from_reader(name, 70_000, &data[..]).unwrap();
        assert_eq!(
            Info::canonical_for(&info.to_bytes(), name, 70_000).unwrap(),
            info
        );
        let renamed = |n: &str| Info {
            name: n.into(),
            ..info.clone()
        };
        for bad in [
            "../x",
            "/etc/shadow",
            "a/b",
            "bar-1-1-x86_64.pkg.tar.zst",
            "",
            "a\0b",
        ] {
            let err = Info::canonical_for(&renamed(bad).to_bytes(), name, 70_000).unwrap_err();
            assert!(err.contains("names"), "{bad:?}: {err}");
        }
        assert!(
            Info::canonical_for(&info.to_bytes(), name, 70_001)
                .unwrap_err()
                .contains("database")
        );
        // Same name and length, another piece length: not canonical.
        let odd = Info {
            piece_length: 65_536,
            pieces: info.pieces[..40].to_vec(),
            ..info.clone()
        };
        assert!(Info::canonical_for(&odd.to_bytes(), name, 70_000).is_err());
        // Extra keys (`private`) change the infohash: refused.
        let mut extra = info.to_bytes();
        extra.pop();
        extra.extend_from_slice(b"7:privatei1ee");
        assert!(Info::canonical_for(&extra, name, 70_000).is_err());
        assert!(Info::canonical_for(b"garbage", name, 70_000).is_err());
    }

    #[test]
    fn a_short_or_long_reader_is_an_error() {
        assert!(Info::from_reader("x", 4, &b"abc"[..]).is_err());
        assert!(Info::from_reader("x", 2, &b"abc"[..]).is_err());
    }

    /// Checks the infohash against mktorrent (an independent implementation) for sizes below,
    /// at and above piece boundaries, including exact multiples of the piece length.
    #[test]
    fn infohashes_match_mktorrent() {
        let dir = tempfile::tempdir().unwrap();
        let k = 32 * 1024u64;
        let sizes = [1, k - 1, k, k + 1, 3 * k, 1024 * k, 1024 * k + 1];
        let data: Vec<u8> = (0..1024 * k + 1).map(|i| (i ^ (i >> 13)) as u8).collect();
        for size in sizes {
            let path = dir.path().join(format!("pkg-{size}-1-x86_64.pkg.tar.zst"));
            std::fs::write(&path, &data[..size as usize]).unwrap();
            let ours = Info::from_file(&path).unwrap();
            let out = dir.path().join(format!("{size}.torrent"));
            let status = std::process::Command::new("mktorrent")
                .arg("-l")
                .arg(ours.piece_length.trailing_zeros().to_string())
                .arg("-o")
                .arg(&out)
                .arg(&path)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("mktorrent is installed (scripts/test installs it)");
            assert!(status.success());
            let theirs: serde_bencode::value::Value =
                serde_bencode::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
            let serde_bencode::value::Value::Dict(top) = theirs else {
                panic!("not a dict")
            };
            let info_bytes = serde_bencode::to_bytes(&top[&b"info".to_vec()]).unwrap();
            assert_eq!(info_bytes, ours.to_bytes(), "size {size}");
            assert_eq!(
                InfoHash(Sha1::digest(&info_bytes).into()),
                ours.info_hash(),
                "size {size}"
            );
        }
    }
}
