//! The commit, offline by construction: alpm gets a fetch callback that never touches the
//! network. It answers "already there" for files the prefetch placed in the cache and refuses
//! everything else, so a download during the commit is a loud bug, never a silent fetch.

use std::path::PathBuf;

use alpm::{Alpm, CommitData, FetchResult};
use anyhow::{Result, bail};

use crate::ui;

pub fn commit(alpm: &mut Alpm, cache_dirs: Vec<PathBuf>) -> Result<()> {
    alpm.set_fetch_cb(cache_dirs, |url, _dir, _force, cache_dirs| {
        let name = url.rsplit('/').next().unwrap_or(url);
        if !name.is_empty() && cache_dirs.iter().any(|dir| dir.join(name).is_file()) {
            FetchResult::FileExists
        } else {
            ui::error(&format!(
                "alpm asked to download {url} during the commit; this is a bug in pactor \
                 (the prefetch should have placed it in the cache)"
            ));
            FetchResult::Err
        }
    });
    let Err(err) = alpm.trans_commit() else {
        return Ok(());
    };
    ui::error(&format!("failed to commit transaction ({})", err.error()));
    if let Some(CommitData::PkgInvalid(files)) = err.data() {
        for file in files {
            ui::section(&format!("File {file} is corrupted"));
        }
    }
    eprintln!("Errors occurred, no packages were upgraded.");
    bail!(crate::ExitQuietly(1))
}
