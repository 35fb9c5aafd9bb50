//! pacman's output conventions: colour from `--color`, then `NO_COLOR`, then pacman.conf's
//! `Color` (on a terminal only); progress bars on a terminal unless `--noprogressbar`; `-q`,
//! `-v` and `--debug`; pacman's exit codes. A terminal is a real pseudo-terminal from
//! script(1), so what is tested is what a user sees.

mod bed;

use std::process::Command;

use bed::*;

struct Bed {
    _tmp: tempfile::TempDir,
    mirror: Mirror,
}

fn bed() -> Bed {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(&tmp.path().join("repo"), "core");
    repo.add(&[
        Pkg::new("foo", "1.0-1").depends("bar").payload(200_000),
        Pkg::new("bar", "1.0-1").payload(100_000),
    ]);
    let mirror = Mirror::start(&tmp.path().join("repo"));
    Bed { _tmp: tmp, mirror }
}

/// A fresh root on the bed's mirror, with `options` in pacman.conf.
fn root(b: &Bed, options: &str) -> TestEnv {
    TestEnv::builder()
        .repo("core", &[b.mirror.url()])
        .options(options)
        .build()
}

/// Runs `cmd` on a pseudo-terminal (script(1)); stdout and stderr arrive together.
fn on_terminal(cmd: Command) -> Output {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            line.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                shell_quote(&value.to_string_lossy())
            ));
        }
    }
    line.push_str(&shell_quote(&cmd.get_program().to_string_lossy()));
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    let mut script = Command::new("script");
    script.args(["-qfec", &format!("env {line}"), "/dev/null"]);
    run(script)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An SGR escape sequence: colour or bold.
fn has_colour(text: &str) -> bool {
    text.match_indices("\x1b[").any(|(i, _)| {
        text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ';')
            .count()
            .checked_add(i + 2)
            .and_then(|end| text[end..].chars().next())
            == Some('m')
    })
}

#[test]
fn colour_follows_the_flag_then_no_color_then_pacman_conf() {
    let b = bed();
    // (pacman.conf options, extra flags, NO_COLOR, colour expected)
    for (options, flags, no_color, expected) in [
        ("Color", &[][..], false, true),
        ("Color", &[][..], true, false),
        ("", &[][..], false, false),
        ("", &["--color", "always"][..], true, true),
        ("Color", &["--color", "never"][..], false, false),
        ("", &["--color", "auto"][..], false, true),
    ] {
        let env = root(&b, options);
        let mut args = vec!["-Sy", "--noconfirm", "--noprogressbar", "foo"];
        args.extend(flags);
        let mut cmd = env.pactor(&args);
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = on_terminal(cmd);
        assert!(out.stdout.contains("Packages (2)"), "{}", out.stdout);
        assert_eq!(
            has_colour(&out.stdout),
            expected,
            "Color={options:?} {flags:?} NO_COLOR={no_color}\n{:?}",
            out.stdout
        );
        assert_eq!(env.installed().len(), 2);
    }
    // Off a terminal, pacman.conf's Color does nothing; --color always still colours.
    let env = root(&b, "Color");
    let out = run(env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(!has_colour(&out.stdout) && !has_colour(&out.stderr));
    let env = root(&b, "");
    let out = run(env.pactor(&["-Sy", "--noconfirm", "--color", "always", "foo"]));
    out.assert_ok();
    assert!(has_colour(&out.stdout), "{:?}", out.stdout);
}

#[test]
fn progress_bars_on_a_terminal_unless_noprogressbar() {
    let b = bed();
    let env = root(&b, "");
    // Slow enough (300 KB at 200 KB/s) for the bars to be drawn while the bytes arrive.
    b.mirror.set_rate_limit(Some(200_000));
    let out = on_terminal(env.pactor(&["-Sy", "--noconfirm", "--color", "never", "foo"]));
    b.mirror.set_rate_limit(None);
    assert!(out.stdout.contains("Total (2 files)"), "{:?}", out.stdout);
    assert!(!out.stdout.contains("downloading..."), "{:?}", out.stdout);
    // pacman's bar, per file and in total: the size so far, the speed, the time left, the
    // bar and the percentage.
    let frames: Vec<&str> = out.stdout.split(['\r', '\n']).collect();
    let drawn = |name: &str| {
        frames.iter().any(|frame| {
            frame.split(name).nth(1).is_some_and(|rest| {
                let bar = rest.split('%').next().unwrap_or_default();
                bar.contains("KiB/s") && bar.contains("#-")
            })
        })
    };
    assert!(drawn("Total (2 files)"), "the total bar moves: {frames:#?}");
    assert!(drawn("foo-1.0-1-x86_64"), "a bar per file: {frames:#?}");
    assert_eq!(env.installed().len(), 2);

    let env = root(&b, "");
    let out = on_terminal(env.pactor(&[
        "-Sy",
        "--noconfirm",
        "--color",
        "never",
        "--noprogressbar",
        "foo",
    ]));
    assert!(!out.stdout.contains("Total ("), "{:?}", out.stdout);
    assert!(
        out.stdout.contains(" foo-1.0-1-x86_64 downloading..."),
        "{:?}",
        out.stdout
    );
    assert!(!out.stdout.contains("\x1b["), "{:?}", out.stdout);
}

#[test]
fn quiet_drops_the_download_summary() {
    let b = bed();
    let env = root(&b, "");
    let out = run(env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(out.stdout.contains(" downloaded "), "{}", out.stdout);
    let env = root(&b, "");
    let out = run(env.pactor(&["-Syq", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(!out.stdout.contains(" downloaded "), "{}", out.stdout);
    assert_eq!(env.installed().len(), 2);
}

#[test]
fn verbose_prints_pacmans_preamble() {
    let b = bed();
    let env = root(&b, "");
    let ours = run(env.pactor(&["-Sv", "--noconfirm", "-y", "foo"]));
    ours.assert_ok();
    // pacman prints the same preamble for any operation; -Sp changes nothing.
    let theirs = run(env.pacman(&["-Sv", "--print", "foo"]));
    theirs.assert_ok();
    let preamble = |text: &str| -> Vec<String> {
        text.lines()
            .take_while(|l| !l.starts_with(":: "))
            .take(9)
            .map(str::to_owned)
            .collect()
    };
    let expected = preamble(&theirs.stdout);
    assert_eq!(expected.len(), 9, "{}", theirs.stdout);
    assert!(expected[0].starts_with("Root      : "));
    assert_eq!(preamble(&ours.stdout), expected);
}

#[test]
fn debug_shows_alpm_and_pactor_diagnostics() {
    let b = bed();
    let env = root(&b, "");
    let out = run(env.pactor(&["-Sy", "--noconfirm", "--debug", "foo"]));
    out.assert_ok();
    assert!(out.stderr.contains("debug: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("debug: settings from "),
        "pactor's own tracing events: {}",
        out.stderr
    );
    let env = root(&b, "");
    let out = run(env.pactor(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert!(!out.stderr.contains("debug:"), "{}", out.stderr);
}

#[test]
fn exit_codes_are_pacmans() {
    let b = bed();
    let env = root(&b, "");
    // A usage error: pacman's prefix and exit code 1 (clap's own would be 2).
    let pactor = |args: &[&str]| {
        let mut cmd = Command::new(pactor_bin());
        cmd.args(args);
        cmd
    };
    for args in [
        &["-S", "--color", "sometimes", "foo"][..],
        &["seed", "--rescan", "soon"],
        &["stats", "--bogus"],
    ] {
        let out = run(pactor(args));
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("error:"), "{args:?}: {}", out.stderr);
    }
    // Nothing to do, help and version: success.
    run(env.pactor(&["-Sy"])).assert_ok();
    for args in [&["-h"][..], &["--version"], &["stats", "--help"]] {
        let out = run(pactor(args));
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
    }
    // pactor's own help says what pactor adds to pacman and where the rest goes.
    let help = run(pactor(&["-h"])).stdout;
    for said in [
        "prefetch",
        "publish",
        "seed",
        "serve",
        "stats",
        "--pactor-conf",
        "pacman",
    ] {
        assert!(help.contains(said), "-h mentions {said}:\n{help}");
    }
    assert!(
        run(pactor(&["--version"])).stdout.starts_with("pactor "),
        "--version is pactor's"
    );
    // pacman's own exit code for what it handles.
    let ours = run(env.pactor(&["-Qi", "nosuch"]));
    let theirs = run(env.pacman(&["-Qi", "nosuch"]));
    assert_eq!(ours.code, Some(1));
    assert_eq!(ours.code, theirs.code);
}
