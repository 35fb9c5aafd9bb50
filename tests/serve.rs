//! End-to-end tests of `pactor serve`: the built binary as the mirror of real pacman 7.1 runs
//! (`pacman --config …`, no `--disable-download-timeout`), with real repo-add databases, an
//! upstream HTTP mirror that logs every byte it sends, and `pactor seed` processes as the swarm.
//! Everything on 127.0.0.1; DHT, LSD and UPnP stay off (pactor's defaults).

mod bed;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bed::*;

/// A running `pactor serve`, its log lines collected, killed when dropped.
struct Serve {
    child: Child,
    port: u16,
    /// The BitTorrent port it seeds on.
    peer_port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    new_lines: Receiver<String>,
}

impl Serve {
    /// `pactor serve` on `port` with the serving machine's pacman.conf (its cache and its
    /// servers) and `pactor_conf`, once it reports that it serves.
    fn start(listen: &str, host: &TestEnv, state: &Path, extra: &[&str]) -> Serve {
        let port = listen.rsplit_once(':').unwrap().1.parse().unwrap();
        let mut child = Command::new(pactor_bin())
            .arg("serve")
            .args(["--listen", listen])
            .arg("--config")
            .arg(host.conf())
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .env("PACTOR_CONF", host.pactor_conf_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, new_lines) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (lines, tx) = (lines.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    lines.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let mut serve = Serve {
            child,
            port,
            peer_port: 0,
            lines,
            new_lines,
        };
        let first = serve.wait_for(|l| l.starts_with(":: serving"));
        serve.peer_port = first
            .rsplit_once("peers on port ")
            .and_then(|(_, p)| p.trim_end_matches(')').parse().ok())
            .unwrap_or(0);
        serve
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The line of a client's pacman.conf.
    fn server_line(&self) -> String {
        format!("{}/$repo/$arch", self.url())
    }

    fn wait_for(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.new_lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "pactor serve never printed the awaited line:\n{}",
                    self.log()
                ),
            }
        }
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// How often serve reported fetching `name`.
    fn fetches(&self, name: &str) -> usize {
        let prefix = format!(" fetched {name}:");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .count()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A machine whose pacman uses `serve` as its only server.
fn client_of(serve: &Serve, gpg: Option<&Gpg>) -> TestEnv {
    let mut builder = TestEnv::builder().repo("core", &[serve.server_line()]);
    if let Some(gpg) = gpg {
        builder = builder.signed(gpg);
    }
    builder.build()
}

fn publish(dir: &Path, extra: &[&str]) {
    let mut cmd = Command::new(pactor_bin());
    cmd.arg("publish").arg(dir).args(extra);
    run(cmd).assert_ok();
}

fn size(path: PathBuf) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn installed(env: &TestEnv) -> Vec<String> {
    env.installed()
        .into_iter()
        .map(|(n, v)| format!("{n}-{v}"))
        .collect()
}

/// An upstream repo and mirror, and the serving machine: its pacman.conf lists serve itself
/// first (as a real mirrorlist would) and then the mirror; serve must skip its own address.
struct Bed {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    repo: Repo,
    mirror: Mirror,
    host: TestEnv,
    port: u16,
}

fn bed(pkgs: &[Pkg], gpg: Option<&Gpg>) -> Bed {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    if let Some(gpg) = gpg {
        repo.set_signer(gpg);
    }
    repo.add(pkgs);
    let mirror = Mirror::start(&dir);
    let port = free_port();
    let host = TestEnv::builder()
        .repo(
            "core",
            &[format!("http://127.0.0.1:{port}/$repo/$arch"), mirror.url()],
        )
        .build();
    Bed {
        tmp,
        dir,
        repo,
        mirror,
        host,
        port,
    }
}

impl Bed {
    fn serve(&self) -> Serve {
        Serve::start(
            &format!("127.0.0.1:{}", self.port),
            &self.host,
            &self.tmp.path().join("state"),
            &[],
        )
    }

    fn seeder_conf(&self) -> PathBuf {
        let conf = self.tmp.path().join("seeder.conf");
        write_pactor_conf(&conf, "");
        conf
    }
}

#[test]
fn pacman_syu_through_serve_installs_from_the_swarm_and_serve_seeds_it_back() {
    let keys = tempfile::tempdir().unwrap();
    let gpg = Gpg::new(keys.path());
    let v1 = [
        Pkg::new("foo", "1.0-1").depends("bar").payload(2_000_000),
        Pkg::new("bar", "1.0-1").payload(1_000_000),
    ];
    let mut b = bed(&v1, Some(&gpg));
    publish(&b.dir, &[]);
    let seeder = SeedProcess::dir(&b.dir, &b.seeder_conf());
    seeder.wait_seeding(2);
    b.host
        .write_pactor_conf(&format!("[options]\nPeer = 127.0.0.1:{}\n", seeder.port));
    let serve = b.serve();
    let client = client_of(&serve, Some(&gpg));

    let out = run(client.pacman(&["-Sy", "--noconfirm", "foo"]));
    out.assert_ok();
    assert_eq!(installed(&client), ["bar-1.0-1", "foo-1.0-1"]);

    // A new release: published, picked up by the seeder, installed by -Syu through serve.
    let v2 = [
        Pkg::new("foo", "1.1-1").depends("bar").payload(2_000_000),
        Pkg::new("bar", "1.1-1").payload(1_000_000),
    ];
    b.repo.add(&v2);
    publish(&b.dir, &[]);
    seeder.wait_for(|line| line.contains("stopped seeding foo-1.0-1"));
    seeder.wait_seeding(2);
    let out = run(client.pacman(&["-Syu", "--noconfirm"]));
    out.assert_ok();
    assert_eq!(installed(&client), ["bar-1.1-1", "foo-1.1-1"]);

    let total: u64 = v1.iter().chain(&v2).map(|p| size(b.repo.path(p))).sum();
    assert!(
        b.mirror.package_bytes() * 20 <= total,
        "the mirror sent {} of {total} package bytes\n{}",
        b.mirror.package_bytes(),
        serve.log()
    );
    assert!(
        b.mirror.count("core.db") >= 2,
        "databases came from upstream"
    );
    assert_eq!(
        b.mirror.count("core.torrents"),
        2,
        "one index per new database"
    );
    // pacman checked every package's signature, which serve took from the torrent index.
    assert_eq!(b.mirror.count(".pkg.tar.zst.sig"), 0);
    for pkg in v1.iter().chain(&v2) {
        assert!(
            client
                .cache_dir()
                .join(format!("{}.sig", pkg.filename()))
                .is_file(),
            "{}",
            pkg.filename()
        );
    }

    // It also answers its peers' HTTP on that port for the small files it seeds, as every
    // pactor peer does (src/swarm/peer_http.rs); a large one goes by BitTorrent only.
    let [foo, bar] = &v2;
    assert!(size(b.repo.path(bar)) <= 1024 * 1024, "bar is a small file");
    let expected = std::fs::read(b.repo.path(bar)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http(serve.peer_port, "GET", &format!("/{}", bar.filename()));
        if let Some((200, body)) = &answer {
            assert!(*body == expected, "{} bytes over HTTP", body.len());
            break;
        }
        // serve seeds what it served once it has hashed it.
        assert!(
            Instant::now() < deadline,
            "serve's peer port answered {:?} for a file it served",
            answer.map(|a| a.0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        http(serve.peer_port, "GET", &format!("/{}", foo.filename())).map(|a| a.0),
        Some(404)
    );

    // What serve served, it seeds: with the original seeder gone, another machine's pactor
    // gets the release from serve's peer port alone.
    drop(seeder);
    b.mirror.clear_log();
    let other = TestEnv::builder().repo("core", &[b.mirror.url()]).build();
    other.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        serve.peer_port
    ));
    run(other.pactor(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(installed(&other), ["bar-1.1-1", "foo-1.1-1"]);
    assert_eq!(
        b.mirror.package_bytes(),
        0,
        "serve seeded the files it served\n{}",
        serve.log()
    );
}

/// `pactor seed --dir DIR` on `port`, started after `delay`.
fn seed_later(
    dir: &Path,
    conf: &Path,
    port: u16,
    delay: Duration,
) -> std::thread::JoinHandle<Child> {
    let (dir, conf) = (dir.to_owned(), conf.to_owned());
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        Command::new(pactor_bin())
            .arg("seed")
            .arg("--dir")
            .arg(&dir)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--rescan", "1"])
            .env("PACTOR_CONF", &conf)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    })
}

#[test]
fn a_swarm_that_starts_slow_does_not_make_pacman_time_out() {
    // One package that a slow mirror alone would need half a minute for; its only seeder
    // appears 20 s after pacman asks. pacman (with its 10 s low-speed abort) must get verified
    // bytes all along: from the mirror, checked piece by piece against the torrent published
    // beside the package, until the swarm shows up and finishes the file.
    let pkg = Pkg::new("big", "1.0-1").payload(5_000_000);
    let b = bed(std::slice::from_ref(&pkg), None);
    publish(&b.dir, &["--torrent-files"]);
    b.mirror.set_rate_limit(Some(150_000));
    let seed_port = free_port();
    b.host
        .write_pactor_conf(&format!("[options]\nPeer = 127.0.0.1:{seed_port}\n"));
    let serve = b.serve();
    let client = client_of(&serve, None);

    let seeder = seed_later(&b.dir, &b.seeder_conf(), seed_port, Duration::from_secs(20));
    let started = Instant::now();
    let out = run(client.pacman(&["-Sy", "--noconfirm", "big"]));
    let mut seeder = seeder.join().unwrap();
    let _ = seeder.kill();
    let _ = seeder.wait();
    out.assert_ok();
    assert!(
        !out.stderr.contains("too slow") && !out.stderr.contains("failed retrieving"),
        "{}",
        out.stderr
    );
    assert_eq!(installed(&client), ["big-1.0-1"]);
    let total = size(b.repo.path(&pkg));
    // The mirror logs a transfer when it ends; serve dropped this one when the swarm overtook.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.mirror.package_bytes() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let from_mirror = b.mirror.package_bytes();
    assert!(
        from_mirror > 0 && from_mirror < total,
        "the mirror bridged the wait ({from_mirror} of {total} bytes) and the swarm finished \
         after {:?}\n{}",
        started.elapsed(),
        serve.log()
    );
}

#[test]
fn pacman_resumes_a_part_file_through_serve() {
    let pkg = Pkg::new("foo", "1.0-1").payload(1_000_000);
    let b = bed(std::slice::from_ref(&pkg), None);
    let serve = b.serve();
    let bytes = std::fs::read(b.repo.path(&pkg)).unwrap();
    // First while serve is still fetching the file, then from serve's cache.
    for (round, cut) in [(1, 400_000usize), (2, 700_000)] {
        let client = client_of(&serve, None);
        std::fs::write(
            client.cache_dir().join(format!("{}.part", pkg.filename())),
            &bytes[..cut],
        )
        .unwrap();
        let out = run(client.pacman(&["-Sy", "--noconfirm", "--debug", "foo"]));
        out.assert_ok();
        let log = format!("{}{}", out.stdout, out.stderr);
        assert!(
            log.contains(&format!("attempting continuation from {cut} bytes")),
            "round {round}: {log}"
        );
        assert!(log.contains("response code 206"), "round {round}: {log}");
        assert_eq!(installed(&client), ["foo-1.0-1"]);
        assert_eq!(
            std::fs::read(client.cache_dir().join(pkg.filename())).unwrap(),
            bytes
        );
    }
    assert_eq!(b.mirror.count(&pkg.filename()), 1, "{}", serve.log());
}

#[test]
fn three_concurrent_pacman_runs_fetch_each_file_once() {
    let pkgs = [
        Pkg::new("foo", "1.0-1").depends("bar").payload(1_000_000),
        Pkg::new("bar", "1.0-1").payload(1_000_000),
    ];
    let b = bed(&pkgs, None);
    // Slow enough that the three runs overlap in every download.
    b.mirror.set_rate_limit(Some(1_000_000));
    let serve = b.serve();
    let clients: Vec<TestEnv> = (0..3).map(|_| client_of(&serve, None)).collect();
    let began = Instant::now();
    let runs: Vec<_> = clients
        .iter()
        .map(|c| {
            let cmd = c.pacman(&["-Sy", "--noconfirm", "foo"]);
            std::thread::spawn(move || (began.elapsed(), run(cmd), began.elapsed()))
        })
        .collect();
    let runs: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    for (_, out, _) in &runs {
        assert!(out.code == Some(0), "{}\n{}", out.stderr, serve.log());
    }
    // They did overlap: the last one started well before the first one finished.
    let last_start = runs.iter().map(|r| r.0).max().unwrap();
    let first_end = runs.iter().map(|r| r.2).min().unwrap();
    assert!(
        last_start + Duration::from_secs(1) < first_end,
        "{last_start:?} {first_end:?}"
    );
    for c in &clients {
        assert_eq!(installed(c), ["bar-1.0-1", "foo-1.0-1"]);
    }
    for pkg in &pkgs {
        let name = pkg.filename();
        assert_eq!(b.mirror.count(&name), 1, "{name}\n{}", serve.log());
        assert_eq!(serve.fetches(&name), 1, "{name}\n{}", serve.log());
    }
}

#[test]
fn a_corrupt_upstream_copy_never_reaches_pacman() {
    let pkg = Pkg::new("foo", "1.0-1").payload(300_000);
    let b = bed(std::slice::from_ref(&pkg), None);
    b.mirror.set_fault(&pkg.filename(), Fault::Corrupt);
    let serve = b.serve();
    let client = client_of(&serve, None);
    let out = run(client.pacman(&["-Sy", "--noconfirm", "foo"]));
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(client.installed().is_empty());
    // pacman got an error status, not a byte of the bad copy.
    let leftovers: Vec<String> = client
        .cache_files()
        .into_iter()
        .filter(|f| f.starts_with("foo"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(serve.log().contains("sha256"), "{}", serve.log());

    // A second upstream with a good copy: serve moves on to it.
    let good = Mirror::start(&b.dir);
    b.host.write_pactor_conf(&format!(
        "[options]\nUpstream = {}\nUpstream = {}\n",
        b.mirror.url(),
        good.url()
    ));
    drop(serve);
    let serve = b.serve();
    let second = client_of(&serve, None);
    run(second.pacman(&["-Sy", "--noconfirm", "foo"])).assert_ok();
    assert_eq!(installed(&second), ["foo-1.0-1"]);
    assert_eq!(good.count(&pkg.filename()), 1);
}

/// `curl` with the path sent exactly as written; returns (status, headers, body).
fn curl(url: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let (head, body) = (tmp.path().join("head"), tmp.path().join("body"));
    let out = Command::new("curl")
        .args(["-s", "--path-as-is", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&head)
        .args(["-w", "%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        code,
        std::fs::read_to_string(&head).unwrap_or_default(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn traversal_attempts_get_404_or_400_and_read_nothing_outside_the_cache() {
    let pkgs = [
        Pkg::new("foo", "1.0-1").payload(100_000),
        Pkg::new("bar", "1.0-1").payload(100_000),
    ];
    let b = bed(&pkgs, None);
    const MARKER: &[u8] = b"TOP-SECRET-MARKER";
    let secret = b.tmp.path().join("secret");
    std::fs::write(&secret, MARKER.repeat(10)).unwrap();
    let cache = b.host.cache_dir();
    // In serve's cache: a listed name that is a symlink to the secret, a file no database
    // lists, and a listed name whose bytes are not the database's.
    std::os::unix::fs::symlink(&secret, cache.join(pkgs[1].filename())).unwrap();
    std::fs::write(cache.join("unlisted-1.0-1-x86_64.pkg.tar.zst"), MARKER).unwrap();
    let foo = std::fs::read(b.repo.path(&pkgs[0])).unwrap();
    let mut forged = MARKER.repeat(foo.len() / MARKER.len() + 1);
    forged.truncate(foo.len());
    std::fs::write(cache.join(pkgs[0].filename()), &forged).unwrap();
    let serve = b.serve();
    let base = serve.url();
    // The database first, as pacman would.
    assert_eq!(curl(&format!("{base}/core/x86_64/core.db"), &[]).0, 200);

    for (path, expected) in [
        ("/core/x86_64/../../secret", 400),
        ("/core/x86_64/..%2F..%2Fsecret", 400),
        ("/core/x86_64/%2e%2e%2f%2e%2e%2fsecret", 400),
        ("/core/x86_64/..%5C..%5Csecret", 400),
        ("/core/x86_64/%2Ftmp%2Fsecret", 400),
        ("/%2e%2e/x86_64/core.db", 400),
        ("/core/../core/x86_64/core.db", 400),
        ("/core/x86_64/foo%00.pkg.tar.zst", 400),
        ("/core/x86_64/.core.db.tmp", 400),
        ("/core/x86_64/secret", 404),
        ("/core/x86_64/unlisted-1.0-1-x86_64.pkg.tar.zst", 404),
        ("/core/x86_64/unlisted-1.0-1-x86_64.pkg.tar.zst.sig", 404),
        ("/core/x86_64/download-pactor-serve", 404),
        ("/other/x86_64/other.db", 404),
        ("/core/x86_64/core.db/x", 400),
    ] {
        let (code, _, body) = curl(&format!("{base}{path}"), &[]);
        assert_eq!(code, expected, "{path}");
        assert!(
            !body.windows(MARKER.len()).any(|w| w == MARKER),
            "{path} leaked the secret"
        );
    }
    // The symlinked and the forged names are served with the database's bytes.
    for pkg in &pkgs {
        let (code, _, body) = curl(&format!("{base}/core/x86_64/{}", pkg.filename()), &[]);
        assert_eq!(code, 200);
        assert!(
            body == std::fs::read(b.repo.path(pkg)).unwrap(),
            "{}",
            pkg.filename()
        );
    }
    assert_eq!(
        b.mirror.count(&pkgs[0].filename()),
        1,
        "the forged copy was refetched"
    );
    assert_eq!(std::fs::read(&secret).unwrap(), MARKER.repeat(10));
}

#[test]
fn http_semantics_pacman_relies_on() {
    let pkg = Pkg::new("foo", "1.0-1").payload(100_000);
    let b = bed(std::slice::from_ref(&pkg), None);
    let serve = b.serve();
    let base = format!("{}/core/x86_64", serve.url());
    let bytes = std::fs::read(b.repo.path(&pkg)).unwrap();
    let url = format!("{base}/{}", pkg.filename());

    let (code, db_headers, _) = curl(&format!("{base}/core.db"), &[]);
    assert_eq!(code, 200);
    let db_modified = header(&db_headers, "last-modified").unwrap().to_owned();
    // pacman's -Sy with the database it has: 304, no body.
    let (code, _, body) = curl(
        &format!("{base}/core.db"),
        &["-H", &format!("If-Modified-Since: {db_modified}")],
    );
    assert_eq!((code, body.len()), (304, 0));

    // HEAD before and after the file is fetched: the database's size, no body.
    for _ in 0..2 {
        let (code, headers, body) = curl(&url, &["-I"]);
        assert_eq!(code, 200);
        assert_eq!(
            header(&headers, "content-length"),
            Some(bytes.len().to_string().as_str())
        );
        assert!(header(&headers, "last-modified").is_some(), "{headers}");
        // With -I, curl writes the headers where the body would go: there was no body.
        assert_eq!(String::from_utf8_lossy(&body), headers);
        let (code, _, body) = curl(&url, &[]);
        assert_eq!(code, 200);
        assert!(body == bytes);
    }
    let (code, headers, body) = curl(&url, &["-H", "Range: bytes=100-199"]);
    assert_eq!(code, 206);
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes 100-199/{}", bytes.len()).as_str())
    );
    assert!(body == bytes[100..200]);
    let (code, headers, _) = curl(&url, &["-H", &format!("Range: bytes={}-", bytes.len())]);
    assert_eq!(code, 416);
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes */{}", bytes.len()).as_str())
    );
    assert_eq!(curl(&url, &["-X", "POST"]).0, 405);
    // The files database passes through; the index of a repo that publishes none is a 404.
    let (code, _, body) = curl(&format!("{base}/core.files"), &[]);
    assert_eq!(code, 200);
    assert!(body == std::fs::read(b.dir.join("core.files")).unwrap());
    assert_eq!(curl(&format!("{base}/core.torrents"), &[]).0, 404);
    assert_eq!(
        curl(&format!("{base}/nothing-1-1-any.pkg.tar.zst"), &[]).0,
        404
    );
    // The database was fetched once per request that asked for it, the file once.
    assert_eq!(b.mirror.count(&pkg.filename()), 1);
}

#[test]
fn a_non_loopback_address_needs_allow_remote() {
    let b = bed(&[Pkg::new("foo", "1.0-1")], None);
    let port = free_port();
    let mut cmd = Command::new(pactor_bin());
    cmd.arg("serve")
        .args(["--listen", &format!("0.0.0.0:{port}")])
        .arg("--config")
        .arg(b.host.conf())
        .arg("--state-dir")
        .arg(b.tmp.path().join("state"))
        .env("PACTOR_CONF", b.host.pactor_conf_path());
    let out = run(cmd);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("error: refusing to listen on 0.0.0.0:"),
        "{}",
        out.stderr
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let serve = Serve::start(
        &format!("0.0.0.0:{port}"),
        &b.host,
        &b.tmp.path().join("state"),
        &["--allow-remote"],
    );
    assert_eq!(
        curl(&format!("{}/core/x86_64/core.db", serve.url()), &[]).0,
        200
    );
}
