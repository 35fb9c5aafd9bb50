//! A `.torrent` file from upstream or a peer: never a panic; what is accepted is canonical
//! (writing it again gives the same info and the same infohash).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pactor_fuzz::torrent::parse_torrent_file;

fuzz_target!(|data: &[u8]| {
    let Some(info) = parse_torrent_file(data) else {
        return;
    };
    let again = parse_torrent_file(&info.to_torrent_file(&[])).expect("a written torrent parses");
    assert_eq!(again, info);
    assert_eq!(again.info_hash(), info.info_hash());
});
