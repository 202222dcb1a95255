//! Request paths a gateway forwards: only those whose every reader agrees on the segments.
//!
//! One rule for every deployment (the wasm filter in Envoy, `ext_authz`, nginx `auth_request`),
//! judged as an upstream may read the path (docs/PROTOCOL.md §5, "Paths the gateway refuses"):
//! the path (before the first `?`) is percent-decoded once, as an upstream may; each segment's
//! name is what precedes its first `;` (Tomcat and Jetty strip `;parameters`, and `%3B` decodes to
//! one). Refused: a dot name (`.`, `..`: `..;x`, `%2e%2e`, `..%3b`), an empty name but the
//! trailing slash (`//`, `/;x/`), a backslash or an escaped `/` or `\` (`%2F`, `%5C`), a control
//! byte (`%00`, `%0A`, `%7F`), a `%` that starts no escape, and an escape left after the decoding
//! (`%252e`: an upstream that decodes twice would read another path). The query is not checked.

/// Whether `path` (origin form, query included) is free of segments upstreams read differently.
/// Runs on every request: no allocation.
pub fn path_is_safe(path: impl AsRef<[u8]>) -> bool {
    let path = path.as_ref();
    let path = path
        .iter()
        .position(|&b| b == b'?')
        .map_or(path, |q| &path[..q]);
    let Some(rest) = path.strip_prefix(b"/") else {
        return false;
    };
    let mut segments = rest.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        // An empty last segment is the trailing slash of `/payments/`; any other is `//`.
        if segment.is_empty() && segments.peek().is_none() {
            continue;
        }
        if !segment_is_safe(segment) {
            return false;
        }
    }
    true
}

/// One raw segment (no `/`): decoded once, no escape left, no separator, no control byte, and
/// its name (up to the first decoded `;`) neither empty nor a dot name.
fn segment_is_safe(segment: &[u8]) -> bool {
    let mut name_len = 0usize;
    let mut name_dots = true;
    let mut in_name = true;
    // The last two decoded bytes, to see an escape the decoding left (`%25` `3` `2`).
    let mut prev = [0u8; 2];
    let mut i = 0;
    while i < segment.len() {
        let byte = if segment[i] == b'%' {
            let (Some(hi), Some(lo)) = (
                segment.get(i + 1).copied().and_then(hex),
                segment.get(i + 2).copied().and_then(hex),
            ) else {
                return false;
            };
            i += 3;
            let byte = hi << 4 | lo;
            if byte == b'/' {
                return false;
            }
            byte
        } else {
            i += 1;
            segment[i - 1]
        };
        if byte == b'\\' || byte < 0x20 || byte == 0x7f {
            return false;
        }
        if prev[0] == b'%' && hex(prev[1]).is_some() && hex(byte).is_some() {
            return false;
        }
        prev = [prev[1], byte];
        if in_name {
            if byte == b';' {
                in_name = false;
            } else {
                name_len += 1;
                name_dots &= byte == b'.';
            }
        }
    }
    name_len > 0 && !(name_dots && name_len <= 2)
}

/// The value of one hex digit, either case.
fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::path_is_safe;

    /// The table every gateway's tests send (host-tests, e2e against Envoy, ext_authz and nginx).
    const HOSTILE: &str = include_str!("../tests/vectors/hostile-paths.txt");

    /// The table's paths under `base`, comments and blank lines left out.
    fn hostile(base: &str) -> Vec<String> {
        HOSTILE
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("# "))
            .map(|l| format!("{base}{l}"))
            .collect()
    }

    #[test]
    fn ordinary_paths_pass() {
        for p in [
            "/",
            "/payments/",
            "/payments/charges",
            "/payments/charges?limit=2&q=a/../b%2F",
            "/payments/charges?q=%252e%3b..;%00",
            "/payments/a.b/..c/c../...",
            "/payments/%41bc",
            "/payments/x;v=1",
            "/payments/x;v=..;w=%2e%2e",
            "/payments/a%3bb",
            "/payments/%2e%2e%2e",
            "/payments/.x/x.",
            "/v1/caf%C3%A9/~user/a%20b%7C;v=1,2@x",
            "/p/%C3%A9/%c3%a9/%25/%7C/a%20b/%22",
            "/p/50%25off/%25zz/%25",
            "/p/a!$&'()*+,;=:@b",
        ] {
            assert!(path_is_safe(p), "{p}");
        }
    }

    #[test]
    fn paths_upstreams_read_differently_are_refused() {
        for p in [
            "",
            "*",
            "payments/x",
            "/payments/../reports",
            "/payments/./x",
            "/payments/..",
            "/payments/.",
            "/..",
            "//payments/x",
            "/payments/%zz",
            "/payments/%2",
            "/payments/a%",
            "/payments/%",
        ] {
            assert!(!path_is_safe(p), "{p}");
        }
        let table = hostile("/payments/");
        assert!(table.len() > 20, "{table:?}");
        for p in &table {
            assert!(!path_is_safe(p), "{p}");
            // The same with a query, and as bytes.
            assert!(!path_is_safe(format!("{p}?q=1")), "{p}");
            assert!(!path_is_safe(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn raw_bytes_outside_ascii_pass_and_raw_control_bytes_do_not() {
        assert!(path_is_safe(b"/payments/caf\xe9"));
        assert!(!path_is_safe(b"/payments/a\x00b"));
        assert!(!path_is_safe(b"/payments/a\tb"));
        assert!(!path_is_safe(b"/payments/a\x7fb"));
    }
}
