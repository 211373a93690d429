//! ia-rct: runs NAV's randomized trial of arbeidsformer (forms of help to employers) against
//! sickness absence, from protocol and randomization to effect estimates.
//!
//! The library holds everything; the `ia-rct` binary is a thin command line over it.

/// Analysis runs: estimates computed once under a key, as jobs, and stored with their hash.
pub mod analysis;
pub mod auth;
/// Baseline balance by arm (standardized differences, Hotelling T²), CONSORT counts, small-cell masking.
pub mod balance;
pub mod cli;
pub mod config;
pub mod disclosure;
pub mod domain;
/// Effect estimates: difference in means, ANCOVA, Lin, TWFE difference in differences, event study.
pub mod estimate;
pub mod http;
/// Applying NAV statistics uploads (the API's and `ia-rct ingest`'s one code path).
pub mod ingest;
pub mod jobs;
pub mod json;
/// The pages people read (HTML), with sign-in by token and CSRF-checked forms.
pub mod pages;
/// Plots as SVG for the pages (the rate by arm, the event study, the CONSORT flow).
pub mod plot;
pub mod progress;
pub mod protocol;
pub mod randomization;
/// The firm register (enrollment): CSV, JSON and Brønnøysund underenhet uploads read into firms.
pub mod register;
/// Synthetic registers for tests, benches, rehearsals and the demo.
pub mod simulate;
/// NAV's firm-level sickness statistics and metadata (DVH CSV, virksomhet.json), streamed row by row.
pub mod statistics;
pub mod storage;
/// Take-up (Fia statuses, compliance and dose per firm) and work-environment survey uploads, with masking.
pub mod takeup;

/// Runs `f` on a rayon pool of `threads` threads (the bit-identity tests: one thread and many
/// must give the same bits).
#[cfg(test)]
pub(crate) fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f)
}
