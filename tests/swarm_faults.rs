//! Swarm faults: peers that claim pieces and never send them, peers that send garbage (as
//! pieces or instead of the protocol), trackers that are down or answer garbage. The download
//! completes every time, from the swarm or the mirror, with the database's bytes. (Every peer
//! disappearing mid-file: tests/tracker.rs.) All on 127.0.0.1; DHT, LSD, UPnP off.

mod bed;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bed::wire::UNCHOKE;
use bed::*;
use pactor::torrent::Info;

struct Bed {
    tmp: tempfile::TempDir,
    repo: Repo,
    mirror: Mirror,
    info: Vec<u8>,
    seeder_conf: std::path::PathBuf,
}

fn big() -> Pkg {
    Pkg::new("big", "1.0-1").payload(2_000_000)
}

fn bed() -> Bed {
    bed_with(&big())
}

/// A repo of `pkg` alone, published, behind a mirror.
fn bed_with(pkg: &Pkg) -> Bed {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = Repo::new(&dir, "core");
    repo.add(std::slice::from_ref(pkg));
    let mut publish = Command::new(pactor_bin());
    publish.arg("publish").arg(&dir);
    run(publish).assert_ok();
    let mirror = Mirror::start(&dir);
    let info = Info::from_file(&repo.path(pkg)).unwrap().to_bytes();
    let seeder_conf = tmp.path().join("seeder.conf");
    write_pactor_conf(&seeder_conf, "");
    Bed {
        tmp,
        repo,
        mirror,
        info,
        seeder_conf,
    }
}

impl Bed {
    fn seeder(&self) -> SeedProcess {
        let seeder = SeedProcess::dir(&self.tmp.path().join("repo"), &self.seeder_conf);
        seeder.wait_seeding(1);
        seeder
    }

    /// Runs `pactor -Sy big` with `conf` lines; checks it completes in time with the right
    /// bytes, and returns how many package bytes the mirror sent.
    fn install(&self, conf: &str, what: &str) -> u64 {
        let env = TestEnv::builder()
            .repo("core", &[self.mirror.url()])
            .build();
        env.write_pactor_conf(&format!("[options]\nStallTimeout = 2\n{conf}"));
        self.mirror.clear_log();
        let started = Instant::now();
        let out = run(env.pactor(&["-Sy", "--noconfirm", "big"]));
        out.assert_ok();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: took {:?}",
            started.elapsed()
        );
        let cached = env.cache_dir().join(big().filename());
        assert_eq!(
            std::fs::read(cached).unwrap(),
            std::fs::read(self.repo.path(&big())).unwrap(),
            "{what}"
        );
        assert_eq!(env.installed().len(), 1, "{what}");
        self.mirror.package_bytes()
    }
}

#[test]
fn peers_that_withhold_or_send_garbage_cannot_stop_the_download() {
    let b = bed();
    let size = std::fs::metadata(b.repo.path(&big())).unwrap().len();
    // Alone, each bad peer is found out and the mirror delivers.
    for behaviour in [
        Behaviour::Withholds,
        Behaviour::SendsGarbage,
        Behaviour::SpeaksGarbage,
    ] {
        let peer = BadPeer::start(b.info.clone(), behaviour);
        let from_mirror = b.install(
            &format!("Peer = 127.0.0.1:{}\n", peer.port),
            &format!("{behaviour:?} alone"),
        );
        assert_eq!(
            from_mirror, size,
            "{behaviour:?} alone: the mirror sent it all"
        );
        assert!(peer.connections() > 0, "{behaviour:?}: the peer was used");
        if behaviour != Behaviour::SpeaksGarbage {
            assert!(peer.requests() > 0, "{behaviour:?}: pieces were asked for");
        }
    }
    // Beside a good seeder, the download completes (from whom is the swarm's business).
    let seeder = b.seeder();
    for behaviour in [
        Behaviour::Withholds,
        Behaviour::SendsGarbage,
        Behaviour::SpeaksGarbage,
    ] {
        let peer = BadPeer::start(b.info.clone(), behaviour);
        b.install(
            &format!(
                "Peer = 127.0.0.1:{}\nPeer = 127.0.0.1:{}\n",
                peer.port, seeder.port
            ),
            &format!("{behaviour:?} beside a seeder"),
        );
        assert!(peer.connections() > 0, "{behaviour:?}: the peer was used");
    }
}

#[test]
fn peers_that_are_gone_do_not_hold_up_the_one_that_answers() {
    // A fleet's tracker goes on listing machines that announced themselves and were then
    // switched off (a CI farm's, after each job). Connecting to one goes unanswered until a
    // timeout; the run must still reach the live seeder well within its stall timeout, not
    // wait on the gone ones while the mirror sends the file.
    //
    // Small enough that the index carries its torrent whole: the run asks no peer for the
    // metadata (which would try every peer at once) and goes straight to its outgoing slots.
    let b = bed_with(&Pkg::new("big", "1.0-1").payload(150_000));
    let seeder = b.seeder();
    let gone = gone_before(&seeder, 6);
    // Later lines win: twice install()'s stall timeout, for a margin on a loaded machine.
    let conf = format!("StallTimeout = 4\n{}", peer_lines(&gone, &seeder));
    let from_mirror = b.install(&conf, "six gone peers, then a seeder");
    assert_eq!(from_mirror, 0, "the seeder sent it all, the mirror nothing");
}

#[test]
fn the_peer_that_sent_a_packages_metadata_is_the_first_asked_for_its_pieces() {
    // A package whose torrent the index does not carry (more than 8 pieces): its metadata is
    // asked of every listed peer at once, and the seeder, the one peer there, sends it. The
    // pieces must then be asked of that seeder first, not of the gone peers ahead of it in
    // whatever order librqbit kept them (a second each, at four at a time, outlasts the
    // stall timeout).
    let b = bed();
    let seeder = b.seeder();
    let gone = gone_before(&seeder, 40);
    let from_mirror = b.install(&peer_lines(&gone, &seeder), "forty gone peers and a seeder");
    assert_eq!(from_mirror, 0, "the seeder sent it all, the mirror nothing");
}

/// `count` addresses that never answer, listed before `seeder`: pactor tries peers in the order
/// of their addresses as text, so their ports are below the seeder's and as many digits long.
fn gone_before(seeder: &SeedProcess, count: usize) -> Vec<Unanswering> {
    let digits = |port: u16| port.to_string().len();
    let gone: Vec<Unanswering> = (1..seeder.port)
        .rev()
        .take_while(|&port| digits(port) == digits(seeder.port))
        .filter_map(|port| Unanswering::at(port).ok())
        .take(count)
        .collect();
    assert_eq!(gone.len(), count, "free ports below {}", seeder.port);
    gone
}

/// `Peer =` lines for the gone peers, then the seeder.
fn peer_lines(gone: &[Unanswering], seeder: &SeedProcess) -> String {
    gone.iter()
        .map(|peer| peer.port)
        .chain([seeder.port])
        .map(|port| format!("Peer = 127.0.0.1:{port}\n"))
        .collect()
}

#[test]
fn a_tracker_that_is_down_or_answers_garbage_costs_nothing_but_itself() {
    let b = bed();
    let seeder = b.seeder();
    // A tracker answering garbage: a file of noise served as /announce.
    let garbage = b.tmp.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("announce"), b"d8:intervali<<garbage\xff\xfe").unwrap();
    let garbage_tracker = Mirror::start(Path::new(&garbage));
    for (what, tracker) in [
        ("down", format!("http://127.0.0.1:{}/announce", free_port())),
        ("garbage", format!("{}/announce", garbage_tracker.url())),
    ] {
        let from_mirror = b.install(
            &format!("Tracker = {tracker}\nPeer = 127.0.0.1:{}\n", seeder.port),
            what,
        );
        assert_eq!(from_mirror, 0, "tracker {what}: the seeder served it all");
    }
    assert!(
        garbage_tracker
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/announce?")),
        "the garbage tracker was asked"
    );
}

#[test]
fn peers_that_connect_to_a_run_are_all_accepted_whatever_its_peers_per_package() {
    let small = Pkg::new("small", "1.0-1").payload(150_000);
    let b = bed_with(&small);
    // Withholding peers keep the run in the swarm (its one outgoing connection held) until the
    // stall timeout; meanwhile three peers of the fleet connect to it.
    let peers: Vec<BadPeer> = (0..3)
        .map(|_| BadPeer::start(b.info.clone(), Behaviour::Withholds))
        .collect();
    let env = TestEnv::builder().repo("core", &[b.mirror.url()]).build();
    let listen = free_port();
    let lines: String = peers
        .iter()
        .map(|p| format!("Peer = 127.0.0.1:{}\n", p.port))
        .collect();
    env.write_pactor_conf(&format!(
        "[options]\nStallTimeout = 8\nPeersPerPackage = 1\nListenPort = {listen}\n{lines}"
    ));
    let running = {
        let cmd = env.pactor(&["-Syw", "--noconfirm", "small"]);
        std::thread::spawn(move || run(cmd))
    };
    let info_hash = BadPeer::info_hash(&b.info);
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut fleet = Vec::new();
    while fleet.len() < 3 && Instant::now() < deadline {
        let peer_id = *format!("-FL0001-fleetpeer{:03}", fleet.len())
            .as_bytes()
            .first_chunk()
            .unwrap();
        match Wire::try_connect(listen, info_hash, &peer_id) {
            Some(wire) => fleet.push(wire),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    assert_eq!(
        fleet.len(),
        3,
        "the run answered the handshakes of 3 incoming peers"
    );
    for (n, wire) in fleet.iter_mut().enumerate() {
        // An accepted peer is unchoked at once (librqbit's connection writer begins so); a
        // refused one would see the connection closed with nothing said.
        let said = wire.messages_for(Duration::from_secs(2));
        assert!(
            said.iter().any(|(id, _)| *id == UNCHOKE),
            "incoming peer {n} was not unchoked: {said:?}"
        );
    }
    let outgoing: usize = peers.iter().map(BadPeer::connections).sum();
    assert_eq!(
        outgoing, 1,
        "PeersPerPackage = 1 held the run's own connections"
    );
    running.join().unwrap().assert_ok();
    assert_eq!(
        std::fs::read(env.cache_dir().join(small.filename())).unwrap(),
        std::fs::read(b.repo.path(&small)).unwrap(),
        "the mirror delivered it after the stall"
    );
}

#[test]
fn a_run_connects_to_at_most_four_peers_of_a_torrent_or_as_many_as_pactor_conf_says() {
    // A package small enough for its pieces to travel in the index: its torrent is live at once,
    // with no metadata to ask the peers for, so every connection counted is a torrent's.
    let small = Pkg::new("small", "1.0-1").payload(150_000);
    let b = bed_with(&small);
    for (setting, most) in [("", 4), ("PeersPerPackage = 2\n", 2)] {
        // Six peers that claim the file and hold every connection without serving it.
        let peers: Vec<BadPeer> = (0..6)
            .map(|_| BadPeer::start(b.info.clone(), Behaviour::Withholds))
            .collect();
        let env = TestEnv::builder().repo("core", &[b.mirror.url()]).build();
        let lines: String = peers
            .iter()
            .map(|p| format!("Peer = 127.0.0.1:{}\n", p.port))
            .collect();
        env.write_pactor_conf(&format!("[options]\nStallTimeout = 2\n{setting}{lines}"));
        run(env.pactor(&["-Syw", "--noconfirm", "small"])).assert_ok();
        assert_eq!(
            std::fs::read(env.cache_dir().join(small.filename())).unwrap(),
            std::fs::read(b.repo.path(&small)).unwrap(),
            "the mirror delivered it after the stall"
        );
        let connections: usize = peers.iter().map(BadPeer::connections).sum();
        assert!(
            (1..=most).contains(&connections),
            "{setting:?}: {connections} connections to the six peers"
        );
    }
}
