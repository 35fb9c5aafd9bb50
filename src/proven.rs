//! What a seeder proved before. A file whose bytes were checked (against the published infohash
//! or the sync database's sha256) is recorded with its identity on disk; after a restart, a file
//! whose identity is unchanged is trusted without being read again, so restarting a seeder over
//! many gigabytes takes seconds instead of a full re-hash. librqbit still samples a few pieces of
//! every file it is given (`assume_complete`), so a file changed behind an unchanged identity is
//! caught when a sampled piece fails, and peers check every piece they receive anyway.
//!
//! The record lives in `StateDir`, one file per seeded catalog, bencoded and replaced
//! atomically. A missing or unreadable record only costs a re-hash.

use std::collections::HashMap;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::torrent::Info;

/// A file's identity on disk: any change to its content through the file system changes at
/// least one of these (a rewrite moves mtime and ctime, a replacement moves the inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub size: u64,
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
}

/// The identity of a regular file; `None` for anything else (a symlink is never followed).
pub fn identity(path: &Path) -> Option<Identity> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type().is_file().then(|| Identity::of(&meta))
}

/// The identity of a directory (its mtime moves when an entry is added or removed).
pub fn dir_identity(path: &Path) -> Option<Identity> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type().is_dir().then(|| Identity::of(&meta))
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            size: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_ns: meta.ctime_nsec(),
        }
    }
}

/// What was learned from reading a file once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub info: Info,
    pub sha256: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(with = "serde_bytes")]
    path: Vec<u8>,
    identity: Identity,
    #[serde(with = "serde_bytes")]
    sha256: Vec<u8>,
    info: Info,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    files: Vec<Record>,
}

const VERSION: u32 = 1;

/// The proven files of one catalog, by path.
pub struct Proven {
    file: PathBuf,
    records: HashMap<PathBuf, (Identity, Proof)>,
    dirty: bool,
}

impl Proven {
    /// The record for the catalog named `label` (a directory, or the cache dirs), in
    /// `state_dir`. An unreadable record is a warning and an empty start.
    pub fn load(state_dir: &Path, label: &str) -> Proven {
        let key = hex::encode(&Sha1::digest(label.as_bytes())[..8]);
        let file = state_dir.join(format!("seed-{key}.proven"));
        let records = match std::fs::read(&file) {
            Ok(bytes) => match decode(&bytes) {
                Some(records) => records,
                None => {
                    crate::ui::warning(&format!(
                        "{}: not a record of proven files; every file is read again",
                        file.display()
                    ));
                    HashMap::new()
                }
            },
            Err(_) => HashMap::new(),
        };
        Proven {
            file,
            records,
            dirty: false,
        }
    }

    /// What was proven about `path`, if its identity is still `identity`.
    pub fn get(&self, path: &Path, identity: &Identity) -> Option<&Proof> {
        self.records
            .get(path)
            .filter(|(known, _)| known == identity)
            .map(|(_, proof)| proof)
    }

    pub fn insert(&mut self, path: PathBuf, identity: Identity, proof: Proof) {
        self.records.insert(path, (identity, proof));
        self.dirty = true;
    }

    /// Forgets files no longer seeded, so the record does not grow forever.
    pub fn retain(&mut self, keep: impl Fn(&Path) -> bool) {
        let before = self.records.len();
        self.records.retain(|path, _| keep(path));
        self.dirty |= self.records.len() != before;
    }

    /// Writes the record if it changed.
    pub fn save(&mut self) -> anyhow::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut files: Vec<Record> = self
            .records
            .iter()
            .map(|(path, (identity, proof))| Record {
                path: path.as_os_str().as_bytes().to_vec(),
                identity: *identity,
                sha256: proof.sha256.to_vec(),
                info: proof.info.clone(),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let bytes = serde_bencode::to_bytes(&Stored {
            version: VERSION,
            files,
        })?;
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::atomic_write::write(&self.file, &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> Option<HashMap<PathBuf, (Identity, Proof)>> {
    let stored: Stored = crate::bencode::decode(bytes).ok()?;
    if stored.version != VERSION {
        return None;
    }
    let mut out = HashMap::new();
    for record in stored.files {
        let sha256 = record.sha256.try_into().ok()?;
        let path = PathBuf::from(std::ffi::OsString::from_vec(record.path));
        out.insert(
            path,
            (
                record.identity,
                Proof {
                    info: record.info,
                    sha256,
                },
            ),
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_record_is_trusted_until_the_file_changes() {
        let state = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let path = data.path().join("a-1-1-x86_64.pkg.tar.zst");
        std::fs::write(&path, b"abc").unwrap();
        let (info, sha256) = Info::from_file_with_sha256(&path).unwrap();
        let proof = Proof { info, sha256 };
        let id = identity(&path).unwrap();

        let mut proven = Proven::load(state.path(), "/srv/repo");
        proven.insert(path.clone(), id, proof.clone());
        proven.save().unwrap();

        let reloaded = Proven::load(state.path(), "/srv/repo");
        assert_eq!(reloaded.get(&path, &id), Some(&proof));
        assert!(
            Proven::load(state.path(), "/other")
                .get(&path, &id)
                .is_none(),
            "each catalog has its own record"
        );

        // Rewritten in place with other bytes of the same length: the identity moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"xyz").unwrap();
        let changed = identity(&path).unwrap();
        assert_ne!(changed, id);
        assert!(reloaded.get(&path, &changed).is_none());
    }

    #[test]
    fn symlinks_have_no_identity_and_garbage_is_an_empty_start() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
        assert!(identity(&dir.path().join("link")).is_none());

        let proven = Proven::load(dir.path(), "x");
        std::fs::write(&proven.file, b"d7:version").unwrap();
        let reloaded = Proven::load(dir.path(), "x");
        assert!(reloaded.records.is_empty());
    }
}
