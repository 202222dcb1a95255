//! Traps: a trapping VM fails closed, stays dead, and does not take other workers down.

mod common;

use autoid_host_tests::{LogLevel, Outcome};

#[test]
fn invalid_utf8_header_traps_the_floor_and_fails_closed() {
    // Envoy passes obs-text header values through; the SDK's String conversion panics on them.
    let gw = common::floor().gateway().workers(2).build().unwrap();
    let out = gw
        .request("GET", "api.local", "/")
        .header_bytes("x-floor-in", b"\xff\xfe")
        .worker(0)
        .send();
    let Outcome::FailClosed { reason } = &out else {
        panic!("{out:?}")
    };
    assert!(
        reason.contains("unreachable") || reason.contains("trap"),
        "{reason}"
    );
    assert!(gw.worker_fault(0).is_some());
    // The SDK's panic hook logs the panic at critical level before the abort.
    let logs = gw.logs();
    assert!(
        logs.iter().any(|l| l.level == LogLevel::Critical
            && l.worker == 0
            && l.message.contains("FromUtf8Error")),
        "{logs:#?}"
    );

    // The dead worker fails closed; the other one still serves.
    let again = gw
        .request("GET", "api.local", "/")
        .header("x-floor-in", "ok")
        .worker(0)
        .send();
    assert!(
        matches!(&again, Outcome::FailClosed { reason } if reason.contains("dead")),
        "{again:?}"
    );
    let other = gw
        .request("GET", "api.local", "/")
        .header("x-floor-in", "ok")
        .worker(1)
        .send();
    assert_eq!(other.header("x-floor-out"), Some("ok"));

    gw.restart_worker(0).unwrap();
    assert!(gw.worker_fault(0).is_none());
    let revived = gw
        .request("GET", "api.local", "/")
        .header("x-floor-in", "back")
        .worker(0)
        .send();
    assert_eq!(revived.header("x-floor-out"), Some("back"));
}

#[test]
fn malformed_callback_traps() {
    // A callout response for a token the SDK never issued: its dispatcher panics.
    let gw = common::floor().gateway().build().unwrap();
    let err = gw
        .call_export(0, "proxy_on_http_call_response", &[1, 999, 0, 0, 0])
        .unwrap_err();
    assert!(gw.worker_fault(0).is_some(), "{err}");
    assert!(matches!(
        gw.request("GET", "a", "/").send(),
        Outcome::FailClosed { .. }
    ));
    assert!(
        gw.call_export(0, "proxy_on_tick", &[1])
            .unwrap_err()
            .contains("dead")
    );
}

#[test]
fn explicit_panic_in_a_filter_fails_closed() {
    let gw = common::probe().gateway().build().unwrap();
    let out = gw
        .request("GET", "a", "/")
        .header("x-probe", "panic")
        .send();
    assert!(matches!(out, Outcome::FailClosed { .. }), "{out:?}");
    assert!(
        gw.logs()
            .iter()
            .any(|l| l.message.contains("probe panic on purpose"))
    );
}
