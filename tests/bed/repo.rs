//! Real repo databases made by `repo-add`, optionally signed with a throwaway GPG key.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::pkg::Pkg;

pub struct Repo {
    pub dir: PathBuf,
    pub name: String,
    signer: Option<Gpg>,
    include_sigs: bool,
}

impl Repo {
    pub fn new(dir: &Path, name: &str) -> Repo {
        std::fs::create_dir_all(dir).unwrap();
        Repo {
            dir: dir.to_owned(),
            name: name.into(),
            signer: None,
            include_sigs: false,
        }
    }

    /// Signs packages (`<pkg>.sig`, embedded by repo-add) and the database from now on.
    pub fn set_signer(&mut self, gpg: &Gpg) {
        self.signer = Some(gpg.clone());
    }

    /// Embeds package signatures in the database (`repo-add --include-sigs`), as Arch's
    /// databases did before pacman 6.1. Off by default, like repo-add.
    pub fn include_sigs(&mut self, yes: bool) {
        self.include_sigs = yes;
    }

    /// Builds the packages into the repo directory and adds them with `repo-add`.
    pub fn add(&mut self, pkgs: &[Pkg]) -> Vec<PathBuf> {
        let paths: Vec<PathBuf> = pkgs.iter().map(|p| p.build(&self.dir)).collect();
        let mut cmd = Command::new("repo-add");
        cmd.arg("-q");
        if let Some(gpg) = &self.signer {
            for path in &paths {
                gpg.detach_sign(path);
            }
            cmd.env("GNUPGHOME", &gpg.home)
                .args(["--sign", "--key", &gpg.key_id]);
        }
        if self.include_sigs {
            cmd.arg("--include-sigs");
        }
        let before = self.db_mtime();
        cmd.arg(self.db_archive()).args(&paths);
        run_ok(cmd);
        self.advance_db_mtime(before);
        paths
    }

    /// Removes packages from the database and their files from the directory.
    pub fn remove(&mut self, names: &[&str]) {
        let mut cmd = Command::new("repo-remove");
        cmd.arg("-q");
        if let Some(gpg) = &self.signer {
            cmd.env("GNUPGHOME", &gpg.home)
                .args(["--sign", "--key", &gpg.key_id]);
        }
        let before = self.db_mtime();
        cmd.arg(self.db_archive()).args(names);
        run_ok(cmd);
        self.advance_db_mtime(before);
    }

    pub fn path(&self, pkg: &Pkg) -> PathBuf {
        self.dir.join(pkg.filename())
    }

    fn db_mtime(&self) -> Option<SystemTime> {
        std::fs::metadata(self.db_archive())
            .and_then(|m| m.modified())
            .ok()
    }

    /// HTTP dates have one-second granularity: a database rewritten within the second of the
    /// previous one would look unmodified to `If-Modified-Since`. Real repos change minutes
    /// apart; tests change them milliseconds apart, so each release moves a second ahead.
    fn advance_db_mtime(&self, before: Option<SystemTime>) {
        let Some(before) = before else { return };
        let at_least = before + Duration::from_secs(1);
        let now = SystemTime::now();
        let mtime = if now > at_least { now } else { at_least };
        for name in [
            format!("{}.db.tar.gz", self.name),
            format!("{}.files.tar.gz", self.name),
        ] {
            if let Ok(file) = std::fs::File::options()
                .write(true)
                .open(self.dir.join(name))
            {
                file.set_modified(mtime).unwrap();
            }
        }
    }

    fn db_archive(&self) -> PathBuf {
        self.dir.join(format!("{}.db.tar.gz", self.name))
    }
}

/// A throwaway signing key in its own GNUPGHOME.
#[derive(Clone)]
pub struct Gpg {
    pub home: PathBuf,
    pub key_id: String,
}

impl Gpg {
    pub fn new(dir: &Path) -> Gpg {
        let home = dir.join("signer-gnupg");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let mut keygen = Command::new("gpg");
        keygen
            .env("GNUPGHOME", &home)
            .args([
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                "pactor test <test@pactor.invalid>",
            ])
            .args(["ed25519", "sign", "never"]);
        run_ok(keygen);
        let out = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--with-colons", "--list-secret-keys"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        let key_id = listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .expect("a fingerprint")
            .to_string();
        Gpg { home, key_id }
    }

    pub fn detach_sign(&self, file: &Path) {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", &self.home)
            .args([
                "--batch",
                "--yes",
                "--no-armor",
                "--detach-sign",
                "--local-user",
                &self.key_id,
            ])
            .arg(file);
        run_ok(cmd);
    }

    /// The public key, armored, for a keyring to import.
    pub fn export(&self, to: &Path) {
        let out = Command::new("gpg")
            .env("GNUPGHOME", &self.home)
            .args(["--batch", "--armor", "--export", &self.key_id])
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(to, out.stdout).unwrap();
    }
}

pub fn run_ok(mut cmd: Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
