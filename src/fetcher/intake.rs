//! The root side of the hand-over: a file the download process offers is copied out of its
//! staging directory into a file only root can write, hashed as it is copied, and renamed into
//! the cache only if its size and sha256 are the database's. A mirror's copy the child gave up
//! is taken instead ([`Intake::take`]): no second copy, once nobody can write it.
//!
//! Why a copy and not a rename: the download process keeps whatever file descriptors it opened,
//! so a file it wrote can change after the root process hashed it; hashing it and then renaming
//! it would put bytes in the cache that nobody verified. The copy is what gets hashed and what
//! goes into the cache, and nobody else can write it. The copy can start while the file is
//! still arriving ([`Copy::advance`]): the swarm's verified prefix and a mirror's bytes as they
//! land, so at the end only the tail is left.
//!
//! A staged file is opened below the child's directory with `O_NOFOLLOW` at every step and
//! `O_NONBLOCK` (a FIFO cannot hang the root process), must be a regular file with one link
//! (not a hard link to something else) and, when the child runs as another user, be that
//! user's. The copy stays mode 0600 until it is verified.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::protocol::{Refusal, Staged};
use super::sandbox::Staging;

/// Files are read (and copies written) in chunks of this size: small enough that a chunk is
/// still in the core's L2 cache when it is hashed and written (with 1 MiB chunks, reading a
/// 1 GB file back cost as much CPU as hashing it).
const CHUNK: usize = 128 << 10;
/// Signatures are small; anything larger is not a signature.
pub const MAX_SIG_LEN: u64 = 64 * 1024;

/// What the database says a file is.
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: String,
    pub size: u64,
    pub sha256: Option<[u8; 32]>,
}

impl Expected {
    /// Whether `len` bytes whose sha256 is `sha256()` (computed only when the size is right)
    /// are the database's file.
    fn judge(&self, len: u64, sha256: impl FnOnce() -> [u8; 32]) -> Result<(), Refusal> {
        if len != self.size {
            return Err(Refusal::size_mismatch(len, self.size));
        }
        match self.sha256 {
            Some(want) if want != sha256() => Err(Refusal::Mismatch(
                "is corrupted (sha256 does not match the database)".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// Where files are taken from and put.
pub struct Intake {
    staging: Staging,
    /// The cache directory verified files are renamed into.
    dest: PathBuf,
    /// The owner staged files must have (the DownloadUser), when the child runs as one.
    owner: Option<libc::uid_t>,
}

/// A copy being made of one staged file.
pub struct Copy {
    pub staged: Staged,
    src: File,
    dst: File,
    dst_path: PathBuf,
    copied: u64,
    hasher: Sha256,
    /// Reused for every chunk of this copy: a copy advances at every progress report.
    buf: Vec<u8>,
}

impl Intake {
    pub fn new(staging: Staging, dest: PathBuf, owner: Option<libc::uid_t>) -> Intake {
        Intake {
            staging,
            dest,
            owner,
        }
    }

    /// Opens a staged file the way nothing in the child's directory can redirect.
    fn open_staged(&self, staged: Staged, name: &str) -> std::io::Result<File> {
        let (sub, file) = staged.location(name);
        let fetch = open_at(None, &self.staging.fetch, libc::O_DIRECTORY)?;
        let dir = match sub {
            Some(sub) => open_at(Some(&fetch), Path::new(sub), libc::O_DIRECTORY)?,
            None => fetch,
        };
        let fd = open_at(Some(&dir), Path::new(&file), libc::O_NONBLOCK)?;
        let refuse = |why: &str| Err(std::io::Error::other(format!("{file}: {why}")));
        let file = File::from(fd);
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return refuse("not a regular file");
        }
        if meta.nlink() != 1 {
            return refuse("a hard link");
        }
        if self.owner.is_some_and(|uid| uid != meta.uid()) {
            return refuse("not the download user's");
        }
        Ok(file)
    }

    /// Starts a copy of `expected`'s staged file; nothing is read yet.
    pub fn begin(&self, expected: &Expected, staged: Staged) -> std::io::Result<Copy> {
        let src = self.open_staged(staged, &expected.name)?;
        self.begin_from(src, expected, staged)
    }

    /// Starts a copy from a staged file already open (and checked).
    fn begin_from(&self, src: File, expected: &Expected, staged: Staged) -> std::io::Result<Copy> {
        // One copy per source at a time (the swarm and a mirror may race), each its own file.
        let dst_path = self
            .staging
            .work
            .join(format!("{}.{}", expected.name, staged.label()));
        let _ = std::fs::remove_file(&dst_path);
        let dst = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&dst_path)?;
        Ok(Copy {
            staged,
            src,
            dst,
            dst_path,
            copied: 0,
            hasher: Sha256::new(),
            buf: vec![0u8; CHUNK.min(usize::try_from(expected.size).unwrap_or(CHUNK).max(1))],
        })
    }

    /// Completes `copy` to the database's size, checks it and renames it into the cache. A copy
    /// begun before the file was complete may hold bytes the child later replaced (a mirror's
    /// partial file restarted): on a mismatch it is made again, once, from the start.
    pub fn finish(&self, mut copy: Copy, expected: &Expected) -> Result<(), Refusal> {
        let pipelined = copy.copied > 0;
        let result = copy
            .advance(expected.size, expected.size)
            .map_err(|e| {
                Refusal::Failed(format!("could not copy it from the download process: {e}"))
            })
            .and_then(|()| copy.check(expected));
        match result {
            Ok(()) => self.place(copy, &expected.name),
            Err(why @ Refusal::Mismatch(_)) if pipelined => {
                tracing::debug!(
                    "{}: the copy made while it arrived {why}; copying it again whole",
                    expected.name
                );
                let staged = copy.staged;
                drop(copy);
                let again = self
                    .begin(expected, staged)
                    .map_err(|e| Refusal::Failed(format!("could not open it: {e}")))?;
                self.finish(again, expected)
            }
            Err(why) => {
                let _ = std::fs::remove_file(&copy.dst_path);
                Err(why)
            }
        }
    }

    fn place(&self, copy: Copy, name: &str) -> Result<(), Refusal> {
        match copy
            .dst
            .set_permissions(std::fs::Permissions::from_mode(0o644))
        {
            Ok(()) => self.move_into_cache(&copy.dst_path, name),
            Err(e) => {
                let _ = std::fs::remove_file(&copy.dst_path);
                Err(self.unmoved(name, e))
            }
        }
    }

    /// Renames a verified file of the work directory into the cache as `name`; removes it if
    /// that fails.
    fn move_into_cache(&self, verified: &Path, name: &str) -> Result<(), Refusal> {
        std::fs::rename(verified, self.dest.join(name)).map_err(|e| {
            let _ = std::fs::remove_file(verified);
            self.unmoved(name, e)
        })
    }

    fn unmoved(&self, name: &str, e: std::io::Error) -> Refusal {
        let dest = self.dest.join(name);
        Refusal::Failed(format!("could not move into {}: {e}", dest.display()))
    }

    /// Takes a staged copy the child has given up into the cache itself rather than a copy of
    /// it: a mirror's copy the child closed, or a swarm copy it sealed (it may still read
    /// either, to seed it). The file is made root's and read-only first, then a read lease
    /// proves that no descriptor or mapping can still write it, and only then is it hashed and
    /// linked into the cache. pacman's own sandboxed downloads work the same way, with the
    /// download process's exit as the proof. The bytes are read once (not copied and written
    /// again), and only after they can no longer change, so none of this overlaps the
    /// transfer. Where the file cannot be taken (a file system without leases or links, a
    /// descriptor still open for writing) it is copied as any other.
    pub fn take(&self, expected: &Expected, staged: Staged) -> Result<(), Refusal> {
        let unopened = |e: std::io::Error| Refusal::Failed(format!("could not open it: {e}"));
        let file = self.open_staged(staged, &expected.name).map_err(unopened)?;
        // Copied from the descriptor already open: once made root's, the file would no longer
        // pass the owner check of a new open.
        let copied = |file: File| {
            let copy = self.begin_from(file, expected, staged).map_err(unopened)?;
            self.finish(copy, expected)
        };
        if let Err(e) = self.seize(&file) {
            tracing::debug!("{}: not taken ({e}); copied", expected.name);
            return copied(file);
        }
        let unread = |e: std::io::Error| Refusal::Failed(format!("could not read it: {e}"));
        let len = file.metadata().map_err(unread)?.len();
        let digest = match len == expected.size && expected.sha256.is_some() {
            true => hash(&file).map_err(unread)?,
            false => [0; 32],
        };
        expected.judge(len, || digest)?;
        let tmp = self.staging.work.join(format!("{}.taken", expected.name));
        let _ = std::fs::remove_file(&tmp);
        if let Err(e) = link_fd(&file, &tmp) {
            tracing::debug!("{}: not linked ({e}); copied", expected.name);
            return copied(file);
        }
        self.move_into_cache(&tmp, &expected.name)
    }

    /// Makes an open staged file root's, `0644`, and proves nobody can still write it: once it
    /// is root's, nobody else can open it for writing, and a read lease is granted only when
    /// no open descriptor (or shared mapping) can write it.
    fn seize(&self, file: &File) -> std::io::Result<()> {
        let fd = file.as_raw_fd();
        let check = |rc: libc::c_int| match rc {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        };
        // SAFETY: plain system calls on a descriptor this function's caller owns.
        unsafe {
            if self.owner.is_some() {
                check(libc::fchown(fd, 0, 0))?;
            }
            check(libc::fchmod(fd, 0o644))?;
            check(libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK))?;
            check(libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK))
        }
    }

    /// `<name>.sig` from the child's staging directory into the cache; at most
    /// [`MAX_SIG_LEN`] bytes (alpm checks the signature itself at the commit).
    pub fn signature(&self, name: &str) -> Result<(), Refusal> {
        let bytes = self
            .read_small(Staged::Signature, name, MAX_SIG_LEN)
            .map_err(|e| Refusal::Mismatch(format!("could not take the signature: {e}")))?;
        if bytes.is_empty() {
            return Err(Refusal::Mismatch("an empty signature".into()));
        }
        self.write_into_cache(&format!("{name}.sig"), &bytes)
    }

    /// A small file the child sent whole over the pipe (from a mirror): checked against the
    /// database, written to a file only root can write, and renamed into the cache. The bytes
    /// are the root process's own once received, so no copy is needed.
    pub fn place_bytes(&self, expected: &Expected, bytes: &[u8]) -> Result<(), Refusal> {
        expected.judge(bytes.len() as u64, || Sha256::digest(bytes).into())?;
        self.write_into_cache(&expected.name, bytes)
    }

    /// Writes verified bytes to a new file in the work directory and renames it into the cache
    /// as `name`.
    fn write_into_cache(&self, name: &str, bytes: &[u8]) -> Result<(), Refusal> {
        let tmp = self.staging.work.join(format!("{name}.inline"));
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
        };
        // A leftover of a killed run is removed only when found: an unlink of a name that is
        // not there still takes the directory's lock.
        let written = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                create()
            }
            other => other,
        }
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, self.dest.join(name)));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Refusal::Failed(format!("could not place {name}: {e}"))
        })
    }

    /// The `n`-th torrent index the child fetched, at most `max` bytes.
    pub fn index(&self, n: usize, max: usize) -> std::io::Result<Vec<u8>> {
        self.read_small(Staged::Index, &n.to_string(), max as u64)
    }

    fn read_small(&self, staged: Staged, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
        let file = self.open_staged(staged, name)?;
        let mut bytes = Vec::new();
        file.take(max + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > max {
            return Err(std::io::Error::other(format!("larger than {max} bytes")));
        }
        Ok(bytes)
    }
}

impl Copy {
    /// Copies and hashes more of the staged file: up to `upto` bytes, or, when fewer are there
    /// yet, what is there; never past `size`.
    pub fn advance(&mut self, upto: u64, size: u64) -> std::io::Result<()> {
        let end = upto.min(size);
        while self.copied < end {
            let want = (end - self.copied).min(self.buf.len() as u64) as usize;
            let n = self.src.read_at(&mut self.buf[..want], self.copied)?;
            if n == 0 {
                break;
            }
            self.hasher.update(&self.buf[..n]);
            self.dst.write_all_at(&self.buf[..n], self.copied)?;
            self.copied += n as u64;
        }
        Ok(())
    }

    #[cfg(test)]
    fn copied(&self) -> u64 {
        self.copied
    }

    fn check(&mut self, expected: &Expected) -> Result<(), Refusal> {
        expected.judge(self.copied, || {
            std::mem::take(&mut self.hasher).finalize().into()
        })
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        // Placed copies were renamed away; anything still here is unverified.
        let _ = std::fs::remove_file(&self.dst_path);
    }
}

/// The sha256 of a whole file, read from its start.
fn hash(file: &File) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0;
    loop {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
}

/// Gives the file open as `file` the new name `to` (a hard link to the descriptor, not to a
/// name that could since have been replaced): `linkat` with `AT_EMPTY_PATH` where the process
/// may (root), through `/proc/self/fd` otherwise.
fn link_fd(file: &File, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    let fd = file.as_raw_fd();
    // SAFETY: NUL-terminated paths and a descriptor the caller owns.
    let rc = unsafe {
        libc::linkat(
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let proc = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    // SAFETY: as above.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// `openat(dir, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | flags)`.
fn open_at(dir: Option<&OwnedFd>, path: &Path, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    let dirfd = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: a NUL-terminated path and a valid (or AT_FDCWD) directory descriptor.
    let fd = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | flags,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor openat just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Intake) {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        let staging = Staging::of(&cache);
        std::fs::create_dir_all(staging.fetch.join("swarm")).unwrap();
        (dir, Intake::new(staging, cache, None))
    }

    fn expected(data: &[u8]) -> Expected {
        Expected {
            name: "a-1-1-any.pkg.tar.zst".into(),
            size: data.len() as u64,
            sha256: Some(Sha256::digest(data).into()),
        }
    }

    #[test]
    fn a_good_file_is_copied_into_the_cache_and_the_staged_one_stays() {
        let (dir, intake) = setup();
        let data: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i % 251) as u8).collect();
        let e = expected(&data);
        let staged = Staged::Swarm.path(&intake.staging.fetch, &e.name);
        std::fs::write(&staged, &data).unwrap();
        let mut copy = intake.begin(&e, Staged::Swarm).unwrap();
        copy.advance(CHUNK as u64, e.size).unwrap();
        assert_eq!(copy.copied(), CHUNK as u64);
        intake.finish(copy, &e).unwrap();
        let placed = dir.path().join("cache").join(&e.name);
        assert_eq!(std::fs::read(&placed).unwrap(), data);
        assert_eq!(
            std::fs::metadata(&placed).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(staged.exists(), "the child keeps its copy to seed");
        assert_eq!(std::fs::read_dir(&intake.staging.work).unwrap().count(), 1);
    }

    #[test]
    fn inline_bytes_replace_a_leftover_of_a_killed_run_without_following_it() {
        let (dir, intake) = setup();
        let data = vec![9u8; 50_000];
        let e = expected(&data);
        std::fs::create_dir_all(&intake.staging.work).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let leftover = intake.staging.work.join(format!("{}.inline", e.name));
        std::os::unix::fs::symlink(&victim, &leftover).unwrap();
        intake.place_bytes(&e, &data).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("cache").join(&e.name)).unwrap(),
            data
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(!leftover.exists() && leftover.symlink_metadata().is_err());
        // Bytes that do not match are refused: the verified copy stays, nothing is left over.
        assert!(intake.place_bytes(&e, &vec![8u8; 50_000]).is_err());
        assert_eq!(
            std::fs::read(dir.path().join("cache").join(&e.name)).unwrap(),
            data
        );
        let names: Vec<_> = std::fs::read_dir(&intake.staging.work)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["fetch"]);
    }

    #[test]
    fn the_cache_gets_the_bytes_that_were_hashed_whatever_the_child_does_later() {
        let (dir, intake) = setup();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let e = expected(&data);
        let staged = Staged::Mirror.path(&intake.staging.fetch, &e.name);
        let placed = dir.path().join("cache").join(&e.name);
        let mut bad = data.clone();
        bad[10] ^= 1;
        bad[90_000] ^= 1;

        // Bytes rewritten after they were copied: the copy (hashed, good) is what is placed.
        std::fs::write(&staged, &data).unwrap();
        let mut copy = intake.begin(&e, Staged::Mirror).unwrap();
        copy.advance(50_000, e.size).unwrap();
        std::fs::write(&staged, &bad[..50_000]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&staged)
            .unwrap()
            .write_all(&data[50_000..])
            .unwrap();
        intake.finish(copy, &e).unwrap();
        assert_eq!(std::fs::read(&placed).unwrap(), data);
        std::fs::remove_file(&placed).unwrap();

        // Bad bytes not yet copied: the check fails, the copy is made again from the start,
        // which fails too; nothing reaches the cache and no copy is left behind.
        std::fs::write(&staged, &data).unwrap();
        let mut copy = intake.begin(&e, Staged::Mirror).unwrap();
        copy.advance(50_000, e.size).unwrap();
        std::fs::write(&staged, &bad).unwrap();
        let err = intake.finish(copy, &e).unwrap_err();
        assert!(
            matches!(&err, Refusal::Mismatch(why) if why.contains("sha256")),
            "{err}"
        );
        assert!(!placed.exists());
        assert_eq!(std::fs::read_dir(&intake.staging.work).unwrap().count(), 1);

        // A legitimate restart (the partial file truncated and written again, the start
        // differing from what was copied): the second, whole copy passes.
        std::fs::write(&staged, &bad[..50_000]).unwrap();
        let mut copy = intake.begin(&e, Staged::Mirror).unwrap();
        copy.advance(50_000, e.size).unwrap();
        std::fs::write(&staged, &data).unwrap();
        intake.finish(copy, &e).unwrap();
        assert_eq!(std::fs::read(&placed).unwrap(), data);
    }

    #[test]
    fn a_given_up_mirror_copy_is_taken_whole_and_made_read_only() {
        let (dir, intake) = setup();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let e = expected(&data);
        let staged = Staged::Mirror.path(&intake.staging.fetch, &e.name);
        let placed = dir.path().join("cache").join(&e.name);
        // A lease is refused while any process holds the file open for writing, as a process
        // forked elsewhere at the instant the file was written does until it execs: then the
        // file is copied, correctly, and the test tries again (seen once in a full run on a
        // loaded machine).
        let mut tries = 0;
        let (placed_meta, staged_meta) = loop {
            tries += 1;
            let _ = std::fs::remove_file(&placed);
            let _ = std::fs::remove_file(&staged);
            std::fs::write(&staged, &data).unwrap();
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o666)).unwrap();
            intake.take(&e, Staged::Mirror).unwrap();
            let metas = (
                std::fs::metadata(&placed).unwrap(),
                std::fs::metadata(&staged).unwrap(),
            );
            if metas.0.ino() == metas.1.ino() || tries == 5 {
                break metas;
            }
        };
        assert_eq!(placed_meta.ino(), staged_meta.ino(), "taken, not copied");
        assert_eq!(placed_meta.mode() & 0o7777, 0o644);
        assert_eq!(std::fs::read(&placed).unwrap(), data);
        assert_eq!(std::fs::read_dir(&intake.staging.work).unwrap().count(), 1);

        // Bytes that are not the database's are refused, and nothing is placed.
        std::fs::remove_file(&placed).unwrap();
        std::fs::remove_file(&staged).unwrap();
        let mut bad = data.clone();
        bad[123_456] ^= 1;
        std::fs::write(&staged, &bad).unwrap();
        assert!(matches!(
            intake.take(&e, Staged::Mirror),
            Err(Refusal::Mismatch(_))
        ));
        assert!(!placed.exists());
        assert_eq!(std::fs::read_dir(&intake.staging.work).unwrap().count(), 1);
    }

    #[test]
    fn a_mirror_copy_still_open_for_writing_is_copied_not_taken() {
        let (dir, intake) = setup();
        let data = vec![7u8; 200_000];
        let e = expected(&data);
        let staged = Staged::Mirror.path(&intake.staging.fetch, &e.name);
        std::fs::write(&staged, &data).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            // A download user's file (root runs the tests): made root's, and copied all the same
            // from the descriptor already open, which a new open would refuse (not the user's).
            let user = Intake::new(
                intake.staging.clone(),
                dir.path().join("cache"),
                Some(65534),
            );
            std::os::unix::fs::chown(&staged, Some(65534), Some(65534)).unwrap();
            let writer = std::fs::OpenOptions::new()
                .write(true)
                .open(&staged)
                .unwrap();
            user.take(&e, Staged::Mirror).unwrap();
            let placed = dir.path().join("cache").join(&e.name);
            assert_eq!(std::fs::metadata(&staged).unwrap().uid(), 0);
            writer.write_all_at(b"changed", 0).unwrap();
            assert_eq!(std::fs::read(&placed).unwrap(), data);
            std::fs::remove_file(&placed).unwrap();
            std::fs::remove_file(&staged).unwrap();
            std::fs::write(&staged, &data).unwrap();
        }
        // The download process kept a descriptor that can still write the file.
        let writer = std::fs::OpenOptions::new()
            .write(true)
            .open(&staged)
            .unwrap();
        intake.take(&e, Staged::Mirror).unwrap();
        let placed = dir.path().join("cache").join(&e.name);
        assert_ne!(
            std::fs::metadata(&placed).unwrap().ino(),
            std::fs::metadata(&staged).unwrap().ino(),
            "copied"
        );
        writer.write_all_at(b"changed", 0).unwrap();
        assert_eq!(std::fs::read(&placed).unwrap(), data);
        drop(writer);
        // A writable shared mapping counts as a writer too.
        std::fs::remove_file(&placed).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&staged)
            .unwrap();
        file.write_all_at(&data[..7], 0).unwrap();
        // SAFETY: a shared mapping of a file this test owns, unmapped below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        drop(file);
        intake.take(&e, Staged::Mirror).unwrap();
        assert_ne!(
            std::fs::metadata(&placed).unwrap().ino(),
            std::fs::metadata(&staged).unwrap().ino(),
            "copied"
        );
        // SAFETY: the mapping made above, 4096 bytes long.
        unsafe {
            *(map as *mut u8) = 0;
            libc::munmap(map, 4096);
        }
        assert_eq!(std::fs::read(&placed).unwrap(), data);
    }

    #[test]
    fn racing_copies_of_one_file_do_not_disturb_each_other() {
        let (dir, intake) = setup();
        let data = vec![3u8; 70_000];
        let e = expected(&data);
        let fetch = intake.staging.fetch.clone();
        std::fs::write(Staged::Swarm.path(&fetch, &e.name), &data[..1000]).unwrap();
        std::fs::write(Staged::Mirror.path(&fetch, &e.name), &data).unwrap();
        let mut swarm = intake.begin(&e, Staged::Swarm).unwrap();
        swarm.advance(1000, e.size).unwrap();
        let mirror = intake.begin(&e, Staged::Mirror).unwrap();
        drop(swarm);
        intake.finish(mirror, &e).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("cache").join(&e.name)).unwrap(),
            data
        );
    }

    #[test]
    fn symlinks_fifos_hard_links_and_short_files_are_refused() {
        let (dir, intake) = setup();
        let data = vec![1u8; 1000];
        let e = expected(&data);
        let fetch = intake.staging.fetch.clone();
        // A symlink to a secret, under the staged name.
        let secret = dir.path().join("secret");
        std::fs::write(&secret, &data).unwrap();
        std::os::unix::fs::symlink(&secret, Staged::Mirror.path(&fetch, &e.name)).unwrap();
        assert!(intake.begin(&e, Staged::Mirror).is_err());
        // The swarm directory replaced by a symlink to elsewhere.
        std::fs::remove_dir(fetch.join("swarm")).unwrap();
        std::os::unix::fs::symlink(dir.path(), fetch.join("swarm")).unwrap();
        std::fs::write(dir.path().join(&e.name), &data).unwrap();
        assert!(intake.begin(&e, Staged::Swarm).is_err());
        // A FIFO does not block the root process.
        let fifo = Staged::Signature.path(&fetch, &e.name);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(intake.signature(&e.name).is_err());
        // A hard link.
        std::fs::remove_file(Staged::Mirror.path(&fetch, &e.name)).unwrap();
        std::fs::hard_link(&secret, Staged::Mirror.path(&fetch, &e.name)).unwrap();
        assert!(intake.begin(&e, Staged::Mirror).is_err());
        // A short file.
        std::fs::remove_file(Staged::Mirror.path(&fetch, &e.name)).unwrap();
        std::fs::write(Staged::Mirror.path(&fetch, &e.name), &data[..10]).unwrap();
        let copy = intake.begin(&e, Staged::Mirror).unwrap();
        assert!(matches!(
            intake.finish(copy, &e),
            Err(Refusal::Mismatch(why)) if why.contains("bytes")
        ));
        assert!(!dir.path().join("cache").join(&e.name).exists());
    }

    #[test]
    fn signatures_and_indexes_are_size_bounded() {
        let (_dir, intake) = setup();
        let fetch = intake.staging.fetch.clone();
        std::fs::write(Staged::Signature.path(&fetch, "a"), vec![1u8; 100]).unwrap();
        intake.signature("a").unwrap();
        std::fs::write(
            Staged::Signature.path(&fetch, "b"),
            vec![1u8; MAX_SIG_LEN as usize + 1],
        )
        .unwrap();
        assert!(intake.signature("b").is_err());
        std::fs::write(Staged::Index.path(&fetch, "0"), b"d5:filesle7:versioni1ee").unwrap();
        assert_eq!(intake.index(0, 100).unwrap().len(), 23);
        assert!(intake.index(0, 10).is_err());
    }
}
