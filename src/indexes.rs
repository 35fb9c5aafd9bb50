//! Getting each sync repo's torrent index: whenever the local copy is missing or older than the
//! repo's database (so after `-y` brought a new database), always with `-yy`, and when a file
//! about to be downloaded is not listed ([`not_listing`]: an index published after its
//! database). A run with nothing to download makes no request for it. The root process decides
//! which ([`stale`]) and keeps what comes ([`record`]); the download process fetches
//! ([`fetch`]). Sources: every `TorrentIndex` URL of pactor.conf (with `$repo` and `$arch`),
//! else `<server>/<repo>.torrents` on the repo's own servers. A 404 is normal (the mirror
//! publishes nothing): that repo's files simply come over HTTP.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::fetcher::protocol::Level;
use crate::http::Http;
use crate::index::{self, Entry, Index};
use crate::transaction::PackageFile;
use crate::ui;

/// A sync repo as far as index fetching cares.
#[derive(Clone)]
pub struct RepoSource {
    pub name: String,
    pub servers: Vec<String>,
    /// The repo's sync database file, whose age decides whether the index is stale.
    pub db_file: PathBuf,
}

/// Where the local copies live: beside alpm's own `local/` and `sync/` directories.
pub fn index_dir(db_path: &Path) -> PathBuf {
    db_path.join("pactor")
}

/// Refreshes the local indexes that need it (all of them with `force`), in this process
/// (`pactor serve`).
pub async fn refresh(
    http: &Http,
    repos: &[RepoSource],
    urls: &[String],
    arch: &str,
    dir: &Path,
    force: bool,
) {
    for stale in stale(repos, urls, arch, dir, force) {
        let fetched = fetch(http, &stale.urls).await;
        let mut notes = Notes::default();
        record(dir, &stale, fetched, &mut notes);
        notes.show();
    }
}

/// One index to refresh: the repo and the URLs to try, in order.
pub struct Stale {
    pub repo: String,
    pub local: PathBuf,
    pub urls: Vec<String>,
}

/// The local indexes that need refreshing (all of them with `force`), with their sources.
pub fn stale(
    repos: &[RepoSource],
    urls: &[String],
    arch: &str,
    dir: &Path,
    force: bool,
) -> Vec<Stale> {
    let mut out = Vec::new();
    for repo in repos {
        let local = dir.join(format!("{}.torrents", repo.name));
        if !force && !is_stale(&local, &repo.db_file) {
            continue;
        }
        let candidates: Vec<String> = if urls.is_empty() {
            repo.servers
                .iter()
                .map(|s| format!("{}/{}.torrents", s.trim_end_matches('/'), repo.name))
                .collect()
        } else {
            urls.iter()
                .map(|u| u.replace("$repo", &repo.name).replace("$arch", arch))
                .collect()
        };
        out.push(Stale {
            repo: repo.name.clone(),
            local,
            urls: candidates,
        });
    }
    out
}

/// What the servers of one index said.
pub enum Fetched {
    Index(Vec<u8>),
    /// A server that works answered 404: the repo publishes no index.
    Nothing,
    /// Errors everywhere: the question stays open.
    Failed,
}

/// Tries `urls` in order (in the download process).
pub async fn fetch(http: &Http, urls: &[String]) -> Fetched {
    // A 404 from any server that works means "no index here"; only errors everywhere leave
    // the question open. A server that answers something other than an index (a captive
    // portal's page, a truncated file) is passed over like one that is down.
    let mut published_nothing = false;
    for url in urls {
        match http.get_small(url, index::MAX_INDEX_BYTES).await {
            Ok(Some(bytes)) => match Index::parse(&bytes) {
                Ok(_) => return Fetched::Index(bytes),
                Err(e) => tracing::info!("{url}: not a torrent index: {e}"),
            },
            Ok(None) => published_nothing = true,
            Err(e) => tracing::info!("{url}: {e}"),
        }
    }
    if published_nothing {
        Fetched::Nothing
    } else {
        Fetched::Failed
    }
}

/// Lines for the user, shown when the caller is ready for them: a refresh received beside
/// the planning of the transaction must not print into its output or its questions.
#[derive(Default)]
#[must_use = "the lines are for the user"]
pub struct Notes(Vec<(Level, String)>);

impl Notes {
    fn warning(&mut self, text: String) {
        self.0.push((Level::Warning, text));
    }

    pub fn say(&mut self, level: Level, text: String) {
        self.0.push((level, text));
    }

    /// Shows the lines, in order.
    pub fn show(self) {
        for (level, text) in self.0 {
            ui::say(level, &text);
        }
    }
}

/// Keeps what was fetched for `stale` (in the root process); the index, if one was.
pub fn record(dir: &Path, stale: &Stale, fetched: Fetched, notes: &mut Notes) -> Option<Loaded> {
    match fetched {
        // The bytes come from the download process, which the root process does not trust:
        // what does not parse never replaces the copy kept from before.
        Fetched::Index(bytes) => match Index::parse(&bytes) {
            Ok((index, warnings)) => {
                save(dir, &stale.local, &bytes, &stale.repo, notes);
                for w in warnings {
                    notes.warning(index_warning(&stale.repo, &w));
                }
                return Some(Loaded { index, raw: bytes });
            }
            Err(e) => notes.warning(format!(
                "the torrent index of {} that was downloaded is not valid ({e}); keeping the one from before",
                stale.repo
            )),
        },
        Fetched::Nothing => {
            // An empty file remembers the answer until the database changes, so a repo
            // without an index costs no request in a run with nothing to download.
            save(dir, &stale.local, b"", &stale.repo, notes);
            notes.say(
                Level::Line,
                format!(
                    " {} publishes no torrent index; its packages come from mirrors",
                    stale.repo
                ),
            );
        }
        Fetched::Failed => notes.warning(format!(
            "could not download the torrent index of {}",
            stale.repo
        )),
    }
    None
}

fn warn(repo: &str, warnings: Vec<String>) {
    for w in warnings {
        ui::warning(&index_warning(repo, &w));
    }
}

/// What a problem found in `repo`'s index says to the user.
fn index_warning(repo: &str, warning: &str) -> String {
    format!("torrent index of {repo}: {warning}")
}

fn save(dir: &Path, local: &Path, bytes: &[u8], repo: &str, notes: &mut Notes) {
    let saved = std::fs::create_dir_all(dir)
        .map_err(anyhow::Error::from)
        .and_then(|_| crate::atomic_write::write(local, bytes));
    if let Err(e) = saved {
        notes.warning(format!("could not save the torrent index of {repo}: {e:#}"));
    }
}

fn is_stale(local: &Path, db_file: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(local), modified(db_file)) {
        (Some(index), Some(db)) => index < db,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// The index entry for a file, if it agrees with the database on name, size and sha256.
/// Anything else in the index is ignored: the database is the authority.
pub fn entry_for<'i>(indexes: &'i HashMap<String, Index>, file: &PackageFile) -> Option<&'i Entry> {
    listing(indexes.get(&file.repo)?, file)
}

/// `file`'s entry in its repo's `index`, if it agrees with the database (see [`entry_for`]).
fn listing<'i>(index: &'i Index, file: &PackageFile) -> Option<&'i Entry> {
    let entry = index.files.get(&file.filename)?;
    (entry.size == file.size && Some(entry.sha256) == file.sha256).then_some(entry)
}

/// The repos with a file to download (in no cache dir) that their index does not list as the
/// database describes it.
pub fn not_listing(
    files: &[PackageFile],
    indexes: &HashMap<String, Loaded>,
    cache_dirs: &[PathBuf],
) -> BTreeSet<String> {
    files
        .iter()
        .filter(|f| !cache_dirs.iter().any(|d| d.join(&f.filename).is_file()))
        .filter(|f| {
            let index = indexes.get(&f.repo).map(|loaded| &loaded.index);
            index.and_then(|index| listing(index, f)).is_none()
        })
        .map(|f| f.repo.clone())
        .collect()
}

/// A local index as parsed, with the bytes it was parsed from: those go to the download
/// process as they are, neither serialized again nor parsed twice here (parsing an index of
/// 1,000 files takes about 3 ms, and a run of that many small packages about 150 ms).
pub struct Loaded {
    pub index: Index,
    pub raw: Vec<u8>,
}

/// The local indexes that parse; problems are warnings and the repo goes over HTTP. Those
/// `recorded` in this run are taken as they are.
pub fn load(
    repos: &[RepoSource],
    dir: &Path,
    mut recorded: HashMap<String, Loaded>,
) -> HashMap<String, Loaded> {
    let mut out = HashMap::new();
    for repo in repos {
        if let Some(loaded) = recorded.remove(&repo.name) {
            out.insert(repo.name.clone(), loaded);
            continue;
        }
        let path = dir.join(format!("{}.torrents", repo.name));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        // An empty file is the remembered answer "this repo publishes no index".
        if bytes.is_empty() {
            continue;
        }
        match Index::parse(&bytes) {
            Ok((index, warnings)) => {
                warn(&repo.name, warnings);
                out.insert(repo.name.clone(), Loaded { index, raw: bytes });
            }
            Err(e) => ui::warning(&format!(
                "torrent index of {}: {e}; using mirrors only",
                repo.name
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stale(dir: &Path) -> Stale {
        Stale {
            repo: "core".into(),
            local: dir.join("core.torrents"),
            urls: Vec::new(),
        }
    }

    #[test]
    fn what_the_download_process_sends_replaces_the_index_only_if_it_parses() {
        let tmp = tempfile::tempdir().unwrap();
        let stale = stale(tmp.path());
        let good = Index {
            repo: "core".into(),
            trackers: vec!["http://127.0.0.1:1/announce".into()],
            ..Index::default()
        }
        .to_bytes();
        let mut notes = Notes::default();
        let kept = record(tmp.path(), &stale, Fetched::Index(good.clone()), &mut notes).unwrap();
        assert_eq!(std::fs::read(&stale.local).unwrap(), good);
        assert_eq!((kept.raw, kept.index.trackers.len()), (good.clone(), 1));
        assert!(notes.0.is_empty());
        let bad = Fetched::Index(b"<html>".to_vec());
        assert!(record(tmp.path(), &stale, bad, &mut notes).is_none());
        assert_eq!(std::fs::read(&stale.local).unwrap(), good);
        assert!(record(tmp.path(), &stale, Fetched::Failed, &mut notes).is_none());
        assert_eq!(std::fs::read(&stale.local).unwrap(), good);
        assert!(record(tmp.path(), &stale, Fetched::Nothing, &mut notes).is_none());
        assert_eq!(std::fs::read(&stale.local).unwrap(), b"");
        // Told, in order, when the caller shows them: nothing was printed meanwhile.
        let told: Vec<(Level, &str)> = notes.0.iter().map(|(l, t)| (*l, t.as_str())).collect();
        assert!(
            matches!(
                told.as_slice(),
                [
                    (Level::Warning, invalid),
                    (Level::Warning, failed),
                    (Level::Line, nothing),
                ] if invalid.contains("is not valid")
                    && failed.contains("could not download")
                    && nothing.contains("publishes no torrent index")
            ),
            "{told:?}"
        );
    }

    #[test]
    fn an_index_recorded_in_this_run_is_not_read_again_and_the_others_are() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = |name: &str| RepoSource {
            name: name.into(),
            servers: Vec::new(),
            db_file: tmp.path().join(format!("{name}.db")),
        };
        let index = |tracker: &str| Index {
            trackers: vec![format!("http://127.0.0.1:1/{tracker}")],
            ..Index::default()
        };
        let on_disk = index("disk").to_bytes();
        std::fs::write(tmp.path().join("core.torrents"), &on_disk).unwrap();
        std::fs::write(tmp.path().join("extra.torrents"), &on_disk).unwrap();
        std::fs::write(tmp.path().join("empty.torrents"), b"").unwrap();
        let fresh = index("fresh");
        let recorded = HashMap::from([(
            "core".to_owned(),
            Loaded {
                raw: fresh.to_bytes(),
                index: fresh,
            },
        )]);
        let repos = [repo("core"), repo("extra"), repo("empty"), repo("absent")];
        let loaded = load(&repos, tmp.path(), recorded);
        let tracker = |name: &str| loaded[name].index.trackers[0].clone();
        assert_eq!(tracker("core"), "http://127.0.0.1:1/fresh");
        assert_eq!(tracker("extra"), "http://127.0.0.1:1/disk");
        assert_eq!(loaded["extra"].raw, on_disk);
        assert_eq!(loaded.len(), 2);
    }
}
