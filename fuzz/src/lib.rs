//! pactor's parsers of untrusted input, compiled from pactor's own sources (the modules of
//! pactor's `src/lib.rs`), for the fuzz targets.
#![allow(dead_code)]

#[path = "../../src/bencode.rs"]
pub mod bencode;
#[path = "../../src/config.rs"]
pub mod config;
#[path = "../../src/index.rs"]
pub mod index;
#[path = "../../src/torrent.rs"]
pub mod torrent;
