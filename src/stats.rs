//! Transfer statistics: bytes fetched from peers and from mirrors, bytes uploaded, per run and
//! in total, kept in `stats.json` under `StateDir` and shown by `pactor stats`. They describe
//! this machine's traffic, so `--root` does not move them.
//!
//! Two kinds of writer share the file: `pactor -S` (as root) appends a run when it ends, and a
//! long-running `pactor seed` (as the `pactor` user) rewrites its own run every flush. Every
//! update is a read-modify-write under an exclusive `flock` on the directory (not on the file,
//! which is replaced by a rename and may belong to the other user), and the file is replaced
//! atomically, so readers never take a lock and never see half a file. Recording is best
//! effort: a failure to record is a warning, never a failed transaction.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cli::StatsArgs;
use crate::ui;

/// The file's name inside `StateDir`.
const FILE: &str = "stats.json";
/// Runs kept individually; older ones only count in the totals.
const MAX_RUNS: usize = 100;
/// Runs `pactor stats` lists (the JSON output has them all).
const SHOWN_RUNS: usize = 10;

/// The whole file.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub total: Totals,
    /// The most recent runs, oldest first.
    pub runs: Vec<Run>,
}

/// Everything recorded since the file was created, including runs no longer listed.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    pub runs: u64,
    pub from_peers: u64,
    pub from_mirrors: u64,
    pub uploaded: u64,
    /// Unix time of the first recorded run.
    pub since: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `pactor -S…`: downloads, plus what it seeded while fetching and installing.
    Sync,
    /// `pactor seed`: uploads only.
    Seed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// Unique per process run, so a seeder finds its own entry again.
    pub id: String,
    pub kind: Kind,
    /// Unix times.
    pub started: u64,
    pub updated: u64,
    /// Files fetched (sync runs).
    pub files: u64,
    pub from_peers: u64,
    pub from_mirrors: u64,
    pub uploaded: u64,
}

impl Run {
    fn new(kind: Kind) -> Run {
        let now = now();
        Run {
            id: format!("{}-{now}", std::process::id()),
            kind,
            started: now,
            updated: now,
            files: 0,
            from_peers: 0,
            from_mirrors: 0,
            uploaded: 0,
        }
    }
}

/// Uploaded per downloaded byte; `None` when nothing was downloaded.
pub fn ratio(uploaded: u64, downloaded: u64) -> Option<f64> {
    (downloaded > 0).then(|| uploaded as f64 / downloaded as f64)
}

/// What one `pactor -S` moved: recorded once, when the run is over.
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncTotals {
    pub files: usize,
    pub from_peers: u64,
    pub from_mirrors: u64,
    pub uploaded: u64,
}

/// Records what a `pactor -S` run fetched and uploaded. Never fails the run.
pub fn record_prefetch(dir: &Path, report: &crate::prefetch::Report, uploaded: u64) {
    record_sync(
        dir,
        SyncTotals {
            files: report.files,
            from_peers: report.bytes_from_peers,
            from_mirrors: report.bytes_from_mirrors,
            uploaded,
        },
    );
}

/// Records a finished `pactor -S` run (nothing when it moved no byte). Never fails the run.
pub fn record_sync(dir: &Path, totals: SyncTotals) {
    if totals.from_peers + totals.from_mirrors + totals.uploaded == 0 {
        return;
    }
    let mut run = Run::new(Kind::Sync);
    run.files = totals.files as u64;
    run.from_peers = totals.from_peers;
    run.from_mirrors = totals.from_mirrors;
    run.uploaded = totals.uploaded;
    let result = update(dir, |state| {
        state.total.runs += 1;
        state.total.from_peers += run.from_peers;
        state.total.from_mirrors += run.from_mirrors;
        state.total.uploaded += run.uploaded;
        state.total.since.get_or_insert(run.started);
        push_run(state, run.clone());
    });
    if let Err(e) = result {
        ui::warning(&format!("could not record transfer statistics: {e:#}"));
    }
}

/// A seeder's run: its session's upload counter, flushed now and then and at exit.
pub struct SeedRecorder {
    dir: PathBuf,
    run: Run,
    /// The session's upload counter at the last successful flush.
    flushed: u64,
    /// One warning per failure streak, not one a minute.
    warned: bool,
}

impl SeedRecorder {
    pub fn new(dir: PathBuf) -> SeedRecorder {
        SeedRecorder {
            dir,
            run: Run::new(Kind::Seed),
            flushed: 0,
            warned: false,
        }
    }

    /// Brings the file up to `uploaded`, the session's total so far. A seeder that has not
    /// uploaded anything yet leaves no run behind.
    pub fn flush(&mut self, uploaded: u64) {
        if uploaded <= self.flushed {
            return;
        }
        let delta = uploaded - self.flushed;
        let mut run = self.run.clone();
        run.uploaded = uploaded;
        run.updated = now();
        let result = update(&self.dir, |state| {
            if self.flushed == 0 {
                state.total.runs += 1;
                state.total.since.get_or_insert(run.started);
            }
            state.total.uploaded += delta;
            match state.runs.iter_mut().find(|r| r.id == run.id) {
                Some(existing) => *existing = run.clone(),
                None => push_run(state, run.clone()),
            }
        });
        match result {
            Ok(()) => {
                self.run = run;
                self.flushed = uploaded;
                self.warned = false;
            }
            Err(e) if !self.warned => {
                self.warned = true;
                ui::warning(&format!("could not record transfer statistics: {e:#}"));
            }
            Err(_) => {}
        }
    }
}

fn push_run(state: &mut State, run: Run) {
    state.runs.push(run);
    if state.runs.len() > MAX_RUNS {
        let excess = state.runs.len() - MAX_RUNS;
        state.runs.drain(..excess);
    }
}

/// Reads the state (an absent file is an empty state).
pub fn read(dir: &Path) -> Result<State> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a pactor statistics file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e).with_context(|| format!("could not read {}", path.display())),
    }
}

/// Read-modify-write under the directory's lock. An unreadable file is set aside as
/// `stats.json.bad` rather than silently overwritten.
fn update(dir: &Path, change: impl FnOnce(&mut State)) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let lock =
        std::fs::File::open(dir).with_context(|| format!("could not open {}", dir.display()))?;
    lock.lock()
        .with_context(|| format!("could not lock {}", dir.display()))?;
    let mut state = match read(dir) {
        Ok(state) => state,
        Err(e) => {
            let path = dir.join(FILE);
            std::fs::rename(&path, dir.join(format!("{FILE}.bad")))
                .with_context(|| format!("{e:#}; could not move it aside"))?;
            ui::warning(&format!("{e:#}; moved it to {FILE}.bad and started anew"));
            State::default()
        }
    };
    change(&mut state);
    tracing::debug!(
        "recording transfer statistics in {}",
        dir.join(FILE).display()
    );
    let mut bytes = serde_json::to_vec_pretty(&state).expect("serializable");
    bytes.push(b'\n');
    crate::atomic_write::write(&dir.join(FILE), &bytes)
    // The lock is released when `lock` is dropped.
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `pactor stats [--json]`.
pub fn run(args: &StatsArgs) -> Result<()> {
    let settings = args.pactor_conf.load()?;
    let dir = &settings.state_dir;
    let state = read(dir)?;
    let text = if args.json {
        let json = report_json(&state, &dir.join(FILE));
        serde_json::to_string_pretty(&json).expect("serializable") + "\n"
    } else {
        report_text(&state, &dir.join(FILE))
    };
    use std::io::Write;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// The `--json` document: the file's contents, plus the ratios and where it was read.
fn report_json(state: &State, path: &Path) -> serde_json::Value {
    let with_ratio = |value: serde_json::Value, up: u64, down: u64| {
        let mut value = value;
        value["downloaded"] = down.into();
        value["ratio"] = ratio(up, down).into();
        value
    };
    let t = &state.total;
    serde_json::json!({
        "file": path,
        "total": with_ratio(serde_json::to_value(t).expect("serializable"), t.uploaded, t.from_peers + t.from_mirrors),
        "runs": state.runs.iter().map(|r| with_ratio(serde_json::to_value(r).expect("serializable"), r.uploaded, r.from_peers + r.from_mirrors)).collect::<Vec<_>>(),
    })
}

/// The human report: totals, then the latest runs, newest first.
fn report_text(state: &State, path: &Path) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let t = &state.total;
    if t.runs == 0 {
        let _ = writeln!(out, " no transfers recorded yet in {}", path.display());
        return out;
    }
    let header = |out: &mut String, first: &str| {
        let _ = writeln!(
            out,
            "{first:<22}{:>6} {:>12} {:>12} {:>12} {:>7}",
            "files", "from peers", "from mirrors", "uploaded", "ratio"
        );
    };
    let row = |out: &mut String, label: &str, files: String, peers, mirrors, up| {
        let ratio = ratio(up, peers + mirrors).map_or("-".into(), |r| format!("{r:.2}"));
        let _ = writeln!(
            out,
            "{label:<22}{files:>6} {:>12} {:>12} {:>12} {ratio:>7}",
            ui::human(peers),
            ui::human(mirrors),
            ui::human(up)
        );
    };
    let _ = writeln!(
        out,
        "{}",
        ui::section_line(&format!(
            "Transfers since {} ({} runs)",
            local_time(t.since.unwrap_or(0)),
            t.runs
        ))
    );
    let downloaded = t.from_peers + t.from_mirrors;
    if downloaded > 0 {
        let _ = writeln!(
            out,
            " {:.0}% of the downloaded bytes came from peers",
            100.0 * t.from_peers as f64 / downloaded as f64
        );
    }
    header(&mut out, "");
    row(
        &mut out,
        "total",
        String::new(),
        t.from_peers,
        t.from_mirrors,
        t.uploaded,
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", ui::section_line("Latest runs"));
    header(&mut out, "");
    for r in state.runs.iter().rev().take(SHOWN_RUNS) {
        let label = format!(
            "{} {}",
            local_time(r.started),
            match r.kind {
                Kind::Sync => "-S",
                Kind::Seed => "seed",
            }
        );
        let files = match r.kind {
            Kind::Sync => r.files.to_string(),
            Kind::Seed => String::new(),
        };
        row(
            &mut out,
            &label,
            files,
            r.from_peers,
            r.from_mirrors,
            r.uploaded,
        );
    }
    out
}

/// `YYYY-MM-DD HH:MM` in local time, as pacman's log shows times.
fn local_time(unix: u64) -> String {
    let t = unix as libc::time_t;
    // SAFETY: localtime_r only writes the struct it is given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return unix.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_runs_add_up_and_empty_runs_are_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        record_sync(&state_dir, SyncTotals::default());
        assert!(!state_dir.join(FILE).exists(), "a run that moved nothing");
        for (peers, mirrors) in [(300, 100), (50, 0)] {
            record_sync(
                &state_dir,
                SyncTotals {
                    files: 2,
                    from_peers: peers,
                    from_mirrors: mirrors,
                    uploaded: 10,
                },
            );
        }
        let state = read(&state_dir).unwrap();
        assert_eq!(state.total.runs, 2);
        assert_eq!(
            (
                state.total.from_peers,
                state.total.from_mirrors,
                state.total.uploaded
            ),
            (350, 100, 20)
        );
        assert_eq!(state.runs.len(), 2);
        assert_eq!(state.runs[0].from_mirrors, 100);
        assert!(state.total.since.is_some());
    }

    #[test]
    fn a_seeder_updates_its_own_run_and_adds_only_the_difference() {
        let dir = tempfile::tempdir().unwrap();
        let mut seeder = SeedRecorder::new(dir.path().to_owned());
        seeder.flush(0);
        assert!(!dir.path().join(FILE).exists(), "nothing uploaded yet");
        seeder.flush(100);
        record_sync(
            dir.path(),
            SyncTotals {
                files: 1,
                from_peers: 5,
                from_mirrors: 0,
                uploaded: 0,
            },
        );
        seeder.flush(250);
        seeder.flush(250);
        let state = read(dir.path()).unwrap();
        assert_eq!(state.total.uploaded, 250);
        assert_eq!(state.total.runs, 2);
        let seed: Vec<_> = state.runs.iter().filter(|r| r.kind == Kind::Seed).collect();
        assert_eq!(seed.len(), 1);
        assert_eq!(seed[0].uploaded, 250);
    }

    #[test]
    fn old_runs_leave_the_list_but_stay_in_the_totals() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..MAX_RUNS + 5 {
            record_sync(
                dir.path(),
                SyncTotals {
                    files: 1,
                    from_peers: 1,
                    from_mirrors: 1,
                    uploaded: 0,
                },
            );
        }
        let state = read(dir.path()).unwrap();
        assert_eq!(state.runs.len(), MAX_RUNS);
        assert_eq!(state.total.runs, MAX_RUNS as u64 + 5);
        assert_eq!(state.total.from_peers, MAX_RUNS as u64 + 5);
    }

    #[test]
    fn a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert!(read(dir.path()).is_err());
        record_sync(
            dir.path(),
            SyncTotals {
                files: 1,
                from_peers: 7,
                from_mirrors: 0,
                uploaded: 0,
            },
        );
        assert_eq!(read(dir.path()).unwrap().total.from_peers, 7);
        assert_eq!(
            std::fs::read(dir.path().join("stats.json.bad")).unwrap(),
            b"{not json"
        );
    }

    #[test]
    fn concurrent_writers_lose_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let dir = dir.path().to_owned();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        record_sync(
                            &dir,
                            SyncTotals {
                                files: 1,
                                from_peers: 3,
                                from_mirrors: 0,
                                uploaded: 1,
                            },
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let state = read(dir.path()).unwrap();
        assert_eq!(state.total.runs, 60);
        assert_eq!(state.total.from_peers, 180);
        assert_eq!(state.runs.len(), 60);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(10, 0), None);
        assert_eq!(ratio(30, 20), Some(1.5));
    }
}
