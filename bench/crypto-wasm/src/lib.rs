//! The filter's crypto steps inside wasm: `bench_setup()` builds the fixture once,
//! `bench_run(step, n)` runs step `n` times (returns a byte of the result, or -1 on failure).
//! The steps are `bench/src/steps.rs`, compiled here unchanged.
// `deny`, not `forbid`: exporting an unmangled function is an `unsafe` attribute in edition 2024.
#![deny(unsafe_code)]

#[path = "../../src/steps.rs"]
#[allow(dead_code)]
mod steps;

use std::cell::RefCell;

use steps::{Fixture, Step};

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

/// Builds the fixture (keys, epoch, entropy file, sessions, proofs). 0 on success.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn bench_setup() -> i32 {
    let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
    match Fixture::new(&mut rng) {
        Ok(f) => {
            FIXTURE.with(|cell| *cell.borrow_mut() = Some(f));
            0
        }
        Err(_) => -1,
    }
}

/// Runs `step` `n` times; a byte of the last result, or -1.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn bench_run(step: i32, n: i32) -> i32 {
    let Some(step) = u32::try_from(step).ok().and_then(Step::from_id) else {
        return -1;
    };
    FIXTURE.with(|cell| {
        let fixture = cell.borrow();
        let Some(f) = fixture.as_ref() else {
            return -1;
        };
        let mut last = 0i32;
        for _ in 0..n.max(1) {
            match f.run(step) {
                Some(b) => last = i32::from(b),
                None => return -1,
            }
        }
        last
    })
}
