//! pactor's own settings, `/etc/pactor.conf`, in pacman.conf's dialect.
//!
//! The dialect is pacman's (sections, `Key = Value`, bare flags, `#` comments, repeatable keys)
//! so that an Arch user reads it without a manual. It is small enough that a hand-written
//! reader with exact file:line errors serves better than a generic INI crate, none of which
//! accept pacman's bare flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A broken pactor.conf: always names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}, line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The settings pactor reads from pactor.conf, with their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Time allowed to establish a connection to a mirror before trying the next one.
    pub connect_timeout: Duration,
    /// Time a mirror may send nothing (headers or body) before the next one is tried.
    pub idle_timeout: Duration,
    /// Parallel file downloads; `None` means pacman.conf's `ParallelDownloads`.
    pub parallel_downloads: Option<usize>,
    /// Where to fetch `<repo>.torrents` (`$repo`, `$arch` expanded); empty: the repo's servers.
    pub torrent_indexes: Vec<String>,
    /// Trackers announced to in addition to the index's.
    pub trackers: Vec<String>,
    /// Peers always tried (`host:port`), e.g. a LAN seedbox.
    pub peers: Vec<String>,
    /// Port for incoming peers; 0 picks a free one.
    pub listen_port: u16,
    pub dht: bool,
    pub lsd: bool,
    /// A swarm that delivers nothing for this long hands the file to the mirrors.
    pub stall_timeout: Duration,
    pub max_upload_rate: Option<u32>,
    pub max_download_rate: Option<u32>,
    /// Keep serving just-fetched files to peers while the commit runs.
    pub seed_while_installing: bool,
    /// Where `pactor serve` gets databases and files.
    pub upstream: Upstream,
}

/// `pactor serve`'s upstream servers, as URL templates with `$repo` and `$arch`: `Upstream =`
/// lines and included mirrorlists (their `Server =` lines). Those of `[options]` serve every
/// repo; a `[repo]` section gives that repo its own list instead.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Upstream {
    pub all: Vec<String>,
    pub repos: BTreeMap<String, Vec<String>>,
}

impl Upstream {
    /// The templates configured for `repo`: its own section's, else the global ones.
    pub fn for_repo(&self, repo: &str) -> &[String] {
        self.repos.get(repo).map_or(&self.all, Vec::as_slice)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            parallel_downloads: None,
            torrent_indexes: Vec::new(),
            trackers: Vec::new(),
            peers: Vec::new(),
            listen_port: 0,
            dht: false,
            lsd: false,
            stall_timeout: Duration::from_secs(5),
            max_upload_rate: None,
            max_download_rate: None,
            seed_while_installing: true,
            upstream: Upstream::default(),
        }
    }
}

impl Settings {
    /// Reads `path`. A missing file is fine when it is the default location (`optional`).
    pub fn load(path: &Path, optional: bool) -> Result<Settings, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Settings::parse(&text, path),
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Settings::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses pactor.conf text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let mut settings = Settings::default();
        for entry in entries(text) {
            let entry = entry.map_err(|(line, message)| ConfigError::Syntax {
                path: path.to_owned(),
                line,
                message,
            })?;
            let syntax = |message: String| ConfigError::Syntax {
                path: path.to_owned(),
                line: entry.line,
                message,
            };
            let value = || {
                entry
                    .value
                    .ok_or_else(|| syntax(format!("option '{}' needs a value", entry.key)))
            };
            if entry.section != "options" {
                // A repo section: only where `pactor serve` gets that repo from.
                let servers = settings
                    .upstream
                    .repos
                    .entry(entry.section.to_owned())
                    .or_default();
                match entry.key {
                    "Upstream" => servers.push(value()?.to_owned()),
                    "Include" => servers.extend(mirrorlist(value()?).map_err(syntax)?),
                    other => {
                        return Err(syntax(format!(
                            "unknown option '{other}' in repository section [{}] (Upstream and Include are allowed)",
                            entry.section
                        )));
                    }
                }
                continue;
            }
            match entry.key {
                "Upstream" => settings.upstream.all.push(value()?.to_owned()),
                "Include" => settings
                    .upstream
                    .all
                    .extend(mirrorlist(value()?).map_err(syntax)?),
                "ConnectTimeout" => settings.connect_timeout = seconds(value()?).map_err(syntax)?,
                "IdleTimeout" => settings.idle_timeout = seconds(value()?).map_err(syntax)?,
                "ParallelDownloads" => {
                    let n = value()?
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| syntax("ParallelDownloads must be 1 to 64".into()))?;
                    settings.parallel_downloads = Some(n);
                }
                "TorrentIndex" => settings.torrent_indexes.push(value()?.to_owned()),
                "Tracker" => settings.trackers.push(value()?.to_owned()),
                "Peer" => settings.peers.push(value()?.to_owned()),
                "ListenPort" => {
                    settings.listen_port = value()?
                        .parse()
                        .map_err(|_| syntax("ListenPort must be 0 to 65535".into()))?;
                }
                "DHT" => settings.dht = flag(entry.value).map_err(syntax)?,
                "LSD" => settings.lsd = flag(entry.value).map_err(syntax)?,
                "SeedWhileInstalling" => {
                    settings.seed_while_installing = flag(entry.value).map_err(syntax)?
                }
                "StallTimeout" => settings.stall_timeout = seconds(value()?).map_err(syntax)?,
                "MaxUploadRate" => settings.max_upload_rate = Some(rate(value()?).map_err(syntax)?),
                "MaxDownloadRate" => {
                    settings.max_download_rate = Some(rate(value()?).map_err(syntax)?)
                }
                other => tracing::warn!(
                    "{}:{}: unknown option '{other}' ignored",
                    path.display(),
                    entry.line
                ),
            }
        }
        Ok(settings)
    }
}

/// The `Server =` URLs of a pacman mirrorlist, in order.
fn mirrorlist(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read mirrorlist {path}: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|raw| {
            let content = raw.split_once('#').map_or(raw, |(before, _)| before);
            let (key, value) = content.split_once('=')?;
            (key.trim() == "Server" && !value.trim().is_empty()).then(|| value.trim().to_owned())
        })
        .collect())
}

fn seconds(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("'{value}' is not a number of seconds (0 to 86400)"))
}

/// A bare flag (`DHT`) means yes; `DHT = no` spells it out.
fn flag(value: Option<&str>) -> Result<bool, String> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("yes" | "true" | "on" | "1") => Ok(true),
        Some("no" | "false" | "off" | "0") => Ok(false),
        Some(other) => Err(format!("'{other}' is not yes or no")),
    }
}

/// Bytes per second, with an optional K/M/G suffix (binary), at least 16 KiB/s: librqbit
/// stalls entirely below that.
pub fn rate(value: &str) -> Result<u32, String> {
    let (digits, unit) = match value
        .trim()
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
    {
        Some((i, _)) => value.trim().split_at(i),
        None => (value.trim(), ""),
    };
    let factor: u64 = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("'{value}' is not a rate such as 20M")),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .map(|n| n * factor)
        .filter(|n| (16 * 1024..=u32::MAX as u64).contains(n))
        .map(|n| n as u32)
        .ok_or_else(|| format!("'{value}' is not a rate from 16K to 4G bytes per second"))
}

/// One `Key [= Value]` line, with its section and line number.
#[derive(Debug, PartialEq)]
struct Entry<'a> {
    section: &'a str,
    line: usize,
    key: &'a str,
    value: Option<&'a str>,
}

/// The entries of a pacman-style INI text; an error is `(line, message)`.
fn entries(text: &str) -> impl Iterator<Item = Result<Entry<'_>, (usize, String)>> {
    let mut section: Option<&str> = None;
    text.lines().enumerate().filter_map(move |(index, raw)| {
        let line = index + 1;
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            return None;
        }
        if let Some(rest) = content.strip_prefix('[') {
            return match rest.strip_suffix(']').map(str::trim) {
                Some(name) if !name.is_empty() => {
                    section = Some(name);
                    None
                }
                _ => Some(Err((line, format!("invalid section header '{content}'")))),
            };
        }
        let Some(section) = section else {
            return Some(Err((line, "option outside of any section".into())));
        };
        let (key, value) = match content.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (content, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Some(Err((line, format!("invalid option name '{key}'"))));
        }
        Some(Ok(Entry {
            section,
            line,
            key,
            value,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, Path::new("/etc/pactor.conf"))
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse("").unwrap(), Settings::default());
        let s = parse(
            "# c\n[options]\nConnectTimeout = 2.5 # inline\nIdleTimeout=7\nParallelDownloads = 3\n",
        )
        .unwrap();
        assert_eq!(s.connect_timeout, Duration::from_millis(2500));
        assert_eq!(s.idle_timeout, Duration::from_secs(7));
        assert_eq!(s.parallel_downloads, Some(3));
    }

    #[test]
    fn swarm_options() {
        let s = parse(
            "[options]\nTorrentIndex = http://m/$repo.torrents\nTracker = http://127.0.0.1:6969/announce\n\
             Peer = 127.0.0.1:7000\nPeer = 127.0.0.1:7001\nListenPort = 6881\nDHT\nLSD = no\n\
             StallTimeout = 2\nMaxUploadRate = 20M\nMaxDownloadRate = 512K\nSeedWhileInstalling = no\n",
        )
        .unwrap();
        assert_eq!(s.peers, ["127.0.0.1:7000", "127.0.0.1:7001"]);
        assert_eq!(
            (s.listen_port, s.dht, s.lsd, s.seed_while_installing),
            (6881, true, false, false)
        );
        assert_eq!(s.max_upload_rate, Some(20 << 20));
        assert_eq!(s.max_download_rate, Some(512 << 10));
        assert_eq!(s.stall_timeout, Duration::from_secs(2));
        assert!(
            parse("[options]\nMaxUploadRate = 1K\n").is_err(),
            "below librqbit's floor"
        );
        assert!(parse("[options]\nDHT = maybe\n").is_err());
    }

    #[test]
    fn upstreams_global_per_repo_and_included() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("mirrorlist");
        std::fs::write(
            &list,
            "## a mirrorlist\n#Server = http://commented/$repo\nServer = http://a/$repo/os/$arch\n\nServer=http://b/$repo/os/$arch # b\n",
        )
        .unwrap();
        let s = parse(&format!(
            "[options]\nUpstream = http://all/$repo/$arch\n[core]\nUpstream = http://core-only/$arch\nInclude = {}\n[extra]\nInclude = {}\n",
            list.display(),
            list.display()
        ))
        .unwrap();
        assert_eq!(s.upstream.for_repo("multilib"), ["http://all/$repo/$arch"]);
        assert_eq!(
            s.upstream.for_repo("core"),
            [
                "http://core-only/$arch",
                "http://a/$repo/os/$arch",
                "http://b/$repo/os/$arch"
            ]
        );
        assert_eq!(s.upstream.for_repo("extra").len(), 2);
        let err = parse("[core]\nInclude = /nonexistent/mirrorlist\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("/nonexistent/mirrorlist"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_file_is_all_defaults() {
        assert_eq!(
            parse(include_str!("../assets/pactor.conf")).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn unknown_options_are_tolerated_for_newer_files() {
        assert_eq!(
            parse("[options]\nSomeFutureFlag\n").unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, line) in [
            ("[options]\n\nConnectTimeout = soon\n", 3),
            ("[options\n", 1),
            ("ConnectTimeout = 1\n", 1),
            ("[options]\nIdleTimeout\n", 2),
            ("[options]\nParallelDownloads = 0\n", 2),
            ("[repo]\nX = 1\n", 2),
            ("[options]\nbad key = 1\n", 2),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("config file /etc/pactor.conf, line {line}:")),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn missing_default_file_is_fine_but_explicit_is_not() {
        let missing = Path::new("/nonexistent/pactor.conf");
        assert_eq!(Settings::load(missing, true).unwrap(), Settings::default());
        assert!(
            Settings::load(missing, false)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/pactor.conf")
        );
    }
}
