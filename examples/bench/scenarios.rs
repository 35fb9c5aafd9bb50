//! The scenarios and the contenders. Every contender run starts from an empty root and cache
//! (its own temp dir) and downloads the whole workload; contenders alternate within each
//! repetition, in a rotating order, so slow drifts of the machine hit all of them alike.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::Options;
use crate::bed::TestEnv;
use crate::measure::{self, Measured};
use crate::services::Services;
use crate::workload::{self, Kind, Workload};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Ceiling,
    Congested,
    Fleet,
    Nothing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Contender {
    /// `pacman -Syw`, ParallelDownloads = 5.
    Pacman,
    /// `aria2c -j5 -x4` fed the same URLs (what powerpill does).
    Aria2c,
    /// `pactor -Syw` with no torrent index: its HTTP path.
    PactorHttp,
    /// `pactor -Syw` with the index and the swarm.
    PactorSwarm,
}

impl Contender {
    pub fn label(self) -> &'static str {
        match self {
            Contender::Pacman => "pacman -Syw",
            Contender::Aria2c => "aria2c -j5 -x4",
            Contender::PactorHttp => "pactor -Syw (HTTP)",
            Contender::PactorSwarm => "pactor -Syw (swarm)",
        }
    }
}

/// One contender run (one client of a fleet).
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub scenario: &'static str,
    pub workload: Kind,
    pub contender: Contender,
    /// What else varied: seeders, fleet size.
    pub seeders: usize,
    pub clients: usize,
    pub rep: usize,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub max_rss_kb: u64,
    pub ok: bool,
    /// Bytes of all package files wanted by one client.
    pub update_bytes: u64,
    /// Package bytes the mirror sent and bytes the seeders uploaded during the run (for a
    /// fleet: during the whole fleet's run, the same on each of its clients).
    pub mirror_bytes: u64,
    pub seeder_bytes: u64,
    /// For a fleet: the most bytes its run added to the scratch filesystem (the clients'
    /// files, in memory on a tmpfs), the same on each of its clients.
    pub scratch_peak_bytes: u64,
}

pub fn run_all(options: &Options) -> Vec<Run> {
    let wanted = |s| options.only.is_empty() || options.only.contains(&s);
    let mut runs = Vec::new();
    if wanted(Scenario::Ceiling) {
        for kind in [Kind::Typical, Kind::Big, Kind::Small] {
            if !options.workloads.is_empty() && !options.workloads.contains(&kind) {
                continue;
            }
            runs.extend(ceiling(options, kind));
        }
    }
    if wanted(Scenario::Congested) {
        runs.extend(congested(options));
    }
    if wanted(Scenario::Fleet) {
        runs.extend(fleet(options));
    }
    if wanted(Scenario::Nothing) {
        runs.extend(nothing_to_do(options));
    }
    runs
}

/// The same list rotated by `by`, so each contender goes first in turn.
fn rotated<T: Copy>(items: &[T], by: usize) -> Vec<T> {
    let mut out = items.to_vec();
    out.rotate_left(by % items.len().max(1));
    out
}

/// Where the services keep their files: beside the clients' roots, in the temporary
/// directory (a tmpfs under `scripts/bench`).
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join("pactor-bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Scenario 1: the mirror unthrottled, one seeder.
fn ceiling(options: &Options, kind: Kind) -> Vec<Run> {
    let workload = workload::prepare(kind, &options.work, options.quick, options.seed);
    let mut services = Services::start(&workload, &scratch(), None);
    services.seeders(1, None);
    let contenders: Vec<Contender> = [
        Contender::Pacman,
        Contender::Aria2c,
        Contender::PactorHttp,
        Contender::PactorSwarm,
    ]
    .into_iter()
    .filter(|c| options.contenders.is_empty() || options.contenders.contains(c))
    .collect();
    let mut runs = Vec::new();
    for rep in 0..options.reps {
        for contender in rotated(&contenders, rep) {
            eprintln!(":: ceiling, {}: {} #{rep}", kind.label(), contender.label());
            runs.push(one_run(options, &services, "ceiling", contender, 1, rep));
        }
    }
    runs
}

/// Scenario 2: the mirror capped at 10 MB/s in all; 1 and 3 unthrottled seeders.
fn congested(options: &Options) -> Vec<Run> {
    let workload = workload::prepare(Kind::Typical, &options.work, options.quick, options.seed);
    let mut services = Services::start(&workload, &scratch(), Some(MIRROR_RATE));
    let http = [
        Contender::Pacman,
        Contender::Aria2c,
        Contender::PactorHttp,
        Contender::PactorSwarm,
    ];
    let mut runs = Vec::new();
    for rep in 0..options.reps {
        services.seeders(1, None);
        for contender in rotated(&http, rep) {
            eprintln!(":: congested, 1 seeder: {} #{rep}", contender.label());
            runs.push(one_run(options, &services, "congested", contender, 1, rep));
        }
        services.seeders(3, None);
        eprintln!(":: congested, 3 seeders: pactor #{rep}");
        runs.push(one_run(
            options,
            &services,
            "congested",
            Contender::PactorSwarm,
            3,
            rep,
        ));
    }
    runs
}

/// The congested mirror's cap, bytes per second.
const MIRROR_RATE: u64 = 10_000_000;
/// The fleet's seedbox upload cap.
const SEEDBOX_RATE: &str = "20M";

/// Scenario 3: K clients at once against one capped seedbox and the capped mirror.
fn fleet(options: &Options) -> Vec<Run> {
    let workload = workload::prepare(Kind::Typical, &options.work, options.quick, options.seed);
    let mut services = Services::start(&workload, &scratch(), Some(MIRROR_RATE));
    services.seeders(1, Some(SEEDBOX_RATE));
    let sizes: &[usize] = if !options.fleet_sizes.is_empty() {
        &options.fleet_sizes
    } else if options.quick {
        &[1, 4, 8]
    } else {
        &[1, 4, 8, 16]
    };
    let contenders: &[Contender] = if options.no_fleet_baseline {
        &[Contender::PactorSwarm]
    } else {
        &[Contender::PactorSwarm, Contender::Pacman]
    };
    let mut runs = Vec::new();
    for &k in sizes {
        for &contender in contenders {
            eprintln!(":: fleet of {k}: {}", contender.label());
            runs.extend(fleet_run(options, &services, contender, k));
        }
    }
    runs
}

/// Scenario 4: `-Syu` on a system that is up to date (1,000 packages installed).
fn nothing_to_do(options: &Options) -> Vec<Run> {
    let workload = workload::prepare(Kind::Small, &options.work, options.quick, options.seed);
    let services = Services::start(&workload, &scratch(), None);
    let env = client(&services, Contender::PactorSwarm, options);
    let mut install = env.pacman(&["-Sy", "--noconfirm"]);
    install.args(&workload.names);
    let log = options.work.join("nothing-install.log");
    assert!(
        measure::run(&mut install, &log).ok,
        "installing the workload failed: see {}",
        log.display()
    );
    let mut runs = Vec::new();
    for rep in 0..options.reps.max(10) {
        for contender in rotated(&[Contender::Pacman, Contender::PactorSwarm], rep) {
            let mut cmd = match contender {
                Contender::Pacman => env.pacman(&["-Syu", "--noconfirm"]),
                _ => env.pactor(&["-Syu", "--noconfirm"]),
            };
            let measured = measure::run(&mut cmd, &options.work.join("nothing.log"));
            runs.push(record(
                "nothing",
                &workload,
                contender,
                0,
                1,
                rep,
                measured,
                (0, 0),
            ));
        }
    }
    runs
}

/// A fresh root and cache whose pacman.conf names the mirror, with the contender's
/// pactor.conf.
fn client(services: &Services, contender: Contender, options: &Options) -> TestEnv {
    let env = TestEnv::builder()
        .repo(workload::REPO, &[services.mirror.url()])
        .build();
    match contender {
        Contender::PactorHttp => env.write_pactor_conf(&format!(
            "[options]\nTorrentIndex = {}/no-index/$repo.torrents\n",
            services.mirror.url()
        )),
        _ => env.write_pactor_conf(&format!(
            "[options]\nStallTimeout = {}\n",
            if options.quick { 3 } else { 5 }
        )),
    }
    if matches!(contender, Contender::PactorHttp | Contender::PactorSwarm) {
        has_run_pactor(&env);
    }
    env
}

/// Makes `env` a machine that has run pactor before, as every measured root of the nothing-to-do
/// scenario is after its first run: pactor keeps pacman-conf's answer in its `StateDir`
/// (`src/conf_cache.rs`) and runs pacman-conf again only when pacman.conf changes. A fresh root
/// would charge every run with that exec, which a machine pays once: 8-10 ms on an idle machine,
/// about 20 ms of a many-small run beside the mirror and the seeder. `pactor -S` with no target
/// reads pacman.conf and stops there, fetching nothing.
fn has_run_pactor(env: &TestEnv) {
    let out = env.pactor(&["-S"]).output().expect("pactor runs");
    let kept = env.state_dir().join("pacman-conf.cache");
    assert!(
        kept.exists(),
        "`pactor -S` kept no pacman-conf answer in {}: {}",
        kept.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The command a contender runs to fetch the whole workload into `env`'s cache.
fn command(env: &TestEnv, services: &Services, contender: Contender) -> Command {
    let workload = services.workload;
    match contender {
        Contender::Pacman => {
            let mut cmd = env.pacman(&["-Syw", "--noconfirm"]);
            cmd.args(&workload.names);
            cmd
        }
        Contender::PactorHttp | Contender::PactorSwarm => {
            let mut cmd = env.pactor(&["-Syw", "--noconfirm"]);
            cmd.args(&workload.names);
            cmd
        }
        Contender::Aria2c => {
            let urls = env.dir.path().join("urls.txt");
            let list: String = workload
                .files
                .iter()
                .map(|f| format!("{}/{f}\n", services.mirror.url()))
                .collect();
            std::fs::write(&urls, list).unwrap();
            let mut cmd = Command::new("aria2c");
            cmd.args([
                "-j5",
                "-x4",
                "--console-log-level=warn",
                "--summary-interval=0",
            ])
            .args([
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
            ])
            .args(["--allow-overwrite=true", "--auto-file-renaming=false"])
            .arg(format!("--dir={}", env.cache_dir().display()))
            .arg("-i")
            .arg(&urls);
            cmd
        }
    }
}

/// Did the run leave every package, whole, in the cache?
fn complete(env: &TestEnv, workload: &Workload) -> bool {
    workload.files.iter().all(|f| {
        let ours = std::fs::metadata(env.cache_dir().join(f)).map(|m| m.len());
        let theirs = std::fs::metadata(workload.dir.join(f)).map(|m| m.len());
        ours.is_ok() && ours.ok() == theirs.ok()
    })
}

fn one_run(
    options: &Options,
    services: &Services,
    scenario: &'static str,
    contender: Contender,
    seeders: usize,
    rep: usize,
) -> Run {
    let env = client(services, contender, options);
    services.mirror.clear_log();
    let uploaded = services.seeder_bytes();
    let log = log_path(options, scenario, contender);
    let mut measured = measure::run(&mut command(&env, services, contender), &log);
    measured.ok &= complete(&env, services.workload);
    let origin = (
        services.mirror.package_bytes(),
        services.seeder_bytes() - uploaded,
    );
    let run = record(
        scenario,
        services.workload,
        contender,
        seeders,
        1,
        rep,
        measured,
        origin,
    );
    if !run.ok {
        eprintln!("   failed: see {}", log.display());
    }
    run
}

/// K clients of one contender started together; one record per client.
fn fleet_run(options: &Options, services: &Services, contender: Contender, k: usize) -> Vec<Run> {
    let envs: Vec<TestEnv> = (0..k)
        .map(|_| client(services, contender, options))
        .collect();
    services.mirror.clear_log();
    let uploaded = services.seeder_bytes();
    let log = log_path(options, "fleet", contender);
    let scratch = crate::machine::PeakUse::follow(&std::env::temp_dir());
    let mut commands: Vec<Command> = envs
        .iter()
        .map(|env| command(env, services, contender))
        .collect();
    let running: Vec<_> = commands
        .iter_mut()
        .map(|cmd| measure::spawn(cmd, &log))
        .collect();
    let measured: Vec<Measured> = std::thread::scope(|scope| {
        let waits: Vec<_> = running
            .into_iter()
            .map(|r| scope.spawn(move || r.wait()))
            .collect();
        waits.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let scratch_peak_bytes = scratch.end();
    let origin = (
        services.mirror.package_bytes(),
        services.seeder_bytes() - uploaded,
    );
    envs.iter()
        .zip(measured)
        .enumerate()
        .map(|(i, (env, mut m))| {
            m.ok &= complete(env, services.workload);
            let mut run = record("fleet", services.workload, contender, 1, k, 0, m, origin);
            run.rep = i;
            run.scratch_peak_bytes = scratch_peak_bytes;
            run
        })
        .collect()
}

fn log_path(options: &Options, scenario: &str, contender: Contender) -> PathBuf {
    let dir: &Path = &options.work;
    dir.join(format!("{scenario}-{contender:?}.log").to_lowercase())
}

#[allow(clippy::too_many_arguments)]
fn record(
    scenario: &'static str,
    workload: &Workload,
    contender: Contender,
    seeders: usize,
    clients: usize,
    rep: usize,
    m: Measured,
    (mirror_bytes, seeder_bytes): (u64, u64),
) -> Run {
    Run {
        scenario,
        workload: workload.kind,
        contender,
        seeders,
        clients,
        rep,
        wall_s: m.wall.as_secs_f64(),
        cpu_s: m.cpu.as_secs_f64(),
        max_rss_kb: m.max_rss_kb,
        ok: m.ok,
        update_bytes: workload.total,
        mirror_bytes,
        seeder_bytes,
        scratch_peak_bytes: 0,
    }
}
