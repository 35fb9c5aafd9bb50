//! Small files over HTTP between pactor peers (src/swarm/peer_http.rs): a seeder answers
//! `GET /<file>` on its BitTorrent port for the small files it seeds, and a run asks its peers
//! there before it adds a torrent, judging what they send like any mirror copy.

mod bed;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bed::*;

fn repo_with(dir: &Path, pkgs: &[Pkg]) -> Repo {
    let mut repo = Repo::new(dir, "core");
    repo.add(pkgs);
    let mut publish = Command::new(pactor_bin());
    publish.arg("publish").arg(dir);
    run(publish).assert_ok();
    repo
}

#[test]
fn a_seeder_answers_http_on_its_bittorrent_port_for_its_small_files_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let (small, big) = (
        Pkg::new("small", "1.0-1").payload(70_000),
        Pkg::new("big", "1.0-1").payload(3_000_000),
    );
    let repo = repo_with(&dir, &[small.clone(), big.clone()]);
    let conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&conf, "");
    let seeder = SeedProcess::dir(&dir, &conf);
    seeder.wait_seeding(2);

    let expected = std::fs::read(repo.path(&small)).unwrap();
    let (status, body) = http(seeder.port, "GET", &format!("/{}", small.filename())).unwrap();
    assert_eq!(status, 200);
    assert!(body == expected, "the file's bytes, {} of them", body.len());
    let (status, body) = http(seeder.port, "HEAD", &format!("/{}", small.filename())).unwrap();
    assert_eq!((status, body.len()), (200, 0));
    // What it sent over HTTP counts in what it uploaded.
    assert!(seeder.uploaded() >= expected.len() as u64 * 9 / 10);

    // A large file goes by BitTorrent only; nothing but seeded files, by plain name, is served.
    let refused = [
        format!("/{}", big.filename()),
        "/core.db".into(),
        "/core.torrents".into(),
        format!("/../repo/{}", small.filename()),
        format!("/%2E%2E%2Frepo%2F{}", small.filename()),
        format!("/x/{}", small.filename()),
        "/".into(),
    ];
    for path in &refused {
        assert_eq!(http(seeder.port, "GET", path).unwrap().0, 404, "{path}");
    }
    let put = http(seeder.port, "PUT", &format!("/{}", small.filename()));
    assert_eq!(put.unwrap().0, 405);

    // A super-seeder gives each piece once and no whole files: it does not answer HTTP.
    let super_seeder = SeedProcess::start(
        &["--dir".as_ref(), dir.as_os_str(), "--super-seed".as_ref()],
        &conf,
    );
    super_seeder.wait_seeding(2);
    assert_eq!(
        http(super_seeder.port, "GET", &format!("/{}", small.filename())),
        None
    );
}

/// A seeder serves at most 64 peers' HTTP connections at once (`MAX_CONNECTIONS` in
/// src/swarm/peer_http.rs): one more is closed unanswered, and a slot given back is served
/// again. Anyone can connect to a seeder's BitTorrent port.
#[test]
fn a_seeder_serves_a_bounded_number_of_http_connections_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let small = Pkg::new("small", "1.0-1").payload(30_000);
    repo_with(&dir, std::slice::from_ref(&small));
    let conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&conf, "");
    let seeder = SeedProcess::dir(&dir, &conf);
    seeder.wait_seeding(1);
    let path = format!("/{}", small.filename());
    let answered = || http(seeder.port, "GET", &path).map(|(status, _)| status);
    assert_eq!(answered(), Some(200));

    // Requests begun and never finished: each holds its connection's slot until the header
    // timeout (10 s).
    let held: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", seeder.port)).unwrap();
            stream.write_all(b"GET /").unwrap();
            stream
        })
        .collect();
    // They reach the HTTP server one by one: until the last does, a request may still find
    // a slot.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while answered().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "a 65th connection is still served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(answered(), None, "a connection over the limit is closed");

    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while answered() != Some(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "slots given back are not served again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A peer that asks for files and then reads nothing does not hold its connection (and one of
/// the 64 slots) for ever: once the answer has made no progress for 10 s (`WRITE_TIMEOUT` in
/// src/swarm/peer_http.rs) the seeder drops it, and the client finds the answer cut short when it
/// finally reads. Had the seeder waited, the client would read every file it asked for. Ten
/// pipelined requests for a file of 900 KB ask for more than the two sockets' buffers hold.
#[test]
fn a_seeder_drops_a_peer_that_takes_none_of_its_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let small = Pkg::new("small", "1.0-1").payload(900_000);
    let repo = repo_with(&dir, std::slice::from_ref(&small));
    let size = std::fs::metadata(repo.path(&small)).unwrap().len();
    assert!(size <= 1024 * 1024, "a file served over HTTP");
    let conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&conf, "");
    let seeder = SeedProcess::dir(&dir, &conf);
    seeder.wait_seeding(1);

    let mut stream = TcpStream::connect(("127.0.0.1", seeder.port)).unwrap();
    let request = format!("GET /{} HTTP/1.1\r\nHost: peer\r\n\r\n", small.filename());
    stream.write_all(request.repeat(10).as_bytes()).unwrap();
    // The seeder's writes block within milliseconds; the wait leaves its 10 s a wide margin on
    // a loaded machine (a read before the timeout would let the whole answer through).
    std::thread::sleep(Duration::from_secs(16));

    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200") && (answer.len() as u64) < 10 * size,
        "{} bytes for ten files of {size}: the seeder should have given up on the answer",
        answer.len()
    );
}

/// A repo of `pkgs` with a mirror, a super-seeder (which does not answer HTTP) and a peer
/// that does (the test bed's HTTP server on the same files, `fault` on every package), and a
/// run of `pactor <op>` of them all with both peers as `Peer =` lines.
struct Run {
    out: Output,
    mirror: Mirror,
    peer: Mirror,
    installed: usize,
    /// The package files in the cache.
    cached: Vec<String>,
}

/// `op` is `-Sy`, or `-Syw`: then the download process stops after the prefetch, and a peer's
/// small copies come whole over its pipe rather than staged to be seeded.
fn run_with_http_peer(pkgs: &[Pkg], fault: Option<Fault>, op: &str) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    repo_with(&dir, pkgs);
    let mirror = Mirror::start(&dir);
    let peer = Mirror::start(&dir);
    if let Some(fault) = fault {
        peer.set_fault(".pkg.tar.zst", fault);
    }
    let conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&conf, "");
    let seeder = SeedProcess::start(
        &["--dir".as_ref(), dir.as_os_str(), "--super-seed".as_ref()],
        &conf,
    );
    seeder.wait_seeding(pkgs.len());
    let env = TestEnv::builder().repo("core", &[mirror.url()]).build();
    env.write_pactor_conf(&format!(
        "[options]\nPeer = 127.0.0.1:{}\nPeer = 127.0.0.1:{}\nStallTimeout = 10\n",
        peer.port(),
        seeder.port
    ));
    let names: Vec<String> = pkgs.iter().map(|p| p.name.clone()).collect();
    let mut args = vec![op, "--noconfirm"];
    args.extend(names.iter().map(String::as_str));
    let out = run(env.pactor(&args));
    out.assert_ok();
    Run {
        installed: env.installed().len(),
        cached: env
            .cache_files()
            .into_iter()
            .filter(|f| f.ends_with(".pkg.tar.zst"))
            .collect(),
        out,
        mirror,
        peer,
    }
}

fn small_pkgs(n: usize) -> Vec<Pkg> {
    (0..n)
        .map(|i| Pkg::new(&format!("small{i}"), "1.0-1").payload(20_000))
        .collect()
}

/// The run asks a `Peer =` over HTTP for each small file before adding its torrent; a large
/// file is never asked for. Here the peer is the test bed's HTTP server, whose request log
/// shows what was asked.
#[test]
fn a_run_takes_small_files_from_a_peers_http_and_large_ones_by_bittorrent() {
    for op in ["-Sy", "-Syw"] {
        small_over_http_large_by_bittorrent(op);
    }
}

fn small_over_http_large_by_bittorrent(op: &str) {
    let small = small_pkgs(6);
    let big = Pkg::new("big", "1.0-1").payload(3_000_000);
    let mut all = small.clone();
    all.push(big.clone());
    let r = run_with_http_peer(&all, None, op);
    r.assert_all_fetched_from_peers(&all, op);
    let asked: Vec<String> = r
        .peer
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.status == 200)
        .map(|r| r.path)
        .collect();
    for pkg in &small {
        assert!(
            asked.contains(&format!("/{}", pkg.filename())),
            "{} not asked over HTTP: {asked:?}",
            pkg.filename()
        );
    }
    assert!(
        !asked.iter().any(|p| p.contains(&big.filename())),
        "{asked:?}"
    );
}

/// A peer whose HTTP sends a copy the database refuses is not asked again, and the file comes
/// from the swarm: a handful of requests at most (those already under way), not one per file.
/// With `-w` the peer's copies come whole over the download process's pipe, not staged: the
/// root process judges them the same way.
#[test]
fn a_peer_whose_http_sends_a_bad_copy_is_dropped_and_the_swarm_serves_the_file() {
    for op in ["-Sy", "-Syw"] {
        a_bad_copy_over_http(op);
    }
}

fn a_bad_copy_over_http(op: &str) {
    let small = small_pkgs(12);
    let r = run_with_http_peer(&small, Some(Fault::Corrupt), op);
    r.assert_all_fetched_from_peers(&small, op);
    let lies = r
        .peer
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(".pkg.tar.zst"))
        .count();
    assert!(
        (1..=5).contains(&lies),
        "{lies} requests to the lying peer\n{}",
        r.out.stderr
    );
    let warning = format!("from peer 127.0.0.1:{}", r.peer.port());
    assert!(
        r.out.stdout.contains(&warning) || r.out.stderr.contains(&warning),
        "{}\n{}",
        r.out.stdout,
        r.out.stderr
    );
}

impl Run {
    /// Every one of `pkgs` is in the cache (and installed, unless `op` is `-Syw`), and the
    /// mirror sent none of them.
    fn assert_all_fetched_from_peers(&self, pkgs: &[Pkg], op: &str) {
        let mut expected: Vec<String> = pkgs.iter().map(|p| p.filename()).collect();
        expected.sort();
        let mut cached = self.cached.clone();
        cached.sort();
        assert_eq!(cached, expected, "{op}");
        let installed = if op == "-Syw" { 0 } else { pkgs.len() };
        assert_eq!(self.installed, installed, "{op}");
        assert_eq!(self.mirror.package_bytes(), 0, "{op}: {}", self.out.stdout);
    }
}
