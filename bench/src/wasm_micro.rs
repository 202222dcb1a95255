//! Times the crypto steps ([`crate::steps`]) inside wasm: the `bench/crypto-wasm` module
//! (wasm32-wasip1, same code, same `wasm` profile as the filter) under wasmtime (Cranelift),
//! each `bench_run(step, iterations)` call timed from the native side.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use wasmtime::{Caller, Engine, Extern, Linker, Module, Store};

use crate::steps::Step;

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepTime {
    /// [`Step::name`].
    pub step: &'static str,
    /// Mean microseconds per call over the timed calls.
    pub us_per_call: f64,
    /// Calls timed.
    pub calls: u64,
}

/// WASI `random_get`: the OS CSPRNG (RSA blinding and the fixture's sessions need it).
fn random_get(mut caller: Caller<'_, ()>, ptr: i32, len: i32) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return 8; // EBADF: no memory exported
    };
    let mut buf = vec![0u8; len as u32 as usize];
    if getrandom::fill(&mut buf).is_err() {
        return 29; // EIO
    }
    match memory.write(&mut caller, ptr as u32 as usize, &buf) {
        Ok(()) => 0,
        Err(_) => 21, // EFAULT
    }
}

/// Loads the module, builds its fixture, then times each step for about `seconds`.
pub fn run(wasm: &Path, seconds: f64) -> Result<Vec<StepTime>> {
    if !wasm.exists() {
        bail!(
            "{} is missing: run `cargo build --manifest-path bench/crypto-wasm/Cargo.toml --profile wasm --target wasm32-wasip1 --target-dir target`",
            wasm.display()
        );
    }
    let engine = Engine::default();
    let module = Module::from_file(&engine, wasm).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut linker: Linker<()> = Linker::new(&engine);
    linker
        .func_wrap("wasi_snapshot_preview1", "random_get", random_get)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    // Everything else the module imports (fd_write for a panic message, environ, exit) must
    // not be called by the timed steps: calling one traps and fails the bench.
    linker
        .define_unknown_imports_as_traps(&module)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut store = Store::new(&engine, ());
    let instance = linker
        .instantiate(&mut store, &module)
        .map_err(|e| anyhow::anyhow!("instantiate: {e:#}"))?;
    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
        init.call(&mut store, ())
            .map_err(|e| anyhow::anyhow!("_initialize: {e:#}"))?;
    }
    let setup = instance
        .get_typed_func::<(), i32>(&mut store, "bench_setup")
        .map_err(|e| anyhow::anyhow!("bench_setup: {e:#}"))?;
    if setup
        .call(&mut store, ())
        .map_err(|e| anyhow::anyhow!("bench_setup: {e:#}"))?
        != 0
    {
        bail!("bench_setup failed inside wasm");
    }
    let bench = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "bench_run")
        .map_err(|e| anyhow::anyhow!("bench_run: {e:#}"))?;
    let call = |store: &mut Store<()>, step: Step, n: u32| -> Result<f64> {
        let t = Instant::now();
        let r = bench
            .call(&mut *store, (step.id() as i32, n as i32))
            .map_err(|e| anyhow::anyhow!("bench_run({}): {e:#}", step.name()))?;
        let secs = t.elapsed().as_secs_f64();
        if r < 0 {
            bail!("step {} failed inside wasm", step.name());
        }
        Ok(secs)
    };
    let mut out = Vec::new();
    for step in Step::ALL {
        // Warm up (and calibrate) with one call, then time enough calls for `seconds`.
        let one = call(&mut store, step, 1).context("calibrate")?;
        let n = ((seconds / one.max(1e-9)) as u64).clamp(3, 2_000_000);
        let secs = call(&mut store, step, n as u32)?;
        out.push(StepTime {
            step: step.name(),
            us_per_call: secs * 1e6 / n as f64,
            calls: n,
        });
    }
    Ok(out)
}
