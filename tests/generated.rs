//! The committed generated files must be what pactor generates today: the man pages and
//! completions from the CLI definition, pactor.conf(5), the shipped pactor.conf and the
//! README's option table from the options table. `scripts/generate` rewrites them all.

use std::process::Command;

fn generated(kind: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pactor"))
        .args(["--generate", kind])
        .output()
        .expect("run pactor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn committed(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_default()
}

#[test]
fn generated_files_are_fresh() {
    let mut stale = Vec::new();
    for (kind, path) in [
        ("complete-bash", "completions/pactor.bash"),
        ("complete-zsh", "completions/_pactor"),
        ("complete-fish", "completions/pactor.fish"),
        ("man", "man/man8/pactor.8"),
        ("man-publish", "man/man8/pactor-publish.8"),
        ("man-seed", "man/man8/pactor-seed.8"),
        ("man-serve", "man/man8/pactor-serve.8"),
        ("man-stats", "man/man8/pactor-stats.8"),
        ("man-conf", "man/man5/pactor.conf.5"),
        ("conf", "assets/pactor.conf"),
    ] {
        if committed(path) != generated(kind) {
            stale.push(path);
        }
    }
    if !committed("README.md").contains(&generated("readme-options")) {
        stale.push("README.md (the pactor.conf option table)");
    }
    assert!(stale.is_empty(), "stale: {stale:?}; run scripts/generate");
}

/// Every man page renders without warnings from man(1)'s own checker, when man is installed.
#[test]
fn man_pages_render_cleanly() {
    if Command::new("man").arg("--version").output().is_err() {
        eprintln!("notice: man(1) is not installed; man pages not rendered");
        return;
    }
    for page in [
        "man/man8/pactor.8",
        "man/man8/pactor-publish.8",
        "man/man8/pactor-seed.8",
        "man/man8/pactor-serve.8",
        "man/man8/pactor-stats.8",
        "man/man5/pactor.conf.5",
    ] {
        let path = format!("{}/{page}", env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("man")
            .args(["--warnings", "-l", &path])
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .output()
            .expect("run man");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{page}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NAME") && text.contains("SEE ALSO"), "{page}");
    }
}
