//! Shell completion through the real shells: the committed scripts in `completions/` are
//! sourced by bash, fish and zsh, which call the built `pactor` (first on PATH) for
//! candidates. Package and group names come from the sync databases of the `--config` on the
//! line being completed: a temp root synced with real pacman from a mirror on 127.0.0.1.

mod bed;

use std::path::{Path, PathBuf};
use std::process::Command;

use bed::*;

struct Bed {
    _tmp: tempfile::TempDir,
    _mirror: Mirror,
    env: TestEnv,
}

/// core: foo, foobar, bar (bar and foobar in group "tools"); extra: fortune.
fn bed() -> Bed {
    let tmp = tempfile::tempdir().unwrap();
    let mut core = Repo::new(&tmp.path().join("core"), "core");
    core.add(&[
        Pkg::new("foo", "1.0-1"),
        Pkg::new("foobar", "1.0-1").group("tools"),
        Pkg::new("bar", "1.0-1").group("tools"),
    ]);
    let mut extra = Repo::new(&tmp.path().join("extra"), "extra");
    extra.add(&[Pkg::new("fortune", "1.0-1")]);
    let mirror = Mirror::start(tmp.path());
    let env = TestEnv::builder()
        .repo("core", &[format!("{}/core", mirror.url())])
        .repo("extra", &[format!("{}/extra", mirror.url())])
        .build();
    run(env.pacman(&["-Sy"])).assert_ok();
    Bed {
        _tmp: tmp,
        _mirror: mirror,
        env,
    }
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// PATH with the built pactor first, as an installed package has it.
fn path_with_pactor() -> String {
    format!(
        "{}:{}",
        pactor_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn sorted(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// What bash offers for `words` (the last one is completed), through completions/pactor.bash.
fn bash(words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source '{}'\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         COMP_TYPE=9\n\
         _clap_complete_pactor pactor \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        repo_file("completions/pactor.bash").display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let mut cmd = Command::new("bash");
    cmd.args(["--norc", "--noprofile", "-c", &script])
        .env("PATH", path_with_pactor());
    let out = run(cmd);
    out.assert_ok();
    sorted(&out.stdout)
}

/// What fish offers for `line`, through completions/pactor.fish.
fn fish(line: &str) -> Option<Vec<String>> {
    which("fish")?;
    let script = format!(
        "source '{}'; complete --do-complete '{line}'",
        repo_file("completions/pactor.fish").display()
    );
    let mut cmd = Command::new("fish");
    cmd.args(["--no-config", "-c", &script])
        .env("PATH", path_with_pactor());
    let out = run(cmd);
    out.assert_ok();
    Some(sorted(&out.stdout))
}

/// What zsh offers on the first <Tab> after `line`, with completions/ in fpath (autoloaded
/// as `_pactor`, the way the package installs it).
fn zsh(line: &str) -> Option<Vec<String>> {
    which("zsh")?;
    let mut cmd = Command::new("zsh");
    cmd.arg("-f")
        .arg(repo_file("tests/bed/zsh-capture.zsh"))
        .arg(repo_file("completions"))
        .arg(line)
        .env("PATH", path_with_pactor());
    let out = run(cmd);
    out.assert_ok();
    Some(sorted(&out.stdout))
}

fn which(tool: &str) -> Option<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("notice: {tool} is not installed; its completion is not tested");
    }
    found.then_some(())
}

#[test]
fn bash_completes_packages_groups_repos_options_and_tools() {
    let b = bed();
    let conf = b.env.conf().to_str().unwrap();
    assert_eq!(
        bash(&["pactor", "--config", conf, "-S", "fo"]),
        ["foo", "foobar", "fortune"]
    );
    assert_eq!(bash(&["pactor", "--config", conf, "-S", "t"]), ["tools"]);
    assert_eq!(
        bash(&["pactor", "--config", conf, "-S", "core/f"]),
        ["core/foo", "core/foobar"]
    );
    assert_eq!(
        bash(&["pactor", "--config", conf, "-S", "--ignoregroup", ""]),
        ["tools"]
    );
    assert_eq!(
        bash(&["pactor", "--config", conf, "-S", "zzz"]),
        Vec::<String>::new()
    );
    assert_eq!(bash(&["pactor", "-S", "--noconf"]), ["--noconfirm"]);
    assert_eq!(bash(&["pactor", "st"]), ["stats"]);
    assert_eq!(bash(&["pactor", "seed", "--re"]), ["--rescan"]);
    assert_eq!(bash(&["pactor", "-S", "--color", "n"]), ["never"]);
}

#[test]
fn a_broken_config_completes_nothing_and_prints_nothing() {
    let mut cmd = Command::new(pactor_bin());
    cmd.args(["--", "pactor", "--config", "/nonexistent.conf", "-S", "f"])
        .env("PACTOR_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "4");
    let out = run(cmd);
    out.assert_ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
}

#[test]
fn fish_completes_packages_with_descriptions() {
    let b = bed();
    let conf = b.env.conf().display().to_string();
    let Some(found) = fish(&format!("pactor --config {conf} -S fo")) else {
        return;
    };
    assert_eq!(found, ["foo", "foobar", "fortune"]);
    // fish shows the package description beside the name.
    let script = format!(
        "source '{}'; complete --do-complete 'pactor --config {conf} -S fortu'",
        repo_file("completions/pactor.fish").display()
    );
    let mut cmd = Command::new("fish");
    cmd.args(["--no-config", "-c", &script])
        .env("PATH", path_with_pactor());
    let out = run(cmd);
    assert_eq!(out.stdout.trim(), "fortune\tpactor test package fortune");
    assert_eq!(fish("pactor se").unwrap(), ["seed", "serve"]);
}

#[test]
fn zsh_completes_on_the_first_tab_of_an_autoloaded_function() {
    let b = bed();
    let conf = b.env.conf().display().to_string();
    let Some(found) = zsh(&format!("pactor --config {conf} -S foob")) else {
        return;
    };
    assert_eq!(found, ["foobar"]);
    assert_eq!(zsh("pactor seed --li").unwrap(), ["--listen"]);
}

#[test]
fn other_operations_complete_pacmans_options_for_them() {
    // pacman's options for the operation on the line, and pacman's general ones; never
    // pactor's sync options, which pacman would refuse there.
    assert_eq!(
        bash(&["pactor", "-R", "--c"]),
        [
            "--cachedir",
            "--cascade",
            "--color",
            "--config",
            "--confirm"
        ]
    );
    assert_eq!(bash(&["pactor", "-Rns", "--nee"]), Vec::<String>::new());
    assert_eq!(bash(&["pactor", "-Q", "--for"]), ["--foreign"]);
    assert_eq!(
        bash(&["pactor", "--query", "--ch"]),
        ["--changelog", "--check"]
    );
    assert_eq!(bash(&["pactor", "-U", "--ne"]), ["--needed"]);
    assert_eq!(bash(&["pactor", "-F", "--mach"]), ["--machinereadable"]);
    assert!(!bash(&["pactor", "-D", "-"]).contains(&"--disable-sandbox".to_owned()));
    // -S stays pactor's own.
    assert_eq!(bash(&["pactor", "-S", "--nee"]), ["--needed"]);
    assert_eq!(bash(&["pactor", "-S", "--casc"]), Vec::<String>::new());
    assert!(bash(&["pactor", "-Syu", "--disable-sa"]).contains(&"--disable-sandbox".to_owned()));
    if let Some(found) = zsh("pactor -R --casc") {
        assert_eq!(found, ["--cascade"]);
    }
    if let Some(found) = fish("pactor -Q --forei") {
        assert_eq!(found, ["--foreign"]);
    }
}

#[test]
fn other_operations_complete_what_pacmans_completion_offers() {
    let b = bed();
    run(b.env.pacman(&["-S", "--noconfirm", "foo", "bar"])).assert_ok();
    let conf = b.env.conf().to_str().unwrap();
    // -R, -Q and -D: installed packages only (foobar and fortune are in the sync dbs only).
    assert_eq!(bash(&["pactor", "--config", conf, "-R", "f"]), ["foo"]);
    assert_eq!(bash(&["pactor", "--config", conf, "-Rns", "b"]), ["bar"]);
    assert_eq!(bash(&["pactor", "--config", conf, "-Qi", "f"]), ["foo"]);
    assert_eq!(
        bash(&["pactor", "--config", conf, "--query", "--list", "f"]),
        ["foo"]
    );
    assert_eq!(
        bash(&["pactor", "--config", conf, "-D", "--asdeps", "f"]),
        ["foo"]
    );
    // -F and -T: sync packages; -S (and no operation yet) also groups.
    assert_eq!(
        bash(&["pactor", "--config", conf, "-T", "fo"]),
        ["foo", "foobar", "fortune"]
    );
    assert_eq!(bash(&["pactor", "--config", conf, "-Syu", "t"]), ["tools"]);
    // -U: package files.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x-1-1-any.pkg.tar.zst");
    std::fs::write(&file, b"").unwrap();
    let typed = format!("{}/x", dir.path().display());
    assert_eq!(
        bash(&["pactor", "-U", &typed]),
        [file.display().to_string()]
    );
    if let Some(found) = fish(&format!("pactor --config {conf} -R fo")) {
        assert_eq!(found, ["foo"]);
    }
}
