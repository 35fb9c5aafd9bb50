//! Where serve gets a repo from: pactor.conf's `Upstream =`/`Include =` lines, or, when it
//! names none for a repo, the servers pacman.conf lists for it. The machine's own mirrorlist
//! names serve itself (that is how pacman reaches it), so every candidate that points at serve's
//! own listening address is dropped: a mirror that asks itself would wait on itself forever.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::config::Upstream;

pub struct Upstreams {
    configured: Upstream,
    /// pacman.conf's servers by repo, already expanded by pacman-conf for `arches`.
    pacman: HashMap<String, Vec<String>>,
    arches: Vec<String>,
    listen: SocketAddr,
}

impl Upstreams {
    pub fn new(
        configured: Upstream,
        pacman: HashMap<String, Vec<String>>,
        arches: Vec<String>,
        listen: SocketAddr,
    ) -> Upstreams {
        Upstreams {
            configured,
            pacman,
            arches,
            listen,
        }
    }

    /// The upstream base URLs of `repo` on `arch`, in order, never serve's own address.
    pub fn servers(&self, repo: &str, arch: &str) -> Vec<String> {
        let templates = self.configured.for_repo(repo);
        let candidates: Vec<String> = if !templates.is_empty() {
            templates
                .iter()
                .map(|t| t.replace("$repo", repo).replace("$arch", arch))
                .collect()
        } else if self.arches.iter().any(|a| a == arch) {
            self.pacman.get(repo).cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        candidates
            .into_iter()
            .filter(|url| !points_at(url, self.listen))
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect()
    }

    /// Every candidate that names serve itself, for a warning at start.
    pub fn own_addresses(&self) -> Vec<String> {
        let mut all: Vec<&String> = self.configured.all.iter().collect();
        all.extend(self.configured.repos.values().flatten());
        all.extend(self.pacman.values().flatten());
        let mut own: Vec<String> = all
            .into_iter()
            .filter(|url| points_at(url, self.listen))
            .cloned()
            .collect();
        own.sort();
        own.dedup();
        own
    }

    /// The repos pacman.conf or pactor.conf name, for the start-up line.
    pub fn known_repos(&self) -> Vec<String> {
        let mut repos: Vec<String> = self.pacman.keys().cloned().collect();
        repos.extend(self.configured.repos.keys().cloned());
        repos.sort();
        repos.dedup();
        repos
    }
}

/// Whether `url` reaches the socket serve listens on: same port, and a host that is this
/// machine (a loopback name or address, the listening address, or any address of this host
/// when serve listens on all of them).
pub fn points_at(url: &str, listen: SocketAddr) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    if parsed.port_or_known_default() != Some(listen.port()) {
        return false;
    }
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        let name = host.to_ascii_lowercase();
        return name == "localhost" || name.ends_with(".localhost");
    };
    if ip == listen.ip() || (ip.is_loopback() && listen.ip().is_loopback()) {
        return true;
    }
    if listen.ip().is_unspecified() {
        // Listening everywhere: any address this host owns reaches serve. An address is
        // ours exactly when we can bind to it.
        return ip.is_loopback()
            || ip.is_unspecified()
            || std::net::TcpListener::bind((ip, 0)).is_ok();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_address_is_recognized() {
        let on = listen("127.0.0.1:8001");
        assert!(points_at("http://127.0.0.1:8001/core/os/x86_64", on));
        assert!(points_at("http://localhost:8001/$repo/$arch", on));
        assert!(points_at("http://127.0.0.2:8001/x", on));
        assert!(!points_at("http://127.0.0.1:8002/x", on));
        assert!(!points_at("https://mirror.example.org/core/os/x86_64", on));
        assert!(!points_at("not a url", on));
        let everywhere = listen("0.0.0.0:80");
        assert!(points_at("http://127.0.0.1/x", everywhere));
        assert!(points_at("http://localhost/x", everywhere));
        assert!(!points_at("http://192.0.2.1/x", everywhere), "not ours");
    }

    #[test]
    fn configured_then_pacman_servers_never_itself() {
        let configured = Upstream {
            all: vec!["http://up.example/$repo/os/$arch/".into()],
            repos: [(
                "custom".to_string(),
                vec!["http://127.0.0.1:8001/$repo".into()],
            )]
            .into(),
        };
        let pacman = HashMap::from([(
            "core".to_string(),
            vec![
                "http://127.0.0.1:8001/core/x86_64".to_string(),
                "http://m.example/core/os/x86_64".into(),
            ],
        )]);
        let with_config = Upstreams::new(
            configured,
            pacman.clone(),
            vec!["x86_64".into()],
            listen("127.0.0.1:8001"),
        );
        assert_eq!(
            with_config.servers("core", "x86_64"),
            ["http://up.example/core/os/x86_64"]
        );
        assert!(with_config.servers("custom", "x86_64").is_empty());
        let plain = Upstreams::new(
            Upstream::default(),
            pacman,
            vec!["x86_64".into()],
            listen("127.0.0.1:8001"),
        );
        assert_eq!(
            plain.servers("core", "x86_64"),
            ["http://m.example/core/os/x86_64"]
        );
        assert!(plain.servers("core", "aarch64").is_empty(), "other arch");
        assert_eq!(plain.own_addresses(), ["http://127.0.0.1:8001/core/x86_64"]);
    }
}
