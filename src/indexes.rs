//! Getting each sync repo's torrent index: whenever the local copy is missing or older than the
//! repo's database (so after `-y` brought a new database), always with `-yy`, and when a file
//! about to be downloaded is not listed (an index published after its database). A run with
//! nothing to download makes no request for it. Sources: every `TorrentIndex` URL of
//! pactor.conf (with `$repo` and `$arch`), else `<server>/<repo>.torrents` on the repo's own
//! servers. A 404 is normal (the mirror publishes nothing): that repo's files simply come over
//! HTTP.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::http::Http;
use crate::index::{self, Index};
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

/// Refreshes the local indexes that need it (all of them with `force`); returns the names of
/// the repos whose index was asked for.
pub async fn refresh(
    http: &Http,
    repos: &[RepoSource],
    urls: &[String],
    arch: &str,
    dir: &Path,
    force: bool,
) -> Vec<String> {
    let mut asked = Vec::new();
    for repo in repos {
        let local = dir.join(format!("{}.torrents", repo.name));
        if !force && !is_stale(&local, &repo.db_file) {
            continue;
        }
        asked.push(repo.name.clone());
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
        // A 404 from any server that works means "no index here"; only errors everywhere
        // leave the question open.
        let mut published_nothing = false;
        let mut fetched = None;
        for url in &candidates {
            match http.get_small(url, index::MAX_INDEX_BYTES).await {
                Ok(Some(bytes)) => {
                    fetched = Some(bytes);
                    break;
                }
                Ok(None) => published_nothing = true,
                Err(e) => tracing::info!("{url}: {e}"),
            }
        }
        match fetched {
            Some(bytes) => save(dir, &local, &bytes, &repo.name),
            None if published_nothing => {
                // An empty file remembers the answer until the database changes, so a repo
                // without an index costs no request in a run with nothing to download.
                save(dir, &local, b"", &repo.name);
                println!(
                    " {} publishes no torrent index; its packages come from mirrors",
                    repo.name
                );
            }
            None => ui::warning(&format!(
                "could not download the torrent index of {}",
                repo.name
            )),
        }
    }
    asked
}

fn save(dir: &Path, local: &Path, bytes: &[u8], repo: &str) {
    let saved = std::fs::create_dir_all(dir)
        .map_err(anyhow::Error::from)
        .and_then(|_| crate::atomic_write::write(local, bytes));
    if let Err(e) = saved {
        ui::warning(&format!(
            "could not save the torrent index of {repo}: {e:#}"
        ));
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

/// The local indexes that parse; problems are warnings and the repo goes over HTTP.
pub fn load(repos: &[RepoSource], dir: &Path) -> HashMap<String, Index> {
    let mut out = HashMap::new();
    for repo in repos {
        let path = dir.join(format!("{}.torrents", repo.name));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if bytes.is_empty() {
            // The remembered answer of a mirror that publishes no index (see `refresh`).
            continue;
        }
        match Index::parse(&bytes) {
            Ok((index, warnings)) => {
                for w in warnings {
                    ui::warning(&format!("torrent index of {}: {w}", repo.name));
                }
                out.insert(repo.name.clone(), index);
            }
            Err(e) => ui::warning(&format!(
                "torrent index of {}: {e}; using mirrors only",
                repo.name
            )),
        }
    }
    out
}
