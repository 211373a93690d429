//! Randomizing the whole register: 300,000 firms through eligibility screening, clusters, strata
//! and the draw, as `ia-rct assign` and the service run it (without file I/O).
//!
//! Run: `cargo bench --bench randomization`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ia_rct::protocol::Protocol;
use ia_rct::randomization::plan::{randomize, screen};

const NALS: &str = include_str!("../protocols/nals-arbeidsformer.toml");
const SEED: &str = "nals-arbeidsformer-demo-wave-1";

fn benches(c: &mut Criterion) {
    let protocol = Protocol::from_toml(NALS).expect("valid protocol");
    let hash = protocol.content_hash();
    let mut group = c.benchmark_group("randomize");
    group.sample_size(10);
    for n in [20_000usize, 300_000] {
        let firms = ia_rct::simulate::register(n, 1);
        let screening = screen(&protocol, &firms, &BTreeMap::new());
        group.bench_with_input(BenchmarkId::new("screen", n), &firms, |b, firms| {
            b.iter(|| black_box(screen(&protocol, firms, &BTreeMap::new())));
        });
        group.bench_with_input(
            BenchmarkId::new("draw", n),
            &screening.eligible,
            |b, units| {
                b.iter(|| {
                    black_box(randomize(&protocol, &hash, 1, SEED, units, None).expect("draw"))
                });
            },
        );
    }
    group.finish();
}

criterion_group!(randomization, benches);
criterion_main!(randomization);
