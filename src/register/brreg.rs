//! Brønnøysund Enhetsregisteret underenhet JSON, accepted unchanged (`docs/data-formats.md` §1): the bulk
//! file's array, an API page, or one object per line. Only the keys below are read; Brønnøysund's many
//! others (`organisasjonsform`, `postadresse`, `_links`, …) are ignored.

use serde_json::{Map, Value};

use super::json_reader;
use super::row::{Cell, Field, Raw, RawRow, Sink};

pub(super) fn read(text: &str, sink: &mut Sink) -> Vec<RawRow> {
    json_reader::elements(text, sink)
        .into_iter()
        .map(|(row, object)| underenhet(row, &object))
        .collect()
}

fn underenhet(row: usize, object: &Map<String, Value>) -> RawRow {
    let mut raw = RawRow::new(row);
    let mut put = |field: Field, cell: Option<Cell>| {
        if let Some(cell) = cell {
            raw.cells.insert(field, cell);
        }
    };
    put(Field::Orgnr, flat(object, "organisasjonsnummer"));
    put(Field::Navn, flat(object, "navn"));
    put(Field::Naringskode, nested(object, "naeringskode1", "kode"));
    put(
        Field::Kommunenummer,
        nested(object, "beliggenhetsadresse", "kommunenummer"),
    );
    put(Field::OverordnetEnhet, flat(object, "overordnetEnhet"));
    // Not Brønnøysund's: lets an upload give the sektor per unit (it otherwise comes from the options).
    put(Field::Sektor, flat(object, "sektor"));
    // Brønnøysund leaves `antallAnsatte` out when no employees are registered in Aa-registeret and says so
    // with `harRegistrertAntallAnsatte: false`; that is 0 employees.
    let ansatte = flat(object, "antallAnsatte").or_else(|| {
        (object.get("harRegistrertAntallAnsatte") == Some(&Value::Bool(false))).then(|| Cell {
            name: "antallAnsatte".to_owned(),
            raw: Raw::Number(0.into()),
        })
    });
    put(Field::AntallAnsatte, ansatte);
    raw
}

/// A top-level key's value.
fn flat(object: &Map<String, Value>, key: &str) -> Option<Cell> {
    object.get(key).and_then(Raw::json).map(|raw| Cell {
        name: key.to_owned(),
        raw,
    })
}

/// `outer.inner`, e.g. `naeringskode1.kode`; if `outer` is not an object, its own value (reported as
/// invalid by validation, under `outer`).
fn nested(object: &Map<String, Value>, outer: &str, inner: &str) -> Option<Cell> {
    match object.get(outer)? {
        Value::Object(map) => map.get(inner).and_then(Raw::json).map(|raw| Cell {
            name: format!("{outer}.{inner}"),
            raw,
        }),
        other => Raw::json(other).map(|raw| Cell {
            name: outer.to_owned(),
            raw,
        }),
    }
}
