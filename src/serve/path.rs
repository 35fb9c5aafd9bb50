//! Request paths, `/$repo/$arch/<file>`, judged before anything touches the disk.
//!
//! Only the raw (still percent-encoded) path is looked at, so an encoded slash cannot turn into
//! a path separator behind the parser's back: each of the three segments is decoded on its own
//! and must then be a plain file name. What a name may refer to is decided later by the
//! database (a package file is served only if the repo's database lists it), so this module
//! only has to make sure that no name can climb out of a directory.

/// A request for `file` of `repo` on `arch`, all three plain names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub repo: String,
    pub arch: String,
    pub file: String,
}

/// What a file name of a repo directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `<repo>.db`: proxied from upstream and read for the packages' sha256.
    Database,
    /// `<repo>.db.sig`, kept beside the database it signs.
    DatabaseSig,
    /// `<repo>.files` or `<repo>.files.sig`: passed through from upstream.
    Files,
    /// `<repo>.torrents`, the repo's torrent index, as serve fetched it.
    TorrentIndex,
    /// `<name>.sig`: a package's detached signature (if the database lists `name`).
    Signature(&'a str),
    /// Anything else: a package file (if the database lists it).
    Package(&'a str),
}

/// Why a path is refused outright (a 400), before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("not of the form /$repo/$arch/<file>")]
    Shape,
    #[error("invalid percent-encoding")]
    Encoding,
    #[error("not a plain file name: {0:?}")]
    Name(String),
}

impl Wanted {
    /// Parses the raw path of a request (without the query string).
    pub fn parse(raw: &str) -> Result<Wanted, BadPath> {
        let rest = raw.strip_prefix('/').ok_or(BadPath::Shape)?;
        let segments: Vec<&str> = rest.split('/').collect();
        let [repo, arch, file] = segments.as_slice() else {
            return Err(BadPath::Shape);
        };
        Ok(Wanted {
            repo: plain_name(repo)?,
            arch: plain_name(arch)?,
            file: plain_name(file)?,
        })
    }

    pub fn kind(&self) -> Kind<'_> {
        let repo = self.repo.as_str();
        match self.file.strip_prefix(repo) {
            Some(".db") => return Kind::Database,
            Some(".db.sig") => return Kind::DatabaseSig,
            Some(".files" | ".files.sig") => return Kind::Files,
            Some(".torrents") => return Kind::TorrentIndex,
            _ => {}
        }
        match self.file.strip_suffix(".sig") {
            Some(package) => Kind::Signature(package),
            None => Kind::Package(&self.file),
        }
    }
}

/// Decodes one segment and insists that it is a name, not a path: no separators (encoded or
/// not), no `.` or `..`, no leading dot (a hidden staging file), no NUL or control characters.
fn plain_name(segment: &str) -> Result<String, BadPath> {
    let decoded = percent_decode(segment).ok_or(BadPath::Encoding)?;
    if is_plain_name(&decoded) {
        Ok(decoded)
    } else {
        Err(BadPath::Name(decoded))
    }
}

/// [`plain_name`] for a request to a peer's HTTP ([`crate::swarm`]).
pub fn decode_plain_name(segment: &str) -> Option<String> {
    plain_name(segment).ok()
}

/// A name that can only ever mean a file directly inside a directory. Used for request
/// segments and for the file names a database lists (which come from upstream).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// Strict percent-decoding: a `%` must be followed by two hex digits, and the result must be
/// UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_requests() {
        let w = Wanted::parse("/core/x86_64/foo-1.0-1-x86_64.pkg.tar.zst").unwrap();
        assert_eq!((w.repo.as_str(), w.arch.as_str()), ("core", "x86_64"));
        assert_eq!(w.kind(), Kind::Package("foo-1.0-1-x86_64.pkg.tar.zst"));
        let sig = Wanted::parse("/core/x86_64/foo-1.0-1-x86_64.pkg.tar.zst.sig").unwrap();
        assert_eq!(sig.kind(), Kind::Signature("foo-1.0-1-x86_64.pkg.tar.zst"));
        let kind = |file: &str, expected: Kind| {
            let wanted = Wanted::parse(&format!("/core/x86_64/{file}")).unwrap();
            assert_eq!(wanted.kind(), expected, "{file}");
        };
        kind("core.db", Kind::Database);
        kind("core.db.sig", Kind::DatabaseSig);
        kind("core.files", Kind::Files);
        kind("core.files.sig", Kind::Files);
        kind("core.torrents", Kind::TorrentIndex);
        kind("extra.db", Kind::Package("extra.db"));
        // An encoded character that is harmless stays allowed.
        kind("a%2Bb.pkg.tar.zst", Kind::Package("a+b.pkg.tar.zst"));
    }

    #[test]
    fn traversal_is_refused() {
        for raw in [
            "/core/x86_64/../../etc/passwd",
            "/core/x86_64/..",
            "/core/x86_64/.",
            "/core/x86_64/..%2F..%2Fetc%2Fpasswd",
            "/core/x86_64/%2e%2e",
            "/core/x86_64/a%5Cb",
            "/core/x86_64/a%00b",
            "/core/x86_64/.hidden",
            "/core/%2e%2e/foo",
            "/%2e%2e/x86_64/foo",
            "/core/x86_64/foo/",
            "/core/x86_64/",
            "/core//foo",
            "/core/x86_64",
            "core/x86_64/foo",
            "/core/x86_64/a%2",
            "/core/x86_64/a%zz",
            "/core/x86_64/%ff",
            "/a/b/c/d",
        ] {
            assert!(Wanted::parse(raw).is_err(), "{raw}");
        }
    }
}
