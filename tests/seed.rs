//! `pactor seed` as the systemd unit and the pacman hook use it: SIGHUP rescans at once (the
//! hook's reload), several published directories from one process and one port. Loopback only;
//! DHT and LSD off.

mod bed;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bed::*;

fn publish(dir: &Path) {
    let mut cmd = Command::new(pactor_bin());
    cmd.arg("publish").arg(dir);
    run(cmd).assert_ok();
}

#[test]
fn sighup_rescans_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    repo.add(&[
        Pkg::new("foo", "1.0-1").payload(400_000),
        Pkg::new("bar", "1.0-1").payload(100_000),
    ]);
    publish(&dir);
    let conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&conf, "");
    // An hour between rescans: only the signal can make it look again.
    let seeder = SeedProcess::start_with(&["--dir".as_ref(), dir.as_os_str()], &conf, 3600);
    seeder.wait_seeding(2);

    repo.add(&[Pkg::new("foo", "1.1-1").payload(400_000)]);
    publish(&dir);
    assert_eq!(
        seeder.line_within(Duration::from_secs(2), |l| l.contains("stopped seeding")),
        None,
        "no rescan before the signal"
    );
    seeder.signal(libc::SIGHUP);
    seeder.wait_for(|l| l == ":: rescanning (SIGHUP)");
    seeder.wait_for(|l| l.contains(" stopped seeding foo-1.0-1-x86_64.pkg.tar.zst"));
    seeder.wait_seeding(2);

    // The new release is served: a client gets it from the seeder, not the mirror.
    let mirror = Mirror::start(&dir);
    let env = TestEnv::builder().repo("core", &[mirror.url()]).build();
    env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        seeder.port
    ));
    run(env.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(mirror.count("foo-1.1-1-x86_64.pkg.tar.zst"), 0);
    assert_eq!(env.installed(), [("foo".to_owned(), "1.1-1".to_owned())]);

    // Still alive after the signal, and a second SIGHUP works too.
    seeder.signal(libc::SIGHUP);
    seeder.wait_for(|l| l == ":: rescanning (SIGHUP)");
}

#[test]
fn one_seeder_serves_several_repo_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mirror");
    let (core_dir, extra_dir) = (root.join("core"), root.join("extra"));
    let mut core = Repo::new(&core_dir, "core");
    core.add(&[Pkg::new("foo", "1.0-1").depends("baz").payload(300_000)]);
    let mut extra = Repo::new(&extra_dir, "extra");
    extra.add(&[Pkg::new("baz", "1.0-1").payload(200_000)]);
    publish(&core_dir);
    publish(&extra_dir);
    let conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&conf, "");
    let seeder = SeedProcess::start(
        &[
            "--dir".as_ref(),
            core_dir.as_os_str(),
            "--dir".as_ref(),
            extra_dir.as_os_str(),
        ],
        &conf,
    );
    let line = seeder.wait_seeding(2);
    assert!(
        line.contains(&core_dir.display().to_string())
            && line.contains(&extra_dir.display().to_string()),
        "{line}"
    );

    let mirror = Mirror::start(&root);
    let env = TestEnv::builder()
        .repo("core", &[format!("{}/core", mirror.url())])
        .repo("extra", &[format!("{}/extra", mirror.url())])
        .build();
    env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        seeder.port
    ));
    run(env.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(env.installed().len(), 2);
    assert_eq!(
        mirror.package_bytes(),
        0,
        "both repos came from the one seeder"
    );
}

/// The cache seeder as the unit runs it: an unprivileged user (setpriv: no groups, no new
/// privileges) over a cache it can only read. It seeds, serves a client, writes nothing but its
/// state, and the files stay as they were.
#[test]
fn the_cache_seeder_runs_unprivileged_on_a_read_only_cache() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    let foo = Pkg::new("foo", "1.0-1").payload(500_000);
    repo.add(std::slice::from_ref(&foo));
    publish(&dir);
    let mirror = Mirror::start(&dir);
    // The seeding machine: its temp root traversable by others, as /var/cache/pacman is.
    let machine = TestEnv::builder()
        .repo("core", &[mirror.url()])
        .download_user("alpm")
        .build();
    run(machine.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    let cached = machine.cache_dir().join(foo.filename());
    std::fs::set_permissions(&cached, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(machine.cache_dir(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = (
        std::fs::read(&cached).unwrap(),
        std::fs::metadata(&cached).unwrap().mtime(),
    );
    ensure_user("pactor");
    let uid = uid_of("pactor");
    let gid = {
        let out = Command::new("id").args(["-g", "pactor"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let state = machine.state_dir();
    std::fs::create_dir_all(&state).unwrap();
    let chown = Command::new("chown")
        .arg(format!("{uid}:{gid}"))
        .arg(&state)
        .status()
        .unwrap();
    assert!(chown.success());
    for readable in [machine.conf(), machine.pactor_conf_path().as_path()] {
        std::fs::set_permissions(readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    let seeder = SeedProcess::start_as(
        (uid, gid),
        &["--config".as_ref(), machine.conf().as_os_str()],
        &machine.pactor_conf_path(),
    );
    seeder.wait_seeding(1);
    let status = std::fs::read_to_string(format!("/proc/{}/status", seeder.pid())).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:")
                && l.split_whitespace().skip(1).all(|u| u == uid.to_string())),
        "{status}"
    );
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");

    let client = TestEnv::builder().repo("core", &[mirror.url()]).build();
    client.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        seeder.port
    ));
    mirror.clear_log();
    run(client.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(mirror.count(&foo.filename()), 0, "foo came from the seeder");
    drop(seeder);
    let after = (
        std::fs::read(&cached).unwrap(),
        std::fs::metadata(&cached).unwrap().mtime(),
    );
    assert!(before == after, "the seeded file is untouched");
    // What it did write: its record of proven files (beside root's statistics of the install),
    // in its state directory, as its user.
    let written: Vec<(String, u32)> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.metadata().unwrap().uid())
        })
        .collect();
    assert!(
        written.iter().any(|(_, owner)| *owner == uid),
        "{written:?}"
    );
}

/// `--super-seed`: the seeder shows its peers none of its pieces and offers each, once it is
/// interested, a few that no other peer was offered; a peer that reports holding them is
/// offered more, again new ones. A lone client still gets the whole file from it, even the
/// pieces a departed peer claimed.
#[test]
fn a_super_seeder_offers_each_peer_other_pieces_and_still_serves_a_lone_client() {
    use bed::wire::{BITFIELD, HAVE, INTERESTED, haves};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    let foo = Pkg::new("foo", "1.0-1").payload(8_000_000);
    repo.add(std::slice::from_ref(&foo));
    publish(&dir);
    let info = pactor::torrent::Info::from_file(&repo.path(&foo)).unwrap();
    let pieces = info.length.div_ceil(info.piece_length) as usize;
    let conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&conf, "");
    let seeder = SeedProcess::start(
        &["--dir".as_ref(), dir.as_os_str(), "--super-seed".as_ref()],
        &conf,
    );
    seeder.wait_seeding(1);
    let hash = info.info_hash().0;
    let settle = Duration::from_millis(500);

    let mut a = Wire::connect(seeder.port, hash, b"-TT0001-aaaaaaaaaaaa");
    let hello = a.messages_for(settle);
    let (_, bitfield) = hello
        .iter()
        .find(|(id, _)| *id == BITFIELD)
        .expect("a bitfield");
    assert_eq!(bitfield.len(), pieces.div_ceil(8));
    assert!(
        bitfield.iter().all(|b| *b == 0),
        "a super-seeder shows no piece"
    );
    assert!(
        haves(&hello).is_empty(),
        "nothing is offered before interest"
    );
    a.send(INTERESTED, &[]);
    let offered_a = haves(&a.messages_for(settle));
    assert!(
        !offered_a.is_empty() && offered_a.len() < pieces / 2,
        "a few of the {pieces} pieces are offered: {offered_a:?}"
    );

    let mut b = Wire::connect(seeder.port, hash, b"-TT0001-bbbbbbbbbbbb");
    b.send(INTERESTED, &[]);
    let offered_b = haves(&b.messages_for(settle));
    assert!(
        !offered_b.is_empty(),
        "the second peer is offered pieces too"
    );
    assert!(
        offered_b.iter().all(|p| !offered_a.contains(p)),
        "the second peer is offered other pieces: {offered_a:?} then {offered_b:?}"
    );

    // A got its pieces (from someone): it is offered more, none it or B was offered before.
    for piece in &offered_a {
        a.send(HAVE, &piece.to_be_bytes());
    }
    let more_a = haves(&a.messages_for(settle));
    assert!(
        !more_a.is_empty(),
        "a peer that took up its offers is offered more"
    );
    assert!(
        more_a
            .iter()
            .all(|p| !offered_a.contains(p) && !offered_b.contains(p)),
        "the new offers are new pieces: {more_a:?}"
    );
    drop((a, b));

    // Alone, a client gets everything from the super-seeder, nothing from the mirror.
    let mirror = Mirror::start(&dir);
    let env = TestEnv::builder().repo("core", &[mirror.url()]).build();
    env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 20\n",
        seeder.port
    ));
    run(env.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(mirror.count(&foo.filename()), 0, "all from the seeder");
    assert_eq!(env.installed(), [("foo".to_owned(), "1.0-1".to_owned())]);
}

/// The context switches of every thread of `pid` that is alive at both ends of `window`
/// (a thread that exits in between would take its count with it).
fn context_switches_over(pid: u32, window: Duration) -> u64 {
    let sample = || -> std::collections::HashMap<u32, u64> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        tasks
            .filter_map(|t| {
                let tid: u32 = t.ok()?.file_name().to_str()?.parse().ok()?;
                let switches = ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
                    .iter()
                    .map(|field| proc_status(tid, field)?.parse::<u64>().ok())
                    .sum::<Option<u64>>()?;
                Some((tid, switches))
            })
            .collect()
    };
    let before = sample();
    std::thread::sleep(window);
    let after = sample();
    after
        .iter()
        .filter_map(|(tid, n)| Some(n - before.get(tid)?))
        .sum()
}

/// A seeder runs for months, mostly with nothing to do: then it sleeps. librqbit woke each
/// torrent's tasks every 5 s (a trace heartbeat and a check that the torrent was still
/// live), so an idle seeder of a whole repo (10,000 files and more) never rested.
#[test]
fn an_idle_seeder_sleeps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    let files = 100;
    let pkgs: Vec<Pkg> = (0..files)
        .map(|n| Pkg::new(&format!("p{n}"), "1.0-1").payload(1_000))
        .collect();
    repo.add(&pkgs);
    publish(&dir);
    let conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&conf, "");
    // No rescan in the window: it is the torrents that must sleep.
    let seeder = SeedProcess::start_with(&["--dir".as_ref(), dir.as_os_str()], &conf, 3600);
    seeder.wait_seeding(files);
    // Past the 5 s of any timer set while the torrents started.
    std::thread::sleep(Duration::from_secs(6));
    let switches = context_switches_over(seeder.pid(), Duration::from_secs(6));
    // Before: more than one per torrent in any 5 s.
    assert!(
        switches < files as u64 / 4,
        "{switches} context switches in 6 s of an idle seeder of {files} files"
    );
}
