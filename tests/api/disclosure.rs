//! Disclosure over HTTP: no hidden count of a response can be derived from what it shows
//! (complementary suppression), and a fylke's own small firms are masked as NAV masks them.

use ia_rct::domain::Role;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, get_as, make_token, test_register};
use crate::on_both_backends;

/// The counts of a response with the relations a reader knows among them.
#[derive(Default)]
struct System {
    /// (where, true value, shown value).
    cells: Vec<(String, u64, Option<u64>)>,
    /// Each `Σ coefficient · cell = 0`.
    rows: Vec<Vec<(usize, f64)>>,
}

impl System {
    fn cell(&mut self, path: String, full: &Value, shown: &Value) -> usize {
        let value = full.as_u64().unwrap_or_else(|| panic!("{path}: {full}"));
        assert!(
            !shown.is_null(),
            "{path}: a hidden count is marked, never a bare null"
        );
        let seen = if shown == "masked" {
            None
        } else {
            Some(shown.as_u64().unwrap_or_else(|| panic!("{path}: {shown}")))
        };
        if let Some(s) = seen {
            assert_eq!(s, value, "{path}: a shown count is the true count");
        }
        self.cells.push((path, value, seen));
        self.cells.len() - 1
    }

    /// `total = Σ parts`, added only where it holds (a reader who assumes it is then right).
    fn sum(&mut self, total: usize, parts: &[usize]) {
        let s: u64 = parts.iter().map(|&p| self.cells[p].1).sum();
        if s == self.cells[total].1 {
            let mut row = vec![(total, 1.0)];
            row.extend(parts.iter().map(|&p| (p, -1.0)));
            self.rows.push(row);
        }
    }

    /// The hidden cells whose value follows from the shown ones: solve the published linear
    /// system for the hidden cells (Gauss-Jordan); a hidden cell is determined when a row of the
    /// reduced system has it alone.
    fn derivable(&self) -> Vec<String> {
        let hidden: Vec<usize> = (0..self.cells.len())
            .filter(|&c| self.cells[c].2.is_none())
            .collect();
        let w = hidden.len();
        let mut m: Vec<Vec<f64>> = self
            .rows
            .iter()
            .map(|row| {
                let mut r = vec![0.0; w + 1];
                for &(c, k) in row {
                    match hidden.iter().position(|&h| h == c) {
                        Some(j) => r[j] += k,
                        None => r[w] -= k * self.cells[c].1 as f64,
                    }
                }
                r
            })
            .collect();
        let mut rank = 0;
        for col in 0..w {
            let Some(p) =
                (rank..m.len()).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            else {
                break;
            };
            if m[p][col].abs() < 1e-9 {
                continue;
            }
            m.swap(rank, p);
            let pivot = m[rank][col];
            m[rank].iter_mut().for_each(|x| *x /= pivot);
            let prow = m[rank].clone();
            for (i, row) in m.iter_mut().enumerate() {
                if i != rank && row[col].abs() > 1e-12 {
                    let f = row[col];
                    row.iter_mut().zip(&prow).for_each(|(x, y)| *x -= f * y);
                }
            }
            rank += 1;
        }
        let mut out = Vec::new();
        for row in m.iter().take(rank) {
            let nz: Vec<usize> = (0..w).filter(|&j| row[j].abs() > 1e-9).collect();
            if let [j] = nz[..] {
                let (path, value, _) = &self.cells[hidden[j]];
                out.push(format!("{path} = {} (true {value})", row[w] / row[j]));
            }
        }
        out
    }

    fn hidden(&self) -> usize {
        self.cells.iter().filter(|c| c.2.is_none()).count()
    }
}

/// The balance response's counts and their sums: stratum and arm totals, `n + missing` per
/// covariate and arm, `n_used = n_treatment + n_control`, the CONSORT sums, and CONSORT's
/// randomized count per arm against the table's arm total.
fn balance_system(full: &Value, shown: &Value) -> System {
    let mut s = System::default();
    let (ft, st) = (&full["table"], &shown["table"]);
    let arms: Vec<String> = ft["arms"]
        .as_array()
        .expect("arms")
        .iter()
        .map(|a| a.as_str().expect("arm").to_owned())
        .collect();
    let arm_totals: Vec<usize> = (0..arms.len())
        .map(|a| {
            s.cell(
                format!("arm_totals[{a}]"),
                &ft["arm_totals"][a],
                &st["arm_totals"][a],
            )
        })
        .collect();
    let mut by_arm = vec![Vec::new(); arms.len()];
    for (i, stratum) in ft["strata"].as_array().expect("strata").iter().enumerate() {
        let cells: Vec<usize> = (0..arms.len())
            .map(|a| {
                let c = s.cell(
                    format!("strata[{i}].counts[{a}]"),
                    &stratum["counts"][a],
                    &st["strata"][i]["counts"][a],
                );
                by_arm[a].push(c);
                c
            })
            .collect();
        let total = s.cell(
            format!("strata[{i}].total"),
            &stratum["total"],
            &st["strata"][i]["total"],
        );
        s.sum(total, &cells);
    }
    for (a, parts) in by_arm.iter().enumerate() {
        s.sum(arm_totals[a], parts);
    }
    for (i, cov) in ft["covariates"]
        .as_array()
        .expect("covariates")
        .iter()
        .enumerate()
    {
        for a in 0..arms.len() {
            let path = format!("covariates[{i}].arms[{a}]");
            let n = s.cell(
                format!("{path}.n"),
                &cov["arms"][a]["n"],
                &st["covariates"][i]["arms"][a]["n"],
            );
            let missing = s.cell(
                format!("{path}.missing"),
                &cov["arms"][a]["missing"],
                &st["covariates"][i]["arms"][a]["missing"],
            );
            s.sum(arm_totals[a], &[n, missing]);
        }
    }
    let mut controls = Vec::new();
    for (i, test) in ft["omnibus"]
        .as_array()
        .expect("omnibus")
        .iter()
        .enumerate()
    {
        let cell = |s: &mut System, k: &str| {
            s.cell(format!("omnibus[{i}].{k}"), &test[k], &st["omnibus"][i][k])
        };
        let nt = cell(&mut s, "n_treatment");
        let nc = cell(&mut s, "n_control");
        let used = cell(&mut s, "n_used");
        s.sum(used, &[nt, nc]);
        if let Some(&first) = controls.first() {
            s.sum(first, &[nc]);
        }
        controls.push(nc);
    }
    let (fc, sc) = (&full["consort"], &shown["consort"]);
    let assessed = s.cell("consort.assessed".into(), &fc["assessed"], &sc["assessed"]);
    let eligible = s.cell("consort.eligible".into(), &fc["eligible"], &sc["eligible"]);
    let not_randomized = s.cell(
        "consort.not_randomized".into(),
        &fc["not_randomized"],
        &sc["not_randomized"],
    );
    let mut randomized = Vec::new();
    for (arm, n) in fc["randomized_per_arm"].as_object().expect("arms") {
        let c = s.cell(
            format!("consort.randomized_per_arm.{arm}"),
            n,
            &sc["randomized_per_arm"][arm],
        );
        if let Some(a) = arms.iter().position(|x| x == arm) {
            s.sum(arm_totals[a], &[c]);
        }
        randomized.push(c);
    }
    let mut excluded = Vec::new();
    for (code, n) in fc["excluded_by_reason"].as_object().expect("reasons") {
        excluded.push(s.cell(
            format!("consort.excluded_by_reason.{code}"),
            n,
            &sc["excluded_by_reason"][code],
        ));
    }
    let mut parts = randomized.clone();
    parts.push(not_randomized);
    s.sum(eligible, &parts);
    let mut parts = excluded.clone();
    parts.push(eligible);
    s.sum(assessed, &parts);
    s
}

/// A researcher's balance response: every hidden count stays hidden under the linear algebra of
/// its margins (before complementary suppression, a stratum with one small cell gave it away).
async fn no_hidden_count_of_the_balance_response_can_be_derived(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("derive", "enrolling", 0).await;
    app.enroll_csv("derive", &test_register(600, 8), 201).await;
    app.randomize("derive").await;
    let full = app
        .direktorat_call(Method::GET, "/v1/trials/derive/balance", None, 200)
        .await;
    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    let shown = get_as(&app, &forsker.secret, "/v1/trials/derive/balance")
        .await
        .1;
    let system = balance_system(&full, &shown);
    assert!(system.hidden() > 0, "the fixture has small cells");
    assert!(
        system.rows.len() > 10,
        "the reader knows the table's sums ({} relations)",
        system.rows.len()
    );
    let derived = system.derivable();
    assert!(derived.is_empty(), "hidden counts derivable: {derived:?}");
    // The directorate's view is the whole system with nothing hidden.
    assert_eq!(balance_system(&full, &full).hidden(), 0);
}

/// A register of 40 firms where three firms are small in different ways, and NAV statistics for
/// the protocol's baseline window (2024K1-K4).
fn small_firms_fixture() -> (String, String, [(String, String); 3]) {
    let csv = test_register(40, 3);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().expect("header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (orgnr, fylke, ansatte) = (col("orgnr"), col("fylke"), col("antall_ansatte"));
    let mut rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let mut picked = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if row[ansatte].parse::<u32>().is_ok_and(|n| n >= 5) && picked.len() < 3 {
            picked.push(i);
        }
    }
    assert_eq!(picked.len(), 3);
    // Firm 0: the register counts 3 employees and there are no statistics: masked.
    let mut small: Vec<String> = rows[picked[0]].iter().map(str::to_owned).collect();
    small[ansatte] = "3".into();
    rows[picked[0]] = csv::StringRecord::from(small);
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).expect("write");
    for row in &rows {
        writer.write_record(row).expect("write");
    }
    let register = String::from_utf8(writer.into_inner().expect("csv")).expect("utf8");
    // Firm 1: fewer than 5 persons in every quarter: masked. Firm 2: 3 persons in two quarters
    // and 12 in two: the window is not masked (NAV masks a window when all quarters are < 5).
    let mut stats = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
    for q in 1..=4 {
        stats.push_str(&format!("{},2024,{q},3.5,60,3\n", &rows[picked[1]][orgnr]));
        let persons = if q <= 2 { 3 } else { 12 };
        stats.push_str(&format!(
            "{},2024,{q},7.25,200,{persons}\n",
            &rows[picked[2]][orgnr]
        ));
    }
    let firm = |i: usize| (rows[i][orgnr].to_owned(), rows[i][fylke].to_owned());
    (
        register,
        stats,
        [firm(picked[0]), firm(picked[1]), firm(picked[2])],
    )
}

/// A fylke's enrollment list masks the baseline of a firm with fewer than 5 persons as NAV's
/// Fia does (0.0 and a flag), never as a bare null; the directorate keeps the true values.
async fn a_fylke_sees_its_small_firms_baseline_masked_as_nav_masks_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (register, stats, firms) = small_firms_fixture();
    app.statistics_csv(stats, 201).await;
    app.trial_in_state("small", "enrolling", 0).await;
    app.enroll_csv("small", &register, 201).await;
    let full = app
        .direktorat_call(Method::GET, "/v1/trials/small/enrollment", None, 200)
        .await;
    let find = |list: &Value, orgnr: &str| -> Value {
        list["firms"]
            .as_array()
            .expect("firms")
            .iter()
            .find(|f| f["orgnr"] == orgnr)
            .cloned()
            .unwrap_or_else(|| panic!("{orgnr} listed"))
    };
    for (orgnr, _) in &firms {
        let f = find(&full, orgnr);
        assert_eq!(f["baseline_er_maskert"], false, "{f}");
        assert!(f.get("baseline_masked_reason").is_none(), "{f}");
        let b = f["baseline"].as_array().expect("a baseline");
        assert!(b[1].as_f64().is_some_and(|m| m > 0.0), "{f}");
    }
    assert_eq!(
        find(&full, &firms[1].0)["baseline"],
        serde_json::json!([3.5 * 4.0, 240.0])
    );
    for (i, (orgnr, fylke)) in firms.iter().enumerate() {
        let token = make_token(
            app.store.as_ref(),
            &format!("NAV {fylke} {i}"),
            Role::Fylke,
            Some(fylke),
        )
        .await;
        let list = get_as(&app, &token.secret, "/v1/trials/small/enrollment")
            .await
            .1;
        let f = find(&list, orgnr);
        if i < 2 {
            assert_eq!(f["baseline"], serde_json::json!([0.0, 0.0]), "{f}");
            assert_eq!(f["baseline_er_maskert"], true, "{f}");
            assert_eq!(f["baseline_masked_reason"], "fewer than 5 persons", "{f}");
        } else {
            assert_eq!(f["baseline"], find(&full, orgnr)["baseline"], "{f}");
            assert_eq!(f["baseline_er_maskert"], false, "{f}");
        }
        // No masked value reads as "not applicable": a null baseline is never a masked one.
        for firm in list["firms"].as_array().expect("firms") {
            if firm["baseline_er_maskert"] == true {
                assert!(firm["baseline"].is_array(), "{firm}");
            }
        }
    }
    let doc = app
        .direktorat_call(Method::GET, "/openapi.json", None, 200)
        .await;
    let props = &doc["components"]["schemas"]["EnrolledFirm"];
    assert!(
        props.to_string().contains("baseline_er_maskert"),
        "documented: {props}"
    );
}

on_both_backends!(
    no_hidden_count_of_the_balance_response_can_be_derived,
    a_fylke_sees_its_small_firms_baseline_masked_as_nav_masks_it
);
