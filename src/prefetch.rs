//! The prefetch: every file the commit needs is placed in the pacman cache before the commit,
//! so alpm never touches the network. Files arrive in a staging directory beside the cache (same
//! filesystem), are verified against the sync database, and only then renamed into the cache:
//! the cache never holds a partial or unverified file under a package's name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine;
use futures_util::StreamExt;

use crate::http::{FetchError, Fetched, Http};
use crate::progress::DownloadProgress;
use crate::transaction::{PackageFile, SignaturePolicy};

/// Where prefetched files go and how they are fetched.
pub struct Prefetch {
    /// Every CacheDir: a file in any of them is already there for alpm.
    pub cache_dirs: Vec<PathBuf>,
    /// The first writable CacheDir: new files go there.
    pub dest: PathBuf,
    pub parallel: usize,
    pub http: Http,
    /// Failures per server this run: like pacman, a server that failed three times is skipped.
    pub server_errors: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// pacman's rule: a server with this many errors is not tried again in the same run.
const MAX_SERVER_ERRORS: u32 = 3;

/// What the prefetch did, for the final line and for tests of resumption.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub files: usize,
    pub bytes_from_mirrors: u64,
}

/// Signatures are small; anything larger is not a signature.
const MAX_SIG_LEN: u64 = 64 * 1024;

impl Prefetch {
    /// The staging directory, named like pacman's own `download-*` directories in the cache.
    pub fn staging_dir(&self) -> PathBuf {
        self.dest.join("download-pactor")
    }

    pub async fn run(&self, files: &[PackageFile]) -> Result<Report> {
        let missing: Vec<&PackageFile> =
            files.iter().filter(|f| !self.cached(&f.filename)).collect();
        let staging = self.staging_dir();
        if !missing.is_empty() || files.iter().any(|f| self.wants_sig(f)) {
            std::fs::create_dir_all(&staging).with_context(|| {
                format!("could not create staging directory {}", staging.display())
            })?;
        }

        let mut report = Report::default();
        if !missing.is_empty() {
            crate::ui::section("Retrieving packages...");
            if missing.iter().any(|f| f.sha256.is_none()) {
                crate::ui::warning(
                    "the sync database has no sha256 for some packages: only their size is checked before the commit",
                );
            }
            let total: u64 = missing.iter().map(|f| f.size).sum();
            let progress = Arc::new(DownloadProgress::new(missing.len(), total));
            let results: Vec<(String, Result<u64, String>)> = futures_util::stream::iter(&missing)
                .map(|file| {
                    let progress = progress.clone();
                    let staging = &staging;
                    async move {
                        (
                            file.filename.clone(),
                            self.fetch_package(file, staging, &progress).await,
                        )
                    }
                })
                .buffer_unordered(self.parallel.max(1))
                .collect()
                .await;
            let mut failed = Vec::new();
            for (name, result) in results {
                match result {
                    Ok(bytes) => {
                        report.files += 1;
                        report.bytes_from_mirrors += bytes;
                    }
                    Err(message) => failed.push((name, message)),
                }
            }
            if let Ok(progress) = Arc::try_unwrap(progress) {
                progress.finish(report.bytes_from_mirrors);
            }
            if let Some(signum) = self.http.interrupted() {
                eprintln!(
                    "\ninterrupted: nothing was installed; partial downloads are kept in {} and resumed by the next run",
                    staging.display()
                );
                bail!(crate::ExitQuietly(128 + signum as u8));
            }
            if !failed.is_empty() {
                for (name, message) in &failed {
                    crate::ui::error(&format!(
                        "failed retrieving file '{name}' from all mirrors: {message}"
                    ));
                }
                bail!("failed to retrieve some files");
            }
        }

        for file in files.iter().filter(|f| self.wants_sig(f)) {
            self.place_signature(file, &staging).await?;
        }
        Ok(report)
    }

    fn server_errors(&self, server: &str) -> u32 {
        self.server_errors
            .lock()
            .expect("no poisoning")
            .get(server)
            .copied()
            .unwrap_or(0)
    }

    fn count_error(&self, server: &str) {
        *self
            .server_errors
            .lock()
            .expect("no poisoning")
            .entry(server.to_owned())
            .or_default() += 1;
    }

    fn cached(&self, filename: &str) -> bool {
        self.cache_dirs
            .iter()
            .any(|dir| dir.join(filename).is_file())
    }

    fn wants_sig(&self, file: &PackageFile) -> bool {
        file.signature != SignaturePolicy::NotChecked
            && !self.cached(&format!("{}.sig", file.filename))
    }

    /// Fetches one package from its servers in order until a copy matches the database.
    /// Returns the bytes transferred; the error says why the last server failed.
    async fn fetch_package(
        &self,
        file: &PackageFile,
        staging: &Path,
        progress: &DownloadProgress,
    ) -> Result<u64, String> {
        let part = staging.join(format!("{}.part", file.filename));
        let bar = progress.start(&file.filename, file.size);
        let advance = |n: u64| bar.advance(n);
        let mut transferred = 0;
        let mut last_error = String::from("no servers configured for repository");
        for server in &file.servers {
            if self.server_errors(server) >= MAX_SERVER_ERRORS {
                continue;
            }
            let url = format!("{}/{}", server.trim_end_matches('/'), file.filename);
            // A copy that failed verification after a resume may owe its bad bytes to an
            // earlier mirror: retry the same mirror once from scratch.
            for from_scratch in [false, true] {
                let resumed_from = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                if from_scratch && resumed_from == 0 {
                    break;
                }
                if from_scratch {
                    let _ = std::fs::remove_file(&part);
                }
                match self
                    .http
                    .fetch(&url, &part, Some(file.size), &advance)
                    .await
                {
                    Ok(fetched) => {
                        transferred += fetched.transferred;
                        match verify(file, &fetched) {
                            Ok(()) => {
                                let dest = self.dest.join(&file.filename);
                                std::fs::rename(&part, &dest).map_err(|e| {
                                    format!("could not move into {}: {e}", dest.display())
                                })?;
                                return Ok(transferred);
                            }
                            Err(why) => {
                                bar.rewind(fetched.len);
                                let _ = std::fs::remove_file(&part);
                                progress.warn(&format!(
                                    "{} from {} {why}",
                                    file.filename,
                                    host(server)
                                ));
                                last_error = why;
                                if resumed_from == 0 {
                                    break;
                                }
                            }
                        }
                    }
                    Err(FetchError::Interrupted) => return Err("interrupted".into()),
                    Err(e) => {
                        if matches!(e, FetchError::TooLong(_)) {
                            bar.rewind(file.size);
                        }
                        progress.warn(&format!(
                            "failed retrieving file '{}' from {} : {e}",
                            file.filename,
                            host(server)
                        ));
                        self.count_error(server);
                        last_error = e.to_string();
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }

    /// Places `<file>.sig` in the cache: from the database when it carries the signature (no
    /// network), else from the mirrors. The signature itself is checked by alpm at commit.
    async fn place_signature(&self, file: &PackageFile, staging: &Path) -> Result<()> {
        let sig_name = format!("{}.sig", file.filename);
        let part = staging.join(format!("{sig_name}.part"));
        let _ = std::fs::remove_file(&part);
        if let Some(b64) = &file.base64_sig {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .with_context(|| {
                    format!(
                        "the database's signature for {} is not base64",
                        file.filename
                    )
                })?;
            std::fs::write(&part, bytes)?;
            std::fs::rename(&part, self.dest.join(&sig_name))?;
            return Ok(());
        }
        let mut last_error = String::from("no servers");
        for server in &file.servers {
            let url = format!("{}/{sig_name}", server.trim_end_matches('/'));
            match self.http.fetch(&url, &part, None, &|_| {}).await {
                Ok(fetched) if fetched.len > 0 && fetched.len <= MAX_SIG_LEN => {
                    std::fs::rename(&part, self.dest.join(&sig_name))?;
                    return Ok(());
                }
                Ok(fetched) => last_error = format!("implausible signature size {}", fetched.len),
                Err(e) => last_error = e.to_string(),
            }
            let _ = std::fs::remove_file(&part);
        }
        if file.signature == SignaturePolicy::Required {
            bail!("failed retrieving file '{sig_name}' from all mirrors: {last_error}");
        }
        Ok(())
    }
}

/// The database is the only authority: size first, then sha256.
fn verify(file: &PackageFile, fetched: &Fetched) -> Result<(), String> {
    if fetched.len != file.size {
        return Err(format!(
            "has {} bytes where the database says {}",
            fetched.len, file.size
        ));
    }
    match file.sha256 {
        Some(expected) if expected != fetched.sha256 => {
            Err("is corrupted (sha256 does not match the database)".into())
        }
        _ => Ok(()),
    }
}

/// The server's host for messages, as pacman names mirrors.
fn host(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, sha256: Option<[u8; 32]>) -> PackageFile {
        PackageFile {
            filename: "a-1-1-x86_64.pkg.tar.zst".into(),
            servers: vec![],
            size,
            sha256,
            base64_sig: None,
            signature: SignaturePolicy::NotChecked,
        }
    }

    #[test]
    fn verification_needs_size_and_sha256() {
        let fetched = Fetched {
            len: 3,
            sha256: [7; 32],
            transferred: 3,
        };
        assert!(verify(&file(3, Some([7; 32])), &fetched).is_ok());
        assert!(
            verify(&file(3, Some([8; 32])), &fetched)
                .unwrap_err()
                .contains("sha256")
        );
        assert!(
            verify(&file(4, Some([7; 32])), &fetched)
                .unwrap_err()
                .contains("bytes")
        );
        assert!(verify(&file(3, None), &fetched).is_ok());
    }

    #[test]
    fn hosts_for_messages() {
        assert_eq!(
            host("https://mirror.example/core/os/x86_64"),
            "mirror.example"
        );
        assert_eq!(host("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
    }
}
