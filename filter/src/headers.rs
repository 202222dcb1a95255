//! Header maps as the host holds them: names and values are bytes, looked up by name without
//! decoding; the proxy-wasm map serialization decoded the same way.
//!
//! A client may send any byte in a header (obs-text, invalid UTF-8, NUL where a codec lets it
//! through), and the proxy passes them on: the filter never turns a header into text it does not
//! read, and the few values it reads are checked against their grammar where they are used.

/// One header: its name and its value, as bytes.
pub type Header = (Vec<u8>, Vec<u8>);

/// Every value of the header `name` (ASCII case-insensitive), in order.
pub fn values<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
}

/// The first value of the header `name` (ASCII case-insensitive).
pub fn first<'a>(headers: &'a [Header], name: &'a str) -> Option<&'a [u8]> {
    values(headers, name).next()
}

/// Whether the request carries the header `name` (ASCII case-insensitive).
pub fn has(headers: &[Header], name: &str) -> bool {
    first(headers, name).is_some()
}

/// Decodes a proxy-wasm serialized map (a `u32` count, then each pair's name and value lengths,
/// then each name and value followed by a NUL; integers little-endian). `None` when the bytes do
/// not follow that layout: the host sent something else.
pub fn decode(bytes: &[u8]) -> Option<Vec<Header>> {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()
    };
    let count = word(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    let mut take = |len: usize| -> Option<Vec<u8>> {
        let end = data.checked_add(len)?;
        let value = bytes.get(data..end)?.to_vec();
        data = end.checked_add(1)?;
        Some(value)
    };
    let mut map = Vec::with_capacity(count);
    for n in 0..count {
        let at = 4 + n * 8;
        let (name_len, value_len) = (word(at)?, word(at + 4)?);
        let name = take(name_len)?;
        let value = take(value_len)?;
        map.push((name, value));
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(map: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = u32::try_from(map.len()).unwrap().to_le_bytes().to_vec();
        for (k, v) in map {
            out.extend(u32::try_from(k.len()).unwrap().to_le_bytes());
            out.extend(u32::try_from(v.len()).unwrap().to_le_bytes());
        }
        for (k, v) in map {
            out.extend(*k);
            out.push(0);
            out.extend(*v);
            out.push(0);
        }
        out
    }

    #[test]
    fn any_bytes_in_names_and_values_are_decoded_as_they_are() {
        let map: [(&[u8], &[u8]); 3] = [
            (b":path", b"/caf\xe9"),
            (b"x-\xff\x00name", b"v\x00\x80\xfe"),
            (b"empty", b""),
        ];
        let decoded = decode(&encode(&map)).unwrap();
        let expected: Vec<Header> = map.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(decoded, expected);
        assert_eq!(first(&decoded, ":PATH"), Some(&b"/caf\xe9"[..]));
        assert!(!has(&decoded, "x-\u{ff}\u{0}name"));
        assert!(decode(&encode(&[])).unwrap().is_empty());
    }

    #[test]
    fn a_map_that_does_not_follow_the_layout_is_none_never_a_panic() {
        let good = encode(&[(b"a", b"bc"), (b"d", b"")]);
        for cut in 0..good.len() - 1 {
            assert_eq!(decode(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), None);
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), None);
    }

    #[test]
    fn names_match_ascii_case_insensitively_and_byte_for_byte() {
        let map: Vec<Header> = vec![
            (b"X-Autoid-Proof".to_vec(), b"one".to_vec()),
            (b"x-autoid-proof".to_vec(), b"two".to_vec()),
            (b"x-autoid-pr\xc3\xb6of".to_vec(), b"three".to_vec()),
        ];
        let found: Vec<&[u8]> = values(&map, "x-autoid-proof").collect();
        assert_eq!(found, [&b"one"[..], &b"two"[..]]);
    }
}
