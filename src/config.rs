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
    /// A swarm that delivers nothing for this long, or after this long runs far slower than
    /// the mirrors, is joined by them.
    pub stall_timeout: Duration,
    pub max_upload_rate: Option<u32>,
    pub max_download_rate: Option<u32>,
    /// Keep serving just-fetched files to peers while the commit runs.
    pub seed_while_installing: bool,
    /// `pactor seed` offers each peer only what no other peer holds (BEP 16's super-seeding).
    pub super_seed: bool,
    /// Connections a run opens per package's torrent ([`DEFAULT_PEERS_PER_PACKAGE`]).
    pub peers_per_package: usize,
    /// pactor's own state (the transfer statistics, the seeder's record of proven files), like
    /// pacman's DBPath.
    pub state_dir: PathBuf,
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

/// Connections a run opens to the peers of one package's torrent at a time unless pactor.conf's
/// `PeersPerPackage` says otherwise; peers that connect to it are still all accepted. A run
/// fetches hundreds of small torrents at once, and in a fleet every client connected to every
/// other for each of them: the handshakes, bitfields and Haves of 15 connections per torrent
/// cost more CPU than the extra peers brought. With four (the classic number of upload slots)
/// each client still has about eight peers per torrent, those it chose and those that chose it.
/// Fleet of 16 (scripts/bench, builds alternating): p95 33.3-34.4 s and 58-59 CPU s -> 29.5 s
/// and 51 CPU s, the same origin bytes; K = 1 and K = 8 unchanged. The cost: peers that hold a
/// slot and serve nothing (broken or hostile) keep it until librqbit drops them, and
/// StallTimeout brings in the mirrors meanwhile.
pub const DEFAULT_PEERS_PER_PACKAGE: usize = 4;

/// Where pactor keeps its own state unless `StateDir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pactor";

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
            super_seed: false,
            peers_per_package: DEFAULT_PEERS_PER_PACKAGE,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            upstream: Upstream::default(),
        }
    }
}

/// A group of options, as pactor.conf and pactor.conf(5) present them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Mirrors,
    Swarm,
    Serve,
    State,
}

impl Group {
    pub const ALL: [Group; 4] = [Group::Mirrors, Group::Swarm, Group::Serve, Group::State];

    pub fn title(self) -> &'static str {
        match self {
            Group::Mirrors => "Mirrors (the HTTP fallback and repos without a torrent index)",
            Group::Swarm => "The swarm",
            Group::Serve => "pactor serve (the local mirror for pacman, pacstrap, paru, yay)",
            Group::State => "State",
        }
    }
}

/// One option of pactor.conf. This table is the only definition: the parser applies it, and
/// `assets/pactor.conf`, pactor.conf(5) and the README's table are generated from it (tests
/// fail when the committed copies differ), so the documentation cannot drift from the code.
pub struct ConfOption {
    pub name: &'static str,
    /// The value's placeholder (`SECONDS`, `URL`); `None` for a flag (`DHT`, `DHT = no`).
    pub value: Option<&'static str>,
    /// The default, as the README and the man page state it.
    pub default: &'static str,
    /// The commented-out line(s) in the shipped pactor.conf: the default, or an example.
    pub sample: &'static str,
    pub repeatable: bool,
    pub group: Group,
    /// One line for the README's table.
    pub summary: &'static str,
    /// The full description (pactor.conf's comments, the man page).
    pub doc: &'static str,
    apply: fn(&mut Settings, Option<&str>) -> Result<(), String>,
}

/// Every option pactor.conf accepts, in the order the documentation lists them.
pub const OPTIONS: &[ConfOption] = &[
    ConfOption {
        name: "ConnectTimeout",
        value: Some("SECONDS"),
        default: "10",
        sample: "ConnectTimeout = 10",
        repeatable: false,
        group: Group::Mirrors,
        summary: "seconds to wait for a mirror to accept a connection before trying the next",
        doc: "Seconds to wait for a mirror to accept a connection before trying the next mirror.",
        apply: |s, v| {
            s.connect_timeout = seconds(required(v)?)?;
            Ok(())
        },
    },
    ConfOption {
        name: "IdleTimeout",
        value: Some("SECONDS"),
        default: "30",
        sample: "IdleTimeout = 30",
        repeatable: false,
        group: Group::Mirrors,
        summary: "seconds a mirror may send nothing (under 1 KiB) before the next mirror is tried; no other low-speed abort",
        doc: "Seconds a mirror may send nothing before the next mirror is tried; less than 1 KiB \
              in that time counts as nothing (a server trickling a byte a second). Beyond that \
              pactor has no low-speed abort: a slow transfer that moves is never dropped.",
        apply: |s, v| {
            s.idle_timeout = seconds(required(v)?)?;
            Ok(())
        },
    },
    ConfOption {
        name: "ParallelDownloads",
        value: Some("N"),
        default: "pacman.conf's ParallelDownloads",
        sample: "ParallelDownloads = 5",
        repeatable: false,
        group: Group::Mirrors,
        summary: "files downloaded at once",
        doc: "Files downloaded at once, from 1 to 64.",
        apply: |s, v| {
            let n = count(required(v)?, 1..=64, "ParallelDownloads")?;
            s.parallel_downloads = Some(n);
            Ok(())
        },
    },
    ConfOption {
        name: "TorrentIndex",
        value: Some("URL"),
        default: "<server>/<repo>.torrents on the repo's own servers",
        sample: "TorrentIndex = https://seedbox.example.org/$repo/os/$arch/$repo.torrents",
        repeatable: true,
        group: Group::Swarm,
        summary: "URL of `<repo>.torrents`, with `$repo`/`$arch`; repeatable",
        doc: "Where to fetch each repo's torrent index (<repo>.torrents); $repo and $arch are \
              expanded. Tried in order.",
        apply: |s, v| {
            s.torrent_indexes.push(required(v)?.to_owned());
            Ok(())
        },
    },
    ConfOption {
        name: "Tracker",
        value: Some("URL"),
        default: "none",
        sample: "Tracker = http://tracker.example.org:6969/announce",
        repeatable: true,
        group: Group::Swarm,
        summary: "extra announce URLs; repeatable",
        doc: "A tracker announced to, in addition to those the index names.",
        apply: |s, v| {
            s.trackers.push(required(v)?.to_owned());
            Ok(())
        },
    },
    ConfOption {
        name: "Peer",
        value: Some("HOST:PORT"),
        default: "none",
        sample: "Peer = seedbox.lan:6881",
        repeatable: true,
        group: Group::Swarm,
        summary: "`host:port` of peers always tried (a LAN seedbox); repeatable",
        doc: "A peer always tried, as HOST:PORT: a LAN seedbox, a CI cache.",
        apply: |s, v| {
            s.peers.push(required(v)?.to_owned());
            Ok(())
        },
    },
    ConfOption {
        name: "ListenPort",
        value: Some("PORT"),
        default: "0",
        sample: "ListenPort = 0",
        repeatable: false,
        group: Group::Swarm,
        summary: "port for incoming peers",
        doc: "Port for incoming peers, while seeding during an install and for pactor seed. 0 \
              picks a free port (pactor seed then uses 6881).",
        apply: |s, v| {
            s.listen_port = required(v)?
                .parse()
                .map_err(|_| "ListenPort must be 0 to 65535")?;
            Ok(())
        },
    },
    ConfOption {
        name: "DHT",
        value: None,
        default: "off",
        sample: "DHT",
        repeatable: false,
        group: Group::Swarm,
        summary: "the distributed hash table",
        doc: "Find peers through the BitTorrent distributed hash table.",
        apply: |s, v| {
            s.dht = flag(v)?;
            Ok(())
        },
    },
    ConfOption {
        name: "LSD",
        value: None,
        default: "off",
        sample: "LSD",
        repeatable: false,
        group: Group::Swarm,
        summary: "local service discovery (multicast on the LAN)",
        doc: "Find peers on the LAN through local service discovery (multicast).",
        apply: |s, v| {
            s.lsd = flag(v)?;
            Ok(())
        },
    },
    ConfOption {
        name: "StallTimeout",
        value: Some("SECONDS"),
        default: "5",
        sample: "StallTimeout = 5",
        repeatable: false,
        group: Group::Swarm,
        summary: "seconds without data from the swarm (or far below the mirrors' speed) before \
                  the mirrors join in",
        doc: "A swarm that delivers nothing for this many seconds, or after that long still \
              runs far slower than the mirrors, is joined by them: the first good copy wins.",
        apply: |s, v| {
            s.stall_timeout = seconds(required(v)?)?;
            Ok(())
        },
    },
    ConfOption {
        name: "MaxUploadRate",
        value: Some("RATE"),
        default: "unlimited",
        sample: "MaxUploadRate = 20M",
        repeatable: false,
        group: Group::Swarm,
        summary: "bytes per second, `K`/`M`/`G` suffixes, at least 16K",
        doc: "Upload limit in bytes per second (K, M, G suffixes; at least 16K).",
        apply: |s, v| {
            s.max_upload_rate = Some(rate(required(v)?)?);
            Ok(())
        },
    },
    ConfOption {
        name: "MaxDownloadRate",
        value: Some("RATE"),
        default: "unlimited",
        sample: "MaxDownloadRate = 50M",
        repeatable: false,
        group: Group::Swarm,
        summary: "bytes per second from the swarm, like `MaxUploadRate`",
        doc: "Download limit for the swarm in bytes per second (K, M, G suffixes; at least \
              16K).",
        apply: |s, v| {
            s.max_download_rate = Some(rate(required(v)?)?);
            Ok(())
        },
    },
    ConfOption {
        name: "PeersPerPackage",
        value: Some("N"),
        default: "4",
        sample: "PeersPerPackage = 4",
        repeatable: false,
        group: Group::Swarm,
        summary: "peers a run connects to per package, 1 to 50; those connecting to it are all taken",
        doc: "Peers a run connects to for each package's torrent, from 1 to 50; peers that \
              connect to it are all accepted. A run fetches many packages at once, and each \
              connection costs its handshake and messages: on a busy fleet fewer go faster (2 \
              or 3), while peers that take a slot and serve nothing (broken or hostile) weigh \
              more with fewer slots, until StallTimeout brings in the mirrors.",
        apply: |s, v| {
            s.peers_per_package = count(required(v)?, 1..=50, "PeersPerPackage")?;
            Ok(())
        },
    },
    ConfOption {
        name: "SeedWhileInstalling",
        value: None,
        default: "yes",
        sample: "SeedWhileInstalling = yes",
        repeatable: false,
        group: Group::Swarm,
        summary: "keep serving the just-fetched files while the commit runs",
        doc: "Keep serving the files just fetched to other peers while the commit runs: \
              those from peers, and those from mirrors that the repo's torrent index lists \
              (their torrent is canonical, so they join the same swarm).",
        apply: |s, v| {
            s.seed_while_installing = flag(v)?;
            Ok(())
        },
    },
    ConfOption {
        name: "SuperSeed",
        value: None,
        default: "no",
        sample: "SuperSeed = yes",
        repeatable: false,
        group: Group::Swarm,
        summary: "`pactor seed` sends each piece about once and lets its peers spread it",
        doc: "For `pactor seed` on a seedbox whose upload is the scarce resource (a fleet's \
              origin, a rate-limited seedbox): it shows peers none of its pieces and offers \
              each peer a few that no other peer holds, so that each piece leaves the seedbox \
              about once and the peers trade the rest among themselves (BEP 16's \
              super-seeding). A peer that gets nothing from anyone for a second is served \
              what it lacks, so a lone client is served the whole file. Same as `pactor seed \
              --super-seed`.",
        apply: |s, v| {
            s.super_seed = flag(v)?;
            Ok(())
        },
    },
    ConfOption {
        name: "Upstream",
        value: Some("URL"),
        default: "pacman.conf's servers of the repo",
        sample: "Upstream = https://mirror.example.org/$repo/os/$arch",
        repeatable: true,
        group: Group::Serve,
        summary: "where `pactor serve` gets databases and files, with `$repo`/`$arch`; \
                  repeatable; a `[repo]` section gives one repo its own",
        doc: "Where pactor serve gets databases, signatures and (when the swarm cannot serve \
              them) package files: a URL with $repo and $arch, tried in order. Repeatable. \
              In [options] it serves every repo; a [repo] section (such as [core]) with its \
              own Upstream or Include lines gives that repo its own list. Default: the \
              repo's Server lines in pacman.conf, minus pactor serve's own address.",
        apply: |s, v| {
            s.upstream.all.extend(upstream(Some("Upstream"), v)?);
            Ok(())
        },
    },
    ConfOption {
        name: "Include",
        value: Some("PATH"),
        default: "none",
        sample: "Include = /etc/pacman.d/mirrorlist",
        repeatable: true,
        group: Group::Serve,
        summary: "a mirrorlist whose `Server` lines are upstreams of `pactor serve`",
        doc: "A pacman mirrorlist whose Server lines are taken as Upstream lines, in order. \
              Repeatable; allowed in [options] and in [repo] sections.",
        apply: |s, v| {
            s.upstream.all.extend(upstream(Some("Include"), v)?);
            Ok(())
        },
    },
    ConfOption {
        name: "StateDir",
        value: Some("DIR"),
        default: DEFAULT_STATE_DIR,
        sample: "StateDir = /var/lib/pactor",
        repeatable: false,
        group: Group::State,
        summary: "pactor's own state: the transfer statistics `pactor stats` reads, the \
                  seeder's record of files it proved (so a restart reads nothing again), \
                  pacman-conf's remembered answer",
        doc: "Where pactor keeps its own state: the transfer statistics (stats.json) that \
              pactor stats reads; the seeder's record of the files it proved, so a restarted \
              seeder does not read them all again; and pacman-conf's answer for pacman.conf \
              (pacman-conf.cache), reused while pacman.conf and the files it includes are \
              unchanged. pactor -S (as root) and pactor seed (as the pactor user) both write \
              there.",
        apply: |s, v| {
            s.state_dir = PathBuf::from(required(v)?);
            Ok(())
        },
    },
];

/// The upstream templates an `Upstream` or `Include` line gives.
fn upstream(key: Option<&str>, value: Option<&str>) -> Result<Vec<String>, String> {
    match key {
        Some("Upstream") => Ok(vec![required(value)?.to_owned()]),
        Some("Include") => mirrorlist(required(value)?),
        _ => Err("only Upstream and Include belong in a repository section".into()),
    }
}

/// The `Server =` URLs of a pacman mirrorlist, in order.
fn mirrorlist(path: &str) -> Result<Vec<String>, String> {
    use std::io::Read;
    /// Arch's mirrorlist is 30 KiB; anything this large is not a mirrorlist.
    const MAX_MIRRORLIST: u64 = 4 << 20;
    let read = || -> std::io::Result<String> {
        let file = std::fs::File::open(path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mut text = String::new();
        file.take(MAX_MIRRORLIST + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_MIRRORLIST {
            return Err(std::io::Error::other("larger than 4 MiB"));
        }
        Ok(text)
    };
    let text = read().map_err(|e| format!("could not read mirrorlist {path}: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|raw| {
            let content = raw.split_once('#').map_or(raw, |(before, _)| before);
            let (key, value) = content.split_once('=')?;
            (key.trim() == "Server" && !value.trim().is_empty()).then(|| value.trim().to_owned())
        })
        .collect())
}

/// The value of an option that takes one (the parser has checked it is there).
fn required(value: Option<&str>) -> Result<&str, String> {
    value.ok_or_else(|| "needs a value".to_owned())
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
            if entry.section != "options" {
                // A repo section: only where `pactor serve` gets that repo from.
                let templates = upstream(Some(entry.key), entry.value).map_err(|e| {
                    syntax(format!(
                        "option '{}' in repository section [{}]: {e}",
                        entry.key, entry.section
                    ))
                })?;
                settings
                    .upstream
                    .repos
                    .entry(entry.section.to_owned())
                    .or_default()
                    .extend(templates);
                continue;
            }
            match OPTIONS.iter().find(|o| o.name == entry.key) {
                Some(option) if option.value.is_some() && entry.value.is_none() => {
                    return Err(syntax(format!("option '{}' needs a value", entry.key)));
                }
                Some(option) => (option.apply)(&mut settings, entry.value).map_err(syntax)?,
                None => tracing::warn!(
                    "{}:{}: unknown option '{}' ignored",
                    path.display(),
                    entry.line,
                    entry.key
                ),
            }
        }
        Ok(settings)
    }
}

/// A whole number within `range`, or `<name> must be <low> to <high>`.
fn count(value: &str, range: std::ops::RangeInclusive<usize>, name: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| format!("{name} must be {} to {}", range.start(), range.end()))
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
        .and_then(|n| n.checked_mul(factor))
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

    /// Found by `fuzz/fuzz_targets/config.rs` (fuzz/regressions/config/): the suffix's factor
    /// overflowed u64 (a panic with debug assertions, a wrapped rate in a release build).
    #[test]
    fn a_rate_too_large_for_any_integer_is_an_error_not_an_overflow() {
        for huge in [
            "700000000000086M",
            "18446744073709551615G",
            "17592186044416K",
        ] {
            assert!(rate(huge).is_err(), "{huge}");
        }
        let crash = include_bytes!(
            "../fuzz/regressions/config/crash-bc30c33877c0f82b7e90d90c5fff759d66fcdf76"
        );
        let err = parse(&String::from_utf8_lossy(crash)).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 5: '000007000000000000086M' is not a rate"),
            "{err}"
        );
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
             StallTimeout = 2\nMaxUploadRate = 20M\nMaxDownloadRate = 512K\nSeedWhileInstalling = no\n\
             PeersPerPackage = 2\n",
        )
        .unwrap();
        assert_eq!(s.peers_per_package, 2);
        assert_eq!(
            Settings::default().peers_per_package,
            DEFAULT_PEERS_PER_PACKAGE
        );
        // The documented default (pactor.conf(5), the shipped pactor.conf) is the one used.
        let documented = OPTIONS
            .iter()
            .find(|o| o.name == "PeersPerPackage")
            .unwrap();
        assert_eq!(documented.default, DEFAULT_PEERS_PER_PACKAGE.to_string());
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
            ("[options]\nPeersPerPackage = 0\n", 2),
            ("[options]\n\nPeersPerPackage = 51\n", 3),
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
