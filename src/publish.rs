//! `pactor publish DIR`: writes `<repo>.torrents` beside each `<repo>.db` in a mirror or
//! seedbox directory. Only files that are new or changed since the last index are hashed, so
//! republishing a large repo after a sync takes seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use alpm::{Alpm, SigLevel};
use anyhow::{Context, Result, bail};
use base64::Engine;

use crate::atomic_write;
use crate::cli::PublishArgs;
use crate::index::{self, Entry, Index};
use crate::torrent::Info;
use crate::ui;

/// What the sync database says about one package file.
struct DbFile {
    name: String,
    size: u64,
    sha256: Option<[u8; 32]>,
    base64_sig: Option<String>,
}

/// Counts for the summary line (and for tests of the incremental rule).
#[derive(Debug, Default)]
struct Tally {
    hashed: usize,
    unchanged: usize,
    skipped: usize,
}

pub fn run(args: &PublishArgs) -> Result<()> {
    let repos = find_repos(&args.dir)?;
    if repos.is_empty() {
        bail!(
            "no repository database (<repo>.db) in {}",
            args.dir.display()
        );
    }
    for repo in repos {
        publish_repo(args, &repo)?;
    }
    Ok(())
}

fn find_repos(dir: &Path) -> Result<Vec<String>> {
    let mut repos = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("could not read {}", dir.display()))?
    {
        let name = entry?.file_name();
        if let Some(repo) = name.to_str().and_then(|n| n.strip_suffix(".db"))
            && !repo.is_empty()
        {
            repos.push(repo.to_owned());
        }
    }
    repos.sort();
    Ok(repos)
}

fn publish_repo(args: &PublishArgs, repo: &str) -> Result<()> {
    ui::section(&format!("Publishing {repo} ({})", args.dir.display()));
    let db_files = read_database(&args.dir, repo)?;
    let index_path = args.dir.join(format!("{repo}.torrents"));
    let previous = match std::fs::read(&index_path) {
        Ok(bytes) => Index::parse(&bytes)
            .map(|(index, _)| index)
            .unwrap_or_default(),
        Err(_) => Index::default(),
    };

    let mut tally = Tally::default();
    let mut reuse = BTreeMap::new();
    let mut to_hash = Vec::new();
    for file in &db_files {
        let on_disk = std::fs::metadata(args.dir.join(&file.name))
            .ok()
            .filter(|m| m.is_file());
        let Some(meta) = on_disk else {
            ui::warning(&format!(
                "{}: listed in {repo}.db but missing from {}",
                file.name,
                args.dir.display()
            ));
            tally.skipped += 1;
            continue;
        };
        if !index::valid_file_name(&file.name) {
            ui::warning(&format!(
                "{:?}: not a plain file name; not published",
                file.name
            ));
            tally.skipped += 1;
            continue;
        }
        // An entry from before small files carried their pieces is hashed once more.
        let unchanged = previous.files.get(&file.name).filter(|e| {
            e.size == file.size
                && meta.len() == file.size
                && Some(e.sha256) == file.sha256
                && (e.pieces.is_some() || !Entry::inlines_pieces(e.size))
        });
        match unchanged {
            Some(entry) => {
                tally.unchanged += 1;
                reuse.insert(file.name.clone(), entry.clone());
            }
            None => to_hash.push(file),
        }
    }

    let hashed = hash_all(&args.dir, &to_hash);
    let mut files = reuse;
    for (file, result) in to_hash.iter().zip(hashed) {
        match result {
            Ok((info, sha256)) if Some(sha256) == file.sha256 || file.sha256.is_none() => {
                tally.hashed += 1;
                if args.torrent_files {
                    atomic_write::write(
                        &args.dir.join(format!("{}.torrent", file.name)),
                        &info.to_torrent_file(&args.tracker),
                    )?;
                }
                files.insert(
                    file.name.clone(),
                    Entry {
                        size: info.length,
                        sha256,
                        info_hash: info.info_hash(),
                        sig: None,
                        pieces: Entry::inlines_pieces(info.length).then(|| info.pieces.clone()),
                    },
                );
            }
            Ok(_) => {
                ui::warning(&format!(
                    "{}: sha256 does not match {repo}.db; not published",
                    file.name
                ));
                tally.skipped += 1;
            }
            Err(e) => {
                ui::warning(&format!("{}: {e}; not published", file.name));
                tally.skipped += 1;
            }
        }
    }

    // Unchanged files keep their torrent's info; the trackers around it may have changed.
    if args.torrent_files {
        for (name, entry) in &files {
            refresh_torrent_file(&args.dir, name, entry, &args.tracker)?;
        }
    }

    for file in &db_files {
        if let Some(entry) = files.get_mut(&file.name) {
            entry.sig = signature(&args.dir, file);
        }
    }
    let index = Index {
        repo: repo.to_owned(),
        trackers: args.tracker.clone(),
        peers: args.peer.clone(),
        files,
    };
    atomic_write::write(&index_path, &index.to_bytes())?;
    println!(
        " {} packages: {} hashed, {} unchanged, {} skipped",
        index.files.len(),
        tally.hashed,
        tally.unchanged,
        tally.skipped
    );
    println!(" wrote {}", index_path.display());
    Ok(())
}

/// Makes `<name>.torrent` carry the current trackers: the info dict of a valid existing file is
/// reused (no hashing); a missing or foreign one is made from the package file.
fn refresh_torrent_file(dir: &Path, name: &str, entry: &Entry, trackers: &[String]) -> Result<()> {
    let path = dir.join(format!("{name}.torrent"));
    let current = std::fs::read(&path).ok();
    let info = current
        .as_deref()
        .and_then(crate::torrent::parse_torrent_file)
        .filter(|info| info.info_hash() == entry.info_hash);
    let info = match info {
        Some(info) => info,
        None => Info::from_file(&dir.join(name))?,
    };
    let wanted = info.to_torrent_file(trackers);
    if current.as_deref() != Some(wanted.as_slice()) {
        atomic_write::write(&path, &wanted)?;
    }
    Ok(())
}

/// Reads `<repo>.db` with libalpm itself, through a scratch database directory that links it.
fn read_database(dir: &Path, repo: &str) -> Result<Vec<DbFile>> {
    let scratch = tempfile_dir()?;
    let sync = scratch.join("sync");
    std::fs::create_dir_all(&sync)?;
    let db_path = std::fs::canonicalize(dir.join(format!("{repo}.db")))
        .with_context(|| format!("could not read {repo}.db in {}", dir.display()))?;
    std::os::unix::fs::symlink(&db_path, sync.join(format!("{repo}.db")))?;
    let result = (|| {
        let alpm = Alpm::new("/", scratch.to_str().context("scratch path is not UTF-8")?)
            .context("could not initialize alpm")?;
        let db = alpm.register_syncdb(repo, SigLevel::NONE)?;
        let files = db
            .pkgs()
            .iter()
            .filter_map(|pkg| {
                Some(DbFile {
                    name: pkg.filename()?.to_owned(),
                    size: u64::try_from(pkg.size()).ok()?,
                    sha256: crate::transaction::db_sha256(pkg),
                    base64_sig: pkg.base64_sig().map(str::to_owned),
                })
            })
            .collect::<Vec<_>>();
        anyhow::Ok(files)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    let mut files = result.with_context(|| format!("could not read {}", db_path.display()))?;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("pactor-publish-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The signature to publish: the `.sig` file beside the package, else the database's own.
fn signature(dir: &Path, file: &DbFile) -> Option<String> {
    match std::fs::read(dir.join(format!("{}.sig", file.name))) {
        Ok(bytes) if !bytes.is_empty() && bytes.len() <= 4096 => {
            Some(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        _ => file.base64_sig.clone(),
    }
}

/// A file's canonical torrent info and sha256, or why it could not be read.
type Hashed = std::io::Result<(Info, [u8; 32])>;

/// Hashes files on every core: canonical torrent info and sha256 in one read.
fn hash_all(dir: &Path, files: &[&DbFile]) -> Vec<Hashed> {
    let results: Vec<Mutex<Option<Hashed>>> = files.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(files.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    *results[i].lock().expect("no poisoning") =
                        Some(Info::from_file_with_sha256(&dir.join(&file.name)));
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no poisoning")
                .expect("every file hashed")
        })
        .collect()
}
