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
        no_error_backtraces();
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
            no_error_backtraces();
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
            no_error_backtraces();
            ui::init_tracing(args.debug);
            report(sync::run(*args))
        }
    }
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
