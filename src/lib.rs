//! ia-rct: runs NAV's randomized trial of arbeidsformer (forms of help to employers) against
//! sickness absence, from protocol and randomization to effect estimates.
//!
//! The library holds everything; the `ia-rct` binary is a thin command line over it.

pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod storage;
