//! pactor: `pacman -Syu` that prefetches every package before an offline commit.

mod atomic_write;
mod callbacks;
mod cli;
mod commit;
mod config;
mod handle;
mod http;
mod index;
mod indexes;
mod interrupt;
mod passthrough;
mod prefetch;
mod progress;
mod publish;
mod seed;
mod serve;
mod swarm;
mod sync;
mod torrent;
mod transaction;
mod ui;

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
        cli::Invocation::Tool(cli::Tool::Publish(args)) => report(publish::run(&args)),
        cli::Invocation::Tool(cli::Tool::Seed(args)) => report(seed::run(&args)),
        cli::Invocation::Tool(cli::Tool::Serve(args)) => report(serve::run(&args)),
        cli::Invocation::Generate(kind) => {
            cli::generate(kind, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        cli::Invocation::Sync(args) => report(sync::run(*args)),
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
    let messages: Vec<String> = e.chain().map(ToString::to_string).collect();
    ui::error(&messages.join(": "));
    ExitCode::from(1)
}
