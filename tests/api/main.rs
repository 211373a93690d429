//! Integration tests: a real server on `127.0.0.1:0` (or a real `ia-rct` process) over a fresh
//! database per test, on SQLite and, when `IA_RCT_TEST_POSTGRES_URL` is set, on PostgreSQL.

mod helpers;

mod access;
mod analyses;
mod audit;
mod bounds;
mod browser;
mod cace;
mod cli;
mod db_locks;
mod delivery;
mod deviations;
mod disclosure;
mod errors;
mod estimates;
mod fixtures;
mod fylke_lists;
mod fylke_page;
mod masking;
mod openapi;
mod output;
mod pages;
mod process;
mod randomization;
mod ri;
mod statistics;
mod tokens;
mod trials;
mod validation;
mod walkthrough;
