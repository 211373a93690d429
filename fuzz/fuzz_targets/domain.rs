#![no_main]
//! The domain value parsers on any text (UTF-8, lossy); a value that parses must parse again,
//! equal, from its own display form.

use std::fmt::Display;
use std::str::FromStr;

use ia_rct::domain::{
    Bransje, FylkeCode, NaeringStandard, Naeringskode, Orgnr, Quarter, Role, Sektor,
};
use libfuzzer_sys::fuzz_target;

fn check<T>(text: &str) -> Option<T>
where
    T: FromStr + Display + PartialEq + std::fmt::Debug,
{
    let value = text.parse::<T>().ok()?;
    let shown = value.to_string();
    match shown.parse::<T>() {
        Ok(again) => assert_eq!(again, value, "{shown:?} parses to another value"),
        Err(_) => panic!("{shown:?}, the display of {value:?}, does not parse"),
    }
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(orgnr) = check::<Orgnr>(&text) {
        let _ = Orgnr::check_digit(orgnr.as_u32() / 10);
    }
    if let Some(quarter) = check::<Quarter>(&text) {
        let _ = quarter.plus(i32::MAX);
        let _ = quarter.plus(i32::MIN);
        let _ = quarter.through(quarter).count();
    }
    if let Some(kode) = check::<Naeringskode>(&text) {
        let _ = (
            kode.naering(),
            kode.group(),
            kode.class(),
            kode.is_uoppgitt(),
        );
        for len in 0..=7 {
            let _ = kode.prefix(len);
        }
        let _ = Bransje::of(&kode, NaeringStandard::Sn2007);
        let _ = Bransje::of(&kode, NaeringStandard::Sn2025);
    }
    let _ = check::<Sektor>(&text);
    if let Some(fylke) = check::<FylkeCode>(&text) {
        let _ = (fylke.as_str(), fylke.name());
    }
    let _ = text.parse::<NaeringStandard>();
    let _ = text.parse::<Bransje>();
    let _ = text.parse::<Role>();
});
