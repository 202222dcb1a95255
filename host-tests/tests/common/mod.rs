//! Shared test helpers: locate and compile the built `.wasm` modules once per test binary.
#![allow(dead_code)]
#![allow(clippy::expect_used, clippy::panic)] // test helpers: failing loudly is the point

use std::path::PathBuf;
use std::sync::OnceLock;

use autoid_host_tests::FilterModule;

/// The path of a built module under `target/wasm32-wasip1/wasm/`, or a panic that says how to build it.
pub fn wasm(file: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let path = target.join("wasm32-wasip1").join("wasm").join(file);
    assert!(
        path.exists(),
        "{} is missing: run `make wasm` (or `make build`) first (it builds the proxy-wasm modules, \
         including host-tests/fixtures/probe-filter, for wasm32-wasip1 with the `wasm` profile)",
        path.display()
    );
    path
}

fn load(cell: &'static OnceLock<FilterModule>, file: &str) -> FilterModule {
    cell.get_or_init(|| FilterModule::load(wasm(file)).expect("the module compiles"))
        .clone()
}

/// The floor filter: sets `x-floor-out` from `x-floor-in`.
pub fn floor() -> FilterModule {
    static CELL: OnceLock<FilterModule> = OnceLock::new();
    load(&CELL, "autoid_floor_filter.wasm")
}

/// The test-only probe filter (`host-tests/fixtures/probe-filter`).
pub fn probe() -> FilterModule {
    static CELL: OnceLock<FilterModule> = OnceLock::new();
    load(&CELL, "autoid_probe_filter.wasm")
}

/// The autoid filter itself (`plugin/`).
pub fn plugin() -> FilterModule {
    static CELL: OnceLock<FilterModule> = OnceLock::new();
    load(&CELL, "autoid_plugin.wasm")
}

/// The autoid filter with fuel metering on (`FilterModule::load_metered`): for instruction counts.
pub fn plugin_metered() -> FilterModule {
    static CELL: OnceLock<FilterModule> = OnceLock::new();
    CELL.get_or_init(|| {
        FilterModule::load_metered(wasm("autoid_plugin.wasm")).expect("the module compiles")
    })
    .clone()
}

/// The floor filter with fuel metering on.
pub fn floor_metered() -> FilterModule {
    static CELL: OnceLock<FilterModule> = OnceLock::new();
    CELL.get_or_init(|| {
        FilterModule::load_metered(wasm("autoid_floor_filter.wasm")).expect("the module compiles")
    })
    .clone()
}

pub mod agent;
pub mod autoid;
