//! End-to-end tests of the swarm path: `pactor publish` writes the index, `pactor seed`
//! processes serve the files, and `pactor -S` takes them from peers, falling back to the mirror.
//! Everything on 127.0.0.1; DHT, LSD and UPnP stay off (pactor's defaults).

mod bed;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bed::*;

/// `pactor seed --dir DIR`, once it reports its files live.
fn seed(dir: &Path, conf: &Path) -> SeedProcess {
    let seeder = SeedProcess::dir(dir, conf);
    seeder.wait_for(|line| line.starts_with(":: seeding") && !line.starts_with(":: seeding 0 "));
    seeder
}

struct Swarm {
    tmp: tempfile::TempDir,
    repo: Repo,
    mirror: Mirror,
    env: TestEnv,
}

fn pkgs() -> Vec<Pkg> {
    vec![
        Pkg::new("foo", "1.0-1").depends("bar").payload(3_000_000),
        Pkg::new("bar", "1.0-1").payload(1_000_000),
        Pkg::new("baz", "1.0-1").payload(70_000),
    ]
}

fn publish(dir: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(pactor_bin());
    cmd.arg("publish").arg(dir).args(extra);
    let out = run(cmd);
    out.assert_ok();
    out
}

fn swarm_bed() -> Swarm {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    repo.add(&pkgs());
    publish(&dir, &[]);
    let mirror = Mirror::start(&dir);
    let env = TestEnv::builder().repo("core", &[mirror.url()]).build();
    write_pactor_conf(&tmp.path().join("seeder.conf"), "");
    Swarm {
        tmp,
        repo,
        mirror,
        env,
    }
}

fn package_size(repo: &Repo, pkg: &Pkg) -> u64 {
    std::fs::metadata(repo.path(pkg)).unwrap().len()
}

#[test]
fn packages_come_from_peers_and_the_mirror_serves_almost_nothing() {
    let s = swarm_bed();
    let seeder = seed(
        &s.tmp.path().join("repo"),
        &s.tmp.path().join("seeder.conf"),
    );
    s.env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        seeder.port
    ));
    let out = run(s.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    let names: Vec<_> = s.env.installed().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["bar", "foo"]);
    let total = package_size(&s.repo, &pkgs()[0]) + package_size(&s.repo, &pkgs()[1]);
    assert!(
        s.mirror.package_bytes() * 20 <= total,
        "mirror served {} of {total} package bytes\n{}\n{}",
        s.mirror.package_bytes(),
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains(" 0 B from mirrors"), "{}", out.stdout);
    assert_eq!(
        s.mirror.count("core.torrents"),
        1,
        "the index is fetched during -y"
    );
    // The seeder's status line counts what it uploaded (to 0.1 MiB).
    let uploaded = seeder.uploaded();
    assert!(
        uploaded + 110_000 >= total && uploaded <= total + 110_000,
        "uploaded {uploaded} of {total}"
    );
}

/// A swarm copy is taken into the cache, not copied: with a download user, on a cache file
/// system with room for one copy of the packages but not two, the run succeeds from peers,
/// and each file in the cache is root's and read-only to others. The download process sealed
/// each file once complete (no descriptor can write it), so the root process linked it.
#[test]
fn a_swarm_copy_is_taken_into_the_cache_rather_than_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    let pkgs = [
        Pkg::new("foo", "1.0-1").payload(3_000_000),
        Pkg::new("bar", "1.0-1").payload(2_000_000),
    ];
    repo.add(&pkgs);
    publish(&dir, &[]);
    let mirror = Mirror::start(&dir);
    let env = TestEnv::builder()
        .repo("core", &[mirror.url()])
        .download_user("alpm")
        .build();
    write_pactor_conf(&tmp.path().join("seeder.conf"), "");
    let seeder = seed(&dir, &tmp.path().join("seeder.conf"));
    env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        seeder.port
    ));
    run(env.pactor(&["-Sy"])).assert_ok();
    let total: u64 = pkgs.iter().map(|p| package_size(&repo, p)).sum();
    // Room for the packages once, and the databases, not for a second copy of them.
    let _tmpfs = Tmpfs::mount(&env.cache_dir(), &format!("{}k", (total + 600_000) / 1024));
    let out = run(env.pactor(&["-S", "--noconfirm", "foo", "bar"]));
    out.assert_ok();
    assert!(out.stdout.contains(" 0 B from mirrors"), "{}", out.stdout);
    assert_eq!(mirror.package_bytes(), 0);
    for pkg in &pkgs {
        let cached = env.cache_dir().join(pkg.filename());
        assert_eq!(
            std::fs::read(&cached).unwrap(),
            std::fs::read(repo.path(pkg)).unwrap()
        );
        let meta = std::fs::metadata(&cached).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o644));
    }
    let installed: Vec<_> = env.installed().into_iter().map(|(n, _)| n).collect();
    assert_eq!(installed, ["bar", "foo"]);
}

/// A hook in `env`'s root that holds every commit after its packages are installed, until
/// released: what pactor does meanwhile can be watched. pacman runs hooks chrooted, so the
/// hook's shell is copied in; it waits on a FIFO (a shell builtin, no other binary needed).
struct HeldCommit {
    held: std::path::PathBuf,
    fifo: std::path::PathBuf,
}

impl HeldCommit {
    fn install(env: &TestEnv) -> HeldCommit {
        let root = env.root();
        copy_executable(&root, "/bin/sh");
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let fifo = tmp.join("go");
        let mut mkfifo = Command::new("mkfifo");
        mkfifo.arg(&fifo);
        run(mkfifo).assert_ok();
        let hooks = env.system_hook_dir();
        std::fs::create_dir_all(&hooks).unwrap();
        std::fs::write(
            hooks.join("zz-hold.hook"),
            "[Trigger]\nOperation = Install\nOperation = Upgrade\nType = Package\nTarget = *\n\n\
             [Action]\nDescription = Holding the commit for the test...\nWhen = PostTransaction\n\
             Exec = /bin/sh -c ': > /tmp/held; read go < /tmp/go'\n",
        )
        .unwrap();
        HeldCommit {
            held: tmp.join("held"),
            fifo,
        }
    }

    /// Waits (60 s at most) until a commit is held.
    fn wait_held(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.held.exists() {
            assert!(Instant::now() < deadline, "no commit was held");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Lets the held commit go on (trying for a few seconds if the hook has not opened its
    /// FIFO yet).
    fn release(&self) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.fifo);
            if let Ok(mut fifo) = opened {
                let _ = fifo.write_all(b"go\n");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HeldCommit {
    fn drop(&mut self) {
        if self.held.exists() {
            self.release();
        }
    }
}

#[test]
fn what_a_run_fetched_is_seeded_while_it_commits_whether_from_peers_or_mirrors() {
    let s = swarm_bed();
    // A seeder of bar alone: the first machine takes bar from it and foo from the mirror.
    let only_bar = s.tmp.path().join("only-bar");
    std::fs::create_dir(&only_bar).unwrap();
    let bar = pkgs()[1].clone();
    std::fs::copy(s.repo.path(&bar), only_bar.join(bar.filename())).unwrap();
    std::fs::copy(
        s.tmp.path().join("repo/core.torrents"),
        only_bar.join("core.torrents"),
    )
    .unwrap();
    let seeder = SeedProcess::dir(&only_bar, &s.tmp.path().join("seeder.conf"));
    seeder.wait_seeding(1);
    let port = free_port();
    s.env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nListenPort = {port}\nStallTimeout = 1\n",
        seeder.port
    ));
    let held = HeldCommit::install(&s.env);
    let first = s
        .env
        .pactor(&["-Sy", "--noconfirm", "foo"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    held.wait_held();
    let foo_size = package_size(&s.repo, &pkgs()[0]);
    assert_eq!(
        s.mirror.package_bytes(),
        foo_size,
        "the first machine took foo, and only foo, from the mirror"
    );
    drop(seeder);

    // While the first machine commits, a second one fetches both files from it alone.
    s.mirror.clear_log();
    let second = TestEnv::builder().repo("core", &[s.mirror.url()]).build();
    second.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{port}\nStallTimeout = 10\n"
    ));
    let out = run(second.pactor(&["-Syw", "--noconfirm", "foo"]));
    held.release();
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    out.assert_ok();
    assert_eq!(
        s.mirror.package_bytes(),
        0,
        "the committing machine served foo (a mirror's copy) and bar (the swarm's)\n{}",
        out.stdout
    );
    assert!(out.stdout.contains(" 0 B from mirrors"), "{}", out.stdout);
    let mut cached = second.cache_files();
    cached.retain(|f| f.ends_with(".pkg.tar.zst"));
    assert_eq!(cached, [bar.filename(), pkgs()[0].filename()]);
    let names: Vec<_> = s.env.installed().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["bar", "foo"]);
    // Nothing of the seeding is left once the commit is done: the staging directory is gone.
    let staging = s.env.cache_dir().join("download-pactor");
    assert!(!staging.exists(), "{:?}", std::fs::read_dir(&staging));
}

#[test]
fn a_small_files_torrent_comes_whole_in_the_index_and_no_peer_is_asked_for_it() {
    let s = swarm_bed();
    let (foo, baz) = (pkgs()[0].filename(), pkgs()[2].filename());
    let index = pactor::index::Index::parse(
        &std::fs::read(s.tmp.path().join("repo/core.torrents")).unwrap(),
    )
    .unwrap()
    .0;
    let info = index.files[&baz]
        .info(&baz)
        .expect("baz (70 KB) carries its pieces");
    assert_eq!(info.info_hash(), index.files[&baz].info_hash);
    assert_eq!(
        info,
        pactor::torrent::Info::from_file(&s.repo.path(&pkgs()[2])).unwrap()
    );
    assert!(index.files[&foo].pieces.is_none(), "foo (3 MB) does not");

    let seeder = seed(
        &s.tmp.path().join("repo"),
        &s.tmp.path().join("seeder.conf"),
    );
    s.env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        seeder.port
    ));
    let out = run({
        let mut cmd = s.env.pactor(&["-Sy", "--noconfirm", "baz"]);
        cmd.env("PACTOR_LOG", "librqbit=debug");
        cmd
    });
    out.assert_ok();
    assert_eq!(s.mirror.package_bytes(), 0, "{}", out.stdout);
    assert!(out.stdout.contains(" 0 B from mirrors"), "{}", out.stdout);
    // librqbit names its metadata exchange read_metainfo_from_peer: never needed here.
    assert!(out.stderr.contains("librqbit"), "the engine's log is on");
    assert!(!out.stderr.contains("read_metainfo"), "{}", out.stderr);
}

#[test]
fn a_dead_swarm_falls_back_to_the_mirror_within_the_stall_timeout() {
    let s = swarm_bed();
    // The index lists the files, but nobody seeds them.
    s.env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 1\n",
        free_port()
    ));
    let started = Instant::now();
    let out = run(s.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.stderr.contains("using the mirrors"), "{}", out.stderr);
    let total = package_size(&s.repo, &pkgs()[0]) + package_size(&s.repo, &pkgs()[1]);
    assert_eq!(s.mirror.package_bytes(), total);
    assert_eq!(s.env.installed().len(), 2);
}

#[test]
fn a_trickling_swarm_is_joined_by_the_mirror_and_the_first_good_copy_wins() {
    let s = swarm_bed();
    let dir = s.tmp.path().join("repo");
    // A live seeder, capped at 16 KiB/s: foo alone would take minutes from it.
    let seeder = SeedProcess::start(
        &[
            "--dir".as_ref(),
            dir.as_os_str(),
            "--upload-rate".as_ref(),
            "16K".as_ref(),
        ],
        &s.tmp.path().join("seeder.conf"),
    );
    seeder.wait_seeding(3);
    s.env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 2\n",
        seeder.port
    ));
    let started = Instant::now();
    let out = run(s.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.stderr.contains("the mirrors join in"), "{}", out.stderr);
    assert_eq!(s.mirror.count(&pkgs()[0].filename()), 1);
    assert_eq!(s.env.installed().len(), 2);
    // Nothing of the losing transfers is left behind under a package's name.
    assert_eq!(
        s.env.cache_files(),
        [pkgs()[1].filename(), pkgs()[0].filename()]
    );
}

#[test]
fn a_wrong_infohash_or_sha256_in_the_index_sends_the_file_to_the_mirror() {
    let s = swarm_bed();
    let dir = s.tmp.path().join("repo");
    let seeder = seed(&dir, &s.tmp.path().join("seeder.conf"));
    // Rewrite the index: foo gets another file's infohash, bar a wrong sha256.
    let bytes = std::fs::read(dir.join("core.torrents")).unwrap();
    let foo = pkgs()[0].filename();
    let bar = pkgs()[1].filename();
    let baz = pkgs()[2].filename();
    let tampered = tamper(&bytes, &foo, &baz, &bar);
    std::fs::write(dir.join("core.torrents"), tampered).unwrap();
    s.env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 2\n",
        seeder.port
    ));
    let out = run(s.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert_eq!(s.env.installed().len(), 2);
    // bar's entry disagrees with the database: it never went to the swarm.
    assert_eq!(s.mirror.count(&bar), 1);
    // foo's infohash names baz's torrent: the swarm delivers baz's bytes, which fail the
    // database's sha256, and foo comes from the mirror. The cache holds only verified files.
    assert_eq!(s.mirror.count(&foo), 1);
    let cached = std::fs::read(s.env.cache_dir().join(&foo)).unwrap();
    assert_eq!(cached, std::fs::read(dir.join(&foo)).unwrap());
}

/// Swaps `victim`'s infohash for `donor`'s and corrupts `bad_sha`'s sha256, in bencode.
fn tamper(index: &[u8], victim: &str, donor: &str, bad_sha: &str) -> Vec<u8> {
    fn entry_start(index: &[u8], name: &str) -> usize {
        let needle = format!("4:name{}:{name}", name.len());
        let at = index
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap();
        // The entry's infohash comes just before its name: "8:infohash20:<20 bytes>".
        at - 20
    }
    let mut out = index.to_vec();
    let donor_hash = out[entry_start(index, donor)..entry_start(index, donor) + 20].to_vec();
    let v = entry_start(index, victim);
    out[v..v + 20].copy_from_slice(&donor_hash);
    let needle = format!("4:name{}:{bad_sha}6:sha25632:", bad_sha.len());
    let at = index
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap()
        + needle.len();
    out[at] ^= 0xff;
    out
}

#[test]
fn publish_hashes_only_new_or_changed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    repo.add(&pkgs());
    let first = publish(
        &dir,
        &[
            "--tracker",
            "http://127.0.0.1:1/announce",
            "--torrent-files",
        ],
    );
    assert!(
        first.stdout.contains("3 packages: 3 hashed, 0 unchanged"),
        "{}",
        first.stdout
    );
    let index = std::fs::read(dir.join("core.torrents")).unwrap();
    let second = publish(
        &dir,
        &[
            "--tracker",
            "http://127.0.0.1:1/announce",
            "--torrent-files",
        ],
    );
    assert!(
        second.stdout.contains("3 packages: 0 hashed, 3 unchanged"),
        "{}",
        second.stdout
    );
    assert_eq!(
        std::fs::read(dir.join("core.torrents")).unwrap(),
        index,
        "same repo, same bytes"
    );
    repo.add(&[Pkg::new("new", "1.0-1")]);
    let third = publish(
        &dir,
        &[
            "--tracker",
            "http://127.0.0.1:1/announce",
            "--torrent-files",
        ],
    );
    assert!(
        third.stdout.contains("4 packages: 1 hashed, 3 unchanged"),
        "{}",
        third.stdout
    );
    // The .torrent files are the canonical torrents: aria2c reads the same infohash.
    let out = run({
        let mut c = Command::new("aria2c");
        c.arg("-S")
            .arg(dir.join(format!("{}.torrent", pkgs()[0].filename())));
        c
    });
    out.assert_ok();
    assert!(out.stdout.contains("Info Hash: "), "{}", out.stdout);
}

#[test]
fn seeding_never_modifies_the_files_and_a_read_only_file_seeds() {
    let s = swarm_bed();
    let dir = s.tmp.path().join("repo");
    let foo = dir.join(pkgs()[0].filename());
    let mut perms = std::fs::metadata(&foo).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
    std::fs::set_permissions(&foo, perms).unwrap();
    let before = (
        std::fs::read(&foo).unwrap(),
        std::fs::metadata(&foo).unwrap().modified().unwrap(),
    );
    let seeder = seed(&dir, &s.tmp.path().join("seeder.conf"));
    s.env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        seeder.port
    ));
    run(s.env.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(
        s.mirror.count(&pkgs()[0].filename()),
        0,
        "foo came from the read-only seeder"
    );
    drop(seeder);
    let after = (
        std::fs::read(&foo).unwrap(),
        std::fs::metadata(&foo).unwrap().modified().unwrap(),
    );
    assert!(
        before == after,
        "the seeded file's bytes and mtime are unchanged"
    );
}

#[test]
fn the_pacman_cache_seeds_only_files_the_databases_vouch_for() {
    let s = swarm_bed();
    // Machine A installs over HTTP; its cache now holds foo and bar.
    let a = TestEnv::builder().repo("core", &[s.mirror.url()]).build();
    run(a.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    // Things a seeder must never offer: a symlink under a listed package's name (here even
    // pointing at the right bytes), a partial download, a file no database lists.
    let baz = pkgs()[2].filename();
    std::os::unix::fs::symlink(
        s.tmp.path().join("repo").join(&baz),
        a.cache_dir().join(&baz),
    )
    .unwrap();
    std::fs::write(
        a.cache_dir().join("qux-1.0-1-x86_64.pkg.tar.zst.part"),
        b"partial",
    )
    .unwrap();
    std::fs::write(a.cache_dir().join("private.pkg.tar.zst"), b"secret").unwrap();

    let seeder = SeedProcess::start(
        &["--config".as_ref(), a.conf().as_os_str()],
        &a.pactor_conf_path(),
    );
    let first = seeder.wait_for(|line| line.starts_with(":: seeding"));
    assert!(first.starts_with(":: seeding 2 files from "), "{first}");
    let port = seeder.port;

    // Machine B gets foo and bar from A's cache, baz (only symlinked there) from the mirror.
    s.env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{port}\nStallTimeout = 5\n"
    ));
    s.mirror.clear_log();
    let out = run(s.env.pactor(&["-Sy", "--noconfirm", "foo", "baz"]));
    out.assert_ok();
    assert_eq!(s.mirror.count(&pkgs()[0].filename()), 0, "{}", out.stderr);
    assert_eq!(s.mirror.count(&pkgs()[1].filename()), 0, "{}", out.stderr);
    assert_eq!(
        s.mirror.count(&baz),
        1,
        "the symlinked file was not offered"
    );
}

#[test]
fn a_running_seeder_picks_up_new_releases_and_drops_removed_files() {
    let mut s = swarm_bed();
    let dir = s.tmp.path().join("repo");
    let seeder = SeedProcess::dir(&dir, &s.tmp.path().join("seeder.conf"));
    let port = seeder.port;
    let wait_for = |wanted: &str| seeder.wait_for(|line| line.contains(wanted));
    wait_for(":: seeding 3 files");
    // A new foo replaces the old one in the database; publish; the seeder follows.
    s.repo
        .add(&[Pkg::new("foo", "1.1-1").depends("bar").payload(3_000_000)]);
    publish(&dir, &[]);
    wait_for(" stopped seeding foo-1.0-1-x86_64.pkg.tar.zst");
    wait_for(":: seeding 3 files");
    s.env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{port}\nStallTimeout = 5\n"
    ));
    run(s.env.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(
        s.mirror.count("foo-1.1-1-x86_64.pkg.tar.zst"),
        0,
        "the new release came from the seeder"
    );
}

#[test]
fn a_restarted_seeder_reads_only_what_changed() {
    // Files big enough that librqbit's sample of a few pieces per file is small beside them.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    let big = [
        Pkg::new("one", "1.0-1").payload(12_000_000),
        Pkg::new("two", "1.0-1").payload(12_000_000),
        Pkg::new("three", "1.0-1").payload(1_000_000),
    ];
    repo.add(&big);
    publish(&dir, &[]);
    let conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&conf, "");
    let sizes: Vec<u64> = big.iter().map(|p| package_size(&repo, p)).collect();
    let total: u64 = sizes.iter().sum();

    let first = seed(&dir, &conf);
    first.wait_seeding(3);
    let read_first = first.read_bytes();
    assert!(read_first >= total, "read {read_first} of {total} bytes");
    drop(first);

    // Same files, same identities: proven before, only sampled now.
    let second = seed(&dir, &conf);
    second.wait_seeding(3);
    let read_second = second.read_bytes();
    assert!(
        read_second * 8 < total,
        "a restart read {read_second} of {total} bytes"
    );
    drop(second);

    // One file rewritten (same bytes, new identity): it alone is read again.
    let three = dir.join(big[2].filename());
    let bytes = std::fs::read(&three).unwrap();
    std::fs::remove_file(&three).unwrap();
    std::fs::write(&three, &bytes).unwrap();
    let third = seed(&dir, &conf);
    third.wait_seeding(3);
    let read_third = third.read_bytes();
    assert!(
        read_third >= sizes[2] && read_third < sizes[2] + total / 8,
        "read {read_third}; the rewritten file has {} bytes",
        sizes[2]
    );

    // And what it serves is still right: a client gets every file from it.
    let mirror = Mirror::start(&dir);
    let env = TestEnv::builder().repo("core", &[mirror.url()]).build();
    env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        third.port
    ));
    run(env.pactor(&["-Sy", "--noconfirm", "one", "two", "three"])).assert_ok();
    assert_eq!(mirror.package_bytes(), 0);
}
