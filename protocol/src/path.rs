//! Request paths a gateway forwards: only those whose every reader agrees on the segments.
//!
//! Envoy normalizes the path before routing (`.`/`..` resolved, `//` merged, `%2F`/`%5C`
//! refused: docs/GATEWAY.md); this check holds the same line inside the filter, for any gateway
//! and any rendering. A path is refused when an upstream could read it as leaving the API's base
//! while the gateway routed it inside: a dot-segment (`.`, `..`, also percent-encoded, also with
//! `;parameters` as Tomcat and Jetty read `..;`), an empty segment (`//`), a backslash, or an
//! escaped `/` or `\`. The query is not a path and is not checked.

/// Whether `path` (origin form, query included) is free of segments upstreams read differently.
/// Runs on every request: no allocation.
pub fn path_is_safe(path: &str) -> bool {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if path.contains('\\') || has_escaped_separator(path) {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        // An empty last segment is the trailing slash of `/payments/`; any other is `//`.
        if segment.is_empty() {
            if segments.peek().is_some() {
                return false;
            }
            continue;
        }
        let name = segment.split_once(';').map_or(segment, |(n, _)| n);
        if is_dot_segment(name.as_bytes()) {
            return false;
        }
    }
    true
}

/// `.` or `..`, each dot possibly written `%2e` or `%2E`.
fn is_dot_segment(mut name: &[u8]) -> bool {
    let mut dots = 0;
    while !name.is_empty() {
        if name[0] == b'.' {
            name = &name[1..];
        } else if name.len() >= 3 && name[0] == b'%' && name[1] == b'2' && (name[2] | 0x20) == b'e'
        {
            name = &name[3..];
        } else {
            return false;
        }
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

/// An escaped `/` or `\` (`%2F`, `%5C`, any case).
fn has_escaped_separator(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && ((w[1] == b'2' && (w[2] | 0x20) == b'f') || (w[1] == b'5' && (w[2] | 0x20) == b'c'))
    })
}

#[cfg(test)]
mod tests {
    use super::path_is_safe;

    #[test]
    fn ordinary_paths_pass() {
        for p in [
            "/",
            "/payments/",
            "/payments/charges",
            "/payments/charges?limit=2&q=a/../b%2F",
            "/payments/a.b/..c/c../...",
            "/payments/%41bc",
            "/payments/x;v=1",
        ] {
            assert!(path_is_safe(p), "{p}");
        }
    }

    #[test]
    fn paths_upstreams_read_differently_are_refused() {
        for p in [
            "",
            "payments/x",
            "/payments/../reports",
            "/payments/./x",
            "/payments/..",
            "/payments/%2e%2e/reports",
            "/payments/%2E./reports",
            "/payments/..;/reports",
            "/payments/.;x=1/reports",
            "/payments/..%2F..%2Freports%2Fdaily",
            "/payments/..%2f..%2freports",
            "/payments/..%5C..%5Creports",
            "/payments/..\\reports",
            "/payments//reports",
            "//payments/x",
        ] {
            assert!(!path_is_safe(p), "{p}");
        }
    }
}
