//! End-to-end tests of `pactor -S`, `-Syu` and `-Sw`: the built binary against real packages,
//! real repo-add databases, real pacman 7.1 and HTTP mirrors on 127.0.0.1.

mod bed;

use std::time::{Duration, Instant};

use bed::*;

/// A repo served by `mirrors` identical mirrors, and a temp root whose pacman.conf lists them.
struct Bed {
    repo: Repo,
    mirrors: Vec<Mirror>,
    env: TestEnv,
    _tmp: tempfile::TempDir,
}

fn bed(pkgs: &[Pkg], mirrors: usize) -> Bed {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(&tmp.path().join("repo"), "core");
    repo.add(pkgs);
    let mirrors: Vec<Mirror> = (0..mirrors)
        .map(|_| Mirror::start(&tmp.path().join("repo")))
        .collect();
    let urls: Vec<String> = mirrors.iter().map(|m| m.url()).collect();
    let env = TestEnv::builder().repo("core", &urls).build();
    Bed {
        repo,
        mirrors,
        env,
        _tmp: tmp,
    }
}

fn basic_pkgs() -> Vec<Pkg> {
    vec![
        Pkg::new("foo", "1.0-1").depends("bar").payload(300_000),
        Pkg::new("bar", "1.0-1").payload(200_000),
        Pkg::new("baz", "1.0-1").payload(1000),
    ]
}

fn names(installed: &[(String, String)]) -> Vec<String> {
    installed.iter().map(|(n, v)| format!("{n}-{v}")).collect()
}

#[test]
fn installs_with_dependencies_and_the_commit_is_offline() {
    let b = bed(&basic_pkgs(), 1);
    let out = run(b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert_eq!(names(&b.env.installed()), ["bar-1.0-1", "foo-1.0-1"]);
    let mut cached = b.env.cache_files();
    cached.sort();
    assert_eq!(
        cached,
        [
            "bar-1.0-1-x86_64.pkg.tar.zst",
            "foo-1.0-1-x86_64.pkg.tar.zst"
        ]
    );
    // Each package crossed the network exactly once: in the prefetch, none in the commit.
    let m = &b.mirrors[0];
    assert_eq!(m.count("foo-1.0-1-x86_64.pkg.tar.zst"), 1);
    assert_eq!(m.count("bar-1.0-1-x86_64.pkg.tar.zst"), 1);
    assert_eq!(m.count(".sig"), 0);
    assert_eq!(
        m.package_bytes(),
        std::fs::metadata(b.repo.path(&basic_pkgs()[0]))
            .unwrap()
            .len()
            + std::fs::metadata(b.repo.path(&basic_pkgs()[1]))
                .unwrap()
                .len()
    );
    assert!(
        out.stdout.contains("Packages (2) bar-1.0-1  foo-1.0-1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Total Download Size:"),
        "{}",
        out.stdout
    );
    // The staging directories are gone once everything is verified, as pacman's download-*
    // directories are: pacman -Sc and -Scc take every entry of the cache for a package, and a
    // directory there was an error ("could not open file", "Is a directory").
    assert!(!b.env.cache_dir().join("download-pactor").exists());
    for clean in ["-Sc", "-Scc"] {
        let out = run_with_stdin(b.env.pactor(&[clean]), "y\ny\n");
        out.assert_ok();
        assert!(!out.stderr.contains("error"), "{clean}: {}", out.stderr);
    }
    // A mirror that publishes no torrent index: one line, one request, no warning about it.
    assert!(
        out.stdout
            .contains(" core publishes no torrent index; its packages come from mirrors"),
        "{}",
        out.stdout
    );
    assert_eq!(m.count("core.torrents"), 1);
    assert!(!out.stderr.contains("torrent index"), "{}", out.stderr);
}

#[test]
fn sysupgrade_takes_new_versions_and_honours_ignore() {
    let mut b = bed(&basic_pkgs(), 1);
    run(b.env.pactor(&["-Sy", "--noconfirm", "foo", "baz"])).assert_ok();
    b.repo.add(&[
        Pkg::new("bar", "1.1-1").payload(200_000),
        Pkg::new("baz", "2.0-1"),
    ]);

    let out = run(b.env.pactor(&["-Syu", "--noconfirm", "--ignore", "baz"]));
    out.assert_ok();
    assert!(
        out.stderr
            .contains("warning: baz: ignoring package upgrade (1.0-1 => 2.0-1)"),
        "{}",
        out.stderr
    );
    assert_eq!(
        names(&b.env.installed()),
        ["bar-1.1-1", "baz-1.0-1", "foo-1.0-1"]
    );

    run(b.env.pactor(&["-Syu", "--noconfirm"])).assert_ok();
    assert_eq!(
        names(&b.env.installed()),
        ["bar-1.1-1", "baz-2.0-1", "foo-1.0-1"]
    );

    let out = run(b.env.pactor(&["-Syu", "--noconfirm"]));
    out.assert_ok();
    assert!(
        out.stdout.contains("there is nothing to do"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_output_of_a_run_is_pacmans_line_for_line() {
    // Twin roots on one mirror, one upgraded by pactor, the other by pacman.
    let mut b = bed(&basic_pkgs(), 1);
    let twin = TestEnv::builder()
        .repo("core", &[b.mirrors[0].url()])
        .build();
    for env in [&b.env, &twin] {
        run(env.pacman(&["-Sy", "--noconfirm", "foo", "baz"])).assert_ok();
    }
    b.repo.add(&[
        Pkg::new("bar", "1.1-1").payload(350_000),
        Pkg::new("baz", "2.0-1").payload(5_000),
        Pkg::new("new", "1.0-1").payload(10_000),
    ]);
    // Everything but the downloads, which are pactor's own: pacman's line per file as it
    // starts, in an order that varies, against pactor's per database and its closing line.
    let pacmans = |out: &Output| -> Vec<String> {
        out.stdout
            .lines()
            .filter(|l| {
                !(l.ends_with(" downloading...")
                    || l.ends_with(" downloaded")
                    || l.starts_with(" downloaded ")
                    || l.contains("torrent index"))
            })
            // The package list wraps at the terminal's width; the size table is exact.
            .map(|l| match l.starts_with("Packages (") {
                true => l.split_whitespace().collect::<Vec<_>>().join(" "),
                false => l.to_owned(),
            })
            .collect()
    };
    let sizes = |out: &Output| pacmans(out).iter().filter(|l| l.contains(" Size:")).count();
    // Download only: the download size alone. With no signature to check, pacman's check
    // after the download would only hash the files again, which pactor did as they came in
    // (with a repo whose packages are signed it runs, as pacman's).
    let ours = run(b.env.pactor(&["-Syuw", "--noconfirm", "new"]));
    let theirs = run(twin.pacman(&["-Syuw", "--noconfirm", "new"]));
    ours.assert_ok();
    theirs.assert_ok();
    let rehash = ["checking keyring...", "checking package integrity..."];
    let mut expected = pacmans(&theirs);
    expected.retain(|l| !rehash.contains(&l.as_str()));
    assert_eq!(pacmans(&ours), expected);
    assert_eq!(sizes(&ours), 1, "{}", ours.stdout);
    // The targets before the upgrade, as pacman adds them: alpm commits new first.
    let ours = run(b.env.pactor(&["-Syu", "--noconfirm", "new"]));
    let theirs = run(twin.pacman(&["-Syu", "--noconfirm", "new"]));
    ours.assert_ok();
    theirs.assert_ok();
    assert_eq!(pacmans(&ours), pacmans(&theirs));
    // Everything is in the cache now: no download size either.
    assert_eq!(sizes(&ours), 2, "{}", ours.stdout);
    assert!(ours.stdout.contains("installing new...\nupgrading bar..."));
    assert_eq!(b.env.installed(), twin.installed());
}

#[test]
fn needed_skips_up_to_date_targets_without_downloading() {
    let b = bed(&basic_pkgs(), 1);
    run(b.env.pactor(&["-Sy", "--noconfirm", "baz"])).assert_ok();
    let before = b.mirrors[0].requests().len();
    let out = run(b.env.pactor(&["-S", "--needed", "--noconfirm", "baz"]));
    out.assert_ok();
    assert!(
        out.stderr.contains("baz-1.0-1 is up to date -- skipping"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("there is nothing to do"),
        "{}",
        out.stdout
    );
    assert_eq!(
        b.mirrors[0].requests().len(),
        before,
        "{:#?}",
        b.mirrors[0].requests()
    );
}

#[test]
fn group_and_provider_targets() {
    let pkgs = vec![
        Pkg::new("g1", "1.0-1").group("tools"),
        Pkg::new("g2", "1.0-1").group("tools"),
        Pkg::new("impl-a", "1.0-1").provides("virt=2.0"),
        Pkg::new("user", "1.0-1").depends("virt>=1.5"),
    ];
    let b = bed(&pkgs, 1);
    run(b.env.pactor(&["-Sy", "--noconfirm", "tools"])).assert_ok();
    assert_eq!(names(&b.env.installed()), ["g1-1.0-1", "g2-1.0-1"]);
    run(b.env.pactor(&["-S", "--noconfirm", "virt>=2"])).assert_ok();
    assert!(names(&b.env.installed()).contains(&"impl-a-1.0-1".to_string()));
    run(b.env.pactor(&["-S", "--noconfirm", "core/user"])).assert_ok();
    assert!(names(&b.env.installed()).contains(&"user-1.0-1".to_string()));
}

#[test]
fn refresh_ignoregroup_and_downgrade_as_pacman_does() {
    let mut b = bed(
        &[
            Pkg::new("g1", "1.0-1").group("tools"),
            Pkg::new("solo", "1.0-1"),
        ],
        1,
    );
    let mut publish = std::process::Command::new(pactor_bin());
    publish.arg("publish").arg(&b.repo.dir);
    run(publish).assert_ok();
    let m = &b.mirrors[0];
    let fetched = |suffix: &str| {
        m.requests()
            .iter()
            .filter(|r| r.path.ends_with(suffix) && r.status == 200 && r.bytes_sent > 0)
            .count()
    };
    run(b.env.pactor(&["-Sy", "--noconfirm", "g1", "solo"])).assert_ok();
    assert_eq!((fetched("/core.db"), fetched("/core.torrents")), (1, 1));
    // -y with nothing new: no database and no index sent again, and pacman's lines off a
    // terminal (alpm starts the download, and the mirror answers 304).
    let out = run(b.env.pactor(&["-Sy"]));
    out.assert_ok();
    assert_eq!(
        out.stdout,
        ":: Synchronizing package databases...\n core downloading...\n"
    );
    assert_eq!((fetched("/core.db"), fetched("/core.torrents")), (1, 1));
    // -yy: both again, whole, and pacman's line as the database's download starts.
    let out = run(b.env.pactor(&["-Syy"]));
    out.assert_ok();
    assert!(
        out.stdout.contains("\n core downloading...\n"),
        "{}",
        out.stdout
    );
    assert_eq!((fetched("/core.db"), fetched("/core.torrents")), (2, 2));

    // --ignoregroup holds back every package of the group.
    b.repo.add(&[
        Pkg::new("g1", "1.1-1").group("tools"),
        Pkg::new("solo", "1.1-1"),
    ]);
    let out = run(b
        .env
        .pactor(&["-Syu", "--noconfirm", "--ignoregroup", "tools"]));
    out.assert_ok();
    assert!(
        out.stderr
            .contains("warning: g1: ignoring package upgrade (1.0-1 => 1.1-1)"),
        "{}",
        out.stderr
    );
    assert_eq!(names(&b.env.installed()), ["g1-1.0-1", "solo-1.1-1"]);

    // The repo goes back a version: -u keeps the newer local one and says so, -uu downgrades.
    b.repo.remove(&["solo"]);
    b.repo.add(&[Pkg::new("solo", "0.9-1")]);
    let out = run(b
        .env
        .pactor(&["-Syu", "--noconfirm", "--ignoregroup", "tools"]));
    out.assert_ok();
    assert!(
        out.stderr
            .contains("warning: solo: local (1.1-1) is newer than core (0.9-1)"),
        "{}",
        out.stderr
    );
    assert_eq!(names(&b.env.installed()), ["g1-1.0-1", "solo-1.1-1"]);
    let out = run(b.env.pactor(&["-Syuu", "--noconfirm"]));
    out.assert_ok();
    assert!(
        out.stderr
            .contains("warning: solo: downgrading from version 1.1-1 to version 0.9-1"),
        "{}",
        out.stderr
    );
    assert_eq!(names(&b.env.installed()), ["g1-1.1-1", "solo-0.9-1"]);
}

#[test]
fn root_dbpath_cachedir_and_arch_from_the_command_line() {
    let mut b = bed(&basic_pkgs(), 1);
    let alt = tempfile::tempdir().unwrap();
    let (root, db, cache) = (
        alt.path().join("root"),
        alt.path().join("db"),
        alt.path().join("cache"),
    );
    for dir in [&root, &db, &cache] {
        std::fs::create_dir(dir).unwrap();
    }
    let paths = |args: &[&str]| {
        let mut all: Vec<String> = ["--root", "--dbpath", "--cachedir"]
            .into_iter()
            .zip([&root, &db, &cache])
            .flat_map(|(flag, dir)| [flag.to_owned(), dir.display().to_string()])
            .collect();
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    let args = paths(&["-Sy", "--noconfirm", "--disable-download-timeout", "baz"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(b.env.pactor(&args)).assert_ok();
    // Installed into the other root and database, fetched into the other cache; the
    // configured ones untouched.
    assert!(root.join("usr/share/baz/payload.bin").is_file());
    let query = paths(&["-Q"]);
    let query: Vec<&str> = query.iter().map(String::as_str).collect();
    assert_eq!(run(b.env.pacman(&query)).stdout, "baz 1.0-1\n");
    assert!(b.env.installed().is_empty());
    assert!(cache.join(basic_pkgs()[2].filename()).is_file());
    assert!(b.env.cache_files().is_empty(), "{:?}", b.env.cache_files());

    // A package of another architecture is refused, in pacman's words, before anything is
    // fetched; --arch adds that architecture to pacman.conf's, as in pacman.
    b.repo.add(&[Pkg::new("arm", "1.0-1").arch("aarch64")]);
    run(b.env.pactor(&["-Sy"])).assert_ok();
    b.mirrors[0].clear_log();
    let ours = run(b.env.pactor(&["-S", "--noconfirm", "arm"]));
    let theirs = run(b.env.pacman(&["-S", "--noconfirm", "arm"]));
    assert_eq!(ours.code, Some(1), "{}", ours.stderr);
    assert_eq!(ours.code, theirs.code);
    let refusal = ":: package arm-1.0-1-aarch64 does not have a valid architecture";
    for out in [&ours, &theirs] {
        assert!(
            out.stdout.contains(refusal) || out.stderr.contains(refusal),
            "{}{}",
            out.stdout,
            out.stderr
        );
    }
    assert_eq!(b.mirrors[0].package_bytes(), 0);
    assert!(b.env.installed().is_empty());
    run(b
        .env
        .pactor(&["-S", "--noconfirm", "--arch", "aarch64", "arm", "baz"]))
    .assert_ok();
    assert_eq!(names(&b.env.installed()), ["arm-1.0-1", "baz-1.0-1"]);
}

#[test]
fn download_only_then_install_with_the_mirror_gone() {
    let mut b = bed(&basic_pkgs(), 1);
    let out = run(b.env.pactor(&["-Syw", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(b.env.installed().is_empty());
    assert_eq!(b.env.cache_files().len(), 2);
    b.mirrors[0].stop();
    let out = run(b.env.pactor(&["-S", "--noconfirm", "foo"]));
    out.assert_ok();
    assert_eq!(names(&b.env.installed()), ["bar-1.0-1", "foo-1.0-1"]);
}

#[test]
fn a_tampered_package_is_taken_from_the_next_mirror() {
    let b = bed(&basic_pkgs(), 2);
    b.mirrors[0].set_fault("foo-1.0-1-x86_64.pkg.tar.zst", Fault::Corrupt);
    let out = run(b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(out.stderr.contains("corrupted"), "{}", out.stderr);
    assert_eq!(b.mirrors[1].count("foo-1.0-1-x86_64.pkg.tar.zst"), 1);
    assert_eq!(names(&b.env.installed()), ["bar-1.0-1", "foo-1.0-1"]);
}

#[test]
fn a_package_tampered_everywhere_is_not_installed_and_not_cached() {
    let b = bed(&basic_pkgs(), 2);
    for m in &b.mirrors {
        m.set_fault("foo-1.0-1-x86_64.pkg.tar.zst", Fault::Corrupt);
    }
    let out = run(b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: failed retrieving file 'foo-1.0-1-x86_64.pkg.tar.zst'"),
        "{}",
        out.stderr
    );
    assert!(b.env.installed().is_empty());
    assert!(
        !b.env.cache_files().iter().any(|f| f.starts_with("foo")),
        "{:?}",
        b.env.cache_files()
    );
    // The lock is released: the next run works once the mirror is fixed.
    b.mirrors[0].clear_faults();
    run(b.env.pactor(&["-S", "--noconfirm", "foo"])).assert_ok();
}

#[test]
fn server_errors_and_stalls_fail_over_to_the_next_mirror() {
    for fault in [Fault::Status(500), Fault::StallAfterHeaders, Fault::Reset] {
        let b = bed(&basic_pkgs(), 2);
        b.env
            .write_pactor_conf("[options]\nIdleTimeout = 1\nConnectTimeout = 2\n");
        b.mirrors[0].set_fault(".pkg.tar.zst", fault.clone());
        let started = std::time::Instant::now();
        let out = run(b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
        out.assert_ok();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{fault:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(
            names(&b.env.installed()),
            ["bar-1.0-1", "foo-1.0-1"],
            "{fault:?}"
        );
        assert!(
            b.mirrors[1].count("foo-1.0-1-x86_64.pkg.tar.zst") >= 1,
            "{fault:?}"
        );
    }
}

#[test]
fn a_partial_download_resumes_with_a_range_request() {
    let b = bed(&basic_pkgs(), 2);
    b.mirrors[0].set_fault("foo-1.0-1-x86_64.pkg.tar.zst", Fault::Truncate(100_000));
    run(b.env.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    let resumed: Vec<_> = b.mirrors[1]
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("foo-1.0-1-x86_64.pkg.tar.zst"))
        .collect();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].range.as_deref(), Some("bytes=100000-"));
    let size = std::fs::metadata(b.repo.path(&basic_pkgs()[0]))
        .unwrap()
        .len();
    assert_eq!(resumed[0].bytes_sent, size - 100_000);
    assert_eq!(names(&b.env.installed()), ["bar-1.0-1", "foo-1.0-1"]);
}

#[test]
fn unknown_target_and_held_lock_are_clear_errors() {
    let b = bed(&basic_pkgs(), 1);
    let out = run(b.env.pactor(&["-Sy", "--noconfirm", "nosuch", "foo"]));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("error: target not found: nosuch"),
        "{}",
        out.stderr
    );
    assert!(b.env.installed().is_empty());
    assert_eq!(b.mirrors[0].package_bytes(), 0);

    let lock = b.env.db_dir().join("db.lck");
    std::fs::write(&lock, "").unwrap();
    let out = run(b.env.pactor(&["-S", "--noconfirm", "foo"]));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("unable to lock database"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&lock.display().to_string()),
        "{}",
        out.stderr
    );
    assert!(b.env.installed().is_empty());
}

#[test]
fn other_operations_behave_exactly_like_pacman() {
    // Twin roots on one mirror: pactor runs in one, pacman in the other, the same commands in
    // the same order, state-changing ones included; outputs compared with each root's temp
    // directory written as <dir>.
    let b = bed(&basic_pkgs(), 1);
    let twin = TestEnv::builder()
        .repo("core", &[b.mirrors[0].url()])
        .build();
    for env in [&b.env, &twin] {
        run(env.pacman(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    }
    let baz = b.repo.path(&basic_pkgs()[2]).display().to_string();
    let commands: &[&[&str]] = &[
        &["-Q"],
        &["-Qi", "foo"],
        &["-Q", "nosuch"],
        &["-Qk", "foo"],
        &["-Ss", "ba"],
        &["-Si", "foo"],
        &["-Sl"],
        &["-Sp", "baz"],
        &["-T", "foo", "nosuch"],
        &["-D", "--asexplicit", "bar"],
        &["-Qe"],
        &["-V"],
        &["-Fy"],
        &["-Fl", "foo"],
        &["-U", "--noconfirm", &baz],
        &["-R", "--noconfirm", "foo"],
        &["-R", "--noconfirm", "foo"],
        &["-Sc", "--noconfirm"],
        &["-Q"],
    ];
    // The two roots installed foo moments apart: -Qi's Install Date may differ by a second.
    let undated = |text: String| -> String {
        text.lines()
            .map(|l| {
                if l.starts_with("Install Date") {
                    "Install Date"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let normalized = |env: &TestEnv, out: Output| {
        let dir = env.dir.path().display().to_string();
        (
            out.code,
            undated(out.stdout.replace(&dir, "<dir>")),
            out.stderr.replace(&dir, "<dir>"),
        )
    };
    for args in commands {
        let ours = normalized(&b.env, run(b.env.pactor(args)));
        let theirs = normalized(&twin, run(twin.pacman(args)));
        assert_eq!(ours, theirs, "{args:?}");
    }
    // The commands did what they say, in both roots alike.
    assert_eq!(names(&b.env.installed()), ["bar-1.0-1", "baz-1.0-1"]);
    assert_eq!(b.env.installed(), twin.installed());
}

#[test]
fn output_off_a_terminal_has_no_control_characters() {
    let b = bed(&basic_pkgs(), 1);
    let out = run(b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
    }
    assert!(
        out.stdout.contains(" foo-1.0-1-x86_64 downloading..."),
        "{}",
        out.stdout
    );
}

#[test]
fn answering_no_changes_nothing() {
    let b = bed(&basic_pkgs(), 1);
    let out = run_with_stdin(b.env.pactor(&["-Sy", "foo"]), "n\n");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stdout.contains("Proceed with installation? [Y/n]"),
        "{}",
        out.stdout
    );
    assert!(b.env.installed().is_empty());
    assert_eq!(b.mirrors[0].package_bytes(), 0);
}

/// Arch's default `SigLevel = Required DatabaseOptional` with a throwaway key the root trusts.
fn signed_bed(include_sigs: bool) -> (tempfile::TempDir, Gpg, Repo, Mirror, TestEnv) {
    let tmp = tempfile::tempdir().unwrap();
    let gpg = Gpg::new(tmp.path());
    let mut repo = Repo::new(&tmp.path().join("repo"), "core");
    repo.set_signer(&gpg);
    repo.include_sigs(include_sigs);
    repo.add(&basic_pkgs());
    let mirror = Mirror::start(&tmp.path().join("repo"));
    let env = TestEnv::builder()
        .repo("core", &[mirror.url()])
        .signed(&gpg)
        .build();
    (tmp, gpg, repo, mirror, env)
}

#[test]
fn signatures_embedded_in_the_database_cost_no_request() {
    let (_tmp, _gpg, _repo, mirror, env) = signed_bed(true);
    run(env.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(names(&env.installed()), ["bar-1.0-1", "foo-1.0-1"]);
    assert_eq!(mirror.count(".pkg.tar.zst.sig"), 0);
    assert_eq!(mirror.count("foo-1.0-1-x86_64.pkg.tar.zst"), 1);
    assert!(
        env.cache_files()
            .contains(&"foo-1.0-1-x86_64.pkg.tar.zst.sig".to_string())
    );
}

#[test]
fn signed_repo_fetches_each_signature_once_and_refuses_an_untrusted_one() {
    let (tmp, _gpg, mut repo, mirror, env) = signed_bed(false);
    run(env.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(names(&env.installed()), ["bar-1.0-1", "foo-1.0-1"]);
    // Each package and its signature crossed the network once, in the prefetch; the commit
    // asked for nothing (it would have failed: its fetch callback refuses the network).
    for file in [
        "foo-1.0-1-x86_64.pkg.tar.zst",
        "foo-1.0-1-x86_64.pkg.tar.zst.sig",
        "bar-1.0-1-x86_64.pkg.tar.zst.sig",
    ] {
        assert_eq!(mirror.count(file), 1, "{file}");
    }

    // -w checks the signatures after the download, as pacman's -Sw does.
    let out = run(env.pactor(&["-Sw", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(
        out.stdout.contains("checking package integrity..."),
        "{}",
        out.stdout
    );

    // A package signed by a key the root does not trust is refused at commit, by alpm.
    let stranger = Gpg::new(&tmp.path().join("stranger"));
    repo.set_signer(&stranger);
    repo.add(&[Pkg::new("baz", "2.0-1")]);
    let out = run(env.pactor(&["-Sy", "--noconfirm", "baz"]));
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(!names(&env.installed()).iter().any(|n| n.starts_with("baz")));
}

#[test]
fn interrupted_prefetch_keeps_nothing_under_a_package_name_and_resumes() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let b = bed(&basic_pkgs(), 1);
        // 300 KB at 40 KB/s: the transfer is still running when the signal arrives.
        b.mirrors[0].set_fault("foo-1.0-1-x86_64.pkg.tar.zst", Fault::Trickle(40_000));
        let mut cmd = b.env.pactor(&["-Sy", "--noconfirm", "foo"]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        let part = b
            .env
            .cache_dir()
            .join("download-pactor/fetch/foo-1.0-1-x86_64.pkg.tar.zst.part");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !part.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(1500));
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128 + signal), "{stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert!(b.env.installed().is_empty());
        assert!(
            !b.env.cache_files().iter().any(|f| f.starts_with("foo")),
            "{:?}",
            b.env.cache_files()
        );
        assert!(
            !b.env.db_dir().join("db.lck").exists(),
            "the lock is released"
        );
        let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        assert!(
            kept > 0,
            "what arrived before the signal is kept for the next run"
        );

        b.mirrors[0].clear_faults();
        run(b.env.pactor(&["-S", "--noconfirm", "foo"])).assert_ok();
        assert_eq!(names(&b.env.installed()), ["bar-1.0-1", "foo-1.0-1"]);
        // The interrupted request is logged whenever the mirror notices the client left, which
        // may be after the rerun: look for the one ranged request rather than the last one.
        let ranged: Vec<_> = b.mirrors[0]
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("foo-1.0-1-x86_64.pkg.tar.zst") && r.range.is_some())
            .collect();
        assert_eq!(ranged.len(), 1, "{:#?}", b.mirrors[0].requests());
        let resumed = &ranged[0];
        assert_eq!(resumed.range, Some(format!("bytes={kept}-")));
        let size = std::fs::metadata(b.repo.path(&basic_pkgs()[0]))
            .unwrap()
            .len();
        assert_eq!(
            resumed.bytes_sent,
            size - kept,
            "only the missing bytes are fetched again"
        );
    }
}

/// At a prompt on a terminal, Ctrl-C ends the run as it ends pacman's (compared with pacman
/// itself): "Interrupt signal received", the same exit code, the lock released, nothing
/// downloaded or installed. Ctrl-Z suspends the run there, and after `fg` the answer typed is
/// taken. Both need the terminal left in its line mode, as pacman leaves it.
#[test]
fn ctrl_c_and_ctrl_z_at_a_prompt_on_a_terminal_act_as_in_pacman() {
    let b = bed(&basic_pkgs(), 1);
    run(b.env.pacman(&["-Sy"])).assert_ok();
    let lock = b.env.db_dir().join("db.lck");
    let mut codes = Vec::new();
    for tool in ["pacman", "pactor"] {
        let cmd = match tool {
            "pacman" => b.env.pacman(&["-S", "baz"]),
            _ => b.env.pactor(&["-S", "baz"]),
        };
        let mut terminal = Terminal::spawn(cmd);
        terminal.wait_for("Proceed with installation? [Y/n]", Duration::from_secs(20));
        terminal.type_keys("\x03");
        let code = terminal.exit_code();
        assert!(
            terminal.screen().contains("Interrupt signal received"),
            "{tool}: {}",
            terminal.screen()
        );
        assert!(!lock.exists(), "{tool} released the lock");
        codes.push(code);
    }
    assert_eq!(codes[1], codes[0], "pactor exits as pacman does");
    assert!(b.env.installed().is_empty());
    assert!(
        !b.mirrors[0]
            .requests()
            .iter()
            .any(|r| r.path.contains(".pkg.tar")),
        "nothing was downloaded"
    );

    let mut terminal = Terminal::spawn(b.env.pactor(&["-S", "baz"]));
    terminal.wait_for("Proceed with installation? [Y/n]", Duration::from_secs(20));
    terminal.type_keys("\x1a");
    let pid = terminal.child.id();
    let stopped = || proc_status(pid, "State").is_some_and(|s| s.starts_with('T'));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stopped() {
        assert!(
            Instant::now() < deadline,
            "Ctrl-Z did not stop pactor at the prompt:\n{}",
            terminal.screen()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the pactor this test started.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    terminal.type_keys("y\r");
    assert_eq!(terminal.exit_code(), Some(0), "{}", terminal.screen());
    assert_eq!(names(&b.env.installed()), ["baz-1.0-1"]);
}

#[test]
fn questions_are_asked_as_pacman_asks_them() {
    let pkgs = vec![
        Pkg::new("impl-a", "1.0-1").provides("virt"),
        Pkg::new("impl-b", "1.0-1").provides("virt"),
        Pkg::new("old", "1.0-1"),
        Pkg::new("rival", "1.0-1").conflicts("old"),
    ];
    let mut b = bed(&pkgs, 1);
    // Provider: a numbered list, the answer read from stdin.
    let out = run_with_stdin(b.env.pactor(&["-Sy", "virt"]), "2\ny\n");
    out.assert_ok();
    assert!(
        out.stdout
            .contains(":: There are 2 providers available for virt:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("   1) impl-a   2) impl-b"),
        "{}",
        out.stdout
    );
    assert_eq!(names(&b.env.installed()), ["impl-b-1.0-1"]);

    // Conflict: pacman's default is no, and then the transaction cannot proceed.
    run(b.env.pactor(&["-S", "--noconfirm", "old"])).assert_ok();
    let out = run(b.env.pactor(&["-S", "--noconfirm", "rival"]));
    assert!(
        out.stdout
            .contains(":: rival and old are in conflict. Remove old? [y/N]"),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, Some(1));
    assert!(names(&b.env.installed()).contains(&"old-1.0-1".to_string()));
    let out = run_with_stdin(b.env.pactor(&["-S", "rival"]), "y\ny\n");
    out.assert_ok();
    assert!(
        !names(&b.env.installed())
            .iter()
            .any(|n| n.starts_with("old"))
    );

    // Replace: asked during -Su, yes by default.
    b.repo.add(&[Pkg::new("newer", "1.0-1")
        .replaces("rival")
        .conflicts("rival")]);
    let out = run(b.env.pactor(&["-Syu", "--noconfirm"]));
    out.assert_ok();
    assert!(
        out.stdout
            .contains(":: Replace rival with core/newer? [Y/n]"),
        "{}",
        out.stdout
    );
    assert!(names(&b.env.installed()).contains(&"newer-1.0-1".to_string()));
    assert!(
        !names(&b.env.installed())
            .iter()
            .any(|n| n.starts_with("rival"))
    );
}

#[test]
fn a_broken_pactor_conf_is_an_error_naming_file_and_line() {
    let b = bed(&basic_pkgs(), 1);
    b.env.write_pactor_conf("[options]\nIdleTimeout = soon\n");
    let out = run(b.env.pactor(&["-Sy", "--noconfirm", "foo"]));
    assert_eq!(out.code, Some(1));
    let expected = format!(
        "error: config file {}, line 2:",
        b.env.pactor_conf_path().display()
    );
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(b.env.installed().is_empty());
    // An explicit --pactor-conf that does not exist is an error too; the default may be absent.
    let out = run(b.env.pactor(&[
        "-S",
        "--noconfirm",
        "--pactor-conf",
        "/nonexistent/pactor.conf",
        "foo",
    ]));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("/nonexistent/pactor.conf"),
        "{}",
        out.stderr
    );
}

#[test]
fn scriptlets_and_hooks_run_in_the_root_and_print_as_pacmans_do() {
    // The scriptlet writes into the root (so it really ran there, chrooted) and prints a line
    // per phase; a PostTransaction hook prints its description. Twin roots, one committed by
    // pactor and the other by pacman, must show the same commit lines.
    let script = |v: &str| {
        format!(
            "post_install() {{\n  echo \"hello: installed $1\"\n  echo {v} > /tmp/hello-mark\n}}\n\
             post_upgrade() {{\n  echo \"hello: upgraded $2 -> $1\"\n  echo {v} > /tmp/hello-mark\n}}\n"
        )
    };
    let mut b = bed(&[Pkg::new("hello", "1.0-1").install(&script("1.0"))], 1);
    let twin = TestEnv::builder()
        .repo("core", &[b.mirrors[0].url()])
        .build();
    for env in [&b.env, &twin] {
        // libalpm runs scriptlets with its build-time shell, /bin/bash; hooks Exec what they name.
        copy_executable(&env.root(), "/bin/bash");
        copy_executable(&env.root(), "/bin/sh");
        let hooks = env.system_hook_dir();
        std::fs::create_dir_all(&hooks).unwrap();
        std::fs::write(
            hooks.join("greet.hook"),
            "[Trigger]\nOperation = Install\nOperation = Upgrade\nType = Package\nTarget = hello\n\n\
             [Action]\nDescription = Greeting the new hello...\nWhen = PostTransaction\n\
             Exec = /bin/sh -c 'echo hook says hi'\n",
        )
        .unwrap();
    }
    let mark = |env: &TestEnv| std::fs::read_to_string(env.root().join("tmp/hello-mark"));
    // The lines of the commit that come from the scriptlet and the hook, in order.
    let commit_lines = |out: &Output| -> Vec<String> {
        out.stdout
            .lines()
            .filter(|l| {
                l.starts_with("hello: ")
                    || l.contains("hook says hi")
                    || l.contains("Greeting the new hello")
                    || l.contains("post-transaction hooks")
            })
            .map(|l| l.trim().to_owned())
            .collect()
    };

    let ours = run(b.env.pactor(&["-Sy", "--noconfirm", "hello"]));
    let theirs = run(twin.pacman(&["-Sy", "--noconfirm", "hello"]));
    ours.assert_ok();
    theirs.assert_ok();
    assert_eq!(mark(&b.env).unwrap(), "1.0\n");
    assert!(!ours.stderr.contains("error:"), "{}", ours.stderr);
    let lines = commit_lines(&ours);
    assert!(
        lines.contains(&"hello: installed 1.0-1".to_owned()),
        "{}",
        ours.stdout
    );
    assert!(
        lines.iter().any(|l| l.contains("hook says hi")),
        "{}",
        ours.stdout
    );
    assert_eq!(lines, commit_lines(&theirs));

    b.repo
        .add(&[Pkg::new("hello", "2.0-1").install(&script("2.0"))]);
    let ours = run(b.env.pactor(&["-Syu", "--noconfirm"]));
    let theirs = run(twin.pacman(&["-Syu", "--noconfirm"]));
    ours.assert_ok();
    theirs.assert_ok();
    assert_eq!(mark(&b.env).unwrap(), "2.0\n");
    let lines = commit_lines(&ours);
    assert!(
        lines.contains(&"hello: upgraded 1.0-1 -> 2.0-1".to_owned()),
        "{}",
        ours.stdout
    );
    assert_eq!(lines, commit_lines(&theirs));

    // --noscriptlet: the package is reinstalled, its scriptlet neither runs nor prints.
    std::fs::remove_file(b.env.root().join("tmp/hello-mark")).unwrap();
    let out = run(b
        .env
        .pactor(&["-S", "--noconfirm", "--noscriptlet", "hello"]));
    out.assert_ok();
    assert!(mark(&b.env).is_err(), "the scriptlet ran");
    assert!(!out.stdout.contains("hello: "), "{}", out.stdout);
}
