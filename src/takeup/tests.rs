use std::collections::BTreeSet;

use chrono::NaiveDate;

use super::*;
use crate::domain::Orgnr;

// Valid organisation numbers (MOD11 checked).
const A: &str = "910000004";
const B: &str = "910000012";
const C: &str = "910000020";

fn orgnr(s: &str) -> Orgnr {
    s.parse().expect("test orgnr is valid")
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date is valid")
}

fn today() -> NaiveDate {
    date("2025-06-30")
}

fn ok_takeup(input: &str) -> Vec<TakeupEvent> {
    match parse_takeup(input.as_bytes()) {
        Ok(events) => events,
        Err(e) => panic!("expected valid events, got {e}: {:#?}", e.errors),
    }
}

fn takeup_errors(input: &[u8]) -> RegisterErrors {
    match parse_takeup(input) {
        Ok(events) => panic!("expected errors, got {events:#?}"),
        Err(e) => e,
    }
}

fn ok_surveys(input: &str) -> Vec<SurveyRow> {
    match parse_surveys(input.as_bytes()) {
        Ok(rows) => rows,
        Err(e) => panic!("expected valid survey rows, got {e}: {:#?}", e.errors),
    }
}

fn survey_errors(input: &str) -> RegisterErrors {
    match parse_surveys(input.as_bytes()) {
        Ok(rows) => panic!("expected errors, got {rows:#?}"),
        Err(e) => e,
    }
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

/// `(row, field)` of every stored error.
fn places(e: &RegisterErrors) -> Vec<(usize, &str)> {
    e.errors.iter().map(|e| (e.row, e.field.as_str())).collect()
}

/// An event as `validate_history` and `summarize` see it.
fn ev(org: &str, status: TakeupStatus, dato: &str, row: usize) -> TakeupEvent {
    TakeupEvent {
        orgnr: orgnr(org),
        status,
        dato: date(dato),
        arbeidsform_levert: None,
        timer: None,
        merknad: None,
        row,
    }
}

use TakeupStatus::{Aktiv, Avbrutt, Fullfort, Kontaktet, TakketNei};

// ------------------------------------------------------------------------------------------------------
// Take-up: each format
// ------------------------------------------------------------------------------------------------------

const FULL_CSV: &str = "orgnr,status,dato,arbeidsform_levert,timer,merknad\n\
910000004,KONTAKTET,2025-01-06,,0.5,første samtale\n\
910000004,AKTIV,2025-02-03,Partssamarbeid,6.25,\n\
910 000 012,TAKKET_NEI,2025-03-01,,,\"ikke kapasitet, kanskje senere\"\n";

fn expected_full() -> Vec<TakeupEvent> {
    vec![
        TakeupEvent {
            timer: Some(0.5),
            merknad: Some("første samtale".to_owned()),
            ..ev(A, Kontaktet, "2025-01-06", 1)
        },
        TakeupEvent {
            arbeidsform_levert: Some("Partssamarbeid".to_owned()),
            timer: Some(6.25),
            ..ev(A, Aktiv, "2025-02-03", 2)
        },
        TakeupEvent {
            merknad: Some("ikke kapasitet, kanskje senere".to_owned()),
            ..ev(B, TakketNei, "2025-03-01", 3)
        },
    ]
}

#[test]
fn comma_csv_reads_every_column() {
    assert_eq!(ok_takeup(FULL_CSV), expected_full());
}

#[test]
fn semicolon_csv_with_bom_crlf_and_decimal_commas_reads_the_same() {
    let csv = "\u{feff}orgnr;status;dato;arbeidsform_levert;timer;merknad\r\n\
910000004;KONTAKTET;2025-01-06;;0,5;første samtale\r\n\
910000004;AKTIV;2025-02-03;Partssamarbeid;6,25;\r\n\
910000012;TAKKET_NEI;2025-03-01;;;ikke kapasitet, kanskje senere\r\n";
    assert_eq!(ok_takeup(csv), expected_full());
}

#[test]
fn json_array_reads_the_same_with_numbers_as_numbers_or_strings() {
    let json = r#"[
        {"orgnr": "910000004", "status": "KONTAKTET", "dato": "2025-01-06", "timer": 0.5, "merknad": "første samtale"},
        {"orgnr": 910000004, "status": "AKTIV", "dato": "2025-02-03", "arbeidsform_levert": "Partssamarbeid", "timer": "6.25", "merknad": null},
        {"orgnr": "910000012", "status": "TAKKET_NEI", "dato": "2025-03-01", "timer": null, "merknad": "ikke kapasitet, kanskje senere"}
    ]"#;
    assert_eq!(ok_takeup(json), expected_full());
}

#[test]
fn ndjson_reads_the_same_and_counts_rows_by_line() {
    let ndjson = "\n{\"orgnr\": \"910000004\", \"status\": \"KONTAKTET\", \"dato\": \"2025-01-06\", \"timer\": 0.5, \"merknad\": \"første samtale\"}\n\
{\"orgnr\": \"910000004\", \"status\": \"AKTIV\", \"dato\": \"2025-02-03\", \"arbeidsform_levert\": \"Partssamarbeid\", \"timer\": 6.25}\n\
\n\
{\"orgnr\": \"910000012\", \"status\": \"TAKKET_NEI\", \"dato\": \"2025-03-01\", \"merknad\": \"ikke kapasitet, kanskje senere\"}\n";
    let events = ok_takeup(ndjson);
    let rows: Vec<usize> = events.iter().map(|e| e.row).collect();
    assert_eq!(rows, [2, 3, 5]);
    let renumbered: Vec<TakeupEvent> = events
        .into_iter()
        .zip(1..)
        .map(|(e, row)| TakeupEvent { row, ..e })
        .collect();
    assert_eq!(renumbered, expected_full());
}

#[test]
fn a_single_json_object_is_one_event() {
    let events =
        ok_takeup(r#"{"orgnr": "910000004", "status": "KONTAKTET", "dato": "2025-01-06"}"#);
    assert_eq!(events, vec![ev(A, Kontaktet, "2025-01-06", 1)]);
}

#[test]
fn statuses_accept_fullfort_any_case_and_serialize_canonically() {
    let csv = "orgnr,status,dato\n\
910000004,FULLFØRT,2025-01-06\n\
910000004,FULLFORT,2025-01-06\n\
910000004,fullført,2025-01-06\n\
910000004, takket nei ,2025-01-06\n\
910000004,Takket-Nei,2025-01-06\n\
910000004,avbrutt,2025-01-06\n";
    let statuses: Vec<TakeupStatus> = ok_takeup(csv).iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [Fullfort, Fullfort, Fullfort, TakketNei, TakketNei, Avbrutt]
    );
    for status in TakeupStatus::ALL {
        let json = serde_json::to_string(&status).expect("serializes");
        assert_eq!(json, format!("\"{status}\""));
        let back: TakeupStatus = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, status);
        assert_eq!(status.as_str().parse::<TakeupStatus>(), Ok(status));
    }
    assert_eq!(
        serde_json::from_str::<TakeupStatus>("\"FULLFORT\"").expect("alias"),
        Fullfort
    );
    let event = serde_json::to_value(ev(A, Fullfort, "2025-01-06", 3)).expect("serializes");
    assert_eq!(event["status"], "FULLFØRT");
    assert_eq!(event["dato"], "2025-01-06");
    assert_eq!(event["orgnr"], A);
}

#[test]
fn fia_ia_sak_statuses_are_refused_with_the_status_to_use() {
    for (fia, hint) in [
        ("VI_BISTÅR", "write AKTIV"),
        ("VURDERES", "write KONTAKTET"),
        ("IKKE_AKTUELL", "TAKKET_NEI"),
        ("AVSLUTTET", "FULLFØRT"),
        ("SLETTET", "leave the row out"),
        (
            "PÅGÅR",
            "expected KONTAKTET, TAKKET_NEI, AKTIV, FULLFØRT (or FULLFORT) or AVBRUTT",
        ),
    ] {
        let e = takeup_errors(format!("orgnr,status,dato\n{A},{fia},2025-01-06\n").as_bytes());
        let error = error_at(&e, 1, "status");
        assert_eq!(error.value, fia);
        assert!(error.reason.contains(hint), "{fia}: {}", error.reason);
    }
}

// ------------------------------------------------------------------------------------------------------
// Take-up: every validation error, with its row and field
// ------------------------------------------------------------------------------------------------------

#[test]
fn every_kind_of_invalid_value_is_reported_with_its_row_and_field() {
    let long = "x".repeat(MAX_MERKNAD_CHARS + 1);
    let long_form = "y".repeat(MAX_ARBEIDSFORM_CHARS + 1);
    let csv = format!(
        "orgnr,status,dato,arbeidsform_levert,timer,merknad\n\
987654321,AKTIV,2025-01-06,,,\n\
12345,AKTIV,2025-01-06,,,\n\
{A},BISTÅR,2025-01-06,,,\n\
{A},AKTIV,06.01.2025,,,\n\
{A},AKTIV,2025-02-30,,,\n\
{A},AKTIV,2025-01-06T10:00:00,,,\n\
{A},AKTIV,2025-1-6,,,\n\
{A},AKTIV,2025-01-06,,-1,\n\
{A},AKTIV,2025-01-06,,mange,\n\
{A},KONTAKTET,2025-01-06,Partssamarbeid,,\n\
{A},TAKKET_NEI,2025-01-06,Partssamarbeid,,\n\
{A},AKTIV,2025-01-06,,,{long}\n\
{A},AKTIV,2025-01-06,{long_form},,\n\
,AKTIV,2025-01-06,,,\n\
{A},,2025-01-06,,,\n\
{A},AKTIV,,,,\n\
{A},AKTIV,2025-01-06,,inf,\n"
    );
    let e = takeup_errors(csv.as_bytes());
    assert_eq!(
        places(&e),
        [
            (1, "orgnr"),
            (2, "orgnr"),
            (3, "status"),
            (4, "dato"),
            (5, "dato"),
            (6, "dato"),
            (7, "dato"),
            (8, "timer"),
            (9, "timer"),
            (10, "arbeidsform_levert"),
            (11, "arbeidsform_levert"),
            (12, "merknad"),
            (13, "arbeidsform_levert"),
            (14, "orgnr"),
            (15, "status"),
            (16, "dato"),
            (17, "timer"),
        ]
    );
    assert_eq!(e.total, 17);
    assert!(error_at(&e, 1, "orgnr").reason.contains("check digit"));
    assert!(error_at(&e, 2, "orgnr").reason.contains("9 digits"));
    assert!(error_at(&e, 4, "dato").reason.contains("YYYY-MM-DD"));
    assert!(
        error_at(&e, 5, "dato")
            .reason
            .contains("not a date in the calendar")
    );
    assert!(error_at(&e, 6, "dato").reason.contains("without a time"));
    assert!(error_at(&e, 8, "timer").reason.contains("negative"));
    assert!(error_at(&e, 9, "timer").reason.contains("decimal point"));
    assert!(
        error_at(&e, 10, "arbeidsform_levert")
            .reason
            .contains("before a samarbeid is AKTIV")
    );
    assert!(error_at(&e, 12, "merknad").reason.contains("at most 1000"));
    assert_eq!(error_at(&e, 12, "merknad").value.chars().count(), 121); // cut after 120, with `…`
    assert!(error_at(&e, 14, "orgnr").reason.starts_with("missing"));
    assert!(error_at(&e, 15, "status").reason.contains("KONTAKTET"));
    assert!(error_at(&e, 16, "dato").reason.contains("YYYY-MM-DD"));
    assert!(error_at(&e, 17, "timer").reason.contains("finite"));
}

#[test]
fn json_values_of_the_wrong_kind_are_row_errors() {
    let json = r#"[
        {"orgnr": "910000004", "status": 3, "dato": "2025-01-06"},
        {"orgnr": "910000004", "status": "AKTIV", "dato": 20250106},
        {"orgnr": "910000004", "status": "AKTIV", "dato": "2025-01-06", "arbeidsform_levert": ["a", "b"]},
        {"orgnr": true, "status": "AKTIV", "dato": "2025-01-06", "timer": {"h": 1}},
        "910000004,AKTIV,2025-01-06",
        null
    ]"#;
    let e = takeup_errors(json.as_bytes());
    assert_eq!(
        places(&e),
        [
            (1, "status"),
            (2, "dato"),
            (3, "arbeidsform_levert"),
            (4, "orgnr"),
            (4, "timer"),
            (5, ""),
            (6, ""),
        ]
    );
    assert!(
        error_at(&e, 1, "status")
            .reason
            .contains("expected text, got a number")
    );
    assert!(
        error_at(&e, 3, "arbeidsform_levert")
            .reason
            .contains("got a JSON array")
    );
    assert!(e.errors[5].reason.contains("expected an object"));
}

#[test]
fn file_level_problems_are_at_row_zero() {
    // Unknown column (with a suggestion), a covariate, a duplicate column, a missing required column.
    let e = takeup_errors(b"orgnr,Status,x_alder,orgnr\n910000004,AKTIV,3,910000004\n");
    assert_eq!(
        places(&e),
        [
            (0, "Status"),
            (0, "x_alder"),
            (0, "orgnr"),
            (0, "status"),
            (0, "dato")
        ]
    );
    assert!(
        error_at(&e, 0, "Status")
            .reason
            .contains("did you mean `status`")
    );
    assert!(error_at(&e, 0, "x_alder").reason.contains("firm register"));
    assert!(error_at(&e, 0, "orgnr").reason.contains("appears twice"));
    assert!(
        error_at(&e, 0, "dato")
            .reason
            .contains("missing column `dato`")
    );

    // An unknown JSON key, once at its first row, counting the objects that have it.
    let e = takeup_errors(
        br#"[{"orgnr":"910000004","status":"AKTIV","dato":"2025-01-06"},
             {"orgnr":"910000004","status":"AKTIV","dato":"2025-01-06","Timer":1},
             {"orgnr":"910000004","status":"AKTIV","dato":"2025-01-06","Timer":2}]"#,
    );
    let error = error_at(&e, 2, "Timer");
    assert!(error.reason.contains("2 objects"), "{}", error.reason);
    assert!(
        error.reason.contains("did you mean `timer`"),
        "{}",
        error.reason
    );
    assert_eq!(e.total, 1);

    // A row with the wrong number of fields: too few names the first missing column, too many the
    // header's last column.
    let e = takeup_errors(b"orgnr,status,dato\n910000004,AKTIV\n");
    assert!(
        error_at(&e, 1, "dato")
            .reason
            .contains("2 fields but the header has 3")
    );
    let e = takeup_errors(b"orgnr,status,dato\n910000004,AKTIV,2025-01-06,1,5\n");
    let error = error_at(&e, 1, "dato");
    assert!(error.reason.contains("5 fields but the header has 3"));
    assert!(error.reason.contains("2 more"), "{}", error.reason);
    assert_eq!(error.value, "1");

    // Empty, header-only, BOM-only, not UTF-8, broken JSON.
    for (input, needle) in [
        (&b""[..], "empty"),
        (b"\xEF\xBB\xBF  \n", "empty"),
        (b"orgnr,status,dato\n", "no take-up events"),
        (b"[]", "no take-up events"),
        (
            b"orgnr,status,dato\n\xff\xfe,AKTIV,2025-01-06\n",
            "not UTF-8",
        ),
    ] {
        let e = takeup_errors(input);
        assert_eq!(e.total, 1, "{input:?}");
        assert_eq!(places(&e), [(0, "")], "{input:?}");
        assert!(
            e.errors[0].reason.contains(needle),
            "{}",
            e.errors[0].reason
        );
    }
}

#[test]
fn truncated_json_names_the_element_and_key_where_it_stops() {
    let e = takeup_errors(
        b"[{\"orgnr\": \"910000004\", \"status\": \"AKTIV\", \"dato\": \"2025-01-06\"},\n {\"orgnr\": \"910000004\", \"status\": ",
    );
    assert_eq!(places(&e), [(2, "status")], "{:#?}", e.errors);
    assert!(e.errors[0].reason.contains("not valid JSON"));
    assert!(e.errors[0].reason.contains("stopped at `status`"));
    // One object, cut inside its value.
    let e = takeup_errors(b"{\"orgnr\": \"910000004\", \"merknad\": \"unclosed");
    assert_eq!(places(&e), [(1, "merknad")], "{:#?}", e.errors);
    // NDJSON: the line, and the key.
    let e = takeup_errors(
        b"{\"orgnr\": \"910000004\", \"status\": \"AKTIV\", \"dato\": \"2025-01-06\"}\n{\"orgnr\": \"910000004\", \"timer\": tru}\n",
    );
    assert_eq!(places(&e), [(2, "timer")], "{:#?}", e.errors);
}

#[test]
fn ranges_of_dates_hours_and_survey_fields() {
    for (dato, ok) in [
        ("0000-01-01", false),
        ("1989-12-31", false),
        ("1990-01-01", true),
        ("2100-12-31", true),
        ("2101-01-01", false),
        ("9999-12-31", false),
    ] {
        let input = format!("orgnr,status,dato\n910000004,KONTAKTET,{dato}\n");
        match parse_takeup(input.as_bytes()) {
            Ok(_) => assert!(ok, "{dato} accepted"),
            Err(e) => {
                assert!(!ok, "{dato} refused: {:#?}", e.errors);
                assert_eq!(places(&e), [(1, "dato")]);
                assert!(e.errors[0].reason.contains("1990-01-01"));
            }
        }
    }
    for (timer, ok) in [
        ("1e300", false),
        ("10000.5", false),
        ("10000", true),
        ("0", true),
        ("-1", false),
        ("inf", false),
        ("NaN", false),
    ] {
        let input = format!("orgnr,status,dato,timer\n910000004,AKTIV,2025-01-06,{timer}\n");
        match parse_takeup(input.as_bytes()) {
            Ok(_) => assert!(ok, "{timer} accepted"),
            Err(e) => {
                assert!(!ok, "{timer} refused: {:#?}", e.errors);
                assert_eq!(places(&e), [(1, "timer")]);
            }
        }
    }
    // JSON numbers too.
    let e = takeup_errors(
        br#"[{"orgnr": "910000004", "status": "AKTIV", "dato": "2025-01-06", "timer": 1e300}]"#,
    );
    assert_eq!(places(&e), [(1, "timer")]);

    for (row, ok) in [
        ("910000004,101,trivsel,3.5,10", false),
        ("910000004,100,trivsel,3.5,10", true),
        ("910000004,4294967295,trivsel,3.5,10", false),
        ("910000004,1,trivsel,3.5,1000001", false),
        ("910000004,1,trivsel,3.5,1000000", true),
        ("910000004,1,trivsel,1e7,10", false),
        ("910000004,1,trivsel,-1000000,10", true),
    ] {
        let input = format!("orgnr,bolge,maal,verdi,antall_svar\n{row}\n");
        match parse_surveys(input.as_bytes()) {
            Ok(_) => assert!(ok, "{row} accepted"),
            Err(e) => {
                assert!(!ok, "{row} refused: {:#?}", e.errors);
                assert_eq!(e.total, 1, "{row}");
                assert_eq!(e.errors[0].row, 1);
            }
        }
    }
}

#[test]
fn text_fields_refuse_format_characters_and_keep_their_limits() {
    let e = takeup_errors(
        "orgnr,status,dato,arbeidsform_levert\n910000004,AKTIV,2025-01-06,bred\u{202E}prosess\n"
            .as_bytes(),
    );
    assert_eq!(places(&e), [(1, "arbeidsform_levert")]);
    assert!(
        e.errors[0].reason.contains("U+202E"),
        "{}",
        e.errors[0].reason
    );
    // A note may span lines, but not hide text.
    let ok = "orgnr,status,dato,merknad\n910000004,AKTIV,2025-01-06,\"line one\nline two\"\n";
    assert!(parse_takeup(ok.as_bytes()).is_ok());
    let e = takeup_errors(
        "orgnr,status,dato,merknad\n910000004,AKTIV,2025-01-06,note\u{200B}\n".as_bytes(),
    );
    assert_eq!(places(&e), [(1, "merknad")]);
    let e = survey_errors("orgnr,bolge,maal,verdi,antall_svar\n910000004,1,\"tri\nvsel\",3.5,10\n");
    assert_eq!(places(&e), [(1, "maal")]);
}

#[test]
fn csv_rows_count_lines_after_the_header_including_blank_ones() {
    let e = takeup_errors(
        b"orgnr,status,dato\n\n910000004,AKTIV,2025-01-06\n,,\n910000004,NEI,2025-01-06\n",
    );
    assert_eq!(places(&e), [(4, "status")]);
}

#[test]
fn more_than_a_hundred_errors_are_counted_but_not_all_listed() {
    let mut csv = "orgnr,status,dato\n".to_owned();
    for _ in 0..150 {
        csv.push_str("910000004,AKTIV,01.02.2025\n");
    }
    let e = takeup_errors(csv.as_bytes());
    assert_eq!(e.total, 150);
    assert_eq!(e.errors.len(), 100);
    assert_eq!(e.errors[99].row, 100);
}

// ------------------------------------------------------------------------------------------------------
// Status history: Fia's transitions
// ------------------------------------------------------------------------------------------------------

/// The transition table of `history.rs` (rows: from; `None` = no event yet).
fn allowed(from: Option<TakeupStatus>, to: TakeupStatus) -> bool {
    matches!(
        (from, to),
        (None, Kontaktet)
            | (Some(Kontaktet), Kontaktet | TakketNei | Aktiv)
            | (Some(TakketNei), Kontaktet)
            | (Some(Aktiv), Aktiv | Fullfort | Avbrutt)
            | (Some(Fullfort | Avbrutt), Kontaktet)
    )
}

/// A valid history ending in `status` (as new rows 1..), dated from 2025-01-01 on.
fn path_to(status: TakeupStatus) -> Vec<TakeupStatus> {
    match status {
        Kontaktet => vec![Kontaktet],
        TakketNei => vec![Kontaktet, TakketNei],
        Aktiv => vec![Kontaktet, Aktiv],
        Fullfort => vec![Kontaktet, Aktiv, Fullfort],
        Avbrutt => vec![Kontaktet, Aktiv, Avbrutt],
    }
}

fn dated(statuses: &[TakeupStatus]) -> Vec<TakeupEvent> {
    statuses
        .iter()
        .enumerate()
        .map(|(i, s)| ev(A, *s, &format!("2025-01-{:02}", i + 1), i + 1))
        .collect()
}

#[test]
fn every_transition_is_allowed_or_refused_as_fia_does() {
    let froms: Vec<Option<TakeupStatus>> = std::iter::once(None)
        .chain(TakeupStatus::ALL.map(Some))
        .collect();
    let mut refused = 0;
    for from in froms {
        for to in TakeupStatus::ALL {
            let mut statuses = from.map(path_to).unwrap_or_default();
            statuses.push(to);
            let events = dated(&statuses);
            let last = statuses.len();
            // All in the new upload, and with the path already registered.
            let (registered, new) = events.split_at(last - 1);
            for (existing, upload) in [(&[][..], &events[..]), (registered, new)] {
                let result = validate_history(existing, upload, today());
                if allowed(from, to) {
                    assert_eq!(result, Ok(()), "{from:?} -> {to}");
                } else {
                    let e = result.expect_err("refused");
                    assert_eq!(places(&e), [(last, "status")], "{from:?} -> {to}");
                    let error = &e.errors[0];
                    assert_eq!(error.value, to.as_str());
                    match from {
                        Some(from) => assert!(
                            error
                                .reason
                                .contains(&format!("cannot follow {from} of 2025-01-")),
                            "{}",
                            error.reason
                        ),
                        None => assert!(
                            error.reason.contains("cannot be the first event"),
                            "{}",
                            error.reason
                        ),
                    }
                }
            }
            if !allowed(from, to) {
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 30 - 10);
}

#[test]
fn refusals_say_what_to_do() {
    let cases: [(&[TakeupStatus], &str); 7] = [
        (&[Aktiv], "add a KONTAKTET row"),
        (&[Fullfort], "add the KONTAKTET and AKTIV rows"),
        (&[Kontaktet, Fullfort], "add an AKTIV row"),
        (&[Kontaktet, Avbrutt], "write TAKKET_NEI"),
        (&[Kontaktet, Aktiv, TakketNei], "write AVBRUTT instead"),
        (
            &[Kontaktet, Aktiv, Kontaktet],
            "end the samarbeid with FULLFØRT or AVBRUTT",
        ),
        (&[Kontaktet, Aktiv, Fullfort, Aktiv], "add a KONTAKTET row"),
    ];
    for (statuses, fix) in cases {
        let e = validate_history(&[], &dated(statuses), today()).expect_err("refused");
        assert_eq!(e.total, 1, "{statuses:?}");
        assert!(
            e.errors[0].reason.contains(fix),
            "{statuses:?}: {}",
            e.errors[0].reason
        );
    }
    // The previous event is named with its row or as registered.
    let e = validate_history(&[], &dated(&[Kontaktet, Fullfort]), today()).expect_err("refused");
    assert!(
        e.errors[0]
            .reason
            .contains("KONTAKTET of 2025-01-01 (row 1)"),
        "{}",
        e.errors[0].reason
    );
    let events = dated(&[Kontaktet, Fullfort]);
    let e = validate_history(&events[..1], &events[1..], today()).expect_err("refused");
    assert!(
        e.errors[0].reason.contains("(already registered)"),
        "{}",
        e.errors[0].reason
    );
}

#[test]
fn a_full_lifecycle_with_a_second_round_is_allowed() {
    let statuses = [
        Kontaktet, Kontaktet, TakketNei, Kontaktet, Aktiv, Aktiv, Avbrutt, Kontaktet, Aktiv,
        Fullfort, Kontaktet,
    ];
    assert_eq!(validate_history(&[], &dated(&statuses), today()), Ok(()));
}

#[test]
fn events_are_replayed_in_date_order_with_ties_in_file_order() {
    // Out of date order in the file: fine.
    let new = vec![
        ev(A, Fullfort, "2025-03-01", 1),
        ev(A, Aktiv, "2025-02-01", 2),
        ev(A, Kontaktet, "2025-01-01", 3),
    ];
    assert_eq!(validate_history(&[], &new, today()), Ok(()));
    // Same date: file order decides.
    let same_day = vec![
        ev(A, Kontaktet, "2025-02-01", 1),
        ev(A, Aktiv, "2025-02-01", 2),
    ];
    assert_eq!(validate_history(&[], &same_day, today()), Ok(()));
    let reversed = vec![
        ev(A, Aktiv, "2025-02-01", 1),
        ev(A, Kontaktet, "2025-02-01", 2),
    ];
    let e = validate_history(&[], &reversed, today()).expect_err("AKTIV first");
    assert_eq!(places(&e), [(1, "status")]);
    // A registered event on the same date comes before the new ones.
    let registered = vec![ev(A, Kontaktet, "2025-02-01", 0)];
    let new = vec![ev(A, Aktiv, "2025-02-01", 1)];
    assert_eq!(validate_history(&registered, &new, today()), Ok(()));
}

#[test]
fn firms_are_checked_separately() {
    let new = vec![
        ev(A, Kontaktet, "2025-01-01", 1),
        ev(B, Aktiv, "2025-01-02", 2),
        ev(A, Aktiv, "2025-01-03", 3),
        ev(C, Kontaktet, "2025-01-04", 4),
    ];
    let e = validate_history(&[], &new, today()).expect_err("B has no KONTAKTET");
    assert_eq!(places(&e), [(2, "status")]);
    assert!(e.errors[0].reason.contains(B));
}

#[test]
fn a_refused_event_is_left_out_so_later_rows_are_judged_without_it() {
    // FULLFØRT in row 2 is refused; AKTIV (row 3) then follows KONTAKTET and the last FULLFØRT is fine.
    let new = dated(&[Kontaktet, Fullfort, Aktiv, Fullfort]);
    let e = validate_history(&[], &new, today()).expect_err("row 2");
    assert_eq!(places(&e), [(2, "status")]);
}

#[test]
fn dates_after_today_are_refused() {
    let new = vec![
        ev(A, Kontaktet, "2025-06-30", 1),
        ev(A, Aktiv, "2025-07-01", 2),
        ev(B, Kontaktet, "2030-01-01", 3),
    ];
    let e = validate_history(&[], &new, today()).expect_err("future");
    assert_eq!(places(&e), [(2, "dato"), (3, "dato")]);
    let error = error_at(&e, 2, "dato");
    assert_eq!(error.value, "2025-07-01");
    assert!(
        error.reason.contains("after today (2025-06-30)"),
        "{}",
        error.reason
    );
}

#[test]
fn repeated_events_are_refused_naming_the_earlier_one() {
    let registered = dated(&[Kontaktet, Aktiv]);
    // A re-upload of the same two events.
    let again: Vec<TakeupEvent> = registered
        .iter()
        .cloned()
        .map(|e| TakeupEvent {
            row: e.row + 10,
            ..e
        })
        .collect();
    let e = validate_history(&registered, &again, today()).expect_err("re-upload");
    assert_eq!(places(&e), [(11, "status"), (12, "status")]);
    assert!(
        e.errors[0].reason.contains("already registered"),
        "{}",
        e.errors[0].reason
    );
    // Twice in one upload.
    let twice = vec![
        ev(A, Kontaktet, "2025-01-01", 1),
        ev(A, Kontaktet, "2025-01-01", 2),
    ];
    let e = validate_history(&[], &twice, today()).expect_err("twice");
    assert!(
        error_at(&e, 2, "status")
            .reason
            .contains("already in row 1")
    );
    // Two AKTIV rows on one day with different hours are two sessions, not a repeat.
    let sessions = vec![
        ev(A, Kontaktet, "2025-01-01", 1),
        TakeupEvent {
            timer: Some(2.0),
            ..ev(A, Aktiv, "2025-01-02", 2)
        },
        TakeupEvent {
            timer: Some(3.0),
            ..ev(A, Aktiv, "2025-01-02", 3)
        },
    ];
    assert_eq!(validate_history(&[], &sessions, today()), Ok(()));
}

#[test]
fn a_backdated_event_that_breaks_the_registered_history_is_refused_on_its_date() {
    // Registered: KONTAKTET in January, TAKKET_NEI in March. A new AKTIV in February fits after
    // KONTAKTET, but TAKKET_NEI cannot follow AKTIV.
    let registered = vec![
        ev(A, Kontaktet, "2025-01-10", 0),
        ev(A, TakketNei, "2025-03-10", 0),
    ];
    let new = vec![ev(A, Aktiv, "2025-02-10", 7)];
    let e = validate_history(&registered, &new, today()).expect_err("backdated");
    let error = error_at(&e, 7, "dato");
    assert_eq!(error.value, "2025-02-10");
    assert!(
        error
            .reason
            .contains("already registered TAKKET_NEI of 2025-03-10"),
        "{}",
        error.reason
    );
    // A backdated event that fits is fine (a second AKTIV inside a samarbeid).
    let registered = dated(&[Kontaktet, Aktiv, Fullfort]);
    let new = vec![TakeupEvent {
        timer: Some(1.5),
        ..ev(A, Aktiv, "2025-01-02", 1)
    }];
    assert_eq!(validate_history(&registered, &new, today()), Ok(()));
}

#[test]
fn problems_inside_the_registered_history_alone_are_not_reported() {
    let registered = vec![
        ev(A, Fullfort, "2025-01-01", 0),
        ev(A, TakketNei, "2025-01-02", 0),
    ];
    let new = vec![ev(A, Kontaktet, "2025-02-01", 1)];
    assert_eq!(validate_history(&registered, &new, today()), Ok(()));
    assert_eq!(validate_history(&registered, &[], today()), Ok(()));
}

#[test]
fn history_errors_come_in_row_order() {
    let new = vec![
        ev(C, Aktiv, "2025-01-01", 1),
        ev(A, Fullfort, "2025-01-01", 2),
        ev(B, Kontaktet, "2026-01-01", 3),
    ];
    let e = validate_history(&[], &new, today()).expect_err("three");
    assert_eq!(places(&e), [(1, "status"), (2, "status"), (3, "dato")]);
}

#[test]
fn parsed_uploads_validate_end_to_end() {
    // FULL_CSV's TAKKET_NEI (row 3) has no KONTAKTET before it.
    let events = ok_takeup(FULL_CSV);
    let e = validate_history(&[], &events, today()).expect_err("row 3");
    assert_eq!(places(&e), [(3, "status")]);
    assert!(e.errors[0].reason.contains("add a KONTAKTET row"));
    assert_eq!(validate_history(&[], &events[..2], today()), Ok(()));
    let bad = ok_takeup(
        "orgnr;status;dato\n910000004;KONTAKTET;2025-01-06\n910000004;FULLFORT;2025-02-01\n",
    );
    let e = validate_history(&[], &bad, today()).expect_err("no AKTIV");
    assert_eq!(places(&e), [(2, "status")]);
    assert_eq!(e.errors[0].value, "FULLFØRT");
}

// ------------------------------------------------------------------------------------------------------
// Compliance summary
// ------------------------------------------------------------------------------------------------------

#[test]
fn summary_values_per_firm() {
    let events = vec![
        // A, given out of date order: KONTAKTET, AKTIV ×2, FULLFØRT.
        TakeupEvent {
            timer: Some(2.5),
            arbeidsform_levert: Some("Sykefraværsrutiner".to_owned()),
            ..ev(A, Aktiv, "2025-03-01", 3)
        },
        TakeupEvent {
            timer: Some(1.0),
            ..ev(A, Kontaktet, "2025-01-01", 1)
        },
        TakeupEvent {
            timer: Some(4.0),
            arbeidsform_levert: Some("Partssamarbeid".to_owned()),
            ..ev(A, Aktiv, "2025-02-01", 2)
        },
        TakeupEvent {
            arbeidsform_levert: Some("Partssamarbeid".to_owned()),
            ..ev(A, Fullfort, "2025-05-01", 4)
        },
        // B declined.
        TakeupEvent {
            timer: Some(0.5),
            ..ev(B, Kontaktet, "2025-01-05", 5)
        },
        ev(B, TakketNei, "2025-01-20", 6),
        // C: same-day tie, last in input order wins.
        ev(C, Kontaktet, "2025-04-01", 7),
        ev(C, Aktiv, "2025-04-01", 8),
    ];
    let summary = summarize(&events);
    assert_eq!(summary.len(), 3);

    let a = &summary[&orgnr(A)];
    assert!(a.received);
    assert_eq!(a.received_date, Some(date("2025-02-01")));
    assert_eq!(a.last_status, Fullfort);
    assert_eq!(a.timer, 7.5);
    assert_eq!(
        a.arbeidsform_levert,
        BTreeSet::from(["Partssamarbeid".to_owned(), "Sykefraværsrutiner".to_owned()])
    );

    let b = &summary[&orgnr(B)];
    assert!(!b.received);
    assert_eq!(b.received_date, None);
    assert_eq!(b.last_status, TakketNei);
    assert_eq!(b.timer, 0.5);
    assert!(b.arbeidsform_levert.is_empty());

    let c = &summary[&orgnr(C)];
    assert!(c.received);
    assert_eq!(c.received_date, Some(date("2025-04-01")));
    assert_eq!(c.last_status, Aktiv);
    assert_eq!(c.timer, 0.0);

    assert!(summarize(&[]).is_empty());
    let json = serde_json::to_value(a).expect("serializes");
    assert_eq!(json["last_status"], "FULLFØRT");
    assert_eq!(json["received_date"], "2025-02-01");
    assert_eq!(json["arbeidsform_levert"][0], "Partssamarbeid");
}

#[test]
fn received_stays_true_after_the_samarbeid_is_broken_off() {
    let summary = summarize(&dated(&[Kontaktet, Aktiv, Avbrutt, Kontaktet]));
    let a = &summary[&orgnr(A)];
    assert!(a.received);
    assert_eq!(a.received_date, Some(date("2025-01-02")));
    assert_eq!(a.last_status, Kontaktet);
}

// ------------------------------------------------------------------------------------------------------
// Surveys
// ------------------------------------------------------------------------------------------------------

const SURVEY_CSV: &str = "orgnr,bolge,maal,verdi,antall_svar\n\
910000004,0,trivsel,3.75,12\n\
910000004,1,trivsel,4.1,11\n\
910000012,1,trivsel,,2\n\
910000012,1,partssamarbeid,2.5,3\n";

#[test]
fn surveys_read_from_csv_semicolon_csv_and_json_alike() {
    let rows = ok_surveys(SURVEY_CSV);
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0],
        SurveyRow {
            orgnr: orgnr(A),
            bolge: 0,
            maal: "trivsel".to_owned(),
            verdi: Some(3.75),
            antall_svar: 12,
            row: 1,
        }
    );
    assert_eq!(rows[2].verdi, None);

    let semicolon = "\u{feff}orgnr;bolge;maal;verdi;antall_svar\r\n\
910000004;0;trivsel;3,75;12\r\n910000004;1;trivsel;4,1;11\r\n\
910000012;1;trivsel;;2\r\n910000012;1;partssamarbeid;2,5;3\r\n";
    assert_eq!(ok_surveys(semicolon), rows);

    let json = r#"[{"orgnr":"910000004","bolge":0,"maal":"trivsel","verdi":3.75,"antall_svar":12},
        {"orgnr":"910000004","bolge":"1","maal":"trivsel","verdi":"4.1","antall_svar":11.0},
        {"orgnr":"910000012","bolge":1,"maal":"trivsel","verdi":null,"antall_svar":2},
        {"orgnr":"910000012","bolge":1,"maal":"partssamarbeid","verdi":2.5,"antall_svar":3}]"#;
    assert_eq!(ok_surveys(json), rows);

    let ndjson = r#"{"orgnr":"910000004","bolge":0,"maal":"trivsel","verdi":3.75,"antall_svar":12}
{"orgnr":"910000004","bolge":1,"maal":"trivsel","verdi":4.1,"antall_svar":11}
{"orgnr":"910000012","bolge":1,"maal":"trivsel","antall_svar":2}
{"orgnr":"910000012","bolge":1,"maal":"partssamarbeid","verdi":2.5,"antall_svar":3}"#;
    assert_eq!(ok_surveys(ndjson), rows);
}

#[test]
fn survey_errors_name_row_and_field() {
    let csv = "orgnr,bolge,maal,verdi,antall_svar\n\
910000004,1,trivsel,4,10\n\
910000004,1,trivsel,5,10\n\
910000004,-1,trivsel,4,10\n\
910000004,1.5,ledelse,4,10\n\
910000004,2,,4,10\n\
910000004,2,ledelse,høy,10\n\
910000004,2,ledelse,,10\n\
910000004,2,stress,4,0\n\
910000004,2,stress2,4,-3\n\
910000004,2,stress3,4,2.5\n\
910000005,2,stress,4,4\n";
    let e = survey_errors(csv);
    assert_eq!(
        places(&e),
        [
            (2, "maal"),
            (3, "bolge"),
            (4, "bolge"),
            (5, "maal"),
            (6, "verdi"),
            (7, "verdi"),
            (8, "verdi"),
            (9, "antall_svar"),
            (10, "antall_svar"),
            (11, "orgnr"),
        ]
    );
    let duplicate = error_at(&e, 2, "maal");
    assert!(
        duplicate.reason.contains("already in row 1"),
        "{}",
        duplicate.reason
    );
    assert_eq!(duplicate.value, "trivsel");
    assert!(error_at(&e, 3, "bolge").reason.contains("negative"));
    assert!(error_at(&e, 4, "bolge").reason.contains("fractional"));
    assert!(error_at(&e, 7, "verdi").reason.starts_with("missing"));
    assert!(error_at(&e, 8, "verdi").reason.contains("0 respondents"));

    // Missing columns and unknown ones, with suggestions for æøå spellings.
    let e = survey_errors("orgnr,bølge,mål,verdi\n910000004,1,trivsel,4\n");
    assert_eq!(
        places(&e),
        [
            (0, "bølge"),
            (0, "mål"),
            (0, "bolge"),
            (0, "maal"),
            (0, "antall_svar")
        ]
    );
    assert!(
        error_at(&e, 0, "bølge")
            .reason
            .contains("did you mean `bolge`")
    );
    assert!(
        error_at(&e, 0, "mål")
            .reason
            .contains("did you mean `maal`")
    );

    // Duplicates also across formats' spellings of the same key (JSON numbers and strings).
    let e = survey_errors(
        r#"[{"orgnr":"910000004","bolge":1,"maal":"m","verdi":1,"antall_svar":5},
            {"orgnr":910000004,"bolge":"1","maal":" m ","verdi":2,"antall_svar":5}]"#,
    );
    assert_eq!(places(&e), [(2, "maal")]);

    assert!(
        survey_errors("orgnr,bolge,maal,verdi,antall_svar\n").errors[0]
            .reason
            .contains("no survey rows")
    );
}

#[test]
fn cells_under_three_respondents_are_masked_in_every_output() {
    assert_eq!(SURVEY_MIN_RESPONDENTS, 3);
    let rows = ok_surveys(
        "orgnr,bolge,maal,verdi,antall_svar\n\
910000004,1,a,,0\n910000004,1,b,2.5,1\n910000004,1,c,3.5,2\n910000004,1,d,4.5,3\n910000004,1,e,5.5,40\n",
    );
    // (`a` has a blank value with 0 respondents: a value there is an error.)
    let flags: Vec<bool> = rows.iter().map(masked).collect();
    assert_eq!(flags, [true, true, true, false, false]);

    for row in &rows {
        let json = serde_json::to_value(row).expect("serializes");
        assert_eq!(json["maskert"], masked(row));
        assert_eq!(json["antall_svar"], row.antall_svar);
        assert_eq!(json["orgnr"], A);
        if masked(row) {
            assert!(json["verdi"].is_null(), "{json}");
        } else {
            assert_eq!(json["verdi"].as_f64(), row.verdi);
        }
        assert!(json.get("row").is_none());
    }
    // The unmasked value is still there for estimation inside the service.
    assert_eq!(rows[2].verdi, Some(3.5));
    // A list serializes masked too.
    let text = serde_json::to_string(&rows).expect("serializes");
    assert!(!text.contains("3.5") && !text.contains("2.5"), "{text}");
    assert!(text.contains("4.5"));
}

#[test]
fn a_value_with_zero_respondents_is_an_error() {
    let e = survey_errors("orgnr,bolge,maal,verdi,antall_svar\n910000004,1,a,1.5,0\n");
    assert_eq!(places(&e), [(1, "verdi")]);
}

#[test]
fn public_types_have_schemas() {
    use utoipa::PartialSchema;
    let schema = |s: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
        serde_json::to_string(&s).expect("schema serializes")
    };
    let status = schema(TakeupStatus::schema());
    assert!(
        status.contains("FULLFØRT") && status.contains("TAKKET_NEI"),
        "{status}"
    );
    assert!(schema(TakeupEvent::schema()).contains("arbeidsform_levert"));
    assert!(schema(Compliance::schema()).contains("received_date"));
    let survey = schema(SurveyRow::schema());
    assert!(survey.contains("maskert"), "{survey}");
    assert_eq!(survey, schema(MaskedSurveyRow::schema()));
}

// ------------------------------------------------------------------------------------------------------
// Robustness
// ------------------------------------------------------------------------------------------------------

#[test]
fn malformed_inputs_never_panic() {
    let mut inputs: Vec<Vec<u8>> = vec![
        b"[".to_vec(),
        b"{".to_vec(),
        b"[{}]".to_vec(),
        b"[[]]".to_vec(),
        b"{}".to_vec(),
        b"{}\n{".to_vec(),
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
        b"orgnr,status,dato,timer\n910000004,AKTIV,2025-01-06,1e400\n".to_vec(),
        b"orgnr,bolge,maal,verdi,antall_svar\n910000004,99999999999999999999,m,1,99999999999\n"
            .to_vec(),
        b"[{\"timer\": 1e400}]".to_vec(),
        b"[{\"antall_svar\": 18446744073709551616, \"verdi\": -1e308, \"bolge\": -0.0}]".to_vec(),
        b"[{\"dato\": \"\xc3\xa6\xc3\xa6\xc3\xa6\xc3\xa6-\xc3\xa6\xc3\xa6-\xc3\xa6\"}]".to_vec(),
        "orgnr,status,dato\n\u{1F600}\u{1F600}\u{1F600},ø,ÆÆÆÆ-ØØ-ÅÅ\n"
            .as_bytes()
            .to_vec(),
        "orgnr,status,dato\n910000004,AKTIV,٢٠٢٥-٠١-٠٦\n"
            .as_bytes()
            .to_vec(),
        "x".repeat(500).into_bytes(),
        format!("[{}]", "[".repeat(200)).into_bytes(),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        format!("{}{}", "{\"a\":".repeat(5_000), "}".repeat(5_000)).into_bytes(),
    ];
    for full in [FULL_CSV, SURVEY_CSV] {
        for end in (0..full.len()).step_by(5) {
            inputs.push(full.as_bytes().get(..end).unwrap_or_default().to_vec());
        }
    }
    const ALPHABET: &[u8] = b"[]{}\",;:0123456789.-eE \n\rorgnstaudbl_AKTIVFULLF\xC3\x98";
    let mut state: u32 = 0x2545_f491;
    for len in [1usize, 5, 40, 300, 2000] {
        for _ in 0..20 {
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
    }
    // Valid headers followed by soup rows.
    let soups: Vec<Vec<u8>> = inputs.iter().rev().take(40).cloned().collect();
    for soup in soups {
        for header in [
            &b"orgnr,status,dato,timer\n"[..],
            b"orgnr;bolge;maal;verdi;antall_svar\n",
        ] {
            let mut input = header.to_vec();
            input.extend(&soup);
            inputs.push(input);
        }
    }
    let mut parsed = Vec::new();
    for input in &inputs {
        match parse_takeup(input) {
            Ok(events) => parsed.extend(events),
            Err(e) => {
                assert!(e.total >= e.errors.len());
                assert!(!e.errors.is_empty());
            }
        }
        if let Err(e) = parse_surveys(input) {
            assert!(e.total >= e.errors.len());
            assert!(!e.errors.is_empty());
        }
    }
    // Whatever parsed, history checks and summaries do not panic either.
    let _ = validate_history(&parsed, &parsed, today());
    let _ = validate_history(&[], &parsed, NaiveDate::MIN);
    let _ = summarize(&parsed);
}

#[test]
fn survey_measures_outside_the_protocol_name_row_and_maal() {
    let rows = crate::takeup::parse_surveys(
        b"orgnr,bolge,maal,verdi,antall_svar\n\
          974760673,1,arbeidsmiljo_indeks,3.5,12\n\
          974760673,1,trivsel,4,12\n\
          974760673,2,Arbeidsmiljo_indeks,4,12\n",
    )
    .expect("parses");
    let declared = ["sykefravar_prosent", "arbeidsmiljo_indeks"];
    let e = crate::takeup::check_measures(&rows, &declared).expect_err("refused");
    assert_eq!(e.total, 2);
    let named: Vec<(usize, &str, &str)> = e
        .errors
        .iter()
        .map(|r| (r.row, r.field.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(
        named,
        [(2, "maal", "trivsel"), (3, "maal", "Arbeidsmiljo_indeks")]
    );
    assert!(e.errors[0].reason.contains("`arbeidsmiljo_indeks`"));
    crate::takeup::check_measures(&rows[..1], &declared).expect("declared");
}
