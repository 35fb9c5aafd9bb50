//! Swarm tests with a real tracker (Debian's opentracker, whitelist build) and a real foreign
//! client (aria2c): peers are found through the tracker only. All on 127.0.0.1; DHT, LSD and
//! peer exchange off everywhere.

mod bed;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bed::*;

/// A child process killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// opentracker's whitelist: the infohashes of every `.torrent` in `torrents_dir`.
fn write_whitelist(chroot: &Path, torrents_dir: &Path) {
    let mut hashes = String::new();
    for entry in std::fs::read_dir(torrents_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "torrent") {
            hashes.push_str(&info_hash(&path));
            hashes.push('\n');
        }
    }
    std::fs::write(chroot.join("access.whitelist"), hashes).unwrap();
}

/// opentracker on 127.0.0.1, accepting the infohashes of every `.torrent` in `dir`.
fn tracker(work: &Path, torrents_dir: &Path) -> (Daemon, String) {
    let chroot = work.join("tracker");
    std::fs::create_dir_all(&chroot).unwrap();
    write_whitelist(&chroot, torrents_dir);
    let port = free_port();
    let child = Command::new("opentracker")
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            &port.to_string(),
        ])
        .arg("-d")
        .arg(&chroot)
        .args(["-w", "access.whitelist", "-u", "nobody"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("opentracker is installed (scripts/test installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "opentracker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Daemon(child), format!("http://127.0.0.1:{port}/announce"))
}

/// The infohash of a `.torrent` file, in hex, as a foreign client (aria2c) reads it.
fn info_hash(torrent: &Path) -> String {
    let out = run({
        let mut c = Command::new("aria2c");
        c.arg("-S").arg(torrent);
        c
    });
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Info Hash: "))
        .unwrap()
        .to_owned()
}

/// Waits until the tracker lists at least `seeders` seeders for the torrent of each named
/// package file. A seeder announces asynchronously; a leecher that asks the tracker first hears
/// of nobody and, until its next announce, has only the mirror.
fn wait_tracked(announce: &str, dir: &Path, files: &[String], seeders: u64) {
    use std::io::{Read, Write};
    let port = announce
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("a loopback announce URL");
    let deadline = Instant::now() + Duration::from_secs(30);
    for file in files {
        let hex = info_hash(&dir.join(format!("{file}.torrent")));
        let escaped: String = (0..hex.len())
            .step_by(2)
            .map(|i| format!("%{}", &hex[i..i + 2]))
            .collect();
        loop {
            let mut body = Vec::new();
            if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = write!(
                    conn,
                    "GET /scrape?info_hash={escaped} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
                );
                let _ = conn.read_to_end(&mut body);
            }
            let text = String::from_utf8_lossy(&body);
            let complete = text
                .split_once("8:completei")
                .and_then(|(_, rest)| rest.split('e').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if complete >= seeders {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the tracker never listed {seeders} seeders of {file}: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `pactor seed --dir DIR [--upload-rate R]`, once it seeds at least `files` files.
fn seeder(dir: &Path, conf: &Path, upload_rate: Option<&str>, files: usize) -> (SeedProcess, u16) {
    let mut args = vec!["--dir".as_ref(), dir.as_os_str()];
    if let Some(rate) = upload_rate {
        args.extend([
            std::ffi::OsStr::new("--upload-rate"),
            std::ffi::OsStr::new(rate),
        ]);
    }
    let seeder = SeedProcess::start(&args, conf);
    seeder.wait_seeding(files);
    let port = seeder.port;
    (seeder, port)
}

struct Bed {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    repo: Repo,
    mirror: Mirror,
    env: TestEnv,
    announce: String,
    _tracker: Daemon,
}

fn publish(dir: &Path, trackers: &[&str]) {
    let mut cmd = Command::new(pactor_bin());
    cmd.arg("publish").arg(dir).arg("--torrent-files");
    for tracker in trackers {
        cmd.args(["--tracker", tracker]);
    }
    run(cmd).assert_ok();
}

/// A repo published with `--torrent-files`, a tracker that knows its torrents, a mirror.
fn tracker_bed(pkgs: &[Pkg]) -> Bed {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    repo.add(pkgs);
    // The tracker's whitelist needs the infohashes, the index needs the tracker's URL: publish
    // once to learn the hashes, then again with the real announce URL (no rehashing).
    publish(&dir, &["http://127.0.0.1:1/announce"]);
    let (tracker, announce) = tracker(tmp.path(), &dir);
    publish(&dir, &[&announce]);
    let mirror = Mirror::start(&dir);
    let env = TestEnv::builder().repo("core", &[mirror.url()]).build();
    write_pactor_conf(&tmp.path().join("empty.conf"), "");
    Bed {
        tmp,
        dir,
        repo,
        mirror,
        env,
        announce,
        _tracker: tracker,
    }
}

fn size(repo: &Repo, pkg: &Pkg) -> u64 {
    std::fs::metadata(repo.path(pkg)).unwrap().len()
}

#[test]
fn two_seeders_and_a_tracker_serve_an_upgrade() {
    let v1 = [
        Pkg::new("foo", "1.0-1").depends("bar").payload(2_000_000),
        Pkg::new("bar", "1.0-1").payload(1_000_000),
    ];
    let mut b = tracker_bed(&v1);
    let conf = b.tmp.path().join("empty.conf");
    let (s1, _) = seeder(&b.dir, &conf, None, 2);
    let (s2, _) = seeder(&b.dir, &conf, None, 2);
    let names = |pkgs: &[Pkg]| pkgs.iter().map(Pkg::filename).collect::<Vec<_>>();
    wait_tracked(&b.announce, &b.dir, &names(&v1), 2);
    b.env.write_pactor_conf("[options]\nStallTimeout = 10\n");
    let out = run(b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    let total = size(&b.repo, &v1[0]) + size(&b.repo, &v1[1]);
    assert!(
        b.mirror.package_bytes() * 20 <= total,
        "mirror: {} of {total}\n{}",
        b.mirror.package_bytes(),
        out.stdout
    );

    // A new release: published, the tracker's whitelist extended (opentracker rereads it on
    // SIGHUP), picked up by the two running seeders at their next rescan, fetched by -Syu.
    let v2 = [
        Pkg::new("foo", "1.1-1").depends("bar").payload(2_000_000),
        Pkg::new("bar", "1.1-1").payload(1_000_000),
    ];
    b.repo.add(&v2);
    publish(&b.dir, &[&b.announce]);
    write_whitelist(&b.tmp.path().join("tracker"), &b.dir);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(b._tracker.0.id() as i32, libc::SIGHUP) };
    wait_tracked(&b.announce, &b.dir, &names(&v2), 2);
    let uploaded_before = s1.uploaded() + s2.uploaded();
    b.mirror.clear_log();
    let out = run(b.env.pactor(&["-Syu", "--noconfirm"]));
    out.assert_ok();
    let installed: Vec<String> = b
        .env
        .installed()
        .into_iter()
        .map(|(n, v)| format!("{n}-{v}"))
        .collect();
    assert_eq!(installed, ["bar-1.1-1", "foo-1.1-1"]);
    let total = size(&b.repo, &v2[0]) + size(&b.repo, &v2[1]);
    assert!(
        b.mirror.package_bytes() * 20 <= total,
        "mirror: {} of {total}\n{}",
        b.mirror.package_bytes(),
        out.stdout
    );
    // What the mirror did not send, the two seeders did (their counters are to 0.1 MiB).
    let uploaded = s1.uploaded() + s2.uploaded() - uploaded_before;
    assert!(
        uploaded + b.mirror.package_bytes() + 200_000 >= total,
        "seeders uploaded {uploaded} of {total}"
    );
}

#[test]
fn a_tracker_added_to_the_index_reaches_a_running_seeder() {
    let pkgs = [
        Pkg::new("foo", "1.0-1").payload(300_000),
        Pkg::new("bar", "1.0-1").payload(200_000),
    ];
    let b = tracker_bed(&pkgs);
    let conf = b.tmp.path().join("empty.conf");
    let names: Vec<String> = pkgs.iter().map(Pkg::filename).collect();
    let (seeder, _) = seeder(&b.dir, &conf, None, 2);
    wait_tracked(&b.announce, &b.dir, &names, 1);
    // The operator adds a second tracker to the index; the running seeder, told by SIGHUP
    // (as the pacman hook and `systemctl reload` do), announces every file there too.
    let (_second, second) = tracker(&b.tmp.path().join("second"), &b.dir);
    publish(&b.dir, &[&b.announce, &second]);
    seeder.signal(libc::SIGHUP);
    seeder.wait_for(|l| l.contains("new trackers in the index") && l.contains(&second));
    seeder.wait_seeding(2);
    wait_tracked(&second, &b.dir, &names, 1);
}

#[test]
fn a_tracker_dropped_from_the_index_is_no_longer_announced_to() {
    let pkgs = [Pkg::new("foo", "1.0-1").payload(300_000)];
    let b = tracker_bed(&pkgs);
    let conf = b.tmp.path().join("empty.conf");
    // A second tracker that logs every announce and asks for the next one a second later.
    let dir = b.tmp.path().join("eager");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("announce"), b"d8:intervali1e5:peers0:e").unwrap();
    let eager = Mirror::start(&dir);
    let eager_url = format!("{}/announce", eager.url());
    let announces = || {
        eager
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/announce?"))
            .count()
    };
    publish(&b.dir, &[&b.announce, &eager_url]);
    let (seeder, _) = seeder(&b.dir, &conf, None, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while announces() < 2 {
        assert!(
            Instant::now() < deadline,
            "the seeder never announced twice"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The operator drops it from the index; told by SIGHUP, the seeder stops announcing there
    // (while it announces to the tracker that stays).
    publish(&b.dir, &[&b.announce]);
    seeder.signal(libc::SIGHUP);
    seeder.wait_for(|l| l.contains("trackers gone from the index") && l.contains(&eager_url));
    seeder.wait_seeding(1);
    std::thread::sleep(Duration::from_millis(500));
    eager.clear_log();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(announces(), 0, "announced to a tracker the index dropped");
    wait_tracked(&b.announce, &b.dir, &[pkgs[0].filename()], 1);
}

#[test]
fn a_seeder_killed_mid_transfer_is_replaced_by_the_other_then_by_the_mirror() {
    let pkgs = [Pkg::new("big", "1.0-1").payload(4_000_000)];
    let b = tracker_bed(&pkgs);
    let conf = b.tmp.path().join("empty.conf");
    // Slow seeders, so the transfer is still running when one dies.
    let (s1, _) = seeder(&b.dir, &conf, Some("256K"), 1);
    let (_s2, _) = seeder(&b.dir, &conf, Some("256K"), 1);
    wait_tracked(&b.announce, &b.dir, &[pkgs[0].filename()], 2);
    // The mirror cannot serve the package: a loaded machine may slow the swarm enough for the
    // mirrors to join in (a fallback the next part tests), so only the other seeder can
    // finish the file.
    b.mirror.set_fault(".pkg.tar.zst", Fault::Status(500));
    b.env.write_pactor_conf("[options]\nStallTimeout = 8\n");
    let s2_before = _s2.uploaded();
    let child = b
        .env
        .pactor(&["-Sy", "--noconfirm", "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    drop(s1);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.env.installed().len(), 1);
    assert_eq!(b.mirror.package_bytes(), 0);
    // The other seeder sent what the first had not (its counter is to 0.1 MiB).
    let total = size(&b.repo, &pkgs[0]);
    assert!(
        _s2.uploaded() - s2_before >= total / 4,
        "the other seeder sent {} of {total}\n{}",
        _s2.uploaded() - s2_before,
        String::from_utf8_lossy(&out.stderr)
    );
    b.mirror.clear_faults();

    // Now every peer goes away mid-file: the mirror finishes it within StallTimeout + transfer.
    let env = TestEnv::builder().repo("core", &[b.mirror.url()]).build();
    env.write_pactor_conf("[options]\nStallTimeout = 2\n");
    let (s3, _) = seeder(&b.dir, &conf, Some("256K"), 1);
    // The killed first seeder may still be listed: s2, s3 and perhaps s1.
    wait_tracked(&b.announce, &b.dir, &[pkgs[0].filename()], 2);
    let before = _s2.uploaded();
    let started = Instant::now();
    let child = env
        .pactor(&["-Sy", "--noconfirm", "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-file: the seeders have sent part of it (256 KiB/s each), far from all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    while sent == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        sent = s3.uploaded() + _s2.uploaded() - before;
    }
    assert!(
        sent > 0 && sent < size(&b.repo, &pkgs[0]) / 2,
        "the swarm sent {sent} before it went away"
    );
    drop(s3);
    drop(_s2);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(env.installed().len(), 1);
    assert!(b.mirror.package_bytes() > 0);
}

#[test]
fn aria2c_seeds_for_pactor_and_pactor_seeds_for_aria2c() {
    let pkgs = [Pkg::new("foo", "1.0-1").payload(1_500_000)];
    let b = tracker_bed(&pkgs);
    let name = pkgs[0].filename();
    let torrent = b.dir.join(format!("{name}.torrent"));
    let aria2 = |args: &[&str]| {
        let mut c = Command::new("aria2c");
        c.args([
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
        ])
        .args([
            "--console-log-level=warn",
            "--summary-interval=0",
            "--bt-tracker-connect-timeout=5",
        ])
        .args(args);
        c
    };

    // aria2c seeds the --torrent-files output; pactor downloads from it through the tracker.
    let port = free_port();
    let seeding = Daemon(
        aria2(&[
            "--check-integrity=true",
            "--seed-ratio=0.0",
            "--seed-time=600",
            &format!("--listen-port={port}"),
        ])
        .arg(format!("--dir={}", b.dir.display()))
        .arg(&torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    wait_tracked(&b.announce, &b.dir, std::slice::from_ref(&name), 1);
    b.env.write_pactor_conf("[options]\nStallTimeout = 15\n");
    let out = run(b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert_eq!(
        b.mirror.package_bytes(),
        0,
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    drop(seeding);

    // pactor seed serves; aria2c downloads a byte-identical file.
    let (_seed, _) = seeder(&b.dir, &b.tmp.path().join("empty.conf"), None, 1);
    // The killed aria2c stays listed until it times out: it and pactor's seeder.
    wait_tracked(&b.announce, &b.dir, std::slice::from_ref(&name), 2);
    let out_dir = b.tmp.path().join("aria2-out");
    let mut fetch = aria2(&["--seed-time=0", "--bt-stop-timeout=30"]);
    fetch
        .arg(format!("--dir={}", out_dir.display()))
        .arg(&torrent);
    let out = run(fetch);
    out.assert_ok();
    assert_eq!(
        std::fs::read(out_dir.join(&name)).unwrap(),
        std::fs::read(b.dir.join(&name)).unwrap()
    );
}

#[test]
fn a_seeder_serving_corrupt_bytes_cannot_put_them_in_the_cache() {
    let pkgs = [Pkg::new("foo", "1.0-1").payload(1_500_000)];
    let b = tracker_bed(&pkgs);
    let name = pkgs[0].filename();
    // aria2c seeds a corrupted copy without checking it, under the right torrent.
    let bad_dir = b.tmp.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let mut bytes = std::fs::read(b.dir.join(&name)).unwrap();
    for i in (0..bytes.len()).step_by(4096) {
        bytes[i] ^= 0xff;
    }
    std::fs::write(bad_dir.join(&name), &bytes).unwrap();
    let port = free_port();
    let _bad = Daemon(
        Command::new("aria2c")
            .args([
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
            ])
            .args([
                "--check-integrity=false",
                "--bt-seed-unverified=true",
                "--seed-ratio=0.0",
                "--seed-time=600",
            ])
            .arg(format!("--listen-port={port}"))
            .arg(format!("--dir={}", bad_dir.display()))
            .arg(b.dir.join(format!("{name}.torrent")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_tracked(&b.announce, &b.dir, std::slice::from_ref(&name), 1);
    b.env.write_pactor_conf("[options]\nStallTimeout = 3\n");
    let out = run(b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert_eq!(b.env.installed().len(), 1);
    let cached = std::fs::read(b.env.cache_dir().join(&name)).unwrap();
    assert!(
        cached == std::fs::read(b.dir.join(&name)).unwrap(),
        "the cache holds the database's bytes"
    );
    assert!(
        b.mirror.package_bytes() > 0,
        "the mirror supplied what the bad peer could not"
    );
}
