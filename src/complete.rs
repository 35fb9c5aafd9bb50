//! Shell completion, generated from the clap definition at completion time (clap_complete's
//! `CompleteEnv` engine): the scripts in `completions/` only register `pactor` as its own
//! completer, so options, subcommands and paths always match the installed binary, and
//! package and group names come from the databases, as pacman's completion offers them: the
//! sync ones for `-S`, the local one for the operations pactor hands to pacman (`-R`, `-Q`).
//!
//! The scripts and the binary ship in the same package, which is what keeps the (unstable)
//! protocol between them in step.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap_complete::engine::{CompletionCandidate, ValueCompleter};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

use crate::cli::{self, Generate};

/// The environment variable that turns a run into a completion request. clap's default,
/// `COMPLETE`, is generic enough to be set for other reasons, and any value but a shell's name
/// would make every pactor run fail.
const VAR: &str = "PACTOR_COMPLETE";

/// Answers a completion request (`PACTOR_COMPLETE=bash pactor -- …`) and exits; returns
/// otherwise.
pub fn handle_request() {
    clap_complete::CompleteEnv::with_factory(cli::command)
        .var(VAR)
        .completer("pactor")
        .complete();
}

/// Writes the registration script for a shell (what `completions/` holds).
pub fn write_registration(kind: Generate, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let shell: &dyn EnvCompleter = match kind {
        Generate::CompleteBash => &Bash,
        Generate::CompleteZsh => &Zsh,
        Generate::CompleteFish => &Fish,
        _ => unreachable!("not a shell: {kind:?}"),
    };
    let mut script = Vec::new();
    shell.write_registration(VAR, "pactor", "pactor", "pactor", &mut script)?;
    let mut script = String::from_utf8(script).expect("scripts are text");
    if kind == Generate::CompleteZsh {
        // clap_complete writes a script to `source`; installed as `_pactor` in a fpath
        // directory, zsh autoloads it as the completion function itself on the first <Tab>,
        // so it must also complete that first time (as clap's static zsh scripts do).
        let register = "compdef _clap_dynamic_completer_pactor pactor";
        assert!(
            script.contains(register),
            "clap_complete's zsh script changed"
        );
        script = script.replace(
            register,
            "if [ \"$funcstack[1]\" = \"_pactor\" ]; then\n    \
             _clap_dynamic_completer_pactor \"$@\"\nelse\n    \
             compdef _clap_dynamic_completer_pactor pactor\nfi",
        );
    }
    out.write_all(script.as_bytes())
}

/// Targets, for the operation on the line being completed, as pacman's own completion offers
/// them: for `-S`, package names, `repo/name` and group names; for the operations pactor
/// passes to pacman, installed packages (`-R`, `-Q`, `-D`), package files (`-U`) or sync
/// packages (`-F`, `-T`).
pub fn targets(current: &OsStr) -> Vec<CompletionCandidate> {
    match operation(&completed_words()) {
        'R' | 'Q' | 'D' => installed(current),
        'U' => clap_complete::engine::PathCompleter::file().complete(current),
        'F' | 'T' => packages(current),
        _ => {
            let mut out = packages(current);
            out.extend(groups(current));
            out
        }
    }
}

/// The operation letter of a pacman command line (`S` for `-Syu` or `--sync`); `S` when
/// there is none yet, since that is what pactor itself runs.
fn operation(words: &[OsString]) -> char {
    const LONG: [(&str, char); 7] = [
        ("--sync", 'S'),
        ("--remove", 'R'),
        ("--query", 'Q'),
        ("--upgrade", 'U'),
        ("--database", 'D'),
        ("--files", 'F'),
        ("--deptest", 'T'),
    ];
    for word in words.iter().skip(1).filter_map(|w| w.to_str()) {
        if word == "--" {
            break;
        }
        if let Some(&(_, op)) = LONG.iter().find(|(long, _)| *long == word) {
            return op;
        }
        if let Some(letters) = word.strip_prefix('-').filter(|l| !l.starts_with('-'))
            && let Some(op) = letters.chars().find(|c| "SRQUDFT".contains(*c))
        {
            return op;
        }
    }
    'S'
}

/// Installed package names, from the local database.
fn installed(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let Some(alpm) = databases() else {
        return Vec::new();
    };
    alpm.localdb()
        .pkgs()
        .iter()
        .filter(|pkg| pkg.name().starts_with(current))
        .map(|pkg| {
            let help = pkg.desc().map(|d| d.to_owned().into());
            CompletionCandidate::new(pkg.name()).help(help)
        })
        .collect()
}

/// Package names from the sync databases (with `repo/` when the word has a slash), with
/// their descriptions for the shells that show them.
pub fn packages(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let Some(alpm) = databases() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for db in alpm.syncdbs() {
        for pkg in db.pkgs() {
            let value = match current.split_once('/') {
                Some((repo, _)) if repo == db.name() => format!("{}/{}", db.name(), pkg.name()),
                Some(_) => continue,
                None => pkg.name().to_owned(),
            };
            if value.starts_with(current) {
                let help = pkg.desc().map(|d| d.to_owned().into());
                out.push(CompletionCandidate::new(value).help(help));
            }
        }
    }
    out
}

/// Group names from the sync databases.
pub fn groups(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let Some(alpm) = databases() else {
        return Vec::new();
    };
    let mut names: Vec<String> = alpm
        .syncdbs()
        .iter()
        .filter_map(|db| db.groups().ok())
        .flat_map(|groups| {
            groups
                .iter()
                .map(|g| g.name().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|name| name.starts_with(current))
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| CompletionCandidate::new(name).help(Some("group".into())))
        .collect()
}

/// An alpm handle on the databases the command line being completed would use: its
/// `--config`, `--root` and `--dbpath` are honoured. Any failure means no candidates: a
/// completion must never print errors into the shell's line.
fn databases() -> Option<alpm::Alpm> {
    let words = completed_words();
    let value_of = |names: &[&str]| -> Option<PathBuf> {
        let mut found = None;
        for (i, word) in words.iter().enumerate() {
            let Some(word) = word.to_str() else { continue };
            for name in names {
                if word == *name {
                    found = words.get(i + 1).map(PathBuf::from);
                } else if let Some(value) = word
                    .strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('='))
                {
                    found = Some(PathBuf::from(value));
                }
            }
        }
        found
    };
    let mut pacman = crate::handle::PacmanConfig::read(
        value_of(&["--config"]).as_deref(),
        value_of(&["--root", "-r"]).as_deref(),
    )
    .ok()?;
    if let Some(dbpath) = value_of(&["--dbpath", "-b"]) {
        pacman.conf.db_path = dbpath.to_string_lossy().into_owned();
    }
    pacman.alpm().ok()
}

/// The words of the command line being completed: what follows `--` in pactor's own argv.
fn completed_words() -> Vec<OsString> {
    std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .collect()
}
