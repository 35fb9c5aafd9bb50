//! What the clients talk to, all on 127.0.0.1: the test bed's mirror (its token bucket caps
//! the whole mirror), opentracker with a whitelist of the published infohashes, and
//! `pactor seed` processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bed::{self, Mirror, SeedProcess, free_port, pactor_bin, write_pactor_conf};
use crate::workload::{REPO, Workload};

/// The mirror, the tracker and the seeders of one workload.
pub struct Services<'w> {
    pub workload: &'w Workload,
    pub mirror: Mirror,
    pub tracker: Tracker,
    seeders: Vec<SeedProcess>,
    work: PathBuf,
    hashes: Vec<String>,
}

impl<'w> Services<'w> {
    /// Starts the mirror (capped at `mirror_rate` bytes per second) and a tracker, and
    /// publishes the repo's index naming that tracker.
    pub fn start(workload: &'w Workload, work: &Path, mirror_rate: Option<u64>) -> Self {
        let mirror = Mirror::start(&workload.dir);
        mirror.set_rate_limit(mirror_rate);
        // The whitelist needs the infohashes, the index needs the tracker: publish once to
        // learn them (a no-op after the first run), then again naming the tracker.
        publish(&workload.dir, None);
        let hashes = index_hashes(&workload.dir);
        let tracker = Tracker::start(work, &hashes);
        publish(&workload.dir, Some(&tracker.announce));
        Services {
            workload,
            mirror,
            tracker,
            seeders: Vec::new(),
            work: work.to_owned(),
            hashes,
        }
    }

    /// Starts or stops seeders until `count` run, and waits until the tracker lists them. A
    /// seedbox capped at `rate` also super-seeds, as the `SuperSeed` option advises for a
    /// seeder whose upload is scarce.
    pub fn seeders(&mut self, count: usize, rate: Option<&str>) {
        self.seeders.truncate(count);
        while self.seeders.len() < count {
            let conf = self
                .work
                .join(format!("seeder-{}.conf", self.seeders.len()));
            write_pactor_conf(&conf, "");
            let mut args = vec!["--dir".as_ref(), self.workload.dir.as_os_str()];
            if let Some(rate) = rate {
                args.extend(["--upload-rate".as_ref(), std::ffi::OsStr::new(rate)]);
                args.push("--super-seed".as_ref());
            }
            let seeder = SeedProcess::start(&args, &conf);
            seeder.wait_seeding(self.workload.files.len());
            self.seeders.push(seeder);
        }
        self.tracker.wait_seeders(&self.hashes, count as u64);
    }

    /// What the seeders have uploaded so far.
    pub fn seeder_bytes(&self) -> u64 {
        self.seeders.iter().map(SeedProcess::uploaded).sum()
    }
}

/// `pactor publish DIR [--tracker URL]`.
fn publish(dir: &Path, tracker: Option<&str>) {
    let mut cmd = Command::new(pactor_bin());
    cmd.arg("publish").arg(dir);
    if let Some(url) = tracker {
        cmd.args(["--tracker", url]);
    }
    bed::run(cmd).assert_ok();
}

/// The hex infohashes listed in the repo's index.
fn index_hashes(dir: &Path) -> Vec<String> {
    use serde_bencode::value::Value;
    let bytes = std::fs::read(dir.join(format!("{REPO}.torrents"))).expect("published index");
    let Ok(Value::Dict(top)) = serde_bencode::from_bytes::<Value>(&bytes) else {
        panic!("the index is a dictionary");
    };
    let Some(Value::List(files)) = top.get(&b"files"[..]) else {
        panic!("the index lists files");
    };
    files
        .iter()
        .filter_map(|f| match f {
            Value::Dict(entry) => match entry.get(&b"infohash"[..]) {
                Some(Value::Bytes(hash)) => Some(hex(hash)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// opentracker (Debian's whitelist build) on a free loopback port.
pub struct Tracker {
    child: Child,
    pub announce: String,
    port: u16,
}

impl Tracker {
    fn start(work: &Path, hashes: &[String]) -> Tracker {
        let chroot = work.join("tracker");
        std::fs::create_dir_all(&chroot).unwrap();
        std::fs::write(chroot.join("access.whitelist"), hashes.join("\n") + "\n").unwrap();
        let port = free_port();
        let child = Command::new("opentracker")
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-P", &port.to_string(), "-d"])
            .arg(&chroot)
            .args(["-w", "access.whitelist", "-u", "nobody"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("opentracker is installed (scripts/bench installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "opentracker did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Tracker {
            child,
            announce: format!("udp://127.0.0.1:{port}"),
            port,
        }
    }

    /// Waits until every torrent has at least `seeders` complete peers on the tracker.
    fn wait_seeders(&self, hashes: &[String], seeders: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for hash in hashes {
            while self.complete(hash) < seeders {
                assert!(
                    Instant::now() < deadline,
                    "the tracker never listed {seeders} seeders of {hash}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The `complete` count of one torrent, from a scrape.
    fn complete(&self, hash: &str) -> u64 {
        use std::io::{Read, Write};
        let escaped: String = (0..hash.len())
            .step_by(2)
            .map(|i| format!("%{}", &hash[i..i + 2]))
            .collect();
        let mut body = Vec::new();
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = write!(
                conn,
                "GET /scrape?info_hash={escaped} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
            );
            let _ = conn.read_to_end(&mut body);
        }
        String::from_utf8_lossy(&body)
            .split_once("8:completei")
            .and_then(|(_, rest)| rest.split('e').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
