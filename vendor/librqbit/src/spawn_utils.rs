use std::sync::Arc;
use tokio::sync::Semaphore;

// pactor: the largest torrent whose setup I/O runs inline (see small_torrent_io): hashing it
// whole takes under a millisecond.
const INLINE_TORRENT_IO: u64 = 1024 * 1024;

/// A tool to limit the number of blocking threads used concurrently to prevent
/// runtime starvation.
///
/// Also shortcuts for single-threaded tokio runtime to simply call the function, unlike
/// "tokio::task::block_in_place" which would panic.
#[derive(Clone, Debug)]
pub struct BlockingSpawner {
    allow_block_in_place: bool,
    concurrent_block_in_place_semaphore: Arc<Semaphore>,
    // pactor: see SessionOptions::inline_chunk_io.
    inline_chunk_io: bool,
}

impl BlockingSpawner {
    pub fn new(max_blocking_threads: usize) -> Self {
        let handle = tokio::runtime::Handle::current();
        let allow_block_in_place = match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => false,
            tokio::runtime::RuntimeFlavor::MultiThread => true,
            _ => true,
        };
        Self {
            allow_block_in_place,
            concurrent_block_in_place_semaphore: Arc::new(Semaphore::new(
                max_blocking_threads.max(1),
            )),
            inline_chunk_io: false,
        }
    }

    // pactor: run per-chunk disk I/O inline instead of through block_in_place.
    pub fn with_inline_chunk_io(mut self, inline: bool) -> Self {
        self.inline_chunk_io = inline;
        self
    }

    // pactor: one chunk's disk I/O (a 16 KiB pread or pwrite, a piece check). block_in_place
    // hands the worker's scheduler to another thread and back for each call: two context
    // switches per 16 KiB chunk, which capped a loopback transfer near 140 MB/s. Served from
    // the page cache, the I/O itself takes microseconds.
    pub async fn chunk_io<F: FnOnce() -> R, R>(&self, f: F) -> R {
        if self.inline_chunk_io {
            return f();
        }
        self.block_in_place_with_semaphore(f).await
    }

    // pactor: a small torrent's setup I/O (creating its file, checking what it holds, setting
    // its length) runs inline when chunk I/O does: block_in_place hands the worker to another
    // thread and back for each of the three steps, which cost more than the I/O itself for a
    // file of a few pieces, and a pactor run adds one torrent per package. Larger torrents
    // still go through block_in_place: their initial check may hash the whole file.
    pub async fn small_torrent_io<F: FnOnce() -> R, R>(&self, torrent_bytes: u64, f: F) -> R {
        if self.torrent_io_inline(torrent_bytes) {
            return f();
        }
        self.block_in_place_with_semaphore(f).await
    }

    // pactor: the same for a caller that cannot await.
    pub fn small_torrent_io_sync<F: FnOnce() -> R, R>(&self, torrent_bytes: u64, f: F) -> R {
        if self.torrent_io_inline(torrent_bytes) {
            return f();
        }
        self.block_in_place(f)
    }

    // pactor: whether a torrent of this size does its setup I/O inline.
    fn torrent_io_inline(&self, torrent_bytes: u64) -> bool {
        self.inline_chunk_io && torrent_bytes <= INLINE_TORRENT_IO
    }

    /// Only call this if you can't call the async function block_in_place_with_semaphore
    /// E.g. if you you have non-send objects on the stack.
    pub fn block_in_place<F: FnOnce() -> R, R>(&self, f: F) -> R {
        if self.allow_block_in_place {
            return tokio::task::block_in_place(f);
        }

        f()
    }

    /// like "block_in_place" but limit concurrency.
    pub async fn block_in_place_with_semaphore<F: FnOnce() -> R, R>(&self, f: F) -> R {
        if self.allow_block_in_place {
            let _permit = self
                .concurrent_block_in_place_semaphore
                .acquire()
                .await
                .unwrap();
            return tokio::task::block_in_place(f);
        }

        f()
    }

    pub fn semaphore(&self) -> Arc<Semaphore> {
        self.concurrent_block_in_place_semaphore.clone()
    }
}
