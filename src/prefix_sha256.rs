//! The sha256 of a file that is still arriving. A torrent's pieces are verified (SHA-1) as
//! they land, and librqbit never rewrites a verified piece, so the verified prefix of the file is
//! final: hashing it while the rest downloads leaves only the tail for the end. Done after the
//! download instead, the hash is a second pass over the whole file on the critical path (a
//! quarter of a 500 MB loopback transfer).

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// Below this much new data, hashing waits for more (fewer, larger reads).
const STEP: u64 = 1 << 20;

pub struct PrefixSha256 {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    running: Option<tokio::task::JoinHandle<()>>,
}

struct State {
    hasher: Sha256,
    hashed: u64,
    error: Option<std::io::Error>,
}

impl PrefixSha256 {
    pub fn new(path: PathBuf) -> PrefixSha256 {
        PrefixSha256 {
            path,
            state: Arc::new(Mutex::new(State {
                hasher: Sha256::new(),
                hashed: 0,
                error: None,
            })),
            running: None,
        }
    }

    /// The first `final_len` bytes of the file will not change: hash them in the background
    /// when enough is new and no hashing is under way.
    pub fn advance_to(&mut self, final_len: u64) {
        if self.running.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.running = None;
        let hashed = self.state.lock().expect("no poisoning").hashed;
        if final_len < hashed + STEP {
            return;
        }
        let (path, state) = (self.path.clone(), self.state.clone());
        self.running = Some(tokio::task::spawn_blocking(move || {
            hash_range(&path, &state, final_len)
        }));
    }

    /// The whole file's length and sha256, once it is complete at `len` bytes.
    pub async fn finish(mut self, len: u64) -> std::io::Result<(u64, [u8; 32])> {
        if let Some(running) = self.running.take() {
            running.await.map_err(std::io::Error::other)?;
        }
        let (path, state) = (self.path.clone(), self.state.clone());
        tokio::task::spawn_blocking(move || {
            hash_range(&path, &state, len);
            let on_disk = std::fs::metadata(&path)?.len();
            let mut state = state.lock().expect("no poisoning");
            if let Some(error) = state.error.take() {
                return Err(error);
            }
            let digest = std::mem::take(&mut state.hasher).finalize().into();
            Ok((on_disk, digest))
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Feeds bytes `hashed..end` of the file to the hasher (nothing after an error).
fn hash_range(path: &std::path::Path, state: &Mutex<State>, end: u64) {
    let mut state = state.lock().expect("no poisoning");
    if state.error.is_some() || state.hashed >= end {
        return;
    }
    let result = (|| {
        let file = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        while state.hashed < end {
            let want = buf
                .len()
                .min(usize::try_from(end - state.hashed).unwrap_or(usize::MAX));
            let n = file.read_at(&mut buf[..want], state.hashed)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            state.hasher.update(&buf[..n]);
            state.hashed += n as u64;
        }
        Ok(())
    })();
    if let Err(e) = result {
        state.error = Some(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashing_in_steps_gives_the_whole_files_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..5 * STEP + 123).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut hasher = PrefixSha256::new(path);
        for end in [STEP / 2, STEP, 3 * STEP + 5, 3 * STEP + 6, 5 * STEP] {
            hasher.advance_to(end);
            tokio::task::yield_now().await;
        }
        let (len, digest) = hasher.finish(data.len() as u64).await.unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&data)));
    }

    #[tokio::test]
    async fn a_file_shorter_than_claimed_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert!(PrefixSha256::new(path).finish(10).await.is_err());
    }
}
