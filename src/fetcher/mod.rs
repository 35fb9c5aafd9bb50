//! The download process: everything that talks to the network on behalf of `pactor -S` (the
//! HTTP downloader and the BitTorrent session) runs in a child process that pacman's rules put
//! in pacman's sandbox (`DownloadUser`, Landlock, the syscall filter, no-new-privs) and that
//! writes only into its own staging directory. The root process keeps the alpm handle and the
//! database lock, decides what is fetched, and is the only one that writes the cache. A file the
//! child offers (a mirror's copy it closed, a swarm copy it sealed) the root process takes
//! whole, once it has proven nobody can still write it, and links into the cache only when size
//! and sha256 are the database's. Where it cannot prove that, and for a swarm copy over 128 MiB
//! (followed as it arrives), it copies the file into one of its own, hashing what it copies.
//!
//! - `protocol`: the versioned, bounded messages over the pipes;
//! - `sandbox`: when to sandbox, the staging layout, entering the sandbox;
//! - `parent`: starting the child, following it, passing signals on;
//! - `intake`: the verification of an offered file, copied or taken;
//! - `sender`: the root process's messages to the child, written without blocking;
//! - `child`: the download process itself, running `prefetch`.

mod child;
mod intake;
mod parent;
pub mod protocol;
pub mod sandbox;
mod sender;

pub use child::{Handover, main as child_main};
pub use parent::{CHILD_ARG, Downloads, Setup};
