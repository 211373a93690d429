//! Tests of the statistics readers: NAV's own examples, format equivalence, every validation rule,
//! streaming, rounding and robustness against malformed input.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::rc::Rc;

use super::*;
use crate::domain::{Orgnr, Quarter, Sektor};

/// The row in `docs/data-formats.md` §2, verbatim (its orgnr fails MOD11; see the first test).
const DATA_FORMATS_EXAMPLE: &str = r#"{"årstall":2024,"kvartal":2,"orgnr":"987654321","prosent":"26.0","tapteDagsverk":"20.23",
 "muligeDagsverk":"77.8716","tapteDagsverkGradert":90.034285,
 "tapteDagsverkPerVarighet":[{"varighet":"A","tapteDagsverk":12.1527}],
 "antallPersoner":"40","rectype":"2"}"#;

/// 98765432 with its MOD11 check digit (3·9 + 2·8 + 7·7 + 6·6 + 5·5 + 4·4 + 3·3 + 2·2 = 182; 182 mod 11
/// = 6; 11 − 6 = 5).
const VALID_EXAMPLE_ORGNR: &str = "987654325";

fn all<T>(rows: Rows<&[u8], T>) -> Vec<Result<T, RowError>> {
    rows.take(1_000_000).collect()
}

fn stats(input: &str, format: StatsFormat) -> Vec<Result<StatRow, RowError>> {
    all(read_stats(input.as_bytes(), format))
}

/// Every row, failing the test on any error.
fn ok_stats(input: &str, format: StatsFormat) -> Vec<StatRow> {
    stats(input, format)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("unexpected error: {e:?}")))
        .collect()
}

fn errors_of<T: std::fmt::Debug>(items: Vec<Result<T, RowError>>) -> Vec<RowError> {
    items.into_iter().filter_map(Result::err).collect()
}

fn orgnr(s: &str) -> Orgnr {
    s.parse().expect("test orgnr is valid")
}

fn quarter(year: i32, q: i32) -> Quarter {
    Quarter::new(year, q).expect("test quarter is valid")
}

/// One virksomhet.json object from a valid base row, with keys replaced (`Some`), removed (`None`) or
/// appended; values are raw JSON.
fn object(changes: &[(&str, Option<&str>)]) -> String {
    let mut members: Vec<(String, String)> = [
        ("årstall", "2024"),
        ("kvartal", "2"),
        ("orgnr", "\"974760673\""),
        ("tapteDagsverk", "\"20.23\""),
        ("muligeDagsverk", "\"77.8716\""),
        ("antallPersoner", "\"40\""),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (key, value) in changes {
        let position = members.iter().position(|(k, _)| k == key);
        match (position, value) {
            (Some(i), Some(v)) => {
                if let Some(member) = members.get_mut(i) {
                    member.1 = (*v).to_owned();
                }
            }
            (Some(i), None) => {
                members.remove(i);
            }
            (None, Some(v)) => members.push(((*key).to_owned(), (*v).to_owned())),
            (None, None) => {}
        }
    }
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn array(objects: &[String]) -> String {
    format!("[{}]", objects.join(",\n"))
}

fn assert_error(error: &RowError, row: usize, field: &str, reason_part: &str) {
    assert_eq!(error.row, row, "{error:?}");
    assert_eq!(error.field, field, "{error:?}");
    assert!(
        error.reason.contains(reason_part),
        "expected `{reason_part}` in {error:?}"
    );
}

// --- NAV's example rows ---

#[test]
fn data_formats_example_row_is_refused_only_for_its_orgnr_check_digit() {
    let items = stats(
        &format!("[{DATA_FORMATS_EXAMPLE}]"),
        StatsFormat::VirksomhetJson,
    );
    assert_eq!(items.len(), 1, "{items:?}");
    let errors = errors_of(items);
    assert_eq!(errors.len(), 1);
    let error = errors.first().expect("one error");
    assert_error(error, 1, "orgnr", "MOD11");
    assert_eq!(error.value, "987654321");
}

#[test]
fn data_formats_example_row_parses_to_the_exact_values() {
    let json = DATA_FORMATS_EXAMPLE.replace("987654321", VALID_EXAMPLE_ORGNR);
    let rows = ok_stats(&format!("[{json}]"), StatsFormat::VirksomhetJson);
    let expected = StatRow {
        orgnr: orgnr(VALID_EXAMPLE_ORGNR),
        quarter: quarter(2024, 2),
        tapte_dagsverk: 20.23,
        mulige_dagsverk: 77.8716,
        antall_personer: 40,
        tapte_dagsverk_gradert: Some(90.034285),
        prosent_published: Some(26.0),
        rectype: Some("2".to_owned()),
        varighet: BTreeMap::from([('A', 12.1527)]),
    };
    assert_eq!(rows, vec![expected]);
}

#[test]
fn nav_data_brief_example_with_two_varighet_classes_parses() {
    // docs/nav-data.md §1.3 (PDI TestDataGenerator): A and D, gradert and D larger than tapte, as NAV's
    // own test data has them, so no cross-check between them is made.
    let json = r#"[{"årstall":2024,"kvartal":2,"orgnr":"987654325","prosent":"26.0","tapteDagsverk":"20.23",
 "muligeDagsverk":"77.8716","tapteDagsverkGradert":90.034285,
 "tapteDagsverkPerVarighet":[{"varighet":"A","tapteDagsverk":12.1527},{"varighet":"D","tapteDagsverk":148.534285}],
 "antallPersoner":"40","rectype":"2"}]"#;
    let rows = ok_stats(json, StatsFormat::VirksomhetJson);
    let row = rows.first().expect("one row");
    assert_eq!(
        row.varighet,
        BTreeMap::from([('A', 12.1527), ('D', 148.534285)])
    );
}

#[test]
fn dvh_csv_and_virksomhet_json_give_equal_rows() {
    let csv = "orgnr,arstall,kvartal,prosent,taptedv,muligedv,taptedv_gs,varighet_A,varighet_B,varighet_C,varighet_D,varighet_E,varighet_F,antpers,rectype\n\
               987654325,2024,2,26.0,20.23,77.8716,90.034285,12.1527,,,148.534285,,,40,2\n\
               974760673,2024,3,0.0,0,10.5,,,,,,,,3,1\n";
    let json = r#"[
      {"årstall":2024,"kvartal":2,"orgnr":"987654325","prosent":"26.0","tapteDagsverk":"20.23","muligeDagsverk":"77.8716",
       "tapteDagsverkGradert":90.034285,"tapteDagsverkPerVarighet":[{"varighet":"A","tapteDagsverk":12.1527},{"varighet":"D","tapteDagsverk":148.534285}],
       "antallPersoner":"40","rectype":"2"},
      {"årstall":2024,"kvartal":3,"orgnr":"974760673","prosent":0.0,"tapteDagsverk":0,"muligeDagsverk":10.5,
       "tapteDagsverkGradert":null,"tapteDagsverkPerVarighet":[],"antallPersoner":3,"rectype":"1"}
    ]"#;
    let from_csv = ok_stats(csv, StatsFormat::DvhCsv);
    let from_json = ok_stats(json, StatsFormat::VirksomhetJson);
    assert_eq!(from_csv.len(), 2);
    assert_eq!(from_csv, from_json);
    assert_eq!(from_csv.get(1).map(StatRow::is_masked), Some(true));
}

#[test]
fn ndjson_and_array_forms_give_the_same_rows() {
    let objects = [
        object(&[]),
        object(&[("orgnr", Some("\"889640782\"")), ("kvartal", Some("3"))]),
    ];
    let array_rows = ok_stats(&array(&objects), StatsFormat::VirksomhetJson);
    let ndjson = format!(
        "{}\n{}\n",
        objects.first().expect("two"),
        objects.get(1).expect("two")
    );
    let ndjson_rows = ok_stats(&ndjson, StatsFormat::VirksomhetJson);
    assert_eq!(array_rows.len(), 2);
    assert_eq!(array_rows, ndjson_rows);
    // CRLF line ends and a trailing blank line are fine too.
    let crlf = ndjson.replace('\n', "\r\n") + "\r\n";
    assert_eq!(ok_stats(&crlf, StatsFormat::VirksomhetJson), array_rows);
}

#[test]
fn ndjson_rows_are_line_numbers_and_blank_lines_count() {
    let input = format!(
        "\n{}\n\n{}\n",
        object(&[]),
        object(&[("orgnr", Some("\"1\""))])
    );
    let items = stats(&input, StatsFormat::VirksomhetJson);
    assert_eq!(items.len(), 2);
    assert!(items.first().is_some_and(Result::is_ok));
    let errors = errors_of(items);
    assert_error(errors.first().expect("one error"), 4, "orgnr", "9 digits");
}

#[test]
fn a_pretty_printed_object_without_an_array_gets_a_hint() {
    let items = stats(DATA_FORMATS_EXAMPLE, StatsFormat::VirksomhetJson);
    let errors = errors_of(items);
    let first = errors.first().expect("errors");
    assert_eq!(first.row, 1);
    assert!(first.reason.contains("one whole object"), "{first:?}");
}

#[test]
fn quoted_and_unquoted_numbers_are_equal() {
    let unquoted = object(&[
        ("tapteDagsverk", Some("20.23")),
        ("muligeDagsverk", Some("77.8716")),
        ("antallPersoner", Some("40")),
        ("prosent", Some("26.0")),
        ("tapteDagsverkGradert", Some("1.5")),
        ("rectype", Some("2")),
    ]);
    let quoted = object(&[
        ("årstall", Some("\"2024\"")),
        ("kvartal", Some("\"2\"")),
        ("tapteDagsverk", Some("\"20.23\"")),
        ("muligeDagsverk", Some("\" 77.8716 \"")),
        ("antallPersoner", Some("\"40\"")),
        ("prosent", Some("\"26.0\"")),
        ("tapteDagsverkGradert", Some("\"1.5\"")),
        ("rectype", Some("\"2\"")),
    ]);
    let rows = ok_stats(&array(&[unquoted, quoted]), StatsFormat::VirksomhetJson);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.first(), rows.get(1));
}

#[test]
fn antall_personer_is_a_plain_whole_number() {
    for value in ["40", "\"40\"", "\" 40 \""] {
        let rows = ok_stats(
            &array(&[object(&[("antallPersoner", Some(value))])]),
            StatsFormat::VirksomhetJson,
        );
        assert_eq!(rows.first().map(|r| r.antall_personer), Some(40), "{value}");
    }
    for value in ["40.0", "\"40.0\"", "4e1", "\"4.0e1\"", "\"+40\""] {
        let errors = errors_of(stats(
            &array(&[object(&[("antallPersoner", Some(value))])]),
            StatsFormat::VirksomhetJson,
        ));
        assert_eq!(errors.len(), 1, "{value}: {errors:?}");
        assert_error(&errors[0], 1, "antallPersoner", "whole number");
    }
}

#[test]
fn integers_in_csv_must_be_plain_integers() {
    let header = "orgnr;arstall;kvartal;taptedv;muligedv;antpers";
    for (row, field) in [
        ("974760673;2024;1e0;20.23;77.8716;40", "kvartal"),
        ("974760673;2024;2.0;20.23;77.8716;40", "kvartal"),
        ("974760673;2.024e3;2;20.23;77.8716;40", "arstall"),
        ("974760673;2024;2;20.23;77.8716;4e1", "antpers"),
    ] {
        let errors = errors_of(stats(&format!("{header}\n{row}\n"), StatsFormat::DvhCsv));
        assert_eq!(errors.len(), 1, "{row}: {errors:?}");
        assert_error(&errors[0], 1, field, "whole number");
    }
}

#[test]
fn antpers_has_a_range_that_fits_the_integer_column() {
    let header = "orgnr;arstall;kvartal;taptedv;muligedv;antpers";
    let ok = ok_stats(
        &format!("{header}\n974760673;2024;2;20.23;77.8716;{MAX_PERSONS}\n"),
        StatsFormat::DvhCsv,
    );
    assert_eq!(ok[0].antall_personer, MAX_PERSONS);
    const { assert!(MAX_PERSONS < i32::MAX as u32) };
    for value in [
        "1000001",
        "2147483647",
        "2147483648",
        "4294967296",
        "99999999999999999999",
    ] {
        let csv = format!("{header}\n974760673;2024;2;20.23;77.8716;{value}\n");
        let errors = errors_of(stats(&csv, StatsFormat::DvhCsv));
        assert_eq!(errors.len(), 1, "{value}: {errors:?}");
        assert_error(&errors[0], 1, "antpers", "");
        assert!(errors[0].reason.contains("persons") || errors[0].reason.contains("too large"));
        let json = array(&[object(&[("antallPersoner", Some(value))])]);
        let errors = errors_of(stats(&json, StatsFormat::VirksomhetJson));
        assert_eq!(errors.len(), 1, "{value}: {errors:?}");
        assert_error(&errors[0], 1, "antallPersoner", "");
    }
}

#[test]
fn dagsverk_have_an_upper_bound() {
    let header = "orgnr;arstall;kvartal;taptedv;muligedv;antpers;taptedv_gs;varighet_A";
    for (row, field) in [
        ("974760673;2024;2;20.23;1e300;40;;", "muligedv"),
        ("974760673;2024;2;2e9;3e9;40;;", "taptedv"),
        ("974760673;2024;2;20.23;77.8716;40;1e10;", "taptedv_gs"),
        ("974760673;2024;2;20.23;77.8716;40;;1e300", "varighet_A"),
    ] {
        let errors = errors_of(stats(&format!("{header}\n{row}\n"), StatsFormat::DvhCsv));
        assert!(!errors.is_empty(), "{row}");
        assert_error(&errors[0], 1, field, "dagsverk");
    }
    let json = array(&[object(&[(
        "tapteDagsverkPerVarighet",
        Some(r#"[{"varighet":"B","tapteDagsverk":1e300}]"#),
    )])]);
    let errors = errors_of(stats(&json, StatsFormat::VirksomhetJson));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_error(
        &errors[0],
        1,
        "tapteDagsverkPerVarighet[0].tapteDagsverk",
        "dagsverk",
    );
}

#[test]
fn dagsverk_keep_full_precision() {
    for text in [
        "0.30000000000000004",
        "77.871600000000000001",
        "123456789.123456",
        "0.000001",
        "2.5e-3",
    ] {
        for value in [text.to_owned(), format!("\"{text}\"")] {
            let rows = ok_stats(
                &array(&[object(&[
                    ("tapteDagsverk", Some(&value)),
                    ("muligeDagsverk", Some("1e9")),
                ])]),
                StatsFormat::VirksomhetJson,
            );
            let expected: f64 = text.parse().expect("test decimal");
            assert_eq!(
                rows.first().map(|r| r.tapte_dagsverk.to_bits()),
                Some(expected.to_bits()),
                "{value}"
            );
        }
    }
}

#[test]
fn varighet_entries_without_dagsverk_are_left_out_and_x_is_accepted() {
    let rows = ok_stats(
        &array(&[object(&[(
            "tapteDagsverkPerVarighet",
            Some(
                r#"[{"varighet":"B"},{"varighet":"C","tapteDagsverk":null},{"varighet":"X","tapteDagsverk":"3.5"}]"#,
            ),
        )])]),
        StatsFormat::VirksomhetJson,
    );
    assert_eq!(
        rows.first().map(|r| r.varighet.clone()),
        Some(BTreeMap::from([('X', 3.5)]))
    );
}

#[test]
fn arstall_without_the_ring_is_accepted() {
    let row = object(&[("årstall", None), ("arstall", Some("2023"))]);
    let rows = ok_stats(&array(&[row]), StatsFormat::VirksomhetJson);
    assert_eq!(rows.first().map(|r| r.quarter), Some(quarter(2023, 2)));
}

// --- Validation: each problem with its row and field ---

#[test]
fn each_validation_error_names_its_row_and_field() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            object(&[("orgnr", Some("\"974760670\""))]),
            "orgnr",
            "check digit",
        ),
        (object(&[("kvartal", Some("5"))]), "kvartal", "1, 2, 3 or 4"),
        (object(&[("årstall", Some("1980"))]), "årstall", "outside"),
        (
            object(&[("årstall", Some("99999999999"))]),
            "årstall",
            "outside",
        ),
        (
            object(&[("tapteDagsverk", Some("-1"))]),
            "tapteDagsverk",
            "negative",
        ),
        (
            object(&[("muligeDagsverk", Some("0"))]),
            "muligeDagsverk",
            "greater than 0",
        ),
        (
            object(&[("tapteDagsverk", Some("80"))]),
            "tapteDagsverk",
            "exceed",
        ),
        (
            object(&[("tapteDagsverk", Some("\"NaN\""))]),
            "tapteDagsverk",
            "finite",
        ),
        (
            object(&[("muligeDagsverk", Some("\"inf\""))]),
            "muligeDagsverk",
            "finite",
        ),
        (
            object(&[("tapteDagsverk", Some("1e999"))]),
            "tapteDagsverk",
            "finite",
        ),
        (
            object(&[("tapteDagsverk", Some("\"12,5\""))]),
            "tapteDagsverk",
            "decimal comma",
        ),
        (
            object(&[("tapteDagsverk", Some("\"tolv\""))]),
            "tapteDagsverk",
            "not a number",
        ),
        (
            object(&[("tapteDagsverk", Some("[1]"))]),
            "tapteDagsverk",
            "expected a number",
        ),
        (
            object(&[("antallPersoner", Some("4.5"))]),
            "antallPersoner",
            "fractional",
        ),
        (
            object(&[("antallPersoner", Some("-1"))]),
            "antallPersoner",
            "negative",
        ),
        (
            object(&[("antallPersoner", Some("true"))]),
            "antallPersoner",
            "whole number",
        ),
        (
            object(&[("antallPersoner", Some("5000000000"))]),
            "antallPersoner",
            "persons",
        ),
        (
            object(&[("tapteDagsverkGradert", Some("-0.5"))]),
            "tapteDagsverkGradert",
            "negative",
        ),
        (
            object(&[("prosent", Some("120"))]),
            "prosent",
            "between 0 and 100",
        ),
        (
            object(&[("rectype", Some("\"4\""))]),
            "rectype",
            "rectype 1",
        ),
        (
            object(&[("muligeDagsverk", None)]),
            "muligeDagsverk",
            "missing",
        ),
        (object(&[("orgnr", Some("null"))]), "orgnr", "missing"),
        (object(&[("orgnr", Some("\"  \""))]), "orgnr", "missing"),
        (
            object(&[(
                "tapteDagsverkPerVarighet",
                Some(r#"[{"varighet":"G","tapteDagsverk":1}]"#),
            )]),
            "tapteDagsverkPerVarighet[0].varighet",
            "varighet class",
        ),
        (
            object(&[(
                "tapteDagsverkPerVarighet",
                Some(r#"[{"varighet":"a","tapteDagsverk":1}]"#),
            )]),
            "tapteDagsverkPerVarighet[0].varighet",
            "capital letter",
        ),
        (
            object(&[(
                "tapteDagsverkPerVarighet",
                Some(r#"[{"varighet":"A","tapteDagsverk":1},{"varighet":"A","tapteDagsverk":2}]"#),
            )]),
            "tapteDagsverkPerVarighet[1].varighet",
            "listed twice",
        ),
        (
            object(&[(
                "tapteDagsverkPerVarighet",
                Some(r#"[{"varighet":"A","tapteDagsverk":-1}]"#),
            )]),
            "tapteDagsverkPerVarighet[0].tapteDagsverk",
            "negative",
        ),
        (
            object(&[(
                "tapteDagsverkPerVarighet",
                Some(r#"[{"varighet":"A","dagsverk":1}]"#),
            )]),
            "tapteDagsverkPerVarighet[0].dagsverk",
            "unknown key",
        ),
        (
            object(&[("tapteDagsverkPerVarighet", Some(r#"{"A":1}"#))]),
            "tapteDagsverkPerVarighet",
            "expected a list",
        ),
        (
            object(&[("tapte_dagsverk", Some("1"))]),
            "tapte_dagsverk",
            "did you mean `tapteDagsverk`",
        ),
        (
            object(&[("Orgnr", Some("\"974760673\""))]),
            "Orgnr",
            "did you mean `orgnr`",
        ),
        (
            object(&[("næring", Some("\"88\""))]),
            "næring",
            "næring.json",
        ),
        (object(&[("sektor", Some("\"1\""))]), "sektor", "metadata"),
        (
            object(&[("arstall", Some("2024"))]),
            "arstall",
            "same field",
        ),
        ("[1, 2]".to_owned(), "", "expected an object"),
        (
            r#"{"orgnr" "974760673"}"#.to_owned(),
            "orgnr",
            "not valid JSON",
        ),
    ];
    let objects: Vec<String> = cases.iter().map(|(o, _, _)| o.clone()).collect();
    let items = stats(&array(&objects), StatsFormat::VirksomhetJson);
    let errors = errors_of(items);
    for (i, (_, field, reason)) in cases.iter().enumerate() {
        let row = i + 1;
        let found: Vec<&RowError> = errors.iter().filter(|e| e.row == row).collect();
        assert!(
            found
                .iter()
                .any(|e| e.field == *field && e.reason.contains(reason)),
            "row {row}: expected field `{field}` with `{reason}`, got {found:?}"
        );
    }
    // Every case was refused, and nothing else was.
    let rows: std::collections::BTreeSet<usize> = errors.iter().map(|e| e.row).collect();
    assert_eq!(rows, (1..=cases.len()).collect());
}

#[test]
fn a_row_with_several_problems_yields_each_of_them_and_no_row() {
    let row = object(&[
        ("orgnr", Some("\"123\"")),
        ("kvartal", Some("0")),
        ("muligeDagsverk", Some("-3")),
        ("fylke", Some("\"46\"")),
    ]);
    let items = stats(&array(&[row, object(&[])]), StatsFormat::VirksomhetJson);
    assert_eq!(items.len(), 5, "{items:?}");
    let fields: Vec<String> = items
        .iter()
        .take(4)
        .filter_map(|r| r.as_ref().err().map(|e| e.field.clone()))
        .collect();
    assert_eq!(fields.len(), 4);
    for field in ["fylke", "orgnr", "kvartal", "muligeDagsverk"] {
        assert!(fields.iter().any(|f| f == field), "{fields:?}");
    }
    assert!(items.get(4).is_some_and(Result::is_ok));
}

#[test]
fn a_duplicated_key_is_an_error_not_a_silent_overwrite() {
    let json = r#"[{"årstall":2024,"kvartal":2,"orgnr":"974760673","tapteDagsverk":"1","tapteDagsverk":"2","muligeDagsverk":"77","antallPersoner":"40"}]"#;
    let errors = errors_of(stats(json, StatsFormat::VirksomhetJson));
    assert_eq!(errors.len(), 1);
    assert_error(
        errors.first().expect("one"),
        1,
        "tapteDagsverk",
        "given twice",
    );
}

#[test]
fn error_values_are_cut_after_120_characters() {
    let long = format!("\"{}\"", "9".repeat(500));
    let errors = errors_of(stats(
        &array(&[object(&[("orgnr", Some(&long))])]),
        StatsFormat::VirksomhetJson,
    ));
    let error = errors.first().expect("error");
    assert_eq!(error.value.chars().count(), 121);
    assert!(error.value.ends_with('…'));
}

// --- JSON stream structure ---

#[test]
fn a_truncated_array_yields_the_rows_before_it_then_one_error_and_ends() {
    let mut json = array(&[object(&[]), object(&[]), object(&[])]);
    json.truncate(json.len() - 20);
    let items = stats(&json, StatsFormat::VirksomhetJson);
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(items.iter().take(2).all(Result::is_ok));
    let errors = errors_of(items);
    assert_error(errors.first().expect("error"), 3, "", "truncated");
}

#[test]
fn a_balanced_syntax_error_costs_only_its_element() {
    let json = format!("[{},{{\"orgnr\" \"x\"}},{}]", object(&[]), object(&[]));
    let items = stats(&json, StatsFormat::VirksomhetJson);
    assert_eq!(items.len(), 3);
    assert!(items.first().is_some_and(Result::is_ok));
    assert!(items.get(2).is_some_and(Result::is_ok));
    assert_error(
        items.get(1).and_then(|r| r.as_ref().err()).expect("error"),
        2,
        "orgnr",
        "expected `:`",
    );
}

#[test]
fn mismatched_brackets_end_the_stream() {
    let json = format!("[{},{{\"a\":[}}],{}]", object(&[]), object(&[]));
    let items = stats(&json, StatsFormat::VirksomhetJson);
    assert_eq!(items.len(), 2, "{items:?}");
    assert_error(
        items.get(1).and_then(|r| r.as_ref().err()).expect("error"),
        2,
        "",
        "do not match",
    );
}

#[test]
fn empty_elements_and_trailing_text_are_reported() {
    let json = format!("[{},,{}] trailing", object(&[]), object(&[]));
    let items = stats(&json, StatsFormat::VirksomhetJson);
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(
        items.get(2).is_some_and(Result::is_ok),
        "the last element still counts"
    );
    let errors = errors_of(items);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_error(errors.first().expect("two"), 2, "", "empty element");
    assert_error(errors.get(1).expect("two"), 0, "", "after the array");
    let json = format!("[{},]", object(&[]));
    let errors = errors_of(stats(&json, StatsFormat::VirksomhetJson));
    assert_error(errors.first().expect("one"), 2, "", "empty element");
}

#[test]
fn empty_array_is_no_rows_but_an_empty_upload_is_an_error() {
    assert!(stats(" [ ] \n", StatsFormat::VirksomhetJson).is_empty());
    for empty in ["", "  \n ", "\u{feff}"] {
        let errors = errors_of(stats(empty, StatsFormat::VirksomhetJson));
        assert_error(errors.first().expect("error"), 0, "", "empty");
        let errors = errors_of(stats(empty, StatsFormat::DvhCsv));
        assert_error(errors.first().expect("error"), 0, "", "empty");
    }
}

#[test]
fn a_bom_before_json_is_skipped() {
    let json = format!("\u{feff}{}", array(&[object(&[])]));
    assert_eq!(ok_stats(&json, StatsFormat::VirksomhetJson).len(), 1);
}

#[test]
fn an_element_over_the_size_limit_is_skipped_with_an_error() {
    let huge = object(&[(
        "padding",
        Some(&format!("\"{}\"", "x".repeat(MAX_ROW_BYTES))),
    )]);
    let json = array(&[object(&[]), huge, object(&[])]);
    let items = stats(&json, StatsFormat::VirksomhetJson);
    assert_eq!(items.len(), 3);
    assert_error(
        items.get(1).and_then(|r| r.as_ref().err()).expect("error"),
        2,
        "",
        "larger than 1 MiB",
    );
    assert!(items.get(2).is_some_and(Result::is_ok));
}

#[test]
fn string_escapes_are_decoded() {
    let json = r#"[{"\u00e5rstall":2024,"kvartal":2,"orgnr":"974\u0020760\t673","tapteDagsverk":"1","muligeDagsverk":"2","antallPersoner":"5","rectype":"\u0032"}]"#;
    let rows = ok_stats(json, StatsFormat::VirksomhetJson);
    assert_eq!(rows.first().map(|r| r.orgnr), Some(orgnr("974760673")));
    assert_eq!(
        rows.first().and_then(|r| r.rectype.clone()),
        Some("2".to_owned())
    );
}

// --- Streaming ---

/// Counts the bytes handed out.
struct Counting<R> {
    inner: R,
    consumed: Rc<Cell<usize>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n);
        Ok(n)
    }
}

#[test]
fn a_json_array_of_100_000_rows_streams_lazily() {
    let mut json = String::from("[\n");
    let mut n = 0;
    let mut prefix = 10_000_000;
    while n < 100_000 {
        prefix += 1;
        let Some(org) = Orgnr::from_prefix(prefix) else {
            continue;
        };
        if n > 0 {
            json.push_str(",\n");
        }
        json.push_str(&format!(
            r#"{{"årstall":2024,"kvartal":{},"orgnr":"{org}","prosent":"5.0","tapteDagsverk":"{}.5","muligeDagsverk":"1000.123456","tapteDagsverkGradert":1.25,"tapteDagsverkPerVarighet":[{{"varighet":"A","tapteDagsverk":1.5}}],"antallPersoner":"{}","rectype":"2"}}"#,
            n % 4 + 1,
            n % 50,
            n % 100
        ));
        n += 1;
    }
    json.push_str("\n]\n");
    let total = json.len();
    assert!(total > 20_000_000, "{total}");

    let consumed = Rc::new(Cell::new(0));
    let reader = Counting {
        inner: json.as_bytes(),
        consumed: Rc::clone(&consumed),
    };
    let mut rows = read_stats(reader, StatsFormat::VirksomhetJson);
    let first = rows.next().expect("a first row").expect("valid");
    assert_eq!(first.tapte_dagsverk, 0.5);
    assert!(
        consumed.get() <= 64 * 1024,
        "read {} of {total} bytes before the first row",
        consumed.get()
    );
    let mut count = 1;
    for row in rows {
        row.expect("every generated row is valid");
        count += 1;
    }
    assert_eq!(count, 100_000);
    assert_eq!(consumed.get(), total);
}

#[test]
fn csv_streams_lazily_too() {
    let mut csv = String::from("orgnr;arstall;kvartal;taptedv;muligedv;antpers\n");
    for _ in 0..20_000 {
        csv.push_str("974760673;2024;1;1.5;10;5\n");
    }
    let consumed = Rc::new(Cell::new(0));
    let reader = Counting {
        inner: csv.as_bytes(),
        consumed: Rc::clone(&consumed),
    };
    let mut rows = read_stats(reader, StatsFormat::DvhCsv);
    assert!(rows.next().is_some_and(|r| r.is_ok()));
    assert!(consumed.get() <= 64 * 1024, "{}", consumed.get());
    assert_eq!(rows.count(), 19_999);
}

// --- DVH CSV ---

#[test]
fn dvh_csv_with_semicolons_bom_upper_case_and_crlf_is_read() {
    let csv = "\u{feff}ORGNR;ARSTALL;KVARTAL;PROSENT;TAPTEDV;MULIGEDV;ANTPERS;RECTYPE;VARIGHET_A\r\n\
               \"974 760 673\";2024;2;26.0;20.23;77.8716;40;2;12.1527\r\n";
    let rows = ok_stats(csv, StatsFormat::DvhCsv);
    let row = rows.first().expect("one row");
    assert_eq!(row.orgnr, orgnr("974760673"));
    assert_eq!(row.varighet, BTreeMap::from([('A', 12.1527)]));
    assert_eq!(row.prosent_published, Some(26.0));
}

#[test]
fn csv_rows_are_counted_from_the_line_after_the_header() {
    let csv = "orgnr,arstall,kvartal,taptedv,muligedv,antpers\n\
               974760673,2024,1,1,10,5\n\
               \n\
               974760673,2024,9,1,10,5\n\
               ,,,,,\n\
               974760673,2024,1,1,10\n";
    for input in [csv.to_owned(), csv.replace('\n', "\r\n")] {
        let errors = errors_of(stats(&input, StatsFormat::DvhCsv));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_error(errors.first().expect("two"), 3, "kvartal", "1, 2, 3 or 4");
        assert_error(
            errors.get(1).expect("two"),
            5,
            "antpers",
            "has 5 fields but the header has 6",
        );
    }
    // Blank lines right after the header and several in a row (the csv crate skips them uncounted).
    let csv = "orgnr,arstall,kvartal,taptedv,muligedv,antpers\n\n\n974760673,2024,7,1,10,5\n\n\n\n974760673,2024,8,1,10,5\n";
    let rows: Vec<usize> = errors_of(stats(csv, StatsFormat::DvhCsv))
        .iter()
        .map(|e| e.row)
        .collect();
    assert_eq!(rows, [3, 7]);
}

#[test]
fn csv_decimal_comma_is_refused_with_a_hint() {
    let csv = "orgnr;arstall;kvartal;taptedv;muligedv;antpers\n974760673;2024;1;1,5;10;5\n";
    let errors = errors_of(stats(csv, StatsFormat::DvhCsv));
    assert_error(
        errors.first().expect("error"),
        1,
        "taptedv",
        "decimal comma",
    );
}

#[test]
fn csv_header_problems_are_reported_at_row_0_and_end_the_stream() {
    let csv =
        "orgnr,arstall,kvartal,tapteDagsverk,antpers,varighet_X,sftype\n974760673,2024,1,1,5,1,L\n";
    let items = stats(csv, StatsFormat::DvhCsv);
    let errors = errors_of(items);
    assert!(errors.iter().all(|e| e.row == 0), "{errors:?}");
    let find = |field: &str| errors.iter().find(|e| e.field == field);
    assert!(
        find("tapteDagsverk").is_some_and(|e| e.reason.contains("did you mean `taptedv`")),
        "{errors:?}"
    );
    assert!(find("varighet_X").is_some_and(|e| e.reason.contains("varighet_A … varighet_F")));
    assert!(find("sftype").is_some_and(|e| e.reason.contains("legacy DVH layout")));
    assert!(find("taptedv").is_some_and(|e| e.reason.contains("missing column")));
    assert!(find("muligedv").is_some_and(|e| e.reason.contains("missing column")));
    assert_eq!(errors.len(), 5);
}

#[test]
fn csv_repeated_columns_are_refused() {
    let csv = "orgnr,arstall,årstall,kvartal,taptedv,muligedv,antpers,ORGNR\n";
    let errors = errors_of(stats(csv, StatsFormat::DvhCsv));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.field == "årstall" && e.reason.contains("same field"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.field == "ORGNR" && e.reason.contains("twice"))
    );
}

#[test]
fn csv_trailing_separator_column_is_ignored_while_blank() {
    let csv = "orgnr;arstall;kvartal;taptedv;muligedv;antpers;\n974760673;2024;1;1;10;5;\n974760673;2024;2;1;10;5;x\n";
    let items = stats(csv, StatsFormat::DvhCsv);
    assert!(items.first().is_some_and(Result::is_ok));
    let errors = errors_of(items);
    assert_error(errors.first().expect("error"), 2, "", "without a name");
}

#[test]
fn csv_non_utf8_is_reported_on_its_field() {
    let mut bytes =
        b"orgnr,arstall,kvartal,taptedv,muligedv,antpers,rectype\n974760673,2024,1,1,10,5,"
            .to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
    let errors = errors_of(all(read_stats(bytes.as_slice(), StatsFormat::DvhCsv)));
    assert_error(errors.first().expect("error"), 1, "rectype", "UTF-8");
}

#[test]
fn csv_unclosed_quote_cannot_grow_without_bound() {
    let mut csv =
        String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n\"974760673,2024,1,1,10,5\n");
    for _ in 0..60_000 {
        csv.push_str("974760673,2024,1,1,10,5\n");
    }
    assert!(csv.len() > MAX_ROW_BYTES);
    let errors = errors_of(stats(&csv, StatsFormat::DvhCsv));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_error(errors.first().expect("one"), 1, "", "more than 1 MiB");
}

// --- Metadata ---

#[test]
fn metadata_json_and_csv_are_read() {
    let json = r#"[{"årstall":2024,"kvartal":2,"orgnr":"974760673","sektor":"1","primærnæring":"84","primærnæringskode":"84.110","rectype":"2"},
                   {"årstall":2024,"kvartal":2,"orgnr":"889640782","sektor":3,"primærnæring":null,"rectype":"2"}]"#;
    let csv = "ORGNR;ARSTALL;KVARTAL;SEKTOR;PRIMAR_NARING;PRIMAR_NARING_KODE;RECTYPE\n\
               974760673;2024;2;STATLIG;84;84110;2\n889640782;2024;2;3;;;2\n";
    let expected = vec![
        MetadataRow {
            orgnr: orgnr("974760673"),
            quarter: quarter(2024, 2),
            sektor: Sektor::Statlig,
            primaernaring: Some("84".to_owned()),
            primaernaringskode: Some("84110".to_owned()),
            rectype: Some("2".to_owned()),
        },
        MetadataRow {
            orgnr: orgnr("889640782"),
            quarter: quarter(2024, 2),
            sektor: Sektor::Privat,
            primaernaring: None,
            primaernaringskode: None,
            rectype: Some("2".to_owned()),
        },
    ];
    assert_eq!(detect(json.as_bytes()), StatsFormat::MetadataJson);
    assert_eq!(detect(csv.as_bytes()), StatsFormat::MetadataCsv);
    for (input, format) in [
        (json, StatsFormat::MetadataJson),
        (csv, StatsFormat::MetadataCsv),
    ] {
        let rows: Vec<MetadataRow> = read_metadata(input.as_bytes(), format)
            .map(|r| r.unwrap_or_else(|e| panic!("{e:?}")))
            .collect();
        assert_eq!(rows, expected, "{format:?}");
    }
}

#[test]
fn metadata_problems_are_reported() {
    let ndjson = concat!(
        r#"{"årstall":2024,"kvartal":2,"orgnr":"974760673","sektor":"9"}"#,
        "\n",
        r#"{"årstall":2024,"kvartal":2,"orgnr":"974760673","sektor":"1","primærnæring":"85","primærnæringskode":"84110"}"#,
        "\n",
        r#"{"årstall":2024,"kvartal":2,"orgnr":"974760673","sektor":"1","primærnæringskode":"8411"}"#,
        "\n",
        r#"{"årstall":2024,"kvartal":2,"orgnr":"974760673","tapteDagsverk":"1"}"#,
        "\n",
    );
    let errors = errors_of(read_metadata(ndjson.as_bytes(), StatsFormat::MetadataJson).collect());
    assert_error(errors.first().expect("errors"), 1, "sektor", "KOMMUNAL");
    assert_error(
        errors.get(1).expect("errors"),
        2,
        "primærnæring",
        "first two digits",
    );
    assert_error(
        errors.get(2).expect("errors"),
        3,
        "primærnæringskode",
        "8411",
    );
    assert!(
        errors.iter().any(|e| e.row == 4
            && e.field == "tapteDagsverk"
            && e.reason.contains("statistics rows"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.row == 4 && e.field == "sektor" && e.reason.contains("missing"))
    );
}

#[test]
fn reading_a_format_as_the_other_kind_is_refused() {
    let items = stats("[]", StatsFormat::MetadataJson);
    assert_eq!(items.len(), 1);
    assert_error(
        errors_of(items).first().expect("one"),
        0,
        "",
        "metadata format",
    );
    let items: Vec<_> = read_metadata(&b"[]"[..], StatsFormat::DvhCsv).collect();
    assert_eq!(items.len(), 1);
}

// --- Detection ---

#[test]
fn detect_tells_the_four_formats_apart() {
    assert_eq!(
        detect(b"orgnr,arstall,kvartal,taptedv,muligedv,antpers\n"),
        StatsFormat::DvhCsv
    );
    assert_eq!(
        detect("\u{feff}\"ORGNR\";\"ARSTALL\";\"KVARTAL\";\"SEKTOR\"\n".as_bytes()),
        StatsFormat::MetadataCsv
    );
    assert_eq!(
        detect(b"  \n[{\"orgnr\":\"974760673\",\"tapteDagsverk\":1"),
        StatsFormat::VirksomhetJson
    );
    assert_eq!(
        detect(b"{\"orgnr\":\"974760673\",\"sektor\":\"1\"}\n"),
        StatsFormat::MetadataJson
    );
    assert_eq!(detect(b""), StatsFormat::DvhCsv);
    assert_eq!(detect(b"["), StatsFormat::VirksomhetJson);
}

#[test]
fn sniff_gives_back_every_byte() {
    let json = array(&[object(&[])]);
    let (format, mut reader) = sniff(json.as_bytes()).expect("reads");
    assert_eq!(format, StatsFormat::VirksomhetJson);
    let mut back = String::new();
    reader.read_to_string(&mut back).expect("reads");
    assert_eq!(back, json);
}

// --- Percentages and rounding (docs/nav-data.md §1.5) ---

#[test]
fn nav_example_row_rounds_as_published() {
    // docs/data-formats.md §2 / docs/nav-data.md §1.3: tapte 20.23, mulige 77.8716, published prosent "26.0".
    assert_eq!(dvh_percent(20.23, 77.8716), Some(26.0));
    // pia's export rule pre-rounds the dagsverk (20.2 / 77.9 = 0.25931) and shows 25.9: the 0.1
    // difference docs/nav-data.md §1.5 warns about.
    assert_eq!(display_percent(20.23, 77.8716), Some(25.9));
    assert_eq!(round_dagsverk(20.23), Some(20.2));
    assert_eq!(round_dagsverk(77.8716), Some(77.9));
    let raw = percent(20.23, 77.8716);
    assert!((raw - 25.978_662_310_778_25).abs() < 1e-12, "{raw}");
}

#[test]
fn rounding_is_half_up_on_the_decimal_value() {
    // 0.145 / 10 = 0.0145 → 0.015 → 1.5; f64 arithmetic gives 1.4499… and would round down.
    assert_eq!(dvh_percent(0.145, 10.0), Some(1.5));
    assert_eq!(dvh_percent(1.005, 10.0), Some(10.1));
    // 1/16 = 0.0625 → 0.063 (half-even would give 0.062).
    assert_eq!(dvh_percent(1.0, 16.0), Some(6.3));
    assert_eq!(display_percent(1.0, 16.0), Some(6.3));
    assert_eq!(display_percent(1.0, 8.0), Some(12.5));
    assert_eq!(display_percent(0.0, 8.0), Some(0.0));
    assert_eq!(display_percent(8.0, 8.0), Some(100.0));
    // Pre-rounding is half-up too: 0.15 → 0.2, 0.25 → 0.3 (half-even would give 0.2).
    assert_eq!(round_dagsverk(0.15), Some(0.2));
    assert_eq!(round_dagsverk(0.25), Some(0.3));
    assert_eq!(display_percent(0.25, 1.0), Some(30.0));
}

#[test]
fn percentages_refuse_what_nav_cannot_compute() {
    assert_eq!(display_percent(1.0, 0.0), None);
    assert_eq!(dvh_percent(1.0, 0.0), None);
    // 0.04 mulige rounds to 0.0 before NAV divides.
    assert_eq!(display_percent(0.04, 0.04), None);
    assert_eq!(dvh_percent(0.04, 0.04), Some(100.0));
    for (t, m) in [
        (-1.0, 10.0),
        (1.0, -10.0),
        (f64::NAN, 1.0),
        (1.0, f64::INFINITY),
    ] {
        assert_eq!(display_percent(t, m), None, "{t} {m}");
        assert_eq!(dvh_percent(t, m), None, "{t} {m}");
    }
    assert_eq!(round_dagsverk(-0.1), None);
    assert!(percent(1.0, 0.0).is_infinite());
}

#[test]
fn masking_threshold_is_navs() {
    assert_eq!(MASKING_MIN_PERSONS, 5);
    let mut row = ok_stats(&array(&[object(&[])]), StatsFormat::VirksomhetJson)
        .pop()
        .expect("one row");
    row.antall_personer = 4;
    assert!(row.is_masked());
    row.antall_personer = 5;
    assert!(!row.is_masked());
}

// --- Baseline sums ---

#[test]
fn baseline_sums_add_raw_dagsverk_over_the_window() {
    let json = array(&[
        object(&[
            ("kvartal", Some("1")),
            ("tapteDagsverk", Some("1.25")),
            ("muligeDagsverk", Some("10")),
        ]),
        object(&[
            ("kvartal", Some("2")),
            ("tapteDagsverk", Some("2.5")),
            ("muligeDagsverk", Some("20")),
        ]),
        object(&[("årstall", Some("2023")), ("kvartal", Some("4"))]),
        object(&[("orgnr", Some("\"889640782\"")), ("kvartal", Some("3"))]),
    ]);
    let sums = baseline_sums(json.as_bytes(), quarter(2024, 1), quarter(2024, 4)).expect("valid");
    let brreg = sums.get(&orgnr("974760673")).expect("in window");
    assert_eq!((brreg.tapte, brreg.mulige, brreg.quarters), (3.75, 30.0, 2));
    let nav = sums.get(&orgnr("889640782")).expect("in window");
    assert_eq!((nav.tapte, nav.mulige, nav.quarters), (20.23, 77.8716, 1));
    assert_eq!(sums.len(), 2);
}

#[test]
fn baseline_sums_refuse_repeats_invalid_rows_and_metadata() {
    let csv = "orgnr,arstall,kvartal,taptedv,muligedv,antpers\n\
               974760673,2024,1,1,10,5\n974760673,2024,2,1,-10,5\n974760673,2024,1,2,10,5\n";
    let errors = baseline_sums(csv.as_bytes(), quarter(2024, 1), quarter(2024, 4))
        .expect_err("two problems");
    assert_eq!(errors.total, 2);
    assert_error(
        errors.errors.first().expect("two"),
        2,
        "muligedv",
        "greater than 0",
    );
    assert_error(errors.errors.get(1).expect("two"), 3, "orgnr", "also row 1");
    assert!(
        errors
            .to_string()
            .starts_with("2 problems in the statistics; first: row 2")
    );

    let metadata = r#"[{"årstall":2024,"kvartal":2,"orgnr":"974760673","sektor":"1"}]"#;
    let errors = baseline_sums(metadata.as_bytes(), quarter(2024, 1), quarter(2024, 4))
        .expect_err("metadata");
    assert!(errors.to_string().contains("virksomhet_metadata"));
}

// --- Robustness ---

/// A deterministic byte soup (64-bit LCG), so the test is the same everywhere.
fn junk(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

#[test]
fn malformed_input_never_panics_and_always_ends() {
    let valid = array(&[object(&[])]);
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\xEF\xBB".to_vec(),
        b"\xEF\xBB\xBF".to_vec(),
        b"\xEFxx[]".to_vec(),
        b"[".to_vec(),
        b"[{".to_vec(),
        b"[{\"orgnr\":".to_vec(),
        b"{\"orgnr\":".to_vec(),
        b"]".to_vec(),
        b"}".to_vec(),
        b"[]]".to_vec(),
        b"[,]".to_vec(),
        b"[1,]".to_vec(),
        b"[\"\\".to_vec(),
        b"[\"\\u12".to_vec(),
        b"[\"\\ud800\"]".to_vec(),
        b"[\"\\udc00x\"]".to_vec(),
        b"[{\"a\":\"\xff\xfe\"}]".to_vec(),
        b"[{\"a\":-}]".to_vec(),
        b"[{\"a\":1.}]".to_vec(),
        b"[{\"a\":1e}]".to_vec(),
        b"[{\"a\":01}]".to_vec(),
        b"[{\"a\":tru}]".to_vec(),
        b"[NaN]".to_vec(),
        b"[{\"tapteDagsverk\":NaN}]".to_vec(),
        b"[{\"tapteDagsverk\":1e999999999999}]".to_vec(),
        b"[{\"muligeDagsverk\":\"-inf\"}]".to_vec(),
        format!("[{{\"antallPersoner\":{}}}]", "9".repeat(5000)).into_bytes(),
        format!("[{{\"årstall\":-{},\"kvartal\":-1e308}}]", "9".repeat(400)).into_bytes(),
        "[".repeat(100_000).into_bytes(),
        "{".repeat(100_000).into_bytes(),
        format!("[{}]", "[".repeat(40)).into_bytes(),
        format!("[{}1{}]", "[".repeat(31), "]".repeat(31)).into_bytes(),
        b"\0\0\0\0".to_vec(),
        b"orgnr\n\"unterminated".to_vec(),
        b";;;\n;;;\n".to_vec(),
        b"\n\n\n".to_vec(),
        b"orgnr,arstall,kvartal,taptedv,muligedv,antpers\n1e400,-0,NaN,inf,-inf,1e10\n".to_vec(),
        b"orgnr,arstall,kvartal,taptedv,muligedv,antpers\n\"\"\"\n".to_vec(),
        "\u{feff}\u{feff}orgnr".as_bytes().to_vec(),
        "\n{}\n[]\n\"x\"\n{\"orgnr\":1}\n".as_bytes().to_vec(),
        valid
            .as_bytes()
            .get(..valid.len() / 2)
            .unwrap_or_default()
            .to_vec(),
    ];
    for seed in 0..40 {
        let mut soup = junk(seed, 2_000);
        inputs.push(soup.clone());
        if let Some(first) = soup.first_mut() {
            *first = if seed % 2 == 0 { b'[' } else { b'{' };
        }
        inputs.push(soup);
    }
    // Every prefix of a valid array (each a truncation somewhere).
    for end in 0..valid.len() {
        if let Some(prefix) = valid.as_bytes().get(..end) {
            inputs.push(prefix.to_vec());
        }
    }
    let formats = [
        StatsFormat::DvhCsv,
        StatsFormat::VirksomhetJson,
        StatsFormat::MetadataCsv,
        StatsFormat::MetadataJson,
    ];
    for input in &inputs {
        for format in formats {
            let n = read_stats(input.as_slice(), format).take(100_000).count();
            assert!(n < 100_000, "no end for {format:?}");
            let n = read_metadata(input.as_slice(), format)
                .take(100_000)
                .count();
            assert!(n < 100_000, "no end for {format:?}");
        }
        let _ = detect(input);
        let _ = baseline_sums(input.as_slice(), quarter(2024, 1), quarter(2024, 4));
    }
    for x in [
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        f64::NAN,
        f64::INFINITY,
        1e-300,
        1e38,
        3.4e38,
        123_456_789.123_456,
    ] {
        for y in [0.0, 5e-324, 1.0, f64::MAX, 1e-300, 1e38] {
            let _ = display_percent(x, y);
            let _ = dvh_percent(x, y);
            let _ = percent(x, y);
        }
        let _ = round_dagsverk(x);
    }
}

#[test]
fn reader_errors_end_the_stream_with_one_error() {
    struct Failing {
        sent: bool,
    }
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.sent {
                return Err(io::Error::other("disk on fire"));
            }
            self.sent = true;
            let head = b"[{\"orgnr\":";
            let n = head.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), head.get(..n)) {
                dst.copy_from_slice(src);
            }
            Ok(n)
        }
    }
    for format in [StatsFormat::VirksomhetJson, StatsFormat::DvhCsv] {
        let items: Vec<_> = read_stats(Failing { sent: false }, format).collect();
        assert_eq!(items.len(), 1, "{format:?}: {items:?}");
        let error = items.first().and_then(|r| r.as_ref().err()).expect("error");
        assert!(error.reason.contains("disk on fire"), "{error:?}");
    }
}

#[test]
fn csv_rows_match_physical_lines_whatever_the_blank_lines_and_line_ends() {
    for seed in 0..30u64 {
        let soup = junk(seed, 64);
        for ending in ["\n", "\r\n"] {
            let mut csv = format!("orgnr,arstall,kvartal,taptedv,muligedv,antpers{ending}");
            let mut line = 1; // the line after the header
            let mut expected = Vec::new();
            for (i, byte) in soup.iter().enumerate().take(20) {
                for _ in 0..byte % 4 {
                    csv.push_str(ending);
                    line += 1;
                }
                expected.push(line);
                if byte % 5 == 0 {
                    // A quoted value spanning two lines; the row is the line it starts on.
                    csv.push_str(&format!(
                        "974760673,2024,\"{}{ending}x\",1,10,5{ending}",
                        100 + line
                    ));
                    line += 2;
                } else {
                    csv.push_str(&format!("974760673,2024,{},1,10,5{ending}", 100 + line));
                    line += 1;
                }
                if i == 19 && byte % 2 == 0 {
                    csv.push_str(ending);
                }
            }
            let rows: Vec<usize> = errors_of(stats(&csv, StatsFormat::DvhCsv))
                .iter()
                .map(|e| e.row)
                .collect();
            assert_eq!(rows, expected, "seed {seed}, {ending:?}:\n{csv}");
        }
    }
}

/// Every row and `last_row` of a DVH CSV read with the fast path and without it.
fn both_paths(input: &[u8]) -> [Vec<(Result<StatRow, RowError>, usize)>; 2] {
    let read = |fast: bool| {
        let mut rows = Rows::new(
            input,
            StatsFormat::DvhCsv,
            Kind::Stats,
            fields::stat_row,
            fast.then_some(fields::stat_row_fast as fn(&csv_rows::FastCells<'_>) -> _),
        );
        let mut out = Vec::new();
        while let Some(item) = rows.next() {
            out.push((item, rows.last_row()));
        }
        out
    };
    [read(true), read(false)]
}

#[test]
fn the_csv_fast_path_gives_what_the_full_rules_give_on_every_kind_of_cell() {
    let o = VALID_EXAMPLE_ORGNR;
    // One cell per line of each column, around a valid row; each is read with and without the fast
    // path, which must agree on every row, value, error and row number.
    let header = "orgnr;arstall;kvartal;taptedv;muligedv;antpers;prosent;taptedv_gs;rectype;varighet_A;varighet_F;";
    let valid = [
        o, "2024", "2", "20.23", "77.8716", "40", "26.0", "9.5", "2", "12.1527", "0", "",
    ];
    let variants: [(usize, &[&str]); 12] = [
        (
            0,
            &[
                " 987654325 ",
                "987 654 325",
                "987654321",
                "98765432",
                "\u{a0}987654325",
                "",
                "x",
            ],
        ),
        (
            1,
            &[
                "2024.0",
                "2.024e3",
                " 2024",
                "1899",
                "99999999999",
                "2024.5",
                "",
                "-2024",
            ],
        ),
        (2, &["1", "4", "0", "5", "4.0", " 3 ", "", "1e0", "2,0"]),
        (
            3,
            &[
                "0", "-0", "-0.0", "-1", "77.8716", "77.8717", "1,5", "NaN", "inf", "1e400", "",
                " 20.23 ",
            ],
        ),
        (
            4,
            &[
                "0",
                "-1",
                "20.23",
                "1e-300",
                "1,5",
                "NaN",
                "",
                "\u{2003}77.8716",
            ],
        ),
        (
            5,
            &[
                "0",
                "40.0",
                "4e1",
                "-1",
                "4294967295",
                "4294967296",
                "1.5",
                "",
            ],
        ),
        (6, &["0", "100", "100.0001", "-0.1", "", "26,0"]),
        (7, &["0", "-1", "", "x"]),
        (8, &["1", "3", "4", " 2 ", "", "02"]),
        (9, &["0", "-0.5", "", "1e3", "abc"]),
        (10, &["5.25", "-1", ""]),
        (11, &["", " ", "extra"]),
    ];
    let mut text = format!("{header}\n{}\n", valid.join(";"));
    let mut expected_rows = 1;
    for (column, values) in variants {
        for value in values {
            let mut row = valid.map(str::to_owned);
            row[column] = (*value).to_owned();
            text.push_str(&row.join(";"));
            text.push('\n');
            expected_rows += 1;
        }
    }
    text.push_str("\n;;;;;;;;;;;\n\"987654325\";\"2024\";2;\"20.23\";77.8716;40;;;;;;\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"987654325;2024;3;20.23;77.8716;40;;;\xff;;;\n");
    let [fast, full] = both_paths(&bytes);
    assert_eq!(fast, full);
    let ok = fast.iter().filter(|(r, _)| r.is_ok()).count();
    let bad = fast.iter().filter(|(r, _)| r.is_err()).count();
    assert!(ok > 30 && bad > 30, "{ok} rows, {bad} errors");
    assert!(fast.iter().any(|(_, row)| *row > expected_rows));

    // And the fast path does take a plain row.
    let mut cells = [None; fields::Field::SLOTS];
    for (field, value) in [
        (fields::Field::Orgnr, o),
        (fields::Field::Arstall, "2024"),
        (fields::Field::Kvartal, "2"),
        (fields::Field::Tapte, "20.23"),
        (fields::Field::Mulige, "77.8716"),
        (fields::Field::Antpers, "40"),
        (fields::Field::Varighet('F'), "1.5"),
    ] {
        cells[field.slot().expect("a DVH field")] = Some(value);
    }
    let row = fields::stat_row_fast(&cells).expect("a plain row");
    assert_eq!((row.tapte_dagsverk, row.antall_personer), (20.23, 40));
    assert_eq!(row.varighet, BTreeMap::from([('F', 1.5)]));
}
