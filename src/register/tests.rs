use std::collections::BTreeMap;

use super::*;

// Valid organisation numbers (MOD11 checked; 987654321 is *not* one).
const A: &str = "910000004";
const B: &str = "910000012";
const C: &str = "910000020";
const PARENT_1: &str = "974760673"; // Brønnøysundregistrene
const PARENT_2: &str = "889640782"; // NAV

fn orgnr(s: &str) -> Orgnr {
    s.parse().expect("test orgnr is valid")
}

fn options() -> RegisterOptions {
    RegisterOptions::default()
}

fn parse(input: &str, format: RegisterFormat) -> Result<Vec<Firm>, RegisterErrors> {
    parse_register(input.as_bytes(), format, &options())
}

fn ok(input: &str, format: RegisterFormat) -> Vec<Firm> {
    match parse(input, format) {
        Ok(firms) => firms,
        Err(e) => panic!("expected a valid register, got {e}: {:#?}", e.errors),
    }
}

fn errors(input: &str, format: RegisterFormat) -> RegisterErrors {
    match parse(input, format) {
        Ok(firms) => panic!("expected errors, got {firms:#?}"),
        Err(e) => e,
    }
}

/// `(row, field)` of every stored error.
fn places(e: &RegisterErrors) -> Vec<(usize, &str)> {
    e.errors.iter().map(|e| (e.row, e.field.as_str())).collect()
}

/// The one error at `(row, field)`.
fn error_at<'e>(e: &'e RegisterErrors, row: usize, field: &str) -> &'e RowError {
    let found: Vec<&RowError> = e
        .errors
        .iter()
        .filter(|x| x.row == row && x.field == field)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one error at ({row}, {field}) in {:#?}",
        e.errors
    );
    found[0]
}

// ------------------------------------------------------------------------------------------------------
// The full register in each of our formats
// ------------------------------------------------------------------------------------------------------

fn expected_full() -> Vec<Firm> {
    vec![
        Firm {
            orgnr: orgnr(A),
            navn: Some("Bergen barnehage".to_owned()),
            fylke: "46".parse().expect("fylke"),
            kommunenummer: Some("4601".to_owned()),
            naeringskode: "88.911".parse().expect("kode"),
            sektor: Sektor::Kommunal,
            antall_ansatte: 12,
            overordnet_enhet: Some(orgnr(PARENT_1)),
            villig: Some(true),
            baseline: Some(BaselineDagsverk {
                tapte: 10.5,
                mulige: 200.0,
            }),
            covariates: BTreeMap::from([("x_alder".to_owned(), 3.5)]),
        },
        Firm {
            orgnr: orgnr(B),
            navn: Some("Oslo Bygg, avd. Nydalen".to_owned()),
            fylke: "03".parse().expect("fylke"),
            kommunenummer: Some("0301".to_owned()),
            naeringskode: "41.200".parse().expect("kode"),
            sektor: Sektor::Privat,
            antall_ansatte: 40,
            overordnet_enhet: None,
            villig: Some(false),
            baseline: None,
            covariates: BTreeMap::from([("x_alder".to_owned(), 10.0)]),
        },
        Firm {
            orgnr: orgnr(C),
            navn: None,
            fylke: "18".parse().expect("fylke"),
            kommunenummer: None,
            naeringskode: "86.101".parse().expect("kode"),
            sektor: Sektor::Statlig,
            antall_ansatte: 0,
            overordnet_enhet: Some(orgnr(PARENT_2)),
            villig: None,
            baseline: None,
            covariates: BTreeMap::new(),
        },
    ]
}

const FULL_CSV: &str = "\
orgnr,navn,fylke,kommunenummer,naringskode,sektor,antall_ansatte,overordnet_enhet,villig,tapte_dagsverk,mulige_dagsverk,x_alder
910000004,Bergen barnehage,46,4601,88.911,2,12,974760673,true,10.5,200,3.5
910 000 012,\"Oslo Bygg, avd. Nydalen\",,0301,41200,PRIVAT,40,,nei,,,10
910000020,,18,,86101,statlig,0,889 640 782,,,,
";

#[test]
fn comma_csv_reads_the_full_register() {
    assert_eq!(ok(FULL_CSV, RegisterFormat::Csv), expected_full());
}

#[test]
fn semicolon_csv_with_bom_crlf_and_decimal_commas_reads_the_same() {
    let csv = "\u{feff}orgnr;navn;fylke;kommunenummer;næringskode;sektor;antallAnsatte;overordnetEnhet;villig;tapte_dagsverk;mulige_dagsverk;x_alder\r\n\
910000004;Bergen barnehage;46;4601;88.911;KOMMUNAL;12;974760673;JA;10,5;200;3,5\r\n\
910000012;Oslo Bygg, avd. Nydalen; ;0301;41.200;3;40;;False;;;10\r\n\
910000020;;18;;86.101;1;0;889640782;;;;\r\n";
    assert_eq!(detect_format(csv.as_bytes()), RegisterFormat::Csv);
    assert_eq!(ok(csv, RegisterFormat::Csv), expected_full());
}

const FULL_JSON: &str = r#"[
  {"orgnr": "910000004", "navn": "Bergen barnehage", "fylke": "46", "kommunenummer": "4601",
   "naringskode": "88.911", "sektor": 2, "antall_ansatte": 12, "overordnet_enhet": "974760673",
   "villig": true, "tapte_dagsverk": 10.5, "mulige_dagsverk": "200", "x_alder": 3.5},
  {"orgnr": 910000012, "navn": "Oslo Bygg, avd. Nydalen", "kommunenummer": "0301",
   "næringskode": "41200", "sektor": "PRIVAT", "antallAnsatte": "40", "overordnetEnhet": null,
   "villig": false, "x_alder": "10"},
  {"orgnr": "910000020", "navn": "", "fylke": "18", "naringskode": 86101, "sektor": "1",
   "antall_ansatte": 0, "overordnet_enhet": "889640782", "x_alder": null}
]"#;

#[test]
fn json_array_reads_the_same() {
    assert_eq!(detect_format(FULL_JSON.as_bytes()), RegisterFormat::Json);
    assert_eq!(ok(FULL_JSON, RegisterFormat::Json), expected_full());
}

#[test]
fn ndjson_reads_the_same_and_counts_rows_by_line() {
    let ndjson = r#"{"orgnr": "910000004", "navn": "Bergen barnehage", "fylke": "46", "kommunenummer": "4601", "naringskode": "88.911", "sektor": "2", "antall_ansatte": 12, "overordnet_enhet": "974760673", "villig": "ja", "tapte_dagsverk": "10.5", "mulige_dagsverk": 200, "x_alder": 3.5}
{"orgnr": "910000012", "navn": "Oslo Bygg, avd. Nydalen", "kommunenummer": "0301", "naringskode": "41.200", "sektor": "3", "antall_ansatte": 40, "villig": false, "x_alder": 10}

{"orgnr": "910000020", "fylke": "18", "naringskode": "86.101", "sektor": "1", "antall_ansatte": "0", "overordnet_enhet": "889640782"}
"#;
    assert_eq!(detect_format(ndjson.as_bytes()), RegisterFormat::Json);
    assert_eq!(ok(ndjson, RegisterFormat::Json), expected_full());

    // The third firm is on line 4 (after a blank line), so an error there names row 4.
    let broken = ndjson.replace(r#""fylke": "18""#, r#""fylke": "54""#);
    let e = errors(&broken, RegisterFormat::Json);
    assert_eq!(places(&e), vec![(4, "fylke")]);
}

#[test]
fn a_single_pretty_printed_object_is_a_register_of_one() {
    let json = "{\n  \"orgnr\": \"910000020\",\n  \"fylke\": \"18\",\n  \"naringskode\": \"86.101\",\n  \"sektor\": 1,\n  \"antall_ansatte\": 0,\n  \"overordnet_enhet\": \"889640782\"\n}\n";
    let firms = ok(json, RegisterFormat::Json);
    assert_eq!(firms, expected_full()[2..].to_vec());
}

// ------------------------------------------------------------------------------------------------------
// Brønnøysund underenheter
// ------------------------------------------------------------------------------------------------------

fn brreg_unit(orgnr: &str, kode: &str, ansatte: u32, kommune: &str, parent: &str) -> String {
    format!(
        r#"{{"organisasjonsnummer": "{orgnr}", "navn": "ENHET {orgnr}",
  "organisasjonsform": {{"kode": "BEDR", "beskrivelse": "Underenhet til næringsdrivende og offentlig forvaltning"}},
  "registreringsdatoEnhetsregisteret": "2001-03-01", "registrertIMvaregisteret": false,
  "naeringskode1": {{"kode": "{kode}", "beskrivelse": "Generell offentlig administrasjon"}},
  "harRegistrertAntallAnsatte": true, "antallAnsatte": {ansatte}, "overordnetEnhet": "{parent}",
  "oppstartsdato": "2001-01-01",
  "beliggenhetsadresse": {{"land": "Norge", "landkode": "NO", "postnummer": "5003", "poststed": "BERGEN",
    "adresse": ["Rådhusgaten 10"], "kommune": "BERGEN", "kommunenummer": "{kommune}"}},
  "_links": {{"self": {{"href": "https://data.brreg.no/enhetsregisteret/api/underenheter/{orgnr}"}},
    "overordnetEnhet": {{"href": "https://data.brreg.no/enhetsregisteret/api/enheter/{parent}"}}}}}}"#
    )
}

fn brreg_units() -> Vec<String> {
    vec![
        brreg_unit(A, "84.110", 445, "4601", PARENT_1),
        brreg_unit(B, "88.911", 7, "0301", PARENT_2),
    ]
}

const SIMPLE_CSV: &str = "\
orgnr,navn,kommunenummer,naringskode,sektor,antall_ansatte,overordnet_enhet
910000004,ENHET 910000004,4601,84.110,2,445,974760673
910000012,ENHET 910000012,0301,88.911,2,7,889640782
";

#[test]
fn brreg_bulk_array_api_page_and_ndjson_agree_with_csv_and_derive_fylke() {
    let kommunal = RegisterOptions {
        default_sektor: Some(Sektor::Kommunal),
    };
    let expected = ok(SIMPLE_CSV, RegisterFormat::Csv);
    assert_eq!(expected[0].fylke.as_str(), "46");
    assert_eq!(expected[1].fylke.as_str(), "03");

    let bulk = format!("[{}]", brreg_units().join(",\n"));
    let page = format!(
        r#"{{"_embedded": {{"underenheter": [{}]}}, "_links": {{"self": {{"href": "x"}}}},
            "page": {{"size": 20, "totalElements": 2, "totalPages": 1, "number": 0}}}}"#,
        brreg_units().join(",")
    );
    let ndjson = brreg_units()
        .iter()
        .map(|u| u.replace('\n', " "))
        .collect::<Vec<_>>()
        .join("\n");
    for input in [bulk, page, ndjson] {
        assert_eq!(detect_format(input.as_bytes()), RegisterFormat::BrregJson);
        let firms = parse_register(input.as_bytes(), RegisterFormat::BrregJson, &kommunal);
        assert_eq!(firms, Ok(expected.clone()), "{input}");
    }
}

#[test]
fn brreg_without_naeringskode_or_kommunenummer_are_row_errors() {
    let kommunal = RegisterOptions {
        default_sektor: Some(Sektor::Kommunal),
    };
    let input = format!(
        r#"[{}, {{"organisasjonsnummer": "{C}", "antallAnsatte": 3}},
            {{"organisasjonsnummer": "{A}", "naeringskode1": {{"kode": "8.4110"}}, "antallAnsatte": 3,
              "beliggenhetsadresse": {{"kommunenummer": "3005"}}}}]"#,
        brreg_unit(B, "88.911", 7, "0301", PARENT_2)
    );
    let e = parse_register(input.as_bytes(), RegisterFormat::BrregJson, &kommunal)
        .expect_err("missing fields");
    assert_eq!(
        places(&e),
        vec![
            (2, "beliggenhetsadresse.kommunenummer"),
            (2, "naeringskode1.kode"),
            (3, "beliggenhetsadresse.kommunenummer"),
            (3, "naeringskode1.kode"),
        ]
    );
    assert!(
        error_at(&e, 2, "naeringskode1.kode")
            .reason
            .contains("missing")
    );
    // 3005 (Drammen before 2024) starts with 30, Viken, gone since 2024.
    let old = error_at(&e, 3, "beliggenhetsadresse.kommunenummer");
    assert_eq!(old.value, "3005");
    assert!(old.reason.contains("2024"), "{}", old.reason);
}

#[test]
fn brreg_sektor_comes_from_the_object_else_the_default_else_is_an_error() {
    let units = brreg_units();
    let with_own = units
        .first()
        .map(|u| u.replacen('{', r#"{"sektor": "STATLIG", "#, 1))
        .expect("two units");
    let input = format!("[{with_own}, {}]", units.get(1).expect("two units"));

    let statlig_default = RegisterOptions {
        default_sektor: Some(Sektor::Privat),
    };
    let firms = parse_register(
        input.as_bytes(),
        RegisterFormat::BrregJson,
        &statlig_default,
    )
    .expect("valid");
    assert_eq!(
        firms.iter().map(|f| f.sektor).collect::<Vec<_>>(),
        vec![Sektor::Statlig, Sektor::Privat]
    );

    let e = parse_register(input.as_bytes(), RegisterFormat::BrregJson, &options())
        .expect_err("no default");
    assert_eq!(places(&e), vec![(2, "sektor")]);
    assert!(e.errors[0].reason.contains("default sektor"));
}

#[test]
fn brreg_without_registered_employees_has_zero() {
    let privat = RegisterOptions {
        default_sektor: Some(Sektor::Privat),
    };
    let none_registered = format!(
        r#"[{{"organisasjonsnummer": "{A}", "naeringskode1": {{"kode": "88.911"}},
             "harRegistrertAntallAnsatte": false, "beliggenhetsadresse": {{"kommunenummer": "5001"}}}}]"#
    );
    let firms = parse_register(
        none_registered.as_bytes(),
        RegisterFormat::BrregJson,
        &privat,
    )
    .expect("valid");
    assert_eq!(firms[0].antall_ansatte, 0);
    assert_eq!(firms[0].fylke.name(), "Trøndelag");

    let silent = none_registered.replace(r#""harRegistrertAntallAnsatte": false, "#, "");
    let e = parse_register(silent.as_bytes(), RegisterFormat::BrregJson, &privat)
        .expect_err("no count");
    assert_eq!(places(&e), vec![(1, "antallAnsatte")]);
}

#[test]
fn a_page_of_enheter_is_refused_with_a_hint() {
    let input = r#"{"_embedded": {"enheter": [{"organisasjonsnummer": "974760673"}]}}"#;
    let e = errors(input, RegisterFormat::BrregJson);
    assert_eq!(places(&e), vec![(0, "_embedded.enheter")]);
    assert!(e.errors[0].reason.contains("underenheter"));
}

// ------------------------------------------------------------------------------------------------------
// Format detection
// ------------------------------------------------------------------------------------------------------

#[test]
fn detect_format_looks_at_the_first_object() {
    let cases: [(&[u8], RegisterFormat); 9] = [
        (b"", RegisterFormat::Csv),
        (b"orgnr;fylke", RegisterFormat::Csv),
        (b"\xEF\xBB\xBF  \n[{\"orgnr\": 1}]", RegisterFormat::Json),
        (b"{\"orgnr\": 1}\n{\"orgnr\": 2}", RegisterFormat::Json),
        (b"[]", RegisterFormat::Json),
        (
            b"[{\"organisasjonsnummer\": \"974760673\"}",
            RegisterFormat::BrregJson,
        ), // truncated
        (
            b"{\"organisasjonsnummer\": \"974760673\"}\n{",
            RegisterFormat::BrregJson,
        ),
        (b"{\"_embedded\": {}}", RegisterFormat::BrregJson),
        (
            b"[1, {\"organisasjonsnummer\": \"974760673\"}]",
            RegisterFormat::Json,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            detect_format(input),
            expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

// ------------------------------------------------------------------------------------------------------
// Row errors
// ------------------------------------------------------------------------------------------------------

#[test]
fn every_kind_of_invalid_value_is_reported_with_its_row_and_field() {
    let csv = "\
orgnr,navn,fylke,kommunenummer,naringskode,sektor,antall_ansatte,overordnet_enhet,villig,tapte_dagsverk,mulige_dagsverk,x_alder
987654321,,46,,88.911,2,12,,,,,
,,,,,,,,,,,1
910000020,,54,301,88.91,9,-1,12345,kanskje,,,abc
910000039,,46,0301,88911,FYLKESKOMMUNAL,1.5,,,5,,
910000047,,46,,88911,2,1e12,,,-1,0,
910000055,,46,,88911,2,3,,,20,10,inf
910000063,,46,3005,88911,2,3,,,,5,
";
    let e = errors(csv, RegisterFormat::Csv);
    assert_eq!(
        places(&e),
        vec![
            (1, "orgnr"),
            (2, "orgnr"),
            (2, "fylke"),
            (2, "naringskode"),
            (2, "sektor"),
            (2, "antall_ansatte"),
            (3, "fylke"),
            (3, "kommunenummer"),
            (3, "naringskode"),
            (3, "sektor"),
            (3, "antall_ansatte"),
            (3, "overordnet_enhet"),
            (3, "villig"),
            (3, "x_alder"),
            (4, "fylke"),
            (4, "sektor"),
            (4, "antall_ansatte"),
            (4, "mulige_dagsverk"),
            (5, "antall_ansatte"),
            (5, "tapte_dagsverk"),
            (5, "mulige_dagsverk"),
            (6, "tapte_dagsverk"),
            (6, "x_alder"),
            (7, "kommunenummer"),
            (7, "tapte_dagsverk"),
        ]
    );
    assert_eq!(e.total, e.errors.len());

    let bad_check = error_at(&e, 1, "orgnr");
    assert_eq!(bad_check.value, "987654321");
    assert!(
        bad_check.reason.contains("check digit"),
        "{}",
        bad_check.reason
    );
    assert!(error_at(&e, 2, "orgnr").reason.contains("missing"));
    assert_eq!(error_at(&e, 3, "fylke").value, "54");
    assert!(error_at(&e, 3, "kommunenummer").reason.contains("4 digits"));
    assert!(error_at(&e, 3, "sektor").reason.contains("FYLKESKOMMUNAL"));
    assert!(
        error_at(&e, 3, "antall_ansatte")
            .reason
            .contains("negative")
    );
    assert_eq!(error_at(&e, 3, "villig").value, "kanskje");
    assert_eq!(error_at(&e, 3, "x_alder").value, "abc");
    let disagree = error_at(&e, 4, "fylke");
    assert!(disagree.reason.contains("disagrees"), "{}", disagree.reason);
    assert!(disagree.reason.contains("Oslo"), "{}", disagree.reason);
    assert!(
        error_at(&e, 4, "antall_ansatte")
            .reason
            .contains("fractional")
    );
    assert!(
        error_at(&e, 4, "mulige_dagsverk")
            .reason
            .contains("both or neither")
    );
    assert!(
        error_at(&e, 5, "antall_ansatte")
            .reason
            .contains("too many")
    );
    assert!(error_at(&e, 6, "tapte_dagsverk").reason.contains("exceed"));
    assert!(error_at(&e, 6, "x_alder").reason.contains("finite"));
    assert!(
        error_at(&e, 7, "tapte_dagsverk")
            .reason
            .contains("both or neither")
    );
}

#[test]
fn json_values_of_the_wrong_kind_are_row_errors() {
    let json = r#"[
      {"orgnr": true, "fylke": ["46"], "naringskode": {"kode": "88.911"}, "sektor": 2,
       "antall_ansatte": "tolv", "villig": 1, "x_alder": false}
    ]"#;
    let e = errors(json, RegisterFormat::Json);
    assert_eq!(
        places(&e),
        vec![
            (1, "orgnr"),
            (1, "fylke"),
            (1, "naringskode"),
            (1, "antall_ansatte"),
            (1, "villig"),
            (1, "x_alder"),
        ]
    );
    assert!(error_at(&e, 1, "fylke").reason.contains("JSON array"));
}

#[test]
fn whole_rows_that_are_not_firms_are_row_errors() {
    let e = errors(
        "orgnr,fylke,naringskode,sektor,antall_ansatte\n910000004,46,88911,2\n",
        RegisterFormat::Csv,
    );
    // The row stops before its fifth column, which the error names.
    assert_eq!(places(&e), vec![(1, "antall_ansatte")]);
    assert!(e.errors[0].reason.contains("4 fields"));

    let e = errors(r#"[1, "x", null]"#, RegisterFormat::Json);
    assert_eq!(places(&e), vec![(1, ""), (2, ""), (3, "")]);

    // NDJSON cut off after a key: the line and the key whose value is missing.
    let e = errors("{\"orgnr\": 1}\n{\"orgnr\": \n", RegisterFormat::Json);
    assert!(places(&e).contains(&(2, "orgnr")), "{:#?}", e.errors);
}

#[test]
fn csv_rows_count_lines_after_the_header_including_blank_ones() {
    let csv = "orgnr,fylke,naringskode,sektor,antall_ansatte\n\n910000004,46,88911,2,1\n,,,,\n910000004,46,88911,2,1\n";
    let e = errors(csv, RegisterFormat::Csv);
    assert_eq!(places(&e), vec![(4, "orgnr")]);
}

#[test]
fn a_duplicate_orgnr_is_an_error_on_the_later_row_naming_the_earlier() {
    let csv = format!(
        "orgnr,fylke,naringskode,sektor,antall_ansatte\n{A},46,88911,2,1\n{B},46,88911,2,1\n{}, 46,88911,2,1\n",
        "910 000 004"
    );
    let e = errors(&csv, RegisterFormat::Csv);
    assert_eq!(places(&e), vec![(3, "orgnr")]);
    assert!(
        e.errors[0].reason.contains("row 1"),
        "{}",
        e.errors[0].reason
    );

    let json = format!(r#"[{{"orgnr": "{A}"}}, {{"orgnr": "{A}"}}]"#);
    let e = errors(&json, RegisterFormat::Json);
    assert!(error_at(&e, 2, "orgnr").reason.contains("duplicate"));
}

#[test]
fn an_unknown_column_is_reported_once_at_the_header() {
    let csv = "orgnr,fylke,Naringskode,sektor,antall_ansatte,ansatte_2023,x_ok\n\
910000004,46,88911,2,1,5,1\n910000012,46,88911,2,1,6,2\n";
    let e = errors(csv, RegisterFormat::Csv);
    assert_eq!(
        places(&e),
        vec![(0, "Naringskode"), (0, "ansatte_2023"), (0, "naringskode"),]
    );
    assert!(
        error_at(&e, 0, "Naringskode")
            .reason
            .contains("did you mean `naringskode`")
    );
    assert!(
        error_at(&e, 0, "naringskode")
            .reason
            .contains("missing column")
    );
}

#[test]
fn duplicate_and_alias_clashing_columns_are_header_errors() {
    let csv = "orgnr,fylke,naringskode,næringskode,sektor,antall_ansatte,x_a,x_a\n910000004,46,88911,88911,2,1,1,1\n";
    let e = errors(csv, RegisterFormat::Csv);
    assert_eq!(places(&e), vec![(0, "næringskode"), (0, "x_a")]);

    let json = r#"[{"orgnr": "910000004", "fylke": "46", "naringskode": "88911", "næringskode": "88911", "sektor": 2, "antall_ansatte": 1}]"#;
    let e = errors(json, RegisterFormat::Json);
    assert_eq!(places(&e), vec![(1, "næringskode")]);
}

#[test]
fn an_unknown_json_key_is_reported_once_at_its_first_row() {
    let json = format!(
        r#"[{{"orgnr": "{A}", "fylke": "46", "naringskode": "88911", "sektor": 2, "antall_ansatte": 1}},
            {{"orgnr": "{B}", "fylke": "46", "naringskode": "88911", "sektor": 2, "antall_ansatte": 1, "Sektor": 1}},
            {{"orgnr": "{C}", "fylke": "46", "naringskode": "88911", "sektor": 2, "antall_ansatte": 1, "Sektor": 1}}]"#
    );
    let e = errors(&json, RegisterFormat::Json);
    assert_eq!(places(&e), vec![(2, "Sektor")]);
    assert!(
        e.errors[0].reason.contains("2 objects"),
        "{}",
        e.errors[0].reason
    );
}

#[test]
fn missing_required_columns_are_reported_once_not_per_row() {
    let csv = "navn,tapte_dagsverk,,\nA,1,,\nB,2,,\nC,3,,x\n";
    let e = errors(csv, RegisterFormat::Csv);
    assert_eq!(
        places(&e),
        vec![
            (0, ""),
            (0, "mulige_dagsverk"),
            (0, "orgnr"),
            (0, "naringskode"),
            (0, "sektor"),
            (0, "antall_ansatte"),
            (0, "fylke"),
        ]
    );
    assert!(e.errors[0].reason.contains("column 4 has no name"));
}

#[test]
fn more_than_a_hundred_errors_are_counted_but_not_all_listed() {
    let mut csv = String::from("orgnr,fylke,naringskode,sektor,antall_ansatte\n");
    for _ in 0..150 {
        csv.push_str("123,99,1,x,-1\n");
    }
    let e = errors(&csv, RegisterFormat::Csv);
    assert_eq!(e.total, 750);
    assert_eq!(e.errors.len(), MAX_STORED_ERRORS);
    assert_eq!(e.errors.last().map(|x| x.row), Some(20));
    assert!(
        e.to_string()
            .starts_with("750 problems in the register; first: row 1, orgnr")
    );
}

#[test]
fn empty_or_firmless_inputs_are_errors() {
    let empty_page =
        r#"{"_links": {"self": {"href": "x"}}, "page": {"size": 20, "totalElements": 0}}"#;
    for (input, format) in [
        ("", RegisterFormat::Csv),
        ("\u{feff}", RegisterFormat::Csv),
        (" \n\r\n ", RegisterFormat::Json),
        (
            "orgnr,fylke,naringskode,sektor,antall_ansatte\n",
            RegisterFormat::Csv,
        ),
        (
            "orgnr,fylke,naringskode,sektor,antall_ansatte\n\n,,\n , ,,,\n",
            RegisterFormat::Csv,
        ),
        ("[]", RegisterFormat::Json),
        ("", RegisterFormat::BrregJson),
        (empty_page, RegisterFormat::BrregJson),
    ] {
        let e = errors(input, format);
        assert_eq!(e.total, 1, "{input:?}: {:#?}", e.errors);
        assert_eq!(e.errors[0].row, 0);
    }
}

#[test]
fn non_utf8_input_is_one_clear_error() {
    let latin1 = b"orgnr;n\xe6ringskode\n";
    let e = parse_register(latin1, RegisterFormat::Csv, &options()).expect_err("latin-1");
    assert_eq!(e.total, 1);
    assert!(e.errors[0].reason.contains("UTF-8"));
}

#[test]
fn counts_booleans_and_numbers_accept_their_usual_spellings() {
    let csv = "orgnr,fylke,naringskode,sektor,antall_ansatte,villig,x_a\n\
910000004,46,88911,2,12.0,True,1e3\n910000012,46,88911,2, 7 ,NEI,-0.25\n";
    let firms = ok(csv, RegisterFormat::Csv);
    assert_eq!(firms[0].antall_ansatte, 12);
    assert_eq!(firms[0].villig, Some(true));
    assert_eq!(firms[0].covariates.get("x_a"), Some(&1000.0));
    assert_eq!(firms[1].antall_ansatte, 7);
    assert_eq!(firms[1].villig, Some(false));
    assert_eq!(firms[1].covariates.get("x_a"), Some(&-0.25));

    // A comma is a decimal separator only in semicolon files; "1,5" in a comma file is two fields.
    let e = errors(
        "orgnr;fylke;naringskode;sektor;antall_ansatte;x_a\n910000004;46;88911;2;1;1,500.5\n",
        RegisterFormat::Csv,
    );
    assert_eq!(places(&e), vec![(1, "x_a")]);
}

// ------------------------------------------------------------------------------------------------------
// Robustness
// ------------------------------------------------------------------------------------------------------

#[test]
fn malformed_inputs_never_panic() {
    let mut inputs: Vec<Vec<u8>> = vec![
        b"[".to_vec(),
        b"{".to_vec(),
        b"[{\"orgnr\": \"910000004\", \"fylke\": ".to_vec(),
        b"[{}]".to_vec(),
        b"[[]]".to_vec(),
        b"{}".to_vec(),
        b"{\"_embedded\": 1}".to_vec(),
        b"{\"_embedded\": {\"underenheter\": [1, null, {}]}}".to_vec(),
        b"\xEF\xBB\xBF".to_vec(),
        b"\xEF\xBB".to_vec(),
        b"\xff\xfe\x00o\x00r".to_vec(),
        vec![0u8; 64],
        (0u8..=255).collect(),
        b"\n\n\n".to_vec(),
        b",,,,\n,,,\n".to_vec(),
        b";".to_vec(),
        b"\"".to_vec(),
        b"orgnr\n\"unterminated".to_vec(),
        b"orgnr,fylke,naringskode,sektor,antall_ansatte\n910000004,46,88911,2,99999999999999999999999999\n"
            .to_vec(),
        b"[{\"orgnr\": 1e400}]".to_vec(),
        b"[{\"antall_ansatte\": 18446744073709551616, \"x_a\": -1e308}]".to_vec(),
        b"[{\"antall_ansatte\": -9223372036854775809}]".to_vec(),
        b"{\"orgnr\": \"\xc3\xa6\xc3\xa6\xc3\xa6\"}\n\n{\"kommunenummer\": \"\xc3\xa6\xc3\xa6\"}".to_vec(),
        b"[{\"kommunenummer\": \"\xc3\xa6\xc3\xa6\xc3\xa6\xc3\xa6\"}]".to_vec(),
        "orgnr,fylke\n\u{1F600}\u{1F600}\u{1F600},ø\n".as_bytes().to_vec(),
        "x".repeat(500).into_bytes(),
        format!("[{}]", "[".repeat(200)).into_bytes(),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
    ];
    // Every prefix of a valid register in each format: truncated uploads.
    for full in [FULL_CSV, FULL_JSON, SIMPLE_CSV] {
        for end in (0..full.len()).step_by(7) {
            inputs.push(full.as_bytes().get(..end).unwrap_or_default().to_vec());
        }
    }
    // A cheap deterministic byte soup (the last two bytes are UTF-8 `æ`, split at random).
    const ALPHABET: &[u8] = b"[]{}\",;:0123456789.-eE \n\rorgnrx\xC3\xA6";
    let mut state: u32 = 0x2545_f491;
    for len in [1usize, 5, 40, 300] {
        let soup = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                ALPHABET
                    .get(state as usize % ALPHABET.len())
                    .copied()
                    .unwrap_or(b' ')
            })
            .collect();
        inputs.push(soup);
    }
    let default = RegisterOptions {
        default_sektor: Some(Sektor::Ukjent),
    };
    for input in &inputs {
        let detected = detect_format(input);
        for format in [
            detected,
            RegisterFormat::Csv,
            RegisterFormat::Json,
            RegisterFormat::BrregJson,
        ] {
            for options in [options(), default] {
                if let Err(e) = parse_register(input, format, &options) {
                    assert!(e.total >= e.errors.len());
                    assert!(!e.errors.is_empty());
                }
            }
        }
    }
}

#[test]
fn errors_serialize_for_the_api() {
    let e = errors("[]", RegisterFormat::Json);
    let json = serde_json::to_value(&e).expect("serializes");
    assert_eq!(json["total"], 1);
    assert_eq!(json["errors"][0]["row"], 0);
    let firms = ok(SIMPLE_CSV, RegisterFormat::Csv);
    let firm = serde_json::to_value(&firms[0]).expect("serializes");
    assert_eq!(firm["orgnr"], A);
    assert_eq!(firm["fylke"], "46");
    assert_eq!(firm["naeringskode"], "84.110");
    assert_eq!(firm["sektor"], "KOMMUNAL");
}

/// Row numbers count every line after the header, whatever the line ends and blank lines.
#[test]
fn row_numbers_are_lines_after_the_header_with_crlf_and_blank_lines() {
    let ok = crate::domain::Orgnr::from_prefix(97_476_067).expect("orgnr");
    let body = format!(
        "orgnr,fylke,naringskode,sektor,antall_ansatte\r\n{ok},46,88.911,3,10\r\n\r\n123,46,88.911,3,10\r\n"
    );
    let errors = parse_register(
        body.as_bytes(),
        RegisterFormat::Csv,
        &RegisterOptions::default(),
    )
    .expect_err("bad orgnr");
    assert_eq!(errors.errors[0].row, 3, "{:?}", errors.errors);
    assert_eq!(errors.errors[0].field, "orgnr");
}
