//! pactor's test bed: real packages, real repo-add databases, a fault-injecting HTTP mirror on
//! 127.0.0.1 and temp roots with their own pacman.conf. Shared by every integration test, the
//! demo and the benchmarks. Nothing here talks to anything but loopback.
#![allow(dead_code, unused_imports)]

pub mod env;
pub mod http;
pub mod mirror;
pub mod peer;
pub mod pkg;
pub mod repo;
pub mod seeder;
pub mod terminal;
pub mod tmpfs;
pub mod wire;

pub use env::{
    Output, TestEnv, copy_executable, download_processes, ensure_user, pactor_bin, proc_status,
    run, run_with_stdin, uid_of, write_pactor_conf,
};
pub use http::http;
pub use mirror::{Fault, Mirror, Request};
pub use peer::{BadPeer, Behaviour, Unanswering};
pub use pkg::Pkg;
pub use repo::{Gpg, Repo};
pub use seeder::{SeedProcess, free_port};
pub use terminal::Terminal;
pub use tmpfs::Tmpfs;
pub use wire::Wire;

/// Whether a read on a socket with a read timeout ended without data or error: the timeout
/// passed, or the process was stopped and continued (a VM paused, a CI job frozen), which
/// interrupts such a read even with no signal handler installed (signal(7)).
pub fn read_timed_out(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}
