//! Small values the bootstrap repeats: socket addresses and durations.

use serde_json::{Value, json};

/// A TCP socket address.
pub(super) fn socket(address: &str, port: u16) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

/// A duration in Envoy's form (`2s`, `1.500s`).
pub(super) fn millis(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(millis(1500), "1.500s");
        assert_eq!(millis(2000), "2s");
    }
}
