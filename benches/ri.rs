//! Randomization inference at the scale: 10,000 draws on 20,000 firms (strata of 8, 1:1,
//! a baseline covariate), for the blocked difference in means and the studentized ANCOVA, on all
//! cores (rayon). Times itself (the median of three runs), then times the same workload through
//! a vectorised numpy loop and, where R `coin` is installed, `coin::independence_test`, and prints
//! the ratios (benches/ri_reference_timing.py, benches/ri_reference_timing.R).
//!
//! Run: `cargo bench --bench ri` (`RI_FIRMS`, `RI_DRAWS` to change the size; `RI_NO_REFERENCE=1`
//! to skip the reference tools).

use std::process::Command;
use std::time::Instant;

use ia_rct::estimate::RiOptions;
use ia_rct::estimate::ri::{RiData, RiDesign, RiStatistic, randomization_inference};
use ia_rct::progress::Progress;
use rand_core::{RngCore, SeedableRng};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A uniform in (0, 1) from the generator.
fn uniform(rng: &mut ia_rct::randomization::TrialRng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

fn main() {
    let n = env("RI_FIRMS", 20_000) as usize;
    let draws = env("RI_DRAWS", 10_000);
    let block = 8;
    let mut rng = ia_rct::randomization::TrialRng::seed_from_u64(2026);
    let stratum: Vec<u32> = (0..n).map(|i| (i / block) as u32).collect();
    let n_strata = n.div_ceil(block);
    let treated: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
    let b: Vec<f64> = (0..n).map(|_| 6.0 * (-uniform(&mut rng).ln())).collect();
    let y: Vec<f64> = b
        .iter()
        .map(|b| 0.6 * b + 3.0 * (-uniform(&mut rng).ln()))
        .collect();
    let unit: Vec<u32> = (0..n as u32).collect();
    let covariates = vec![b];
    let design = RiDesign::new(&stratum, &treated, n_strata).expect("design");
    let data = RiData {
        unit: &unit,
        stratum: &stratum,
        y: &y,
        weights: None,
        covariates: &covariates,
    };
    let opts = RiOptions {
        draws,
        seed: "bench".into(),
        conf_level: 0.95,
    };
    println!(
        "ri: {n} firms in strata of {block}, {draws} draws, {} threads",
        rayon::current_num_threads()
    );
    let mut ours = Vec::new();
    for (label, stat) in [
        ("dim", RiStatistic::Dim),
        ("ancova_t", RiStatistic::AncovaT),
    ] {
        let mut times = Vec::new();
        let mut p = f64::NAN;
        for _ in 0..3 {
            let t = Instant::now();
            let r = randomization_inference(&design, &data, &[stat], &opts, &Progress::new())
                .expect("ri");
            times.push(t.elapsed().as_secs_f64());
            p = r[0].p_value;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  ia-rct {label:<9} {:>8.3} s (median of 3; p = {p:.4})",
            times[1]
        );
        ours.push((label, times[1]));
    }
    if std::env::var_os("RI_NO_REFERENCE").is_some() {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let python = std::env::var("RI_PYTHON").unwrap_or_else(|_| "python3".into());
    // Each reference prints "<tool> <statistic> <seconds>" lines.
    let mut reference: Vec<(String, String, f64)> = Vec::new();
    let mut read = |what: &str, out: std::io::Result<std::process::Output>| match out {
        Ok(o) if o.status.success() => {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if let [tool, stat, secs] = f.as_slice()
                    && let Ok(s) = secs.parse::<f64>()
                {
                    reference.push(((*tool).into(), (*stat).into(), s));
                }
            }
        }
        Ok(o) => println!(
            "  {what} not run: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("  {what} not run: {e}"),
    };
    read(
        "numpy reference",
        Command::new(&python)
            .arg(format!("{root}/benches/ri_reference_timing.py"))
            .args(["--firms", &n.to_string(), "--draws", &draws.to_string()])
            .output(),
    );
    read(
        "R coin",
        Command::new("Rscript")
            .arg("--vanilla")
            .arg(format!("{root}/benches/ri_reference_timing.R"))
            .args([n.to_string(), draws.to_string()])
            .output(),
    );
    for (tool, stat, secs) in &reference {
        if let Some((_, t)) = ours.iter().find(|(l, _)| l == stat) {
            println!(
                "  {tool:<6} {stat:<9} {secs:>8.3} s   ratio {tool}/ia-rct {:.1}",
                secs / t
            );
        }
    }
}
