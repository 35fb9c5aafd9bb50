//! The download process's sandbox, built as pacman 7 builds its own downloader's: the process
//! switches to `DownloadUser` with libalpm's `alpm_sandbox_setup_child` (Landlock: the whole
//! filesystem read-only except the staging directory; the syscall filter when libalpm has
//! seccomp; no-new-privs; then setgid, setgroups and setuid), and writes only into its staging
//! directory, which it owns. The rules for when are pacman's (`_alpm_use_sandbox`): only a
//! root process switches, only when `DownloadUser` is set, and `DisableSandbox` (both parts
//! off) means no sandbox at all.
//!
//! The staging layout keeps the two sides apart:
//!
//! ```text
//! <cache>/download-pactor/          root's: copies being verified, renamed into the cache
//! <cache>/download-pactor/fetch/    DownloadUser's: what the download process writes
//! ```
//!
//! The child cannot rename or replace `fetch/` (its parent directory is root's), and the root
//! process opens nothing below `fetch/` without `O_NOFOLLOW`.

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Whether and how the download process is confined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The user the child switches to; `None`: it runs as whoever runs pactor.
    pub user: Option<String>,
    /// Landlock: no writes outside the staging directory.
    pub filesystem: bool,
    /// libalpm's syscall filter.
    pub syscalls: bool,
}

/// The sandbox settings of pacman.conf and the command line.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub download_user: Option<String>,
    pub disable_filesystem: bool,
    pub disable_syscalls: bool,
}

impl Plan {
    /// pacman's `_alpm_use_sandbox`: root, a DownloadUser, and at least one part enabled. The
    /// second value is the notice to print when root downloads unsandboxed for want of a
    /// DownloadUser.
    pub fn new(settings: &Settings, running_as_root: bool) -> (Plan, Option<&'static str>) {
        let off = Plan {
            user: None,
            filesystem: false,
            syscalls: false,
        };
        if !running_as_root {
            return (off, None);
        }
        let Some(user) = &settings.download_user else {
            return (
                off,
                Some(
                    "DownloadUser is not set in pacman.conf: downloads run as root, without a sandbox",
                ),
            );
        };
        if settings.disable_filesystem && settings.disable_syscalls {
            return (off, None);
        }
        (
            Plan {
                user: Some(user.clone()),
                filesystem: !settings.disable_filesystem,
                syscalls: !settings.disable_syscalls,
            },
            None,
        )
    }
}

/// The staging directories of one cache.
#[derive(Debug, Clone)]
pub struct Staging {
    /// `<cache>/download-pactor`, root's.
    pub work: PathBuf,
    /// `<cache>/download-pactor/fetch`, the download process's.
    pub fetch: PathBuf,
}

impl Staging {
    /// Whether a run was cut short here: a mirror's `.part` file, or a file the swarm was
    /// filling. Both are resumed by the next run.
    pub fn has_partials(&self) -> bool {
        let part =
            |entry: &std::fs::DirEntry| entry.file_name().to_string_lossy().ends_with(".part");
        let entries = |dir: &Path| std::fs::read_dir(dir).into_iter().flatten().flatten();
        entries(&self.fetch).any(|e| part(&e))
            || entries(&self.fetch.join("swarm")).next().is_some()
    }

    /// Removes both directories and all they hold; what cannot be removed is left.
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.work)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!("could not remove {}: {e}", self.work.display());
        }
    }

    pub fn of(cache: &Path) -> Staging {
        let work = cache.join("download-pactor");
        Staging {
            fetch: work.join("fetch"),
            work,
        }
    }

    /// Creates the directories for `plan`'s user. Must run under the database lock: it clears
    /// what a killed run left in the root's directory (never the child's, whose partial files
    /// the next transfer resumes), and a `fetch/` owned by someone else (an earlier run as
    /// another DownloadUser) is removed, since its files could not be resumed anyway.
    pub fn prepare(&self, plan: &Plan) -> Result<()> {
        let owner = match &plan.user {
            Some(user) => Some(lookup_user(user)?),
            None => None,
        };
        let (uid, gid) = owner.unwrap_or_else(|| unsafe { (libc::geteuid(), libc::getegid()) });
        make_dir(&self.work, 0o755)?;
        let meta = std::fs::symlink_metadata(&self.work)?;
        if !meta.is_dir() || meta.uid() != unsafe { libc::geteuid() } {
            bail!(
                "{} is not a directory of this user; remove it",
                self.work.display()
            );
        }
        for entry in std::fs::read_dir(&self.work)? {
            let entry = entry?;
            if entry.file_name() == "fetch" {
                continue;
            }
            let path = entry.path();
            let removed = if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.with_context(|| format!("could not remove {}", path.display()))?;
        }
        match std::fs::symlink_metadata(&self.fetch) {
            Ok(meta) if meta.is_dir() && meta.uid() == uid => {}
            Ok(meta) => {
                let removed = if meta.is_dir() {
                    std::fs::remove_dir_all(&self.fetch)
                } else {
                    std::fs::remove_file(&self.fetch)
                };
                removed.with_context(|| format!("could not remove {}", self.fetch.display()))?;
            }
            Err(_) => {}
        }
        make_dir(&self.fetch, 0o755)?;
        if owner.is_some() {
            let path = cstring(&self.fetch)?;
            // SAFETY: a NUL-terminated path; lchown never follows a symlink.
            if unsafe { libc::lchown(path.as_ptr(), uid, gid) } != 0 {
                return Err(std::io::Error::last_os_error()).with_context(|| {
                    format!(
                        "could not give {} to the download user",
                        self.fetch.display()
                    )
                });
            }
        }
        Ok(())
    }
}

fn make_dir(path: &Path, mode: u32) -> Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("could not create {}", path.display())),
    }
}

fn cstring(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).context("a path with a NUL byte")
}

/// `user`'s uid and gid, or pacman's error when there is no such user.
pub fn lookup_user(user: &str) -> Result<(libc::uid_t, libc::gid_t)> {
    let name = CString::new(user).context("a user name with a NUL byte")?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into `pwd` and `buf`, both ours and large enough.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        bail!(
            "failed to get download user '{user}': {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    if found.is_null() {
        bail!("download user '{user}' does not exist");
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

/// In the child, before any other thread exists (Landlock, no-new-privs and the syscall filter
/// bind the calling thread and what it starts): enters the sandbox, then arranges to get
/// SIGTERM when the root process dies (the credential change cleared any earlier request).
pub fn enter(plan: &Plan, fetch_dir: &Path, debug: bool) -> Result<()> {
    let parent = unsafe { libc::getppid() };
    if let Some(user) = &plan.user {
        let dir = fetch_dir
            .to_str()
            .context("the staging directory is not UTF-8")?;
        let mut alpm = alpm::Alpm::new("/", dir).context("could not start libalpm")?;
        alpm.set_disable_sandbox_filesystem(!plan.filesystem);
        alpm.set_disable_sandbox_syscalls(!plan.syscalls);
        alpm.set_log_cb(debug, |level, message, debug| {
            if level.intersects(alpm::LogLevel::ERROR | alpm::LogLevel::WARNING) {
                eprint!("error: {message}");
            } else if *debug && level.intersects(alpm::LogLevel::DEBUG) {
                eprint!("debug: {message}");
            }
        });
        alpm.sandbox_setup_child(user.clone(), dir.to_owned(), true)
            .map_err(|e| anyhow::anyhow!("switching to sandbox user '{user}' failed! ({e})"))?;
    }
    // SAFETY: plain prctl and getppid calls.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        if libc::getppid() != parent {
            bail!("the root process is gone");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(user: Option<&str>, fs_off: bool, sys_off: bool) -> Settings {
        Settings {
            download_user: user.map(str::to_owned),
            disable_filesystem: fs_off,
            disable_syscalls: sys_off,
        }
    }

    #[test]
    fn pacmans_rules_for_when_to_sandbox() {
        let (plan, notice) = Plan::new(&settings(Some("alpm"), false, false), true);
        assert_eq!(plan.user.as_deref(), Some("alpm"));
        assert!(plan.filesystem && plan.syscalls && notice.is_none());

        let (plan, _) = Plan::new(&settings(Some("alpm"), true, false), true);
        assert!(!plan.filesystem && plan.syscalls && plan.user.is_some());

        // DisableSandbox: both parts off is no sandbox at all, as in pacman.
        let (plan, notice) = Plan::new(&settings(Some("alpm"), true, true), true);
        assert!(plan.user.is_none() && notice.is_none());

        // No DownloadUser: unsandboxed, and said so.
        let (plan, notice) = Plan::new(&settings(None, false, false), true);
        assert!(plan.user.is_none() && notice.is_some());

        // Not root: nothing to drop, nothing to say.
        let (plan, notice) = Plan::new(&settings(Some("alpm"), false, false), false);
        assert!(plan.user.is_none() && notice.is_none());
    }

    #[test]
    fn an_unknown_user_is_pacmans_error() {
        let err = lookup_user("no-such-user-pactor").unwrap_err();
        assert_eq!(
            err.to_string(),
            "download user 'no-such-user-pactor' does not exist"
        );
        assert_eq!(lookup_user("root").unwrap(), (0, 0));
    }
}
