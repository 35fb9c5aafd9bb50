//! The committed completions and man page must be what the CLI definition generates today.

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

#[test]
fn completions_and_man_page_are_fresh() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (kind, path) in [
        ("complete-bash", "completions/pactor.bash"),
        ("complete-zsh", "completions/_pactor"),
        ("complete-fish", "completions/pactor.fish"),
        ("man", "man/pactor.8"),
    ] {
        let committed = std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_default();
        assert!(
            committed == generated(kind),
            "{path} is stale: run `pactor --generate {kind} > {path}`"
        );
    }
}
