#![no_main]
//! The randomization file readers (`units.csv`, `assignment.csv`) on any text (UTF-8, lossy).

use ia_rct::randomization::files::{read_assignment, read_units};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = read_units(&text);
    let _ = read_assignment(&text);
});
