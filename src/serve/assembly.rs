//! One package file being put together in the staging directory, and the rule serve never
//! breaks: a reader (a pacman being served) sees only bytes that have been verified.
//!
//! Two kinds of verification exist. With the file's canonical torrent known (its infohash comes
//! from the repo's index, whose entry agrees with the database on name, size and sha256), every
//! piece is checked against the torrent's SHA-1 before it is appended, whichever source it came
//! from (a peer or a mirror), so verified bytes can stream out as they arrive. Without the
//! torrent, bytes can only be judged once the whole file is there. Either way the database's
//! sha256 over the whole file is the final authority, and the last byte is withheld until it
//! passes: a file that fails is never delivered complete, the response is cut short and pacman
//! retries.
//!
//! Invariant: bytes `[0, verified)` of the file are final. They are never rewritten, so a reader
//! may send them while the rest is still being fetched.

use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::torrent::{Info, piece_length};

pub struct Assembly {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    sha256: Option<[u8; 32]>,
    info: Option<Info>,
    /// Bytes in the file.
    len: u64,
    /// Bytes known good: a prefix of whole pieces, or the whole file once [`finish`] passed.
    verified: u64,
    /// sha256 of `[0, len)`.
    hasher: Sha256,
    complete: bool,
}

impl Assembly {
    /// Starts an empty file at `path` (any earlier content is dropped: nothing says it was
    /// verified).
    pub fn create(path: &Path, size: u64, sha256: Option<[u8; 32]>) -> std::io::Result<Assembly> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Assembly {
            path: path.to_owned(),
            file,
            size,
            sha256,
            info: None,
            len: 0,
            verified: 0,
            hasher: Sha256::new(),
            complete: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_full(&self) -> bool {
        self.len == self.size
    }

    pub fn info(&self) -> Option<&Info> {
        self.info.as_ref()
    }

    /// What readers may send: the verified prefix, less the last byte until the whole file
    /// has passed the database's sha256.
    pub fn available(&self) -> u64 {
        if self.complete {
            self.size
        } else {
            self.verified.min(self.size.saturating_sub(1))
        }
    }

    /// Adopts the piece hashes of the file's canonical torrent. Bytes already held without
    /// them are checked now; whatever follows the last whole piece that passes is dropped, and
    /// the caller refetches from [`len`](Self::len).
    pub fn adopt(&mut self, info: Info) -> Result<(), String> {
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".part"));
        let count = info.length.div_ceil(info.piece_length.max(1));
        if info.length != self.size
            || info.piece_length != piece_length(self.size)
            || info.pieces.len() as u64 != count * 20
            || name.is_some_and(|n| n != info.name)
        {
            return Err(format!(
                "the torrent describes {} ({} bytes), not this file ({} bytes)",
                info.name, info.length, self.size
            ));
        }
        self.info = Some(info);
        let mut good = self.verified;
        while let Some(piece) = self.piece_at(good) {
            if piece.end > self.len || !self.check_on_disk(piece.clone()) {
                break;
            }
            good = piece.end;
        }
        if good < self.len {
            self.rewind(good).map_err(|e| e.to_string())?;
        }
        self.verified = good;
        Ok(())
    }

    /// The byte range of the next piece to append, once the piece hashes are known.
    pub fn next_piece(&self) -> Option<Range<u64>> {
        self.info.as_ref()?;
        self.piece_at(self.len)
    }

    /// Offers the bytes of the next piece: appended if their SHA-1 is the torrent's, refused
    /// (`Ok(false)`) if not.
    pub fn offer_piece(&mut self, bytes: &[u8]) -> std::io::Result<bool> {
        let Some(piece) = self.next_piece() else {
            return Ok(false);
        };
        if bytes.len() as u64 != piece.end - piece.start || !self.piece_matches(&piece, bytes) {
            return Ok(false);
        }
        self.append(bytes)?;
        self.verified = self.len;
        Ok(true)
    }

    /// Appends bytes nobody can check piece by piece (the torrent is unknown): readers see
    /// none of them before [`finish`](Self::finish) passes.
    pub fn append_unchecked(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        debug_assert!(self.info.is_none());
        if self.len + bytes.len() as u64 > self.size {
            return Err(std::io::Error::other("more bytes than the database's size"));
        }
        self.append(bytes)
    }

    /// Judges the whole file against the database: size, then sha256.
    pub fn finish(&mut self) -> Result<(), String> {
        if self.len != self.size {
            return Err(format!(
                "has {} bytes where the database says {}",
                self.len, self.size
            ));
        }
        let sha256: [u8; 32] = self.hasher.clone().finalize().into();
        if self.sha256.is_some_and(|expected| expected != sha256) {
            return Err("is corrupted (sha256 does not match the database)".into());
        }
        self.file.sync_data().map_err(|e| e.to_string())?;
        self.verified = self.size;
        self.complete = true;
        Ok(())
    }

    /// Drops every byte from `to` on (a source that turned out wrong). Verified bytes are final:
    /// `to` is never below them.
    pub fn rewind(&mut self, to: u64) -> std::io::Result<()> {
        if to < self.verified {
            return Err(std::io::Error::other("verified bytes are never rewound"));
        }
        self.file.set_len(to)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut std::fs::File::open(&self.path)?.take(to), &mut hasher)?;
        self.hasher = hasher;
        self.len = to;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(bytes, self.len)?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// The piece that starts at `offset`, if the hashes are known and `offset` is a piece
    /// boundary inside the file.
    fn piece_at(&self, offset: u64) -> Option<Range<u64>> {
        let info = self.info.as_ref()?;
        if offset >= self.size || !offset.is_multiple_of(info.piece_length) {
            return None;
        }
        Some(offset..(offset + info.piece_length).min(self.size))
    }

    fn piece_matches(&self, piece: &Range<u64>, bytes: &[u8]) -> bool {
        let Some(info) = &self.info else {
            return false;
        };
        let index = (piece.start / info.piece_length) as usize;
        let expected = &info.pieces[index * 20..index * 20 + 20];
        Sha1::digest(bytes).as_slice() == expected
    }

    fn check_on_disk(&self, piece: Range<u64>) -> bool {
        let mut buf = vec![0u8; (piece.end - piece.start) as usize];
        self.file.read_exact_at(&mut buf, piece.start).is_ok() && self.piece_matches(&piece, &buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 32 * 1024;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    fn start(dir: &Path, bytes: &[u8]) -> Assembly {
        Assembly::create(
            &dir.join("a-1-1-any.pkg.tar.zst.part"),
            bytes.len() as u64,
            Some(sha256(bytes)),
        )
        .unwrap()
    }

    fn info(bytes: &[u8]) -> Info {
        Info::from_reader("a-1-1-any.pkg.tar.zst", bytes.len() as u64, bytes).unwrap()
    }

    #[test]
    fn verified_pieces_stream_but_the_last_byte_waits_for_the_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(2 * K + 100);
        let mut a = start(dir.path(), &bytes);
        a.adopt(info(&bytes)).unwrap();
        assert_eq!(a.next_piece(), Some(0..K as u64));
        assert!(!a.offer_piece(&data(K + 1)[1..]).unwrap(), "wrong bytes");
        assert!(!a.offer_piece(&bytes[..K - 1]).unwrap(), "short piece");
        assert_eq!(a.available(), 0);
        assert!(a.offer_piece(&bytes[..K]).unwrap());
        assert_eq!(a.available(), K as u64);
        assert!(a.offer_piece(&bytes[K..2 * K]).unwrap());
        assert!(a.offer_piece(&bytes[2 * K..]).unwrap());
        assert!(a.is_full());
        assert_eq!(a.available(), bytes.len() as u64 - 1, "held back");
        a.finish().unwrap();
        assert_eq!(a.available(), bytes.len() as u64);
        assert_eq!(std::fs::read(a.path()).unwrap(), bytes);
    }

    #[test]
    fn a_file_whose_pieces_pass_but_sha256_fails_is_never_available_whole() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(K + 10);
        let mut other = bytes.clone();
        other[5] ^= 1;
        // The torrent describes `other`; the database describes `bytes`.
        let mut a = start(dir.path(), &bytes);
        a.adopt(info(&other)).unwrap();
        assert!(a.offer_piece(&other[..K]).unwrap());
        assert!(a.offer_piece(&other[K..]).unwrap());
        assert!(a.finish().unwrap_err().contains("sha256"));
        assert_eq!(a.available(), bytes.len() as u64 - 1);
    }

    #[test]
    fn unchecked_bytes_are_invisible_until_the_whole_file_passes() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(3 * K);
        let mut a = start(dir.path(), &bytes);
        a.append_unchecked(&bytes[..K]).unwrap();
        a.append_unchecked(&bytes[K..]).unwrap();
        assert_eq!(a.available(), 0);
        assert!(a.append_unchecked(b"x").is_err(), "beyond the size");
        a.finish().unwrap();
        assert_eq!(a.available(), bytes.len() as u64);

        let mut bad = start(dir.path(), &bytes);
        let mut wrong = bytes.clone();
        wrong[K] ^= 1;
        bad.append_unchecked(&wrong).unwrap();
        assert!(bad.finish().is_err());
        assert_eq!(bad.available(), 0);
        bad.rewind(0).unwrap();
        bad.append_unchecked(&bytes).unwrap();
        bad.finish().unwrap();
    }

    #[test]
    fn adopting_the_torrent_checks_what_is_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(3 * K + 5);
        let mut a = start(dir.path(), &bytes);
        // Held without hashes: one good piece, then a bad one, then part of another.
        let mut held = bytes[..2 * K + 7].to_vec();
        held[K + 3] ^= 1;
        a.append_unchecked(&held).unwrap();
        a.adopt(info(&bytes)).unwrap();
        assert_eq!(a.len(), K as u64, "kept up to the last good piece");
        assert_eq!(a.available(), K as u64);
        assert!(a.offer_piece(&bytes[K..2 * K]).unwrap());
        assert!(a.offer_piece(&bytes[2 * K..3 * K]).unwrap());
        assert!(a.offer_piece(&bytes[3 * K..]).unwrap());
        a.finish().unwrap();
        assert_eq!(std::fs::read(a.path()).unwrap(), bytes);
    }

    #[test]
    fn a_torrent_of_another_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(K);
        let mut a = start(dir.path(), &bytes);
        assert!(a.adopt(info(&data(K + 1))).is_err(), "other size");
        let renamed = Info::from_reader("b-1-1-any.pkg.tar.zst", K as u64, &bytes[..]).unwrap();
        assert!(a.adopt(renamed).is_err(), "other name");
        assert!(a.info().is_none());
    }
}
