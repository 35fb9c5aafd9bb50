//! The repo torrent index, `<repo>.torrents`, published beside `<repo>.db`: for each package
//! file its name, size, sha256 and canonical infohash (plus the signature, if the repo has
//! one), and the trackers and peer hints of the repo's swarm. Format: `docs/index-format.md`.
//!
//! The index only says where to look; the sync database says what is right. So the reader is
//! forgiving and strict at once: it never fails on a bad entry (the entry is dropped with a
//! warning and that file goes over HTTP) and never accepts anything that could name a path.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_bencode::value::Value;
use serde_bytes::ByteBuf;

use crate::torrent::{Info, InfoHash, piece_length};

pub const VERSION: i64 = 1;
/// An index larger than this is refused outright (Arch's largest repo needs a few MiB).
pub const MAX_INDEX_BYTES: usize = 64 * 1024 * 1024;
pub const MAX_ENTRIES: usize = 1_000_000;
/// No package is a tebibyte.
pub const MAX_FILE_SIZE: u64 = 1 << 40;
const MAX_NAME_LEN: usize = 255;
const MAX_URLS: usize = 64;
/// A file of at most this many pieces (256 KiB at the smallest piece length) carries its piece
/// hashes in the index: a client then has the whole torrent without asking a peer for its
/// metadata, which for a small file costs more round trips than its data.
pub const MAX_INLINE_PIECES: u64 = 8;

/// One package file of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub sha256: [u8; 32],
    pub info_hash: InfoHash,
    pub sig: Option<String>,
    /// The canonical torrent's piece hashes, for small files ([`MAX_INLINE_PIECES`]); a reader
    /// keeps them only if they give the entry's infohash.
    pub pieces: Option<Vec<u8>>,
}

impl Entry {
    /// Whether a file of `size` bytes carries its piece hashes in the index.
    pub fn inlines_pieces(size: u64) -> bool {
        size.div_ceil(piece_length(size)) <= MAX_INLINE_PIECES
    }

    /// The file's canonical torrent, when the index carries its pieces.
    pub fn info(&self, name: &str) -> Option<Info> {
        let pieces = self.pieces.clone()?;
        Some(Info {
            length: self.size,
            name: name.to_owned(),
            piece_length: piece_length(self.size),
            pieces,
        })
    }
}

/// A parsed index: entries by file name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub repo: String,
    pub trackers: Vec<String>,
    pub peers: Vec<String>,
    pub files: BTreeMap<String, Entry>,
}

/// Why a whole index was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("index is larger than {MAX_INDEX_BYTES} bytes")]
    TooLarge,
    #[error("index is not valid bencode: {0}")]
    Malformed(String),
    #[error("index has unsupported version {0} (this pactor reads version {VERSION})")]
    Version(i64),
    #[error("index has {0} entries, more than {MAX_ENTRIES}")]
    TooManyEntries(usize),
}

/// The wire form, for writing. Reading goes through [`Value`] so one bad entry cannot spoil
/// the rest.
#[derive(Serialize)]
struct WireIndex<'a> {
    files: Vec<WireEntry<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    peers: &'a [String],
    repo: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    trackers: &'a [String],
    version: i64,
}

#[derive(Serialize)]
struct WireEntry<'a> {
    infohash: ByteBuf,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pieces: Option<ByteBuf>,
    sha256: ByteBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<&'a str>,
    size: u64,
}

impl Index {
    /// Encodes the index; entries sorted by name, so the same repo gives the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let files = self
            .files
            .iter()
            .map(|(name, e)| WireEntry {
                infohash: ByteBuf::from(e.info_hash.0.to_vec()),
                name,
                pieces: e.pieces.clone().map(ByteBuf::from),
                sha256: ByteBuf::from(e.sha256.to_vec()),
                sig: e.sig.as_deref(),
                size: e.size,
            })
            .collect();
        let wire = WireIndex {
            files,
            peers: &self.peers,
            repo: &self.repo,
            trackers: &self.trackers,
            version: VERSION,
        };
        serde_bencode::to_bytes(&wire).expect("an index always serializes")
    }

    /// Parses an index. Whole-index problems are errors; a bad entry is dropped and reported
    /// in the returned warnings.
    pub fn parse(bytes: &[u8]) -> Result<(Index, Vec<String>), IndexError> {
        if bytes.len() > MAX_INDEX_BYTES {
            return Err(IndexError::TooLarge);
        }
        let value: Value =
            crate::bencode::decode(bytes).map_err(|e| IndexError::Malformed(e.to_string()))?;
        let Value::Dict(top) = value else {
            return Err(IndexError::Malformed(
                "top level is not a dictionary".into(),
            ));
        };
        match top.get(&b"version"[..]) {
            Some(Value::Int(VERSION)) => {}
            Some(Value::Int(v)) => return Err(IndexError::Version(*v)),
            _ => return Err(IndexError::Malformed("no version".into())),
        }
        let mut warnings = Vec::new();
        let repo = match top.get(&b"repo"[..]) {
            Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        let trackers = url_list(top.get(&b"trackers"[..]), "tracker", &mut warnings);
        let peers = url_list(top.get(&b"peers"[..]), "peer", &mut warnings);
        let entries = match top.get(&b"files"[..]) {
            Some(Value::List(list)) => list.as_slice(),
            None => &[],
            Some(_) => return Err(IndexError::Malformed("'files' is not a list".into())),
        };
        if entries.len() > MAX_ENTRIES {
            return Err(IndexError::TooManyEntries(entries.len()));
        }
        let mut files = BTreeMap::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, raw) in entries.iter().enumerate() {
            match parse_entry(raw) {
                Ok((name, entry, note)) => {
                    if let Some(note) = note {
                        warnings.push(format!("entry {i}: {note}"));
                    }
                    *seen.entry(name.clone()).or_default() += 1;
                    files.insert(name, entry);
                }
                Err(why) => warnings.push(format!("entry {i}: {why}")),
            }
        }
        for (name, count) in seen.into_iter().filter(|(_, c)| *c > 1) {
            files.remove(&name);
            warnings.push(format!("'{name}' is listed {count} times; ignoring it"));
        }
        Ok((
            Index {
                repo,
                trackers,
                peers,
                files,
            },
            warnings,
        ))
    }
}

/// A file name the index may use: a plain name in one directory, nothing that walks paths.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

/// An entry, or why it is refused; a note says what of it was ignored (bad piece hashes).
fn parse_entry(raw: &Value) -> Result<(String, Entry, Option<String>), String> {
    let Value::Dict(d) = raw else {
        return Err("not a dictionary".into());
    };
    let bytes = |key: &str| match d.get(key.as_bytes()) {
        Some(Value::Bytes(b)) => Ok(b.as_slice()),
        _ => Err(format!("missing or invalid '{key}'")),
    };
    let name = std::str::from_utf8(bytes("name")?).map_err(|_| "name is not UTF-8".to_string())?;
    if !valid_file_name(name) {
        return Err(format!("refusing file name {name:?}"));
    }
    let size = match d.get(&b"size"[..]) {
        Some(Value::Int(n)) if *n > 0 && (*n as u64) <= MAX_FILE_SIZE => *n as u64,
        _ => return Err(format!("'{name}': missing or absurd size")),
    };
    let sha256: [u8; 32] = bytes("sha256")?
        .try_into()
        .map_err(|_| format!("'{name}': sha256 is not 32 bytes"))?;
    let info_hash: [u8; 20] = bytes("infohash")?
        .try_into()
        .map_err(|_| format!("'{name}': infohash is not 20 bytes"))?;
    let sig = match d.get(&b"sig"[..]) {
        None => None,
        Some(Value::Bytes(b)) if b.len() <= 8192 && b.iter().all(|c| c.is_ascii_graphic()) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        Some(_) => return Err(format!("'{name}': invalid signature")),
    };
    let mut entry = Entry {
        size,
        sha256,
        info_hash: InfoHash(info_hash),
        sig,
        pieces: None,
    };
    let mut note = None;
    match d.get(&b"pieces"[..]) {
        None => {}
        Some(Value::Bytes(pieces))
            if Entry::inlines_pieces(size)
                && pieces.len() as u64 == 20 * size.div_ceil(piece_length(size)) =>
        {
            entry.pieces = Some(pieces.clone());
            // Kept only if they are the pieces of the torrent the entry names.
            if entry.info(name).map(|info| info.info_hash()) != Some(entry.info_hash) {
                entry.pieces = None;
                note = Some(format!(
                    "'{name}': its pieces are not its torrent's; ignored"
                ));
            }
        }
        Some(_) => note = Some(format!("'{name}': invalid pieces; ignored")),
    }
    Ok((name.to_owned(), entry, note))
}

fn url_list(value: Option<&Value>, what: &str, warnings: &mut Vec<String>) -> Vec<String> {
    let Some(Value::List(list)) = value else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in list.iter().take(MAX_URLS) {
        match item {
            Value::Bytes(b) if b.len() <= 1024 => match std::str::from_utf8(b) {
                Ok(s) if !s.is_empty() && !s.chars().any(char::is_control) => {
                    out.push(s.to_owned())
                }
                _ => warnings.push(format!("ignoring an invalid {what}")),
            },
            _ => warnings.push(format!("ignoring an invalid {what}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        let mut files = BTreeMap::new();
        files.insert(
            "foo-1.0-1-x86_64.pkg.tar.zst".to_string(),
            Entry {
                size: 1234,
                sha256: [1; 32],
                info_hash: InfoHash([2; 20]),
                sig: Some("iHUEABYKAB0WIQ==".into()),
                pieces: None,
            },
        );
        files.insert(
            "bar-1.0-1-any.pkg.tar.zst".to_string(),
            Entry {
                size: 1,
                sha256: [3; 32],
                info_hash: InfoHash([4; 20]),
                sig: None,
                pieces: None,
            },
        );
        Index {
            repo: "core".into(),
            trackers: vec!["http://127.0.0.1:6969/announce".into()],
            peers: vec!["127.0.0.1:6881".into()],
            files,
        }
    }

    #[test]
    fn round_trip_is_exact_and_deterministic() {
        let index = sample();
        let bytes = index.to_bytes();
        let (back, warnings) = Index::parse(&bytes).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back, index);
        assert_eq!(back.to_bytes(), bytes);
    }

    fn with_entry(entry: &str) -> Vec<u8> {
        format!("d5:filesl{entry}e7:versioni1ee").into_bytes()
    }

    fn entry(name: &str, size: &str, sha_len: usize, ih_len: usize) -> String {
        format!(
            "d8:infohash{ih_len}:{}4:name{}:{name}6:sha256{sha_len}:{}4:size{size}e",
            "h".repeat(ih_len),
            name.len(),
            "s".repeat(sha_len)
        )
    }

    #[test]
    fn bad_entries_are_dropped_with_a_warning() {
        for bad in [
            entry("../x", "i5e", 32, 20),
            entry("/etc/shadow", "i5e", 32, 20),
            entry("a/b", "i5e", 32, 20),
            entry("a\0b", "i5e", 32, 20),
            entry("..", "i5e", 32, 20),
            entry("ok", "i0e", 32, 20),
            entry("ok", "i-5e", 32, 20),
            entry("ok", "i99999999999999999e", 32, 20),
            entry("ok", "i5e", 31, 20),
            entry("ok", "i5e", 32, 21),
            entry(&"a".repeat(256), "i5e", 32, 20),
            entry("a\\b", "i5e", 32, 20),
            entry("a\nb", "i5e", 32, 20),
            entry("", "i5e", 32, 20),
            "i3e".to_string(),
        ] {
            let (index, warnings) = Index::parse(&with_entry(&bad)).unwrap();
            assert!(index.files.is_empty(), "{bad:?}");
            assert_eq!(warnings.len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn a_small_files_pieces_travel_with_it_and_must_give_its_infohash() {
        let data = vec![7u8; 100_000];
        let name = "small-1-1-any.pkg.tar.zst";
        let info = Info::from_reader(name, data.len() as u64, &data[..]).unwrap();
        let entry = Entry {
            size: info.length,
            sha256: [1; 32],
            info_hash: info.info_hash(),
            sig: None,
            pieces: Some(info.pieces.clone()),
        };
        let mut index = sample();
        index.files.insert(name.into(), entry.clone());
        let (back, warnings) = Index::parse(&index.to_bytes()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back.files[name], entry);
        assert_eq!(back.files[name].info(name), Some(info.clone()));

        // Pieces of other bytes, or a count the size does not have: the entry stays (the
        // client asks peers for the metadata), the pieces go.
        let mut other = info.pieces.clone();
        other[0] ^= 1;
        for pieces in [other, info.pieces[..20].to_vec()] {
            let mut index = sample();
            let mut bad = entry.clone();
            bad.pieces = Some(pieces);
            index.files.insert(name.into(), bad);
            let (back, warnings) = Index::parse(&index.to_bytes()).unwrap();
            assert_eq!(back.files[name].pieces, None);
            assert_eq!(back.files[name].info_hash, entry.info_hash);
            assert_eq!(warnings.len(), 1, "{warnings:?}");
        }
        assert!(Entry::inlines_pieces(256 * 1024));
        assert!(!Entry::inlines_pieces(256 * 1024 + 1));
    }

    #[test]
    fn names_up_to_the_limit_and_signatures_within_bounds_are_kept() {
        let long = "a".repeat(255);
        let (index, warnings) = Index::parse(&with_entry(&entry(&long, "i5e", 32, 20))).unwrap();
        assert!(warnings.is_empty() && index.files.contains_key(&long));
        let with_sig = |sig: &str| {
            let e = entry("ok", "i5e", 32, 20);
            format!("{}3:sig{}:{sig}e", &e[..e.len() - 1], sig.len())
        };
        let (index, _) = Index::parse(&with_entry(&with_sig("iHUEAB=="))).unwrap();
        assert_eq!(index.files["ok"].sig.as_deref(), Some("iHUEAB=="));
        for bad in ["a b".to_string(), "x".repeat(8193)] {
            let (index, warnings) = Index::parse(&with_entry(&with_sig(&bad))).unwrap();
            assert!(
                index.files.is_empty() && warnings.len() == 1,
                "{}",
                bad.len()
            );
        }
    }

    #[test]
    fn trackers_and_peers_are_bounded() {
        let urls: String = (0..100)
            .map(|i| {
                let url = format!("http://127.0.0.1:{}/announce", 1000 + i);
                format!("{}:{url}", url.len())
            })
            .collect();
        let bytes = format!("d5:filesle8:trackersl{urls}3:a\nbe7:versioni1ee");
        let (index, _) = Index::parse(bytes.as_bytes()).unwrap();
        assert_eq!(index.trackers.len(), MAX_URLS);
        assert!(index.trackers.iter().all(|t| t.starts_with("http://")));
    }

    #[test]
    fn duplicates_are_dropped_entirely() {
        let e = entry("dup", "i5e", 32, 20);
        let good = entry("good", "i5e", 32, 20);
        let (index, warnings) = Index::parse(&with_entry(&format!("{e}{good}{e}"))).unwrap();
        assert_eq!(index.files.keys().collect::<Vec<_>>(), ["good"]);
        assert!(warnings[0].contains("listed 2 times"));
    }

    #[test]
    fn whole_index_errors() {
        assert!(matches!(
            Index::parse(b"d5:filesle7:versioni2ee"),
            Err(IndexError::Version(2))
        ));
        assert!(matches!(
            Index::parse(b"garbage"),
            Err(IndexError::Malformed(_))
        ));
        assert!(matches!(Index::parse(b"le"), Err(IndexError::Malformed(_))));
        assert!(matches!(
            Index::parse(b"d5:filesi1e7:versioni1ee"),
            Err(IndexError::Malformed(_))
        ));
        assert!(matches!(Index::parse(b"de"), Err(IndexError::Malformed(_))));
        // A hostile mirror's index nested to the brim of the size limit: an error, not a
        // stack overflow in the root process.
        let mut deep = b"d5:filesl".to_vec();
        deep.extend(std::iter::repeat_n(b'l', MAX_INDEX_BYTES - deep.len()));
        assert!(matches!(Index::parse(&deep), Err(IndexError::Malformed(_))));
    }

    #[test]
    fn size_and_count_bounds() {
        assert_eq!(
            Index::parse(&vec![b'e'; MAX_INDEX_BYTES + 1]),
            Err(IndexError::TooLarge)
        );
        let entries = "de".repeat(MAX_ENTRIES + 1);
        let many = format!("d5:filesl{entries}e7:versioni1ee");
        assert_eq!(
            Index::parse(many.as_bytes()),
            Err(IndexError::TooManyEntries(MAX_ENTRIES + 1))
        );
    }
}
