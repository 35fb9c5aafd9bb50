//! alpm's callbacks, answered and printed the way pacman does: the log, questions (with
//! pacman's defaults), transaction events, commit progress and database refresh lines.

use alpm::{
    Alpm, AnyDownloadEvent, AnyEvent, AnyQuestion, DownloadEvent, DownloadResult, Event, HookWhen,
    LogLevel, PackageOperation, Progress, Question,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::ui::{self, Ui};

/// Installs every callback pactor needs before a transaction.
pub fn install(alpm: &Alpm, debug: bool) {
    alpm.set_log_cb(debug, log);
    alpm.set_question_cb((), |question, _| answer(question));
    alpm.set_event_cb((), |event, _| on_event(event));
    alpm.set_progress_cb(CommitBar::default(), on_progress);
    alpm.set_dl_cb((), |file, event, _| on_db_download(file, event));
}

fn log(level: LogLevel, message: &str, debug: &mut bool) {
    if level.contains(LogLevel::ERROR) {
        ui::error(message);
    } else if level.contains(LogLevel::WARNING) {
        ui::warning(message);
    } else if *debug && level.intersects(LogLevel::DEBUG | LogLevel::FUNCTION) {
        eprint!("debug: {message}");
    }
}

/// pacman's answers: ignorepkg, replace, corrupted and import-key default to yes; conflicts
/// and removals to no; a provider is chosen from a numbered list, first by default.
fn answer(question: AnyQuestion) {
    match question.question() {
        Question::InstallIgnorepkg(mut q) => {
            let prompt = format!(
                "{} is in IgnorePkg/IgnoreGroup. Install anyway?",
                q.pkg().name()
            );
            q.set_install(ui::confirm(&prompt, true));
        }
        Question::Replace(q) => {
            let prompt = format!(
                "Replace {} with {}/{}?",
                q.oldpkg().name(),
                q.newdb().name(),
                q.newpkg().name()
            );
            q.set_replace(ui::confirm(&prompt, true));
        }
        Question::Conflict(mut q) => {
            let conflict = q.conflict();
            let (a, b) = (conflict.package1().name(), conflict.package2().name());
            let reason = conflict.reason().name();
            let prompt = if reason == a || reason == b {
                format!("{a} and {b} are in conflict. Remove {b}?")
            } else {
                format!("{a} and {b} are in conflict ({reason}). Remove {b}?")
            };
            q.set_remove(ui::confirm(&prompt, false));
        }
        Question::Corrupted(mut q) => {
            let prompt = format!(
                "File {} is corrupted ({}).\nDo you want to delete it?",
                q.filepath(),
                q.reason()
            );
            q.set_remove(ui::confirm(&prompt, true));
        }
        Question::RemovePkgs(mut q) => {
            let names: Vec<_> = q.packages().iter().map(|p| p.name().to_owned()).collect();
            ui::section(&format!(
                "The following package{} cannot be upgraded due to unresolvable dependencies:",
                if names.len() == 1 { "" } else { "s" }
            ));
            println!("      {}\n", names.join("  "));
            q.set_skip(ui::confirm(
                "Do you want to skip the above package for this upgrade?",
                false,
            ));
        }
        Question::SelectProvider(mut q) => {
            let providers: Vec<_> = q.providers().iter().collect();
            ui::section(&format!(
                "There are {} providers available for {}:",
                providers.len(),
                q.depend()
            ));
            let items: Vec<(&str, &str)> = providers
                .iter()
                .map(|p| (p.db().map(|d| d.name()).unwrap_or_default(), p.name()))
                .collect();
            ui::numbered_by_repo(&items);
            let choice = ui::select_number("Enter a number (default=1): ", providers.len());
            q.set_index(choice.unwrap_or(0) as i32);
        }
        Question::ImportKey(mut q) => {
            // alpm 5.0.2's `uid()` dereferences the NULL uid alpm passes for database
            // signatures, and the pointer is private: ask with the fingerprint alone, as pacman
            // does when it has no uid.
            let prompt = format!("Import PGP key {}?", q.fingerprint());
            q.set_import(ui::confirm(&prompt, true));
        }
    }
}

fn on_event(event: AnyEvent) {
    let quiet_phase = |text: &str| println!("{text}");
    match event.event() {
        Event::CheckDepsStart => quiet_phase("checking dependencies..."),
        Event::ResolveDepsStart => quiet_phase("resolving dependencies..."),
        Event::InterConflictsStart => quiet_phase("looking for conflicting packages..."),
        Event::TransactionStart => ui::section("Processing package changes..."),
        Event::KeyringStart if !Ui::get().progress_bars => quiet_phase("checking keyring..."),
        Event::IntegrityStart if !Ui::get().progress_bars => {
            quiet_phase("checking package integrity...")
        }
        Event::LoadStart if !Ui::get().progress_bars => quiet_phase("loading package files..."),
        Event::FileConflictsStart if !Ui::get().progress_bars => {
            quiet_phase("checking for file conflicts...")
        }
        Event::DiskSpaceStart if !Ui::get().progress_bars => {
            quiet_phase("checking available disk space...")
        }
        Event::PackageOperationStart(op) if !Ui::get().progress_bars => {
            let (verb, name) = match op.operation() {
                PackageOperation::Install(p) => ("installing", p.name()),
                PackageOperation::Upgrade(_, p) => ("upgrading", p.name()),
                PackageOperation::Reinstall(_, p) => ("reinstalling", p.name()),
                PackageOperation::Downgrade(_, p) => ("downgrading", p.name()),
                PackageOperation::Remove(p) => ("removing", p.name()),
            };
            println!("{verb} {name}...");
        }
        Event::ScriptletInfo(info) => print!("{}", info.line()),
        Event::HookStart(hook) => {
            let when = match hook.when() {
                HookWhen::PreTransaction => "pre",
                HookWhen::PostTransaction => "post",
            };
            ui::section(&format!("Running {when}-transaction hooks..."));
        }
        Event::HookRunStart(run) => {
            let desc = run.desc().unwrap_or(run.name());
            println!("({}/{}) {desc}", run.position(), run.total());
        }
        Event::PacnewCreated(e) => {
            ui::warning(&format!("{} installed as {}.pacnew", e.file(), e.file()))
        }
        Event::PacsaveCreated(e) => {
            ui::warning(&format!("{} saved as {}.pacsave", e.file(), e.file()))
        }
        Event::DatabaseMissing(e) => ui::warning(&format!(
            "database file for '{}' does not exist (use '-Sy' to download)",
            e.dbname()
        )),
        Event::OptDepRemoval(e) => ui::warning(&format!(
            "{} optionally requires {}",
            e.pkg().name(),
            e.optdep()
        )),
        _ => {}
    }
}

/// The commit's progress bar on a terminal: one line per package operation, like pacman's.
#[derive(Default)]
struct CommitBar {
    bar: Option<(Progress, String, ProgressBar)>,
}

fn on_progress(
    progress: Progress,
    pkg: &str,
    percent: i32,
    howmany: usize,
    current: usize,
    state: &mut CommitBar,
) {
    if !Ui::get().progress_bars {
        return;
    }
    let label = match progress {
        Progress::AddStart => format!("installing {pkg}"),
        Progress::UpgradeStart => format!("upgrading {pkg}"),
        Progress::DowngradeStart => format!("downgrading {pkg}"),
        Progress::ReinstallStart => format!("reinstalling {pkg}"),
        Progress::RemoveStart => format!("removing {pkg}"),
        Progress::ConflictsStart => "checking for file conflicts".into(),
        Progress::DiskspaceStart => "checking available disk space".into(),
        Progress::IntegrityStart => "checking package integrity".into(),
        Progress::KeyringStart => "checking keys in keyring".into(),
        Progress::LoadStart => "loading package files".into(),
    };
    let same = matches!(&state.bar, Some((p, l, _)) if *p == progress && *l == label);
    if !same {
        if let Some((_, _, bar)) = state.bar.take().filter(|(_, _, b)| !b.is_finished()) {
            bar.finish();
        }
        let bar = ProgressBar::new(100).with_style(
            ProgressStyle::with_template("{prefix} {wide_msg} [{bar:40}] {pos:>3}%")
                .expect("static template")
                .progress_chars("#-"),
        );
        bar.set_message(label.clone());
        state.bar = Some((progress, label, bar));
    }
    if let Some((_, _, bar)) = &state.bar {
        // alpm repeats the final callback; a finished bar must not be drawn again.
        if bar.is_finished() {
            return;
        }
        // pacman counts packages done for the checks (so "(2/2) checking ...") and the
        // package's position for installs.
        bar.set_prefix(format!(
            "({}/{howmany})",
            current.max(1).min(howmany.max(1))
        ));
        bar.set_position(percent.clamp(0, 100) as u64);
        if percent >= 100 {
            bar.finish();
        }
    }
}

/// Database refresh lines (`-y`). Without progress bars, pacman's: a line as each download
/// starts, and nothing for a database that is up to date (alpm starts no download for it).
/// With them, the last state of pacman's bar for each database, one line each.
fn on_db_download(file: &str, event: AnyDownloadEvent) {
    let name = file
        .strip_suffix(".db")
        .or_else(|| file.strip_suffix(".files"))
        .unwrap_or(file);
    if file.ends_with(".sig") {
        return;
    }
    let bars = crate::ui::Ui::get().progress_bars;
    match event.event() {
        DownloadEvent::Init(_) if !bars => println!(" {name} downloading..."),
        DownloadEvent::Completed(done) if bars => match done.result {
            DownloadResult::UpToDate => println!(" {name} is up to date"),
            DownloadResult::Success => println!(" {name} downloaded"),
            DownloadResult::Failed => {}
        },
        _ => {}
    }
}
