//! The sync transaction, computed by libalpm exactly as pacman computes it: database refresh,
//! targets (packages, `repo/pkg`, groups, provisions), sysupgrade, preparation, pacman's
//! summary and the confirmation. What it yields is the list of files the commit will need.

use alpm::{Alpm, PackageFrom, PrepareData, SigLevel};
use anyhow::{Result, anyhow, bail};

use crate::cli::SyncArgs;
use crate::ui;

/// A package file the commit needs, with what the sync database says it must be.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PackageFile {
    /// `name-ver-arch.pkg.tar.zst`: the name in the cache and on every mirror.
    pub filename: String,
    /// The sync repo it comes from (its torrent index is looked up by this name).
    pub repo: String,
    /// The repo's servers in mirrorlist order.
    pub servers: Vec<String>,
    /// Compressed size from the database.
    pub size: u64,
    /// sha256 from the database: the only authority on the file's bytes.
    pub sha256: Option<[u8; 32]>,
    /// The detached signature embedded in the database, if any.
    pub base64_sig: Option<String>,
    pub signature: SignaturePolicy,
}

/// Whether the commit will want `<file>.sig` in the cache (alpm re-downloads otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SignaturePolicy {
    NotChecked,
    Optional,
    Required,
}

impl SignaturePolicy {
    fn from_siglevel(level: SigLevel) -> Self {
        if !level.contains(SigLevel::PACKAGE) {
            SignaturePolicy::NotChecked
        } else if level.contains(SigLevel::PACKAGE_OPTIONAL) {
            SignaturePolicy::Optional
        } else {
            SignaturePolicy::Required
        }
    }
}

/// Why the transaction stopped before the prefetch without an error.
pub enum Planned {
    /// Files to prefetch and commit.
    Proceed(Vec<PackageFile>),
    /// " there is nothing to do".
    NothingToDo,
}

/// `-y`: refresh the sync databases with alpm's own downloader, printing pacman's lines.
pub fn refresh(alpm: &mut Alpm, force: bool) -> Result<()> {
    ui::section("Synchronizing package databases...");
    alpm.syncdbs_mut()
        .update(force)
        .map_err(|e| anyhow!("failed to synchronize all databases ({e})"))?;
    Ok(())
}

/// Adds the targets and the sysupgrade, prepares, prints the summary and asks to proceed.
/// The transaction must already be initialised (which takes the database lock).
pub fn plan(alpm: &mut Alpm, args: &SyncArgs) -> Result<Planned> {
    // pacman's order (`sync_trans`): the targets, then the upgrade. alpm keeps the order in
    // which packages were added wherever dependencies leave it free, and so commits them.
    let mut failed = false;
    for target in &args.targets {
        failed |= !add_target(alpm, target)?;
    }
    if failed {
        bail!(crate::ExitQuietly(1));
    }
    if args.sysupgrade > 0 {
        ui::section("Starting full system upgrade...");
        alpm.sync_sysupgrade(args.sysupgrade >= 2)
            .map_err(|e| anyhow!("failed to prepare transaction ({e})"))?;
    }
    prepare(alpm)?;
    if alpm.trans_add().is_empty() && alpm.trans_remove().is_empty() {
        println!(" there is nothing to do");
        return Ok(Planned::NothingToDo);
    }
    print_summary(alpm, args.download_only);
    let prompt = if args.download_only {
        "Proceed with download?"
    } else {
        "Proceed with installation?"
    };
    if !ui::confirm(prompt, true) {
        bail!(crate::ExitQuietly(1));
    }
    Ok(Planned::Proceed(package_files(alpm)))
}

/// pacman's `process_target`: `repo/name` narrows the databases; a name or provision is
/// resolved by alpm (asking the provider question); otherwise it may be a group.
/// Returns false after printing `error: target not found: NAME`.
fn add_target(alpm: &Alpm, target: &str) -> Result<bool> {
    let (repo, name) = match target.split_once('/') {
        Some((repo, name)) => (Some(repo), name),
        None => (None, target),
    };
    let dbs: Vec<&alpm::Db> = match repo {
        Some(repo) => match alpm.syncdbs().iter().find(|db| db.name() == repo) {
            Some(db) => vec![db],
            None => {
                ui::error(&format!("database not found: {repo}"));
                return Ok(false);
            }
        },
        None => alpm.syncdbs().iter().collect(),
    };
    let satisfier = match repo {
        Some(_) => dbs[0]
            .pkg(name)
            .ok()
            .or_else(|| single_db_satisfier(alpm, dbs[0], name)),
        None => alpm.syncdbs().find_satisfier(name),
    };
    if let Some(pkg) = satisfier {
        add_pkg(alpm, pkg)?;
        return Ok(true);
    }
    if alpm.last_error() == alpm::Error::PkgIgnored {
        ui::warning(&format!("skipping target: {target}"));
        return Ok(true);
    }
    add_group(alpm, &dbs, name, target)
}

/// alpm's satisfier search limited to one database (for `repo/provision`).
fn single_db_satisfier<'a>(
    alpm: &'a Alpm,
    db: &'a alpm::Db,
    dep: &str,
) -> Option<&'a alpm::Package> {
    let _ = alpm;
    db.pkgs().find_satisfier(dep)
}

fn add_pkg(alpm: &Alpm, pkg: &alpm::Package) -> Result<()> {
    match alpm.trans_add_pkg(pkg) {
        Ok(()) => Ok(()),
        Err(e) if e.error == alpm::Error::TransDupTarget => Ok(()),
        Err(e) => Err(anyhow!("'{}': {}", pkg.name(), e.error)),
    }
}

/// pacman's `process_group`: all members with `--noconfirm`, else a numbered selection.
fn add_group(alpm: &Alpm, dbs: &[&alpm::Db], name: &str, target: &str) -> Result<bool> {
    let mut members: Vec<(&str, &alpm::Package)> = Vec::new();
    for db in dbs {
        if let Ok(group) = db.group(name) {
            for pkg in group.packages() {
                if !members.iter().any(|(_, p)| p.name() == pkg.name()) {
                    members.push((db.name(), pkg));
                }
            }
        }
    }
    if members.is_empty() {
        ui::error(&format!("target not found: {target}"));
        return Ok(false);
    }
    let selected = select_group_members(name, &members);
    for (_, pkg) in members
        .iter()
        .zip(selected)
        .filter(|(_, keep)| *keep)
        .map(|(m, _)| *m)
    {
        // Members already installed and current are skipped like pacman's --needed for groups.
        add_pkg(alpm, pkg)?;
    }
    Ok(true)
}

fn select_group_members(group: &str, members: &[(&str, &alpm::Package)]) -> Vec<bool> {
    if ui::Ui::get().noconfirm {
        return vec![true; members.len()];
    }
    ui::section(&format!(
        "There are {} members in group {group}:",
        members.len()
    ));
    let items: Vec<(&str, &str)> = members
        .iter()
        .map(|(repo, pkg)| (*repo, pkg.name()))
        .collect();
    ui::numbered_by_repo(&items);
    loop {
        use std::io::Write;
        print!("Enter a selection (default=all): ");
        let _ = std::io::stdout().flush();
        let answer = match ui::read_line() {
            ui::Answer::Line(line) => line,
            ui::Answer::End => {
                println!();
                return vec![true; members.len()];
            }
            // No package of the group: the run ends with the signal after the planning.
            ui::Answer::Interrupted => return vec![false; members.len()],
        };
        match parse_selection(answer.trim(), members.len()) {
            Some(selection) => return selection,
            None => ui::error(&format!("invalid value: {}", answer.trim())),
        }
    }
}

/// pacman's selection syntax: `1 3-5`, `^2` to exclude, empty for all.
pub fn parse_selection(text: &str, count: usize) -> Option<Vec<bool>> {
    let words: Vec<&str> = text.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return Some(vec![true; count]);
    }
    let only_exclusions = words.iter().all(|w| w.starts_with('^'));
    let mut selected = vec![only_exclusions; count];
    for word in words {
        let (value, exclude) = match word.strip_prefix('^') {
            Some(rest) => (rest, true),
            None => (word, false),
        };
        let (start, end) = match value.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let n = value.parse::<usize>().ok()?;
                (n, n)
            }
        };
        if start == 0 || end < start || end > count {
            return None;
        }
        selected[start - 1..end]
            .iter_mut()
            .for_each(|s| *s = !exclude);
    }
    Some(selected)
}

fn prepare(alpm: &mut Alpm) -> Result<()> {
    let Err(err) = alpm.trans_prepare() else {
        return Ok(());
    };
    ui::error(&format!("failed to prepare transaction ({})", err.error()));
    if err.error() == alpm::Error::PkgInvalidArch {
        // alpm 5.0.2 hands this list out as packages, but libalpm fills it with strings
        // (`name-version-arch`): read as packages, they crash the process, lock held. The
        // same list again, from the transaction, by libalpm's rule (check_arch in trans.c).
        drop(err);
        let archs: Vec<&str> = alpm.architectures().iter().collect();
        for pkg in alpm.trans_add() {
            if let Some(arch) = pkg.arch()
                && arch != "any"
                && !archs.contains(&arch)
            {
                ui::section(&format!(
                    "package {}-{}-{arch} does not have a valid architecture",
                    pkg.name(),
                    pkg.version()
                ));
            }
        }
        bail!(crate::ExitQuietly(1));
    }
    match err.data() {
        // Handled above; never read.
        Some(PrepareData::PkgInvalidArch(_)) => {}
        Some(PrepareData::UnsatisfiedDeps(missing)) => {
            for miss in missing {
                let target = miss.target();
                match miss.causing_pkg() {
                    Some(cause) => ui::section(&format!(
                        "unable to satisfy dependency '{}' required by {target} (needed by {cause})",
                        miss.depend()
                    )),
                    None => ui::section(&format!(
                        "unable to satisfy dependency '{}' required by {target}",
                        miss.depend()
                    )),
                }
            }
        }
        Some(PrepareData::ConflictingDeps(conflicts)) => {
            for c in conflicts {
                let (a, b) = (c.package1().name(), c.package2().name());
                let reason = c.reason().to_string();
                if reason == a || reason == b {
                    ui::section(&format!("{a} and {b} are in conflict"));
                } else {
                    ui::section(&format!("{a} and {b} are in conflict ({reason})"));
                }
            }
        }
        None => {}
    }
    bail!(crate::ExitQuietly(1))
}

/// pacman's non-verbose summary: `Packages (N) name-ver  …` and the size lines.
fn print_summary(alpm: &Alpm, download_only: bool) {
    let add: Vec<_> = alpm.trans_add().iter().collect();
    let remove: Vec<_> = alpm.trans_remove().iter().collect();
    let mut names: Vec<String> = add
        .iter()
        .map(|p| format!("{}-{}", p.name(), p.version()))
        .collect();
    names.extend(
        remove
            .iter()
            .map(|p| format!("{}-{} [removal]", p.name(), p.version())),
    );
    names.sort();
    let download: i64 = add.iter().map(|p| p.download_size()).sum();
    let installed: i64 = add.iter().map(|p| p.isize()).sum();
    let localdb = alpm.localdb();
    let removed: i64 = add
        .iter()
        .filter_map(|p| localdb.pkg(p.name()).ok())
        .map(|p| p.isize())
        .sum::<i64>()
        + remove.iter().map(|p| p.isize()).sum::<i64>();

    println!();
    println!(
        "{} {}",
        console::style(format!("Packages ({})", names.len())).bold(),
        names.join("  ")
    );
    println!();
    for line in size_table(&size_rows(download, installed, removed, download_only)) {
        println!("{line}");
    }
    println!();
}

/// pacman's size rows (`display_targets`): which appear depends on what the transaction adds
/// and removes, and `-w` shows the download alone.
fn size_rows(
    download: i64,
    installed: i64,
    removed: i64,
    download_only: bool,
) -> Vec<(&'static str, i64)> {
    let mut rows = Vec::new();
    if download > 0 || download_only {
        rows.push(("Total Download Size:", download));
    }
    if !download_only {
        if installed > 0 {
            rows.push(("Total Installed Size:", installed));
        }
        if removed > 0 && installed == 0 {
            rows.push(("Total Removed Size:", removed));
        }
        if installed > 0 && removed > 0 {
            rows.push(("Net Upgrade Size:", installed - removed));
        }
    }
    rows
}

/// pacman's table of them (`table_display`): the labels in bold, left-aligned to the longest,
/// two spaces, the sizes right-aligned to the longest.
fn size_table(rows: &[(&str, i64)]) -> Vec<String> {
    let sizes: Vec<String> = rows.iter().map(|(_, bytes)| ui::mib(*bytes)).collect();
    let label_width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    let size_width = sizes.iter().map(String::len).max().unwrap_or(0);
    rows.iter()
        .zip(&sizes)
        .map(|((label, _), size)| {
            format!(
                "{}  {size:>size_width$}",
                console::style(format!("{label:<label_width$}")).bold()
            )
        })
        .collect()
}

/// The files of the transaction's sync packages, in transaction order.
fn package_files(alpm: &Alpm) -> Vec<PackageFile> {
    alpm.trans_add()
        .iter()
        .filter(|pkg| pkg.origin() == PackageFrom::SyncDb)
        .filter_map(|pkg| {
            let db = pkg.db()?;
            Some(PackageFile {
                filename: pkg.filename()?.to_owned(),
                repo: db.name().to_owned(),
                servers: db.servers().iter().map(str::to_owned).collect(),
                size: u64::try_from(pkg.size()).unwrap_or(0),
                sha256: db_sha256(pkg),
                base64_sig: pkg.base64_sig().map(str::to_owned),
                signature: SignaturePolicy::from_siglevel(db.siglevel()),
            })
        })
        .collect()
}

/// The sha256 the sync database records for a package's file, if it records one.
pub fn db_sha256(pkg: &alpm::Package) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(pkg.sha256sum()?.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_table_is_pacmans() {
        const MIB: i64 = 1024 * 1024;
        // pacman 7.1's table_display: the first as pacman printed it on a terminal.
        let table =
            |rows: (i64, i64, i64, bool)| size_table(&size_rows(rows.0, rows.1, rows.2, rows.3));
        assert_eq!(
            table((5000, 4000, 0, false)),
            [
                "Total Download Size:   0.00 MiB",
                "Total Installed Size:  0.00 MiB",
            ]
        );
        assert_eq!(
            table((27 * MIB, 26 * MIB, 26 * MIB, false)),
            [
                "Total Download Size:   27.00 MiB",
                "Total Installed Size:  26.00 MiB",
                "Net Upgrade Size:       0.00 MiB",
            ]
        );
        assert_eq!(
            table((0, 0, 3 * MIB, false)),
            ["Total Removed Size:  3.00 MiB"]
        );
        assert_eq!(
            table((2 * MIB, 0, 0, true)),
            ["Total Download Size:  2.00 MiB"]
        );
        assert_eq!(
            table((0, MIB, 2 * MIB, false))[1],
            "Net Upgrade Size:      -1.00 MiB"
        );
    }

    #[test]
    fn selections_follow_pacman() {
        assert_eq!(parse_selection("", 3), Some(vec![true, true, true]));
        assert_eq!(parse_selection("1 3", 3), Some(vec![true, false, true]));
        assert_eq!(parse_selection("2-3", 3), Some(vec![false, true, true]));
        assert_eq!(parse_selection("^2", 3), Some(vec![true, false, true]));
        assert_eq!(parse_selection("1-3 ^2", 3), Some(vec![true, false, true]));
        assert_eq!(parse_selection("4", 3), None);
        assert_eq!(parse_selection("0", 3), None);
        assert_eq!(parse_selection("x", 3), None);
    }

    #[test]
    fn signature_policy_from_siglevel() {
        assert_eq!(
            SignaturePolicy::from_siglevel(SigLevel::NONE),
            SignaturePolicy::NotChecked
        );
        assert_eq!(
            SignaturePolicy::from_siglevel(SigLevel::PACKAGE),
            SignaturePolicy::Required
        );
        assert_eq!(
            SignaturePolicy::from_siglevel(SigLevel::PACKAGE | SigLevel::PACKAGE_OPTIONAL),
            SignaturePolicy::Optional
        );
    }
}
