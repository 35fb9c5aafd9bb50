//! A `.torrent` file from upstream or a peer: never a panic; what is accepted is canonical
//! (writing it again gives the same info and the same infohash).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pactor_fuzz::torrent::{Info, parse_torrent_file};

fuzz_target!(|data: &[u8]| {
    // A peer's metadata, judged against a package of the database: what passes is exactly
    // the canonical torrent of that name and size.
    if let Ok(info) = Info::canonical_for(data, "foo-1.0-1-x86_64.pkg.tar.zst", 70_000) {
        assert_eq!(info.to_bytes(), data);
        assert_eq!(info.length, 70_000);
    }
    let Some(info) = parse_torrent_file(data) else {
        return;
    };
    let again = parse_torrent_file(&info.to_torrent_file(&[])).expect("a written torrent parses");
    assert_eq!(again, info);
    assert_eq!(again.info_hash(), info.info_hash());
});
