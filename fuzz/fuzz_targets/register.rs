#![no_main]
//! The register parser on any bytes: the detected format and each explicit one.

use ia_rct::domain::Sektor;
use ia_rct::register::{RegisterFormat, RegisterOptions, detect_format, parse_register};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_register(data, detect_format(data), &RegisterOptions::default());
    let with_sektor = RegisterOptions {
        default_sektor: Some(Sektor::Privat),
    };
    for format in [
        RegisterFormat::Csv,
        RegisterFormat::Json,
        RegisterFormat::BrregJson,
    ] {
        let _ = parse_register(data, format, &RegisterOptions::default());
        let _ = parse_register(data, format, &with_sektor);
    }
});
