//! The download process: it runs as pacman.conf's DownloadUser inside libalpm's sandbox, the
//! root process alone writes the cache, and pacman's switches turn the sandbox off. Observed
//! from outside, on the real processes (/proc), with the built binary and real pacman.conf
//! files.

mod bed;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bed::*;

struct Bed {
    _tmp: tempfile::TempDir,
    repo: Repo,
    mirror: Mirror,
    env: TestEnv,
}

fn pkgs() -> Vec<Pkg> {
    vec![
        // foo is staged in a `.part` file (over 256 KiB), bar sent whole over the pipe.
        Pkg::new("foo", "1.0-1").payload(300_000),
        Pkg::new("bar", "1.0-1").payload(1000),
    ]
}

fn bed(download_user: Option<&str>) -> Bed {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(&tmp.path().join("repo"), "core");
    repo.add(&pkgs());
    let mirror = Mirror::start(&tmp.path().join("repo"));
    let mut builder = TestEnv::builder().repo("core", &[mirror.url()]);
    if let Some(user) = download_user {
        builder = builder.download_user(user);
    }
    Bed {
        _tmp: tmp,
        repo,
        mirror,
        env: builder.build(),
    }
}

/// Starts `pactor ARGS` with a trickling foo, so the download process lives a few seconds.
fn start_slow(b: &Bed, args: &[&str]) -> Child {
    b.mirror
        .set_fault("foo-1.0-1-x86_64.pkg.tar.zst", Fault::Trickle(80_000));
    b.env
        .pactor(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the download process of this root to appear, and returns its pid.
fn download_process(b: &Bed) -> u32 {
    let fetch = b.env.cache_dir().join("download-pactor/fetch");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = download_processes(&fetch).first() {
            return *pid;
        }
        assert!(Instant::now() < deadline, "no download process appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until foo's partial file exists: the download process is past its sandbox setup.
fn wait_for_part(b: &Bed) {
    let part = b
        .env
        .cache_dir()
        .join("download-pactor/fetch/foo-1.0-1-x86_64.pkg.tar.zst.part");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !part.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(part.exists());
}

fn finish(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn downloads_run_as_the_download_user_inside_the_sandbox() {
    let b = bed(Some("alpm"));
    let alpm = uid_of("alpm");
    let fetch = b.env.cache_dir().join("download-pactor/fetch");
    let child = start_slow(&b, &["-Sy", "--noconfirm", "--debug", "foo"]);
    let pid = download_process(&b);
    // Once it writes, it is inside the sandbox.
    let part = fetch.join("foo-1.0-1-x86_64.pkg.tar.zst.part");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !part.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The process itself: every uid the download user's, no supplementary groups, no way to
    // gain privileges, the root process still root.
    let uids = proc_status(pid, "Uid").unwrap();
    assert!(
        uids.split_whitespace().all(|u| u == alpm.to_string()),
        "{uids}"
    );
    assert_eq!(proc_status(pid, "Groups").unwrap(), "");
    assert_eq!(proc_status(pid, "NoNewPrivs").unwrap(), "1");
    // libalpm's syscall filter (seccomp, mode 2), as pacman's own downloader has it.
    assert_eq!(proc_status(pid, "Seccomp").unwrap(), "2");
    assert_eq!(proc_status(child.id(), "Uid").unwrap(), "0\t0\t0\t0");
    assert_eq!(proc_status(child.id(), "Seccomp").unwrap(), "0");
    // Its session is its own: the terminal's signals and the terminal itself are the root
    // process's.
    let sid = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap()
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_owned()
    };
    assert_eq!(sid(pid), pid.to_string());
    // What it writes is its own, in its directory.
    assert_eq!(std::fs::metadata(&part).unwrap().uid(), alpm);
    assert_eq!(std::fs::metadata(&fetch).unwrap().uid(), alpm);

    let out = finish(child);
    out.assert_ok();
    // libalpm's own word that Landlock confines it to the staging directory.
    assert!(
        out.stderr.contains(&format!(
            "filesystem access has been restricted to {}",
            fetch.display()
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("DownloadUser is not set"));
    // The cache holds root's copies, readable by all, byte for byte the repo's.
    for pkg in &pkgs()[..1] {
        let cached = b.env.cache_dir().join(pkg.filename());
        let meta = std::fs::metadata(&cached).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o644));
        assert_eq!(
            std::fs::read(&cached).unwrap(),
            std::fs::read(b.repo.path(pkg)).unwrap()
        );
    }
    assert_eq!(
        b.env.installed(),
        [("foo".to_string(), "1.0-1".to_string())]
    );
}

#[test]
fn pacmans_switches_turn_the_sandbox_off() {
    // --disable-sandbox-filesystem: still the download user, but no Landlock.
    let b = bed(Some("alpm"));
    let child = start_slow(
        &b,
        &[
            "-Sy",
            "--noconfirm",
            "--debug",
            "--disable-sandbox-filesystem",
            "foo",
        ],
    );
    let pid = download_process(&b);
    wait_for_part(&b);
    let alpm = uid_of("alpm").to_string();
    assert!(proc_status(pid, "Uid").unwrap().starts_with(&alpm));
    assert_eq!(proc_status(pid, "Seccomp").unwrap(), "2");
    let out = finish(child);
    out.assert_ok();
    assert!(
        !out.stderr.contains("filesystem access has been restricted"),
        "{}",
        out.stderr
    );

    // The same halves as pacman.conf settings, and the syscall half on the command line:
    // still the download user, with only the other half of the sandbox.
    for (args, extra, landlock, seccomp) in [
        (
            &["-S", "--noconfirm", "--debug", "foo"][..],
            "DisableSandboxFilesystem\n",
            false,
            "2",
        ),
        (
            &["-S", "--noconfirm", "--debug", "foo"][..],
            "DisableSandboxSyscalls\n",
            true,
            "0",
        ),
        (
            &[
                "-S",
                "--noconfirm",
                "--debug",
                "--disable-sandbox-syscalls",
                "foo",
            ][..],
            "",
            true,
            "0",
        ),
    ] {
        let b = bed(Some("alpm"));
        let conf = std::fs::read_to_string(b.env.conf()).unwrap();
        std::fs::write(
            b.env.conf(),
            conf.replacen("[options]\n", &format!("[options]\n{extra}"), 1),
        )
        .unwrap();
        run(b.env.pactor(&["-Sy"])).assert_ok();
        let child = start_slow(&b, args);
        let pid = download_process(&b);
        wait_for_part(&b);
        assert!(
            proc_status(pid, "Uid").unwrap().starts_with(&alpm),
            "{extra}{args:?}"
        );
        assert_eq!(
            proc_status(pid, "Seccomp").unwrap(),
            seccomp,
            "{extra}{args:?}"
        );
        let out = finish(child);
        out.assert_ok();
        assert_eq!(
            out.stderr.contains("filesystem access has been restricted"),
            landlock,
            "{extra}{args:?}: {}",
            out.stderr
        );
    }

    // --disable-sandbox, or DisableSandbox in pacman.conf: both parts off is no sandbox at
    // all, as in pacman: the download process stays root.
    for (args, extra) in [
        (&["-S", "--noconfirm", "--disable-sandbox", "foo"][..], ""),
        (&["-S", "--noconfirm", "foo"][..], "DisableSandbox\n"),
    ] {
        let b = bed(Some("alpm"));
        if !extra.is_empty() {
            let conf = std::fs::read_to_string(b.env.conf()).unwrap();
            std::fs::write(
                b.env.conf(),
                conf.replacen("[options]\n", &format!("[options]\n{extra}"), 1),
            )
            .unwrap();
        }
        run(b.env.pactor(&["-Sy"])).assert_ok();
        let child = start_slow(&b, args);
        let pid = download_process(&b);
        wait_for_part(&b);
        assert_eq!(proc_status(pid, "Uid").unwrap(), "0\t0\t0\t0", "{args:?}");
        finish(child).assert_ok();
    }
}

#[test]
fn without_a_download_user_it_says_so_once_and_runs_unsandboxed() {
    let b = bed(None);
    let child = start_slow(&b, &["-Sy", "--noconfirm", "foo", "bar"]);
    let pid = download_process(&b);
    wait_for_part(&b);
    assert_eq!(proc_status(pid, "Uid").unwrap(), "0\t0\t0\t0");
    let out = finish(child);
    out.assert_ok();
    assert_eq!(
        out.stderr
            .matches("warning: DownloadUser is not set in pacman.conf")
            .count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn a_download_user_that_does_not_exist_is_an_error_and_nothing_changes() {
    let b = bed(None);
    run(b.env.pactor(&["-Sy"])).assert_ok();
    let conf = std::fs::read_to_string(b.env.conf()).unwrap();
    std::fs::write(
        b.env.conf(),
        conf.replacen(
            "[options]\n",
            "[options]\nDownloadUser = pactor-nosuch\n",
            1,
        ),
    )
    .unwrap();
    let out = run(b.env.pactor(&["-S", "--noconfirm", "foo"]));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: problem setting DownloadUser 'pactor-nosuch' (user does not exist)"),
        "{}",
        out.stderr
    );
    assert!(b.env.installed().is_empty());
    assert!(b.env.cache_files().is_empty(), "{:?}", b.env.cache_files());
    assert_eq!(b.mirror.package_bytes(), 0);
    // The lock is free again.
    assert!(!b.env.db_dir().join("db.lck").exists());
}

#[test]
fn a_download_process_that_dies_fails_the_run_and_installs_nothing() {
    let b = bed(Some("alpm"));
    let child = start_slow(&b, &["-Sy", "--noconfirm", "foo"]);
    let pid = download_process(&b);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the download process this test found.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let (code, stderr) = stderr_then_code(child);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the download process ended unexpectedly"),
        "{stderr}"
    );
    assert!(b.env.installed().is_empty());
    assert!(
        !b.env.cache_files().iter().any(|f| f.starts_with("foo")),
        "{:?}",
        b.env.cache_files()
    );
    assert!(!b.env.db_dir().join("db.lck").exists());
}

/// Starts the download process as the root process does, with a Start frame of `version` on
/// its stdin (kept open), its stdout on `stdout` and its stderr piped.
fn download_process_speaking(version: u32, fetch_dir: &std::path::Path, stdout: Stdio) -> Child {
    use std::io::Write;
    let start = format!(
        r#"{{"Start":{{"version":{version},"sandbox":{{"user":null,"filesystem":false,"syscalls":false}},"fetch_dir":{:?},"connect_timeout_ms":1000,"idle_timeout_ms":1000,"debug":false}}}}"#,
        fetch_dir.to_str().unwrap()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pactor"))
        .arg("__pactor-download-process")
        .current_dir(fetch_dir)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.as_mut().unwrap();
    stdin
        .write_all(&(start.len() as u32).to_be_bytes())
        .unwrap();
    stdin.write_all(start.as_bytes()).unwrap();
    stdin.flush().unwrap();
    child
}

/// Waits up to `limit` for `child` to exit; its exit code and stderr, or `None` if it did not.
fn exit_within(mut child: Child, limit: Duration) -> Option<(Option<i32>, String)> {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(stderr_then_code(child))
}

/// All that `child` writes to its (piped) stderr until it closes it, then its exit code.
fn stderr_then_code(mut child: Child) -> (Option<i32>, String) {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

#[test]
fn a_download_process_that_cannot_write_to_the_root_process_says_so_and_ends() {
    let fetch = tempfile::tempdir().unwrap();
    // The protocol's version, from the refusal of a wrong one.
    let (_, refusal) = exit_within(
        download_process_speaking(0, fetch.path(), Stdio::piped()),
        Duration::from_secs(10),
    )
    .expect("a wrong version ends the download process");
    let version: u32 = refusal
        .split("speaks version ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no version in {refusal:?}"));
    // Its stdout is not a pipe (it is /dev/null), so no message could reach a root process: it
    // must end at once, though its stdin stays open, rather than leave the root process to
    // wait for its stall timeout.
    let (code, stderr) = exit_within(
        download_process_speaking(version, fetch.path(), Stdio::null()),
        Duration::from_secs(10),
    )
    .expect("the download process kept running without a way to the root process");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("error: could not write to the root process"),
        "{stderr}"
    );
}

#[test]
fn the_swarm_works_inside_the_sandbox_and_seeds_from_the_staging_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    let pkgs = [Pkg::new("big", "1.0-1").payload(3_000_000)];
    repo.add(&pkgs);
    let mut publish = std::process::Command::new(pactor_bin());
    publish.arg("publish").arg(&dir);
    run(publish).assert_ok();
    let mirror = Mirror::start(&dir);
    let seeder_conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&seeder_conf, "");
    let seeder = SeedProcess::dir(&dir, &seeder_conf);
    seeder.wait_seeding(1);
    let env = TestEnv::builder()
        .repo("core", &[mirror.url()])
        .download_user("alpm")
        .build();
    env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        seeder.port
    ));
    let out = run(env.pactor(&["-Sy", "--noconfirm", "big"]));
    out.assert_ok();
    assert_eq!(mirror.package_bytes(), 0, "{}", out.stderr);
    assert!(out.stdout.contains(" 0 B from mirrors"), "{}", out.stdout);
    let cached = env.cache_dir().join(pkgs[0].filename());
    assert_eq!(std::fs::metadata(&cached).unwrap().uid(), 0);
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        std::fs::read(repo.path(&pkgs[0])).unwrap()
    );
    // The staging copy it seeded from during the commit is gone once the run ends, with the
    // staging directory.
    assert!(!env.cache_dir().join("download-pactor").exists());
}

/// CPU time (user + system) of the waited-for children of this process so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// What the hand-over costs: one large package (`PACTOR_MEASURE_MB`, default 500) fetched
/// with `-Sw` over loopback, from a mirror and from a local seeder, with and without a
/// DownloadUser; wall time and CPU time of pactor and its download process, median of
/// `PACTOR_MEASURE_REPS` (default 3). Compare builds with `PACTOR_BIN`:
///
/// ```sh
/// cargo test --test sandbox -- --ignored --nocapture measure_handover_cost
/// PACTOR_BIN=/path/to/older/pactor cargo test --test sandbox -- --ignored --nocapture measure_handover_cost
/// ```
#[test]
#[ignore]
fn measure_handover_cost() {
    let mb: usize = std::env::var("PACTOR_MEASURE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let reps: usize = std::env::var("PACTOR_MEASURE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    let big = Pkg::new("big", "1.0-1").payload(mb * 1_000_000);
    repo.add(std::slice::from_ref(&big));
    let mut publish = std::process::Command::new(pactor_bin());
    publish.arg("publish").arg(&dir);
    run(publish).assert_ok();
    let size = std::fs::metadata(repo.path(&big)).unwrap().len();
    let mirror = Mirror::start(&dir);
    let seeder_conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&seeder_conf, "");
    let seeder = SeedProcess::dir(&dir, &seeder_conf);
    seeder.wait_seeding(1);
    println!("pactor: {}", pactor_bin().display());
    println!("| source | DownloadUser | wall (median) | CPU (median) | MB/s |");
    println!("| --- | --- | --- | --- | --- |");
    for source in ["mirror", "swarm"] {
        for user in [None, Some("alpm")] {
            let mut walls = Vec::new();
            let mut cpus = Vec::new();
            for _ in 0..reps {
                let mut builder = TestEnv::builder().repo("core", &[mirror.url()]);
                if let Some(user) = user {
                    builder = builder.download_user(user);
                }
                let env = builder.build();
                let conf = match source {
                    "swarm" => format!(
                        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 30\n",
                        seeder.port
                    ),
                    _ => "[options]\nTorrentIndex = http://127.0.0.1:1/none\n".to_string(),
                };
                env.write_pactor_conf(&conf);
                run(env.pactor(&["-Sy"])).assert_ok();
                let cpu = children_cpu();
                let started = Instant::now();
                // PACTOR_MEASURE_DEBUG: say when a pipelined copy had to be made again.
                let debug = std::env::var_os("PACTOR_MEASURE_DEBUG").is_some();
                let args: &[&str] = if debug {
                    &["-Sw", "--noconfirm", "--debug", "big"]
                } else {
                    &["-Sw", "--noconfirm", "big"]
                };
                let out = run(env.pactor(args));
                let wall = started.elapsed();
                out.assert_ok();
                for line in out
                    .stderr
                    .lines()
                    .filter(|l| l.contains("copying it again"))
                {
                    println!("  {source}: {line}");
                }
                assert_eq!(
                    std::fs::metadata(env.cache_dir().join(big.filename()))
                        .unwrap()
                        .len(),
                    size
                );
                walls.push(wall);
                cpus.push(children_cpu() - cpu);
            }
            walls.sort();
            cpus.sort();
            let wall = walls[reps / 2];
            println!(
                "| {source} | {} | {:.2} s | {:.2} s | {:.0} |",
                user.unwrap_or("(unset)"),
                wall.as_secs_f64(),
                cpus[reps / 2].as_secs_f64(),
                size as f64 / 1e6 / wall.as_secs_f64()
            );
        }
    }
}
