//! What the package installs besides the binary, checked with the tools that will read it:
//! the systemd units with `systemd-analyze verify`, the sysusers.d and tmpfiles.d entries with
//! `systemd-sysusers` and `systemd-tmpfiles` on a temp root, and the pacman hook run by a real
//! pacman 7.1 / libalpm (through `pactor -S` and `pacman -R`) in a chroot of its own.

mod bed;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use bed::*;

fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(name)
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("notice: {tool} is not installed; skipped (scripts/test installs it)");
    }
    found
}

/// The command of every `Exec*=` line of a unit file.
fn exec_commands(unit: &str) -> Vec<String> {
    unit.lines()
        .filter(|l| l.starts_with("Exec"))
        .filter_map(|l| l.split_once('='))
        .filter_map(|(_, cmd)| {
            cmd.trim_start_matches(['-', '@', ':', '+', '!'])
                .split_whitespace()
                .next()
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn systemd_units_verify_cleanly() {
    if !have("systemd-analyze") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let units = root.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    // The system's own units (multi-user.target, timers.target, …), as on a real machine.
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    let system_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|d| Path::new(d).join("multi-user.target").exists())
        .expect("systemd's units");
    let mut cp = Command::new("cp");
    cp.arg("-a")
        .arg(system_units)
        .arg(root.join("usr/lib/systemd/"));
    run(cp).assert_ok();
    let files = [
        "pactor-seed.service",
        "pactor-serve.service",
        "pactor-publish@.service",
        "pactor-publish@.timer",
    ];
    for file in files {
        let text = std::fs::read_to_string(asset(file)).unwrap();
        std::fs::write(units.join(file), &text).unwrap();
        // Every command a unit runs must exist: pactor as the package installs it, the
        // rest from the host.
        for command in exec_commands(&text) {
            if command == "/usr/bin/pactor" {
                let dest = root.join("usr/bin/pactor");
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                std::fs::copy(pactor_bin(), dest).unwrap();
            } else {
                assert!(
                    Path::new(&command).exists(),
                    "{file} runs {command}, missing here"
                );
                copy_executable(&root, &command);
            }
        }
    }
    // Documentation=man:… is checked against the generated pages.
    let manpath = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for unit in [
        "pactor-seed.service",
        "pactor-serve.service",
        "pactor-publish@srv-mirror-core-os-x86_64.service",
        "pactor-publish@srv-mirror-core-os-x86_64.timer",
    ] {
        let mut cmd = Command::new("systemd-analyze");
        cmd.arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg(unit)
            .current_dir(&units)
            .env("MANPATH", &manpath);
        let out = run(cmd);
        assert!(
            out.code == Some(0) && out.stderr.trim().is_empty() && out.stdout.trim().is_empty(),
            "{unit}:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
    // The verifier does catch mistakes here (a unit that names a missing command).
    std::fs::write(
        units.join("broken.service"),
        "[Service]\nExecStart=/usr/bin/pactor-missing\nProtectSystem=sometimes\n",
    )
    .unwrap();
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("broken.service")
        .current_dir(&units);
    let out = run(cmd);
    assert!(
        out.code != Some(0) && out.stderr.contains("pactor-missing"),
        "{}",
        out.stderr
    );

    // What the seeder unit promises.
    let seed = std::fs::read_to_string(asset("pactor-seed.service")).unwrap();
    for line in [
        "User=pactor",
        "ProtectSystem=strict",
        "ReadOnlyPaths=/var/cache/pacman/pkg /var/lib/pacman",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "StateDirectory=pactor",
        "ExecReload=/usr/bin/kill -HUP $MAINPID",
    ] {
        assert!(
            seed.lines().any(|l| l == line),
            "pactor-seed.service lacks {line}"
        );
    }
    let serve = std::fs::read_to_string(asset("pactor-serve.service")).unwrap();
    assert!(serve.contains("ExecStart=/usr/bin/pactor serve --listen 127.0.0.1:8001"));
}

#[test]
fn sysusers_and_tmpfiles_create_the_seeder_user_and_state_dir() {
    if !have("systemd-sysusers") || !have("systemd-tmpfiles") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let mut cmd = Command::new("systemd-sysusers");
    cmd.arg(format!("--root={}", root.display()))
        .arg(asset("pactor.sysusers"));
    run(cmd).assert_ok();
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("pactor:"))
        .unwrap_or_else(|| panic!("no pactor user in\n{passwd}"));
    let fields: Vec<&str> = entry.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!((1..1000).contains(&uid), "a system user: {entry}");
    assert_eq!(fields[5], "/var/lib/pactor", "{entry}");
    assert!(fields[6].ends_with("nologin"), "no login shell: {entry}");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    let gid: u32 = group
        .lines()
        .find(|l| l.starts_with("pactor:"))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|g| g.parse().ok())
        .expect("a pactor group");

    let mut cmd = Command::new("systemd-tmpfiles");
    cmd.arg(format!("--root={}", root.display()))
        .arg("--create")
        .arg(asset("pactor.tmpfiles"));
    run(cmd).assert_ok();
    let meta = std::fs::metadata(root.join("var/lib/pactor")).unwrap();
    assert!(meta.is_dir());
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
}

#[test]
fn the_pacman_hook_reloads_a_running_seeder_after_each_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(&tmp.path().join("repo"), "core");
    repo.add(&[Pkg::new("foo", "1.0-1"), Pkg::new("bar", "1.0-1")]);
    let mirror = Mirror::start(&tmp.path().join("repo"));
    let env = TestEnv::builder().repo("core", &[mirror.url()]).build();
    let root = env.root();

    // The hook where the package puts it; in the root, what it runs: a shell, and a systemctl
    // that records its arguments and says the seeder is active. pacman runs hooks chrooted.
    let hooks = env.system_hook_dir();
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::copy(asset("pactor-seed.hook"), hooks.join("pactor-seed.hook")).unwrap();
    copy_executable(&root, "/bin/sh");
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(
        root.join("usr/bin/systemctl"),
        "#!/bin/sh\necho \"$@\" >> /tmp/systemctl.log\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let log = root.join("tmp/systemctl.log");
    let calls = || std::fs::read_to_string(&log).unwrap_or_default();

    // No systemd running (a chroot, a container): the hook does nothing and fails nothing.
    let out = run(env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(
        out.stdout
            .contains("Asking the pactor seeder to rescan the package cache..."),
        "the hook ran:\n{}",
        out.stdout
    );
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
    assert_eq!(calls(), "");

    // Under systemd: checks the seeder is active, then reloads it (SIGHUP, see the unit).
    std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    run(env.pactor(&["-S", "--noconfirm", "bar"])).assert_ok();
    assert_eq!(
        calls(),
        "--quiet is-active pactor-seed.service\n--no-block reload pactor-seed.service\n"
    );
    // Removals trigger it too (through pacman itself).
    run(env.pactor(&["-R", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(calls().lines().count(), 4, "{}", calls());
}
