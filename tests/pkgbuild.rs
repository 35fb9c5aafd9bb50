//! The PKGBUILD, run by the real makepkg (pacman 7.1's) as an unprivileged user, on a copy of
//! this checkout:
//!
//! - `makepkg --printsrcinfo`: the PKGBUILD parses and its pkgver is Cargo.toml's version;
//! - `makepkg --repackage --clean` with the built binary where build() would leave it: package()
//!   runs under fakeroot, every file it names exists, and the package holds every file of
//!   assets/, man/, completions/ and docs/, byte for byte, with /etc/pactor.conf in backup;
//!   and the build directory is not the checkout's src/ (makepkg -c would delete it).
//!
//! A full build (prepare's `cargo fetch`, build's `cargo build --release`) takes longer than CI
//! allows on two cores; it is the ignored test `full_build`: `cargo test --test pkgbuild --
//! --ignored`.

mod bed;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bed::*;

/// The unprivileged user makepkg runs as when the tests run as root (makepkg refuses root).
const NOBODY: u32 = 65534;

fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The checkout's files (tracked and new, not ignored), copied to `dest`.
fn copy_checkout(dest: &Path) {
    let mut git = Command::new("git");
    git.args([
        "ls-files",
        "--cached",
        "--others",
        "--exclude-standard",
        "-z",
    ])
    .current_dir(checkout());
    let out = git.output().expect("git ls-files");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let (from, to) = (checkout().join(name), dest.join(name));
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
}

/// `program` as the unprivileged user when we are root (who must own what it writes to).
fn unprivileged(program: &str) -> Command {
    if !is_root() {
        return Command::new(program);
    }
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        "--",
        program,
    ]);
    cmd
}

/// Gives `dir` to the unprivileged user, when we are root.
fn hand_over(dir: &Path) {
    if is_root() {
        let mut chown = Command::new("chown");
        chown.args(["-R", &format!("{NOBODY}:{NOBODY}")]).arg(dir);
        run(chown).assert_ok();
    }
}

/// `makepkg ARGS` in `startdir`, as an unprivileged user, with HOME and the outputs in `work`.
fn makepkg(work: &Path, startdir: &Path, args: &[&str]) -> Output {
    let mut cmd = unprivileged("makepkg");
    cmd.args(args)
        .current_dir(startdir)
        .env("HOME", work)
        .env("PKGDEST", work.join("out"))
        .env("SRCDEST", work.join("sources"))
        .env("LOGDEST", work.join("logs"))
        .env_remove("BUILDDIR")
        .env_remove("MAKEFLAGS");
    for dir in ["out", "sources", "logs"] {
        std::fs::create_dir_all(work.join(dir)).unwrap();
    }
    hand_over(work);
    let out = run(cmd);
    eprintln!("makepkg {args:?}:\n{}{}", out.stdout, out.stderr);
    out
}

fn cargo_version() -> String {
    let toml = std::fs::read_to_string(checkout().join("Cargo.toml")).unwrap();
    toml.lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("Cargo.toml's package version")
        .to_owned()
}

fn srcinfo_value(srcinfo: &str, key: &str) -> Vec<String> {
    srcinfo
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key} = ")))
        .map(str::to_owned)
        .collect()
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The bytes a packaged file stands for: man pages are gzipped by makepkg's `zipman`.
fn content(path: &Path) -> Vec<u8> {
    if path.extension().is_some_and(|e| e == "gz") {
        let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
        return out.stdout;
    }
    std::fs::read(path).unwrap()
}

#[test]
fn pkgver_matches_cargo_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let startdir = tmp.path().join("pactor");
    copy_checkout(&startdir);
    let out = makepkg(tmp.path(), &startdir, &["--printsrcinfo"]);
    out.assert_ok();
    assert_eq!(srcinfo_value(&out.stdout, "pkgver"), [cargo_version()]);
    assert_eq!(srcinfo_value(&out.stdout, "backup"), ["etc/pactor.conf"]);
    assert_eq!(srcinfo_value(&out.stdout, "license"), ["GPL-3.0-or-later"]);
}

#[test]
fn package_installs_every_file_and_keeps_the_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let startdir = tmp.path().join("pactor");
    copy_checkout(&startdir);
    // Where build() leaves the binary: $srcdir/target/release, with $srcdir under
    // target/makepkg (the PKGBUILD's own BUILDDIR). The debug build stands in for it.
    let built = startdir.join("target/makepkg/pactor/src/target/release/pactor");
    std::fs::create_dir_all(built.parent().unwrap()).unwrap();
    std::fs::copy(pactor_bin(), &built).unwrap();
    std::fs::set_permissions(&built, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = makepkg(
        tmp.path(),
        &startdir,
        &[
            "--repackage",
            "--clean",
            "--nodeps",
            "--nocheck",
            "--noconfirm",
        ],
    );
    out.assert_ok();
    // --clean removed makepkg's src/ under target/makepkg, and nothing of the checkout.
    assert!(!startdir.join("target/makepkg/pactor/src").exists());
    assert!(
        startdir.join("src/main.rs").is_file(),
        "makepkg -c deleted the sources"
    );

    let package = std::fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains(".pkg.tar"))
        .expect("a package file");
    let name = package.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("pactor-{}-1-", cargo_version())),
        "{name}"
    );
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let mut bsdtar = Command::new("bsdtar");
    bsdtar.arg("-xf").arg(&package).arg("-C").arg(&tree);
    run(bsdtar).assert_ok();

    let pkginfo = std::fs::read_to_string(tree.join(".PKGINFO")).unwrap();
    assert!(pkginfo.contains("backup = etc/pactor.conf\n"), "{pkginfo}");
    for expected in [
        "usr/bin/pactor",
        "etc/pactor.conf",
        "usr/share/man/man8/pactor.8.gz",
        "usr/share/man/man8/pactor-seed.8.gz",
        "usr/share/man/man5/pactor.conf.5.gz",
        "usr/share/bash-completion/completions/pactor",
        "usr/share/zsh/site-functions/_pactor",
        "usr/share/fish/vendor_completions.d/pactor.fish",
        "usr/lib/systemd/system/pactor-seed.service",
        "usr/lib/systemd/system/pactor-serve.service",
        "usr/lib/systemd/system/pactor-publish@.service",
        "usr/lib/systemd/system/pactor-publish@.timer",
        "usr/lib/sysusers.d/pactor.conf",
        "usr/lib/tmpfiles.d/pactor.conf",
        "usr/share/libalpm/hooks/pactor-seed.hook",
        "usr/share/licenses/pactor/LICENSE",
        "usr/share/doc/pactor/README.md",
    ] {
        assert!(
            tree.join(expected).is_file(),
            "the package lacks {expected}"
        );
    }
    let binary = tree.join("usr/bin/pactor");
    assert!(std::fs::metadata(&binary).unwrap().permissions().mode() & 0o111 != 0);
    let version = Command::new(&binary).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("pactor {}", cargo_version())
    );

    // Nothing the repository ships is forgotten: every file of these directories is in the
    // package with the same bytes.
    let packaged: Vec<(PathBuf, Vec<u8>)> = all_files(&tree)
        .into_iter()
        .map(|p| {
            let bytes = content(&p);
            (p, bytes)
        })
        .collect();
    for dir in ["assets", "man", "completions", "docs"] {
        for file in all_files(&startdir.join(dir)) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                packaged.iter().any(|(_, b)| *b == bytes),
                "{} is not in the package",
                file.strip_prefix(&startdir).unwrap().display()
            );
        }
    }
}

/// The whole PKGBUILD: prepare (`cargo fetch --locked`, from crates.io into a fresh
/// CARGO_HOME), build (`cargo build --release --locked --frozen`) and package. Slow (a release
/// build of every dependency), so not part of CI. makepkg runs as an unprivileged user, who
/// needs a Rust toolchain it can read: `$PACTOR_MAKEPKG_PATH` is put first in its PATH (for
/// instance a copy of a toolchain that lives under /root).
#[test]
#[ignore]
fn full_build() {
    let tmp = tempfile::tempdir().unwrap();
    let startdir = tmp.path().join("pactor");
    copy_checkout(&startdir);
    let mut cmd = unprivileged("makepkg");
    cmd.args(["--clean", "--nodeps", "--nocheck", "--noconfirm"])
        .current_dir(&startdir)
        .env("HOME", tmp.path())
        .env("CARGO_HOME", tmp.path().join("cargo"))
        .env("PKGDEST", tmp.path())
        .env_remove("BUILDDIR");
    if let Some(dir) = std::env::var_os("PACTOR_MAKEPKG_PATH") {
        let mut path = dir;
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        cmd.env("PATH", path);
    }
    hand_over(tmp.path());
    let out = run(cmd);
    out.assert_ok();
    assert!(startdir.join("src/main.rs").is_file());
    assert!(
        std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".pkg.tar")),
        "{}",
        out.stdout
    );
}
