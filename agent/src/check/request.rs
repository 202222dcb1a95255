//! The request a gateway describes (the contract's `x-autoid-*` headers, the client's headers
//! and the body) as the filter would see it.

use std::net::{IpAddr, SocketAddr};

use autoid_protocol::check::CONTRACT_HEADERS;
use axum::http::HeaderMap;

use super::host::Described;

/// Hop-by-hop headers (RFC 9110 7.6.1), and `host` (the check request's own).
const DROPPED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    ":authority",
];

/// A contract header is missing or malformed: the gateway is misconfigured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// The one value of the contract header `name`, as bytes (the request line's parts are the
/// client's bytes: the filter judges them as it judges Envoy's pseudo-headers).
fn one_bytes<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a [u8], Malformed> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v.as_bytes().trim_ascii())
            .filter(|v| !v.is_empty())
            .ok_or(Malformed(name)),
        _ => Err(Malformed(name)),
    }
}

/// The one value of the contract header `name`, which the gateway writes as text.
fn one<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Malformed> {
    std::str::from_utf8(one_bytes(headers, name)?).map_err(|_| Malformed(name))
}

/// The request the filter sees for a check request's `headers` and `body`.
pub fn describe(headers: &HeaderMap, body: Vec<u8>) -> Result<Described, Malformed> {
    let route = one(headers, "x-autoid-api")?;
    let method = one(headers, "x-autoid-method")?;
    if !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        return Err(Malformed("x-autoid-method"));
    }
    let uri = one_bytes(headers, "x-autoid-uri")?;
    if !uri.starts_with(b"/") {
        return Err(Malformed("x-autoid-uri"));
    }
    let authority = one_bytes(headers, "x-autoid-authority")?;
    let peer: IpAddr = one(headers, "x-autoid-peer")?
        .parse()
        .map_err(|_| Malformed("x-autoid-peer"))?;
    let tls = match one(headers, "x-autoid-tls")? {
        "1" => true,
        "0" => false,
        _ => return Err(Malformed("x-autoid-tls")),
    };
    let scheme: &[u8] = if tls { b"https" } else { b"http" };
    let mut described = vec![
        (b":method".to_vec(), method.as_bytes().to_vec()),
        (b":path".to_vec(), uri.to_vec()),
        (b":authority".to_vec(), authority.to_vec()),
        (b":scheme".to_vec(), scheme.to_vec()),
    ];
    // The client's headers go to the filter byte for byte, as Envoy hands them to the wasm
    // filter: never decoded here, judged (or carried) by the filter.
    for (name, value) in headers {
        let name = name.as_str();
        if CONTRACT_HEADERS.contains(&name) || DROPPED.contains(&name) {
            continue;
        }
        described.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
    Ok(Described {
        headers: described,
        body,
        route: route.to_owned(),
        source: SocketAddr::new(peer, 0).to_string(),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn contract() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-autoid-api", "payments"),
            ("x-autoid-method", "POST"),
            ("x-autoid-uri", "/payments/x?y=1"),
            ("x-autoid-authority", "api.example.com"),
            ("x-autoid-peer", "::1"),
            ("x-autoid-tls", "1"),
            ("x-autoid-proof", "v1.abc"),
            ("host", "agent"),
            ("connection", "close"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_contract_headers_become_the_request_line_route_and_peer() {
        let d = describe(&contract(), b"body".to_vec()).unwrap();
        assert_eq!(d.route, "payments");
        assert_eq!(d.source, "[::1]:0");
        assert!(d.tls);
        let names: Vec<&[u8]> = d.headers.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(
            names,
            [
                &b":method"[..],
                b":path",
                b":authority",
                b":scheme",
                b"x-autoid-proof"
            ]
        );
        assert_eq!(d.headers[1].1, b"/payments/x?y=1");
        assert_eq!(d.headers[2].1, b"api.example.com");
    }

    #[test]
    fn the_clients_bytes_reach_the_filter_as_they_are() {
        let mut h = contract();
        let raw = b"caf\xe9 \x80\xff";
        h.insert(
            "x-autoid-uri",
            HeaderValue::from_bytes(b"/caf\xe9").unwrap(),
        );
        h.insert("x-note", HeaderValue::from_bytes(raw).unwrap());
        let d = describe(&h, Vec::new()).unwrap();
        assert_eq!(d.headers[1].1, b"/caf\xe9");
        assert!(d.headers.contains(&(b"x-note".to_vec(), raw.to_vec())));
    }

    #[test]
    fn a_missing_duplicated_or_malformed_contract_header_is_named() {
        for name in CONTRACT_HEADERS {
            let mut h = contract();
            h.remove(name);
            assert_eq!(describe(&h, Vec::new()).err(), Some(Malformed(name)));
            let mut h = contract();
            h.append(name, HeaderValue::from_static("1"));
            assert_eq!(describe(&h, Vec::new()).err(), Some(Malformed(name)));
        }
        for (name, bad) in [
            ("x-autoid-peer", "10.0.0.1:443"),
            ("x-autoid-tls", "yes"),
            ("x-autoid-uri", "payments"),
            ("x-autoid-method", "GET /"),
        ] {
            let mut h = contract();
            h.insert(name, HeaderValue::from_static(bad));
            assert_eq!(describe(&h, Vec::new()).err(), Some(Malformed(name)));
        }
    }
}
