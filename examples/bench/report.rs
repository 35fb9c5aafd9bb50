//! BENCHMARKS.md, bench/results.json and the plots, from the runs of one harness run. Every
//! figure is a median over the repetitions of the same run; ratios compare contenders measured
//! side by side, which is what the targets are about.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Options;
use crate::machine::Step;
use crate::measure::{median, percentile};
use crate::scenarios::{Contender, Run};
use crate::workload::Kind;

const MB: f64 = 1_000_000.0;

/// Writes the results, the plots and BENCHMARKS.md; `machine` is [`crate::machine::describe`]
/// as taken before the run, while the working tree was still the one measured.
pub fn write(options: &Options, machine: &str, runs: &[Run], memory: &[Step], elapsed: Duration) {
    let dir = options.out.join("bench");
    std::fs::create_dir_all(&dir).expect("bench output directory");
    let json = serde_json::to_string_pretty(runs).expect("runs serialize");
    std::fs::write(dir.join("results.json"), json + "\n").expect("results.json");
    if !memory.is_empty() {
        let json = serde_json::to_string_pretty(memory).expect("steps serialize");
        std::fs::write(dir.join("memory-probe.json"), json + "\n").expect("memory-probe.json");
    }
    let fleet = FleetTable::from(runs);
    if !fleet.rows.is_empty() {
        crate::plot::fleet(&fleet, &dir);
    }
    let text = markdown(options, machine, runs, &fleet, memory, elapsed);
    std::fs::write(options.out.join("BENCHMARKS.md"), text).expect("BENCHMARKS.md");
    eprintln!(
        ":: wrote {} and {}",
        options.out.join("BENCHMARKS.md").display(),
        dir.display()
    );
}

/// The runs matching a filter.
fn select<'r>(runs: &'r [Run], f: impl Fn(&Run) -> bool + 'r) -> impl Iterator<Item = &'r Run> {
    runs.iter().filter(move |r| f(r))
}

fn median_of(runs: &[Run], f: impl Fn(&Run) -> bool, value: impl Fn(&Run) -> f64) -> f64 {
    let values: Vec<f64> = select(runs, f).map(value).collect();
    median(&values)
}

/// One row of the fleet table: a contender at one K.
pub struct FleetRow {
    pub contender: Contender,
    pub k: usize,
    pub p50: f64,
    pub p95: f64,
    /// Origin bytes (seedbox + mirror) over K x update size.
    pub origin: f64,
    /// CPU seconds of all K clients together.
    pub cpu: f64,
    /// The slowest client's time.
    pub max: f64,
    pub failed: usize,
    /// The most bytes the fleet's run held on the scratch filesystem.
    pub scratch_peak: u64,
}

pub struct FleetTable {
    pub rows: Vec<FleetRow>,
}

impl FleetTable {
    fn from(runs: &[Run]) -> FleetTable {
        let mut rows = Vec::new();
        for contender in [Contender::PactorSwarm, Contender::Pacman] {
            let mut ks: Vec<usize> =
                select(runs, |r| r.scenario == "fleet" && r.contender == contender)
                    .map(|r| r.clients)
                    .collect();
            ks.sort_unstable();
            ks.dedup();
            for k in ks {
                let clients: Vec<&Run> = select(runs, |r| {
                    r.scenario == "fleet" && r.contender == contender && r.clients == k
                })
                .collect();
                let times: Vec<f64> = clients.iter().map(|r| r.wall_s).collect();
                let first = clients[0];
                rows.push(FleetRow {
                    contender,
                    k,
                    p50: percentile(&times, 0.5),
                    p95: percentile(&times, 0.95),
                    origin: (first.mirror_bytes + first.seeder_bytes) as f64
                        / (k as f64 * first.update_bytes as f64),
                    cpu: clients.iter().map(|r| r.cpu_s).sum(),
                    max: times.iter().copied().fold(0.0, f64::max),
                    failed: clients.iter().filter(|r| !r.ok).count(),
                    scratch_peak: first.scratch_peak_bytes,
                });
            }
        }
        FleetTable { rows }
    }

    pub fn row(&self, contender: Contender, k: usize) -> Option<&FleetRow> {
        self.rows
            .iter()
            .find(|r| r.contender == contender && r.k == k)
    }
}

/// A target, what was measured, and whether it holds.
struct Target {
    what: String,
    measured: String,
    met: bool,
}

fn markdown(
    options: &Options,
    machine: &str,
    runs: &[Run],
    fleet: &FleetTable,
    memory: &[Step],
    elapsed: Duration,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# pactor benchmarks\n");
    let _ = writeln!(
        out,
        "Produced by `scripts/bench{}` (the harness is `examples/bench/`), which built the \
         synthetic repos with the test bed, started everything on 127.0.0.1 (DHT, LSD and UPnP \
         off) and ran every contender on the same workloads in the same run, alternating them \
         in a rotating order. Figures are medians over {} repetitions unless said otherwise; \
         ratios compare contenders measured side by side in this run. Absolute times are for \
         context only: the mirror, the seeders and the clients share two cores. Every run \
         gets a fresh root and an empty cache; a root that pactor fetches into has run \
         `pactor -S` once before, as a machine that uses pactor has, so that pactor has \
         pacman-conf's answer in its `StateDir` (it runs pacman-conf again only when \
         pacman.conf changes). Raw results: [`bench/results.json`](bench/results.json).\n",
        if options.quick { " --quick" } else { "" },
        options.reps
    );
    let _ = writeln!(out, "{machine}\n");
    let _ = writeln!(
        out,
        "Whole run: {:.0} minutes. Workloads: **typical -Syu** (150 packages, log-normal sizes, \
         median 400 KB, plus three of 40-80 MB), **one big** (a 1 GB package), **many small** \
         (1,000 packages of 50 KB){}.\n",
        elapsed.as_secs_f64() / 60.0,
        if options.quick {
            "; `--quick` scales them to a tenth"
        } else {
            ""
        }
    );

    let targets = targets(runs, fleet);
    if !targets.is_empty() {
        let _ = writeln!(out, "## Targets\n");
        let _ = writeln!(out, "| target | measured | met |\n| --- | --- | --- |");
        for t in &targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                t.what,
                t.measured,
                if t.met { "yes" } else { "**no**" }
            );
        }
        let _ = writeln!(out);
    }

    ceiling_section(&mut out, runs);
    congested_section(&mut out, runs);
    fleet_section(&mut out, fleet, memory);
    nothing_section(&mut out, runs);
    // What the numbers say, where the targets are not met and why: written by hand after a
    // full run, kept beside the harness so that one command still writes the whole page.
    if !options.quick {
        let _ = writeln!(out, "{}", include_str!("notes.md").trim_end());
    }
    out
}

fn ceiling_section(out: &mut String, runs: &[Run]) {
    let kinds: Vec<Kind> = [Kind::Typical, Kind::Big, Kind::Small]
        .into_iter()
        .filter(|k| {
            runs.iter()
                .any(|r| r.scenario == "ceiling" && r.workload == *k)
        })
        .collect();
    if kinds.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## 1. Ceiling: unthrottled mirror, one seeder\n\nEvery contender fetches the whole \
         workload into an empty cache (`-Syw`; aria2c gets the same URLs). pactor's HTTP path \
         has no torrent index; its swarm path has one seeder on loopback.\n"
    );
    let _ = writeln!(
        out,
        "| workload | contender | time (s) | MB/s | CPU (s) | peak RSS (MB) | from mirror |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for kind in kinds {
        for contender in CONTENDERS {
            let f =
                |r: &Run| r.scenario == "ceiling" && r.workload == kind && r.contender == contender;
            if !runs.iter().any(f) {
                continue;
            }
            let time = median_of(runs, f, |r| r.wall_s);
            let total = select(runs, f).next().map_or(0, |r| r.update_bytes) as f64;
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0}% |{}",
                kind.label(),
                contender.label(),
                time,
                total / MB / time,
                median_of(runs, f, |r| r.cpu_s),
                median_of(runs, f, |r| r.max_rss_kb as f64) / 1000.0,
                100.0 * median_of(runs, f, |r| r.mirror_bytes as f64) / total,
                failures(runs, f)
            );
        }
    }
    let _ = writeln!(out);
}

const CONTENDERS: [Contender; 4] = [
    Contender::Pacman,
    Contender::Aria2c,
    Contender::PactorHttp,
    Contender::PactorSwarm,
];

/// " (N failed)" when some runs did not complete.
fn failures(runs: &[Run], f: impl Fn(&Run) -> bool) -> String {
    let failed = select(runs, f).filter(|r| !r.ok).count();
    if failed == 0 {
        String::new()
    } else {
        format!(" {failed} run(s) failed")
    }
}

fn congested_section(out: &mut String, runs: &[Run]) {
    if !runs.iter().any(|r| r.scenario == "congested") {
        return;
    }
    let _ = writeln!(
        out,
        "## 2. Congested mirror: 10 MB/s in all, 1 and 3 seeders\n\nThe typical -Syu workload. \
         The mirror's token bucket caps all its connections together.\n"
    );
    let _ = writeln!(
        out,
        "| contender | seeders | time (s) | mirror's share of package bytes |\n| --- | ---: | ---: | ---: |"
    );
    for contender in CONTENDERS {
        for seeders in [1, 3] {
            let f = |r: &Run| {
                r.scenario == "congested" && r.contender == contender && r.seeders == seeders
            };
            if !runs.iter().any(f) || (contender != Contender::PactorSwarm && seeders == 3) {
                continue;
            }
            let seeders_text = if contender == Contender::PactorSwarm {
                seeders.to_string()
            } else {
                "-".into()
            };
            let _ = writeln!(
                out,
                "| {} | {seeders_text} | {:.1} | {:.1}% |{}",
                contender.label(),
                median_of(runs, f, |r| r.wall_s),
                100.0 * median_of(runs, f, |r| r.mirror_bytes as f64 / r.update_bytes as f64),
                failures(runs, f)
            );
        }
    }
    let _ = writeln!(out);
}

fn fleet_section(out: &mut String, fleet: &FleetTable, memory: &[Step]) {
    if fleet.rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## 3. Fleet: K clients at once, a seedbox capped at 20 MB/s, the mirror at 10 MB/s\n\n\
         The typical -Syu workload on K machines started together, found through the tracker. \
         The seedbox is `pactor seed --upload-rate 20M --super-seed`. Origin bytes are what the seedbox uploaded plus what the mirror sent, over K times the \
         update size (HTTP alone: 1.0, every client fetches everything from the mirror). \
         The clients' CPU is what all K used together; over the slowest client's time, it is \
         how many of the machine's two cores the clients kept busy on average (the seedbox, the \
         mirror and the tracker use the same cores). Held at peak is the most the fleet's run \
         added to the tmpfs that holds the clients' roots and caches: the clients' files, in \
         the machine's memory.\n"
    );
    let _ = writeln!(
        out,
        "| K | contender | p50 (s) | p95 (s) | origin bytes / (K x update) | clients' CPU (s) | cores busy | held at peak (GB) |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in &fleet.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} |{}",
            row.k,
            row.contender.label(),
            row.p50,
            row.p95,
            row.origin,
            row.cpu,
            row.cpu / row.max,
            row.scratch_peak as f64 / 1e9,
            if row.failed > 0 {
                format!(" {} client(s) failed", row.failed)
            } else {
                String::new()
            }
        );
    }
    if !memory.is_empty() {
        let _ = writeln!(
            out,
            "\nFresh memory on this machine, probed after the scenarios ([`bench/memory-probe.json`](bench/memory-probe.json)): \
             a file written to the same tmpfs in steps of 512 MiB went at {} GB/s, step after step.",
            memory
                .iter()
                .map(|s| format!("{:.2}", s.gb_per_s))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\n![fleet completion times](bench/fleet-time.png)\n\n![fleet origin bytes](bench/fleet-origin.png)\n"
    );
}

fn nothing_section(out: &mut String, runs: &[Run]) {
    if !runs.iter().any(|r| r.scenario == "nothing") {
        return;
    }
    let f = |c: Contender| move |r: &Run| r.scenario == "nothing" && r.contender == c;
    let pacman = median_of(runs, f(Contender::Pacman), |r| r.wall_s);
    let pactor = median_of(runs, f(Contender::PactorSwarm), |r| r.wall_s);
    let _ = writeln!(
        out,
        "## 4. Nothing to do\n\n`-Syu` on a root with the 1,000 packages of the many-small \
         workload installed and current (the databases and pactor's index are refreshed: the \
         mirror answers 304 or sends them again).\n\n\
         | contender | time (ms) | peak RSS (MB) |\n| --- | ---: | ---: |\n\
         | pacman -Syu | {:.0} | {:.0} |\n| pactor -Syu | {:.0} | {:.0} |\n",
        pacman * 1000.0,
        median_of(runs, f(Contender::Pacman), |r| r.max_rss_kb as f64) / 1000.0,
        pactor * 1000.0,
        median_of(runs, f(Contender::PactorSwarm), |r| r.max_rss_kb as f64) / 1000.0,
    );
}

fn targets(runs: &[Run], fleet: &FleetTable) -> Vec<Target> {
    let mut out = Vec::new();
    let time = |scenario: &'static str, kind: Kind, c: Contender, seeders: Option<usize>| {
        median_of(
            runs,
            |r| {
                r.scenario == scenario
                    && r.workload == kind
                    && r.contender == c
                    && seeders.is_none_or(|s| r.seeders == s)
            },
            |r| r.wall_s,
        )
    };
    let present = |v: f64| v.is_finite();

    // Congested mirror, 3 seeders.
    let swarm = time("congested", Kind::Typical, Contender::PactorSwarm, Some(3));
    let pacman = time("congested", Kind::Typical, Contender::Pacman, None);
    let aria2c = time("congested", Kind::Typical, Contender::Aria2c, None);
    if present(swarm) && present(pacman) && present(aria2c) {
        let speedup = (pacman / swarm).min(aria2c / swarm);
        out.push(Target {
            what: "congested mirror, 3 seeders: pactor ≥ 5x faster than pacman and aria2c".into(),
            measured: format!(
                "{:.1}x pacman, {:.1}x aria2c ({swarm:.1} s)",
                pacman / swarm,
                aria2c / swarm
            ),
            met: speedup >= 5.0,
        });
        let share = median_of(
            runs,
            |r| {
                r.scenario == "congested" && r.contender == Contender::PactorSwarm && r.seeders == 3
            },
            |r| r.mirror_bytes as f64 / r.update_bytes as f64,
        );
        out.push(Target {
            what: "congested mirror, 3 seeders: mirror share ≤ 5%".into(),
            measured: format!("{:.1}%", share * 100.0),
            met: share <= 0.05,
        });
    }

    // Ceiling.
    for kind in [Kind::Typical, Kind::Big, Kind::Small] {
        let pacman = time("ceiling", kind, Contender::Pacman, None);
        let http = time("ceiling", kind, Contender::PactorHttp, None);
        let swarm = time("ceiling", kind, Contender::PactorSwarm, None);
        if present(pacman) && present(http) {
            out.push(Target {
                what: format!(
                    "ceiling, {}: pactor's HTTP path ≥ 0.9x pacman's speed",
                    kind.label()
                ),
                measured: format!("{:.2}x", pacman / http),
                met: pacman / http >= 0.9,
            });
        }
        if present(http) && present(swarm) {
            out.push(Target {
                what: format!(
                    "ceiling, {}: torrent path from one seeder ≥ 0.5x plain HTTP",
                    kind.label()
                ),
                measured: format!("{:.2}x", http / swarm),
                met: http / swarm >= 0.5,
            });
        }
    }

    // Fleet.
    let largest = fleet
        .rows
        .iter()
        .filter(|r| r.contender == Contender::PactorSwarm)
        .map(|r| r.k)
        .max();
    if let (Some(k), Some(one)) = (largest, fleet.row(Contender::PactorSwarm, 1)) {
        let row = fleet
            .row(Contender::PactorSwarm, k)
            .expect("the largest row");
        out.push(Target {
            what: format!("fleet K = {k}: origin bytes ≤ 1.5 x update size (HTTP: {k}x)"),
            measured: format!("{:.2} x update size", row.origin * k as f64),
            met: row.origin * k as f64 <= 1.5 && row.failed == 0,
        });
        out.push(Target {
            what: format!("fleet K = {k}: p95 completion ≤ 2x the K = 1 time"),
            measured: format!(
                "{:.1} s vs {:.1} s ({:.2}x)",
                row.p95,
                one.p50,
                row.p95 / one.p50
            ),
            met: row.p95 <= 2.0 * one.p50,
        });
    }

    // Nothing to do, memory, many small.
    let nothing = |c: Contender| {
        median_of(
            runs,
            |r| r.scenario == "nothing" && r.contender == c,
            |r| r.wall_s,
        )
    };
    let (pacman, pactor) = (nothing(Contender::Pacman), nothing(Contender::PactorSwarm));
    if present(pacman) && present(pactor) {
        out.push(Target {
            what: "nothing to do: pactor ≤ 1.2x pacman's wall time".into(),
            measured: format!(
                "{:.2}x ({:.0} ms vs {:.0} ms)",
                pactor / pacman,
                pactor * 1e3,
                pacman * 1e3
            ),
            met: pactor <= 1.2 * pacman,
        });
    }
    let rss: Vec<f64> = select(runs, |r| {
        r.workload == Kind::Typical
            && matches!(r.contender, Contender::PactorSwarm | Contender::PactorHttp)
    })
    .map(|r| r.max_rss_kb as f64 / 1000.0)
    .collect();
    if !rss.is_empty() {
        let peak = rss.iter().copied().fold(0.0, f64::max);
        out.push(Target {
            what: "peak RSS ≤ 100 MB on typical -Syu (every pactor run)".into(),
            measured: format!("{peak:.0} MB"),
            met: peak <= 100.0,
        });
    }
    let swarm = time("ceiling", Kind::Small, Contender::PactorSwarm, None);
    let pacman = time("ceiling", Kind::Small, Contender::Pacman, None);
    if present(swarm) && present(pacman) {
        out.push(Target {
            what: "many small: pactor with the swarm no slower than pacman (unthrottled mirror)"
                .into(),
            measured: format!("{swarm:.2} s vs {pacman:.2} s"),
            met: swarm <= pacman,
        });
    }
    out
}
