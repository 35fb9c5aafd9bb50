//! The machine the benchmarks ran on: what it is, and how fast it writes memory it has not
//! written lately, which is what a fleet simulated on one machine runs into.
//!
//! The clients keep their roots and caches on a tmpfs, that is in memory. On the
//! virtual machines these benchmarks were written on, the first few GB written go at memcpy
//! speed and the rest at about 0.1 GB/s, whatever was freed just before (the host backs the
//! guest's memory as it is touched). A fleet of 16 clients of a 300 MB update holds about
//! 4 GB at its peak: past that edge its clients wait on the host, not on each other. The
//! probe measures where the edge is on the machine of the run, after the scenarios, and the
//! fleet table shows how much each fleet held.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub fn describe(options: &crate::Options) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "Machine: {cores} cores ({cpu}), Linux {}; pactor at commit `{commit}`. Repos on {}; \
         roots, caches and the seeders' state on {}.",
        kernel.trim(),
        filesystem(&options.work),
        filesystem(&std::env::temp_dir())
    )
}

/// The filesystem `dir` is on, and for ext4 whether it has a journal: without one, ext4 scans
/// recently deleted inodes at every file it creates, which weighs on whoever creates most.
fn filesystem(dir: &Path) -> String {
    let found = std::process::Command::new("findmnt")
        .args(["-n", "-o", "SOURCE,FSTYPE", "-T"])
        .arg(dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut parts = found.split_whitespace();
    let (Some(source), Some(fstype)) = (parts.next(), parts.next()) else {
        return "an unknown filesystem".into();
    };
    let device = source.rsplit('/').next().unwrap_or(source);
    let journal = std::fs::read_to_string(format!("/sys/fs/ext4/{device}/journal_task"))
        .map(|task| task.trim() != "<none>");
    match (fstype, journal) {
        ("ext4", Ok(true)) => format!("ext4 with a journal ({source})"),
        ("ext4", Ok(false)) => format!("ext4 without a journal ({source})"),
        _ => format!("{fstype} ({source})"),
    }
}

/// Bytes in use on the filesystem of `dir`.
pub fn used_bytes(dir: &Path) -> u64 {
    statvfs(dir).map_or(0, |s| (s.f_blocks - s.f_bfree) * s.f_frsize)
}

fn available_bytes(dir: &Path) -> u64 {
    statvfs(dir).map_or(0, |s| s.f_bavail * s.f_frsize)
}

fn statvfs(dir: &Path) -> Option<libc::statvfs> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills the struct it is given; the path is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(path.as_ptr(), &mut stat) } == 0).then_some(stat)
}

/// The most bytes in use on a filesystem while it runs, above what was in use at its start.
pub struct PeakUse {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakUse {
    pub fn follow(dir: &Path) -> PeakUse {
        let dir = dir.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let base = used_bytes(&dir);
            let mut peak = base;
            while !stopped.load(Ordering::Relaxed) {
                peak = peak.max(used_bytes(&dir));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak.max(used_bytes(&dir)).saturating_sub(base)
        });
        PeakUse { stop, thread }
    }

    pub fn end(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler")
    }
}

/// One step of the memory probe.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Bytes written before this step's end.
    pub written: u64,
    pub gb_per_s: f64,
}

const STEP: u64 = 512 << 20;
/// The probe never writes more than this, nor into the last GiB of its filesystem.
const MAX_PROBE: u64 = 8 << 30;

/// Writes a file in `dir` in steps of 512 MiB and times each step: memory written at the
/// machine's speed, then, past the edge, at the host's. Stops two steps past the edge (a step
/// at under a quarter of the first step's speed), at 8 GiB or at a minute, and removes the file.
pub fn probe_fresh_memory(dir: &Path) -> Vec<Step> {
    let room = available_bytes(dir).saturating_sub(1 << 30).min(MAX_PROBE);
    let path = dir.join("pactor-bench-memory-probe");
    let Ok(mut file) = std::fs::File::create(&path) else {
        return Vec::new();
    };
    let chunk = vec![0xa5u8; 1 << 20];
    let started = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    let mut written = 0;
    let mut slow = 0;
    'probe: while written + STEP <= room && slow < 2 && started.elapsed() < Duration::from_secs(60)
    {
        let step_started = Instant::now();
        for _ in 0..STEP / chunk.len() as u64 {
            if file.write_all(&chunk).is_err() {
                break 'probe;
            }
        }
        written += STEP;
        let gb_per_s = STEP as f64 / step_started.elapsed().as_secs_f64() / 1e9;
        if steps
            .first()
            .is_some_and(|first| gb_per_s < first.gb_per_s / 4.0)
        {
            slow += 1;
        }
        steps.push(Step { written, gb_per_s });
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    steps
}
