use super::*;
use crate::domain::{Naeringskode, Orgnr};
use crate::register::{BaselineDagsverk, Firm};

const NALS: &str = include_str!("../../protocols/nals-arbeidsformer.toml");
const VILLIGE: &str = include_str!("../../protocols/nals-villige-b.toml");

fn nals() -> Protocol {
    Protocol::from_toml(NALS).expect("nals-arbeidsformer.toml is valid")
}

#[test]
fn the_shipped_protocols_are_valid() {
    let p = nals();
    assert_eq!(p.design, Design::A);
    assert_eq!(p.arms.len(), 4);
    assert_eq!(p.control_arm().map(|a| a.id.as_str()), Some("kontroll"));
    assert_eq!(p.unit.level, UnitLevel::OverordnetEnhet);
    assert_eq!(p.follow_up.pre_quarters, 8);
    assert_eq!(p.follow_up.post_quarters, 12);
    assert!(p.seed_matches(1, "nals-arbeidsformer-demo-wave-1"));
    assert!(p.seed_matches(2, "nals-arbeidsformer-demo-wave-2"));
    assert!(!p.seed_matches(1, "nals-arbeidsformer-demo-wave-2"));
    assert!(!p.seed_matches(3, "anything"));
    let b = Protocol::from_toml(VILLIGE).expect("nals-villige-b.toml is valid");
    assert_eq!(b.design, Design::B);
    assert!(b.eligibility.require_villig);
}

#[test]
fn the_hash_is_the_same_from_toml_and_from_its_canonical_json() {
    let p = nals();
    let again = Protocol::from_json(&p.canonical_json()).expect("canonical JSON parses");
    assert_eq!(p, again);
    assert_eq!(p.content_hash(), again.content_hash());
    assert_eq!(p.content_hash().len(), 64);
    // Any change is a different protocol.
    let mut changed = p.clone();
    changed.strata.min_size += 1;
    assert_ne!(p.content_hash(), changed.content_hash());
}

#[test]
fn canonical_json_has_sorted_keys_and_no_whitespace() {
    let json = nals().canonical_json();
    assert!(json.starts_with("{\"analysis\":{"), "{}", &json[..40]);
    // Re-serializing the parsed value compactly (serde_json sorts keys) changes nothing.
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value.to_string(), json);
}

#[test]
fn unknown_keys_and_bad_values_are_refused_with_their_place() {
    let typo = NALS.replace("min_size = 8", "minsize = 8");
    let err = Protocol::from_toml(&typo).expect_err("typo");
    assert!(err.to_string().contains("minsize"), "{err}");

    let bad_quarter = NALS.replace("from = \"2024K1\"", "from = \"2024K5\"");
    assert!(Protocol::from_toml(&bad_quarter).is_err());

    let two_controls = NALS.replace("id = \"digital\"", "id = \"digital\"\ncontrol = true");
    match Protocol::from_toml(&two_controls) {
        Err(ProtocolError::Invalid(problems)) => {
            assert!(
                problems
                    .iter()
                    .any(|p| p.field == "arms" && p.message.contains("exactly one"))
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }

    let b_without_villig = VILLIGE.replace("require_villig = true", "require_villig = false");
    match Protocol::from_toml(&b_without_villig) {
        Err(ProtocolError::Invalid(problems)) => {
            assert_eq!(problems[0].field, "eligibility.require_villig");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }

    let late_baseline = NALS.replace("to = \"2024K4\"", "to = \"2025K1\"");
    match Protocol::from_toml(&late_baseline) {
        Err(ProtocolError::Invalid(problems)) => assert_eq!(problems[0].field, "baseline.to"),
        other => panic!("expected Invalid, got {other:?}"),
    }

    let bad_seed = NALS.replace("33df759c", "33DF759C");
    match Protocol::from_toml(&bad_seed) {
        Err(ProtocolError::Invalid(problems)) => assert_eq!(problems[0].field, "seed.sha256[0]"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn firm(employees: u32, naering: &str) -> Firm {
    Firm {
        orgnr: Orgnr::from_prefix(97_476_067).expect("orgnr"),
        navn: None,
        fylke: "46".parse().expect("fylke"),
        kommunenummer: None,
        naeringskode: naering.parse::<Naeringskode>().expect("kode"),
        sektor: crate::domain::Sektor::Privat,
        antall_ansatte: employees,
        overordnet_enhet: None,
        villig: None,
        baseline: None::<BaselineDagsverk>,
        covariates: Default::default(),
    }
}

#[test]
fn eligibility_follows_the_reports_rule_and_says_why() {
    let p = nals();
    let baseline = |tapte: f64, mulige: f64| BaselineFacts {
        tapte,
        mulige,
        quarters: 4,
    };
    // 30 employees at 13 %: the first set.
    assert!(evaluate(&p, &firm(30, "87.101"), Some(&baseline(130.0, 1000.0))).is_empty());
    // 15 employees but 600 lost workdays a year: the second set.
    assert!(evaluate(&p, &firm(15, "87.101"), Some(&baseline(600.0, 3000.0))).is_empty());
    // 30 employees at 10 % and 100 lost days: neither.
    let why = evaluate(&p, &firm(30, "87.101"), Some(&baseline(100.0, 1000.0)));
    assert_eq!(why.len(), 1);
    assert_eq!(why[0].code, "any_of");
    assert!(why[0].message.contains("below 12"), "{}", why[0].message);
    // No statistics: excluded, and the reason says so.
    let why = evaluate(&p, &firm(30, "87.101"), None);
    assert!(
        why[0].message.contains("no baseline statistics"),
        "{}",
        why[0].message
    );

    let b = Protocol::from_toml(VILLIGE).expect("valid");
    let unwilling = evaluate(&b, &firm(80, "87.101"), None);
    assert_eq!(
        unwilling
            .iter()
            .map(|e| e.code.as_str())
            .collect::<Vec<_>>(),
        vec!["ikke_villig"]
    );
    let mut willing = firm(80, "87.101");
    willing.villig = Some(true);
    assert!(evaluate(&b, &willing, None).is_empty());
}

#[test]
fn baseline_facts_annualize_over_the_quarters_present() {
    let b = BaselineFacts {
        tapte: 300.0,
        mulige: 3000.0,
        quarters: 3,
    };
    assert_eq!(b.percent(), Some(10.0));
    assert_eq!(b.lost_per_year(), Some(400.0));
    let none = BaselineFacts {
        tapte: 0.0,
        mulige: 0.0,
        quarters: 0,
    };
    assert_eq!(none.percent(), None);
    assert_eq!(none.lost_per_year(), None);
}

/// The content hash of each shipped protocol equals the one `notebooks/protocol_hash.py` computes
/// from the TOML alone (tests/fixtures/protocol-hashes.txt).
#[test]
fn content_hashes_match_the_independent_python_computation() {
    let fixture = include_str!("../../tests/fixtures/protocol-hashes.txt");
    let mut checked = 0;
    for line in fixture.lines().filter(|l| !l.starts_with('#')) {
        let (hash, file) = line.split_once("  ").expect("`hash  file`");
        let text = match file {
            "protocols/nals-arbeidsformer.toml" => NALS,
            "protocols/nals-villige-b.toml" => VILLIGE,
            other => panic!("unknown protocol {other}"),
        };
        assert_eq!(
            Protocol::from_toml(text).expect("valid").content_hash(),
            hash,
            "{file}"
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
}

/// Issue 10, defects 5, 9 and 12: a window of 100000 quarters, an unimplemented confirmatory
/// estimator and `multiplicity = "none"` are refused, each naming its field.
#[test]
fn unimplemented_estimators_unsupported_multiplicity_and_huge_windows_are_refused() {
    let cases = [
        (
            "post_quarters = 12",
            "post_quarters = 100000",
            "follow_up.post_quarters",
            "out of range",
        ),
        (
            "pre_quarters = 8",
            "pre_quarters = 100000",
            "follow_up.pre_quarters",
            "out of range",
        ),
        (
            r#"confirmatory = ["itt_ancova", "did_twfe"]"#,
            r#"confirmatory = ["itt_ancova", "cace_iv"]"#,
            "analysis.confirmatory[1]",
            "cace_iv is not implemented yet",
        ),
        (
            r#"confirmatory = ["itt_ancova", "did_twfe"]"#,
            r#"confirmatory = ["ri"]"#,
            "analysis.confirmatory[0]",
            "ri is not implemented yet",
        ),
        (
            r#"multiplicity = "holm""#,
            r#"multiplicity = "none""#,
            "analysis.multiplicity",
            "`none` is not supported",
        ),
    ];
    for (from, to, field, says) in cases {
        assert!(NALS.contains(from), "{from}");
        let text = NALS.replace(from, to);
        match Protocol::from_toml(&text) {
            Err(ProtocolError::Invalid(problems)) => assert!(
                problems
                    .iter()
                    .any(|p| p.field == field && p.message.contains(says)),
                "{to}: {problems:?}"
            ),
            other => panic!("{to}: {other:?}"),
        }
    }
}

fn problems_of(text: &str) -> Vec<ProtocolProblem> {
    match Protocol::from_toml(text) {
        Err(ProtocolError::Invalid(problems)) => problems,
        other => panic!("expected invalid, got {other:?}"),
    }
}

fn with_outcomes(secondary: &str, survey: &str) -> String {
    let from = "secondary = [\"arbeidsmiljo_indeks\"]\nsurvey = [\"arbeidsmiljo_indeks\"]";
    assert!(NALS.contains(from));
    NALS.replace(from, &format!("secondary = {secondary}\nsurvey = {survey}"))
}

/// Issue 10, defect 9: every secondary outcome a protocol names is estimated or a declared survey
/// measure; the ones ia-rct knows but does not estimate are refused with why, an unknown one with
/// the known names, each at `outcomes.secondary[i]`.
#[test]
fn secondary_outcomes_without_an_estimate_are_refused_with_the_reason() {
    // The outcomes the shipped protocol used to name.
    let text = with_outcomes(
        r#"["tapte_dagsverk", "langtidsfravar_prosent", "arbeidsmiljo_indeks"]"#,
        r#"["arbeidsmiljo_indeks"]"#,
    );
    let problems = problems_of(&text);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].field, "outcomes.secondary[0]");
    assert!(
        problems[0]
            .message
            .contains("`tapte_dagsverk` is not estimated in this version"),
        "{problems:?}"
    );
    assert_eq!(problems[1].field, "outcomes.secondary[1]");
    assert!(
        problems[1].message.contains("duration classes"),
        "{problems:?}"
    );

    // A survey measure named without declaring it as one, or a name ia-rct does not know.
    for name in ["arbeidsmiljo_indeks", "sykefravær_prosent"] {
        let problems = problems_of(&with_outcomes(&format!("[\"{name}\"]"), "[]"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "outcomes.secondary[0]");
        let m = &problems[0].message;
        assert!(m.contains(&format!("unknown outcome `{name}`")), "{m}");
        assert!(
            m.contains("sykefravar_prosent")
                && m.contains("tapte_dagsverk")
                && m.contains("langtidsfravar_prosent")
                && m.contains("outcomes.survey"),
            "{m}"
        );
    }
    // The primary again, or a name twice.
    let problems = problems_of(&with_outcomes(r#"["sykefravar_prosent"]"#, "[]"));
    assert!(problems[0].message.contains("is the primary outcome"));
    let problems = problems_of(&with_outcomes(
        r#"["trivsel", "trivsel"]"#,
        r#"["trivsel"]"#,
    ));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "outcomes.secondary[1]");
    // A control character in an unknown name is shown escaped.
    let problems = problems_of(&with_outcomes("[\"a\\u202Eb\"]", "[]"));
    assert!(problems[0].message.contains("a\\u{202e}b"), "{problems:?}");
}

/// A survey measure is declared in `outcomes.survey` and also listed in `outcomes.secondary`;
/// it names a survey `maal`, not an outcome of NAV's statistics.
#[test]
fn survey_measures_are_declared_in_outcomes_survey() {
    let ok = with_outcomes(
        r#"["trivsel", "partssamarbeid"]"#,
        r#"["partssamarbeid", "trivsel"]"#,
    );
    let p = Protocol::from_toml(&ok).expect("two declared survey measures");
    assert_eq!(p.outcomes.survey, ["partssamarbeid", "trivsel"]);
    let none = with_outcomes("[]", "[]");
    Protocol::from_toml(&none).expect("no secondary outcome");

    let cases = [
        (
            r#"["trivsel"]"#,
            r#"["trivsel", "ledelse"]"#,
            "outcomes.survey[1]",
            "in outcomes.secondary as well",
        ),
        (
            r#"[]"#,
            r#"["tapte_dagsverk"]"#,
            "outcomes.survey[0]",
            "not from a survey",
        ),
        (
            r#"[" trivsel"]"#,
            r#"[" trivsel"]"#,
            "outcomes.survey[0]",
            "no surrounding spaces",
        ),
        (
            "[\"a\\u200Bb\"]",
            "[\"a\\u200Bb\"]",
            "outcomes.survey[0]",
            "format characters",
        ),
        (
            r#"["trivsel"]"#,
            r#"["trivsel", "trivsel"]"#,
            "outcomes.survey[1]",
            "listed twice",
        ),
    ];
    for (secondary, survey, field, says) in cases {
        let problems = problems_of(&with_outcomes(secondary, survey));
        assert!(
            problems
                .iter()
                .any(|p| p.field == field && p.message.contains(says)),
            "{secondary} / {survey}: {problems:?}"
        );
    }
    let long = "x".repeat(MAX_SURVEY_NAME_CHARS + 1);
    let problems = problems_of(&with_outcomes(
        &format!("[\"{long}\"]"),
        &format!("[\"{long}\"]"),
    ));
    assert!(problems.iter().any(|p| p.field == "outcomes.survey[0]"));
    // An unknown name in the message is cut at 64 characters.
    let problems = problems_of(&with_outcomes(&format!("[\"{long}\"]"), "[]"));
    assert!(
        problems[0].message.len() < 700,
        "{}",
        problems[0].message.len()
    );
}
