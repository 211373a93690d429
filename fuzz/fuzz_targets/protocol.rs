#![no_main]
//! The protocol parsers on any text (UTF-8, lossy): TOML and JSON; a protocol that parses must come
//! back equal, with the same canonical JSON, through `from_json(canonical_json())`.

use ia_rct::protocol::Protocol;
use libfuzzer_sys::fuzz_target;

fn round_trip(protocol: &Protocol) {
    let canonical = protocol.canonical_json();
    let again = match Protocol::from_json(&canonical) {
        Ok(p) => p,
        Err(e) => panic!("canonical JSON of a valid protocol does not parse: {e}\n{canonical}"),
    };
    assert_eq!(
        again.canonical_json(),
        canonical,
        "canonical JSON is not stable"
    );
    let _ = protocol.content_hash();
    let _ = Protocol::from_stored_json(&canonical);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(protocol) = Protocol::from_toml(&text) {
        round_trip(&protocol);
    }
    if let Ok(protocol) = Protocol::from_json(&text) {
        round_trip(&protocol);
    }
    let _ = Protocol::from_stored_json(&text);
});
