//! Complementary suppression: after the small cells of a table are hidden (primary suppression),
//! hide enough further cells that no hidden cell can be worked out from what is shown.
//!
//! A table is a list of non-negative integer cells and linear constraints among them that a
//! reader knows (a stratum total is the sum of its arm counts, `eligible = randomized +
//! not_randomized`, `assigned = with_post_data + no_post_data`). Once the shown cells are put into
//! the constraints, the hidden cells satisfy `A_H x_H = b`. A hidden cell `h` is worked out exactly
//! when the unit vector `e_h` lies in the row space of `A_H`; in the reduced row echelon form of
//! `[A_H | b]` (exact, over the rationals) that is a row with a single non-zero coefficient.
//!
//! A reader also knows bounds: every cell is `>= 0`, a small hidden cell is below the threshold,
//! and (conservatively) a reader is assumed to tell a small hidden cell from a large one, so a
//! large hidden cell is `>= min`. [`exposed`] propagates these bounds through the constraints and
//! through the echelon rows; a hidden cell whose interval closes to a single integer is exposed
//! too (two hidden cells of at most 4 that sum to 8 are both 4; hidden cells that sum to 0 are
//! all 0, which is how a shown zero beside a hidden cell gives it away).
//!
//! [`protect`] repeats: find an exposed cell, hide one more shown cell in a constraint with it
//! (the smallest non-zero inner cell, else the smallest non-zero margin; a zero only as a last
//! resort), until no hidden cell is exposed.

use serde_json::{Value, json};

use crate::estimate::Attrition;

/// A table of count cells and the linear constraints a reader knows hold among them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    values: Vec<u64>,
    margin: Vec<bool>,
    withheld: Vec<bool>,
    constraints: Vec<Vec<(usize, i64)>>,
}

/// Why a cell is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// Shown.
    No,
    /// Below the threshold (primary suppression).
    Primary,
    /// Shown on its own merits, hidden so that a primary cell cannot be derived.
    Complementary,
}

impl Hidden {
    /// True unless shown.
    pub fn is_hidden(self) -> bool {
        self != Hidden::No
    }
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an inner cell (a count that is part of a sum) and returns its index.
    pub fn cell(&mut self, value: usize) -> usize {
        self.push(value, false)
    }

    /// Adds a margin (a total of other cells) and returns its index. Margins are hidden as
    /// complements only when no inner cell will do.
    pub fn margin(&mut self, value: usize) -> usize {
        self.push(value, true)
    }

    fn push(&mut self, value: usize, margin: bool) -> usize {
        self.values.push(u64::try_from(value).unwrap_or(u64::MAX));
        self.margin.push(margin);
        self.withheld.push(false);
        self.values.len() - 1
    }

    /// Marks a cell as hidden from the start for a reason of its own (a count hidden with a
    /// result it belongs to), whatever its size.
    pub fn withhold(&mut self, cell: usize) {
        if let Some(w) = self.withheld.get_mut(cell) {
            *w = true;
        }
    }

    /// The number of cells.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True if the table has no cells.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The constraints, each `Σ coefficient · cell = 0`.
    pub fn constraints(&self) -> &[Vec<(usize, i64)>] {
        &self.constraints
    }

    /// The cells' values.
    pub fn values(&self) -> &[u64] {
        &self.values
    }

    /// Declares `total = Σ parts`.
    pub fn sum(&mut self, total: usize, parts: &[usize]) {
        let mut row = vec![(total, 1)];
        row.extend(parts.iter().map(|&p| (p, -1)));
        self.constraints.push(row);
    }

    /// Declares `a = b` (the same count published twice).
    pub fn equal(&mut self, a: usize, b: usize) {
        if a != b {
            self.constraints.push(vec![(a, 1), (b, -1)]);
        }
    }
}

/// Rules of a table's masking: cells below `min` are small; `hide_zero` says whether zeros are
/// hidden with them (the balance table) or shown (attrition, where 0 is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Cells below this are hidden.
    pub min: u64,
    /// Whether a zero is hidden too.
    pub hide_zero: bool,
}

impl Rules {
    /// NAV's rule: below 5 hidden, 0 shown.
    pub const NAV: Rules = Rules {
        min: 5,
        hide_zero: false,
    };

    fn small(&self, v: u64) -> bool {
        v < self.min && (v > 0 || self.hide_zero)
    }

    /// What a reader knows of a hidden cell before looking at the constraints.
    fn prior(&self, v: u64) -> (f64, f64) {
        if v < self.min {
            let lo = if self.hide_zero || v == 0 { 0.0 } else { 1.0 };
            (lo, (self.min.saturating_sub(1)) as f64)
        } else {
            (self.min as f64, f64::INFINITY)
        }
    }
}

/// Primary and then complementary suppression of `table`; one entry per cell.
pub fn protect(table: &Table, rules: Rules) -> Vec<Hidden> {
    let mut state: Vec<Hidden> = table
        .values
        .iter()
        .zip(&table.withheld)
        .map(|(&v, &w)| {
            if w || rules.small(v) {
                Hidden::Primary
            } else {
                Hidden::No
            }
        })
        .collect();
    // Each round hides one more cell, so this ends.
    for _ in 0..=table.len() {
        let hidden: Vec<bool> = state.iter().map(|h| h.is_hidden()).collect();
        let exposed_now = exposed(table, &hidden, rules);
        if exposed_now.is_empty() {
            break;
        }
        match complement(table, &hidden, &exposed_now, rules) {
            Some(c) => state[c] = Hidden::Complementary,
            None => break,
        }
    }
    state
}

/// How many candidates [`complement`] tries by hiding them.
const TRIED: usize = 12;

/// The shown cell to hide next. Candidates are the shown cells in a constraint with an exposed
/// cell (else in constraints reached from them through hidden cells), ranked: non-zero before
/// zero, inner cells before margins, smaller before larger. Of the first [`TRIED`], the one
/// that leaves the fewest cells exposed wins (so two complements that close a rectangle are
/// found instead of a chain through the table); ties go to the rank.
fn complement(
    table: &Table,
    hidden: &[bool],
    exposed_now: &[usize],
    rules: Rules,
) -> Option<usize> {
    let mut cells_seen = vec![false; table.len()];
    let mut rows_seen = vec![false; table.constraints.len()];
    for &h in exposed_now {
        cells_seen[h] = true;
    }
    let mut frontier = exposed_now.to_vec();
    while !frontier.is_empty() {
        let mut candidates = Vec::new();
        let mut next = Vec::new();
        for (r, row) in table.constraints.iter().enumerate() {
            if rows_seen[r] || !row.iter().any(|&(c, _)| frontier.contains(&c)) {
                continue;
            }
            rows_seen[r] = true;
            for &(c, _) in row {
                if hidden[c] {
                    if !cells_seen[c] {
                        cells_seen[c] = true;
                        next.push(c);
                    }
                } else if !candidates.contains(&c) {
                    candidates.push(c);
                }
            }
        }
        candidates.sort_by_key(|&c| (table.values[c] == 0, table.margin[c], table.values[c], c));
        candidates.truncate(TRIED);
        let mut trial = hidden.to_vec();
        let best = candidates.iter().copied().min_by_key(|&c| {
            trial[c] = true;
            let left = exposed(table, &trial, rules).len();
            trial[c] = false;
            left
        });
        if best.is_some() {
            return best;
        }
        frontier = next;
    }
    None
}

/// The hidden cells a reader can work out exactly from the shown cells, the constraints and the
/// bounds of [`Rules`] (see the module comment), in index order.
pub fn exposed(table: &Table, hidden: &[bool], rules: Rules) -> Vec<usize> {
    let cols: Vec<usize> = (0..table.len()).filter(|&c| hidden[c]).collect();
    if cols.is_empty() {
        return Vec::new();
    }
    let col_of = |c: usize| cols.iter().position(|&x| x == c);
    let width = cols.len();
    // Rows of [A_H | b], b = -Σ over shown cells.
    let mut rows: Vec<Vec<i128>> = Vec::new();
    for row in &table.constraints {
        let mut r = vec![0i128; width + 1];
        let mut any = false;
        for &(c, k) in row {
            match col_of(c) {
                Some(j) => {
                    r[j] += i128::from(k);
                    any = true;
                }
                None => r[width] -= i128::from(k) * i128::from(table.values[c]),
            }
        }
        if any {
            rows.push(r);
        }
    }
    let Some(echelon) = rref(rows.clone(), width) else {
        // Numbers too large to reduce exactly: assume the worst.
        return cols;
    };
    let mut out = vec![false; width];
    for r in &echelon {
        let nz: Vec<usize> = (0..width).filter(|&j| r[j] != 0).collect();
        if let [j] = nz[..] {
            out[j] = true;
        }
    }
    // Interval propagation through the constraints and the echelon rows.
    let mut lo = vec![0.0f64; width];
    let mut hi = vec![0.0f64; width];
    for (j, &c) in cols.iter().enumerate() {
        (lo[j], hi[j]) = rules.prior(table.values[c]);
    }
    let all: Vec<&Vec<i128>> = rows.iter().chain(echelon.iter()).collect();
    for _ in 0..(4 * width + 8) {
        let mut changed = false;
        for r in &all {
            for j in (0..width).filter(|&j| r[j] != 0) {
                // r[j] x_j = b - Σ_{k≠j} r[k] x_k
                let (mut slo, mut shi) = (0.0f64, 0.0f64);
                for k in (0..width).filter(|&k| k != j && r[k] != 0) {
                    let a = r[k] as f64;
                    if a > 0.0 {
                        slo += a * lo[k];
                        shi += a * hi[k];
                    } else {
                        slo += a * hi[k];
                        shi += a * lo[k];
                    }
                }
                let b = r[width] as f64;
                let a = r[j] as f64;
                let (mut nlo, mut nhi) = ((b - shi) / a, (b - slo) / a);
                if a < 0.0 {
                    std::mem::swap(&mut nlo, &mut nhi);
                }
                let nlo = (nlo - 1e-9).ceil();
                let nhi = (nhi + 1e-9).floor();
                if nlo > lo[j] {
                    lo[j] = nlo;
                    changed = true;
                }
                if nhi < hi[j] {
                    hi[j] = nhi;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for j in 0..width {
        if lo[j] >= hi[j] {
            out[j] = true;
        }
    }
    (0..width).filter(|&j| out[j]).map(|j| cols[j]).collect()
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Reduced row echelon form over the rationals, rows kept integer (divided by their gcd), zero
/// rows dropped; `None` on overflow.
fn rref(mut rows: Vec<Vec<i128>>, width: usize) -> Option<Vec<Vec<i128>>> {
    let mut rank = 0;
    for col in 0..width {
        let Some(p) = (rank..rows.len()).find(|&i| rows[i][col] != 0) else {
            continue;
        };
        rows.swap(rank, p);
        let pivot = rows[rank].clone();
        for (i, row) in rows.iter_mut().enumerate() {
            if i == rank || row[col] == 0 {
                continue;
            }
            let (a, b) = (pivot[col], row[col]);
            for (x, &y) in row.iter_mut().zip(&pivot) {
                *x = x.checked_mul(a)?.checked_sub(y.checked_mul(b)?)?;
            }
            let g = row.iter().fold(0, |g, &x| gcd(g, x));
            if g > 1 {
                row.iter_mut().for_each(|x| *x /= g);
            }
        }
        rank += 1;
    }
    rows.truncate(rank);
    Some(rows)
}

/// The marker of a count hidden because it is small.
pub const SMALL: &str = crate::disclosure::MASKED;

/// The marker of a count hidden so that a small one cannot be derived from it.
pub const SUPPRESSED: &str = "masked";

/// The attrition block as shown to a caller: for the directorate (`open`) every count; otherwise
/// counts 1..4 become `"<5"` and, where `assigned = with_post_data + no_post_data` would give a
/// hidden count away, one more count of the arm becomes `"masked"`. `no_pre_data` (no linear
/// relation with the others) follows the primary rule only.
///
/// # Examples
/// ```
/// use ia_rct::disclosure::complementary::protect_attrition;
/// use ia_rct::estimate::Attrition;
///
/// let rows = [Attrition { arm: "a".into(), assigned: 7, with_post_data: 6, no_post_data: 1,
///                         no_pre_data: 0 }];
/// let shown = protect_attrition(&rows, false);
/// assert_eq!(shown[0]["no_post_data"], "<5");
/// assert_eq!(shown[0]["with_post_data"], "masked");
/// assert_eq!(shown[0]["assigned"], 7);
/// ```
pub fn protect_attrition(rows: &[Attrition], open: bool) -> Vec<Value> {
    let show = |n: usize, h: Hidden| match h {
        Hidden::No => json!(n),
        Hidden::Primary => json!(SMALL),
        Hidden::Complementary => json!(SUPPRESSED),
    };
    rows.iter()
        .map(|a| {
            let state = if open {
                vec![Hidden::No; 4]
            } else {
                let mut t = Table::new();
                let assigned = t.margin(a.assigned);
                let with = t.cell(a.with_post_data);
                let without = t.cell(a.no_post_data);
                t.cell(a.no_pre_data);
                t.sum(assigned, &[with, without]);
                protect(&t, Rules::NAV)
            };
            json!({
                "arm": a.arm,
                "assigned": show(a.assigned, state[0]),
                "with_post_data": show(a.with_post_data, state[1]),
                "no_post_data": show(a.no_post_data, state[2]),
                "no_pre_data": show(a.no_pre_data, state[3]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attacker independent of [`exposed`]: every integer assignment of the hidden cells in
    /// `0..=bound` that satisfies the constraints with the shown cells (found by backtracking); a
    /// hidden cell that takes one value in all of them is derived. Knows only `x >= 0` (and the
    /// bound, taken at least as large as any total), so this is the exact-derivation attacker.
    fn brute_force_derived(table: &Table, hidden: &[bool], bound: u64) -> Vec<usize> {
        fn search(
            table: &Table,
            cols: &[usize],
            depth: usize,
            x: &mut Vec<Option<u64>>,
            bound: u64,
            seen: &mut Vec<std::collections::BTreeSet<u64>>,
        ) {
            // Every constraint whose cells are all known must hold.
            let ok = table.constraints.iter().all(|row| {
                let vals: Option<Vec<i128>> = row
                    .iter()
                    .map(|&(c, k)| x[c].map(|v| i128::from(k) * i128::from(v)))
                    .collect();
                vals.is_none_or(|v| v.iter().sum::<i128>() == 0)
            });
            if !ok {
                return;
            }
            let Some(&c) = cols.get(depth) else {
                for (j, &c) in cols.iter().enumerate() {
                    seen[j].insert(x[c].expect("assigned"));
                }
                return;
            };
            for v in 0..=bound {
                x[c] = Some(v);
                search(table, cols, depth + 1, x, bound, seen);
            }
            x[c] = None;
        }
        let cols: Vec<usize> = (0..table.len()).filter(|&c| hidden[c]).collect();
        let mut x: Vec<Option<u64>> = (0..table.len())
            .map(|c| (!hidden[c]).then_some(table.values[c]))
            .collect();
        let mut seen = vec![std::collections::BTreeSet::new(); cols.len()];
        search(table, &cols, 0, &mut x, bound, &mut seen);
        cols.iter()
            .zip(&seen)
            .filter(|(_, s)| s.len() == 1)
            .map(|(&c, _)| c)
            .collect()
    }

    /// The balance table the old unit test pinned: stratum [5, 3, 6] with total 15.
    fn stratum_row() -> Table {
        let mut t = Table::new();
        let cells: Vec<usize> = [5, 4, 6].iter().map(|&v| t.cell(v)).collect();
        let total = t.margin(15);
        t.sum(total, &cells);
        t
    }

    #[test]
    fn primary_suppression_alone_leaves_the_cell_derivable() {
        let t = stratum_row();
        let hidden = vec![false, true, false, false];
        assert_eq!(brute_force_derived(&t, &hidden, 15), vec![1]);
        assert_eq!(exposed(&t, &hidden, Rules::NAV), vec![1]);
    }

    #[test]
    fn a_complement_is_the_smallest_inner_cell() {
        let t = stratum_row();
        let state = protect(&t, Rules::NAV);
        assert_eq!(
            state,
            vec![
                Hidden::Complementary,
                Hidden::Primary,
                Hidden::No,
                Hidden::No
            ]
        );
        let hidden: Vec<bool> = state.iter().map(|h| h.is_hidden()).collect();
        assert!(brute_force_derived(&t, &hidden, 15).is_empty());
    }

    /// A 3 x 3 table with stratum totals and arm totals, one small cell: one complement in its row
    /// is not enough (the column totals give both back), so a rectangle of four is needed.
    #[test]
    fn a_two_way_table_gets_a_rectangle() {
        let values = [[2, 7, 6], [8, 9, 5], [6, 5, 7]];
        let mut t = Table::new();
        let cells: Vec<Vec<usize>> = values
            .iter()
            .map(|r| r.iter().map(|&v| t.cell(v)).collect())
            .collect();
        for (i, r) in values.iter().enumerate() {
            let total = t.margin(r.iter().sum());
            t.sum(total, &cells[i]);
        }
        for j in 0..3 {
            let total = t.margin(values.iter().map(|r| r[j]).sum());
            let col: Vec<usize> = cells.iter().map(|r| r[j]).collect();
            t.sum(total, &col);
        }
        let state = protect(&t, Rules::NAV);
        let hidden: Vec<bool> = state.iter().map(|h| h.is_hidden()).collect();
        assert!(state[cells[0][0]] == Hidden::Primary);
        assert!(hidden.iter().filter(|&&h| h).count() >= 4);
        assert!(brute_force_derived(&t, &hidden, 22).is_empty());
        assert!(exposed(&t, &hidden, Rules::NAV).is_empty());
        // No margin had to go.
        assert!((9..15).all(|m| !hidden[m]));
    }

    #[test]
    fn a_shown_zero_beside_a_hidden_cell_is_handled() {
        // assigned 3 = with 3 + without 0, attrition style (zeros shown): hiding 3 and 3 leaves
        // them equal to each other but not to a value.
        let mut t = Table::new();
        let total = t.margin(3);
        let a = t.cell(3);
        let b = t.cell(0);
        t.sum(total, &[a, b]);
        let state = protect(&t, Rules::NAV);
        assert_eq!(state, vec![Hidden::Primary, Hidden::Primary, Hidden::No]);
        // Total 9 shown, a zero shown: the hidden cell is 9 - 5 and must not stay alone.
        let mut t = Table::new();
        let total = t.margin(9);
        let a = t.cell(4);
        let b = t.cell(0);
        let c = t.cell(5);
        t.sum(total, &[a, b, c]);
        let state = protect(&t, Rules::NAV);
        let hidden: Vec<bool> = state.iter().map(|h| h.is_hidden()).collect();
        assert_eq!(
            state[c],
            Hidden::Complementary,
            "the non-zero cell is the complement"
        );
        assert!(brute_force_derived(&t, &hidden, 9).is_empty());
    }

    #[test]
    fn bounds_that_close_an_interval_count_as_exposure() {
        // 4 + 4 = 8: two small hidden cells under a shown total of 8 are both 4.
        let mut t = Table::new();
        let total = t.margin(8);
        let a = t.cell(4);
        let b = t.cell(4);
        t.sum(total, &[a, b]);
        let hidden = vec![false, true, true];
        assert_eq!(exposed(&t, &hidden, Rules::NAV), vec![a, b]);
        let state = protect(&t, Rules::NAV);
        assert_eq!(state[total], Hidden::Complementary);
        // Hidden cells that sum to 0 (zeros hidden) are all 0.
        let mut t = Table::new();
        let total = t.margin(5);
        let a = t.cell(0);
        let b = t.cell(0);
        let c = t.cell(5);
        t.sum(total, &[a, b, c]);
        let rules = Rules {
            min: 5,
            hide_zero: true,
        };
        assert_eq!(exposed(&t, &[false, true, true, false], rules), vec![a, b]);
        let state = protect(&t, rules);
        let hidden: Vec<bool> = state.iter().map(|h| h.is_hidden()).collect();
        assert!(exposed(&t, &hidden, rules).is_empty());
    }

    #[test]
    fn attrition_hides_a_complement_in_the_arm() {
        let rows = [
            Attrition {
                arm: "a".into(),
                assigned: 7,
                with_post_data: 6,
                no_post_data: 1,
                no_pre_data: 2,
            },
            Attrition {
                arm: "k".into(),
                assigned: 9,
                with_post_data: 9,
                no_post_data: 0,
                no_pre_data: 0,
            },
        ];
        let shown = protect_attrition(&rows, false);
        assert_eq!(shown[0]["assigned"], json!(7));
        assert_eq!(shown[0]["with_post_data"], json!(SUPPRESSED));
        assert_eq!(shown[0]["no_post_data"], json!(SMALL));
        assert_eq!(shown[0]["no_pre_data"], json!(SMALL));
        assert_eq!(shown[1]["with_post_data"], json!(9));
        assert_eq!(shown[1]["no_post_data"], json!(0));
        let open = protect_attrition(&rows, true);
        assert_eq!(open[0]["no_post_data"], json!(1));
        assert_eq!(open[0]["with_post_data"], json!(6));
    }

    #[test]
    fn random_tables_end_with_nothing_derivable() {
        // A deterministic sweep of small 2 x 3 tables with all margins published.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200 {
            let mut values = [[0u64; 3]; 2];
            for r in &mut values {
                for v in r.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *v = seed % 9;
                }
            }
            let mut t = Table::new();
            let cells: Vec<Vec<usize>> = values
                .iter()
                .map(|r| r.iter().map(|&v| t.cell(v as usize)).collect())
                .collect();
            for (i, r) in values.iter().enumerate() {
                let total = t.margin(r.iter().sum::<u64>() as usize);
                t.sum(total, &cells[i]);
            }
            for j in 0..3 {
                let total = t.margin(values.iter().map(|r| r[j]).sum::<u64>() as usize);
                t.sum(total, &[cells[0][j], cells[1][j]]);
            }
            let rules = Rules {
                min: 5,
                hide_zero: true,
            };
            let state = protect(&t, rules);
            let hidden: Vec<bool> = state.iter().map(|h| h.is_hidden()).collect();
            assert!(exposed(&t, &hidden, rules).is_empty(), "{values:?}");
            // Larger than any total a solution can have (a hidden margin is at most the sum of
            // the shown total it sits beside and a few small cells).
            let bound = 2 * t.values().iter().copied().max().unwrap_or(0) + 2;
            if hidden.iter().filter(|&&h| h).count() <= 5 {
                assert!(
                    brute_force_derived(&t, &hidden, bound).is_empty(),
                    "{values:?} {state:?}"
                );
            }
        }
    }
}
