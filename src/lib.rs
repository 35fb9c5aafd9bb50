//! The parts of pactor that read untrusted bytes and touch nothing else: the repo torrent index
//! (`<repo>.torrents`, from a mirror), canonical torrents (`.torrent` files and peers' metadata)
//! and pactor.conf. They are a library so that the fuzz targets in `fuzz/` and the integration
//! tests exercise exactly the code the binary runs; `main.rs` uses them from here.

pub mod bencode;
pub mod config;
pub mod index;
pub mod torrent;
