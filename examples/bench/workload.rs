//! The workloads: synthetic repos of real packages (the test bed's makepkg format) with a
//! `repo-add` database, built once per seed and kept in the work directory.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bed::{Pkg, Repo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Kind {
    /// 150 packages, log-normal sizes (median 400 KB) plus three of 40-80 MB: about 300 MB
    Typical,
    /// One 1 GB package
    Big,
    /// 1,000 packages of 50 KB
    Small,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Typical => "typical -Syu",
            Kind::Big => "one big",
            Kind::Small => "many small",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::Typical => "typical",
            Kind::Big => "big",
            Kind::Small => "small",
        }
    }
}

pub const REPO: &str = "bench";

pub struct Workload {
    pub kind: Kind,
    /// The repo directory: packages, `bench.db`, and `bench.torrents` once published.
    pub dir: PathBuf,
    /// Package names (the targets) and file names.
    pub names: Vec<String>,
    pub files: Vec<String>,
    /// Bytes of all package files: the update size.
    pub total: u64,
}

/// The workload's repo, built unless a complete one for the same parameters is there.
pub fn prepare(kind: Kind, work: &Path, quick: bool, seed: u64) -> Workload {
    let scale = if quick { "quick" } else { "full" };
    let dir = work.join(format!("repo-{}-{scale}-{seed}", kind.slug()));
    let pkgs = packages(kind, quick, seed);
    let done = dir.join(".complete");
    if !done.exists() {
        eprintln!(
            ":: building the {} workload ({} packages) in {}",
            kind.label(),
            pkgs.len(),
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&dir);
        let mut repo = Repo::new(&dir, REPO);
        repo.add(&pkgs);
        std::fs::write(&done, b"").unwrap();
    }
    let files: Vec<String> = pkgs.iter().map(Pkg::filename).collect();
    let total = files
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).expect("built package").len())
        .sum();
    Workload {
        kind,
        dir,
        names: pkgs.iter().map(|p| p.name.clone()).collect(),
        files,
        total,
    }
}

fn packages(kind: Kind, quick: bool, seed: u64) -> Vec<Pkg> {
    let mut rng = SplitMix64(seed ^ kind as u64);
    let scale = if quick { 0.1 } else { 1.0 };
    let sized = |name: String, size: f64| Pkg::new(&name, "1.0-1").payload(size as usize);
    match kind {
        Kind::Typical => {
            let count = if quick { 30 } else { 147 };
            let mut pkgs: Vec<Pkg> = (0..count)
                .map(|i| {
                    // Log-normal: median 400 KB, sigma 1.1 (a few MB at the top).
                    let size = 400_000.0 * (1.1 * rng.gaussian()).exp();
                    sized(format!("pkg{i:03}"), size.clamp(10_000.0, 20_000_000.0))
                })
                .collect();
            for i in 0..3 {
                let size = (40.0 + 40.0 * rng.unit()) * 1_000_000.0 * scale;
                pkgs.push(sized(format!("large{i}"), size));
            }
            pkgs
        }
        Kind::Big => vec![sized("big".into(), 1_000_000_000.0 * scale)],
        Kind::Small => {
            let count = if quick { 100 } else { 1000 };
            (0..count)
                .map(|i| sized(format!("small{i:04}"), 50_000.0))
                .collect()
        }
    }
}

/// A small seeded generator (SplitMix64): the same seed, the same workload.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}
