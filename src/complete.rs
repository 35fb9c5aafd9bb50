//! Shell completion, generated from the clap definition at completion time (clap_complete's
//! `CompleteEnv` engine): the scripts in `completions/` only register `pactor` as its own
//! completer, so options, subcommands and paths always match the installed binary, and
//! package and group names come from the databases, as pacman's completion offers them: the
//! sync ones for `-S`, the local one for the operations pactor hands to pacman (`-R`, `-Q`).
//!
//! The operations pactor hands to pacman complete pacman's own options for that operation
//! ([`pacman_command`]): `pactor -R --c<Tab>` offers `--cascade`, never pactor's sync options.
//!
//! The scripts and the binary ship in the same package, which is what keeps the (unstable)
//! protocol between them in step.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate, ValueCompleter};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

use crate::cli::{self, Generate};

/// The environment variable that turns a run into a completion request. clap's default,
/// `COMPLETE`, is generic enough to be set for other reasons, and any value but a shell's name
/// would make every pactor run fail.
const VAR: &str = "PACTOR_COMPLETE";

/// Answers a completion request (`PACTOR_COMPLETE=bash pactor -- …`) and exits; returns
/// otherwise.
pub fn handle_request() {
    clap_complete::CompleteEnv::with_factory(command_for_line)
        .var(VAR)
        .completer("pactor")
        .complete();
}

/// The command line the line being completed is written in: pactor's own for `-S` (and
/// before any operation), pacman's for an operation pactor passes to it.
fn command_for_line() -> clap::Command {
    let op = operation(&completed_words());
    match OPERATIONS.iter().find(|(letter, ..)| *letter == op) {
        Some(&operation) => pacman_command(operation),
        None => cli::command(),
    }
}

/// pacman's operations other than `-S`: letter, long name, what it does.
const OPERATIONS: [(char, &str, &str); 6] = [
    ('R', "remove", "Remove packages from the system"),
    ('Q', "query", "Query the package database"),
    ('U', "upgrade", "Install or upgrade packages from files"),
    ('D', "database", "Modify the package database"),
    ('F', "files", "Query the files database"),
    ('T', "deptest", "Check dependencies"),
];

/// pacman's options, from pacman(8) of pacman 7.1: short letter, long name, value (`""`: a
/// flag), the operations it belongs to (`*`: all of them) and its help.
#[rustfmt::skip]
const PACMAN_OPTIONS: &[[&str; 5]] = &[
    ["b", "dbpath", "PATH", "*", "Set an alternate database location"],
    ["r", "root", "PATH", "*", "Set an alternate installation root"],
    ["v", "verbose", "", "*", "Be verbose"],
    ["", "arch", "ARCH", "*", "Set an alternate architecture"],
    ["", "cachedir", "DIR", "*", "Set an alternate package cache location"],
    ["", "color", "WHEN", "*", "Colorize the output"],
    ["", "config", "PATH", "*", "Set an alternate configuration file"],
    ["", "debug", "", "*", "Display debug messages"],
    ["", "gpgdir", "PATH", "*", "Set an alternate home directory for GnuPG"],
    ["", "hookdir", "DIR", "*", "Set an alternate hook location"],
    ["", "logfile", "PATH", "*", "Set an alternate log file"],
    ["", "noconfirm", "", "*", "Do not ask for any confirmation"],
    ["", "confirm", "", "*", "Always ask for confirmation"],
    ["", "disable-download-timeout", "", "*", "Use relaxed timeouts for downloads"],
    ["", "sysroot", "DIR", "*", "Operate on a mounted guest system (root-only)"],
    ["d", "nodeps", "", "RU", "Skip dependency version checks (-dd to skip all)"],
    ["", "assume-installed", "PKG=VER", "RU", "Add a virtual package to satisfy dependencies"],
    ["", "dbonly", "", "RU", "Only modify database entries, not package files"],
    ["", "noprogressbar", "", "RU", "Do not show a progress bar when downloading files"],
    ["", "noscriptlet", "", "RU", "Do not execute the install scriptlet if one exists"],
    ["p", "print", "", "RU", "Print the targets instead of performing the operation"],
    ["", "print-format", "FORMAT", "RU", "Specify how the targets should be printed"],
    ["c", "cascade", "", "R", "Remove packages and all packages that depend on them"],
    ["n", "nosave", "", "R", "Remove configuration files"],
    ["s", "recursive", "", "R", "Remove unnecessary dependencies (-ss: explicit ones too)"],
    ["u", "unneeded", "", "R", "Remove unneeded packages"],
    ["", "asdeps", "", "UD", "Install packages as non-explicitly installed"],
    ["", "asexplicit", "", "UD", "Install packages as explicitly installed"],
    ["", "ignore", "PKG", "U", "Ignore a package upgrade (can be used more than once)"],
    ["", "ignoregroup", "GRP", "U", "Ignore a group upgrade (can be used more than once)"],
    ["", "needed", "", "U", "Do not reinstall up-to-date packages"],
    ["", "overwrite", "GLOB", "U", "Overwrite conflicting files (can be used more than once)"],
    ["c", "changelog", "", "Q", "View the changelog of a package"],
    ["d", "deps", "", "Q", "List packages installed as dependencies"],
    ["e", "explicit", "", "Q", "List packages explicitly installed"],
    ["g", "groups", "", "Q", "View all members of a package group"],
    ["i", "info", "", "Q", "View package information (-ii for backup files)"],
    ["k", "check", "", "QD", "Check that package files exist (-kk for file properties)"],
    ["l", "list", "", "QF", "List the files owned by the queried package"],
    ["m", "foreign", "", "Q", "List installed packages not found in sync databases"],
    ["n", "native", "", "Q", "List installed packages only found in sync databases"],
    ["o", "owns", "", "Q", "Query the package that owns a file"],
    ["p", "file", "", "Q", "Query a package file instead of the database"],
    ["q", "quiet", "", "QDF", "Show less information"],
    ["s", "search", "", "Q", "Search locally installed packages for matching strings"],
    ["t", "unrequired", "", "Q", "List packages not required by any package (-tt: optional)"],
    ["u", "upgrades", "", "Q", "List outdated packages"],
    ["y", "refresh", "", "F", "Download fresh files databases (-yy to force)"],
    ["x", "regex", "", "F", "Interpret each query as a regular expression"],
    ["", "machinereadable", "", "F", "Produce machine-readable output"],
];

/// pacman's command line for one of [`OPERATIONS`], as far as completion needs it: the
/// operation, its options and pacman's general ones, and targets completed as pacman's own
/// completion does.
fn pacman_command((op, long, about): (char, &'static str, &'static str)) -> clap::Command {
    use clap::{Arg, ArgAction, ValueHint};
    let mut cmd = clap::Command::new("pactor").disable_version_flag(true).arg(
        Arg::new(long)
            .short(op)
            .long(long)
            .help(about)
            .action(ArgAction::Count)
            .hide(true),
    );
    for &[short, name, value, ops, help] in PACMAN_OPTIONS {
        if ops != "*" && !ops.contains(op) {
            continue;
        }
        let mut arg = Arg::new(name).long(name).help(help);
        if let Some(short) = short.chars().next() {
            arg = arg.short(short);
        }
        arg = match value {
            "" => arg.action(ArgAction::Count),
            "PATH" => arg.value_name(value).value_hint(ValueHint::AnyPath),
            "DIR" => arg.value_name(value).value_hint(ValueHint::DirPath),
            "PKG" => arg.value_name(value).add(ArgValueCompleter::new(packages)),
            "GRP" => arg.value_name(value).add(ArgValueCompleter::new(groups)),
            _ => arg.value_name(value),
        };
        if !value.is_empty() {
            arg = arg.action(ArgAction::Append);
        }
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("targets")
            .value_name("TARGET")
            .num_args(0..)
            .add(ArgValueCompleter::new(targets)),
    )
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
    let is_operation = |letter: char| letter == 'S' || OPERATIONS.iter().any(|op| op.0 == letter);
    for word in words.iter().skip(1).filter_map(|w| w.to_str()) {
        if word == "--" {
            break;
        }
        if word == "--sync" {
            return 'S';
        }
        if let Some(&(op, ..)) = OPERATIONS
            .iter()
            .find(|(_, long, _)| word.strip_prefix("--") == Some(*long))
        {
            return op;
        }
        if let Some(letters) = word.strip_prefix('-').filter(|l| !l.starts_with('-'))
            && let Some(op) = letters.chars().find(|c| is_operation(*c))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operations_command_is_well_formed() {
        // clap's own checks: no short or long name twice within one operation's options.
        for operation in OPERATIONS {
            pacman_command(operation).debug_assert();
        }
    }
}
