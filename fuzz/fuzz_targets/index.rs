//! `<repo>.torrents` as a mirror could serve it: never a panic, never a path-like name, and
//! what is accepted re-encodes to an index that parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pactor_fuzz::index::{Index, valid_file_name};

fuzz_target!(|data: &[u8]| {
    let Ok((index, _warnings)) = Index::parse(data) else {
        return;
    };
    for (name, entry) in &index.files {
        assert!(valid_file_name(name), "accepted {name:?}");
        assert!(!name.contains('/') && name != ".." && !name.contains('\0'));
        assert!(entry.size > 0);
    }
    let again = Index::parse(&index.to_bytes()).expect("a written index parses");
    assert_eq!(again.0.files, index.files);
});
