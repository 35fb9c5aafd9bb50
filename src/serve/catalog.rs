//! The repo databases serve proxies, and what it learns from them.
//!
//! A database is fetched from upstream when pacman asks for it (conditionally: an unchanged
//! database costs a 304), kept in the state directory with its signature, and read with libalpm
//! into a catalog: for every package file its size, sha256 and signature. The catalog is what
//! serve trusts, exactly as pacman will: a package file is served only if the database pacman
//! just got from serve lists it, and only with the bytes whose sha256 that database gives. The
//! repo's torrent index is fetched beside the database, from the same servers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use reqwest::StatusCode;

use super::Server;
use super::path::is_plain_name;
use crate::index::Index;
use crate::indexes::{self, RepoSource};

/// A database larger than this is not a database (Arch's largest is tens of MiB).
const MAX_DB_BYTES: u64 = 1 << 30;
/// pacman's own limit for signatures.
pub const MAX_SIG_BYTES: usize = 16 * 1024;

/// What the database says about one package file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbEntry {
    pub size: u64,
    pub sha256: Option<[u8; 32]>,
    /// The detached signature, base64, when the database embeds it.
    pub base64_sig: Option<String>,
}

/// The package files of a repo as its current database lists them.
pub struct Catalog {
    files: HashMap<String, DbEntry>,
    /// The previous database's files: a pacman that refreshed just before serve did may still
    /// ask for them.
    previous: Arc<HashMap<String, DbEntry>>,
    pub index: Option<Index>,
    /// The database's Last-Modified, also given to the package files it lists.
    pub last_modified: SystemTime,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&DbEntry> {
        self.files.get(name).or_else(|| self.previous.get(name))
    }
}

/// Why a database cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No upstream has it (or none is configured for the repo).
    NotFound,
    /// Upstreams failed and no earlier copy exists.
    Unreachable,
}

/// All repos serve has been asked about, by (repo, arch).
pub struct Databases {
    state_dir: PathBuf,
    repos: Mutex<HashMap<(String, String), Arc<RepoDb>>>,
}

impl Databases {
    pub fn new(state_dir: PathBuf) -> Databases {
        Databases {
            state_dir,
            repos: Mutex::default(),
        }
    }

    pub fn repo(&self, repo: &str, arch: &str) -> Arc<RepoDb> {
        let mut repos = self.repos.lock().expect("no poisoning");
        repos
            .entry((repo.to_owned(), arch.to_owned()))
            .or_insert_with(|| {
                Arc::new(RepoDb {
                    repo: repo.to_owned(),
                    arch: arch.to_owned(),
                    dir: self.state_dir.join(arch),
                    refreshed: tokio::sync::Mutex::new(None),
                    catalog: RwLock::new(None),
                })
            })
            .clone()
    }
}

/// One repo on one architecture: `<state>/<arch>/sync/<repo>.db` (where libalpm reads it)
/// and `<state>/<arch>/pactor/<repo>.torrents`.
pub struct RepoDb {
    pub repo: String,
    pub arch: String,
    dir: PathBuf,
    /// When the last refresh started: requests that arrived before it need no other.
    refreshed: tokio::sync::Mutex<Option<Instant>>,
    catalog: RwLock<Option<Arc<Catalog>>>,
}

impl RepoDb {
    pub fn db_file(&self) -> PathBuf {
        self.dir.join("sync").join(format!("{}.db", self.repo))
    }

    pub fn sig_file(&self) -> PathBuf {
        self.dir.join("sync").join(format!("{}.db.sig", self.repo))
    }

    pub fn index_file(&self) -> PathBuf {
        indexes::index_dir(&self.dir).join(format!("{}.torrents", self.repo))
    }

    pub fn current(&self) -> Option<Arc<Catalog>> {
        self.catalog.read().expect("no poisoning").clone()
    }

    /// The catalog, reading the database kept from an earlier run, or fetching it, if needed.
    pub async fn catalog(&self, server: &Server) -> Option<Arc<Catalog>> {
        if let Some(catalog) = self.current() {
            return Some(catalog);
        }
        let asked = Instant::now();
        if self.db_file().is_file() {
            let _guard = self.refreshed.lock().await;
            if self.current().is_none() {
                self.load(server).await;
            }
        } else {
            let _ = self.refresh(server, asked).await;
        }
        self.current()
    }

    /// Brings the database up to date with the first upstream that answers. Concurrent
    /// requests share one refresh. When every upstream fails, an earlier copy is kept and
    /// served (pacman then sees the repo as unchanged).
    pub async fn refresh(&self, server: &Server, asked: Instant) -> Result<(), Unavailable> {
        let mut refreshed = self.refreshed.lock().await;
        if refreshed.is_some_and(|at| at >= asked) && self.db_file().is_file() {
            return Ok(());
        }
        *refreshed = Some(Instant::now());
        let servers = server.upstreams.servers(&self.repo, &self.arch);
        let db_file = self.db_file();
        let have = std::fs::metadata(&db_file).and_then(|m| m.modified()).ok();
        let mut outcome = Err(Unavailable::NotFound);
        let mut changed = false;
        for base in &servers {
            match self.fetch_from(server, base, have).await {
                Ok(Fetched::Changed) => {
                    changed = true;
                    outcome = Ok(());
                    break;
                }
                Ok(Fetched::Unchanged) => {
                    outcome = Ok(());
                    break;
                }
                Ok(Fetched::NotFound) => {}
                Err(e) => {
                    crate::ui::warning(&format!(
                        "failed retrieving file '{}.db' from {} : {e}",
                        self.repo,
                        host(base)
                    ));
                    outcome = Err(Unavailable::Unreachable);
                }
            }
        }
        if let (Err(_), Some(have)) = (outcome, have) {
            crate::ui::warning(&format!(
                "{}.db: no upstream has it now; serving the copy of {}",
                self.repo,
                httpdate::fmt_http_date(have)
            ));
            outcome = Ok(());
        }
        if outcome.is_ok() {
            self.refresh_index(server, &servers, changed).await;
            if changed || self.current().is_none() {
                self.load(server).await;
            }
        }
        outcome
    }

    async fn fetch_from(
        &self,
        server: &Server,
        base: &str,
        have: Option<SystemTime>,
    ) -> Result<Fetched> {
        let url = format!("{base}/{}.db", self.repo);
        let mut response = server.http.open(&url, 0, have).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_MODIFIED => return Ok(Fetched::Unchanged),
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(Fetched::NotFound),
            status => anyhow::bail!("The requested URL returned error: {}", status.as_u16()),
        }
        let modified = last_modified(&response).unwrap_or_else(SystemTime::now);
        let sync = self.dir.join("sync");
        std::fs::create_dir_all(&sync)
            .with_context(|| format!("could not create {}", sync.display()))?;
        let mut body = Vec::new();
        while let Some(chunk) = server.http.chunk(&mut response).await? {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(
                body.len() as u64 <= MAX_DB_BYTES,
                "more than {MAX_DB_BYTES} bytes"
            );
        }
        // The signature comes from the same server as the database it signs.
        let sig = server
            .http
            .get_small(&format!("{url}.sig"), MAX_SIG_BYTES)
            .await
            .ok()
            .flatten();
        match &sig {
            Some(sig) => crate::atomic_write::write(&self.sig_file(), sig)?,
            None => {
                let _ = std::fs::remove_file(self.sig_file());
            }
        }
        let db_file = self.db_file();
        crate::atomic_write::write(&db_file, &body)?;
        std::fs::File::options()
            .write(true)
            .open(&db_file)
            .and_then(|f| f.set_modified(modified))?;
        say(&format!(
            " {}.db ({}): updated from {}",
            self.repo,
            self.arch,
            host(base)
        ));
        Ok(Fetched::Changed)
    }

    /// Fetches the repo's torrent index beside the database (forced when the database
    /// changed; otherwise only when the local copy is missing or older).
    async fn refresh_index(&self, server: &Server, servers: &[String], force: bool) {
        let source = RepoSource {
            name: self.repo.clone(),
            servers: servers.to_vec(),
            db_file: self.db_file(),
        };
        indexes::refresh(
            &server.http,
            std::slice::from_ref(&source),
            &server.settings.torrent_indexes,
            &self.arch,
            &indexes::index_dir(&self.dir),
            force,
        )
        .await;
    }

    /// Reads the database (and index) into a new catalog.
    async fn load(&self, server: &Server) {
        let (dir, repo) = (self.dir.clone(), self.repo.clone());
        let read = tokio::task::spawn_blocking(move || read_db(&dir, &repo)).await;
        let files = match read {
            Ok(Ok(files)) => files,
            Ok(Err(e)) => {
                crate::ui::warning(&format!("{}.db: {e:#}", self.repo));
                return;
            }
            Err(e) => {
                crate::ui::warning(&format!("{}.db: {e}", self.repo));
                return;
            }
        };
        let source = RepoSource {
            name: self.repo.clone(),
            servers: Vec::new(),
            db_file: self.db_file(),
        };
        let index = indexes::load(
            std::slice::from_ref(&source),
            &indexes::index_dir(&self.dir),
            HashMap::new(),
        )
        .remove(&self.repo)
        .map(|loaded| loaded.index);
        if let Some(swarm) = &server.swarm {
            let published = index.as_ref().map(|i| i.trackers.as_slice());
            swarm.set_published_trackers(&self.repo, published.unwrap_or_default());
        }
        let last_modified = std::fs::metadata(self.db_file())
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        let mut slot = self.catalog.write().expect("no poisoning");
        let previous = slot
            .as_ref()
            .map(|old| Arc::new(old.files.clone()))
            .unwrap_or_default();
        *slot = Some(Arc::new(Catalog {
            files,
            previous,
            index,
            last_modified,
        }));
    }
}

enum Fetched {
    Changed,
    Unchanged,
    NotFound,
}

/// The package files of `<dir>/sync/<repo>.db`, read by libalpm as pacman reads them. File
/// names come from upstream: one that is not a plain name is dropped, so no entry can ever
/// name a path outside the cache.
fn read_db(dir: &Path, repo: &str) -> Result<HashMap<String, DbEntry>> {
    let dbpath = dir.to_str().context("state directory is not UTF-8")?;
    let alpm = alpm::Alpm::new("/", dbpath).context("could not initialize libalpm")?;
    let db = alpm
        .register_syncdb(repo, alpm::SigLevel::NONE)
        .context("could not register the database")?;
    let mut files = HashMap::new();
    for pkg in db.pkgs() {
        let (Some(name), Ok(size)) = (pkg.filename(), u64::try_from(pkg.size())) else {
            continue;
        };
        if !is_plain_name(name) {
            crate::ui::warning(&format!("{repo}.db lists {name:?}; ignoring it"));
            continue;
        }
        files.insert(
            name.to_owned(),
            DbEntry {
                size,
                sha256: crate::transaction::db_sha256(pkg),
                base64_sig: pkg.base64_sig().map(str::to_owned),
            },
        );
    }
    Ok(files)
}

pub fn last_modified(response: &reqwest::Response) -> Option<SystemTime> {
    let value = response
        .headers()
        .get(reqwest::header::LAST_MODIFIED)?
        .to_str()
        .ok()?;
    httpdate::parse_http_date(value).ok()
}

/// The server's host, as pacman names mirrors in messages.
pub fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// A line for the log (stdout); a daemon whose log went away keeps serving.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
