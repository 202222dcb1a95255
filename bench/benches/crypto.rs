//! The filter's crypto steps natively (criterion), the counterpart of `autoid-bench micro-wasm`.
//! `cargo bench -p autoid-bench --bench crypto`

use std::hint::black_box;

use autoid_bench::proofs::rng;
use autoid_bench::steps::{Fixture, Step};
use criterion::{Criterion, criterion_group, criterion_main};

fn steps(c: &mut Criterion) {
    let Ok(fixture) = Fixture::new(&mut rng()) else {
        eprintln!("bench fixture failed");
        return;
    };
    let mut g = c.benchmark_group("native");
    for step in Step::ALL {
        if matches!(step, Step::RsaUnwrap2048 | Step::RsaUnwrap3072) {
            g.sample_size(20);
        } else {
            g.sample_size(100);
        }
        g.bench_function(step.name(), |b| {
            b.iter(|| black_box(fixture.run(black_box(step))))
        });
    }
    g.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);
