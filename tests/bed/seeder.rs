//! `pactor seed` as a test peer: started on a free loopback port, its status lines readable,
//! killed when dropped.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::env::pactor_bin;

pub struct SeedProcess {
    child: Child,
    pub port: u16,
    lines: Receiver<String>,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SeedProcess {
    /// `pactor seed ARGS --listen 127.0.0.1:<free port> --rescan 1`, with `pactor_conf`.
    pub fn start(args: &[&std::ffi::OsStr], pactor_conf: &Path) -> SeedProcess {
        Self::start_with(args, pactor_conf, 1)
    }

    /// As [`SeedProcess::start`], rescanning every `rescan` seconds.
    pub fn start_with(args: &[&std::ffi::OsStr], pactor_conf: &Path, rescan: u64) -> SeedProcess {
        Self::spawn(Command::new(pactor_bin()), args, pactor_conf, rescan)
    }

    /// As [`SeedProcess::start`], run by `user` (uid and gid) with no other group and no way to
    /// gain privileges (setpriv), as the systemd unit runs it.
    pub fn start_as(
        user: (u32, u32),
        args: &[&std::ffi::OsStr],
        pactor_conf: &Path,
    ) -> SeedProcess {
        let mut setpriv = Command::new("setpriv");
        setpriv
            .arg(format!("--reuid={}", user.0))
            .arg(format!("--regid={}", user.1))
            .args(["--clear-groups", "--no-new-privs"])
            .arg(pactor_bin());
        Self::spawn(setpriv, args, pactor_conf, 1)
    }

    fn spawn(
        mut command: Command,
        args: &[&std::ffi::OsStr],
        pactor_conf: &Path,
        rescan: u64,
    ) -> SeedProcess {
        let port = free_port();
        let mut child = command
            .arg("seed")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--rescan", &rescan.to_string()])
            .env("PACTOR_CONF", pactor_conf)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        SeedProcess { child, port, lines }
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (without waiting).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Sends `signal` and waits (30 s at most) for the seeder to exit; returns its exit code.
    pub fn stop_with(&mut self, signal: i32) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the seeder did not exit after signal {signal}");
    }

    /// Seeds a published directory.
    pub fn dir(dir: &Path, pactor_conf: &Path) -> SeedProcess {
        Self::start(&["--dir".as_ref(), dir.as_os_str()], pactor_conf)
    }

    /// Waits (30 s at most) for a status line that satisfies `wanted`, and returns it.
    pub fn wait_for(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("the seeder printed the awaited line");
            if wanted(&line) {
                return line;
            }
        }
    }

    /// What the seeder has uploaded so far, from the status line it prints after a SIGHUP
    /// (to a tenth of its unit: 0.1 MiB for megabytes).
    pub fn uploaded(&self) -> u64 {
        self.signal(libc::SIGHUP);
        self.wait_for(|line| line == ":: rescanning (SIGHUP)");
        let line = self.wait_for(|line| line.starts_with(":: seeding "));
        let human = line
            .rsplit_once(", uploaded ")
            .map(|(_, h)| h.to_owned())
            .unwrap_or_else(|| panic!("no upload total in {line:?}"));
        let (value, unit) = human.split_once(' ').expect("a value and a unit");
        let factor = match unit {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            other => panic!("unit {other}"),
        };
        (value.parse::<f64>().expect("a number") * factor) as u64
    }

    /// Bytes the seeder has read so far (`rchar` of /proc/PID/io: every read and pread,
    /// whether or not the page cache served it).
    pub fn read_bytes(&self) -> u64 {
        self.io_counter("rchar")
    }

    fn io_counter(&self, name: &str) -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the counter in /proc/PID/io")
    }

    /// The first status line within `timeout` that satisfies `wanted`, if any.
    pub fn line_within(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits until the seeder reports at least `files` files live, and returns the line.
    pub fn wait_seeding(&self, files: usize) -> String {
        self.wait_for(|line| {
            let count = line
                .strip_prefix(":: seeding ")
                .and_then(|r| r.split(' ').next());
            count
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= files)
        })
    }
}

impl Drop for SeedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
