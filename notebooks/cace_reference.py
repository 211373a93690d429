#!/usr/bin/env python3
"""Reference fixtures for `cace_iv` and its Anderson-Rubin confidence set (issue 14).

    python3 notebooks/cace_reference.py [--grid 2000] [case ...]

(see notebooks/README-cace.md). For every case in CASES it

1. writes `tests/fixtures/cace/<case>/takeup.csv` (docs/data-formats.md §3: orgnr,status,dato) from
   a seeded `numpy.random.default_rng`, and `cace.json` (cut-off, source estimates case, seed,
   note); rerunning rewrites the same bytes;
2. derives the firm-level data of every contrast exactly as `itt_ancova` uses it, by importing
   `estimates_reference` (`load_case`, `derive`, `contrast`) on the source case in
   `tests/fixtures/estimates/<source>/`, and D_i = 1 when the firm has an AKTIV row dated on or
   before the cut-off (no take-up row: D = 0);
3. runs `notebooks/cace_reference.R` (estimatr 1.0.0: `iv_robust`, the first stage and the reduced
   form with `lm_robust`, and the AR set by grid inversion with `lm_robust`);
4. recomputes everything in numpy (2SLS with HC2/CR2 on the structural residuals, the joint
   covariance V_yy, V_yd, V_dd of the reduced-form and first-stage z coefficients, the AR quadratic
   and its roots) and with linearmodels `IV2SLS`, and compares;
5. writes `expected.csv` (the fixture), `ar_points.csv` (the AR statistic at a few beta per row)
   and `crosscheck.csv` (the second opinions with their relative differences).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats as sps  # noqa: E402

import estimates_reference as er  # noqa: E402  (derive, contrast, load_case, hexf, unhex, fmt, rel)

ROOT = os.path.dirname(HERE)
EST_DIR = os.path.join(ROOT, "tests", "fixtures", "estimates")
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "cace")
R_SCRIPT = os.path.join(HERE, "cace_reference.R")

# ------------------------------------------------------------------------------------------------
# the cases. `receive`: probability that a firm of the arm has received help by the cut-off
# (Bernoulli per firm, in orgnr order), or `exact`: the number of receivers per arm (drawn without
# replacement among the arm's firms). `control_receivers`: control firms that receive help anyway
# (two-sided non-compliance). `klynge`: take-up decided per klynge (clustered case).
CASES = {
    "balanced": {
        "source": "balanced", "seed": 2026_1401, "cutoff": "2025-06-30",
        "receive": {"bred_prosess": 0.9, "ledere": 0.7, "digital": 0.55},
        "control_receivers": 3,
        "note": "strong instrument, two-sided non-compliance: take-up 0.9 / 0.7 / 0.55 in the "
                "three treated arms, 3 control firms receive help anyway",
    },
    "unbalanced": {
        "source": "unbalanced", "seed": 2026_1402, "cutoff": "2025-06-30",
        "receive": {"bred_prosess": 0.75, "ledere": 0.5},
        "control_receivers": 0,
        "note": "one-sided non-compliance (no control firm receives help); the source case has "
                "attrition and missing baselines (b_missing in the model); attrited firms have "
                "take-up rows too, which must not matter",
    },
    "clustered": {
        "source": "clustered", "seed": 2026_1403, "cutoff": "2025-06-30",
        "klynge": {"bred_prosess": (0.8, 0.9), "ledere": (0.6, 0.85)}, "alone": 0.6,
        "control_receivers": 0, "control_klynger": 1,
        "note": "CR2 by klynge; take-up decided per klynge (a klynge takes up with the first "
                "probability, then each of its firms with the second; firms randomized alone "
                "with 0.6); two-sided: the firms of one control klynge receive help",
    },
    "collinear": {
        "source": "collinear", "seed": 2026_1404, "cutoff": "2025-06-30",
        "receive": {"bred_prosess": 0.6},
        "control_receivers": 0,
        "note": "one-sided; b_missing equals one stratum's indicator (absorbed by the stratum "
                "effects, so it is dropped in both stages)",
    },
    "weak": {
        "source": "balanced", "seed": 2026_1415, "cutoff": "2025-06-30",
        "exact": {"kontroll": 11, "bred_prosess": 12, "ledere": 15, "digital": 13},
        "note": "weak instrument: the balanced data with take-up 0.29 in control and about 0.4 "
                "in every treated arm (two-sided; exact counts; the seed was picked among "
                "2026_1405..2026_1416 as the one whose first-stage F is within 0.5-2 in every "
                "row): unbounded AR sets, two rays where the reduced form is significant, the "
                "whole line where it is not",
    },
}

COLUMNS = [
    "arm", "weights", "se_type", "variant", "n_units", "n_clusters", "n_obs",
    "estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high",
    "fs_estimate", "fs_std_error", "fs_df", "fs_F", "fs_p_value",
    "fs_diag_F", "fs_diag_df2", "fs_diag_p_value",
    "takeup_treated", "takeup_control", "received_treated", "n_treated", "received_control",
    "n_control",
    "rf_estimate", "rf_std_error", "rf_df",
    "V_yy", "V_yd", "V_dd",
    "ar_df", "ar_crit", "ar_shape", "ar_low", "ar_high",
    "ar_low_accepted", "ar_low_rejected", "ar_high_accepted", "ar_high_rejected",
    "ar_resolution", "ar_grid_points", "ar_t2_peak",
    "collinear_dropped", "dropped",
]


# ------------------------------------------------------------------------------------------------
# take-up records
def d(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def day(rng, lo: dt.date, hi: dt.date) -> dt.date:
    """A uniform day in [lo, hi]."""
    n = (hi - lo).days
    return lo + dt.timedelta(days=int(rng.integers(0, n + 1)))


def receiver_history(rng, start: dt.date, cutoff: dt.date) -> list[tuple[str, dt.date]]:
    d1 = day(rng, start, cutoff - dt.timedelta(days=40))
    d2 = day(rng, d1 + dt.timedelta(days=3), min(d1 + dt.timedelta(days=40), cutoff))
    h = [("KONTAKTET", d1), ("AKTIV", d2)]
    u = rng.random()
    last = d2
    if u < 0.35:   # a second delivered arbeidsform, possibly after the cut-off
        last = last + dt.timedelta(days=int(rng.integers(5, 60)))
        h.append(("AKTIV", last))
    v = rng.random()
    if v < 0.3:
        h.append(("FULLFØRT", last + dt.timedelta(days=int(rng.integers(30, 120)))))
    elif v < 0.4:
        h.append(("AVBRUTT", last + dt.timedelta(days=int(rng.integers(10, 90)))))
    return h


def nonreceiver_history(rng, start: dt.date, cutoff: dt.date) -> list[tuple[str, dt.date]]:
    u = rng.random()
    if u < 0.35:
        return []                                      # never reached
    d1 = day(rng, start, cutoff - dt.timedelta(days=20))
    if u < 0.55:
        return [("KONTAKTET", d1)]                     # contacted, nothing more
    return [("KONTAKTET", d1),
            ("TAKKET_NEI", d1 + dt.timedelta(days=int(rng.integers(2, 30))))]


def make_takeup(cfg: dict, params: dict, assign: list[dict], fd: pd.DataFrame):
    """Rows (orgnr, status, date) and the list of special firms, deterministic in cfg['seed']."""
    rng = np.random.default_rng(cfg["seed"])
    control = params["control"]
    cutoff = d(cfg["cutoff"])
    R = er.q_index(params["randomized_at"])
    start = dt.date(R // 4, 3 * (R % 4) + 1, 1) + dt.timedelta(days=5)
    firms = sorted(assign, key=lambda a: a["orgnr"])
    receive: dict[str, bool] = {}
    if "exact" in cfg:
        for arm, k in cfg["exact"].items():
            of_arm = [a["orgnr"] for a in firms if a["arm"] == arm]
            pick = set(rng.choice(len(of_arm), size=k, replace=False).tolist())
            for i, o in enumerate(of_arm):
                receive[o] = i in pick
    elif "klynge" in cfg:
        klynger = sorted({a["klynge"] for a in firms if a["klynge"]})
        arm_of_k = {k: next(a["arm"] for a in firms if a["klynge"] == k) for k in klynger}
        ctrl_k = [k for k in klynger if arm_of_k[k] == control]
        contaminated = set(rng.choice(ctrl_k, size=cfg["control_klynger"], replace=False).tolist())
        k_takes = {}
        for k in klynger:
            arm = arm_of_k[k]
            if arm == control:
                k_takes[k] = k in contaminated
            else:
                k_takes[k] = bool(rng.random() < cfg["klynge"][arm][0])
        for a in firms:
            arm, k = a["arm"], a["klynge"]
            if k:
                p_in = cfg["klynge"].get(arm, (0.0, 0.9))[1]
                receive[a["orgnr"]] = k_takes[k] and bool(rng.random() < p_in)
            else:
                receive[a["orgnr"]] = arm != control and bool(rng.random() < cfg["alone"])
    else:
        for a in firms:
            p = cfg["receive"].get(a["arm"], 0.0)
            receive[a["orgnr"]] = bool(rng.random() < p)
        ctrl = [a["orgnr"] for a in firms if a["arm"] == control]
        for i in rng.choice(len(ctrl), size=cfg["control_receivers"], replace=False):
            receive[ctrl[int(i)]] = True
    # special histories, on firms of the first treated arm that have post data (so they count)
    has_post = set(fd.loc[fd["n_post"] > 0, "orgnr"])
    first_arm = [a for a in params["arms"] if a != control][0]
    cand = [a["orgnr"] for a in firms if a["arm"] == first_arm and a["orgnr"] in has_post]
    recv_c = [o for o in cand if receive[o]]
    non_c = [o for o in cand if not receive[o]]
    special = {}
    if non_c:
        special[non_c[int(rng.integers(0, len(non_c)))]] = "late"      # AKTIV after the cut-off
    else:
        # every firm of the arm receives: make one receiver late (it then counts as not received)
        o = recv_c.pop(int(rng.integers(0, len(recv_c))))
        receive[o] = False
        special[o] = "late"
    picks = rng.choice(len(recv_c), size=3, replace=False)
    for kind, i in zip(["on_cutoff", "recontact", "aktiv_avbrutt"], picks):
        special[recv_c[int(i)]] = kind
    rows = []
    for a in firms:
        o = a["orgnr"]
        kind = special.get(o)
        if kind == "late":
            d1 = day(rng, start, cutoff - dt.timedelta(days=30))
            h = [("KONTAKTET", d1), ("AKTIV", cutoff + dt.timedelta(days=1))]
        elif kind == "on_cutoff":
            d1 = day(rng, start, cutoff - dt.timedelta(days=30))
            h = [("KONTAKTET", d1), ("AKTIV", cutoff), ("AKTIV", cutoff + dt.timedelta(days=20))]
        elif kind == "recontact":
            d1 = day(rng, start, start + dt.timedelta(days=30))
            h = [("KONTAKTET", d1), ("TAKKET_NEI", d1 + dt.timedelta(days=7)),
                 ("KONTAKTET", d1 + dt.timedelta(days=40)), ("AKTIV", d1 + dt.timedelta(days=55))]
        elif kind == "aktiv_avbrutt":
            d1 = day(rng, start, start + dt.timedelta(days=30))
            h = [("KONTAKTET", d1), ("AKTIV", d1 + dt.timedelta(days=14)),
                 ("AVBRUTT", d1 + dt.timedelta(days=60))]
        elif receive[o]:
            h = receiver_history(rng, start, cutoff)
        elif a["arm"] == control:
            h = []
        else:
            h = nonreceiver_history(rng, start, cutoff)
        for status, date in h:
            rows.append((o, status, date))
    return rows, special


ALLOWED = {  # docs/nav-data.md §6.1
    None: {"KONTAKTET"},
    "KONTAKTET": {"KONTAKTET", "TAKKET_NEI", "AKTIV"},
    "TAKKET_NEI": {"KONTAKTET"},
    "AKTIV": {"AKTIV", "FULLFØRT", "AVBRUTT"},
    "FULLFØRT": {"KONTAKTET"},
    "AVBRUTT": {"KONTAKTET"},
}


def check_histories(rows) -> None:
    prev: dict[str, tuple] = {}
    for o, s, date in rows:
        p = prev.get(o)
        if p is not None and date <= p[1]:
            raise SystemExit(f"take-up dates not increasing for {o}")
        if s not in ALLOWED[p[0] if p else None]:
            raise SystemExit(f"take-up transition {p} -> {s} not allowed for {o}")
        prev[o] = (s, date)


def write_takeup(case_dir: str, rows) -> None:
    with open(os.path.join(case_dir, "takeup.csv"), "w", newline="", encoding="utf-8") as fh:
        fh.write("orgnr,status,dato\n")
        for o, s, date in rows:
            fh.write(f"{o},{s},{date.isoformat()}\n")


def read_received(case_dir: str, cutoff: str) -> dict[str, bool]:
    """docs/data-formats.md §3: received once AKTIV; as of the cut-off: an AKTIV row dated on or
    before it. Read back from the written file (what the Rust side reads)."""
    c = d(cutoff)
    out: dict[str, bool] = {}
    with open(os.path.join(case_dir, "takeup.csv"), newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            got = r["status"] == "AKTIV" and d(r["dato"]) <= c
            out[r["orgnr"]] = out.get(r["orgnr"], False) or got
    return out


# ------------------------------------------------------------------------------------------------
# numpy: designs, joint robust covariance, 2SLS
def independent_columns(X: np.ndarray, w: np.ndarray) -> list[int]:
    """Columns kept in order, each kept when it is not a linear combination of those before."""
    Xs = X * np.sqrt(w)[:, None]
    keep: list[int] = []
    for j in range(X.shape[1]):
        if np.linalg.matrix_rank(Xs[:, keep + [j]], tol=1e-9 * max(1.0, np.abs(Xs).max())) \
                == len(keep) + 1:
            keep.append(j)
    return keep


def designs(f: pd.DataFrame, use_bmiss: bool, w: np.ndarray):
    """Z-design [z, b, (bmiss), stratum dummies] and X-design [D, b, (bmiss), dummies] with the
    columns a linear combination of earlier ones dropped in the order z (D), b, bmiss, strata --
    except that strata go first so that a b_missing equal to a stratum is the column dropped (as
    ANALYSIS.md §4 says: absorbed strata)."""
    lev = sorted(set(f["stratum"]))
    S = np.column_stack([(f["stratum"] == s).to_numpy(float) for s in lev])
    cov = [f["b"].to_numpy(float)] + ([f["bmiss"].to_numpy(float)] if use_bmiss else [])
    names = [f"stratum{j}" for j in range(len(lev))] + ["x", "b"] + (["bmiss"] if use_bmiss else [])
    Zfull = np.column_stack([S, f["z"].to_numpy(float)] + cov)
    keep = independent_columns(Zfull, w)
    Xfull = np.column_stack([S, f["D"].to_numpy(float)] + cov)
    dropped = [names[j] for j in range(len(names)) if j not in keep]
    return Zfull[:, keep], Xfull[:, keep], keep.index(len(lev)), dropped


def sqrtm_pinv(B: np.ndarray) -> np.ndarray:
    ev, U = np.linalg.eigh(B)
    ev = np.where(ev > 1e-12, np.abs(ev) ** -0.5, 0.0)
    return (U * ev) @ U.T


def robust_scores(Xr: np.ndarray, E: np.ndarray, w: np.ndarray, cl, j: int):
    """For regressors Xr (the regression's X, or X-hat for 2SLS) and residual columns E (n x p),
    the per-unit (HC2) or per-cluster (CR2) contributions g (units x p) to coefficient j, so that
    V_ab = sum g_a g_b; also the df (N - K for HC2, Satterthwaite for CR2, working model I).
    estimatr's conventions: M = (X'WX)^-1, H = X M X'W; HC2 divides by 1 - h_ii with h_ii = w_i
    x_i M x_i'; CR2 uses B_s = [(I-H)(I-H)']_ss and A_s = B_s^(+-1/2)."""
    n, K = Xr.shape
    XW = Xr * w[:, None]
    M = np.linalg.inv(Xr.T @ XW)
    c = M[j]                                         # row j of M: c'M with c = e_j
    if cl is None:
        h = w * np.einsum("ik,kl,il->i", Xr, M, Xr)
        a = (XW @ c) / np.sqrt(1.0 - h)
        return a[:, None] * E, float(n - K), h
    IH = np.eye(n) - Xr @ M @ XW.T
    cl = np.asarray(cl)
    gs, P = [], []
    for s in pd.unique(cl):
        idx = np.where(cl == s)[0]
        A = sqrtm_pinv(IH[idx, :] @ IH[idx, :].T)
        u = (XW[idx] @ c) @ A
        gs.append(u @ E[idx])
        P.append(IH[idx, :].T @ u)
    P = np.array(P)
    GG = P @ P.T
    return np.array(gs), float(np.trace(GG) ** 2 / np.sum(GG ** 2)), None


def numpy_row(f: pd.DataFrame, use_bmiss: bool, weighted: bool, clustered: bool):
    w = f["m"].to_numpy(float) if weighted else np.ones(len(f))
    w = w / w.mean()
    Zd, Xd, j, dropped = designs(f, use_bmiss, w)
    y, D = f["y"].to_numpy(float), f["D"].to_numpy(float)
    cl = f["cl"].to_numpy() if clustered else None
    # reduced form and first stage: y and D on the Z-design, jointly
    ZW = Zd * w[:, None]
    Mz = np.linalg.inv(Zd.T @ ZW)
    Y = np.column_stack([y, D])
    Bz = Mz @ (ZW.T @ Y)
    Ez = Y - Zd @ Bz
    g, df_z, _ = robust_scores(Zd, Ez, w, cl, j)
    V = g.T @ g
    pi_y, pi_d = float(Bz[j, 0]), float(Bz[j, 1])
    # 2SLS
    Xhat = Zd @ (Mz @ (ZW.T @ Xd))
    XhW = Xhat * w[:, None]
    beta = np.linalg.solve(XhW.T @ Xd, XhW.T @ y)
    e = y - Xd @ beta
    g2, df_iv, _ = robust_scores(Xhat, e[:, None], w, cl, j)
    se_iv = math.sqrt(float(g2[:, 0] @ g2[:, 0]))
    # HC0 of 2SLS (no leverage; for linearmodels' "robust")
    M2 = np.linalg.inv(Xhat.T @ XhW)
    s0 = (XhW @ M2[j]) * e
    se_hc0 = math.sqrt(float(s0 @ s0))
    return {"pi_y": pi_y, "pi_d": pi_d, "V_yy": float(V[0, 0]), "V_yd": float(V[0, 1]),
            "V_dd": float(V[1, 1]), "df_z": df_z, "beta": float(beta[j]), "se_iv": se_iv,
            "df_iv": df_iv, "se_hc0": se_hc0, "dropped": dropped, "K": Zd.shape[1]}


def ar_quadratic(nr: dict, beta):
    beta = np.asarray(beta, float)
    num = (nr["pi_y"] - beta * nr["pi_d"]) ** 2
    den = nr["V_yy"] - 2.0 * beta * nr["V_yd"] + beta ** 2 * nr["V_dd"]
    return num / den


def ar_closed_form(nr: dict, crit: float):
    """{beta: a beta^2 + b beta + c <= 0}: shape and end points (a check of the grid only)."""
    py, pd_, Vyy, Vyd, Vdd = nr["pi_y"], nr["pi_d"], nr["V_yy"], nr["V_yd"], nr["V_dd"]
    a = pd_ ** 2 - crit * Vdd
    b = -2.0 * (py * pd_ - crit * Vyd)
    c = py ** 2 - crit * Vyy
    disc = b * b - 4 * a * c
    if a > 0:
        if disc < 0:
            return "empty", None, None
        r = math.sqrt(disc)
        q = -0.5 * (b + math.copysign(r, b))
        r1, r2 = sorted([q / a, c / q])
        return "bounded", r1, r2
    if a < 0:
        if disc <= 0:
            return "whole_line", None, None
        r = math.sqrt(disc)
        q = -0.5 * (b + math.copysign(r, b))
        r1, r2 = sorted([q / a, c / q])
        return "two_rays", r1, r2
    return "degenerate", None, None


def linearmodels_iv(f: pd.DataFrame, use_bmiss: bool, weighted: bool):
    from linearmodels.iv import IV2SLS
    w = f["m"].to_numpy(float) if weighted else np.ones(len(f))
    lev = sorted(set(f["stratum"]))
    ex = pd.DataFrame({f"s{j}": (f["stratum"] == s).astype(float) for j, s in enumerate(lev)})
    ex["b"] = f["b"].to_numpy(float)
    if use_bmiss:
        ex["bmiss"] = f["bmiss"].to_numpy(float)
    keep = independent_columns(np.column_stack([ex.to_numpy(), f["z"].to_numpy(float)]), w)
    ex = ex.iloc[:, [k for k in keep if k < ex.shape[1]]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = IV2SLS(f["y"], ex, f[["D"]], f[["z"]], weights=f["m"] if weighted else None)
        res = mod.fit(cov_type="robust", debiased=False)
    return float(res.params["D"]), float(res.std_errors["D"]), list(ex.columns)


# ------------------------------------------------------------------------------------------------
# R
def run_r(jobs: list[dict], tmp: str, grid: int):
    with open(os.path.join(tmp, "meta.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arm", "clustered", "use_bmiss"])
        for j in jobs:
            w.writerow([j["arm"], int(j["clustered"]), int(j["use_bmiss"])])
            with open(os.path.join(tmp, f"firm_{j['arm']}.csv"), "w", newline="") as g:
                cw = csv.writer(g)
                cw.writerow(["orgnr", "stratum", "cl", "y", "z", "D", "b", "bmiss", "m"])
                for r in j["firm"].itertuples():
                    cw.writerow([r.orgnr, r.stratum, r.cl, er.hexf(r.y), er.hexf(r.z),
                                 er.hexf(r.D), er.hexf(r.b), er.hexf(r.bmiss), er.hexf(r.m)])
    env = dict(os.environ, LC_ALL="C", LANG="C")
    res = subprocess.run(["Rscript", "--vanilla", R_SCRIPT, tmp, str(grid)], env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit("Rscript failed")

    def rd(name, numeric):
        with open(os.path.join(tmp, name), newline="") as fh:
            out = list(csv.DictReader(fh))
        for r in out:
            for k in numeric:
                if k in r:
                    r[k] = er.unhex(r[k])
        return pd.DataFrame(out)

    fits = rd("r_fits.csv", ["estimate", "std_error", "df", "statistic", "p_value", "ci_low",
                             "ci_high", "n_obs", "n_clusters", "df_residual", "rank"])
    gridf = rd("r_grid.csv", ["beta", "coef", "se", "df", "t2"])
    ars = rd("r_ar.csv", ["centre", "scale", "ar_df", "crit", "t2_first_stage", "lo_far",
                          "hi_far", "low_accepted", "low_rejected", "high_accepted",
                          "high_rejected", "t2_peak", "beta_peak"])
    return fits, gridf, ars, res.stderr


def r_versions() -> dict:
    code = ('cat(R.version$version.string, "\\n");'
            'cat("estimatr", as.character(packageVersion("estimatr")), "\\n")')
    out = subprocess.run(["Rscript", "--vanilla", "-e", code], capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C")).stdout.strip().splitlines()
    v = {"R": out[0].strip(), "estimatr": out[1].split()[1]}
    for pkg in ["r-base-core", "r-cran-estimatr"]:
        v[pkg + " (Debian)"] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                                              capture_output=True, text=True).stdout
    return v


def py_versions() -> dict:
    import importlib.metadata as md
    v = {"python": platform.python_version()}
    for pkg in ["linearmodels", "statsmodels", "numpy", "pandas", "scipy", "formulaic"]:
        try:
            v[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return v


# ------------------------------------------------------------------------------------------------
def existing_ancova(source: str) -> dict:
    """itt_ancova rows of the estimates fixture (the reduced form must equal them)."""
    out = {}
    path = os.path.join(EST_DIR, source, "expected.csv")
    with open(path, newline="") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    for r in csv.DictReader(lines):
        if r["estimator"] == "itt_ancova":
            out[(r["arm"], r["weights"])] = r
    return out


def process(case: str, cfg: dict, grid: int, versions: dict, pyv: dict) -> float:
    t0 = time.time()
    case_dir = os.path.join(OUT_DIR, case)
    os.makedirs(case_dir, exist_ok=True)
    src = os.path.join(EST_DIR, cfg["source"])
    params, assign, stats = er.load_case(src)
    R, P, Q, fd, panel, clustered = er.derive(params, assign, stats)
    control = params["control"]
    arms = [a for a in params["arms"] if a != control]

    rows_t, special = make_takeup(cfg, params, assign, fd)
    check_histories(rows_t)
    write_takeup(case_dir, rows_t)
    meta = {
        "cutoff": cfg["cutoff"],
        "estimates_case": cfg["source"],
        "assignment": f"tests/fixtures/estimates/{cfg['source']}/assignment.csv",
        "stats": f"tests/fixtures/estimates/{cfg['source']}/stats.csv",
        "params": f"tests/fixtures/estimates/{cfg['source']}/params.json",
        "takeup": f"tests/fixtures/cace/{case}/takeup.csv",
        "received_rule": "D = 1 when the firm has an AKTIV row with dato <= cutoff; a firm "
                         "without take-up rows has D = 0",
        "noncompliance": "two-sided" if (cfg.get("control_receivers") or cfg.get("control_klynger")
                                         or cfg.get("exact", {}).get(control)) else "one-sided",
        "seed": cfg["seed"],
        "special_firms": {o: k for o, k in sorted(special.items())},
        "note": cfg["note"],
    }
    with open(os.path.join(case_dir, "cace.json"), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2, ensure_ascii=False)
        fh.write("\n")

    received = read_received(case_dir, cfg["cutoff"])
    for o, kind in special.items():
        if received.get(o, False) != (kind != "late"):
            raise SystemExit(f"{case}: special firm {o} ({kind}) read back as D={received.get(o)}")
    jobs, info = [], {}
    for arm in arms:
        f, p, dropped, dropped_by_arm, n_single, use_bmiss = er.contrast(fd, panel, arm, control)
        f = f.copy()
        f["D"] = [1.0 if received.get(o, False) else 0.0 for o in f["orgnr"]]
        info[arm] = (f, dropped, dropped_by_arm, use_bmiss)
        jobs.append({"arm": arm, "clustered": clustered, "use_bmiss": use_bmiss, "firm": f})

    with tempfile.TemporaryDirectory(prefix="ia-rct-cace-") as tmp:
        fits, gridf, ars, rerr = run_r(jobs, tmp, grid)

    anc = existing_ancova(cfg["source"])
    out_rows, pts_rows, xrows, notes = [], [], [], []

    def xadd(check, arm, wt, qty, ref, other, note=""):
        xrows.append({"check": check, "arm": arm, "weights": wt, "quantity": qty,
                      "reference": er.fmt(ref), "other": er.fmt(other),
                      "rel_diff": er.fmt(er.rel(ref, other)) if ref is not None and other is not None
                      else "", "note": note})

    def fit(arm, wt, call, variant):
        q = fits[(fits["arm"] == arm) & (fits["weights"] == wt) & (fits["call"] == call)
                 & (fits["variant"] == variant)]
        if len(q) != 1:
            raise SystemExit(f"{case}: no unique R row {arm} {wt} {call} {variant}")
        return q.iloc[0]

    worst = {"V_yy": 0.0, "V_dd": 0.0, "quad_grid": 0.0, "quad_points": 0.0, "iv_np_est": 0.0,
             "iv_np_se": 0.0, "iv_np_df": 0.0, "lm_est": 0.0, "lm_hc0": 0.0, "roots": 0.0,
             "rf_vs_estimates": 0.0, "ratio": 0.0, "variants": 0.0, "df_const": 0.0}
    for arm in arms:
        f, dropped, dropped_by_arm, use_bmiss = info[arm]
        for wt in ["firm", "dagsverk"]:
            weighted = wt == "dagsverk"
            a = ars[(ars["arm"] == arm) & (ars["weights"] == wt)].iloc[0]
            variant = a["variant"]
            se_type = a["se_type"]
            iv = fit(arm, wt, "iv_robust", variant)
            fs = fit(arm, wt, "first_stage", variant)
            rf = fit(arm, wt, "reduced_form", variant)
            for r in (iv, fs, rf):
                if str(r["note"]).startswith("ERROR"):
                    raise SystemExit(f"{case}/{arm}/{wt}: {r['note']}")
            nr = numpy_row(f, use_bmiss, weighted, clustered)
            # ---- checks: numpy vs estimatr
            chk = [("V_yy", "joint covariance (numpy) V_yy vs estimatr reduced-form SE^2",
                    rf["std_error"] ** 2, nr["V_yy"]),
                   ("V_dd", "joint covariance (numpy) V_dd vs estimatr first-stage SE^2",
                    fs["std_error"] ** 2, nr["V_dd"]),
                   ("iv_np_est", "iv_robust estimate vs numpy 2SLS", iv["estimate"], nr["beta"]),
                   ("iv_np_se", f"iv_robust {se_type} SE vs numpy (X-hat leverage, structural "
                    "residuals)", iv["std_error"], nr["se_iv"]),
                   ("iv_np_df", "iv_robust df vs numpy df (N-K, or Satterthwaite on X-hat)",
                    iv["df"], nr["df_iv"]),
                   ("ratio", "iv_robust estimate vs reduced form / first stage (estimatr)",
                    iv["estimate"], rf["estimate"] / fs["estimate"])]
            for key, label, ref, oth in chk:
                xadd(label, arm, wt, key, ref, oth)
                worst[key] = max(worst[key], er.rel(ref, oth))
            xadd("first-stage df (lm_robust) vs numpy", arm, wt, "df", fs["df"], nr["df_z"])
            worst["iv_np_df"] = max(worst["iv_np_df"], er.rel(fs["df"], nr["df_z"]))
            # the other estimatr variant (fixed_effects vs factor())
            other = "factor" if variant == "fixed_effects" else "fixed_effects"
            for call in ["iv_robust", "first_stage", "reduced_form"]:
                q = fits[(fits["arm"] == arm) & (fits["weights"] == wt) & (fits["call"] == call)
                         & (fits["variant"] == other)]
                ref = fit(arm, wt, call, variant)
                if len(q) == 1 and not str(q.iloc[0]["note"]).startswith("ERROR"):
                    for k in ["estimate", "std_error", "df"]:
                        xadd(f"{call}: {variant} (used) vs {other}", arm, wt, k, ref[k],
                             q.iloc[0][k], f"dropped used={ref['dropped']}; "
                             f"other={q.iloc[0]['dropped']}")
                        worst["variants"] = max(worst["variants"], er.rel(ref[k], q.iloc[0][k]))
                elif len(q) == 1:
                    xadd(f"{call}: {variant} (used) vs {other}", arm, wt, "error", None, None,
                         q.iloc[0]["note"])
            dg = fits[(fits["arm"] == arm) & (fits["weights"] == wt)
                      & (fits["call"] == "iv_robust_diagnostics")].iloc[0]
            F = (fs["estimate"] / fs["std_error"]) ** 2
            fs_df = fs["df"]
            pF = float(sps.f.sf(F, 1, fs_df))
            if not str(dg["note"]).startswith("ERROR"):
                xadd("first-stage F: (coef/se)^2 of lm_robust (used) vs iv_robust(diagnostics = "
                     "TRUE)$diagnostic_first_stage_fstatistic", arm, wt, "F", F, dg["estimate"],
                     f"estimatr dendf={float(dg['df'])!r} {dg['note']}; its "
                     f"p={float(dg['p_value'])!r}")
                xadd("first-stage F p-value: f.sf(F, 1, lm_robust df) (used) vs iv_robust "
                     "diagnostics p", arm, wt, "p_value", pF, dg["p_value"],
                     f"used df={float(fs_df)!r}, estimatr dendf={float(dg['df'])!r}")
            else:
                xadd("iv_robust(diagnostics = TRUE)", arm, wt, "error", None, None, dg["note"])
            # reduced form = itt_ancova of the estimates fixture
            ea = anc.get((arm, wt))
            if ea is not None:
                for k in ["estimate", "std_error", "df"]:
                    xadd("reduced form (lm_robust y ~ z ...) vs itt_ancova in "
                         f"tests/fixtures/estimates/{cfg['source']}/expected.csv", arm, wt, k,
                         float(ea[k]), rf[k])
                    worst["rf_vs_estimates"] = max(worst["rf_vs_estimates"],
                                                   er.rel(float(ea[k]), rf[k]))
            # linearmodels
            lm_b, lm_se, lm_cols = linearmodels_iv(f, use_bmiss, weighted)
            xadd("linearmodels IV2SLS estimate (stratum dummies explicit, weights=m) vs "
                 "iv_robust", arm, wt, "estimate", iv["estimate"], lm_b,
                 "exog=" + ";".join(lm_cols))
            xadd("linearmodels IV2SLS cov_type='robust' (HC0, debiased=False) SE vs numpy HC0 "
                 "of 2SLS", arm, wt, "std_error_hc0", nr["se_hc0"], lm_se,
                 "unclustered HC0 even in the clustered case")
            worst["lm_est"] = max(worst["lm_est"], er.rel(iv["estimate"], lm_b))
            worst["lm_hc0"] = max(worst["lm_hc0"], er.rel(nr["se_hc0"], lm_se))

            # ---- AR: grid vs quadratic
            g = gridf[(gridf["arm"] == arm) & (gridf["weights"] == wt)]
            crit = float(a["crit"])
            dfs = g["df"].to_numpy(float)
            worst["df_const"] = max(worst["df_const"],
                                    float(np.max(np.abs(dfs - a["ar_df"])) / a["ar_df"]))
            qv = ar_quadratic(nr, g["beta"].to_numpy(float))
            t2 = g["t2"].to_numpy(float)
            # relative difference with a floor of 1e-12 in the denominator: at beta = the 2SLS
            # estimate t^2 is ~1e-30 (rounding in pi_y - beta pi_d) in both
            relq = np.abs(qv - t2) / np.maximum(np.maximum(np.abs(t2), np.abs(qv)), 1e-12)
            worst["quad_grid"] = max(worst["quad_grid"], float(np.max(relq)))
            ph = g["phase"].to_numpy()
            by_phase = "; ".join(f"{p_}: n={int((ph == p_).sum())} "
                                 f"max={float(np.max(relq[ph == p_])):.3g}"
                                 for p_ in pd.unique(ph))
            big = t2 >= 1e-2
            by_phase += (f"; points with t^2 >= 1e-2: n={int(big.sum())} "
                         f"max={float(np.max(relq[big])):.3g}; t^2 < 1e-2 (next to the estimate, "
                         f"pi_y - beta pi_d loses digits): n={int((~big).sum())}")
            worst["quad_t2_ge_1e-2"] = max(worst.get("quad_t2_ge_1e-2", 0.0),
                                           float(np.max(relq[big])))
            xadd("AR: numpy quadratic (pi_y - b pi_d)^2 / (V_yy - 2b V_yd + b^2 V_dd) vs "
                 "estimatr lm_robust t^2 of z in (y - b D) ~ z + ..., max of |a-b|/max(|a|,|b|,"
                 f"1e-12) over every evaluated beta ({len(t2)} points)", arm, wt,
                 "max_rel_diff", 0.0, float(np.max(relq)), "by phase: " + by_phase)
            cshape, r1, r2 = ar_closed_form(nr, crit)
            shape = a["shape"]
            if cshape != shape:
                raise SystemExit(f"{case}/{arm}/{wt}: grid shape {shape} but quadratic {cshape}")
            lo_a, lo_r, hi_a, hi_r = (a["low_accepted"], a["low_rejected"], a["high_accepted"],
                                      a["high_rejected"])
            ar_low = ar_high = res_abs = None
            if shape in ("bounded", "two_rays"):
                ar_low = (lo_a + lo_r) / 2
                ar_high = (hi_a + hi_r) / 2
                res_abs = max(abs(lo_a - lo_r), abs(hi_a - hi_r))
                for root, x1, x2, nm in [(r1, lo_a, lo_r, "low"), (r2, hi_a, hi_r, "high")]:
                    inside = min(x1, x2) - 1e-12 * abs(root) <= root <= max(x1, x2) + \
                        1e-12 * abs(root)
                    dist = er.rel(root, (x1 + x2) / 2)
                    worst["roots"] = max(worst["roots"], dist)
                    xadd(f"AR {nm} end: closed-form root of the numpy quadratic vs the grid's "
                         "bisection bracket midpoint", arm, wt, f"ar_{nm}", (x1 + x2) / 2, root,
                         f"root inside [accepted, rejected] bracket: {inside}; bracket width "
                         f"{abs(x1 - x2)!r}")
                    if not inside:
                        notes.append(f"AR {arm} {wt} {nm}: closed-form root {root!r} outside the "
                                     f"grid bracket [{x1!r}, {x2!r}]")
            else:
                xadd("AR: shape without end points; grid peak t^2 vs crit", arm, wt, "t2_peak",
                     crit, a["t2_peak"], f"shape {shape}; first-stage t^2 (limit) "
                     f"{a['t2_first_stage']!r}")
            # ar_points.csv
            pts = g[g["phase"].isin(["centre", "point", "point_end"])]
            for r, q in zip(pts.itertuples(), ar_quadratic(nr, pts["beta"].to_numpy(float))):
                if r.phase != "centre":
                    worst["quad_points"] = max(worst["quad_points"], er.rel(r.t2, q))
                pts_rows.append({
                    "arm": arm, "weights": wt, "beta": er.fmt(r.beta), "ar_statistic": er.fmt(r.t2),
                    "coef_z": er.fmt(r.coef), "std_error_z": er.fmt(r.se), "df": er.fmt(r.df),
                    "crit": er.fmt(crit), "accepted": "true" if r.t2 <= crit else "false",
                    "kind": {"centre": "estimate", "point": "fixed", "point_end": "ar_end"}[r.phase],
                    "quadratic_numpy": er.fmt(float(q)),
                    "rel_diff": er.fmt(er.rel(r.t2, q)) if r.phase != "centre" else "",
                })

            z = f["z"].to_numpy(float)
            Dv = f["D"].to_numpy(float)
            wv = f["m"].to_numpy(float) if weighted else np.ones(len(f))
            tk1 = math.fsum(wv[z == 1] * Dv[z == 1]) / math.fsum(wv[z == 1])
            tk0 = math.fsum(wv[z == 0] * Dv[z == 0]) / math.fsum(wv[z == 0])
            dstr = ";".join(f"{k}={v}" for k, v in sorted(dropped.items()))
            out_rows.append({
                "arm": arm, "weights": wt, "se_type": se_type, "variant": variant,
                "n_units": len(f), "n_clusters": f["cl"].nunique() if clustered else None,
                "n_obs": int(iv["n_obs"]),
                "estimate": iv["estimate"], "std_error": iv["std_error"], "df": iv["df"],
                "statistic": iv["statistic"], "p_value": iv["p_value"], "ci_low": iv["ci_low"],
                "ci_high": iv["ci_high"],
                "fs_estimate": fs["estimate"], "fs_std_error": fs["std_error"], "fs_df": fs_df,
                "fs_F": F, "fs_p_value": pF,
                "fs_diag_F": None if str(dg["note"]).startswith("ERROR") else dg["estimate"],
                "fs_diag_df2": None if str(dg["note"]).startswith("ERROR") else dg["df"],
                "fs_diag_p_value": None if str(dg["note"]).startswith("ERROR") else dg["p_value"],
                "takeup_treated": tk1, "takeup_control": tk0,
                "received_treated": int(Dv[z == 1].sum()), "n_treated": int((z == 1).sum()),
                "received_control": int(Dv[z == 0].sum()), "n_control": int((z == 0).sum()),
                "rf_estimate": rf["estimate"], "rf_std_error": rf["std_error"], "rf_df": rf["df"],
                "V_yy": nr["V_yy"], "V_yd": nr["V_yd"], "V_dd": nr["V_dd"],
                "ar_df": a["ar_df"], "ar_crit": crit, "ar_shape": shape,
                "ar_low": ar_low, "ar_high": ar_high,
                "ar_low_accepted": lo_a if ar_low is not None else None,
                "ar_low_rejected": lo_r if ar_low is not None else None,
                "ar_high_accepted": hi_a if ar_low is not None else None,
                "ar_high_rejected": hi_r if ar_low is not None else None,
                "ar_resolution": res_abs, "ar_grid_points": int(a["grid_points"]),
                "ar_t2_peak": a["t2_peak"],
                "collinear_dropped": iv["dropped"], "dropped": dstr,
            })
            if iv["dropped"] or nr["dropped"]:
                notes.append(f"{arm} {wt}: estimatr iv_robust ({variant}) dropped "
                             f"'{iv['dropped']}'; first stage dropped '{fs['dropped']}'; numpy "
                             f"design dropped {nr['dropped']} (strata first, then z/D, b, bmiss)")
            if variant == "factor":
                notes.append(f"{arm} {wt}: iv_robust/lm_robust(fixed_effects = ~stratum) refused "
                             "by estimatr 1.0.0 for weighted CR2; the row uses + factor(stratum) "
                             "in both stages and in the AR regressions")

    write_outputs(case, cfg, case_dir, params, arms, control, clustered, info, out_rows, pts_rows,
                  xrows, notes, worst, versions, pyv, rerr, grid, meta)
    secs = time.time() - t0
    print(f"{case}: {secs:.1f} s; worst: " + ", ".join(f"{k}={v:.2e}" for k, v in worst.items()))
    return secs


def write_outputs(case, cfg, case_dir, params, arms, control, clustered, info, out_rows, pts_rows,
                  xrows, notes, worst, versions, pyv, rerr, grid, meta):
    H = []
    H.append(f"ia-rct cace_iv fixture: case {case} (issue 14; protocols/ANALYSIS.md §2-§4 data, "
             "docs/statistics.md B.7)")
    H.append(f"produced by: python3 notebooks/cace_reference.py {case} (R half: LC_ALL=C Rscript "
             "--vanilla notebooks/cace_reference.R <tmp> <grid>, data passed as C99 hex floats)")
    H.append("tools: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    H.append("tools: " + ", ".join(f"{k} {v}" for k, v in pyv.items()))
    H.append(f"inputs: assignment/stats/params of tests/fixtures/estimates/{cfg['source']}/, "
             f"take-up tests/fixtures/cace/{case}/takeup.csv, cutoff {cfg['cutoff']} "
             f"({meta['noncompliance']} non-compliance); D = 1 when the firm has an AKTIV row "
             "dated on or before the cutoff, else 0 (no rows: 0)")
    H.append(f"design: randomized_at={params['randomized_at']} pre={params['pre']} "
             f"post={params['post']} control={control} arms={','.join(arms)} "
             f"clustered={'yes (cluster = klynge, else orgnr)' if clustered else 'no'}")
    for arm in arms:
        f, dropped, dropped_by_arm, use_bmiss = info[arm]
        H.append(f"contrast {arm} vs {control}: firms={len(f)} (z=1: {int(f['z'].sum())}) "
                 f"strata={f['stratum'].nunique()} clusters={f['cl'].nunique()} "
                 f"no_post_data by arm={dict(sorted(dropped_by_arm.items()))} b_missing firms="
                 f"{int(f['bmiss'].sum())} (indicator in the model: {'yes' if use_bmiss else 'no'})"
                 f" received: z=1 {int(f.loc[f['z'] == 1, 'D'].sum())}, z=0 "
                 f"{int(f.loc[f['z'] == 0, 'D'].sum())}")
    H.append("cace_iv: estimatr iv_robust(y ~ D + b [+ bmiss] | z + b [+ bmiss], fixed_effects = "
             "~stratum, se_type = 'HC2' | 'CR2' [, clusters = cl] [, weights = m]); variant "
             "'factor' = + factor(stratum) in both parts instead of fixed_effects (estimatr 1.0.0 "
             "refuses fixed_effects with weighted CR2); estimate..ci_high are iv_robust's "
             "(HC2/CR2 on the structural residuals y - X b, leverage from the second-stage "
             "projection including the stratum dummies; df N - K, CR2: Satterthwaite on X-hat; "
             "CI with qt(0.975, df))")
    H.append("fs_*: lm_robust(D ~ z + b [+ bmiss], same stratum effects, se_type, clusters, "
             "weights); fs_F = (fs_estimate / fs_std_error)^2, fs_p_value = scipy f.sf(fs_F, 1, "
             "fs_df) (= 2 t.sf(|t|, fs_df)); fs_df = lm_robust's df of z (N - K; CR2: "
             "Satterthwaite)")
    H.append("fs_diag_*: estimatr's own iv_robust(..., diagnostics = TRUE)"
             "$diagnostic_first_stage_fstatistic on the factor(stratum) variant (estimatr returns "
             "no diagnostics with fixed_effects): value, dendf, p.value. Same F; its dendf is "
             "N - K unclustered but G - 1 with clusters (not the CR2 Satterthwaite df), so its p "
             "differs from fs_p_value in clustered cases")
    H.append("rf_*: lm_robust(y ~ z + b [+ bmiss], same) = itt_ancova (checked against the "
             "estimates fixture in crosscheck.csv); estimate = rf_estimate / fs_estimate exactly")
    H.append("takeup_treated/control: share of D = 1 among the contrast's z = 1 / z = 0 firms "
             "after attrition, weighted by m = sum_post(mulige) for dagsverk (raw means, no "
             "stratum adjustment); received_*/n_*: unweighted counts")
    H.append("V_yy, V_yd, V_dd: joint HC2/CR2 covariance of the z coefficients of the reduced form "
             "(y) and the first stage (D), numpy (notebooks/cace_reference.py robust_scores): "
             "HC2 V_ab = sum_i c_i^2 e_ai e_bi / (1 - h_ii), c_i = [(X'WX)^-1 x_i' w_i]_z, "
             "h_ii = w_i x_i (X'WX)^-1 x_i'; CR2 V_ab = sum_s (c_s' A_s e_as)(c_s' A_s e_bs), "
             "A_s = [(I-H)(I-H)']_ss^(+-1/2), H = X(X'WX)^-1 X'W (working model I); "
             "V_yy, V_dd equal rf_std_error^2, fs_std_error^2 (crosscheck.csv)")
    H.append("AR set: {beta : t^2(beta) <= ar_crit}, t^2(beta) = (coef/se)^2 of z in estimatr "
             "lm_robust(u ~ z + b [+ bmiss], same stratum effects/se_type/clusters/weights), "
             "u = y - beta D; ar_crit = qt(0.975, ar_df)^2, ar_df = that regression's df (does "
             "not depend on beta; = fs_df). Grid inversion: beta = estimate + std_error * "
             f"tan(theta), {grid - 1} theta on (-pi/2, pi/2) equally spaced, plus far points "
             "(+-1e8 std_error), each change of verdict bisected to <= 1e-10 relative; the limit "
             "beta -> +-inf is accepted iff fs_F <= ar_crit")
    H.append("ar_shape: bounded = [ar_low, ar_high]; two_rays = (-inf, ar_low] U [ar_high, inf); "
             "whole_line (no end points); empty. ar_low/ar_high = midpoints of the final "
             "brackets [ar_*_accepted, ar_*_rejected] (t^2 <= crit at *_accepted, > crit at "
             "*_rejected); ar_resolution = the widest bracket (absolute); ar_t2_peak = the "
             "largest t^2 found (grid, refined with optimize()), < ar_crit for whole_line")
    H.append("collinear_dropped: coefficients iv_robust reports as NA; dropped: reason=count "
             "(no_post_data)")
    H.append("format: floats are Python repr() of the package's double; empty = not applicable")
    H.append("worst relative differences in this case (crosscheck.csv): " + ", ".join(
        f"{k}={v:.3g}" for k, v in worst.items()))
    for n in notes:
        H.append(n)
    if rerr.strip():
        seen: dict[str, int] = {}
        for line in rerr.strip().splitlines():
            if line.strip():
                seen[line.strip()] = seen.get(line.strip(), 0) + 1
        for line, n in seen.items():
            H.append(f"R stderr ({n} times; from the lm_robust/iv_robust calls of the rows whose "
                     f"collinear_dropped is not empty): {line}")
    with open(os.path.join(case_dir, "expected.csv"), "w", newline="") as fh:
        for h in H:
            fh.write("# " + h.replace("\n", " ") + "\n")
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in out_rows:
            w.writerow({k: er.fmt(v) if not isinstance(v, str) else v for k, v in r.items()})
    with open(os.path.join(case_dir, "ar_points.csv"), "w", newline="") as fh:
        fh.write(f"# AR statistic t^2(beta) of case {case} from estimatr lm_robust (see "
                 "expected.csv); kind: estimate (beta = the 2SLS estimate, t^2 ~ 0: compare "
                 "absolutely), fixed (0, estimate +- 2 and +- 10 std_error, +-1e4, the peak), "
                 "ar_end (the bracket ends of expected.csv); quadratic_numpy = the closed form "
                 "from V_yy, V_yd, V_dd\n")
        w = csv.DictWriter(fh, fieldnames=["arm", "weights", "beta", "ar_statistic", "coef_z",
                                           "std_error_z", "df", "crit", "accepted", "kind",
                                           "quadratic_numpy", "rel_diff"], lineterminator="\n")
        w.writeheader()
        for r in pts_rows:
            w.writerow(r)
    with open(os.path.join(case_dir, "crosscheck.csv"), "w", newline="") as fh:
        fh.write(f"# second opinions for case {case}; reference = the number in expected.csv "
                 "unless the check says otherwise; rel_diff = |a-b|/max(|a|,|b|)\n")
        w = csv.DictWriter(fh, fieldnames=["check", "arm", "weights", "quantity", "reference",
                                           "other", "rel_diff", "note"], lineterminator="\n")
        w.writeheader()
        for r in xrows:
            w.writerow(r)


def main(argv: list[str]) -> None:
    grid = 2000
    if "--grid" in argv:
        i = argv.index("--grid")
        grid = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    cases = argv or list(CASES)
    versions, pyv = r_versions(), py_versions()
    t0 = time.time()
    for c in cases:
        process(c, CASES[c], grid, versions, pyv)
    print(f"total {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
