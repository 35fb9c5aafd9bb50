//! pactor: `pacman -Syu` that prefetches every package before an offline commit.

mod atomic_write;
mod callbacks;
mod cli;
mod commit;
mod complete;
mod conf_cache;
mod fetcher;
mod generate;
mod handle;
mod http;
mod indexes;
mod interrupt;
mod passthrough;
mod prefetch;
mod progress;
mod proven;
mod publish;
mod runtime;
mod seed;
mod serve;
mod stats;
mod swarm;
mod sync;
mod transaction;
mod ui;

// The parsers of untrusted input live in the library (src/lib.rs), where the fuzzers reach them.
use pactor::{bencode, config, index, torrent};

use std::process::ExitCode;

/// An error already reported to the user in pacman's words; only the exit code is left.
#[derive(Debug)]
pub struct ExitQuietly(pub u8);

impl std::fmt::Display for ExitQuietly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for ExitQuietly {}

fn main() -> ExitCode {
    // `PACTOR_COMPLETE=bash pactor -- …` is the shell asking for completions: answered, then exit.
    complete::handle_request();
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == fetcher::CHILD_ARG)
    {
        tune_process();
        return fetcher::child_main();
    }
    match cli::classify(std::env::args_os().collect()) {
        cli::Invocation::Pacman(argv) => {
            let err = passthrough::exec_pacman(&argv);
            ui::error(&format!(
                "could not run {}: {err}",
                passthrough::pacman_binary().to_string_lossy()
            ));
            ExitCode::from(1)
        }
        cli::Invocation::Builtin(e) => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 1 } else { 0 })
        }
        cli::Invocation::Tool(tool) => {
            tune_process();
            ui::init_tracing(false);
            report(match tool {
                cli::Tool::Publish(args) => publish::run(&args),
                cli::Tool::Seed(args) => seed::run(&args),
                cli::Tool::Stats(args) => stats::run(&args),
                cli::Tool::Serve(args) => serve::run(&args),
            })
        }
        cli::Invocation::Generate(kind) => {
            report(generate::write(kind, &mut std::io::stdout().lock()).map_err(Into::into))
        }
        cli::Invocation::Sync(args) => {
            tune_process();
            ui::init_tracing(args.debug);
            report(sync::run(*args))
        }
    }
}

/// The process-wide settings of a run, its download process and the tools (seed, serve, …),
/// taken first thing in main, before any thread exists.
fn tune_process() {
    no_error_backtraces();
    keep_freed_memory();
}

/// With `RUST_BACKTRACE=1` in the environment (common on a Rust developer's machine), every
/// `anyhow::Error` captures a backtrace when it is created, and librqbit creates errors in its
/// normal course (a peer that leaves, a torrent that finishes). pactor never shows those
/// backtraces: errors are reported in pacman's words. Capturing them cost a tenth of a swarm
/// run's time (typical -Syu from one seeder: 1.28 s -> 1.17 s; 1,000 small files: 1.54 s ->
/// 1.38 s). `RUST_LIB_BACKTRACE=0` turns them off and leaves panics' backtraces as configured;
/// a `RUST_LIB_BACKTRACE` the user set is kept.
fn no_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in main, before any thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

/// glibc's malloc hands freed memory back to the kernel eagerly: a block of 128 KiB or more
/// is its own mapping, unmapped when freed, and a heap's free top is trimmed once it exceeds
/// about twice the largest such block. A transfer allocates and frees buffers of that size all
/// the time (hyper's read buffers on the HTTP path), so every buffer came from pages the kernel
/// had to fault in and zero again: 40,000-75,000 page faults for a 1 GB package over HTTP, and
/// more where the machine is a VM whose balloon reclaims freed pages (each first touch is then a
/// fault in the host too). Blocks up to 4 MiB now come from the heap, and up to 32 MiB of free
/// heap is kept per arena for the next buffers: about 6,000 faults for the same package.
/// Allocator settings given in `GLIBC_TUNABLES` are left as the user set them.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."));
        if !tuned {
            // SAFETY: mallopt only sets the allocator's parameters (under its own lock).
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
            }
        }
    }
}

/// Prints an error in pacman's style (`error: what: why`) and turns it into the exit code.
fn report(result: anyhow::Result<()>) -> ExitCode {
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    if let Some(quiet) = e.downcast_ref::<ExitQuietly>() {
        return ExitCode::from(quiet.0);
    }
    // `pactor stats | head`: the reader left; nothing to report.
    if e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    let messages: Vec<String> = e.chain().map(ToString::to_string).collect();
    ui::error(&messages.join(": "));
    ExitCode::from(1)
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// Page faults this thread has taken so far.
    fn minor_faults() -> i64 {
        // SAFETY: getrusage fills the struct it is given.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
            usage.ru_minflt
        }
    }

    #[test]
    fn freed_buffers_are_reused_not_faulted_in_again() {
        super::keep_freed_memory();
        // Like the read buffers of five transfers: a few half-MiB blocks, all freed together.
        const BLOCK: usize = 512 << 10;
        let round = || {
            let blocks: Vec<Vec<u8>> = (0..4).map(|_| vec![1u8; BLOCK]).collect();
            std::hint::black_box(&blocks);
        };
        round();
        let before = minor_faults();
        for _ in 0..20 {
            round();
        }
        // Blocks given back to the kernel when freed are faulted in again: 512 pages a round.
        let faults = minor_faults() - before;
        assert!(
            faults < 512,
            "{faults} page faults for 20 rounds of reused blocks"
        );
    }
}
