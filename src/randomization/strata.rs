//! From units' facts to stratum keys, with the deterministic rule for merging small strata
//! (`protocols/RANDOMIZATION.md` §3).

use std::collections::BTreeMap;

use crate::domain::{Bransje, FylkeCode, Sektor};
use crate::protocol::{Strata, StratumVariable};

/// What stratification needs to know about one unit (a firm, or a cluster aggregated by
/// [`aggregate_cluster`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitFacts {
    /// The unit's id.
    pub id: String,
    /// Its fylke.
    pub fylke: FylkeCode,
    /// Its bransje group.
    pub bransje: Bransje,
    /// Its sector.
    pub sektor: Sektor,
    /// Employees.
    pub employees: u64,
    /// Baseline sick-leave percent, `100 * tapte / mulige` over the baseline window, if known.
    pub baseline_percent: Option<f64>,
}

/// Stratum keys for a set of units.
#[derive(Debug, Clone, PartialEq)]
pub struct Stratification {
    /// `(unit id, final stratum key)`, sorted by id.
    pub keys: Vec<(String, String)>,
    /// The baseline cut points used (given, or computed from quantiles).
    pub baseline_cuts: Vec<f64>,
}

/// The empirical quantile of sorted `x` at probability `q`, linear interpolation between order
/// statistics (R's type 7, NumPy's default): with `h = (n - 1) * q` and `lo = ⌊h⌋`,
/// `x[lo] + (h - lo) * (x[lo + 1] - x[lo])`.
pub fn quantile_type7(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q;
    let lo = h.floor();
    // `h` is within `0..=n-1`, so the index conversions are exact.
    let lo_index = lo as usize;
    let hi_index = (lo_index + 1).min(n - 1);
    let (a, b) = (sorted.get(lo_index)?, sorted.get(hi_index)?);
    Some(a + (h - lo) * (b - a))
}

/// The size band label of `employees` for ascending `cuts`: `0-49`, `50-199`, `200+`.
pub fn size_band(employees: u64, cuts: &[u32]) -> String {
    let index = cuts.iter().filter(|c| u64::from(**c) <= employees).count();
    let low = if index == 0 {
        0
    } else {
        u64::from(cuts[index - 1])
    };
    match cuts.get(index) {
        Some(next) => format!("{low}-{}", u64::from(*next) - 1),
        None => format!("{low}+"),
    }
}

/// The baseline band label: `b1` below the first cut, `b2` from the first cut to below the second,
/// and so on; `ukjent` when the baseline is unknown.
pub fn baseline_band(percent: Option<f64>, cuts: &[f64]) -> String {
    match percent {
        None => "ukjent".to_owned(),
        Some(p) => format!("b{}", cuts.iter().filter(|c| **c <= p).count() + 1),
    }
}

/// The full (unmerged) key components of a unit, in the order of `spec.by`.
fn components(spec: &Strata, unit: &UnitFacts, baseline_cuts: &[f64]) -> Vec<String> {
    spec.by
        .iter()
        .map(|v| {
            let value = match v {
                StratumVariable::Fylke => unit.fylke.as_str().to_owned(),
                StratumVariable::Bransje => unit.bransje.as_str().to_owned(),
                StratumVariable::Sektor => unit.sektor.as_str().to_owned(),
                StratumVariable::Size => size_band(unit.employees, &spec.size_cuts),
                StratumVariable::Baseline => baseline_band(unit.baseline_percent, baseline_cuts),
            };
            format!("{}={value}", v.as_str())
        })
        .collect()
}

/// Joins components, with `*` for the dropped trailing ones; no variables at all gives `alle`.
fn key(components: &[String], level: usize) -> String {
    if components.is_empty() {
        return "alle".to_owned();
    }
    components
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < level {
                c.clone()
            } else {
                format!("{}=*", c.split('=').next().unwrap_or_default())
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Assigns every unit its stratum.
///
/// Merging small strata, bottom-up: at the full level (all `d` variables), strata with at least
/// `min_size` units are final. The units left over are grouped by their first `d - 1` components
/// (the last one written `*`); groups of at least `min_size` are final; and so on, dropping one more
/// trailing variable per level. What is left after level 1 forms one stratum with every component
/// `*`, whatever its size.
pub fn stratify(spec: &Strata, units: &[UnitFacts]) -> Stratification {
    let baseline_cuts = if spec.baseline_quantiles.is_empty() {
        spec.baseline_cuts.clone()
    } else {
        let mut known: Vec<f64> = units.iter().filter_map(|u| u.baseline_percent).collect();
        known.sort_by(f64::total_cmp);
        spec.baseline_quantiles
            .iter()
            .filter_map(|q| quantile_type7(&known, *q))
            .collect()
    };

    let depth = spec.by.len();
    let mut pending: Vec<(&str, Vec<String>)> = units
        .iter()
        .map(|u| (u.id.as_str(), components(spec, u, &baseline_cuts)))
        .collect();
    let mut keys: Vec<(String, String)> = Vec::with_capacity(units.len());
    for level in (1..=depth).rev() {
        let mut groups: BTreeMap<String, Vec<(&str, Vec<String>)>> = BTreeMap::new();
        for (id, parts) in pending {
            groups
                .entry(key(&parts, level))
                .or_default()
                .push((id, parts));
        }
        pending = Vec::new();
        for (group_key, members) in groups {
            if members.len() >= spec.min_size as usize {
                keys.extend(
                    members
                        .into_iter()
                        .map(|(id, _)| (id.to_owned(), group_key.clone())),
                );
            } else {
                pending.extend(members);
            }
        }
    }
    keys.extend(
        pending
            .into_iter()
            .map(|(id, parts)| (id.to_owned(), key(&parts, 0))),
    );
    keys.sort();
    Stratification {
        keys,
        baseline_cuts,
    }
}

/// One firm's facts for cluster aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberFacts {
    /// The firm's orgnr (9 digits).
    pub orgnr: String,
    /// Its fylke.
    pub fylke: FylkeCode,
    /// Its bransje.
    pub bransje: Bransje,
    /// Its sector.
    pub sektor: Sektor,
    /// Employees.
    pub employees: u64,
    /// Baseline-window sums `(tapte, mulige)`, if known.
    pub dagsverk: Option<(f64, f64)>,
}

/// The most frequent value, ties to the smallest (by `Ord`).
fn mode<T: Ord + Copy>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: BTreeMap<T, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|(_, c)| *c == best).map(|(v, _)| v)
}

/// A cluster's facts from its member firms (`protocols/RANDOMIZATION.md` §2): fylke, bransje and
/// sektor are the most frequent among the members (ties to the smallest code or name), employees
/// are summed, and the baseline is `100 * Σ tapte / Σ mulige` over the members with statistics,
/// summed in ascending orgnr order. `None` for no members.
pub fn aggregate_cluster(id: String, members: &[MemberFacts]) -> Option<UnitFacts> {
    let mut sorted: Vec<&MemberFacts> = members.iter().collect();
    sorted.sort_by(|a, b| a.orgnr.cmp(&b.orgnr));
    let fylke = mode(sorted.iter().map(|m| m.fylke))?;
    let bransje = mode(sorted.iter().map(|m| m.bransje.as_str()))?;
    let sektor = mode(sorted.iter().map(|m| m.sektor.as_str()))?;
    let bransje = sorted
        .iter()
        .find(|m| m.bransje.as_str() == bransje)?
        .bransje;
    let sektor = sorted.iter().find(|m| m.sektor.as_str() == sektor)?.sektor;
    let employees = sorted.iter().map(|m| m.employees).sum();
    let mut tapte = 0.0;
    let mut mulige = 0.0;
    let mut any = false;
    for (t, m) in sorted.iter().filter_map(|m| m.dagsverk) {
        tapte += t;
        mulige += m;
        any = true;
    }
    let baseline_percent = (any && mulige > 0.0).then(|| 100.0 * tapte / mulige);
    Some(UnitFacts {
        id,
        fylke,
        bransje,
        sektor,
        employees,
        baseline_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(by: Vec<StratumVariable>, min_size: u32) -> Strata {
        Strata {
            by,
            size_cuts: vec![50, 200],
            baseline_cuts: vec![8.0, 12.0],
            baseline_quantiles: vec![],
            min_size,
        }
    }

    fn unit(id: &str, fylke: &str, employees: u64, baseline: Option<f64>) -> UnitFacts {
        UnitFacts {
            id: id.to_owned(),
            fylke: fylke.parse().expect("fylke"),
            bransje: Bransje::AnnenNaering,
            sektor: Sektor::Privat,
            employees,
            baseline_percent: baseline,
        }
    }

    #[test]
    fn bands_have_readable_labels() {
        assert_eq!(size_band(0, &[50, 200]), "0-49");
        assert_eq!(size_band(49, &[50, 200]), "0-49");
        assert_eq!(size_band(50, &[50, 200]), "50-199");
        assert_eq!(size_band(5000, &[50, 200]), "200+");
        assert_eq!(size_band(7, &[]), "0+");
        assert_eq!(baseline_band(Some(7.99), &[8.0, 12.0]), "b1");
        assert_eq!(baseline_band(Some(8.0), &[8.0, 12.0]), "b2");
        assert_eq!(baseline_band(Some(30.0), &[8.0, 12.0]), "b3");
        assert_eq!(baseline_band(None, &[8.0]), "ukjent");
    }

    #[test]
    fn quantiles_follow_type_7() {
        // R: quantile(c(1, 2, 4, 8), c(0.25, 0.5, 0.9), type = 7) = 1.75 3.00 6.80
        let x = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile_type7(&x, 0.25), Some(1.75));
        assert_eq!(quantile_type7(&x, 0.5), Some(3.0));
        assert!((quantile_type7(&x, 0.9).expect("q") - 6.8).abs() < 1e-12);
        assert_eq!(quantile_type7(&[], 0.5), None);
    }

    #[test]
    fn small_strata_merge_by_dropping_trailing_variables() {
        use StratumVariable::{Baseline, Fylke, Size};
        let mut units = Vec::new();
        // 46 / 0-49 / b1: 4 units (a full stratum at min_size 3).
        for i in 0..4 {
            units.push(unit(&format!("a{i}"), "46", 10, Some(5.0)));
        }
        // 46 / 0-49 / b3: 1 unit, 46 / 50-199 / b2: 1 unit, 46 / 200+ / b2: 1 unit → merge at
        // fylke level: 3 units.
        units.push(unit("b0", "46", 10, Some(20.0)));
        units.push(unit("c0", "46", 60, Some(9.0)));
        units.push(unit("d0", "46", 300, Some(9.0)));
        // 03: two lone units → everything-merged stratum.
        units.push(unit("e0", "03", 10, Some(5.0)));
        units.push(unit("e1", "03", 300, None));
        let result = stratify(&spec(vec![Fylke, Size, Baseline], 3), &units);
        let get = |id: &str| {
            result
                .keys
                .iter()
                .find(|(u, _)| u == id)
                .map(|(_, k)| k.as_str())
                .expect("unit")
        };
        assert_eq!(get("a0"), "fylke=46|size=0-49|baseline=b1");
        assert_eq!(get("b0"), "fylke=46|size=*|baseline=*");
        assert_eq!(get("c0"), "fylke=46|size=*|baseline=*");
        assert_eq!(get("d0"), "fylke=46|size=*|baseline=*");
        assert_eq!(get("e0"), "fylke=*|size=*|baseline=*");
        assert_eq!(get("e1"), "fylke=*|size=*|baseline=*");
    }

    #[test]
    fn no_variables_gives_one_stratum() {
        let result = stratify(&spec(vec![], 5), &[unit("a", "46", 1, None)]);
        assert_eq!(result.keys, vec![("a".to_owned(), "alle".to_owned())]);
    }

    #[test]
    fn clusters_aggregate_by_mode_sum_and_ratio_of_sums() {
        let member = |orgnr: &str, fylke: &str, e: u64, d: Option<(f64, f64)>| MemberFacts {
            orgnr: orgnr.to_owned(),
            fylke: fylke.parse().expect("fylke"),
            bransje: Bransje::AnnenNaering,
            sektor: Sektor::Kommunal,
            employees: e,
            dagsverk: d,
        };
        let facts = aggregate_cluster(
            "K1".into(),
            &[
                member("3", "46", 10, Some((5.0, 100.0))),
                member("1", "03", 20, Some((15.0, 100.0))),
                member("2", "46", 30, None),
            ],
        )
        .expect("facts");
        assert_eq!(facts.fylke.as_str(), "46");
        assert_eq!(facts.employees, 60);
        assert_eq!(facts.baseline_percent, Some(10.0));
        // A tie goes to the smallest code.
        let tie = aggregate_cluster(
            "K2".into(),
            &[member("1", "46", 1, None), member("2", "03", 1, None)],
        )
        .expect("facts");
        assert_eq!(tie.fylke.as_str(), "03");
        assert_eq!(tie.baseline_percent, None);
    }
}
