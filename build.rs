//! Sets `cfg(ia_rct_postgres_tests)` when `IA_RCT_TEST_POSTGRES_URL` is set at build time, so the
//! PostgreSQL variants of the integration tests run then and are reported as ignored otherwise
//! (instead of passing without having run anything).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ia_rct_postgres_tests)");
    println!("cargo::rerun-if-env-changed=IA_RCT_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("IA_RCT_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=ia_rct_postgres_tests");
    }
}
