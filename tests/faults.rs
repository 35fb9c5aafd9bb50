//! Faults a run must survive: signals during the prefetch and the commit, a full disk, mirrors
//! that fail in every way real ones do, and two runs at once. Each ends in the next mirror or a
//! clear pacman-style error within the configured timeouts; nothing unverified ever sits under a
//! package's name in the cache; an interrupted run is simply run again.

mod bed;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bed::*;

struct Bed {
    tmp: tempfile::TempDir,
    repo: Repo,
    mirrors: Vec<Mirror>,
    env: TestEnv,
}

fn pkgs() -> Vec<Pkg> {
    vec![
        Pkg::new("foo", "1.0-1").depends("bar").payload(300_000),
        Pkg::new("bar", "1.0-1").payload(20_000),
    ]
}

/// The same, with foo under the size the download process sends whole over its pipe
/// (256 KiB) instead of staging it in a `.part` file.
fn inline_pkgs() -> Vec<Pkg> {
    let mut pkgs = pkgs();
    pkgs[0] = Pkg::new("foo", "1.0-1").depends("bar").payload(150_000);
    pkgs
}

fn bed_with(pkgs: &[Pkg], mirrors: usize, download_user: Option<&str>) -> Bed {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(&tmp.path().join("repo"), "core");
    repo.add(pkgs);
    let mirrors: Vec<Mirror> = (0..mirrors)
        .map(|_| Mirror::start(&tmp.path().join("repo")))
        .collect();
    let urls: Vec<String> = mirrors.iter().map(|m| m.url()).collect();
    let mut builder = TestEnv::builder().repo("core", &urls);
    if let Some(user) = download_user {
        builder = builder.download_user(user);
    }
    let env = builder.build();
    Bed {
        tmp,
        repo,
        mirrors,
        env,
    }
}

fn bed(mirrors: usize) -> Bed {
    bed_with(&pkgs(), mirrors, None)
}

fn size(b: &Bed, pkg: &Pkg) -> u64 {
    std::fs::metadata(b.repo.path(pkg)).unwrap().len()
}

fn names(env: &TestEnv) -> Vec<String> {
    env.installed()
        .into_iter()
        .map(|(n, v)| format!("{n}-{v}"))
        .collect()
}

/// Body bytes a mirror sent for `file`, over every request.
fn sent(mirror: &Mirror, file: &str) -> u64 {
    mirror
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(file))
        .map(|r| r.bytes_sent)
        .sum()
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn output(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// SIGINT, SIGTERM and SIGKILL in the middle of the prefetch, with bar already verified and
/// foo half there: nothing unverified reaches the cache, the lock is released (or, after
/// SIGKILL, reported as pacman reports it), no download process outlives the run, and the
/// rerun fetches only foo's missing bytes and bar not at all.
#[test]
fn a_signal_during_the_prefetch_loses_nothing_and_the_rerun_fetches_only_what_is_missing() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGKILL] {
        let b = bed_with(&pkgs(), 1, Some("alpm"));
        let (foo, bar) = (pkgs()[0].filename(), pkgs()[1].filename());
        b.mirrors[0].set_fault(&foo, Fault::Trickle(60_000));
        let child = spawn(&mut b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
        let fetch = b.env.cache_dir().join("download-pactor/fetch");
        let part = fetch.join(format!("{foo}.part"));
        let cached_bar = b.env.cache_dir().join(&bar);
        wait_until(
            "bar in the cache and foo under way",
            Duration::from_secs(20),
            || cached_bar.exists() && std::fs::metadata(&part).is_ok_and(|m| m.len() > 60_000),
        );
        // SAFETY: kill(2) on the pactor this test started.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = output(child);
        let lock = b.env.db_dir().join("db.lck");
        if signal == libc::SIGKILL {
            assert_eq!(out.code, None);
            assert!(lock.exists(), "a killed pactor cannot release the lock");
        } else {
            assert_eq!(
                out.code,
                Some(128 + signal),
                "signal {signal}: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains("interrupted"),
                "signal {signal}: {}",
                out.stderr
            );
            assert!(!lock.exists(), "the lock is released");
        }
        // The download process goes with the root process, whatever killed it.
        wait_until(
            "the download process to end",
            Duration::from_secs(10),
            || download_processes(&fetch).is_empty(),
        );
        assert!(b.env.installed().is_empty());
        assert_eq!(b.env.cache_files(), std::slice::from_ref(&bar), "{signal}");
        let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        assert!(kept > 0, "what arrived is kept for the next run");

        if signal == libc::SIGKILL {
            // pacman's message for a stale lock, naming the file; removing it is the user's call.
            let out = run(b.env.pactor(&["-S", "--noconfirm", "foo"]));
            assert_eq!(out.code, Some(1));
            assert!(
                out.stderr.contains("unable to lock database")
                    && out
                        .stderr
                        .contains(&format!("you can remove {}", lock.display())),
                "{}",
                out.stderr
            );
            std::fs::remove_file(&lock).unwrap();
        }
        b.mirrors[0].clear_faults();
        let before_bar = sent(&b.mirrors[0], &bar);
        run(b.env.pactor(&["-S", "--noconfirm", "foo"])).assert_ok();
        assert_eq!(names(&b.env), ["bar-1.0-1", "foo-1.0-1"]);
        // The interrupted transfer may be logged only now: count its bytes from the log of
        // ranged requests, which only the rerun makes.
        let resumed: Vec<Request> = b.mirrors[0]
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(&foo) && r.range.is_some())
            .collect();
        assert_eq!(resumed.len(), 1, "{:#?}", b.mirrors[0].requests());
        assert_eq!(resumed[0].range, Some(format!("bytes={kept}-")));
        assert_eq!(
            resumed[0].bytes_sent,
            size(&b, &pkgs()[0]) - kept,
            "only foo's missing bytes are fetched again"
        );
        assert_eq!(
            sent(&b.mirrors[0], &bar),
            before_bar,
            "the verified bar is not fetched again"
        );
    }
}

/// pacman's answer to SIGINT during the commit, observed on pacman itself: the package being
/// installed is finished and recorded, the ones after it are not started, the transaction
/// ends as pacman ends it (same exit code), the lock is released. pactor must do the same.
#[test]
fn sigint_during_the_commit_is_handled_as_pacman_handles_it() {
    // Big enough that extracting the first package takes a while; the signal arrives then.
    let pkgs: Vec<Pkg> = (1..=4)
        .map(|i| Pkg::new(&format!("p{i}"), "1.0-1").payload(12_000_000))
        .collect();
    let targets: Vec<&str> = ["p1", "p2", "p3", "p4"].to_vec();
    let mut results = Vec::new();
    for tool in ["pacman", "pactor"] {
        let mut b = bed_with(&pkgs, 1, None);
        // Both start from a synced database and every package in the cache: only the commit
        // is measured.
        run(b
            .env
            .pactor(&["-Syw", "--noconfirm", "p1", "p2", "p3", "p4"]))
        .assert_ok();
        let mut cmd = match tool {
            "pacman" => b.env.pacman(&["-S", "--noconfirm"]),
            _ => b.env.pactor(&["-S", "--noconfirm"]),
        };
        cmd.args(&targets);
        let mut child = spawn(&mut cmd);
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push(line.clone());
            if line.starts_with("installing p") {
                // SAFETY: kill(2) on the process this test started.
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
                break;
            }
        }
        seen.extend(lines.map_while(Result::ok));
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        let code = child.wait().unwrap().code();
        let installed = names(&b.env);
        assert!(
            stderr.contains("Interrupt signal received"),
            "{tool}: {stderr}"
        );
        assert!(!b.env.db_dir().join("db.lck").exists(), "{tool}");
        // The database stays consistent: what is recorded is installed whole.
        let check = run(b.env.pacman(&["-Qkk"]));
        assert_eq!(
            check.code,
            Some(0),
            "{tool}: {}{}",
            check.stdout,
            check.stderr
        );
        results.push((tool, code, installed.len(), seen));
        // Finishing the job later is an ordinary run, offline for pactor.
        b.mirrors[0].stop();
        run(b
            .env
            .pactor(&["-S", "--noconfirm", "--needed", "p1", "p2", "p3", "p4"]))
        .assert_ok();
        assert_eq!(b.env.installed().len(), 4, "{tool}");
    }
    let (pacman, pactor) = (&results[0], &results[1]);
    assert_eq!(pactor.1, pacman.1, "exit codes: pacman {:?}", pacman);
    assert!(
        (1..4).contains(&pacman.2) && (1..4).contains(&pactor.2),
        "the interrupted transactions installed some, not all: {results:?}"
    );
}

/// Ctrl-Z during the prefetch (SIGTSTP to the run's process group, as a terminal sends it)
/// stops the download process too, though it sits in a session of its own where the
/// terminal's signals do not reach: a stopped run transfers nothing. `fg` (SIGCONT to the
/// group) resumes both, and the run ends as if it had never been stopped.
#[test]
fn ctrl_z_stops_the_download_process_too_and_fg_resumes_the_run() {
    use std::os::unix::process::CommandExt;
    let b = bed_with(&pkgs(), 1, Some("alpm"));
    let foo = pkgs()[0].filename();
    b.mirrors[0].set_fault(&foo, Fault::Trickle(100_000));
    let child = spawn(
        b.env
            .pactor(&["-Sy", "--noconfirm", "foo"])
            .process_group(0),
    );
    let group = -(child.id() as i32);
    let fetch = b.env.cache_dir().join("download-pactor/fetch");
    let part = fetch.join(format!("{foo}.part"));
    let part_len = || std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    wait_until("foo under way", Duration::from_secs(20), || {
        part_len() > 30_000
    });
    let downloader = download_processes(&fetch);
    assert_eq!(downloader.len(), 1, "one download process");
    let stopped = |pid: u32| proc_status(pid, "State").is_some_and(|s| s.starts_with('T'));

    // SAFETY: kill(2) on the process group this test started.
    unsafe { libc::kill(group, libc::SIGTSTP) };
    wait_until(
        "the run and its download process to stop",
        Duration::from_secs(5),
        || stopped(child.id()) && stopped(downloader[0]),
    );
    let before = part_len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(part_len(), before, "a stopped run downloads nothing");
    assert!(
        stopped(child.id()) && stopped(downloader[0]),
        "both stay stopped"
    );

    // SAFETY: as above.
    unsafe { libc::kill(group, libc::SIGCONT) };
    wait_until(
        "the download process to go on",
        Duration::from_secs(5),
        || !stopped(downloader[0]),
    );
    let out = output(child);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(names(&b.env), ["bar-1.0-1", "foo-1.0-1"]);
    assert_eq!(
        sent(&b.mirrors[0], &foo),
        size(&b, &pkgs()[0]),
        "foo was sent once, the stop cost no transfer"
    );
}

/// The cache on a filesystem that fills up while the download process writes: a clear error,
/// nothing installed, the cache as it was (a package already there untouched, nothing under a
/// new package's name). With room for one copy of the file but not two, the run succeeds: the
/// root process takes the mirror's copy the download process gave up instead of copying it.
#[test]
fn a_full_staging_filesystem_is_a_clear_error_and_the_cache_is_intact() {
    let pkgs = [
        Pkg::new("big", "1.0-1").payload(2_000_000),
        Pkg::new("small", "1.0-1").payload(100_000),
    ];
    for fs_size in ["1m", "3m"] {
        let b = bed_with(&pkgs, 2, Some("alpm"));
        run(b.env.pactor(&["-Sy"])).assert_ok();
        let _tmpfs = Tmpfs::mount(&b.env.cache_dir(), fs_size);
        // A package already in the cache, which must stay as it is.
        run(b.env.pactor(&["-Sw", "--noconfirm", "small"])).assert_ok();
        let small = std::fs::read(b.env.cache_dir().join(pkgs[1].filename())).unwrap();
        let started = Instant::now();
        let out = run(b.env.pactor(&["-S", "--noconfirm", "big", "small"]));
        assert!(started.elapsed() < Duration::from_secs(30), "{fs_size}");
        if fs_size == "3m" {
            out.assert_ok();
            let installed: Vec<_> = b.env.installed().into_iter().map(|(n, _)| n).collect();
            assert_eq!(installed, ["big", "small"]);
            let big = b.env.cache_dir().join(pkgs[0].filename());
            assert_eq!(
                std::fs::read(&big).unwrap(),
                std::fs::read(b.repo.path(&pkgs[0])).unwrap()
            );
            let meta = std::fs::metadata(&big).unwrap();
            assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o644));
            continue;
        }
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "error: failed retrieving file '{}' from all mirrors",
                pkgs[0].filename()
            )) && out.stderr.contains("No space left on device"),
            "{}",
            out.stderr
        );
        assert!(b.env.installed().is_empty());
        assert_eq!(b.env.cache_files(), [pkgs[1].filename()]);
        assert_eq!(
            std::fs::read(b.env.cache_dir().join(pkgs[1].filename())).unwrap(),
            small,
        );
        assert!(!b.env.db_dir().join("db.lck").exists());
    }
}

/// Every mirror fault pactor's tests know, on the first mirror: the file comes from the
/// second. The same fault on every mirror: a clear error. Either within the timeouts.
#[test]
fn every_mirror_fault_ends_in_the_next_mirror_or_a_clear_error_never_a_hang() {
    // foo staged in a `.part` file, then foo sent whole over the download process's pipe.
    for pkgs in [pkgs(), inline_pkgs()] {
        let foo = pkgs[0].filename();
        let faults = [
            Fault::Status(404),
            Fault::Status(500),
            Fault::Reset,
            Fault::Truncate(100_000),
            Fault::WrongContentLength(50_000),
            Fault::WrongContentLength(-50_000),
            Fault::StallAfterHeaders,
            Fault::Trickle(1),
        ];
        for fault in faults {
            for everywhere in [false, true] {
                let b = bed_with(&pkgs, 2, None);
                b.env
                    .write_pactor_conf("[options]\nIdleTimeout = 2\nConnectTimeout = 2\n");
                run(b.env.pactor(&["-Sy"])).assert_ok();
                let faulty = if everywhere {
                    &b.mirrors[..]
                } else {
                    &b.mirrors[..1]
                };
                for m in faulty {
                    m.set_fault(&foo, fault.clone());
                }
                let started = Instant::now();
                let out = run(b.env.pactor(&["-S", "--noconfirm", "foo"]));
                let took = started.elapsed();
                // Two mirrors, each given at most an idle timeout (2 s) or a connect timeout.
                assert!(took < Duration::from_secs(15), "{fault:?}: took {took:?}");
                // A Content-Length too large still brings the whole file before the connection
                // breaks: those bytes are complete and verify, so that mirror is enough.
                let whole_file_anyway = matches!(fault, Fault::WrongContentLength(d) if d > 0);
                if everywhere && !whole_file_anyway {
                    assert_eq!(out.code, Some(1), "{fault:?}: {}", out.stderr);
                    assert!(
                        out.stderr.contains(&format!(
                            "error: failed retrieving file '{foo}' from all mirrors"
                        )),
                        "{fault:?}: {}",
                        out.stderr
                    );
                    assert!(b.env.installed().is_empty(), "{fault:?}");
                    assert!(
                        !b.env.cache_files().contains(&foo),
                        "{fault:?}: {:?}",
                        b.env.cache_files()
                    );
                } else {
                    out.assert_ok();
                    assert_eq!(names(&b.env), ["bar-1.0-1", "foo-1.0-1"], "{fault:?}");
                    assert!(
                        whole_file_anyway || b.mirrors[1].count(&foo) >= 1,
                        "{fault:?}"
                    );
                    assert_eq!(
                        std::fs::read(b.env.cache_dir().join(&foo)).unwrap(),
                        std::fs::read(b.repo.path(&pkgs[0])).unwrap(),
                        "{fault:?}"
                    );
                }
                let _ = &b.tmp;
            }
        }
    }
}

/// A second pactor while the first holds the database: pacman's lock message, exit 1, and
/// nothing changed by it: no request to any mirror, no file in the database directory
/// written, the first run undisturbed.
#[test]
fn a_second_run_finds_the_database_locked_and_changes_nothing() {
    let b = bed(1);
    let (foo, bar) = (pkgs()[0].filename(), pkgs()[1].filename());
    b.mirrors[0].set_fault(&foo, Fault::Trickle(100_000));
    let first = spawn(&mut b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    let cached_bar = b.env.cache_dir().join(&bar);
    wait_until(
        "the first run to be downloading",
        Duration::from_secs(20),
        || cached_bar.exists(),
    );
    let requests = b.mirrors[0].requests().len();
    let snapshot = || -> Vec<(PathBuf, u64, i64)> {
        let mut files: Vec<_> = walk(&b.env.db_dir())
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(&p).unwrap();
                let mtime = std::os::unix::fs::MetadataExt::mtime_nsec(&m);
                (p, m.len(), mtime)
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot();
    for args in [
        &["-S", "--noconfirm", "bar"][..],
        &["-Sy", "--noconfirm", "bar"],
    ] {
        let out = run(b.env.pactor(args));
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("unable to lock database"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(snapshot(), before, "the database directory is untouched");
    assert_eq!(b.mirrors[0].requests().len(), requests, "no request");
    output(first).assert_ok();
    assert_eq!(names(&b.env), ["bar-1.0-1", "foo-1.0-1"]);
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}
