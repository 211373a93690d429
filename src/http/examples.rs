//! Examples for the OpenAPI document (`/openapi.json`), one per request body and main response.
//!
//! The JSON responses in `examples.json` were taken from a real run of the service (the steps of
//! `scripts/walkthrough.sh` on a simulated register of 1,500 firms, then take-up, surveys and a
//! metadata upload as NAV Vestland and the directorate), with long lists cut to their first items
//! and the token secret replaced. The protocol examples are `protocols/nals-arbeidsformer.toml`
//! itself. `tests/api/openapi.rs` checks every example against its schema, sends the request
//! examples to a running service, and parses the upload examples with the service's own readers.

use std::sync::LazyLock;

use serde_json::Value;

use crate::protocol::Protocol;

/// The protocol the README's walk-through registers.
pub const PROTOCOL_TOML: &str = include_str!("../../protocols/nals-arbeidsformer.toml");

static EXAMPLES: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(include_str!("examples.json")).unwrap_or_default());

/// The example `name` of `examples.json` (`null` when there is none: the OpenAPI test fails then).
pub fn example(name: &str) -> Value {
    EXAMPLES.get(name).cloned().unwrap_or_default()
}

/// The walk-through's protocol as TOML text.
pub fn protocol_toml() -> Value {
    Value::from(PROTOCOL_TOML)
}

/// The walk-through's protocol as JSON, as the service reads and stores it.
pub fn protocol_json() -> Value {
    Protocol::from_toml(PROTOCOL_TOML)
        .ok()
        .and_then(|p| serde_json::to_value(p).ok())
        .unwrap_or_default()
}

/// A register as CSV (docs/data-formats.md §1), as `ia-rct simulate` writes it.
pub const REGISTER_CSV: &str = "\
orgnr,navn,fylke,naringskode,sektor,antall_ansatte,overordnet_enhet,villig,tapte_dagsverk,mulige_dagsverk
800000009,Virksomhet 0,46,41.200,PRIVAT,122,,true,2625.764,25945.704
800000882,Virksomhet 8,46,87.101,KOMMUNAL,15,900036965,true,264.389,3058.283
";

/// The same register as JSON rows.
pub fn register_json() -> Value {
    serde_json::json!([
        {"orgnr": "800000009", "navn": "Virksomhet 0", "fylke": "46", "naringskode": "41.200",
         "sektor": "PRIVAT", "antall_ansatte": 122, "villig": true},
        {"orgnr": "800000882", "navn": "Virksomhet 8", "kommunenummer": "4601",
         "naringskode": "87.101", "sektor": "KOMMUNAL", "antall_ansatte": 15,
         "overordnet_enhet": "900036965"}
    ])
}

/// NAV's data-warehouse statistics CSV (docs/data-formats.md §2).
pub const STATISTICS_CSV: &str = "\
orgnr,arstall,kvartal,taptedv,muligedv,antpers
800000009,2023,1,536.778235,6469.080536,118
800000009,2023,2,433.849982,6418.35701,118
";

/// NAV's `virksomhet.json` rows (docs/data-formats.md §2).
pub fn statistics_json() -> Value {
    serde_json::json!([
        {"årstall": 2023, "kvartal": 1, "orgnr": "800000009", "prosent": "8.3",
         "tapteDagsverk": "536.778235", "muligeDagsverk": "6469.080536",
         "tapteDagsverkGradert": 40.5,
         "tapteDagsverkPerVarighet": [{"varighet": "A", "tapteDagsverk": 120.25}],
         "antallPersoner": "118", "rectype": "2"}
    ])
}

/// NAV's `virksomhet_metadata.json` rows (docs/data-formats.md §2).
pub fn metadata_json() -> Value {
    serde_json::json!([
        {"orgnr": "800000009", "årstall": 2026, "kvartal": 2, "sektor": "3",
         "primærnæring": "41", "primærnæringskode": "41200", "rectype": "2"}
    ])
}

/// Take-up events as CSV (docs/data-formats.md §3).
pub const TAKEUP_CSV: &str = "\
orgnr,status,dato,arbeidsform_levert,timer,merknad
800000009,KONTAKTET,2026-09-01,,1.5,Første møte avtalt
800000009,AKTIV,2026-09-15,Prosessbistand med partsgruppe,6,
";

/// The same events as JSON rows.
pub fn takeup_json() -> Value {
    serde_json::json!([
        {"orgnr": "800000009", "status": "KONTAKTET", "dato": "2026-09-01", "timer": 1.5,
         "merknad": "Første møte avtalt"},
        {"orgnr": "800000009", "status": "AKTIV", "dato": "2026-09-15",
         "arbeidsform_levert": "Prosessbistand med partsgruppe", "timer": 6}
    ])
}

/// Survey results as CSV (docs/data-formats.md §4); the second value was masked at the source.
pub const SURVEYS_CSV: &str = "\
orgnr,bolge,maal,verdi,antall_svar
800000009,1,arbeidsmiljo_indeks,3.8,42
800003636,1,arbeidsmiljo_indeks,,2
";

/// The same results as JSON rows.
pub fn surveys_json() -> Value {
    serde_json::json!([
        {"orgnr": "800000009", "bolge": 1, "maal": "arbeidsmiljo_indeks", "verdi": 3.8,
         "antall_svar": 42},
        {"orgnr": "800003636", "bolge": 1, "maal": "arbeidsmiljo_indeks", "verdi": null,
         "antall_svar": 2}
    ])
}

/// A page of a fylke's assignments as CSV (`format=csv`).
pub const ASSIGNMENTS_CSV: &str = "\
orgnr,arm,stratum,klynge,bolge,sannsynlighet,trukket,arm_navn,kontakt,instruks
800000009,bred_prosess,fylke=46|bransje=*|size=*|baseline=*,,1,0.25,2026-12-03T10:35:38.203762Z,Prosessbistand med bred medvirkning,true,\"Kontakt virksomheten og tilby prosessbistand over inntil 12 måneder med partsgruppemøter og samlinger for hele personalet. Registrer kontakt, oppstart og avslutning i Fia.\"
";

/// The first lines of a draw's `units.csv`.
pub const UNITS_CSV: &str = "\
orgnr,klynge,fylke,bransje,sektor,antall_ansatte,tapte_dagsverk,mulige_dagsverk
800000009,,46,bygg,PRIVAT,122,2120.196873,23362.637466
800000998,900015186,31,annen_naering,KOMMUNAL,54,561.485627,13012.234794
";

/// The first lines of a draw's `assignment.csv`.
pub const ASSIGNMENT_CSV: &str = "\
# ia-rct assignment
# protocol_id=nals-arbeidsformer
# protocol_hash=a0f7c48d4609ab11e3d348ae466a979991d3cb097f4fd1c04639860181a908ad
# algorithm=ia-rct/randomization/v1
# wave=1
# seed=nals-arbeidsformer-demo-wave-1
orgnr,arm,stratum,klynge,bolge,sannsynlighet,trukket
800000009,bred_prosess,fylke=46|bransje=*|size=*|baseline=*,,1,0.25,2026-12-03T10:35:38.203762Z
";

/// The error envelope with `code` and `message`.
pub fn error(code: &str, message: &str) -> Value {
    super::routes::error_example(code, message)
}

/// 404 for a trial id that does not exist.
pub fn no_trial() -> Value {
    error(
        "not_found",
        "no trial `nals-arbeidsformer`; GET /v1/trials lists them",
    )
}
