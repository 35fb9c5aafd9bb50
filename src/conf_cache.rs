//! pacman-conf's answer, remembered between runs. pacman.conf is read through `pacman-conf`
//! (so Includes, globs and `--root` resolve exactly as for pacman), but running it costs
//! 8-10 ms on an idle machine, an exec that loads libalpm and the 49 libraries it brings: a
//! quarter of a whole `pacman -Syu` with nothing to do (BENCHMARKS.md). Its output depends
//! only on its arguments, the pacman-conf binary and the files it reads, so the output is kept
//! in `StateDir` with the identity of each of those files (and of each directory an Include
//! glob expands in, whose mtime moves when a file is added or removed there), and reused while
//! none of them changed.
//!
//! The record steers how pactor configures alpm, so only a record written by this user and
//! writable by nobody else is believed; anything else is ignored and rewritten.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::proven::{Identity, identity};

const RECORD: &str = "pacman-conf.cache";
const VERSION: u32 = 1;
/// pacman-conf's default, when pactor is given no `--config`.
const DEFAULT_CONFIG: &str = "/etc/pacman.conf";
/// Include chains deeper than this are not followed (pacman.conf has one level in practice).
const MAX_DEPTH: usize = 8;

#[derive(Serialize, Deserialize, PartialEq)]
struct Record {
    version: u32,
    /// The arguments pacman-conf was run with.
    #[serde(with = "serde_bytes")]
    config: Vec<u8>,
    #[serde(with = "serde_bytes")]
    root: Vec<u8>,
    /// The files and directories the output depends on, pacman-conf's binary first.
    inputs: Vec<Input>,
    output: String,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct Input {
    #[serde(with = "serde_bytes")]
    path: Vec<u8>,
    identity: Identity,
}

/// pacman-conf's output for `config` and `root`: remembered in `state_dir` when nothing it
/// depends on changed, else from pacman-conf (and then remembered).
pub fn expand(
    config: Option<&Path>,
    root: Option<&Path>,
    state_dir: &Path,
) -> Result<String, pacmanconf::Error> {
    let config = config.unwrap_or(Path::new(DEFAULT_CONFIG));
    let root_bytes = root.map_or(Vec::new(), |r| r.as_os_str().as_bytes().to_vec());
    let record_path = state_dir.join(RECORD);
    if let Some(record) = load(&record_path)
        && record.config == config.as_os_str().as_bytes()
        && record.root == root_bytes
        && record.inputs.iter().all(Input::unchanged)
    {
        return Ok(record.output);
    }
    let mut options = pacmanconf::Config::options();
    options.pacman_conf(config.to_string_lossy());
    if let Some(root) = root {
        options.root_dir(root.to_string_lossy());
    }
    let output = options.expand()?;
    if let Some(inputs) = inputs(config) {
        let record = Record {
            version: VERSION,
            config: config.as_os_str().as_bytes().to_vec(),
            root: root_bytes,
            inputs,
            output: output.clone(),
        };
        if let Ok(bytes) = serde_bencode::to_bytes(&record) {
            // Best effort: a state dir we cannot write only costs the exec next time.
            let _ = std::fs::create_dir_all(state_dir)
                .map_err(anyhow::Error::from)
                .and_then(|_| crate::atomic_write::write(&record_path, &bytes));
        }
    }
    Ok(output)
}

impl Input {
    fn new(path: &Path) -> Option<Input> {
        Some(Input {
            path: path.as_os_str().as_bytes().to_vec(),
            identity: any_identity(path)?,
        })
    }

    fn unchanged(&self) -> bool {
        any_identity(Path::new(OsStr::from_bytes(&self.path))) == Some(self.identity)
    }
}

/// A record this user wrote and nobody else can change, that parses.
fn load(path: &Path) -> Option<Record> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let ours = meta.file_type().is_file()
        && meta.uid() == unsafe { libc::geteuid() }
        && meta.mode() & 0o022 == 0;
    if !ours {
        return None;
    }
    let record: Record = crate::bencode::decode(&std::fs::read(path).ok()?).ok()?;
    (record.version == VERSION).then_some(record)
}

/// Everything pacman-conf's output for `config` depends on: its binary, the config file, the
/// files it includes (recursively) and the directories their globs expand in. `None` when that
/// cannot be told (a glob in a directory part, an unreadable file): then nothing is remembered.
fn inputs(config: &Path) -> Option<Vec<Input>> {
    let mut out = vec![Input::new(&pacman_conf_binary()?)?];
    let mut pending = vec![(config.to_owned(), 0)];
    while let Some((file, depth)) = pending.pop() {
        if depth > MAX_DEPTH || out.iter().any(|i| i.path == file.as_os_str().as_bytes()) {
            continue;
        }
        out.push(Input::new(&file)?);
        let text = std::fs::read_to_string(&file).ok()?;
        for pattern in includes(&text) {
            let pattern = Path::new(pattern);
            let dir = pattern.parent()?;
            if has_glob(dir.as_os_str()) {
                return None;
            }
            out.push(Input::new(dir)?);
            for matched in glob(pattern)? {
                pending.push((matched, depth + 1));
            }
        }
    }
    Some(out)
}

/// The values of `Include` directives, in any section (pacman reads them everywhere).
fn includes(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|line| {
        let content = line.split_once('#').map_or(line, |(before, _)| before);
        let (key, value) = content.split_once('=')?;
        (key.trim() == "Include").then(|| value.trim())
    })
}

fn has_glob(s: &OsStr) -> bool {
    s.as_bytes().iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// The files matching `pattern`, as pacman expands it (glob(3)); a pattern that matches
/// nothing is kept as it is, as pacman keeps it.
fn glob(pattern: &Path) -> Option<Vec<PathBuf>> {
    let c_pattern = CString::new(pattern.as_os_str().as_bytes()).ok()?;
    // SAFETY: glob_t is plain data; glob fills it and globfree releases what it allocated.
    let mut found: libc::glob_t = unsafe { std::mem::zeroed() };
    let status = unsafe { libc::glob(c_pattern.as_ptr(), libc::GLOB_NOCHECK, None, &mut found) };
    let mut out = Vec::new();
    if status == 0 {
        for i in 0..found.gl_pathc {
            // SAFETY: glob returned gl_pathc valid C strings in gl_pathv.
            let path = unsafe { std::ffi::CStr::from_ptr(*found.gl_pathv.add(i)) };
            out.push(PathBuf::from(OsString::from_vec(path.to_bytes().to_vec())));
        }
    }
    unsafe { libc::globfree(&mut found) };
    (status == 0).then_some(out)
}

/// The pacman-conf that `pacmanconf` runs: the first on PATH.
fn pacman_conf_binary() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("pacman-conf"))
        .find(|path| path.is_file())
}

/// A file's or a directory's identity (the directory's mtime moves when entries come or go).
fn any_identity(path: &Path) -> Option<Identity> {
    if path.is_dir() {
        crate::proven::dir_identity(path)
    } else {
        identity(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_are_found_in_any_section_without_comments() {
        let text = "[options]\nInclude = /etc/a.conf # comment\n#Include = /no\n[core]\n  Include=/etc/pacman.d/mirrorlist\nServer = x\n";
        assert_eq!(
            includes(text).collect::<Vec<_>>(),
            ["/etc/a.conf", "/etc/pacman.d/mirrorlist"]
        );
    }

    /// A pacman.conf (with every directory pacman-conf resolves) including a glob of files.
    fn conf_with_includes(dir: &Path) -> PathBuf {
        for sub in ["root", "db", "cache", "gpg", "hooks", "conf.d"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(
            dir.join("conf.d/core.conf"),
            "[core]\nServer = http://a/$repo\n",
        )
        .unwrap();
        let conf = dir.join("pacman.conf");
        std::fs::write(
            &conf,
            format!(
                "[options]\nRootDir = {d}/root\nDBPath = {d}/db\nCacheDir = {d}/cache\n\
                 GPGDir = {d}/gpg\nHookDir = {d}/hooks\nArchitecture = x86_64\n\
                 Include = {d}/conf.d/*.conf\n",
                d = dir.display()
            ),
        )
        .unwrap();
        conf
    }

    /// Rewrites the remembered output, to tell a remembered answer from pacman-conf's.
    fn tamper(state: &Path) {
        let path = state.join(RECORD);
        let mut record: Record = serde_bencode::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        record.output.push_str("# remembered\n");
        std::fs::write(&path, serde_bencode::to_bytes(&record).unwrap()).unwrap();
    }

    #[test]
    fn the_answer_is_remembered_until_an_input_changes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let conf = conf_with_includes(dir.path());
        let fresh = expand(Some(&conf), None, &state).unwrap();
        assert!(fresh.contains("Server = http://a/core"), "{fresh}");

        tamper(&state);
        let again = expand(Some(&conf), None, &state).unwrap();
        assert!(again.ends_with("# remembered\n"), "the record was used");
        assert!(
            !expand(Some(&conf), Some(&dir.path().join("root")), &state)
                .unwrap()
                .contains("# remembered"),
            "other arguments, another answer"
        );

        // An included file rewritten: asked again.
        tamper(&state);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(
            dir.path().join("conf.d/core.conf"),
            "[core]\nServer = http://b/$repo\n",
        )
        .unwrap();
        let changed = expand(Some(&conf), None, &state).unwrap();
        assert!(changed.contains("http://b/core") && !changed.contains("# remembered"));

        // A new file matching the glob: asked again.
        tamper(&state);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(
            dir.path().join("conf.d/extra.conf"),
            "[extra]\nServer = http://c/$repo\n",
        )
        .unwrap();
        let added = expand(Some(&conf), None, &state).unwrap();
        assert!(added.contains("[extra]") && !added.contains("# remembered"));

        // A record others could have written is not believed.
        tamper(&state);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state.join(RECORD), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        assert!(
            !expand(Some(&conf), None, &state)
                .unwrap()
                .contains("# remembered")
        );
    }

    #[test]
    fn globs_expand_like_pacman() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.conf"), "").unwrap();
        std::fs::write(dir.path().join("a.conf"), "").unwrap();
        std::fs::write(dir.path().join("c.txt"), "").unwrap();
        let found = glob(&dir.path().join("*.conf")).unwrap();
        assert_eq!(
            found,
            [dir.path().join("a.conf"), dir.path().join("b.conf")]
        );
        // No match: the pattern itself, as pacman reads it (and fails on it).
        let none = dir.path().join("*.none");
        assert_eq!(glob(&none).unwrap(), [none]);
    }
}
