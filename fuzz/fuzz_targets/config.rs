//! pactor.conf: never a panic, whatever the file holds; an error always names a line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pactor_fuzz::config::{ConfigError, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::parse(text, std::path::Path::new("/fuzz/pactor.conf")) {
        Ok(_) => {}
        Err(ConfigError::Syntax { line, .. }) => assert!(line >= 1),
        Err(ConfigError::Read { .. }) => {}
    }
});
