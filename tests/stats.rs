//! `pactor stats`: what `pactor -S` fetched from peers and mirrors and what `pactor seed`
//! uploaded, recorded by the real processes in a temp `StateDir`, read back as JSON and as
//! text. Loopback only; DHT and LSD off (pactor's defaults).

mod bed;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bed::*;
use serde_json::Value;

fn pkgs() -> Vec<Pkg> {
    vec![
        Pkg::new("foo", "1.0-1").depends("bar").payload(2_000_000),
        Pkg::new("bar", "1.0-1").payload(600_000),
        Pkg::new("baz", "1.0-1").payload(300_000),
    ]
}

/// `pactor stats [--json]` with the `StateDir` of pactor.conf `conf`.
fn stats(conf: &Path, json: bool) -> Output {
    let mut cmd = Command::new(pactor_bin());
    cmd.arg("stats").arg("--pactor-conf").arg(conf);
    if json {
        cmd.arg("--json");
    }
    run(cmd)
}

fn stats_json(conf: &Path) -> Value {
    let out = stats(conf, true);
    out.assert_ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn size(repo: &Repo, pkg: &Pkg) -> u64 {
    std::fs::metadata(repo.path(pkg)).unwrap().len()
}

#[test]
fn peers_mirrors_and_uploads_are_recorded_per_run_and_in_total() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    repo.add(&pkgs());
    let mut publish = Command::new(pactor_bin());
    publish.arg("publish").arg(&dir);
    run(publish).assert_ok();
    let mirror = Mirror::start(&dir);
    let env = TestEnv::builder().repo("core", &[mirror.url()]).build();
    let seeder_conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&seeder_conf, "");
    let client_conf = env.pactor_conf_path();

    // Nothing recorded yet: zeros, and a plain sentence for humans.
    let empty = stats_json(&client_conf);
    assert_eq!(empty["total"]["runs"], 0);
    assert_eq!(empty["runs"].as_array().unwrap().len(), 0);
    let text = stats(&client_conf, false);
    text.assert_ok();
    assert!(
        text.stdout.contains("no transfers recorded yet"),
        "{}",
        text.stdout
    );

    // Run 1: foo and bar from the seeder.
    let mut seeder = SeedProcess::dir(&dir, &seeder_conf);
    seeder.wait_seeding(3);
    env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        seeder.port
    ));
    run(env.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    let from_peers = size(&repo, &pkgs()[0]) + size(&repo, &pkgs()[1]);
    let after_one = stats_json(&client_conf);
    assert_eq!(after_one["total"]["runs"], 1);
    assert_eq!(after_one["total"]["from_peers"], from_peers);
    assert_eq!(after_one["total"]["from_mirrors"], 0);
    let run1 = &after_one["runs"][0];
    assert_eq!(run1["kind"], "sync");
    assert_eq!(run1["files"], 2);
    assert_eq!(run1["from_peers"], from_peers);

    // The running seeder flushes its upload total (every rescan, here every second).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seeded = stats_json(&seeder_conf);
        if seeded["total"]["uploaded"].as_u64().unwrap_or(0) >= from_peers {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the seeder never recorded its upload: {seeded}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGTERM: it records once more and exits cleanly, still as one run.
    assert_eq!(seeder.stop_with(libc::SIGTERM), Some(0));
    let seeded = stats_json(&seeder_conf);
    assert_eq!(seeded["total"]["runs"], 1);
    let uploaded = seeded["total"]["uploaded"].as_u64().unwrap();
    assert!(
        (from_peers..from_peers * 2).contains(&uploaded),
        "uploaded {uploaded} for {from_peers} fetched"
    );
    assert_eq!(seeded["runs"][0]["kind"], "seed");
    assert_eq!(seeded["runs"][0]["uploaded"], uploaded);
    assert_eq!(
        seeded["total"]["ratio"],
        Value::Null,
        "a seeder downloads nothing"
    );

    // Run 2: the seeder is gone, baz comes from the mirror.
    env.write_pactor_conf("[options]\nStallTimeout = 1\n");
    run(env.pactor(&["-S", "--noconfirm", "baz"])).assert_ok();
    let after_two = stats_json(&client_conf);
    assert_eq!(after_two["total"]["runs"], 2);
    assert_eq!(after_two["total"]["from_peers"], from_peers);
    assert_eq!(after_two["total"]["from_mirrors"], size(&repo, &pkgs()[2]));
    assert_eq!(
        after_two["runs"][1]["from_mirrors"],
        size(&repo, &pkgs()[2])
    );
    assert_eq!(
        after_two["total"]["downloaded"],
        from_peers + size(&repo, &pkgs()[2])
    );

    let text = stats(&client_conf, false);
    text.assert_ok();
    assert!(text.stdout.contains("(2 runs)"), "{}", text.stdout);
    let share = 100 * from_peers / (from_peers + size(&repo, &pkgs()[2]));
    assert!(
        text.stdout.contains(&format!(
            " {share}% of the downloaded bytes came from peers"
        )) || text.stdout.contains(&format!(" {}% of", share + 1)),
        "{}",
        text.stdout
    );
    assert_eq!(text.stdout.matches(" -S ").count(), 2, "{}", text.stdout);
}

#[test]
fn a_state_dir_that_cannot_be_written_is_a_warning_not_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    repo.add(&pkgs()[2..]);
    let mirror = Mirror::start(&dir);
    let env = TestEnv::builder().repo("core", &[mirror.url()]).build();
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    // Written directly: the bed's helper would add a StateDir of its own.
    std::fs::write(
        env.pactor_conf_path(),
        format!(
            "[options]\nStateDir = {}\n",
            blocker.join("state").display()
        ),
    )
    .unwrap();
    let out = run(env.pactor(&["-Sy", "--noconfirm", "baz"]));
    out.assert_ok();
    assert!(
        out.stderr
            .contains("warning: could not record transfer statistics"),
        "{}",
        out.stderr
    );
    assert_eq!(env.installed().len(), 1);

    // A damaged file is an error for the reader, named, with pacman's prefix and exit code.
    env.write_pactor_conf("");
    std::fs::create_dir_all(env.state_dir()).unwrap();
    std::fs::write(env.state_dir().join("stats.json"), "{").unwrap();
    let out = stats(&env.pactor_conf_path(), false);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.contains("stats.json"),
        "{}",
        out.stderr
    );
}
