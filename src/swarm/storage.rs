//! Where librqbit keeps a torrent's bytes. pactor never uses librqbit's own filesystem
//! storage: a seeded file is opened read-only, so it is never truncated, extended or rewritten,
//! and a leeched file can be sealed once complete, so the root process can take it rather than
//! copy it.

use std::fs::File;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, bail};
use librqbit::storage::{BoxStorageFactory, StorageFactory, StorageFactoryExt, TorrentStorage};
use librqbit::{ManagedTorrentShared, TorrentMetadata};

/// Opens a seeded file read-only: reads are served, every write is refused, the length is
/// never changed. librqbit's own filesystem storage opens read-write and calls `set_len`.
#[derive(Clone)]
pub(super) struct ReadOnlyFactory {
    pub(super) dir: PathBuf,
}

impl StorageFactory for ReadOnlyFactory {
    type Storage = ReadOnlyStorage;

    fn create(
        &self,
        _: &ManagedTorrentShared,
        metadata: &TorrentMetadata,
    ) -> Result<ReadOnlyStorage> {
        let mut files = Vec::new();
        for file in metadata.file_infos.iter() {
            let path = self.dir.join(&file.relative_filename);
            // Never follow a symlink: only the regular file of that name is seeded.
            let meta =
                std::fs::symlink_metadata(&path).with_context(|| format!("{}", path.display()))?;
            if !meta.file_type().is_file() || meta.len() != file.len {
                bail!(
                    "{} is not a regular file of {} bytes",
                    path.display(),
                    file.len
                );
            }
            files.push(Arc::new(std::fs::File::open(&path)?));
        }
        Ok(ReadOnlyStorage { files })
    }

    fn clone_box(&self) -> BoxStorageFactory {
        self.clone().boxed()
    }
}

pub(super) struct ReadOnlyStorage {
    files: Vec<Arc<std::fs::File>>,
}

impl TorrentStorage for ReadOnlyStorage {
    fn init(&mut self, _: &ManagedTorrentShared, _: &TorrentMetadata) -> Result<()> {
        Ok(())
    }

    fn pread_exact(&self, file_id: usize, offset: u64, buf: &mut [u8]) -> Result<()> {
        let file = self.files.get(file_id).context("no such file")?;
        Ok(file.read_exact_at(buf, offset)?)
    }

    fn pwrite_all(&self, _: usize, _: u64, _: &[u8]) -> Result<()> {
        bail!("pactor seeds read-only")
    }

    fn remove_file(&self, _: usize, _: &Path) -> Result<()> {
        Ok(())
    }

    fn remove_directory_if_empty(&self, _: &Path) -> Result<()> {
        Ok(())
    }

    fn ensure_file_length(&self, file_id: usize, length: u64) -> Result<()> {
        let actual = self
            .files
            .get(file_id)
            .context("no such file")?
            .metadata()?
            .len();
        if actual != length {
            bail!("seeded file has {actual} bytes, torrent says {length}");
        }
        Ok(())
    }

    fn take(&self) -> Result<Box<dyn TorrentStorage>> {
        Ok(Box::new(ReadOnlyStorage {
            files: self.files.clone(),
        }))
    }
}

/// A leeched file, written as its pieces arrive and then sealed: [`Seal::seal`] closes the
/// descriptor that can write it and serves it from a read-only one from then on. The root
/// process takes a file into the cache only after a read lease proves that no descriptor can
/// still write it (`fetcher::intake`); librqbit would otherwise keep the read-write descriptor
/// open for as long as it seeds the file, and the root process would have to copy it.
#[derive(Clone)]
pub(super) struct LeechFactory {
    /// The torrent's output folder.
    pub(super) dir: PathBuf,
    pub(super) seal: Seal,
}

/// The handle by which a leeched torrent's file is sealed; shared by its storage and the
/// [`super::Swarm`], which keeps one per torrent it leeches.
#[derive(Clone, Default)]
pub struct Seal(Arc<RwLock<Opened>>);

#[derive(Default)]
struct Opened {
    /// The file, once librqbit has initialised the storage.
    file: Option<(PathBuf, File)>,
    /// Whether `file` is the read-only descriptor; a re-initialised storage opens read-only too.
    sealed: bool,
}

impl Seal {
    /// Replaces the read-write descriptor with a read-only one of the same file. Reads in
    /// flight hold the lock, so the old descriptor is closed when this returns.
    pub fn seal(&self) -> Result<()> {
        let mut opened = self.0.write().expect("no poisoning");
        let Some((path, file)) = opened.file.as_ref() else {
            bail!("the torrent's file is not open");
        };
        let read_only = open_file(path, false)?;
        // The name must still be the file that was written (a rename over it is not sealed).
        let (was, now) = (file.metadata()?, read_only.metadata()?);
        if (was.dev(), was.ino()) != (now.dev(), now.ino()) {
            bail!("{} was replaced", path.display());
        }
        let path = path.clone();
        opened.file = Some((path, read_only));
        opened.sealed = true;
        Ok(())
    }

    /// Opens the torrent's file: read-write, created if missing, until sealed; read-only after
    /// (librqbit initialises a storage again when a torrent is restarted).
    fn open(&self, path: PathBuf) -> Result<()> {
        let mut opened = self.0.write().expect("no poisoning");
        let file = open_file(&path, !opened.sealed)?;
        opened.file = Some((path, file));
        Ok(())
    }

    /// Runs `use_it` on the open file: its path, its descriptor, and whether it is sealed.
    fn with_open<R>(&self, use_it: impl FnOnce(&Path, &File, bool) -> Result<R>) -> Result<R> {
        let opened = self.0.read().expect("no poisoning");
        let (path, file) = opened
            .file
            .as_ref()
            .context("the torrent's file is not open")?;
        use_it(path, file, opened.sealed)
    }

    fn with_file<R>(&self, io: impl FnOnce(&File) -> std::io::Result<R>) -> Result<R> {
        self.with_open(|_, file, _| Ok(io(file)?))
    }
}

/// The torrent's file, never through a symlink: read-write (created if missing) or read-only.
fn open_file(path: &Path, writable: bool) -> Result<File> {
    let mut options = File::options();
    options.read(true).custom_flags(libc::O_NOFOLLOW);
    if writable {
        options.write(true).create(true).truncate(false);
    }
    options
        .open(path)
        .with_context(|| format!("could not open {}", path.display()))
}

impl StorageFactory for LeechFactory {
    type Storage = LeechStorage;

    fn create(&self, _: &ManagedTorrentShared, metadata: &TorrentMetadata) -> Result<LeechStorage> {
        // pactor's torrents are canonical: a single file, no padding.
        if metadata.file_infos.len() != 1 {
            bail!("pactor leeches single-file torrents only");
        }
        Ok(LeechStorage {
            dir: self.dir.clone(),
            seal: self.seal.clone(),
        })
    }

    fn clone_box(&self) -> BoxStorageFactory {
        self.clone().boxed()
    }
}

pub(super) struct LeechStorage {
    dir: PathBuf,
    seal: Seal,
}

impl TorrentStorage for LeechStorage {
    fn init(&mut self, _: &ManagedTorrentShared, metadata: &TorrentMetadata) -> Result<()> {
        let info = metadata.file_infos.first().context("no file")?;
        let path = self.dir.join(&info.relative_filename);
        std::fs::create_dir_all(path.parent().context("no parent")?)?;
        self.seal.open(path)
    }

    fn pread_exact(&self, _: usize, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.seal.with_file(|f| f.read_exact_at(buf, offset))
    }

    fn pwrite_all(&self, _: usize, offset: u64, buf: &[u8]) -> Result<()> {
        self.seal.with_file(|f| f.write_all_at(buf, offset))
    }

    /// A chunk that wraps around librqbit's read buffer comes in two slices: one `pwritev`.
    fn pwrite_all_vectored(&self, _: usize, offset: u64, bufs: [IoSlice<'_>; 2]) -> Result<usize> {
        self.seal.with_file(|f| pwritev_all(f, offset, bufs))
    }

    fn remove_file(&self, _: usize, filename: &Path) -> Result<()> {
        self.seal.with_open(|path, _, _| {
            debug_assert!(path.ends_with(filename));
            Ok(std::fs::remove_file(path)?)
        })
    }

    fn remove_directory_if_empty(&self, _: &Path) -> Result<()> {
        // The directory is the staging directory's `swarm/`, which the fetcher cleans.
        Ok(())
    }

    fn ensure_file_length(&self, _: usize, length: u64) -> Result<()> {
        self.seal.with_open(|_, file, sealed| {
            if !sealed {
                return Ok(file.set_len(length)?);
            }
            let actual = file.metadata()?.len();
            if actual != length {
                bail!("sealed file has {actual} bytes, torrent says {length}");
            }
            Ok(())
        })
    }

    fn take(&self) -> Result<Box<dyn TorrentStorage>> {
        Ok(Box::new(LeechStorage {
            dir: self.dir.clone(),
            seal: self.seal.clone(),
        }))
    }
}

/// Writes both slices at `offset`, with as few `pwritev` calls as the kernel allows.
fn pwritev_all(file: &File, mut offset: u64, bufs: [IoSlice<'_>; 2]) -> std::io::Result<usize> {
    let total = bufs[0].len() + bufs[1].len();
    let mut done = 0;
    while done < total {
        let (first, second) = (&bufs[0][..], &bufs[1][..]);
        let a = &first[done.min(first.len())..];
        let b = &second[done.saturating_sub(first.len())..];
        let iov = [a, b].map(|s| libc::iovec {
            iov_base: s.as_ptr() as *mut libc::c_void,
            iov_len: s.len(),
        });
        let iov = if a.is_empty() { &iov[1..] } else { &iov[..] };
        // SAFETY: every iovec points into a slice that outlives the call.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                offset as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done += n as usize;
        offset += n as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a read lease on `path` is granted: only when no descriptor can write the file.
    fn lease_granted(path: &Path) -> bool {
        let file = File::open(path).unwrap();
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor owned here.
        let rc = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
        if rc == 0 {
            unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        }
        rc == 0
    }

    #[test]
    fn a_sealed_file_is_read_but_never_written_and_no_descriptor_can_write_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pkg");
        let seal = Seal::default();
        seal.open(path.clone()).unwrap();
        let (a, b) = (b"hello ".to_vec(), b"world".to_vec());
        let written = seal
            .with_file(|f| pwritev_all(f, 3, [IoSlice::new(&a), IoSlice::new(&b)]))
            .unwrap();
        assert_eq!(written, 11);
        assert!(!lease_granted(&path), "the writer is still open");

        seal.seal().unwrap();
        assert!(lease_granted(&path), "sealed: nothing can write it");
        let mut buf = [0; 11];
        seal.with_file(|f| f.read_exact_at(&mut buf, 3)).unwrap();
        assert_eq!(&buf, b"hello world");
        assert!(seal.with_file(|f| f.write_all_at(b"x", 0)).is_err());
        // A restarted torrent opens the sealed file read-only again.
        seal.open(path.clone()).unwrap();
        assert!(lease_granted(&path));
        assert_eq!(std::fs::read(&path).unwrap(), b"\0\0\0hello world");
    }

    #[test]
    fn a_file_replaced_under_its_name_is_not_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pkg");
        let seal = Seal::default();
        seal.open(path.clone()).unwrap();
        std::fs::write(dir.path().join("other"), b"other").unwrap();
        std::fs::rename(dir.path().join("other"), &path).unwrap();
        assert!(seal.seal().is_err());
        // Still the written file, still writable: the root process will copy it.
        seal.with_file(|f| f.write_all_at(b"x", 0)).unwrap();
    }
}
