//! The BitTorrent side of pactor, on librqbit: one session per run (or per seeder), with DHT,
//! LSD and UPnP off unless pactor.conf turns them on, an explicit announce port (librqbit would
//! announce 4240 otherwise), and pactor's own storage ([`storage`]): read-only for seeding, so a
//! file pactor seeds is never truncated, extended or rewritten, and sealed once leeched.

mod peer_http;
mod storage;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use librqbit::limits::LimitsConfig;
use librqbit::storage::StorageFactoryExt;
use librqbit::{
    AddTorrent, AddTorrentOptions, AddTorrentResponse, ListenerMode, ListenerOptions,
    ManagedTorrent, Session, SessionOptions,
};

use crate::runtime::on;
use crate::torrent::{Info, InfoHash};
use peer_http::Shelf;
pub use peer_http::{HttpPeers, SMALL_FILE, url as peer_url};
use storage::{LeechFactory, ReadOnlyFactory, Seal};

/// How the session talks to the world; everything off by default except what is configured.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Where to accept peers; `None` accepts nobody (a pure leecher).
    pub listen: Option<SocketAddr>,
    pub dht: bool,
    pub lsd: bool,
    pub trackers: Vec<String>,
    pub upload_bps: Option<u32>,
    pub download_bps: Option<u32>,
    pub peer_limit: Option<usize>,
    /// Seed as a super-seeder (librqbit's `AddTorrentOptions::super_seed`).
    pub super_seed: bool,
    /// Connections a run opens to the peers of one package's torrent at a time (pactor.conf's
    /// `PeersPerPackage`, [`crate::config::DEFAULT_PEERS_PER_PACKAGE`] unless set).
    pub outgoing_peers: usize,
    /// The runtime whose workers run the session's tasks (peers, pieces, the listener);
    /// `None`: the runtime that starts the session.
    pub runtime: Option<tokio::runtime::Handle>,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            listen: None,
            dht: false,
            lsd: false,
            trackers: Vec::new(),
            upload_bps: None,
            download_bps: None,
            peer_limit: None,
            super_seed: false,
            outgoing_peers: crate::config::DEFAULT_PEERS_PER_PACKAGE,
            runtime: None,
        }
    }
}

pub type Handle = Arc<ManagedTorrent>;

/// The announce URLs of a session: pactor.conf's, and those each torrent index publishes now.
struct Trackers {
    configured: Vec<String>,
    published: BTreeMap<String, Vec<String>>,
}

impl Trackers {
    fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for tracker in self
            .configured
            .iter()
            .chain(self.published.values().flatten())
        {
            if !all.contains(tracker) {
                all.push(tracker.clone());
            }
        }
        all
    }
}

/// A file to fetch from the swarm, as the database and the index describe it.
pub struct Target<'a> {
    pub name: &'a str,
    pub size: u64,
    pub info_hash: InfoHash,
    /// Its canonical torrent, when the index carries the pieces (small files): no metadata
    /// to wait for.
    pub info: Option<Info>,
}

pub struct Swarm {
    session: Arc<Session>,
    /// Where the session's tasks run ([`SwarmConfig::runtime`]).
    runtime: tokio::runtime::Handle,
    /// Announce URLs put into every torrent added from now on.
    trackers: Mutex<Trackers>,
    /// The seal of each torrent leeched, by infohash, until it is forgotten.
    seals: Mutex<HashMap<[u8; 20], Seal>>,
    /// Seeded torrents are super-seeded (`pactor seed --super-seed`).
    super_seed: bool,
    /// Connections a leeched torrent opens ([`SwarmConfig::outgoing_peers`]).
    outgoing_peers: usize,
    /// The small seeded files that peers may also fetch over HTTP ([`peer_http`]).
    shelf: Arc<Shelf>,
}

impl Swarm {
    pub async fn start(config: &SwarmConfig, default_dir: &Path) -> Result<Swarm> {
        let runtime = config
            .runtime
            .clone()
            .unwrap_or_else(tokio::runtime::Handle::current);
        on(
            &runtime,
            Swarm::start_here(config, default_dir, runtime.clone()),
        )
        .await
    }

    async fn start_here(
        config: &SwarmConfig,
        default_dir: &Path,
        runtime: tokio::runtime::Handle,
    ) -> Result<Swarm> {
        let _ = librqbit::try_increase_nofile_limit();
        let mut options = session_options(config);
        // A listening peer that is not a super-seeder also answers HTTP for small files.
        let (foreign_tx, foreign_rx) = tokio::sync::mpsc::unbounded_channel();
        let http = config.listen.is_some() && !config.super_seed;
        if http {
            options.foreign_tcp = Some(foreign_tx);
        }
        let session = Session::new_with_opts(default_dir.to_owned(), options)
            .await
            .context("could not start the BitTorrent session")?;
        let shelf = Arc::new(Shelf::default());
        if http {
            peer_http::serve(shelf.clone(), Arc::downgrade(&session), foreign_rx);
        }
        Ok(Swarm {
            session,
            runtime,
            trackers: Mutex::new(Trackers {
                configured: config.trackers.clone(),
                published: BTreeMap::new(),
            }),
            seals: Mutex::default(),
            super_seed: config.super_seed,
            outgoing_peers: config.outgoing_peers,
            shelf,
        })
    }

    /// Sets the announce URLs that `source` (a repo's torrent index, a published directory's
    /// indexes) publishes now, replacing what it published before: torrents added from now on
    /// announce to them, and no longer to a tracker every source dropped.
    pub fn set_published_trackers(&self, source: &str, trackers: &[String]) {
        let mut all = self.trackers.lock().expect("no poisoning");
        if trackers.is_empty() {
            all.published.remove(source);
        } else {
            all.published.insert(source.to_owned(), trackers.to_vec());
        }
    }

    /// Where a torrent added now announces: the configured trackers, then the published
    /// ones, each once.
    pub fn trackers(&self) -> Vec<String> {
        self.trackers.lock().expect("no poisoning").all()
    }

    /// Seeds `dir/<info.name>` read-only, whose bytes the caller proved to match `info`. Returns
    /// once the torrent is live (a sample of its pieces checked),
    /// so peers told about it are not turned away.
    pub async fn seed(&self, info: &Info, dir: &Path) -> Result<Handle> {
        let bytes = info.to_torrent_file(&self.trackers());
        let options = AddTorrentOptions {
            overwrite: true,
            // The caller proved the bytes (or the proven-files record vouches for them):
            // librqbit samples pieces instead of hashing the file again.
            assume_complete: true,
            super_seed: self.super_seed,
            output_folder: Some(dir.to_string_lossy().into_owned()),
            storage_factory: Some(
                ReadOnlyFactory {
                    dir: dir.to_owned(),
                }
                .boxed(),
            ),
            ..Default::default()
        };
        let handle = self.add(AddTorrent::from_bytes(bytes), options).await?;
        on(&self.runtime, handle.wait_until_initialized()).await?;
        self.shelve(&info.name, dir.join(&info.name), info.length);
        Ok(handle)
    }

    /// Starts fetching `name` (`size` bytes) by infohash into `dir`: metadata comes from the
    /// peers (BEP 9). Gives up if no peer supplies the metadata within `timeout`, and refuses
    /// metadata that is not the canonical torrent of that file.
    pub async fn leech(
        &self,
        target: &Target<'_>,
        dir: &Path,
        peers: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Handle> {
        let Target {
            name,
            size,
            info_hash,
            ref info,
        } = *target;
        let seal = self
            .seals
            .lock()
            .expect("no poisoning")
            .entry(info_hash.0)
            .or_default()
            .clone();
        let options = AddTorrentOptions {
            overwrite: true,
            outgoing_peer_limit: Some(self.outgoing_peers),
            output_folder: Some(dir.to_string_lossy().into_owned()),
            initial_peers: (!peers.is_empty()).then(|| peers.to_vec()),
            storage_factory: Some(
                LeechFactory {
                    dir: dir.to_owned(),
                    seal,
                }
                .boxed(),
            ),
            ..Default::default()
        };
        if let Some(info) = info.as_ref().filter(|info| info.info_hash() == info_hash) {
            // The index carried the whole torrent (a small file): nothing to ask peers for.
            let torrent = info.to_torrent_file(&self.trackers());
            let add = self.add(AddTorrent::from_bytes(torrent), options);
            return tokio::time::timeout(timeout, add)
                .await
                .context("the torrent did not start within the stall timeout")?;
        }
        let mut magnet = format!("magnet:?xt=urn:btih:{info_hash}&dn={}", urlencode(name));
        for tracker in &self.trackers() {
            magnet.push_str(&format!("&tr={}", urlencode(tracker)));
        }
        let add = self.add(AddTorrent::from_url(magnet), options);
        let handle = tokio::time::timeout(timeout, add)
            .await
            .context("no peer within the stall timeout")??;
        // The metadata came from strangers: it must describe the file the index named.
        let shared_name = handle.shared().info_hash;
        if shared_name.0 != info_hash.0 {
            bail!("peer metadata does not match the infohash");
        }
        // And it must be the file the database names: the index that gave the infohash may lie.
        let info_bytes = handle.with_metadata(|m| m.info_bytes.clone())?;
        if let Err(why) = Info::canonical_for(&info_bytes, name, size) {
            self.forget(&handle, true).await;
            bail!("refusing the torrent's metadata: {why}");
        }
        Ok(handle)
    }

    async fn add(&self, add: AddTorrent<'_>, options: AddTorrentOptions) -> Result<Handle> {
        let added = on(&self.runtime, self.session.add_torrent(add, Some(options)));
        match added.await? {
            AddTorrentResponse::Added(_, handle)
            | AddTorrentResponse::AlreadyManaged(_, handle) => Ok(handle),
            AddTorrentResponse::ListOnly(_) => {
                bail!("librqbit listed the torrent instead of adding it")
            }
        }
    }

    /// Closes the descriptor that wrote a leeched torrent's file, complete and checked: it is
    /// seeded read-only from now on, and the root process can take it (see [`storage`]).
    pub fn seal(&self, handle: &Handle) -> Result<()> {
        let info_hash = handle.shared().info_hash.0;
        // The file is reopened outside the lock every leech takes.
        let seal = self
            .seals
            .lock()
            .expect("no poisoning")
            .get(&info_hash)
            .cloned();
        seal.context("not a leeched torrent")?.seal()
    }

    /// Offers a seeded file to peers over HTTP as well, if it is small and this is no
    /// super-seeder ([`peer_http`]); [`Swarm::forget`] withdraws it.
    pub fn shelve(&self, name: &str, path: std::path::PathBuf, size: u64) {
        if !self.super_seed && size <= SMALL_FILE {
            self.shelf.put(name, path);
        }
    }

    /// Stops a torrent; `delete_files` removes what it downloaded (never used for seeded files).
    pub async fn forget(&self, handle: &Handle, delete_files: bool) {
        if let Some(name) = handle.name() {
            self.shelf.remove(&name);
        }
        let _ = on(
            &self.runtime,
            self.session.delete(handle.id().into(), delete_files),
        )
        .await;
        let info_hash = handle.shared().info_hash.0;
        self.seals.lock().expect("no poisoning").remove(&info_hash);
    }

    pub async fn stop(&self) {
        on(&self.runtime, self.session.stop()).await;
    }

    /// Bytes uploaded to peers since the session started, forgotten torrents included.
    pub fn uploaded_bytes(&self) -> u64 {
        self.session.stats_snapshot().counters.uploaded_bytes + self.shelf.uploaded()
    }

    /// The listening addresses of the peers that sent bytes of a torrent: those worth asking
    /// for small files over HTTP ([`HttpPeers`]).
    pub fn peers_that_sent(&self, handle: &Handle) -> Vec<SocketAddr> {
        handle
            .live()
            .map(|live| live.outgoing_peers_that_sent())
            .unwrap_or_default()
    }
}

/// librqbit's session options for `config`. librqbit turns DHT (with public bootstrap nodes) and
/// LSD (multicast) on by default; here each is on only when configured, UPnP never. Trackers
/// go into each torrent as it is added ([`Swarm::trackers`]), not into these options: librqbit
/// adds the session's trackers to every torrent for the session's life, so a tracker an index
/// dropped would be announced to until a restart.
fn session_options(config: &SwarmConfig) -> SessionOptions {
    SessionOptions {
        dht: if config.dht {
            Some(Default::default())
        } else {
            None
        },
        disable_local_service_discovery: !config.lsd,
        listen: config.listen.map(|addr| ListenerOptions {
            mode: ListenerMode::TcpOnly,
            listen_addr: addr,
            enable_upnp_port_forwarding: false,
            announce_port: Some(addr.port()),
            ipv4_only: addr.is_ipv4(),
            ..Default::default()
        }),
        fastresume: false,
        persistence: None,
        ratelimits: LimitsConfig {
            upload_bps: config.upload_bps.and_then(NonZeroU32::new),
            download_bps: config.download_bps.and_then(NonZeroU32::new),
        },
        peer_limit: config.peer_limit,
        // Package files are read and written in 16 KiB chunks, almost always through the
        // page cache: inline I/O is several times faster than a thread hop per chunk.
        inline_chunk_io: true,
        ..Default::default()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trackers_are_the_configured_then_the_published_each_once_and_a_source_replaces_its_own() {
        let mut trackers = Trackers {
            configured: vec!["udp://conf:1".into()],
            published: BTreeMap::new(),
        };
        trackers.published.insert(
            "core".into(),
            vec!["http://x/a".into(), "udp://conf:1".into()],
        );
        trackers
            .published
            .insert("extra".into(), vec!["http://x/a".into()]);
        assert_eq!(trackers.all(), ["udp://conf:1", "http://x/a"]);
        trackers
            .published
            .insert("core".into(), vec!["http://y/a".into()]);
        trackers.published.remove("extra");
        assert_eq!(trackers.all(), ["udp://conf:1", "http://y/a"]);
    }

    #[test]
    fn the_session_reaches_nothing_but_what_is_configured() {
        // What every test, benchmark and default install gets: no DHT (public bootstrap
        // nodes), no LSD (multicast), no UPnP, the real listening port announced.
        let options = session_options(&SwarmConfig {
            listen: Some("127.0.0.1:6881".parse().unwrap()),
            ..Default::default()
        });
        assert!(options.dht.is_none());
        assert!(options.disable_local_service_discovery);
        assert!(options.persistence.is_none());
        assert!(options.blocklist_url.is_none() && options.allowlist_url.is_none());
        let listen = options.listen.expect("a listener");
        assert!(!listen.enable_upnp_port_forwarding);
        assert_eq!(listen.announce_port, Some(6881));
        assert!(matches!(listen.mode, ListenerMode::TcpOnly));
        // A pure leecher listens nowhere.
        assert!(session_options(&SwarmConfig::default()).listen.is_none());
        // Only pactor.conf turns DHT and LSD on.
        let options = session_options(&SwarmConfig {
            dht: true,
            lsd: true,
            ..Default::default()
        });
        assert!(options.dht.is_some());
        assert!(!options.disable_local_service_discovery);
    }
}
