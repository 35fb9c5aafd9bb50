//! pactor's benchmarks: pacman, aria2c and pactor on the same synthetic repos, in one run,
//! alternating, entirely on 127.0.0.1 (DHT, LSD and UPnP off everywhere). `scripts/bench`
//! builds what it needs and runs this; it writes `BENCHMARKS.md`, `bench/results.json` and the
//! fleet plots in `bench/`.
//!
//! Scenarios (see BENCHMARKS.md for what each measures and the targets):
//! ceiling (unthrottled mirror, one seeder), congested (10 MB/s mirror, 1 and 3 seeders),
//! fleet (K clients at once, a 20 MB/s seedbox, the 10 MB/s mirror), nothing (an up-to-date
//! system). Randomness is seeded; every run stops on its own.

#[path = "../../tests/bed/mod.rs"]
mod bed;
mod machine;
mod measure;
mod plot;
mod report;
mod scenarios;
mod services;
mod workload;

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "pactor's benchmarks (loopback only)")]
pub struct Options {
    /// Scenarios to run (default: all)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<scenarios::Scenario>,
    /// Workloads of the ceiling scenario (default: all), for a focused look
    #[arg(long, value_enum, value_delimiter = ',')]
    pub workloads: Vec<workload::Kind>,
    /// Contenders of the ceiling scenario (default: all), for a focused look or a profile
    #[arg(long, value_enum, value_delimiter = ',')]
    pub contenders: Vec<scenarios::Contender>,
    /// Repetitions of each contender (alternated); the fleet runs once per K
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Workloads a tenth of the size, fleets up to 8: a smoke run of the harness
    #[arg(long)]
    pub quick: bool,
    /// Fleet sizes [default: 1,4,8,16; 1,4,8 with --quick]
    #[arg(long, value_delimiter = ',')]
    pub fleet_sizes: Vec<usize>,
    /// Skip the fleets of pacman (the HTTP baseline), for a quicker look at pactor's
    #[arg(long)]
    pub no_fleet_baseline: bool,
    /// Seed of every random choice (package sizes, payloads)
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Where repos (kept between runs) and temporary roots live
    #[arg(long, default_value = "target/bench-work")]
    pub work: PathBuf,
    /// Where BENCHMARKS.md goes; results.json and the plots go to <out>/bench/
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

fn main() {
    let mut options = Options::parse();
    std::fs::create_dir_all(&options.work).expect("work directory");
    // Packages are built from inside temp dirs: every path handed around must be absolute.
    options.work = std::path::absolute(&options.work).expect("work directory");
    options.out = std::path::absolute(&options.out).expect("output directory");
    // Now: the report's own files make the working tree differ from the commit measured.
    let machine = machine::describe(&options);
    let started = std::time::Instant::now();
    let runs = scenarios::run_all(&options);
    // After the scenarios, so that it cannot slow them: how far this machine's memory goes
    // at full speed, which a fleet simulated on it may run past.
    let memory = match runs.iter().any(|r| r.scenario == "fleet") && !options.quick {
        true => {
            eprintln!(":: probing how fast the scratch filesystem takes fresh memory");
            machine::probe_fresh_memory(&std::env::temp_dir())
        }
        false => Vec::new(),
    };
    let elapsed = started.elapsed();
    report::write(&options, &machine, &runs, &memory, elapsed);
    // A run that did not complete is marked in the page; the exit status says so as well, for
    // the smoke run in `scripts/test`.
    let failed = runs.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        eprintln!(
            "error: {failed} run(s) did not complete (their logs are in {})",
            options.work.display()
        );
        std::process::exit(1);
    }
}
