//! Header maps: the `proxy_*_header_map_*` hostcalls and the pairs encoding.

use wasmtime::{Caller, Linker};

use crate::abi::{Status, map_type};
use crate::memory::{self, Fault, HostResult, status};
use crate::state::{HeaderMap, HostState};

/// Serializes a map the ABI way: u32 count, (u32 key_len, u32 value_len) per pair, then each
/// `key\0value\0`.
pub(crate) fn encode_pairs(map: &HeaderMap) -> Vec<u8> {
    let size = 4 + map
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (key, value) in map {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in map {
        out.extend_from_slice(key);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Parses the pairs encoding; `None` when malformed. Names are lower-cased, as Envoy stores them.
pub(crate) fn decode_pairs(bytes: &[u8]) -> Option<HeaderMap> {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if bytes.is_empty() {
        return Some(HeaderMap::new());
    }
    let count = word(0)?;
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut map = HeaderMap::with_capacity(count.min(1024));
    for i in 0..count {
        let key_len = word(4 + i * 8)?;
        let value_len = word(8 + i * 8)?;
        let key = bytes.get(data..data.checked_add(key_len)?)?;
        data += key_len;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        let value = bytes.get(data..data.checked_add(value_len)?)?;
        data += value_len;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        map.push((lower(key), value.to_vec()));
    }
    Some(map)
}

/// A header name as Envoy stores it: ASCII lower case, every other byte as it is.
pub(crate) fn lower(name: &[u8]) -> Vec<u8> {
    name.to_ascii_lowercase()
}

/// The map a hostcall addresses, if it exists at this point of the stream.
fn map_mut(state: &mut HostState, map_type: u32) -> Result<&mut HeaderMap, Fault> {
    let map = match map_type {
        map_type::CALLOUT_RESPONSE_HEADERS => {
            state.callout_response.as_mut().map(|r| &mut r.headers)
        }
        map_type::CALLOUT_RESPONSE_TRAILERS => {
            state.callout_response.as_mut().map(|r| &mut r.trailers)
        }
        _ => {
            let stream = state.current_stream();
            match map_type {
                map_type::REQUEST_HEADERS => stream.map(|s| &mut s.request_headers),
                map_type::REQUEST_TRAILERS => stream.map(|s| &mut s.request_trailers),
                map_type::RESPONSE_HEADERS => stream.and_then(|s| s.response_headers.as_mut()),
                map_type::RESPONSE_TRAILERS => stream
                    .filter(|s| s.response_headers.is_some())
                    .map(|s| &mut s.response_trailers),
                _ => None,
            }
        }
    };
    map.ok_or(Fault::Status(Status::BadArgument))
}

fn get_pairs(
    caller: &mut Caller<'_, HostState>,
    map_type: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> HostResult {
    let encoded = encode_pairs(map_mut(caller.data_mut(), map_type)?);
    memory::give(caller, &encoded, ptr_ptr, size_ptr)
}

fn set_pairs(caller: &mut Caller<'_, HostState>, map_type: u32, ptr: u32, len: u32) -> HostResult {
    let bytes = memory::read(caller, ptr, len)?;
    let pairs = decode_pairs(&bytes).ok_or(Status::ParseFailure)?;
    *map_mut(caller.data_mut(), map_type)? = pairs;
    Ok(())
}

fn get_value(
    caller: &mut Caller<'_, HostState>,
    map_type: u32,
    key: (u32, u32),
    ptr_ptr: u32,
    size_ptr: u32,
) -> HostResult {
    let key = lower(&memory::read(caller, key.0, key.1)?);
    let map = map_mut(caller.data_mut(), map_type)?;
    let value = map
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
        .ok_or(Status::NotFound)?;
    memory::give(caller, &value, ptr_ptr, size_ptr)
}

enum Edit {
    Replace,
    Add,
    Remove,
}

fn edit(
    caller: &mut Caller<'_, HostState>,
    map_type: u32,
    key: (u32, u32),
    value: (u32, u32),
    edit: Edit,
) -> HostResult {
    let key = lower(&memory::read(caller, key.0, key.1)?);
    let value = memory::read(caller, value.0, value.1)?;
    let map = map_mut(caller.data_mut(), map_type)?;
    match edit {
        Edit::Add => map.push((key, value)),
        Edit::Remove => map.retain(|(k, _)| *k != key),
        Edit::Replace => match map.iter().position(|(k, _)| *k == key) {
            Some(first) => {
                map[first].1 = value;
                let mut index = 0;
                map.retain(|(k, _)| {
                    index += 1;
                    index - 1 == first || *k != key
                });
            }
            None => map.push((key, value)),
        },
    }
    Ok(())
}

/// Registers the header map hostcalls.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut caller: Caller<'_, HostState>, map_type: u32, ptr_ptr: u32, size_ptr: u32| {
            status(get_pairs(&mut caller, map_type, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut caller: Caller<'_, HostState>, map_type: u32, ptr: u32, len: u32| {
            status(set_pairs(&mut caller, map_type, ptr, len))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut caller: Caller<'_, HostState>,
         map_type: u32,
         key_ptr: u32,
         key_len: u32,
         ptr_ptr: u32,
         size_ptr: u32| {
            status(get_value(
                &mut caller,
                map_type,
                (key_ptr, key_len),
                ptr_ptr,
                size_ptr,
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut caller: Caller<'_, HostState>,
         map_type: u32,
         key_ptr: u32,
         key_len: u32,
         value_ptr: u32,
         value_len: u32| {
            let (key, value) = ((key_ptr, key_len), (value_ptr, value_len));
            status(edit(&mut caller, map_type, key, value, Edit::Replace))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut caller: Caller<'_, HostState>,
         map_type: u32,
         key_ptr: u32,
         key_len: u32,
         value_ptr: u32,
         value_len: u32| {
            let (key, value) = ((key_ptr, key_len), (value_ptr, value_len));
            status(edit(&mut caller, map_type, key, value, Edit::Add))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut caller: Caller<'_, HostState>, map_type: u32, key_ptr: u32, key_len: u32| {
            status(edit(
                &mut caller,
                map_type,
                (key_ptr, key_len),
                (0, 0),
                Edit::Remove,
            ))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let map: HeaderMap = vec![
            (":path".into(), b"/x".to_vec()),
            ("k".into(), Vec::new()),
            ("x-a".into(), b"v\xff".to_vec()),
        ];
        assert_eq!(decode_pairs(&encode_pairs(&map)), Some(map));
    }

    #[test]
    fn malformed_pairs_are_rejected() {
        let mut bytes = encode_pairs(&vec![("k".into(), b"v".to_vec())]);
        bytes.pop();
        assert_eq!(decode_pairs(&bytes), None);
        assert_eq!(decode_pairs(&[1, 0, 0, 0]), None);
        assert_eq!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]), None);
    }
}
