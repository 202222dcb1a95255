//! The stream and VM lifecycle over the probe filter: logs, metrics, ticks, configuration,
//! local replies, pauses, properties, the clock, bodies and response headers.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use autoid_host_tests::{HostError, LogLevel, LogSource, MetricKind, Outcome};

#[test]
fn logs_carry_level_worker_and_message() {
    let gw = common::probe()
        .gateway()
        .workers(2)
        .plugin_config("hello")
        .build()
        .unwrap();
    gw.request("GET", "a", "/logged").worker(1).send();
    let logs = gw.logs();
    assert!(
        logs.iter()
            .any(|l| l.worker == 0 && l.message == "probe: configured with \"hello\""),
        "{logs:#?}"
    );
    let line = logs
        .iter()
        .find(|l| l.message == "probe:  /logged")
        .unwrap();
    assert_eq!(
        (line.level, line.worker, line.source),
        (LogLevel::Info, 1, LogSource::Proxy)
    );
    gw.clear_logs();
    assert!(gw.logs().is_empty());
}

#[test]
fn log_level_filters_proxy_log() {
    let gw = common::probe()
        .gateway()
        .log_level(LogLevel::Warn)
        .build()
        .unwrap();
    gw.request("GET", "a", "/").send();
    assert!(
        gw.logs().iter().all(|l| l.level >= LogLevel::Warn),
        "{:#?}",
        gw.logs()
    );
}

#[test]
fn configuration_rejection_is_an_error_with_the_logs() {
    let err = common::probe()
        .gateway()
        .plugin_config("reject")
        .build()
        .unwrap_err();
    let HostError::ConfigureRejected { worker, logs } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*worker, 0);
    assert!(
        logs.iter()
            .any(|l| l.message.contains("rejecting configuration")),
        "{logs:#?}"
    );
}

#[test]
fn metrics_are_shared_by_workers() {
    let gw = common::probe().gateway().workers(2).build().unwrap();
    assert_eq!(gw.metric("probe_requests"), Some(0));
    for worker in [0, 1, 1] {
        gw.request("GET", "a", "/").worker(worker).send();
    }
    assert_eq!(gw.metric("probe_requests"), Some(3));
    assert_eq!(
        gw.metrics().kind("probe_requests"),
        Some(MetricKind::Counter)
    );
    assert_eq!(gw.metric("no_such_metric"), None);
}

#[test]
fn ticks_follow_the_virtual_clock_on_every_worker() {
    let gw = common::probe()
        .gateway()
        .workers(2)
        .plugin_config("tick=1000")
        .build()
        .unwrap();
    gw.clock().advance(Duration::from_millis(999));
    assert_eq!(gw.metric("probe_ticks"), Some(0));
    gw.clock().advance(Duration::from_millis(1));
    assert_eq!(gw.metric("probe_ticks"), Some(2));
    gw.clock().advance(Duration::from_millis(3500));
    assert_eq!(gw.metric("probe_ticks"), Some(8));
}

#[test]
fn the_guest_reads_the_virtual_clock() {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let gw = common::probe().gateway().start_time(start).build().unwrap();
    let at = |gw: &autoid_host_tests::Gateway| -> u128 {
        gw.request("GET", "a", "/")
            .header("x-probe", "time")
            .send()
            .header("x-time-ms")
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = at(&gw);
    assert_eq!(
        first,
        gw.clock()
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    gw.clock().advance(Duration::from_secs(60));
    assert_eq!(at(&gw), first + 60_000);
}

#[test]
fn local_reply_is_captured() {
    let gw = common::probe().gateway().build().unwrap();
    let out = gw
        .request("GET", "a", "/")
        .header("x-probe", "reply")
        .send();
    let Outcome::LocalReply {
        status,
        headers,
        body,
        ..
    } = &out
    else {
        panic!("{out:?}")
    };
    assert_eq!(*status, 403);
    assert_eq!(body, b"denied");
    assert!(headers.contains(&("x-reason".to_owned(), "probe".to_owned())));
}

#[test]
fn a_request_left_paused_fails_closed_but_the_vm_lives() {
    let gw = common::probe().gateway().build().unwrap();
    let out = gw
        .request("GET", "a", "/")
        .header("x-probe", "pause")
        .send();
    assert!(
        matches!(&out, Outcome::FailClosed { reason } if reason.contains("paused")),
        "{out:?}"
    );
    assert!(gw.worker_fault(0).is_none());
    assert!(gw.request("GET", "a", "/").send().is_upstream());
}

#[test]
fn route_and_gateway_properties() {
    let gw = common::probe()
        .gateway()
        .property(&["xds", "route_name"], "default")
        .build()
        .unwrap();
    let routed = gw
        .request("GET", "a", "/")
        .header("x-probe", "route")
        .route("payments")
        .send();
    assert_eq!(routed.header("x-route"), Some("payments"));
    let fallback = gw
        .request("GET", "a", "/")
        .header("x-probe", "route")
        .send();
    assert_eq!(fallback.header("x-route"), Some("default"));
    gw.set_property(&["xds", "route_name"], "changed");
    let changed = gw
        .request("GET", "a", "/")
        .header("x-probe", "route")
        .send();
    assert_eq!(changed.header("x-route"), Some("changed"));
}

#[test]
fn bodies_and_header_edits_reach_upstream() {
    let gw = common::probe().gateway().build().unwrap();
    let out = gw
        .request("POST", "a", "/")
        .header("x-probe", "body")
        .body("shout")
        .send();
    let Outcome::Upstream { body, .. } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(body, b"SHOUT");

    let out = gw
        .request("GET", "a", "/")
        .header("x-probe", "strip")
        .header("Authorization", "secret")
        .response_status(204)
        .send();
    assert_eq!(out.header("authorization"), None);
    assert_eq!(out.header("x-added"), Some("1"));
    let Outcome::Upstream {
        response_headers, ..
    } = &out
    else {
        panic!("{out:?}")
    };
    assert!(response_headers.contains(&(":status".to_owned(), "204".to_owned())));
    assert!(response_headers.contains(&("x-probe-seen".to_owned(), "strip".to_owned())));
}
