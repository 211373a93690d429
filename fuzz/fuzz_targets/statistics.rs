#![no_main]
//! The statistics readers on any bytes: every format as statistics and as metadata (the iterators
//! drained), and the baseline sums over a fixed window and over one taken from the first byte.

use ia_rct::domain::Quarter;
use ia_rct::statistics::{StatsFormat, baseline_sums, detect, read_metadata, read_stats};
use libfuzzer_sys::fuzz_target;

const FORMATS: [StatsFormat; 4] = [
    StatsFormat::DvhCsv,
    StatsFormat::VirksomhetJson,
    StatsFormat::MetadataCsv,
    StatsFormat::MetadataJson,
];

fuzz_target!(|data: &[u8]| {
    let _ = detect(data);
    for format in FORMATS {
        let mut rows = read_stats(data, format);
        for _ in rows.by_ref() {}
        let _ = rows.last_row();
        let mut rows = read_metadata(data, format);
        for _ in rows.by_ref() {}
        let _ = rows.last_row();
    }
    if let (Ok(from), Ok(to)) = (Quarter::new(2024, 1), Quarter::new(2024, 4)) {
        let _ = baseline_sums(data, from, to);
    }
    // A window from the first byte (possibly empty, `to` before `from`), over the whole input.
    if let Some(&b) = data.first() {
        let year = 1990 + i32::from(b % 64) * 2;
        let quarter = i32::from(b % 4) + 1;
        if let (Ok(from), Ok(to)) = (
            Quarter::new(year, quarter),
            Quarter::new(2100 - year + 1990, 4 - quarter + 1),
        ) {
            let _ = baseline_sums(data, from, to);
        }
    }
});
