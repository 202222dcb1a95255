//! From a URL and a method to what a proof binds: method, authority (exactly what an HTTP client
//! puts in `Host`) and path with query.

use anyhow::Result;
use autoid_protocol::Request;
use url::Url;

use crate::usage;

/// A request target, normalized once so the proof and the request on the wire agree.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL to send to: normalized by the `url` crate, without a fragment.
    pub(crate) url: Url,
    /// The method, uppercased.
    pub(crate) method: String,
    /// `host` or `host:port` (only for an explicit non-default port); IPv6 in brackets.
    pub(crate) authority: String,
    /// The path, plus `?query` when the URL has one.
    pub(crate) path: String,
}

impl Target {
    /// Parses `url` (http or https only) and derives the bindings.
    pub(crate) fn new(method: &str, url: &str) -> Result<Target> {
        let method = method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(is_token_byte) {
            usage!("method {method:?}: not an HTTP method token");
        }
        let mut url = match Url::parse(url) {
            Ok(url) => url,
            Err(e) => usage!("URL {url:?}: {e}"),
        };
        if !matches!(url.scheme(), "http" | "https") {
            usage!("URL {url}: only http and https URLs are supported");
        }
        if !url.username().is_empty() || url.password().is_some() {
            usage!("URL: credentials in the URL are not supported (autoid proves identity)");
        }
        url.set_fragment(None);
        let Some(host) = url.host_str() else {
            usage!("URL {url}: no host");
        };
        // `Url::port` is `None` when the port is absent or the scheme's default: exactly when
        // HTTP clients leave it out of `Host`. `host_str` keeps IPv6 brackets.
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        if let Some(why) = gateway_rewrites(url.path()) {
            usage!("URL {url}: the gateway would route another path than the proof binds: {why}");
        }
        if !autoid_protocol::path::path_is_safe(url.path()) {
            usage!(
                "URL {url}: the gateway refuses this path (a dot segment, also with ;parameters \
                 or escaped, an empty segment, a backslash, an escaped / or \\, a control byte \
                 or a double escape: docs/PROTOCOL.md section 5)"
            );
        }
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        Ok(Target {
            url,
            method,
            authority,
            path,
        })
    }

    /// The bindings as the protocol takes them.
    pub(crate) fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            authority: &self.authority,
            path: &self.path,
        }
    }
}

/// Why Envoy's path normalization (before the filter) would turn `path` into another path, so
/// that a proof for it fails with 401; `None` when it leaves it alone. Envoy decodes escapes of
/// unreserved characters (`%7E` → `~`, `%41` → `A`) and escapes a raw `^` or `|`; other escapes
/// pass as sent (docs/PROTOCOL.md). The Python client refuses the same paths.
fn gateway_rewrites(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    for (i, w) in bytes.windows(3).enumerate() {
        if w[0] != b'%' {
            continue;
        }
        let Ok(hex) = std::str::from_utf8(&w[1..]) else {
            continue;
        };
        if let Ok(b) = u8::from_str_radix(hex, 16)
            && (b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Some(format!(
                "{} escapes an unreserved character: send it unescaped",
                &path[i..i + 3]
            ));
        }
    }
    ['^', '|']
        .into_iter()
        .find(|c| path.contains(*c))
        .map(|c| format!("send {c:?} as %{:02X} in the path", c as u32))
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(method: &str, url: &str) -> (String, String, String) {
        let t = Target::new(method, url).unwrap();
        (t.method, t.authority, t.path)
    }

    fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.to_owned(), b.to_owned(), c.to_owned())
    }

    #[test]
    fn authority_has_port_only_when_explicit_and_non_default() {
        assert_eq!(
            bind("get", "https://API.example/v1"),
            s("GET", "api.example", "/v1")
        );
        assert_eq!(
            bind("GET", "https://api.example:443/v1"),
            s("GET", "api.example", "/v1")
        );
        assert_eq!(
            bind("GET", "http://api.example:80/"),
            s("GET", "api.example", "/")
        );
        assert_eq!(
            bind("GET", "http://api.example:443/"),
            s("GET", "api.example:443", "/")
        );
        assert_eq!(
            bind("GET", "https://api.example:8443"),
            s("GET", "api.example:8443", "/")
        );
        assert_eq!(
            bind("GET", "http://127.0.0.1:9/x"),
            s("GET", "127.0.0.1:9", "/x")
        );
        assert_eq!(
            bind("GET", "http://[::1]:8080/x"),
            s("GET", "[::1]:8080", "/x")
        );
        assert_eq!(bind("GET", "https://[::1]/x"), s("GET", "[::1]", "/x"));
    }

    #[test]
    fn path_keeps_query_drops_fragment() {
        assert_eq!(
            bind("post", "https://a.example/p/q?limit=10&x=%20#frag"),
            s("POST", "a.example", "/p/q?limit=10&x=%20")
        );
        let t = Target::new("GET", "https://a.example/p#frag").unwrap();
        assert_eq!(t.url.as_str(), "https://a.example/p");
    }

    #[test]
    fn refuses_paths_the_gateway_would_rewrite_or_refuse() {
        for url in [
            "https://a.example/p/%7Euser",
            "https://a.example/p/%41",
            "https://a.example/a|b",
            "https://a.example/a^b",
            "https://a.example/a//b",
            "https://a.example/a%2Fb",
            "https://a.example/a%5cb",
        ] {
            assert!(Target::new("GET", url).is_err(), "{url}");
        }
        // Other escapes, sub-delims and anything in the query pass as sent.
        for url in [
            "https://a.example/a%20b/%C3%A9/%25",
            "https://a.example/a;b=c,d!$&'()*+",
            "https://a.example/p?x=%7E|^",
        ] {
            assert!(Target::new("GET", url).is_ok(), "{url}");
        }
    }

    #[test]
    fn rejects_what_cannot_be_bound() {
        assert!(Target::new("GET", "ftp://a.example/").is_err());
        assert!(Target::new("GET", "not a url").is_err());
        assert!(Target::new("GET", "https://u:p@a.example/").is_err());
        assert!(Target::new("GE T", "https://a.example/").is_err());
    }
}
