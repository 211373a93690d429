//! Seeded coverage simulation of three interval procedures of `ia_rct::estimate`:
//!
//! 1. the Wald 95 % interval of `cace_iv` (2SLS, HC2),
//! 2. the Anderson-Rubin set of `cace_iv` (`report.iv[..].anderson_rubin`),
//! 3. the randomization-inference interval of `ri` for the statistics `dim` and `ancova`
//!    (`report.ri[..].result.interval`), under a constant additive effect.
//!
//! Every replication builds a `StudyData` in memory (assignment + firm-quarter rows + take-up
//! events) from its own ChaCha20 stream and runs `estimate::estimate` on it. The data-generating
//! process is described in `notebooks/README-coverage.md`.
//!
//! ```text
//! cargo run --release --example coverage_cace_ri -- \
//!     [--reps-iv 5000] [--reps-ri 2000] [--draws 1000] [--seed 20250601] [--only iv|ri] \
//!     [--designs name,name,...]
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::NaiveDate;
use ia_rct::domain::{Orgnr, Quarter};
use ia_rct::estimate::{
    self, ArShape, AssignedUnit, Estimator, Options, Report, RiOptions, RiStatistic, StudyData,
    Takeup, Weighting, Windows,
};
use ia_rct::randomization::TrialRng;
use ia_rct::takeup::{TakeupEvent, TakeupStatus};
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

const CONTROL: &str = "kontroll";
const ARM: &str = "tiltak";
const PRE: u32 = 4;
const POST: u32 = 4;
/// Floor of every quarterly rate y_it(0), in percent, so that y_it(0) + effect stays >= 0.
const FLOOR: f64 = 1.0;

// ---------------------------------------------------------------------------------------------
// Random numbers (no `rand` crate: uniforms from the ChaCha20 stream, normals by Box-Muller).

struct Rng {
    inner: TrialRng,
    spare: Option<f64>,
}

impl Rng {
    /// Stream `rep` of the key derived from `seed` (one stream per replication).
    fn new(seed: u64, rep: u64) -> Rng {
        let mut inner = TrialRng::seed_from_u64(seed);
        inner.set_stream(rep);
        Rng { inner, spare: None }
    }

    /// Uniform on [0, 1).
    fn unif(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.unif(); // (0, 1]
        let u2 = self.unif();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    fn bernoulli(&mut self, p: f64) -> bool {
        self.unif() < p
    }

    /// Uniform integer in lo..=hi.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + ia_rct::randomization::below(&mut self.inner, (hi - lo + 1) as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Designs.

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// One-sided non-compliance: treated compliers (share `pi_c`) receive help, with effect `tau`
    /// (pp) on their post rate; compliers' post rates are `selection` pp higher absent help.
    Iv { pi_c: f64, tau: f64, selection: f64 },
    /// Every treated firm's post rate shifted by `delta` pp (constant additive ITT effect).
    Ri { delta: f64 },
}

#[derive(Debug, Clone)]
struct Design {
    name: &'static str,
    n_firms: usize,
    kind: Kind,
}

fn designs() -> Vec<Design> {
    let iv = |name, n_firms, pi_c, selection| Design {
        name,
        n_firms,
        kind: Kind::Iv {
            pi_c,
            tau: -1.0,
            selection,
        },
    };
    vec![
        iv("iv-strong", 400, 0.60, 1.5),
        iv("iv-weak-08", 200, 0.08, 1.5),
        iv("iv-weak-05", 200, 0.05, 1.5),
        iv("iv-weak-03", 200, 0.03, 1.5),
        iv("iv-weak-05-nosel", 200, 0.05, 0.0),
        iv("iv-weak-05-sel10", 200, 0.05, 10.0),
        iv("iv-weak-03-sel10", 200, 0.03, 10.0),
        Design {
            name: "ri-const",
            n_firms: 200,
            kind: Kind::Ri { delta: -0.5 },
        },
        Design {
            name: "ri-const-60",
            n_firms: 60,
            kind: Kind::Ri { delta: -0.5 },
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// One simulated study.

struct Sim {
    data: StudyData,
    events: Vec<TakeupEvent>,
    cutoff: NaiveDate,
    compliers_treated: usize,
}

fn orgnrs(n: usize) -> Vec<Orgnr> {
    let mut out = Vec::with_capacity(n);
    let mut prefix = 81_000_000u32;
    while out.len() < n {
        if let Some(o) = Orgnr::from_prefix(prefix) {
            out.push(o);
        }
        prefix += 1;
    }
    out
}

/// Stratum sizes: uniform in 4..=10 until `n` firms; a remainder below 4 joins the last stratum
/// (which may then hold up to 13 firms).
fn strata_sizes(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = n;
    while left > 0 {
        let s = rng.int(4, 10).min(left);
        if s < 4 {
            *sizes.last_mut().expect("a stratum") += s;
            break;
        }
        sizes.push(s);
        left -= s;
    }
    sizes
}

fn simulate(design: &Design, seed: u64, rep: u64, ids: &[Orgnr]) -> Sim {
    let mut rng = Rng::new(seed, rep);
    let r: Quarter = "2025K1".parse().expect("quarter");
    let windows = Windows {
        randomized_at: r,
        pre: PRE,
        post: POST,
    };
    let n = design.n_firms;
    // Assignment: complete randomization within strata, floor or ceil of half treated.
    let mut treated = vec![false; n];
    let mut stratum_of = vec![0usize; n];
    let mut start = 0;
    for (s, size) in strata_sizes(&mut rng, n).into_iter().enumerate() {
        let t = if size % 2 == 0 || rng.bernoulli(0.5) {
            size / 2
        } else {
            size / 2 + 1
        };
        let mut idx: Vec<usize> = (start..start + size).collect();
        for i in 0..t {
            let j = rng.int(i, size - 1);
            idx.swap(i, j);
            treated[idx[i]] = true;
        }
        stratum_of[start..start + size].fill(s);
        start += size;
    }
    let cutoff = r.plus(POST as i32 - 1).expect("quarter").last_day();
    let aktiv = NaiveDate::from_ymd_opt(2025, 1, 15).expect("date");
    let late = cutoff.succ_opt().expect("date") + chrono::Days::new(30);
    let mut units = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n * (PRE + POST) as usize);
    let mut events = Vec::new();
    let mut compliers_treated = 0;
    for i in 0..n {
        let z = treated[i];
        let (complier, effect, shift) = match design.kind {
            Kind::Iv {
                pi_c,
                tau,
                selection,
            } => {
                let c = rng.bernoulli(pi_c);
                let d = z && c;
                (
                    c,
                    if d { tau } else { 0.0 },
                    if c { selection } else { 0.0 },
                )
            }
            Kind::Ri { delta } => (false, if z { delta } else { 0.0 }, 0.0),
        };
        // Firm size (mulige per quarter) and firm effect (percent).
        let m_i = (60f64.ln() + rng.normal()).exp();
        let mu_i = 6.0 * (0.5 * rng.normal() - 0.125).exp();
        for rel in -(PRE as i32)..POST as i32 {
            let m = m_i * (0.1 * rng.normal()).exp();
            let season = 0.5 * (std::f64::consts::FRAC_PI_2 * rel as f64).cos();
            let sd = (1.5 * (60.0 / m).sqrt()).min(6.0);
            let post = rel >= 0;
            let y0 =
                (mu_i + season + sd * rng.normal() + if post { shift } else { 0.0 }).max(FLOOR);
            let y = y0 + if post { effect } else { 0.0 };
            rows.push((ids[i], r.plus(rel).expect("quarter"), m * y / 100.0, m));
        }
        if let Kind::Iv { .. } = design.kind
            && z
        {
            let event = |status, dato| TakeupEvent {
                orgnr: ids[i],
                status,
                dato,
                arbeidsform_levert: None,
                timer: None,
                merknad: None,
                row: 0,
            };
            events.push(event(
                TakeupStatus::Kontaktet,
                aktiv - chrono::Days::new(10),
            ));
            if complier {
                compliers_treated += 1;
                events.push(event(TakeupStatus::Aktiv, aktiv));
                events.push(event(
                    TakeupStatus::Fullfort,
                    cutoff - chrono::Days::new(20),
                ));
            } else if rng.bernoulli(0.2) {
                // A late starter: AKTIV after the cut-off, so not "received" (and no effect here).
                events.push(event(TakeupStatus::Aktiv, late));
            } else {
                events.push(event(TakeupStatus::TakketNei, aktiv));
            }
        }
        units.push(AssignedUnit {
            orgnr: ids[i],
            arm: if z { ARM } else { CONTROL }.into(),
            stratum: format!("s{:03}", stratum_of[i]),
            klynge: None,
        });
    }
    let data = StudyData::from_values(windows, units, rows).expect("study data");
    Sim {
        data,
        events,
        cutoff,
        compliers_treated,
    }
}

// ---------------------------------------------------------------------------------------------
// What one replication reports.

#[derive(Debug, Clone, Default)]
struct IvOut {
    /// Per weighting: None when cace_iv was skipped (no complier among the treated).
    per_weight: Vec<Option<IvRep>>,
}

#[derive(Debug, Clone)]
struct IvRep {
    estimate: f64,
    wald_cover: bool,
    wald_width: f64,
    ar_cover: bool,
    ar_shape: ArShape,
    ar_width: Option<f64>,
    f: f64,
    /// Estimated correlation of the structural error with the first-stage error at the true τ:
    /// corr(π̂_y − τπ̂_d, π̂_d) from the joint robust covariance.
    rho: f64,
}

#[derive(Debug, Clone)]
struct RiRep {
    /// (weighting, statistic) -> (covered, width if bounded, connected)
    ri: BTreeMap<(String, String), (bool, Option<f64>, bool)>,
    /// (weighting, estimator) -> (covered, width, estimate, std_error) for the Wald intervals of
    /// itt_dim / itt_ancova
    wald: BTreeMap<(String, String), (bool, f64, f64, f64)>,
}

const WEIGHTS: [Weighting; 2] = [Weighting::Firm, Weighting::Dagsverk];

fn run_iv(sim: &Sim, tau: f64) -> IvOut {
    let mut opts = Options::all(CONTROL);
    opts.estimators = vec![Estimator::CaceIv];
    opts.weights = WEIGHTS.to_vec();
    opts.takeup = Some(Takeup::from_events(&sim.events, sim.cutoff));
    let report: Report = estimate::estimate(&sim.data, &opts).expect("report");
    let per_weight = WEIGHTS
        .iter()
        .map(|w| {
            let e = report
                .estimates
                .iter()
                .find(|e| e.estimator == "cace_iv" && e.weights == w.name())?;
            let d = report.iv.iter().find(|d| d.weights == w.name())?;
            let ar = &d.anderson_rubin;
            Some(IvRep {
                estimate: e.estimate,
                wald_cover: e.ci_low <= tau && tau <= e.ci_high,
                wald_width: e.ci_high - e.ci_low,
                ar_cover: ar.contains(tau),
                ar_shape: ar.shape,
                ar_width: match (ar.shape, ar.low, ar.high) {
                    (ArShape::Bounded, Some(l), Some(h)) => Some(h - l),
                    _ => None,
                },
                f: d.first_stage_f,
                rho: {
                    let v = d.covariance;
                    (v.v_yd - tau * v.v_dd)
                        / ((v.v_yy - 2.0 * tau * v.v_yd + tau * tau * v.v_dd) * v.v_dd).sqrt()
                },
            })
        })
        .collect();
    IvOut { per_weight }
}

fn run_ri(sim: &Sim, delta: f64, draws: u64, seed: String) -> RiRep {
    let mut opts = Options::all(CONTROL);
    opts.estimators = vec![Estimator::IttDim, Estimator::IttAncova, Estimator::Ri];
    opts.weights = WEIGHTS.to_vec();
    opts.ri = Some(RiOptions {
        draws,
        seed,
        conf_level: 0.95,
    });
    let report = estimate::estimate(&sim.data, &opts).expect("report");
    let mut ri = BTreeMap::new();
    for row in &report.ri {
        let r = &row.result;
        if r.statistic == RiStatistic::AncovaT {
            continue;
        }
        let Some(i) = &r.interval else { continue };
        let covered = i
            .pieces
            .iter()
            .any(|(lo, hi)| lo.is_none_or(|l| l <= delta) && hi.is_none_or(|h| delta <= h));
        let width = match (i.low, i.high) {
            (Some(l), Some(h)) => Some(h - l),
            _ => None,
        };
        ri.insert(
            (row.weights.clone(), r.statistic.name().to_owned()),
            (covered, width, i.connected),
        );
    }
    let mut wald = BTreeMap::new();
    for e in &report.estimates {
        wald.insert(
            (e.weights.clone(), e.estimator.clone()),
            (
                e.ci_low <= delta && delta <= e.ci_high,
                e.ci_high - e.ci_low,
                e.estimate,
                e.std_error,
            ),
        );
    }
    RiRep { ri, wald }
}

// ---------------------------------------------------------------------------------------------
// Summaries.

fn cov(hits: usize, n: usize) -> String {
    if n == 0 {
        return "–".into();
    }
    let c = hits as f64 / n as f64;
    let se = (c * (1.0 - c) / n as f64).sqrt();
    format!("{:.3} ({:.4})", c, se)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        0.5 * (v[k / 2 - 1] + v[k / 2])
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn share(k: usize, n: usize) -> String {
    if n == 0 {
        "–".into()
    } else {
        format!("{:.3}", k as f64 / n as f64)
    }
}

struct Args {
    reps_iv: u64,
    reps_ri: u64,
    draws: u64,
    seed: u64,
    only: Option<String>,
    designs: Option<Vec<String>>,
}

fn args() -> Args {
    let mut a = Args {
        reps_iv: 5000,
        reps_ri: 2000,
        draws: 1000,
        seed: 20_250_601,
        only: None,
        designs: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--reps-iv" => a.reps_iv = v.parse().expect("--reps-iv N"),
            "--reps-ri" => a.reps_ri = v.parse().expect("--reps-ri N"),
            "--draws" => a.draws = v.parse().expect("--draws N"),
            "--seed" => a.seed = v.parse().expect("--seed u64"),
            "--only" => a.only = Some(v),
            "--designs" => a.designs = Some(v.split(',').map(str::to_owned).collect()),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

fn main() {
    let a = args();
    println!(
        "# coverage_cace_ri: seed {}, reps_iv {}, reps_ri {}, ri draws {}, threads {}\n",
        a.seed,
        a.reps_iv,
        a.reps_ri,
        a.draws,
        rayon::current_num_threads()
    );
    let all = designs();
    let max_n = all.iter().map(|d| d.n_firms).max().unwrap_or(0);
    let ids = orgnrs(max_n);
    let mut iv_lines = Vec::new();
    let mut ri_lines = Vec::new();
    for (k, design) in all.iter().enumerate() {
        if let Some(list) = &a.designs
            && !list.iter().any(|d| d == design.name)
        {
            continue;
        }
        // One key per design, one ChaCha20 stream per replication.
        let seed = a.seed.wrapping_add(1_000_003 * k as u64);
        match design.kind {
            Kind::Iv {
                pi_c,
                tau,
                selection,
            } => {
                if a.only.as_deref() == Some("ri") {
                    continue;
                }
                let t0 = Instant::now();
                let out: Vec<(IvOut, usize)> = (0..a.reps_iv)
                    .into_par_iter()
                    .map(|rep| {
                        let sim = simulate(design, seed, rep, &ids);
                        (run_iv(&sim, tau), sim.compliers_treated)
                    })
                    .collect();
                let secs = t0.elapsed().as_secs_f64();
                let compliers: Vec<f64> = out.iter().map(|o| o.1 as f64).collect();
                for (wi, w) in WEIGHTS.iter().enumerate() {
                    let reps: Vec<&IvRep> = out
                        .iter()
                        .filter_map(|o| o.0.per_weight[wi].as_ref())
                        .collect();
                    let n = reps.len();
                    let undefined = out.len() - n;
                    let wald = reps.iter().filter(|r| r.wald_cover).count();
                    let ar = reps.iter().filter(|r| r.ar_cover).count();
                    let shape = |s: ArShape| reps.iter().filter(|r| r.ar_shape == s).count();
                    let ar_w: Vec<f64> = reps.iter().filter_map(|r| r.ar_width).collect();
                    let wald_w: Vec<f64> = reps.iter().map(|r| r.wald_width).collect();
                    iv_lines.push(format!(
                        "| {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {:.1} | {:.2} | {} | {} | {:.3} | {:.2} | {:.2} | {} | {} | {} | {:.2} | {:.1} s |",
                        design.name,
                        design.n_firms,
                        pi_c,
                        selection,
                        mean(&compliers),
                        w.name(),
                        n,
                        undefined,
                        median(reps.iter().map(|r| r.f).collect()),
                        median(reps.iter().map(|r| r.rho).collect()),
                        cov(wald, n),
                        cov(ar, n),
                        median(reps.iter().map(|r| r.estimate).collect()) - tau,
                        median(wald_w.clone()),
                        mean(&wald_w),
                        share(shape(ArShape::Bounded), n),
                        share(shape(ArShape::TwoRays), n),
                        share(shape(ArShape::WholeLine), n),
                        median(ar_w),
                        secs,
                    ));
                }
                eprintln!("{}: {:.1} s", design.name, secs);
            }
            Kind::Ri { delta } => {
                if a.only.as_deref() == Some("iv") {
                    continue;
                }
                let t0 = Instant::now();
                let out: Vec<RiRep> = (0..a.reps_ri)
                    .into_par_iter()
                    .map(|rep| {
                        let sim = simulate(design, seed, rep, &ids);
                        run_ri(&sim, delta, a.draws, format!("cov-{}-{rep}", a.seed))
                    })
                    .collect();
                let secs = t0.elapsed().as_secs_f64();
                for w in WEIGHTS {
                    for (stat, est) in [("dim", "itt_dim"), ("ancova", "itt_ancova")] {
                        let key = (w.name().to_owned(), stat.to_owned());
                        let rows: Vec<(bool, Option<f64>, bool)> =
                            out.iter().filter_map(|o| o.ri.get(&key).copied()).collect();
                        let n = rows.len();
                        let hits = rows.iter().filter(|r| r.0).count();
                        let widths: Vec<f64> = rows.iter().filter_map(|r| r.1).collect();
                        let disconnected = rows.iter().filter(|r| !r.2).count();
                        let wkey = (w.name().to_owned(), est.to_owned());
                        let wald: Vec<(bool, f64, f64, f64)> = out
                            .iter()
                            .filter_map(|o| o.wald.get(&wkey).copied())
                            .collect();
                        let wald_hits = wald.iter().filter(|r| r.0).count();
                        let wald_w: Vec<f64> = wald.iter().map(|r| r.1).collect();
                        // Empirical SD of the estimate over the root mean squared SE.
                        let est: Vec<f64> = wald.iter().map(|r| r.2).collect();
                        let m = mean(&est);
                        let sd = (est.iter().map(|e| (e - m).powi(2)).sum::<f64>()
                            / (est.len() as f64 - 1.0))
                            .sqrt();
                        let rms_se =
                            mean(&wald.iter().map(|r| r.3 * r.3).collect::<Vec<_>>()).sqrt();
                        ri_lines.push(format!(
                            "| {} | {} | {} | {} | {} | {} | {} | {:.3} | {} | {} | {} | {:.3} | {:.3} | {:.2} | {:.1} s |",
                            design.name,
                            design.n_firms,
                            delta,
                            w.name(),
                            stat,
                            n,
                            cov(hits, n),
                            mean(&widths),
                            n - widths.len(),
                            disconnected,
                            cov(wald_hits, wald.len()),
                            mean(&wald_w),
                            m - delta,
                            sd / rms_se,
                            secs,
                        ));
                    }
                }
                eprintln!("{}: {:.1} s", design.name, secs);
            }
        }
    }
    if !iv_lines.is_empty() {
        println!("## cace_iv: Wald interval and Anderson-Rubin set, true effect τ = -1.0 pp\n");
        println!(
            "| design | N | π_c | selection (pp) | mean treated compliers | weights | reps defined | undefined | median F | median ρ̂ | Wald coverage (MC SE) | AR coverage (MC SE) | median bias of β̂ | median Wald width | mean Wald width | AR bounded | AR two_rays | AR whole_line | median AR width (bounded) | runtime |"
        );
        println!(
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for l in &iv_lines {
            println!("{l}");
        }
        println!();
    }
    if !ri_lines.is_empty() {
        println!(
            "## ri: test-inversion interval under a constant additive effect δ (and the Wald interval of the same estimator)\n"
        );
        println!(
            "| design | N | δ (pp) | weights | statistic | reps | RI coverage (MC SE) | mean RI width | RI unbounded | RI disconnected | Wald coverage (MC SE) | mean Wald width | mean bias of estimate | SD(estimate) / RMS(SE) | runtime (both weightings) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for l in &ri_lines {
            println!("{l}");
        }
    }
}
