//! SIGINT, SIGTERM and SIGHUP. During the prefetch, transfers are told to stop rather than
//! dropped, so each flushes what it received into its `.part` file in the staging directory:
//! the next run resumes from there. Then the run ends normally (releasing alpm's lock) with
//! 128 + signal. During the commit the transaction is interrupted between packages, as pacman
//! does (`sync::run`). pacman handles SIGHUP as it handles SIGINT; so does pactor.
//!
//! SIGTSTP (Ctrl-Z) stops pactor as it stops pacman, and with it the processes it
//! [follows](Interrupt::follow): the download process runs in a session of its own, where the
//! terminal's signals do not reach, and would go on transferring while the user believes the
//! run paused.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// A handle on "has a stopping signal arrived?", cheap to clone into every transfer.
#[derive(Clone)]
pub struct Interrupt {
    received: watch::Receiver<Option<i32>>,
    sender: Arc<watch::Sender<Option<i32>>>,
    followers: Followers,
}

/// The processes stopped and continued with this one, by pidfd: a follower that has exited
/// and been reaped is never mistaken for a process that took its pid.
type Followers = Arc<Mutex<Vec<(u64, OwnedFd)>>>;

/// A process stopped and continued with pactor until this is dropped.
pub struct Follower {
    id: u64,
    followers: Followers,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        followers.retain(|(id, _)| *id != self.id);
    }
}

impl Interrupt {
    /// Starts listening to SIGINT and SIGTERM; must be called inside the runtime. (A daemon
    /// keeps SIGHUP for itself: `pactor seed` rescans on it.)
    pub fn listen() -> std::io::Result<Interrupt> {
        Self::listen_to(&[SignalKind::interrupt(), SignalKind::terminate()])
    }

    /// Starts listening to SIGINT, SIGTERM and SIGHUP, the signals pacman stops on.
    pub fn listen_like_pacman() -> std::io::Result<Interrupt> {
        Self::listen_to(&[
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ])
    }

    fn listen_to(kinds: &[SignalKind]) -> std::io::Result<Interrupt> {
        let (tx, rx) = watch::channel(None);
        let mut streams = Vec::new();
        for kind in kinds {
            streams.push((kind.as_raw_value(), signal(*kind)?));
        }
        let mut suspend = signal(SignalKind::from_raw(libc::SIGTSTP))?;
        let sender = Arc::new(tx);
        let interrupt = Interrupt {
            received: rx,
            sender: sender.clone(),
            followers: Followers::default(),
        };
        let followers = interrupt.followers.clone();
        tokio::spawn(async move {
            while suspend.recv().await.is_some() {
                stop_with(&followers);
            }
        });
        let trigger = interrupt.clone();
        for (signum, mut stream) in streams {
            let trigger = trigger.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    trigger.trigger(signum);
                }
            });
        }
        Ok(interrupt)
    }

    /// Acts as if `signum` had arrived (the first signal is the one remembered).
    pub fn trigger(&self, signum: i32) {
        let _ = RECEIVED.compare_exchange(0, signum, Ordering::SeqCst, Ordering::SeqCst);
        self.sender.send_if_modified(|seen| {
            if seen.is_none() {
                *seen = Some(signum);
                true
            } else {
                false
            }
        });
    }

    /// Stops and continues `pid`, a child not yet waited for, with this process (Ctrl-Z,
    /// `fg`). Without pidfds (Linux before 5.3) the child is not followed.
    pub fn follow(&self, pid: u32) -> Follower {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd >= 0 {
            // SAFETY: the descriptor was just opened and is owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
            followers.push((id, fd));
        }
        Follower {
            id,
            followers: self.followers.clone(),
        }
    }

    /// The signal received so far, if any.
    pub fn signal(&self) -> Option<i32> {
        *self.received.borrow()
    }

    /// Resolves once a signal has arrived.
    pub async fn wait(&self) {
        let mut rx = self.received.clone();
        let _ = rx.wait_for(Option::is_some).await;
    }
}

/// The first stopping signal this process received, for code that has no [`Interrupt`] at
/// hand: a prompt waiting for a line (`ui`), which must give up when the user presses Ctrl-C.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The first stopping signal this process received, if any.
pub fn received() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|signum| *signum != 0)
}

/// pacman's line on stderr when a signal stops it at a prompt or during the commit; once.
pub fn announce(signum: i32) {
    static ANNOUNCED: AtomicBool = AtomicBool::new(false);
    if ANNOUNCED.swap(true, Ordering::SeqCst) {
        return;
    }
    let what = match signum {
        libc::SIGHUP => "Hangup",
        libc::SIGTERM => "Terminate",
        _ => "Interrupt",
    };
    eprintln!("\n{what} signal received");
}

/// What SIGTSTP does to a process without a handler, to this one and its followers: all stop
/// until SIGCONT (`fg`, `bg`) continues this one, which then continues them.
fn stop_with(followers: &Mutex<Vec<(u64, OwnedFd)>>) {
    // Held while stopped: a follower dropped meanwhile waits for the continue.
    let followers = followers.lock().unwrap_or_else(|e| e.into_inner());
    let send = |fd: &OwnedFd, signum: i32| {
        // SAFETY: pidfd_send_signal(2) on a pidfd this process owns; no siginfo, no flags.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signum,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    };
    for (_, fd) in followers.iter() {
        send(fd, libc::SIGSTOP);
    }
    // SIGSTOP, which no handler catches, sent to this thread: it stops before raise(3)
    // returns (the whole process with it) and goes on from here when continued. Sent to the
    // process, another thread could take it while this one went on to continue the followers.
    // SAFETY: raise(3) has no preconditions.
    unsafe { libc::raise(libc::SIGSTOP) };
    for (_, fd) in followers.iter() {
        send(fd, libc::SIGCONT);
    }
}
