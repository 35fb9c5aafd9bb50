//! Everything pactor does not handle goes to pacman unchanged: same argv, same exit code.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The pacman to run: `$PACTOR_PACMAN` (for tests and unusual installs) or `pacman` on PATH.
pub fn pacman_binary() -> OsString {
    std::env::var_os("PACTOR_PACMAN").unwrap_or_else(|| "pacman".into())
}

/// Replaces this process with pacman. Returns only if pacman could not be started.
pub fn exec_pacman(argv: &[OsString]) -> std::io::Error {
    let mut command = Command::new(pacman_binary());
    command.args(&argv[1..]);
    command.exec()
}
