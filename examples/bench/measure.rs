//! Running a contender: wall time and CPU time from the kernel (`wait4`), peak RSS from GNU
//! time, output to a log file for the post-mortem of a failed run.
//!
//! Peak RSS cannot come from our own `wait4`: a child's maxrss counts the memory image it was
//! forked from, and the harness holds hundreds of megabytes (a workload's payload) at times.
//! `/usr/bin/time` is small, and it is the one that forks the contender.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    pub cpu: Duration,
    pub max_rss_kb: u64,
    pub ok: bool,
}

/// A started process and when it started.
pub struct Running {
    child: Child,
    started: Instant,
    /// Where GNU time writes the peak RSS.
    rss: tempfile::NamedTempFile,
}

/// Starts `cmd` (under GNU time) with its output appended to `log`.
pub fn spawn(cmd: &mut Command, log: &Path) -> Running {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    let rss = tempfile::NamedTempFile::new().expect("temp file");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["--format", "%M", "--output"])
        .arg(rss.path())
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    timed.stdin(Stdio::null()).stdout(out).stderr(err);
    let started = Instant::now();
    let child = timed
        .spawn()
        .unwrap_or_else(|e| panic!("/usr/bin/time {cmd:?}: {e}"));
    Running {
        child,
        started,
        rss,
    }
}

impl Running {
    /// Waits for the process and reads its resource usage.
    pub fn wait(self) -> Measured {
        let pid = self.child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let wall = self.started.elapsed();
        let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
        let max_rss_kb = std::fs::read_to_string(self.rss.path())
            .ok()
            .and_then(|text| text.lines().last()?.trim().parse().ok())
            .unwrap_or(0);
        Measured {
            wall,
            cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            max_rss_kb,
            ok: reaped == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        }
    }
}

pub fn run(cmd: &mut Command, log: &Path) -> Measured {
    spawn(cmd, log).wait()
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// The `p` quantile by linear interpolation between closest ranks.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = p * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}
