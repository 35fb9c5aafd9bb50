//! A terminal for a process under test: a pseudo-terminal that is its controlling terminal, so
//! that what a user types reaches it as a user's keys do. Ctrl-C and Ctrl-Z become SIGINT and
//! SIGTSTP from the kernel, sent to the process group in the terminal's foreground, and a line
//! is read in the terminal's line mode unless the process changes it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Terminal {
    master: File,
    pub child: Child,
    screen: Arc<Mutex<Vec<u8>>>,
    /// Set when the terminal's output has ended: everything written to it is on the screen.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Terminal {
    /// Starts `cmd` in a session of its own, with a new pseudo-terminal as its controlling
    /// terminal and its stdin, stdout and stderr.
    pub fn spawn(mut cmd: Command) -> Terminal {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty(3) writes two descriptors; the name, settings and size may be null.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned by nothing else.
        let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
        cmd.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: setsid and ioctl are async-signal-safe; stdin is the terminal by now.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        // The terminal's other end stays open only in the child: its output ends when it does.
        drop(cmd);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let shown = screen.clone();
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = closed.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the last process holding the terminal is gone.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Terminal {
            master,
            child,
            screen,
            closed,
        }
    }

    /// Types `keys` (`"\x03"` is Ctrl-C, `"\x1a"` Ctrl-Z, `"\r"` Enter).
    pub fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Everything written to the terminal so far.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits (`timeout` at most) until the terminal shows `text`.
    pub fn wait_for(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.screen().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit code, after waiting (30 s at most) for the process to end and for all it
    /// wrote to reach the screen.
    pub fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while !self.closed.load(std::sync::atomic::Ordering::SeqCst) {
                    assert!(Instant::now() < deadline, "the terminal stayed open");
                    std::thread::sleep(Duration::from_millis(10));
                }
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the process did not end:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
