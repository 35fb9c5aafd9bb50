//! Decoding bencode that may come from strangers (a mirror's `<repo>.torrents`, a peer's
//! metadata, an upstream's `.torrent`). serde_bencode's parser recurses once per nested list
//! or dictionary, even for values it ignores, and so does dropping its `Value`: a few megabytes
//! of `l` would overflow the stack of whichever process read them — the root process, holding
//! the database lock. Every decode goes through [`decode`], which first measures the nesting
//! without recursing and refuses anything deeper than any file pactor reads can need.

use serde::de::DeserializeOwned;

/// pactor's formats nest four levels at most (index → files → entry → value).
pub const MAX_DEPTH: usize = 32;

/// Why bytes were not decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("nested more than {MAX_DEPTH} levels deep")]
    TooDeep,
    #[error("{0}")]
    Invalid(String),
}

/// `serde_bencode::from_bytes`, for bytes nested at most [`MAX_DEPTH`] levels.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if depth(bytes) > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    serde_bencode::from_bytes(bytes).map_err(|e| DecodeError::Invalid(e.to_string()))
}

/// The deepest nesting of lists and dictionaries in `bytes`, read as bencode without
/// recursion. Malformed input is measured as far as it goes: the parser rejects it anyway.
fn depth(bytes: &[u8]) -> usize {
    let (mut open, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while at < bytes.len() {
        match bytes[at] {
            b'l' | b'd' => {
                open += 1;
                deepest = deepest.max(open);
                at += 1;
            }
            b'e' => {
                open = open.saturating_sub(1);
                at += 1;
            }
            b'i' => match bytes[at..].iter().position(|&b| b == b'e') {
                Some(end) => at += end + 1,
                None => break,
            },
            b'0'..=b'9' => {
                let Some(colon) = bytes[at..].iter().position(|&b| b == b':') else {
                    break;
                };
                let len = std::str::from_utf8(&bytes[at..at + colon])
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok());
                match len {
                    Some(len) => at = at.saturating_add(colon + 1).saturating_add(len),
                    None => break,
                }
            }
            _ => break,
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bencode::value::Value;

    #[test]
    fn depth_counts_lists_and_dicts_and_skips_strings_and_integers() {
        assert_eq!(depth(b"i5e"), 0);
        assert_eq!(depth(b"4:llll"), 0, "an 'l' inside a string opens nothing");
        assert_eq!(depth(b"le"), 1);
        assert_eq!(depth(b"d1:ald1:bi1eeee"), 3);
        assert_eq!(depth(b"lelelele"), 1);
        assert_eq!(depth(b"li-3e2:dde"), 1);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        // A million levels: serde_bencode alone overflows the stack on this.
        let mut bytes = vec![b'l'; 1_000_000];
        bytes.extend(vec![b'e'; 1_000_000]);
        assert_eq!(decode::<Value>(&bytes), Err(DecodeError::TooDeep));
        // Unterminated, and hidden in a dictionary's value.
        let mut bytes = b"d5:filesl".to_vec();
        bytes.extend(vec![b'd'; 500_000]);
        assert_eq!(decode::<Value>(&bytes), Err(DecodeError::TooDeep));
    }

    #[test]
    fn what_pactor_writes_decodes() {
        let nested = format!("{}i1e{}", "l".repeat(MAX_DEPTH), "e".repeat(MAX_DEPTH));
        assert!(decode::<Value>(nested.as_bytes()).is_ok());
        assert!(matches!(
            decode::<Value>(b"l5:ab"),
            Err(DecodeError::Invalid(_))
        ));
    }
}
