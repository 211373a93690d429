#!/usr/bin/env python3
"""Reference fixtures for randomization inference (`ri`, docs/statistics.md B.9).

    ~/.cache/ia-rct-ri-venv/bin/python notebooks/ri_reference.py [case ...]

(see notebooks/README-ri.md). For every case in CASES it

1. makes a synthetic stratified (in `clustered`: cluster-randomized) two-arm trial from a seeded
   `numpy.random.default_rng`, and writes `tests/fixtures/ri/<case>/firms.csv`
   (`orgnr,arm,stratum,cluster,y,b,m`; floats with `repr()`, y empty for attrited firms);
2. reads that file back and re-draws the assignment by complete randomization of units within
   strata (attrited firms included), by exact enumeration of all K = prod_s C(n_s, t_s)
   assignments (or, in `coin_large`, 1e6 seeded Monte Carlo draws);
3. computes the statistics dim, dim_dagsverk, ancova and ancova_t (HC2, CR2 in `clustered`) for
   every assignment, the two-sided p-values and, for the three linear statistics, the exact
   test-inversion confidence set under a constant additive effect (crossing points, no grid),
   then checks that step function against a direct 20,001-point grid;
4. runs `notebooks/ri_reference.R` (estimatr 1.0.0 `lm_robust`, clubSandwich `vcovCR`,
   sandwich `vcovHC`, and its own R code for the two differences in means) on the observed
   assignment and on a sample of re-drawn assignments (every one in `tiny`), and, in `coin_large`,
   coin 1.4-2 `independence_test` with `approximate(nresample = 1e6)`; compares with numpy and
   statsmodels (HC2 with explicit stratum dummies);
5. writes `tests/fixtures/ri/<case>/expected.json` and `HEADER.txt`.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import scipy
from scipy import stats as sps

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "ri")
R_SCRIPT = os.path.join(HERE, "ri_reference.R")
COMMAND = "~/.cache/ia-rct-ri-venv/bin/python notebooks/ri_reference.py"

TIE_REL = 1e-9          # the tolerance of the p-value definition
ALPHA_DEN = 20          # accepted iff 20 * n_extreme(tau0) > K, i.e. p(tau0) > 0.05 exactly
GRID_POINTS = 20001
GRID_POINTS_MC = 2001   # coin_large: 1e6 draws x 20,001 points would take ~10 minutes per statistic
MC_DRAWS = 1_000_000
MC_CHUNK = 20_000
R_CHECK_DRAWS = 3000    # re-drawn assignments recomputed in R (all of them when K is smaller)

# ------------------------------------------------------------------------------------------------
# The cases. `strata`: (label, units, treated units); in `clustered` the units are clusters whose
# sizes are listed. `attrite`: which firms lose their post-period outcome, as (stratum, rule), the
# rule picking firms of the observed assignment (see make_case). `m_sd`: sd of log m.
CASES = {
    "tiny": {
        "seed": 2026_0901, "orgnr0": 810_000_001,
        "strata": [("S1", 5, 2), ("S2", 6, 3)],
        "attrite": [], "effect": -1.2, "m_sd": 1.2,
        "note": "2 strata, 11 firms, no attrition, K = C(5,2) C(6,3) = 200",
    },
    "small": {
        "seed": 2026_0902, "orgnr0": 820_000_001,
        "strata": [("A", 7, 2), ("B", 5, 2), ("C", 6, 3), ("D", 4, 1), ("E", 3, 1), ("F", 3, 1)],
        "attrite": [("A", "control", 0), ("C", "treated", 1), ("E", "control", 0)],
        "effect": -2.0, "m_sd": 1.2,
        "note": "6 strata, 28 firms, 3 attrited; stratum E (3 firms, 1 treated) has one attrited "
                "control firm, so in the re-draws where that firm is treated E has no observed "
                "treated firm and drops out of dim/dim_dagsverk (1/3 of the draws)",
    },
    "weighted": {
        "seed": 2026_0903, "orgnr0": 830_000_001,
        "strata": [("A", 6, 2), ("B", 6, 2), ("C", 5, 2), ("D", 5, 1), ("E", 3, 1), ("F", 4, 1)],
        "attrite": [("B", "control", 1), ("D", "control", 2), ("E", "treated", 0)],
        "effect": "size", "m_sd": 1.7,
        "note": "like small with heavy-tailed m (log m ~ N(4, 1.7)) and an effect that grows with "
                "firm size, so dim_dagsverk differs from dim; the attrited firm of stratum E is "
                "its only treated firm, so E is left out of dim/dim_dagsverk at the OBSERVED "
                "assignment (and in 2/3 of the draws it is back in)",
    },
    "clustered": {
        "seed": 2026_0904, "orgnr0": 840_000_001,
        "strata": [("K1", [3, 2, 4, 1, 5, 2], 2), ("K2", [2, 3, 3, 4, 2], 2),
                   ("K3", [1, 2, 3, 4, 2, 3], 3), ("K4", [1, 3, 2, 4], 1)],
        "attrite": [("K4", "single_cluster"), ("K2", "in_cluster_of_4")],
        "effect": -0.9, "m_sd": 1.2,
        "note": "4 strata, 21 clusters of 1-5 firms (56 firms), randomized by cluster; attrited: "
                "the one-firm cluster of K4 (a unit with no observed firm; when it is drawn "
                "treated, K4 has no observed treated firm) and one firm of a 4-firm cluster in K2",
    },
    "coin_large": {
        "seed": 2026_0905, "orgnr0": 850_000_001,
        "strata": [(f"L{j:02d}", 20, 8) for j in range(1, 21)],
        "attrite": [], "effect": -0.35, "m_sd": 1.2,
        "note": "20 strata x 20 firms, 8 treated in every stratum, no attrition, no clusters; "
                "Monte Carlo (1e6 draws) and R coin",
    },
}


# ------------------------------------------------------------------------------------------------
# data
def make_case(name: str, spec: dict) -> list[dict]:
    """Synthetic firms of one case (deterministic in spec['seed'])."""
    rng = np.random.default_rng(spec["seed"])
    clustered = name == "clustered"
    firms = []
    for s_idx, (lab, units, t) in enumerate(spec["strata"]):
        sizes = units if clustered else [1] * units
        n_u = len(sizes)
        treated_units = set(rng.choice(n_u, size=t, replace=False).tolist())
        s_shift = rng.normal(0.0, 0.25)
        for u, size in enumerate(sizes):
            c_eff = rng.normal(0.0, 0.3) if clustered else 0.0
            for _ in range(size):
                firms.append({"stratum": lab, "unit_in_stratum": u, "cluster":
                              f"{lab}-k{u + 1:02d}" if clustered else "",
                              "z": int(u in treated_units), "s_shift": s_shift, "c_eff": c_eff})
    n = len(firms)
    logm = rng.normal(4.0, spec["m_sd"], size=n)
    eps_b = rng.normal(0.0, 0.45, size=n)
    eps_y = rng.normal(0.0, 0.30, size=n)
    for i, f in enumerate(firms):
        b = math.exp(math.log(6.0) + f["s_shift"] + f["c_eff"] + eps_b[i])
        y0 = math.exp(0.65 * math.log(b) + 0.35 * math.log(6.0) + 0.5 * f["c_eff"] + eps_y[i])
        if spec["effect"] == "size":
            tau = 1.5 - 3.0 * (logm[i] - 4.0) / 1.7
        else:
            tau = spec["effect"]
        y = float(min(100.0, max(0.05, y0 + tau * f["z"])))
        f["b"] = round(float(min(100.0, max(0.05, b))), 3)
        f["y"] = round(y, 3)
        f["m"] = round(float(max(1.0, math.exp(logm[i]))), 1)
        f["attrited"] = False
    # attrition, from the rules of the spec
    for rule in spec["attrite"]:
        lab = rule[0]
        if rule[1] in ("treated", "control"):
            cands = [f for f in firms if f["stratum"] == lab and f["z"] == (rule[1] == "treated")
                     and not f["attrited"]]
            cands[rule[2]]["attrited"] = True
        elif rule[1] == "single_cluster":
            sizes = {}
            for f in firms:
                if f["stratum"] == lab:
                    sizes[f["cluster"]] = sizes.get(f["cluster"], 0) + 1
            (cl,) = [c for c, k in sizes.items() if k == 1]
            for f in firms:
                if f["cluster"] == cl:
                    f["attrited"] = True
        elif rule[1] == "in_cluster_of_4":
            sizes = {}
            for f in firms:
                if f["stratum"] == lab:
                    sizes[f["cluster"]] = sizes.get(f["cluster"], 0) + 1
            (cl,) = [c for c, k in sizes.items() if k == 4]
            [f for f in firms if f["cluster"] == cl][1]["attrited"] = True
        else:
            raise ValueError(rule)
    # rows in a shuffled order (strata interleave), orgnr ascending in file order
    order = rng.permutation(n)
    rows = []
    for k, i in enumerate(order):
        f = firms[i]
        rows.append({"orgnr": str(spec["orgnr0"] + k), "arm": "treated" if f["z"] else "control",
                     "stratum": f["stratum"], "cluster": f["cluster"],
                     "y": "" if f["attrited"] else repr(f["y"]), "b": repr(f["b"]),
                     "m": repr(f["m"])})
    return rows


def write_firms(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["orgnr", "arm", "stratum", "cluster", "y", "b", "m"])
        for r in rows:
            w.writerow([r["orgnr"], r["arm"], r["stratum"], r["cluster"], r["y"], r["b"], r["m"]])


class Design:
    """Everything about one case that does not depend on the re-drawn assignment."""

    def __init__(self, path: str, clustered: bool):
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert list(df.columns) == ["orgnr", "arm", "stratum", "cluster", "y", "b", "m"]
        assert df["orgnr"].str.fullmatch(r"\d{9}").all() and df["orgnr"].is_unique
        assert set(df["arm"]) <= {"treated", "control"}
        self.df = df
        self.n_firms = len(df)
        self.z_firm = (df["arm"] == "treated").to_numpy().astype(np.int8)
        self.obs = (df["y"] != "").to_numpy()
        self.y = np.array([float(v) if v != "" else np.nan for v in df["y"]])
        self.b = df["b"].astype(float).to_numpy()
        self.m = df["m"].astype(float).to_numpy()
        assert (self.m > 0).all()
        self.strata = sorted(df["stratum"].unique())
        s_of = {s: j for j, s in enumerate(self.strata)}
        self.stratum_idx = np.array([s_of[s] for s in df["stratum"]])
        # randomization units
        if clustered:
            assert (df["cluster"] != "").all()
            keys = df["cluster"].tolist()
        else:
            assert (df["cluster"] == "").all()
            keys = df["orgnr"].tolist()
        self.units = sorted(set(keys))
        u_of = {u: k for k, u in enumerate(self.units)}
        self.unit_of_firm = np.array([u_of[k] for k in keys])
        self.n_units = len(self.units)
        self.unit_stratum = np.full(self.n_units, -1)
        self.unit_z = np.full(self.n_units, -1)
        for i in range(self.n_firms):
            u = self.unit_of_firm[i]
            for arr, val in ((self.unit_stratum, self.stratum_idx[i]), (self.unit_z, self.z_firm[i])):
                assert arr[u] in (-1, val), "a cluster must share stratum and arm"
                arr[u] = val
        self.units_by_stratum = [np.flatnonzero(self.unit_stratum == j) for j in range(len(self.strata))]
        self.t_by_stratum = [int(self.unit_z[u].sum()) for u in self.units_by_stratum]
        self.K = math.prod(math.comb(len(u), t) for u, t in zip(self.units_by_stratum, self.t_by_stratum))
        # observed firms
        self.oi = np.flatnonzero(self.obs)
        self.n_obs = len(self.oi)
        self.yo = self.y[self.oi]
        self.bo = self.b[self.oi]
        self.mo = self.m[self.oi]
        self.so = self.stratum_idx[self.oi]
        self.zo = self.z_firm[self.oi].astype(float)
        self.unit_of_obs = self.unit_of_firm[self.oi]
        self.cols = [np.flatnonzero(self.so == j) for j in range(len(self.strata))]
        assert all(len(c) >= 2 for c in self.cols), "every stratum needs 2 observed firms"
        # W = [stratum dummies, b] over observed firms; Q orthonormal basis, hat diag of W
        W = np.column_stack([(self.so == j).astype(float) for j in range(len(self.strata))] + [self.bo])
        assert np.linalg.matrix_rank(W) == W.shape[1]
        self.Q, _ = np.linalg.qr(W)
        self.HW = self.Q @ self.Q.T
        self.hW = np.einsum("ij,ij->i", self.Q, self.Q)
        self.My = self.yo - self.Q @ (self.Q.T @ self.yo)
        # clusters of observed firms (CR2)
        self.clustered = clustered
        if clustered:
            cl = self.df["cluster"].to_numpy()[self.oi]
            labs = sorted(set(cl))
            self.cl_members = [np.flatnonzero(cl == c) for c in labs]
            self.n_obs_clusters = len(labs)

    def unit_assignment_obs(self) -> np.ndarray:
        return self.unit_z.astype(np.int8)

    def enumerate(self) -> np.ndarray:
        """All K assignments of units (K x n_units int8)."""
        per = []
        for units, t in zip(self.units_by_stratum, self.t_by_stratum):
            combos = list(itertools.combinations(range(len(units)), t))
            C = np.zeros((len(combos), len(units)), dtype=np.int8)
            for r, c in enumerate(combos):
                C[r, list(c)] = 1
            per.append((units, C))
        shape = [len(C) for _, C in per]
        K = math.prod(shape)
        assert K == self.K
        idx = np.unravel_index(np.arange(K), shape)
        Z = np.zeros((K, self.n_units), dtype=np.int8)
        for (units, C), ix in zip(per, idx):
            Z[:, units] = C[ix]
        return Z

    def mc_chunk(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` independent draws: within each stratum, the t_s units with the smallest of
        i.i.d. uniforms (one per unit, drawn for all units at once in unit order) are treated."""
        U = rng.random((size, self.n_units))
        Z = np.zeros((size, self.n_units), dtype=np.int8)
        for units, t in zip(self.units_by_stratum, self.t_by_stratum):
            o = np.argsort(U[:, units], axis=1, kind="stable")[:, :t]
            sub = np.zeros((size, len(units)), dtype=np.int8)
            np.put_along_axis(sub, o, 1, axis=1)
            Z[:, units] = sub
        return Z


# ------------------------------------------------------------------------------------------------
# statistics of a batch of assignments
def dim_batch(d: Design, Zo: np.ndarray, v: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Blocked difference in means of v (unweighted: w None, stratum weight = observed firms;
    weighted: m-weighted means, stratum weight = sum of m over observed firms). Strata without an
    observed firm of both arms are left out of that assignment's statistic."""
    num = np.zeros(Zo.shape[0])
    den = np.zeros(Zo.shape[0])
    for cols in d.cols:
        Zj = Zo[:, cols]
        Cj = 1.0 - Zj
        vj = v[cols]
        if w is None:
            nt = Zj.sum(axis=1)
            nc = Cj.sum(axis=1)
            st = Zj @ vj
            sc = Cj @ vj
            Wj = float(len(cols))
        else:
            wj = w[cols]
            nt = Zj @ wj
            nc = Cj @ wj
            st = Zj @ (wj * vj)
            sc = Cj @ (wj * vj)
            Wj = float(wj.sum())
        ok = (Zj.sum(axis=1) > 0) & (Cj.sum(axis=1) > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = st / nt - sc / nc
        num += np.where(ok, Wj * tau, 0.0)
        den += np.where(ok, Wj, 0.0)
    assert (den > 0).all(), "some assignment has no stratum with both arms observed"
    return num / den


def ancova_batch(d: Design, Zo: np.ndarray, want_t: bool):
    """Coefficient of z in OLS y ~ z + b + stratum dummies (via Frisch-Waugh-Lovell: r = M_W z),
    its c* = same coefficient with y replaced by the observed z, and (want_t) coef / HC2 SE
    (or CR2 in clustered). Returns (a, c, t, min 1-h or min eigenvalue of I - H_gg)."""
    R = Zo - (Zo @ d.Q) @ d.Q.T
    rr = np.einsum("ij,ij->i", R, R)
    assert (rr > 1e-10).all(), "z collinear with the stratum dummies and b"
    beta = (R @ d.yo) / rr
    c = (R @ d.zo) / rr
    if not want_t:
        return beta, c, None, None
    E = d.My[None, :] - R * beta[:, None]
    if not d.clustered:
        h = d.hW[None, :] + R * R / rr[:, None]
        one_minus_h = 1.0 - h
        V = np.einsum("ij,ij->i", R * R, E * E / one_minus_h) / rr ** 2
        return beta, c, beta / np.sqrt(V), float(one_minus_h.min())
    V = np.zeros(Zo.shape[0])
    min_eig = np.inf
    for g in d.cl_members:
        Rg = R[:, g]
        Eg = E[:, g]
        Hgg = d.HW[np.ix_(g, g)][None, :, :] + Rg[:, :, None] * Rg[:, None, :] / rr[:, None, None]
        Mg = np.eye(len(g))[None, :, :] - Hgg
        lam, U = np.linalg.eigh(Mg)
        min_eig = min(min_eig, float(lam.min()))
        Ag = np.einsum("kij,kj,klj->kil", U, 1.0 / np.sqrt(lam), U)   # (I - H_gg)^(-1/2)
        u = np.einsum("kij,kj->ki", Ag, Eg)
        V += np.einsum("ki,ki->k", Rg, u) ** 2
    V /= rr ** 2
    return beta, c, beta / np.sqrt(V), min_eig


def all_stats(d: Design, Zu: np.ndarray) -> dict:
    """Statistic values a* and c* = S(Z*, Z_obs) for a batch of unit assignments."""
    Zo = Zu[:, d.unit_of_obs].astype(float)
    out = {}
    out["dim"] = (dim_batch(d, Zo, d.yo, None), dim_batch(d, Zo, d.zo, None))
    out["dim_dagsverk"] = (dim_batch(d, Zo, d.yo, d.mo), dim_batch(d, Zo, d.zo, d.mo))
    beta, c, t, lev = ancova_batch(d, Zo, True)
    out["ancova"] = (beta, c)
    out["ancova_t"] = (t, None)
    out["_leverage_margin"] = lev
    return out


# ------------------------------------------------------------------------------------------------
# p-values and the exact confidence set
def thr(s_obs: float) -> float:
    return abs(s_obs) - TIE_REL * max(1.0, abs(s_obs))


def p_count(a: np.ndarray, s_obs: float) -> tuple[int, float]:
    """n_extreme and the smallest distance (relative to max(1,|S_obs|)) between |S*| and the
    threshold, over assignments that are not ties (| |S*| - |S_obs| | > 1e-12 max(1, |S_obs|))."""
    t = thr(s_obs)
    n = int(np.count_nonzero(np.abs(a) >= t))
    scale = max(1.0, abs(s_obs))
    tie = np.abs(np.abs(a) - abs(s_obs)) <= 1e-12 * scale
    dist = np.abs(np.abs(a[~tie]) - t) / scale
    return n, float(dist.min()) if dist.size else float("inf")


def events(astar, cstar, a, tau):
    """Event |a* - tau c*| >= |a - tau| - 1e-9 max(1, |a - tau|), broadcast over tau."""
    rhs = np.abs(a - tau)
    return np.abs(astar - tau * cstar) >= rhs - TIE_REL * np.maximum(1.0, rhs)


def ci_exact(astar: np.ndarray, cstar: np.ndarray, a: float) -> dict:
    """Exact 95% test-inversion set {tau0 : 20 n(tau0) > K}, n(tau0) = #{k : event_k(tau0)}.

    (a* - tau c*)^2 = (a - tau)^2 factors into (a - a*) = tau (1 - c*) and (a + a*) = tau (1 + c*):
    each draw has at most two crossing points r1 <= r2. Its event is constant on (-inf, r1),
    (r1, r2), (r2, inf); it is evaluated (with the tolerance) at one point inside each region and
    at r1, r2 themselves, and spread over the global sorted crossing points with difference arrays.
    """
    K = len(astar)
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = np.where(cstar != 1.0, (a - astar) / (1.0 - cstar), np.nan)
        r2 = np.where(cstar != -1.0, (a + astar) / (1.0 + cstar), np.nan)
    # crossing points beyond 1e12 (c* within rounding of +-1, or huge) are dropped: they can
    # only matter for an unbounded set, which the check below would reveal
    r1 = np.where(np.abs(r1) < 1e12, r1, np.nan)
    r2 = np.where(np.abs(r2) < 1e12, r2, np.nan)
    lo = np.fmin(r1, r2)
    hi = np.fmax(r1, r2)
    has = ~np.isnan(lo)
    assert has.all(), "a draw without a crossing point"
    X = np.unique(np.concatenate([lo, hi]))
    n = len(X)
    il = np.searchsorted(X, lo)
    ih = np.searchsorted(X, hi)
    sl = np.maximum(1.0, np.abs(lo))
    sh = np.maximum(1.0, np.abs(hi))
    eL = events(astar, cstar, a, lo - sl)
    eM = events(astar, cstar, a, 0.5 * (lo + hi))
    eR = events(astar, cstar, a, hi + sh)
    pL = events(astar, cstar, a, lo)
    pH = events(astar, cstar, a, hi)
    single = il == ih
    # interval i = (X[i-1], X[i]), i = 0..n; point i = X[i], i = 0..n-1
    di = np.zeros(n + 2, dtype=np.int64)
    dp = np.zeros(n + 1, dtype=np.int64)

    def add(d, start, stop, mask):   # add 1 on [start, stop) where mask
        start, stop = start[mask], stop[mask]
        ok = stop > start
        np.add.at(d, start[ok], 1)
        np.add.at(d, stop[ok], -1)

    zero = np.zeros(K, dtype=np.int64)
    add(di, zero, il + 1, eL)
    add(dp, zero, il, eL)
    add(di, il + 1, ih + 1, eM & ~single)
    add(dp, il + 1, ih, eM & ~single)
    add(di, ih + 1, np.full(K, n + 1), eR)
    add(dp, ih + 1, np.full(K, n), eR)
    add(dp, il, il + 1, pL)
    add(dp, ih, ih + 1, pH & ~single)
    cnt_int = np.cumsum(di)[: n + 1]
    cnt_pt = np.cumsum(dp)[:n]
    # clusters of crossing points closer than 1e-10 relative (the same root in exact arithmetic,
    # e.g. an assignment and its mirror image): one point whose count is the largest of its members
    # and the slivers between them
    gap_ok = np.diff(X) > 1e-10 * np.maximum(1.0, np.abs(X[1:]))
    starts = np.concatenate([[0], np.flatnonzero(gap_ok) + 1])
    ends = np.concatenate([starts[1:], [n]])
    Xc, cpt, cint = [], [], [int(cnt_int[0])]
    for s, e in zip(starts, ends):
        Xc.append(float(X[s:e].mean()))
        c_here = int(cnt_pt[s:e].max())
        if e - s > 1:
            c_here = max(c_here, int(cnt_int[s + 1:e].max()))
        cpt.append(c_here)
        cint.append(int(cnt_int[e]))
    Xc = np.array(Xc)
    cpt = np.array(cpt)
    cint = np.array(cint)
    acc_pt = ALPHA_DEN * cpt > K
    acc_int = ALPHA_DEN * cint > K
    # walk the line: interval 0, point 0, interval 1, ..., point nc-1, interval nc, merging
    # consecutive accepted elements into closed pieces (None = infinite end)
    nc = len(Xc)
    elems = []
    for i in range(nc + 1):
        elems.append((bool(acc_int[i]), Xc[i - 1] if i > 0 else None, Xc[i] if i < nc else None))
        if i < nc:
            elems.append((bool(acc_pt[i]), Xc[i], Xc[i]))
    pieces, cur = [], None
    for ok, left, right in elems:
        if ok:
            if cur is None:
                cur = [left, right]
            else:
                cur[1] = right
        elif cur is not None:
            pieces.append((cur[0], cur[1]))
            cur = None
    if cur is not None:
        pieces.append((cur[0], cur[1]))
    # p at a point never falls below its neighbours: the accepted set is closed
    assert all(cpt[i] >= max(cint[i], cint[i + 1]) for i in range(nc))
    return {"X": Xc, "cnt_pt": cpt, "cnt_int": cint, "pieces": pieces, "n_cross": n,
            "n_cross_clusters": nc, "min_gap": float(np.diff(Xc).min()) if nc > 1 else None}


def step_count(ci: dict, tau: np.ndarray) -> np.ndarray:
    X = ci["X"]
    j = np.searchsorted(X, tau)                  # tau in (X[j-1], X[j]] or point
    out = ci["cnt_int"][j].copy()
    for jj in (j - 1, j):
        ok = (jj >= 0) & (jj < len(X))
        jj_c = np.clip(jj, 0, len(X) - 1)
        near = ok & (np.abs(tau - X[jj_c]) <= 1e-10 * np.maximum(1.0, np.abs(tau)))
        out = np.where(near, ci["cnt_pt"][jj_c], out)
    return out


def direct_count(astar, cstar, a, taus: np.ndarray, block: int = 64) -> np.ndarray:
    out = np.empty(len(taus), dtype=np.int64)
    for s in range(0, len(taus), block):
        t = taus[s:s + block]
        out[s:s + block] = events(astar[None, :], cstar[None, :], a, t[:, None]).sum(axis=1)
    return out


def check_ci(astar, cstar, a, ci, grid_points: int) -> dict:
    """Independent checks of the step function: a direct evaluation of n(tau0) with the
    tolerance rule on an equally spaced grid over a +- 10 sd(a*), and at every accepted piece's
    end points, midpoints and the midpoints just outside them."""
    K = len(astar)
    sd = float(np.std(astar))
    grid = a + sd * np.linspace(-10.0, 10.0, grid_points)
    direct = direct_count(astar, cstar, a, grid)
    step = step_count(ci, grid)
    bad = np.flatnonzero(direct != step)
    # a grid point closer to a crossing point than the tolerance band of its draw (the 1e-9 of
    # the definition divided by the slope |1 -+ c*|) is counted there by the tolerance; the step
    # function uses the exact crossing points. Such differences are "explained" when the count
    # without the tolerance (strict >=) equals the step function's value.
    strict = np.array([int(np.count_nonzero(np.abs(astar - t * cstar) >= np.abs(a - t))) for t in grid[bad]],
                      dtype=np.int64)
    explained = int(np.count_nonzero(strict == step[bad]))
    mism = int(len(bad)) - explained
    gap_expl = [float(np.min(np.abs(ci["X"] - t))) for t in grid[bad]]
    corrected = direct.copy()
    corrected[bad[strict == step[bad]]] = strict[strict == step[bad]]
    band_flips = int(np.count_nonzero((ALPHA_DEN * direct > K) != (ALPHA_DEN * corrected > K)))
    acc_direct = ALPHA_DEN * corrected > K
    # accepted grid points must lie in the pieces, and the pieces inside the grid range
    in_pieces = np.zeros(len(grid), dtype=bool)
    for lo, hi in ci["pieces"]:
        lo_ = -np.inf if lo is None else lo
        hi_ = np.inf if hi is None else hi
        in_pieces |= (grid >= lo_) & (grid <= hi_)
    acc_mism = int(np.count_nonzero(acc_direct != in_pieces))
    X = ci["X"]
    probe, want = [], []
    for lo, hi in ci["pieces"]:
        for e, side in ((lo, -1), (hi, +1)):
            if e is None:
                continue
            probe.append(e)
            want.append(True)
            j = int(np.searchsorted(X, e))
            nb = X[j + side] if 0 <= j + side < len(X) else e + side * max(1.0, abs(e))
            probe.append(0.5 * (e + nb))
            want.append(False)
        if lo is not None and hi is not None and hi > lo:
            probe.append(0.5 * (lo + hi))
            want.append(True)
    pc = direct_count(astar, cstar, a, np.array(probe))
    probe_ok = bool(all((ALPHA_DEN * c > K) == w for c, w in zip(pc, want)))
    return {"grid_points": grid_points, "grid_range": [float(grid[0]), float(grid[-1])],
            "grid_sd": sd, "count_mismatches": mism, "accept_mismatches": acc_mism,
            "tolerance_band_differences": explained, "tolerance_band_acceptance_flips": band_flips,
            "tolerance_band_distance_to_crossing": gap_expl,
            "accepted_grid_points": int(acc_direct.sum()), "endpoint_probes_ok": probe_ok,
            "n_probes": len(probe)}


# ------------------------------------------------------------------------------------------------
# R
def hexf(x: float) -> str:
    return "NA" if x is None or (isinstance(x, float) and math.isnan(x)) else float(x).hex()


def run_r(task: str, d: Design, tmp: str, Zcheck: np.ndarray | None, extra: list[str]) -> dict:
    """Writes the data (hex floats) and the assignments to check, runs ri_reference.R."""
    data = os.path.join(tmp, "data.csv")
    with open(data, "w") as fh:
        fh.write("orgnr,z,stratum,cluster,y,b,m\n")
        for i in range(d.n_firms):
            fh.write(f"{d.df['orgnr'][i]},{d.z_firm[i]},{d.df['stratum'][i]},{d.df['cluster'][i]},"
                     f"{hexf(d.y[i])},{hexf(d.b[i])},{hexf(d.m[i])}\n")
    zfile = os.path.join(tmp, "assign.csv")
    if Zcheck is not None:
        np.savetxt(zfile, Zcheck[:, d.unit_of_firm], fmt="%d", delimiter=",")
    out = os.path.join(tmp, "r_out.json")
    cmd = ["Rscript", "--vanilla", R_SCRIPT, task, data, zfile if Zcheck is not None else "-", out,
           "clustered" if d.clustered else "hc2"] + extra
    env = dict(os.environ, LC_ALL="C")
    subprocess.run(cmd, check=True, env=env)
    with open(out) as fh:
        return json.load(fh)


def unhex(v):
    if isinstance(v, list):
        return [unhex(x) for x in v]
    if v is None or v == "NA":
        return float("nan")
    return float.fromhex(v)


def rel(x, y) -> float:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    return float(np.max(np.abs(x - y) / np.maximum(1e-300, np.maximum(np.abs(x), np.abs(y)))))


def statsmodels_hc2(d: Design) -> tuple[float, float]:
    import statsmodels.api as sm
    X = np.column_stack([d.zo, d.bo] + [(d.so == j).astype(float) for j in range(len(d.strata))])
    res = sm.OLS(d.yo, X).fit(cov_type="HC2")
    return float(res.params[0]), float(res.bse[0])


def statsmodels_cr_check(d: Design) -> tuple[float, float]:
    """statsmodels has no CR2: the CR0 SE with explicit dummies (a sanity check of the
    FWL/cluster plumbing only; CR2 itself is checked against estimatr and clubSandwich)."""
    import statsmodels.api as sm
    X = np.column_stack([d.zo, d.bo] + [(d.so == j).astype(float) for j in range(len(d.strata))])
    groups = pd.factorize(d.df["cluster"].to_numpy()[d.oi])[0]
    res = sm.OLS(d.yo, X).fit(cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False})
    return float(res.params[0]), float(res.bse[0])


def cr0_numpy(d: Design) -> float:
    Zo = d.zo[None, :]
    R = Zo - (Zo @ d.Q) @ d.Q.T
    rr = float((R * R).sum())
    beta = float(R[0] @ d.yo) / rr
    E = d.My - R[0] * beta
    V = sum(float(R[0, g] @ E[g]) ** 2 for g in d.cl_members) / rr ** 2
    return math.sqrt(V)


# ------------------------------------------------------------------------------------------------
def versions(r_versions: dict) -> dict:
    import statsmodels
    v = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
         "pandas": pd.__version__, "statsmodels": statsmodels.__version__}
    v.update(r_versions)
    return v


def jfloat(x):
    if x is None:
        return None
    return float(x)


def run_case(name: str, spec: dict) -> dict:
    t0 = time.time()
    case_dir = os.path.join(OUT_DIR, name)
    os.makedirs(case_dir, exist_ok=True)
    rows = make_case(name, spec)
    firms_path = os.path.join(case_dir, "firms.csv")
    write_firms(rows, firms_path)
    d = Design(firms_path, clustered=(name == "clustered"))
    mc = name == "coin_large"
    z_obs_u = d.unit_assignment_obs()
    log = {"case": name}

    # ---- the assignments and their statistics
    if not mc:
        Z = d.enumerate()
        hits = np.flatnonzero((Z == z_obs_u[None, :]).all(axis=1))
        assert len(hits) == 1
        obs_row = int(hits[0])
        st = all_stats(d, Z)
        obs_vals = {k: float(v[0][obs_row]) for k, v in st.items() if not k.startswith("_")}
        lev_margin = st["_leverage_margin"]
        n_draws = d.K
    else:
        st_obs = all_stats(d, z_obs_u[None, :])
        obs_vals = {k: float(v[0][0]) for k, v in st_obs.items() if not k.startswith("_")}
        rng = np.random.default_rng(spec["seed"] + 1)
        acc = {k: ([], []) for k in ("dim", "dim_dagsverk", "ancova", "ancova_t")}
        lev_margin = np.inf
        Zfirst = None
        for s in range(0, MC_DRAWS, MC_CHUNK):
            Zc = d.mc_chunk(rng, MC_CHUNK)
            if Zfirst is None:
                Zfirst = Zc[:R_CHECK_DRAWS].copy()
            stc = all_stats(d, Zc)
            lev_margin = min(lev_margin, stc["_leverage_margin"])
            for k in acc:
                acc[k][0].append(stc[k][0])
                if stc[k][1] is not None:
                    acc[k][1].append(stc[k][1])
        st = {k: (np.concatenate(v[0]), np.concatenate(v[1]) if v[1] else None) for k, v in acc.items()}
        n_draws = MC_DRAWS
    t_enum = time.time() - t0
    # exact-arithmetic identities that the CI relies on
    for k in ("dim", "dim_dagsverk", "ancova"):
        if not mc:
            assert abs(st[k][1][obs_row] - 1.0) < 1e-12, (k, st[k][1][obs_row])
    # ---- p-values and CIs
    stats_out = {}
    checks = {}
    for k in ("dim", "dim_dagsverk", "ancova", "ancova_t"):
        a_star, c_star = st[k]
        s_obs = obs_vals[k]
        n_ext, margin = p_count(a_star, s_obs)
        entry = {"observed": s_obs, "p_value": n_ext / n_draws, "n_extreme": n_ext}
        if mc:
            p = n_ext / n_draws
            entry["n_draws"] = n_draws
            entry["mc_se"] = math.sqrt(p * (1 - p) / n_draws)
            entry["p_value_plus1"] = (n_ext + 1) / (n_draws + 1)
        chk = {"threshold_margin_rel": margin, "n_ties_at_1e-12": int(np.count_nonzero(
            np.abs(np.abs(a_star) - abs(s_obs)) <= 1e-12 * max(1.0, abs(s_obs))))}
        if c_star is not None:
            ci = ci_exact(a_star, c_star, s_obs)
            pieces = ci["pieces"]
            entry["ci_low"] = jfloat(pieces[0][0]) if pieces else None
            entry["ci_high"] = jfloat(pieces[-1][1]) if pieces else None
            entry["ci_connected"] = len(pieces) == 1
            entry["accepted"] = [[jfloat(lo), jfloat(hi)] for lo, hi in pieces]
            entry["ci_unbounded"] = any(lo is None or hi is None for lo, hi in pieces)
            share_c_ge1 = float(np.mean(np.abs(c_star) >= 1.0 - 1e-12))
            # counts at the end points (n(tau0) on the accepted side and just outside)
            X = ci["X"]
            ends = {}
            for side, e in (("low", entry["ci_low"]), ("high", entry["ci_high"])):
                if e is None:
                    continue
                j = int(np.searchsorted(X, e - 1e-10 * max(1.0, abs(e))))
                ends[side] = {"n_at_point": int(ci["cnt_pt"][j]),
                              "n_outside": int(ci["cnt_int"][j] if side == "low" else ci["cnt_int"][j + 1]),
                              "n_inside": int(ci["cnt_int"][j + 1] if side == "low" else ci["cnt_int"][j])}
            for side, e in (("low", entry["ci_low"]), ("high", entry["ci_high"])):
                if e is None:
                    continue
                j = int(np.searchsorted(X, e - 1e-10 * max(1.0, abs(e))))
                nb = [abs(X[jj] - e) for jj in (j - 1, j + 1) if 0 <= jj < len(X)]
                ends[side]["gap_to_neighbour_crossing_rel"] = float(min(nb) / max(1.0, abs(e)))
            entry["endpoint_counts"] = ends
            if not mc:
                assert all(v["gap_to_neighbour_crossing_rel"] >= 2.5e-8 for v in ends.values()), ends
            g = check_ci(a_star, c_star, s_obs, ci, GRID_POINTS_MC if mc else GRID_POINTS)
            g.update({"n_crossing_points": ci["n_cross"], "n_crossing_clusters": ci["n_cross_clusters"],
                      "min_gap_between_crossings": ci["min_gap"], "share_abs_c_ge_1": share_c_ge1,
                      "c_star_range": [float(c_star.min()), float(c_star.max())]})
            chk["ci"] = g
            assert g["count_mismatches"] == 0 and g["accept_mismatches"] == 0 and g["endpoint_probes_ok"], g
        stats_out[k] = entry
        checks[k] = chk
    t_stats = time.time() - t0

    # ---- R and statsmodels at the observed assignment, R on re-drawn assignments
    rng_chk = np.random.default_rng(spec["seed"] + 2)
    if not mc:
        if d.K <= R_CHECK_DRAWS:
            pick = np.arange(d.K)
        else:
            pick = np.sort(np.concatenate([[obs_row], rng_chk.choice(d.K, R_CHECK_DRAWS - 1, replace=False)]))
            pick = np.unique(pick)
        Zchk = Z[pick]
        st_chk = {k: v[0][pick] for k, v in st.items() if not k.startswith("_")}
    else:
        Zchk = Zfirst
        st_chk = {k: v[0][:R_CHECK_DRAWS] for k, v in st.items() if not k.startswith("_")}
    extra = []
    if mc:
        extra = [str(MC_DRAWS), str(spec["seed"] + 3)]
    with tempfile.TemporaryDirectory() as tmp:
        r = run_r("coin" if mc else "check", d, tmp, Zchk, extra)
    r_ver = r["versions"]
    cross = {}
    ro = r["observed"]
    cross["ancova_coef_vs_estimatr_fe"] = rel(obs_vals["ancova"], unhex(ro["coef_fe"]))
    cross["ancova_coef_vs_estimatr_dummies"] = rel(obs_vals["ancova"], unhex(ro["coef_dummy"]))
    cross["ancova_t_vs_estimatr_fe"] = rel(obs_vals["ancova_t"], unhex(ro["t_fe"]))
    cross["ancova_t_vs_estimatr_dummies"] = rel(obs_vals["ancova_t"], unhex(ro["t_dummy"]))
    cross["dim_vs_R"] = rel(obs_vals["dim"], unhex(ro["dim"]))
    cross["dim_dagsverk_vs_R"] = rel(obs_vals["dim_dagsverk"], unhex(ro["dim_dagsverk"]))
    if d.clustered:
        cross["ancova_t_vs_clubSandwich_CR2"] = rel(obs_vals["ancova_t"], unhex(ro["t_clubsandwich"]))
        b_sm, se_sm = statsmodels_cr_check(d)
        cross["CR0_se_numpy_vs_statsmodels"] = rel(cr0_numpy(d), se_sm)
        cross["ancova_coef_vs_statsmodels"] = rel(obs_vals["ancova"], b_sm)
    else:
        cross["ancova_t_vs_sandwich_vcovHC_HC2"] = rel(obs_vals["ancova_t"], unhex(ro["t_sandwich"]))
        b_sm, se_sm = statsmodels_hc2(d)
        cross["ancova_coef_vs_statsmodels"] = rel(obs_vals["ancova"], b_sm)
        cross["ancova_t_vs_statsmodels_HC2"] = rel(obs_vals["ancova_t"], b_sm / se_sm)
    rd = r["draws"]
    for k in ("dim", "dim_dagsverk", "ancova", "ancova_t"):
        rv = np.array(unhex(rd[k]))
        cross[f"draws_{k}_vs_R"] = rel(st_chk[k], rv)
        cross[f"draws_{k}_vs_R_max_abs"] = float(np.max(np.abs(st_chk[k] - rv)))
    cross["n_draws_checked_in_R"] = int(len(Zchk))
    cross["R_draws_se_type"] = rd["se_type"]
    for key, val in cross.items():
        if isinstance(val, float):
            assert val < 1e-9, (name, key, val)
    coin = None
    if mc:
        rc = r["coin"]
        p_coin = rc["p_approx"]
        coin = {
            "call": rc["call"],
            "teststat": "scalar",
            "nresample": MC_DRAWS,
            "seed": spec["seed"] + 3,
            "statistic_standardized": unhex(rc["statistic"]),
            "linear_statistic": unhex(rc["linear"]),
            "expectation": unhex(rc["expectation"]),
            "variance": unhex(rc["variance"]),
            "p_value": p_coin,
            "mc_se": math.sqrt(p_coin * (1 - p_coin) / MC_DRAWS),
            "conf_int_99": rc["p_conf_int"],
            "p_asymptotic": rc["p_asympt"],
            "linear_statistic_dim": rc["linear_dim"],
        }
        # the equivalence, numerically. coin's linear statistic is that of the first level of
        # factor(z), "0": T0 = sum (1 - z) y = sum y - T with T = sum z y, and sum y is the same in
        # every draw; its standardized form is (T0 - E T0) / sd = -(T - E T) / sd, and
        # dim = alpha (T - E T) with alpha = (1/n_t + 1/n_c) / J (equal strata, equal n_t).
        nt, nc, J = 8, 12, len(d.strata)
        alpha = (1 / nt + 1 / nc) / J
        T_obs = float(d.zo @ d.yo)
        ET = sum(nt / len(c) * float(d.yo[c].sum()) for c in d.cols)
        T0_obs = float((1 - d.zo) @ d.yo)
        ET0 = sum(nc / len(c) * float(d.yo[c].sum()) for c in d.cols)
        cross["coin_linear_statistic_vs_sum_(1-z)y"] = rel(T0_obs, coin["linear_statistic"])
        cross["coin_expectation_vs_formula"] = rel(ET0, coin["expectation"])
        cross["dim_vs_alpha_times_T_minus_ET"] = rel(obs_vals["dim"], alpha * (T_obs - ET))
        z_std = -(T_obs - ET) / math.sqrt(coin["variance"])
        cross["coin_standardized_vs_formula"] = rel(z_std, coin["statistic_standardized"])
        # on our own draws, |dim*| >= thr  <=>  |T* - ET| >= |T_obs - ET| (ranking is identical)
        a_dim = st["dim"][0]
        T_draws_centered = a_dim / alpha
        n_T = int(np.count_nonzero(np.abs(T_draws_centered) >= abs(T_obs - ET) * (1 - TIE_REL)))
        cross["own_draws_n_extreme_via_T"] = n_T
        p_own = stats_out["dim"]["p_value"]
        se_diff = math.sqrt(coin["mc_se"] ** 2 + stats_out["dim"]["mc_se"] ** 2)
        cross["coin_asymptotic_vs_2_norm_sf"] = rel(coin["p_asymptotic"],
                                                    2 * sps.norm.sf(abs(coin["statistic_standardized"])))
        cross["coin_minus_own_dim_p"] = p_coin - p_own
        cross["coin_minus_own_dim_p_in_se"] = (p_coin - p_own) / se_diff
        assert abs(cross["coin_minus_own_dim_p_in_se"]) < 4.5
        for key in ("coin_linear_statistic_vs_sum_(1-z)y", "coin_expectation_vs_formula",
                    "dim_vs_alpha_times_T_minus_ET", "coin_standardized_vs_formula",
                    "coin_asymptotic_vs_2_norm_sf"):
            assert cross[key] < 1e-9, (key, cross[key])
    t_all = time.time() - t0

    # ---- the fixture
    design = {}
    for j, s in enumerate(d.strata):
        units = d.units_by_stratum[j]
        design[s] = {"units": int(len(units)), "treated_units": d.t_by_stratum[j],
                     "firms": int(np.count_nonzero(d.stratum_idx == j)),
                     "observed_firms": int(len(d.cols[j])),
                     "observed_treated_firms": int(d.zo[d.cols[j]].sum())}
    tools = versions(r_ver)
    if mc:
        tol_rule = ("monte_carlo: compare p-values with your own draws B: |p_rust - p_value| <= "
                    "4.5 * sqrt(p(1-p) (1/B + 1/n_draws)); observed statistics relative 1e-10. "
                    "CIs here come from the 1e6 seeded numpy draws and are informational "
                    "(their end points move with the draws)")
    else:
        tol_rule = ("exact: n_extreme must match exactly (p = n_extreme / K; an assignment counts "
                    "when |S*| >= |S_obs| - 1e-9 max(1, |S_obs|)); observed statistics relative "
                    "1e-10; CI end points and accepted-interval bounds relative 1e-9 (each is the "
                    "crossing point (a - a*)/(1 - c*) or (a + a*)/(1 + c*) of one assignment, "
                    "computed in float64; the nearest other crossing point is at least 2.5e-8 "
                    "relative away in every case); ci_connected and the number of accepted "
                    "intervals exactly; tau0 accepted iff 20 n_extreme(tau0) > K, i.e. "
                    "p(tau0) > 0.05 strictly (K is a multiple of 20 here, so just outside each "
                    "end point p is exactly 0.05)")
    provenance = (f"python {platform.python_version()} numpy {np.__version__} scipy {scipy.__version__} "
                  f"pandas {pd.__version__} statsmodels {tools['statsmodels']} / R {r_ver['R']} "
                  f"estimatr {r_ver['estimatr']} sandwich {r_ver['sandwich']}"
                  + (f" coin {r_ver['coin']}" if mc else "")
                  + (f" clubSandwich {r_ver['clubSandwich']}" if d.clustered else "")
                  + f"; {COMMAND} {name}")
    expected = {
        "case": name,
        "method": "monte_carlo" if mc else "exact",
        "note": spec["note"],
        "n_firms": d.n_firms,
        "n_observed": d.n_obs,
        "n_units": d.n_units,
        "n_strata": len(d.strata),
        "K": d.K if d.K < 2 ** 53 else str(d.K),
        "randomization_unit": "cluster" if d.clustered else "firm",
        "tolerance_rule": tol_rule,
        "design": design,
        "statistics": stats_out,
    }
    if mc:
        expected["monte_carlo"] = {
            "n_draws": MC_DRAWS, "seed": spec["seed"] + 1, "chunk": MC_CHUNK,
            "procedure": "numpy default_rng(seed); per chunk of 20,000 draws rng.random((20000, "
                         "n_units)) with units in sorted-orgnr order; within each stratum the "
                         "t_s units with the smallest uniforms are treated; p = n_extreme / n_draws "
                         "(the observed assignment is not added)"}
        expected["coin"] = coin
    expected["ancova_t_se"] = "CR2 (clusters = cluster)" if d.clustered else "HC2"
    expected["checks"] = {"crosscheck": cross, "per_statistic": checks,
                          "leverage_margin": lev_margin,
                          "leverage_margin_meaning": ("min eigenvalue of I - H_gg over clusters and draws"
                                                      if d.clustered else "min 1 - h_ii over firms and draws")}
    expected["tools"] = tools
    expected["command"] = f"{COMMAND} {name}"
    expected["provenance"] = provenance
    with open(os.path.join(case_dir, "expected.json"), "w") as fh:
        json.dump(expected, fh, indent=1, sort_keys=False, allow_nan=False)
        fh.write("\n")
    with open(os.path.join(case_dir, "HEADER.txt"), "w") as fh:
        fh.write(provenance + "\n")
    print(f"[{name}] K={d.K} enum {t_enum:.1f}s stats+CI {t_stats:.1f}s total {t_all:.1f}s",
          file=sys.stderr)
    for k, e in stats_out.items():
        print(f"   {k:13s} S={e['observed']:+.6f} p={e['p_value']:.6f} n={e['n_extreme']}"
              + (f" CI=[{e['ci_low']}, {e['ci_high']}] conn={e['ci_connected']}" if "ci_low" in e else ""),
              file=sys.stderr)
    return {"case": name, "seconds": t_all}


def main(argv: list[str]) -> None:
    names = argv or list(CASES)
    os.makedirs(OUT_DIR, exist_ok=True)
    for nm in names:
        run_case(nm, CASES[nm])


if __name__ == "__main__":
    main(sys.argv[1:])
