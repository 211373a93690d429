#!/usr/bin/env python3
"""Deterministic synthetic inputs for the estimator fixtures under tests/fixtures/estimates/.

Writes, for every case, `<case>/assignment.csv` (orgnr,arm,stratum,klynge), `<case>/stats.csv`
(NAV data-warehouse CSV: orgnr,arstall,kvartal,taptedv,muligedv,antpers) and `<case>/params.json`
(randomized_at, pre, post, control, arms, note). The numbers are made up (test data, not real
firms); orgnrs are valid 9-digit MOD11 numbers. Every case uses its own numpy
`default_rng(seed)`, so rerunning the script rewrites the same bytes:

    python3 notebooks/make_estimate_datasets.py [--out tests/fixtures/estimates]

The expected numbers are produced afterwards by notebooks/estimates_reference.py.

Outcome model (rates in percent): r_it = firm level (2-12, plus a stratum shift) + quarter effect
(season and a slow trend) + arm effect from R on + noise, clipped to [0.5, 20]; mulige dagsverk per
quarter 50-5000 (log-uniform firm size, +-8 % quarterly noise); taptedv = r/100 * muligedv rounded
to 3 decimals, muligedv rounded to 2 decimals, antpers ~ muligedv / 62. Floats are written with
repr() of the rounded value, so they read back exactly.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

ARMS4 = ["kontroll", "bred_prosess", "ledere", "digital"]
EFFECT = {"bred_prosess": -0.9, "ledere": -0.4, "digital": 0.3}
SEASON = {1: 0.9, 2: -0.2, 3: -1.1, 4: 0.4}


# ---------------------------------------------------------------------------------------------
# helpers
def mod11_check(first8: str) -> int | None:
    w = [3, 2, 7, 6, 5, 4, 3, 2]
    s = sum(int(d) * k for d, k in zip(first8, w))
    c = 11 - s % 11
    if c == 11:
        return 0
    if c == 10:
        return None
    return c


def make_orgnrs(rng: np.random.Generator, n: int, used: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        base = str(int(rng.integers(80_000_000, 100_000_000)))
        c = mod11_check(base)
        if c is None:
            continue
        o = base + str(c)
        if o in used:
            continue
        used.add(o)
        out.append(o)
    return out


def q_index(label: str) -> int:
    y, q = label.split("K")
    return int(y) * 4 + int(q) - 1


def q_label(idx: int) -> str:
    return f"{idx // 4}K{idx % 4 + 1}"


def stratum_label(k: int) -> str:
    fylker = ["03", "11", "15", "18", "31", "32", "33", "34", "39", "40", "42", "46", "50", "55", "56"]
    return f"fylke={fylker[k % len(fylker)]}|bransje=*|size=*|baseline=b{k // len(fylker) + 1}"


class Case:
    def __init__(self, name: str, seed: int, randomized_at: str, pre: int, post: int, arms: list[str],
                 note: str):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.randomized_at = randomized_at
        self.R = q_index(randomized_at)
        self.pre = pre
        self.post = post
        self.arms = arms
        self.note = note
        self.used: set[str] = set()
        self.firms: list[dict] = []  # orgnr, arm, stratum, klynge, level, size, ceff
        self.rows: list[tuple] = []   # orgnr, qidx, tapte, mulige, antpers

    # firms ------------------------------------------------------------------------------------
    def add_firms(self, stratum: str, arms: list[str], klynge: str = "", shift: float = 0.0,
                  ceff: float = 0.0) -> list[dict]:
        orgs = make_orgnrs(self.rng, len(arms), self.used)
        new = []
        for o, a in zip(orgs, arms):
            f = {
                "orgnr": o, "arm": a, "stratum": stratum, "klynge": klynge,
                "level": float(np.clip(self.rng.uniform(2.0, 12.0) + shift, 2.0, 14.0)),
                "size": float(np.exp(self.rng.uniform(np.log(60.0), np.log(4200.0)))),
                "ceff": ceff, "het": float(self.rng.normal(0.0, 0.3)),
            }
            new.append(f)
        self.firms.extend(new)
        return new

    # rows -------------------------------------------------------------------------------------
    def quarters(self, extra_before: int = 0, extra_after: int = 0) -> list[int]:
        return list(range(self.R - self.pre - extra_before, self.R + self.post + extra_after))

    def row(self, f: dict, t: int, eff_scale: float = 1.0) -> tuple:
        rng = self.rng
        e = t - self.R
        season = SEASON[t % 4 + 1] + 0.05 * (t - self.R)
        eff = 0.0
        if e >= 0 and f["arm"] in EFFECT:
            eff = eff_scale * (EFFECT[f["arm"]] + f["het"]) * min(1.0, (e + 1) / 3.0)
        rate = float(np.clip(f["level"] + season + f["ceff"] + eff + rng.normal(0.0, 1.0), 0.5, 20.0))
        mulige = float(np.clip(f["size"] * (1.0 + rng.normal(0.0, 0.08)), 50.0, 5000.0))
        mulige = round(mulige, 2)
        tapte = round(rate / 100.0 * mulige, 3)
        tapte = min(max(tapte, 0.0), mulige)
        antpers = max(5, int(round(mulige / 62.0)))
        return (f["orgnr"], t, tapte, mulige, antpers)

    def full_panel(self, quarters: list[int]) -> None:
        for f in self.firms:
            for t in quarters:
                self.rows.append(self.row(f, t))

    # output -----------------------------------------------------------------------------------
    def write(self, root: str) -> None:
        d = os.path.join(root, self.name)
        os.makedirs(d, exist_ok=True)
        firms = sorted(self.firms, key=lambda f: f["orgnr"])
        with open(os.path.join(d, "assignment.csv"), "w", newline="") as fh:
            fh.write("orgnr,arm,stratum,klynge\n")
            for f in firms:
                fh.write(f"{f['orgnr']},{f['arm']},{f['stratum']},{f['klynge']}\n")
        rows = sorted(self.rows, key=lambda r: (r[0], r[1]))
        with open(os.path.join(d, "stats.csv"), "w", newline="") as fh:
            fh.write("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n")
            for o, t, tapte, mulige, ap in rows:
                assert mulige > 0 and 0 <= tapte <= mulige
                fh.write(f"{o},{t // 4},{t % 4 + 1},{tapte!r},{mulige!r},{ap}\n")
        params = {
            "randomized_at": self.randomized_at, "pre": self.pre, "post": self.post,
            "control": "kontroll", "arms": self.arms, "seed": self.seed, "note": self.note,
        }
        with open(os.path.join(d, "params.json"), "w") as fh:
            json.dump(params, fh, indent=2, ensure_ascii=False)
            fh.write("\n")


def arms_in_stratum(rng: np.random.Generator, arms: list[str], n: int, min_each: int) -> list[str]:
    """min_each per arm, the rest drawn uniformly, then shuffled."""
    out = [a for a in arms for _ in range(min_each)]
    out += [arms[int(i)] for i in rng.integers(0, len(arms), n - len(out))]
    rng.shuffle(out)
    return out


def add_strata(c: "Case", arms: list[str], count: int, sizes: tuple[int, int], min_each: int) -> None:
    """`count` strata of `sizes` (low inclusive, high exclusive) firms each, at least `min_each` per
    arm (arms_in_stratum), each stratum with its own level shift."""
    for s in range(count):
        n = int(c.rng.integers(*sizes))
        c.add_firms(stratum_label(s), arms_in_stratum(c.rng, arms, n, min_each),
                    shift=float(c.rng.normal(0, 1.5)))


def add_singleton_stratum(c: "Case", arms: list[str], stratum: int, n: int) -> None:
    """A stratum of n firms in which one arm (drawn) has a single firm."""
    single = arms[int(c.rng.integers(0, 2))]
    other = arms[1] if single == arms[0] else arms[0]
    lab = [single] + [other] * (n - 1)
    c.rng.shuffle(lab)
    c.add_firms(stratum_label(stratum), lab, shift=float(c.rng.normal(0, 2.0)))


# ---------------------------------------------------------------------------------------------
# cases
def case_balanced() -> Case:
    c = Case("balanced", 20250101, "2025K1", 4, 4, ARMS4,
             "4 arms, 12 strata, >=2 firms per arm and stratum, balanced panel; every firm also has "
             "one row before and one after the windows (must be ignored), and two firms in stats.csv "
             "are not in the assignment (must be ignored)")
    add_strata(c, ARMS4, 12, (9, 15), 2)
    c.full_panel(c.quarters(extra_before=1, extra_after=1))
    # two firms that are not in the assignment
    ghosts = c.add_firms("ghost", ["kontroll", "ledere"])
    for g in ghosts:
        c.firms.remove(g)
        for t in c.quarters():
            c.rows.append(c.row(g, t))
    return c


def case_unbalanced() -> Case:
    arms = ARMS4[:3]
    c = Case("unbalanced", 20250202, "2025K1", 4, 4, arms,
             "3 arms, 8 strata, ~10% firm-quarters missing at random; 6 firms without post rows "
             "(attrition), 6 firms without pre rows (missing baseline), one firm with a single "
             "(post) row (panel singleton), one attrited firm with a single pre row")
    add_strata(c, arms, 8, (12, 17), 3)
    qs = c.quarters()
    pre_q = [t for t in qs if t < c.R]
    post_q = [t for t in qs if t >= c.R]
    idx = c.rng.permutation(len(c.firms))
    no_post = {c.firms[i]["orgnr"] for i in idx[:6]}
    no_pre = {c.firms[i]["orgnr"] for i in idx[6:12]}
    singleton = c.firms[idx[12]]["orgnr"]          # one post row only (and so no baseline)
    one_pre_only = c.firms[idx[13]]["orgnr"]       # one pre row only: attrition + single row
    for f in c.firms:
        o = f["orgnr"]
        if o == singleton:
            keep = [post_q[int(c.rng.integers(0, len(post_q)))]]
        elif o == one_pre_only:
            keep = [pre_q[int(c.rng.integers(0, len(pre_q)))]]
        else:
            keep = [t for t in qs if c.rng.random() >= 0.10]
            if o in no_post:
                keep = [t for t in keep if t < c.R] or [pre_q[0]]
            elif o in no_pre:
                keep = [t for t in keep if t >= c.R] or [post_q[0], post_q[1]]
            elif not any(t >= c.R for t in keep):
                keep.append(post_q[-1])
        for t in sorted(keep):
            c.rows.append(c.row(f, t))
    return c


def case_clustered() -> Case:
    arms = ARMS4[:3]
    c = Case("clustered", 20250303, "2025K1", 4, 4, arms,
             "3 arms, 6 strata; per stratum and arm 2-3 klynger of 2-6 firms (nested in the stratum, "
             "one arm per klynge, a klynge-level shock) plus 3-6 firms randomized alone (klynge empty)")
    for s in range(6):
        st = stratum_label(s)
        shift = float(c.rng.normal(0, 1.5))
        for a in arms:
            for _ in range(int(c.rng.integers(2, 4))):
                k = make_orgnrs(c.rng, 1, c.used)[0]
                size = int(c.rng.integers(2, 7))
                c.add_firms(st, [a] * size, klynge=k, shift=shift, ceff=float(c.rng.normal(0, 1.2)))
            c.add_firms(st, [a] * int(c.rng.integers(3, 7)), shift=shift)
    c.full_panel(c.quarters())
    return c


def case_zero_variance() -> Case:
    arms = ARMS4[:2]
    c = Case("zero_variance", 20250404, "2025K1", 4, 4, arms,
             "2 arms, 6 strata; in stratum index 2 every treated firm has identical rows in every "
             "quarter (identical taptedv and muligedv), so s^2 of y over its treated firms is 0")
    zero_st = stratum_label(2)
    add_strata(c, arms, 6, (10, 15), 3)
    template: dict[int, tuple] = {}
    for f in c.firms:
        for t in c.quarters():
            r = c.row(f, t)
            if f["stratum"] == zero_st and f["arm"] != "kontroll":
                if t not in template:
                    template[t] = r
                r = (f["orgnr"],) + template[t][1:]
            c.rows.append(r)
    return c


def case_collinear() -> Case:
    arms = ARMS4[:2]
    c = Case("collinear", 20250505, "2025K1", 4, 4, arms,
             "2 arms, 6 strata; every firm of stratum index 3 (not the first in sorted order) has no "
             "pre-window row and no other firm lacks one, so b_missing equals that stratum's indicator")
    add_strata(c, arms, 6, (10, 15), 3)
    bad = stratum_label(3)
    for f in c.firms:
        for t in c.quarters():
            if f["stratum"] == bad and t < c.R:
                continue
            c.rows.append(c.row(f, t))
    return c


def case_singleton_pairs() -> Case:
    arms = ARMS4[:2]
    c = Case("singleton_pairs", 20250606, "2025K1", 4, 4, arms,
             "itt_dim only: 12 strata of 2 firms, 1 treated + 1 control each (matched pairs)")
    for s in range(12):
        c.add_firms(stratum_label(s), [arms[int(i)] for i in c.rng.permutation(2)],
                    shift=float(c.rng.normal(0, 2.0)))
    c.full_panel(c.quarters())
    return c


def case_singleton_small_blocks() -> Case:
    arms = ARMS4[:2]
    c = Case("singleton_small_blocks", 20250707, "2025K1", 4, 4, arms,
             "itt_dim only: 8 strata of 3 or 4 firms, each with a singleton arm (1 treated or 1 "
             "control), sizes unequal, no stratum holds half of n_S")
    for s, n in enumerate([3, 4, 3, 4, 3, 3, 4, 4]):
        add_singleton_stratum(c, arms, s, n)
    c.full_panel(c.quarters())
    return c


def case_singleton_hybrid() -> Case:
    arms = ARMS4[:2]
    c = Case("singleton_hybrid", 20250808, "2025K1", 4, 4, arms,
             "itt_dim only: 3 big strata (6, 6, 7 firms; >=2 per arm) and 5 small strata (2, 3, 3, "
             "2, 3 firms, each with a singleton arm): Pashley-Miratrix hybrid")
    big = [(3, 3), (2, 4), (3, 4)]
    small = [2, 3, 3, 2, 3]
    k = 0
    for n1, n0 in big:
        lab = [arms[1]] * n1 + [arms[0]] * n0
        c.rng.shuffle(lab)
        c.add_firms(stratum_label(k), lab, shift=float(c.rng.normal(0, 2.0)))
        k += 1
    for n in small:
        add_singleton_stratum(c, arms, k, n)
        k += 1
    c.full_panel(c.quarters())
    return c


def case_longer() -> Case:
    arms = ARMS4[:2]
    c = Case("longer", 20250909, "2025K1", 8, 12, arms,
             "2 arms, 10 strata of 30 firms (15/15), pre 8 and post 12 quarters, ~2% firm-quarters "
             "missing at random (never all post rows), effect phased in over 3 quarters")
    for s in range(10):
        lab = [arms[0]] * 15 + [arms[1]] * 15
        c.rng.shuffle(lab)
        c.add_firms(stratum_label(s), lab, shift=float(c.rng.normal(0, 1.5)))
    qs = c.quarters()
    for f in c.firms:
        keep = [t for t in qs if c.rng.random() >= 0.02]
        if not any(t >= c.R for t in keep):
            keep.append(qs[-1])
        for t in keep:
            c.rows.append(c.row(f, t))
    return c


def case_emptied_stratum() -> Case:
    arms = ARMS4[:3]
    c = Case("emptied_stratum", 20251010, "2025K1", 4, 4, arms,
             "3 arms, 6 strata; attrition removes every bred_prosess firm of stratum index 3 and "
             "every ledere firm of stratum index 0 (the first in sorted order): pre rows only, no "
             "post row; their control firms stay in. 2 firms of each arm "
             "(outside those strata) have no pre-window row")
    add_strata(c, arms, 6, (12, 17), 3)
    emptied = {("bred_prosess", stratum_label(3)), ("ledere", stratum_label(0))}
    gone = {f["orgnr"] for f in c.firms if (f["arm"], f["stratum"]) in emptied}
    others = [f for f in c.firms if f["orgnr"] not in gone
              and f["stratum"] not in (stratum_label(0), stratum_label(3))]
    no_pre: set[str] = set()
    for arm, k in [("kontroll", 2), ("bred_prosess", 2), ("ledere", 2)]:
        cand = [f["orgnr"] for f in others if f["arm"] == arm]
        no_pre.update(cand[int(i)] for i in c.rng.choice(len(cand), k, replace=False))
    for f in c.firms:
        for t in c.quarters():
            if (f["orgnr"] in gone and t >= c.R) or (f["orgnr"] in no_pre and t < c.R):
                continue
            c.rows.append(c.row(f, t))
    return c


def case_emptied_control() -> Case:
    arms = ARMS4[:2]
    c = Case("emptied_control", 20251111, "2025K1", 4, 4, arms,
             "2 arms, 6 strata; attrition removes every control firm of stratum index 2 and every "
             "treated firm of stratum index 4 (pre rows only, no post row); the other arm's firms of "
             "those strata stay in")
    add_strata(c, arms, 6, (10, 15), 3)
    emptied = {("kontroll", stratum_label(2)), ("bred_prosess", stratum_label(4))}
    for f in c.firms:
        for t in c.quarters():
            if (f["arm"], f["stratum"]) in emptied and t >= c.R:
                continue
            c.rows.append(c.row(f, t))
    return c


def case_constant_in_arm() -> Case:
    arms = ARMS4[:2]
    c = Case("constant_in_arm", 20251213, "2025K1", 4, 4, arms,
             "2 arms, 6 strata; 4 control firms (in 4 strata) have no pre-window row and every "
             "treated firm has one, so b_missing enters ANCOVA and Lin but has no variation among "
             "the treated (the itt_lin case of check_unseen.py seed 7, issue 10)")
    add_strata(c, arms, 6, (10, 15), 3)
    no_pre: set[str] = set()
    for k in [0, 1, 3, 5]:
        cand = [f["orgnr"] for f in c.firms
                if f["arm"] == "kontroll" and f["stratum"] == stratum_label(k)]
        no_pre.add(cand[int(c.rng.integers(0, len(cand)))])
    for f in c.firms:
        for t in c.quarters():
            if f["orgnr"] in no_pre and t < c.R:
                continue
            c.rows.append(c.row(f, t))
    return c


CASES = [case_balanced, case_unbalanced, case_clustered, case_zero_variance, case_collinear,
         case_singleton_pairs, case_singleton_small_blocks, case_singleton_hybrid, case_longer,
         case_emptied_stratum, case_emptied_control, case_constant_in_arm]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "estimates"))
    a = ap.parse_args()
    for mk in CASES:
        c = mk()
        c.write(a.out)
        print(f"{c.name}: {len(c.firms)} firms, {len(c.rows)} rows")


if __name__ == "__main__":
    main()
