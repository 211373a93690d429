#!/usr/bin/env python3
"""Reference fixtures for the panel complier effect (issue 14, the panel part of `cace_iv`).

    ~/.cache/ia-rct-cace-venv/bin/python notebooks/cace_panel_reference.py [--grid 1000] [case ...]

(see notebooks/README-cace-panel.md). The panel IV is the DiD `did_twfe` of ANALYSIS.md §4 with
received x post instrumented by assigned x post:

    r_it = beta * rd_it + firm_i + quarter_t + u_it,   rd_it = D_i * post_t,   instrument d_it = z_i * post_t

For every case of tests/fixtures/cace/ (its cace.json names the estimates case that supplies
assignment/stats/params, the take-up file and the cut-off) and every arm x weighting it

1. derives the panel of the contrast with `estimates_reference.load_case`, `derive` and `contrast`
   (imported, not rewritten: the same windows, attrition, singleton rule and weights mulige_it as
   `did_twfe`), and D_i read back from takeup.csv with `cace_reference.read_received` (an AKTIV row
   dated on or before the cut-off);
2. CR1 (the fixture's CR1 rows): pyfixest 0.60.0 `feols("r ~ 1 | orgnr + kvartal | rd ~ d",
   vcov={"CRV1": "cl"} [, weights="w"])`, its first stage `rd ~ d | FE` and reduced form
   `r ~ d | FE` (= did_twfe) with the same vcov; the CR1 Anderson-Rubin set by grid inversion with
   pyfixest fits of `r - b rd ~ d | FE`;
3. CR2 (the fixture's CR2 rows): R, `notebooks/cace_panel_reference.R`: AER::ivreg with factor()
   dummies + clubSandwich vcovCR(type = "CR2") + coef_test(Satterthwaite); clubSandwich on the
   reduced form and first stage; estimatr iv_robust (fixed_effects, and factor() dummies) as a
   second opinion; estimatr lm_robust CR2 of the AR regression at a few beta;
4. numpy with explicit dummies, independently: 2SLS, CR1 (pyfixest's small-sample factor) and CR2
   (clubSandwich's, working model I, original scale, leverage from X-hat) of the structural
   residuals, the Satterthwaite df, the joint covariance V_yy, V_yd, V_dd of the reduced-form and
   first-stage d coefficients, the AR quadratic and its closed-form roots; linearmodels IV2SLS
   (dummies explicit) for the point estimate and the CR0 SE;
5. writes tests/fixtures/cace/<case>/expected_panel.csv (the fixture) and crosscheck_panel.csv
   (every comparison with its relative difference).
"""

from __future__ import annotations

import csv
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

import estimates_reference as er  # noqa: E402  (sets RAYON_NUM_THREADS=1 before pyfixest loads)
import cace_reference as cr  # noqa: E402  (read_received, robust_scores, ar_closed_form, ...)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import optimize as sopt  # noqa: E402
from scipy import stats as sps  # noqa: E402

ROOT = os.path.dirname(HERE)
EST_DIR = os.path.join(ROOT, "tests", "fixtures", "estimates")
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "cace")
R_SCRIPT = os.path.join(HERE, "cace_panel_reference.R")
CASES = ["balanced", "unbalanced", "clustered", "collinear", "weak"]
REL_TOL = 1e-10

COLUMNS = [
    "arm", "weights", "se_type", "n_units", "n_clusters", "n_obs",
    "estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high", "ssc_factor",
    "fs_estimate", "fs_std_error", "rf_estimate", "rf_std_error",
    "V_yy", "V_yd", "V_dd",
    "ar_shape", "ar_low", "ar_high", "ar_crit",
    "ar_low_accepted", "ar_low_rejected", "ar_high_accepted", "ar_high_rejected",
    "ar_df", "ar_resolution", "ar_grid_points", "ar_t2_peak",
    "fs_df", "fs_F", "rf_df", "received_treated", "n_treated", "received_control", "n_control",
    "dropped",
]


# ------------------------------------------------------------------------------------------------
# data
def case_data(case: str):
    case_dir = os.path.join(OUT_DIR, case)
    with open(os.path.join(case_dir, "cace.json"), encoding="utf-8") as fh:
        cj = json.load(fh)
    src = os.path.join(EST_DIR, cj["estimates_case"])
    params, assign, stats = er.load_case(src)
    R, P, Q, fd, panel, clustered = er.derive(params, assign, stats)
    control = params["control"]
    arms = [a for a in params["arms"] if a != control]
    received = cr.read_received(case_dir, cj["cutoff"])
    info = {}
    for arm in arms:
        f, p, dropped, dropped_by_arm, n_single, use_bmiss = er.contrast(fd, panel, arm, control)
        f = f.copy()
        f["D"] = [1.0 if received.get(o, False) else 0.0 for o in f["orgnr"]]
        p = p.copy()
        D_of = dict(zip(f["orgnr"], f["D"]))
        p["D"] = p["orgnr"].map(D_of).astype(float)
        p["rd"] = p["D"] * p["post"]
        info[arm] = {"f": f, "p": p, "dropped": dropped, "n_single": n_single}
    return cj, params, control, arms, clustered, info


# ------------------------------------------------------------------------------------------------
# numpy, explicit dummies
def dummies(p: pd.DataFrame) -> np.ndarray:
    """Every firm's dummy and the quarter dummies without the first quarter (sorted labels)."""
    firms = sorted(set(p["orgnr"]))
    qs = sorted(set(p["kvartal"]))
    o = p["orgnr"].to_numpy()
    k = p["kvartal"].to_numpy()
    F = np.column_stack([(o == v).astype(float) for v in firms])
    Qd = np.column_stack([(k == v).astype(float) for v in qs[1:]])
    return np.column_stack([F, Qd])


def cr1_scores(Xr: np.ndarray, E: np.ndarray, w: np.ndarray, cl: np.ndarray, j: int):
    """Per-cluster sums of coefficient j's influence: s_g = sum_{i in g} [(X'WX)^-1 x_i' w_i]_j e_i
    (one column per residual column of E); CR0 = sum_g s_g s_g'."""
    XW = Xr * w[:, None]
    M = np.linalg.inv(Xr.T @ XW)
    a = XW @ M[j]
    codes, uniq = pd.factorize(cl)
    S = np.zeros((len(uniq), E.shape[1]))
    np.add.at(S, codes, a[:, None] * E)
    return S


def cr2_operator(Zr: np.ndarray, w: np.ndarray, cl: np.ndarray, j: int):
    """clubSandwich's CR2 for coefficient j of a regression on Zr (working model I, original
    scale): per cluster s the row vector v_s = c'M Z_s'W_s A_s, A_s = B_s^(+-1/2),
    B_s = [(I-H)(I-H)']_ss, H = Z M Z'W, so that V_jj = sum_s (v_s e_s)^2 for residuals e.
    Only for the AR grid (the numbers of the rows come from cace_reference.robust_scores)."""
    n = Zr.shape[0]
    ZW = Zr * w[:, None]
    M = np.linalg.inv(Zr.T @ ZW)
    IH = np.eye(n) - Zr @ M @ ZW.T
    c = M[j]
    ops = []
    for s in pd.unique(cl):
        idx = np.where(cl == s)[0]
        A = cr.sqrtm_pinv(IH[idx, :] @ IH[idx, :].T)
        ops.append((idx, (ZW[idx] @ c) @ A))
    return M, ops


def numpy_row(p: pd.DataFrame, weighted: bool, ssc: float):
    """2SLS with explicit firm and quarter dummies; CR1 (times `ssc`) and CR2 of the structural
    residuals; the joint CR1/CR2 covariance of the reduced-form and first-stage d coefficients."""
    w = p["w"].to_numpy(float) if weighted else np.ones(len(p))
    w = w / w.mean()
    cl = p["cl"].to_numpy()
    E_ = dummies(p)
    Z = np.column_stack([p["d"].to_numpy(float), E_])
    X = np.column_stack([p["rd"].to_numpy(float), E_])
    r = p["r"].to_numpy(float)
    rd = p["rd"].to_numpy(float)
    if np.linalg.matrix_rank(Z) != Z.shape[1]:
        raise SystemExit("instrument collinear with the fixed effects")
    ZW = Z * w[:, None]
    Mz = np.linalg.inv(Z.T @ ZW)
    Y = np.column_stack([r, rd, r - rd])
    Bz = Mz @ (ZW.T @ Y)
    Ez = Y - Z @ Bz
    pi_y, pi_d = float(Bz[0, 0]), float(Bz[0, 1])
    # CR1 joint
    S1 = cr1_scores(Z, Ez, w, cl, 0)
    V1 = ssc * (S1.T @ S1)
    # CR2 joint (cace_reference.robust_scores: clubSandwich's convention)
    g2, df_z, _ = cr.robust_scores(Z, Ez, w, cl, 0)
    V2 = g2.T @ g2
    # 2SLS
    Xhat = Z @ (Mz @ (ZW.T @ X))
    XhW = Xhat * w[:, None]
    beta_full = np.linalg.solve(XhW.T @ X, XhW.T @ r)
    beta = float(beta_full[0])
    u = r - X @ beta_full                      # structural residuals (original rd)
    S1iv = cr1_scores(Xhat, u[:, None], w, cl, 0)
    se1 = math.sqrt(ssc * float(S1iv[:, 0] @ S1iv[:, 0]))
    se0 = math.sqrt(float(S1iv[:, 0] @ S1iv[:, 0]))
    giv, df_iv, _ = cr.robust_scores(Xhat, u[:, None], w, cl, 0)
    se2 = math.sqrt(float(giv[:, 0] @ giv[:, 0]))
    # the u = e_y - beta e_d identity (2SLS fixed effects = reduced-form minus beta first-stage)
    u_alt = Ez[:, 0] - beta * Ez[:, 1]
    return {
        "pi_y": pi_y, "pi_d": pi_d, "beta": beta, "se1": se1, "se0": se0, "se2": se2,
        "df_iv": df_iv, "df_z": df_z,
        "V1": V1, "V2": V2, "u_identity": float(np.max(np.abs(u - u_alt)) / np.max(np.abs(u))),
        "K": Z.shape[1], "Z": Z, "w": w, "cl": cl, "r": r, "rd": rd, "Mz": Mz,
    }


def joint(V: np.ndarray, pi_y: float, pi_d: float) -> dict:
    return {"pi_y": pi_y, "pi_d": pi_d, "V_yy": float(V[0, 0]), "V_yd": float(V[0, 1]),
            "V_dd": float(V[1, 1])}


def linearmodels_iv(p: pd.DataFrame, weighted: bool):
    from linearmodels.iv import IV2SLS
    E_ = dummies(p)
    ex = pd.DataFrame(E_, columns=[f"fe{j}" for j in range(E_.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = IV2SLS(p["r"].reset_index(drop=True), ex, p[["rd"]].reset_index(drop=True),
                     p[["d"]].reset_index(drop=True),
                     weights=p["w"].reset_index(drop=True) if weighted else None)
        res = mod.fit(cov_type="clustered", clusters=pd.Series(pd.factorize(p["cl"])[0]),
                      debiased=False)
    return float(res.params["rd"]), float(res.std_errors["rd"])


# ------------------------------------------------------------------------------------------------
# pyfixest
def pf_t2_factory(p: pd.DataFrame, weighted: bool, log: list):
    """t^2(b) of d in pyfixest feols('u ~ d | orgnr + kvartal', CRV1) with u = r - b rd."""
    q = p.copy()

    def t2(bs):
        out = []
        for b in np.atleast_1d(bs):
            b = float(b)
            # |b| > 1: the same t^2 from u/b = r/b - rd (t is invariant to scaling u); keeps the
            # demeaner's data bounded (at b = 1e8 SE pyfixest's demeaning does not converge
            # to 1e-14 on r - b rd)
            q["u"] = q["r"] - b * q["rd"] if abs(b) <= 1.0 else q["r"] / b - q["rd"]
            fit = er.pf_fit("u ~ d | orgnr + kvartal", q, weighted)
            tb = fit.tidy().loc["d"]
            coef, se = float(tb["Estimate"]), float(tb["Std. Error"])
            val = (coef / se) ** 2
            log.append((b, val, float(fit._df_t)))
            out.append(val)
        return np.array(out)
    return t2


def np_cr2_t2_factory(nr: dict):
    """t^2(b) of d in the explicit-dummy regression of r - b rd on Z, CR2 (clubSandwich's)."""
    Z, w, cl, Mz = nr["Z"], nr["w"], nr["cl"], nr["Mz"]
    _, ops = cr2_operator(Z, w, cl, 0)
    ZW = Z * w[:, None]

    def t2(bs):
        bs = np.atleast_1d(np.asarray(bs, float))
        U = nr["r"][:, None] - nr["rd"][:, None] * bs[None, :]
        B = Mz @ (ZW.T @ U)
        E = U - Z @ B
        v = np.zeros(len(bs))
        for idx, op in ops:
            v += (op @ E[idx]) ** 2
        return B[0] ** 2 / v
    return t2


# ------------------------------------------------------------------------------------------------
# AR grid inversion (the same algorithm as cace_reference.R, on either statistic)
def ar_invert(t2f, c0: float, s: float, crit: float, limit_accept: bool, grid: int):
    if not math.isfinite(s) or s <= 0:
        s = 1.0
    theta = -math.pi / 2 + np.arange(1, grid) * math.pi / grid
    betas = c0 + s * np.tan(theta)
    t2s = t2f(betas)

    def far(sign):
        m = 1e8
        while True:
            b = c0 + sign * m * s
            v = float(t2f([b])[0])
            if (v <= crit) == limit_accept or m >= 1e16:
                return b, v
            m *= 1e4

    lo_far, hi_far = far(-1), far(1)
    B = np.concatenate([[lo_far[0]], betas, [hi_far[0]]])
    T2 = np.concatenate([[lo_far[1]], t2s, [hi_far[1]]])
    acc = T2 <= crit
    changes = np.where(acc[1:] != acc[:-1])[0]
    brackets = []
    n_eval = len(B)
    for j in changes:
        a, b, acc_a = float(B[j]), float(B[j + 1]), bool(acc[j])
        it = 0
        while abs(b - a) > REL_TOL * max(abs(a), abs(b), 1e-3 * s) and it < 400:
            mid = a + (b - a) / 2
            if (float(t2f([mid])[0]) <= crit) == acc_a:
                a = mid
            else:
                b = mid
            it += 1
        n_eval += it
        brackets.append({"left": a, "right": b, "left_accepted": acc_a, "iterations": it})
    jm = int(np.argmax(t2s))
    lo_b, hi_b = float(betas[max(0, jm - 1)]), float(betas[min(len(betas) - 1, jm + 1)])
    opt = sopt.minimize_scalar(lambda b: -float(t2f([b])[0]), bounds=(lo_b, hi_b),
                               method="bounded",
                               options={"xatol": 1e-12 * max(abs(lo_b), abs(hi_b), s)})
    t2_peak = max(-float(opt.fun), float(np.max(t2s)))
    ends = [None] * 4
    if len(changes) == 0:
        shape = "whole_line" if bool(np.all(acc)) else "empty"
        if shape == "whole_line" and t2_peak > crit:
            shape = "CHECK_peak_above_crit"
    elif len(changes) == 2:
        b1, b2 = brackets
        if not b1["left_accepted"] and b2["left_accepted"]:
            shape = "bounded"
            ends = [b1["right"], b1["left"], b2["left"], b2["right"]]
        elif b1["left_accepted"] and not b2["left_accepted"]:
            shape = "two_rays"
            ends = [b1["left"], b1["right"], b2["right"], b2["left"]]
        else:
            shape = "CHECK_2_crossings"
    else:
        shape = f"CHECK_{len(changes)}_crossings"
    return {"shape": shape, "ends": ends, "t2_peak": t2_peak, "betas": B, "t2": T2,
            "grid_points": grid - 1, "n_eval": n_eval + int(opt.nfev),
            "iterations": [b["iterations"] for b in brackets]}


# ------------------------------------------------------------------------------------------------
# R
def run_r(jobs: list[dict], tmp: str):
    with open(os.path.join(tmp, "meta.csv"), "w", newline="") as fh:
        fh.write("arm\n")
        for j in jobs:
            fh.write(j["arm"] + "\n")
            with open(os.path.join(tmp, f"panel_{j['arm']}.csv"), "w", newline="") as g:
                cw = csv.writer(g)
                cw.writerow(["orgnr", "kvartal", "cl", "r", "d", "rd", "w"])
                for r in j["p"].itertuples():
                    cw.writerow([r.orgnr, r.kvartal, r.cl, er.hexf(r.r), er.hexf(r.d),
                                 er.hexf(r.rd), er.hexf(r.w)])
            for wt, pts in j["points"].items():
                with open(os.path.join(tmp, f"points_{j['arm']}_{wt}.csv"), "w",
                          newline="") as g:
                    cw = csv.writer(g)
                    cw.writerow(["label", "beta"])
                    for lab, b in pts:
                        cw.writerow([lab, er.hexf(b)])
    env = dict(os.environ, LC_ALL="C", LANG="C")
    res = subprocess.run(["Rscript", "--vanilla", R_SCRIPT, tmp], env=env, capture_output=True,
                         text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit("Rscript failed")
    with open(os.path.join(tmp, "r_fits.csv"), newline="") as fh:
        out = list(csv.DictReader(fh))
    for r in out:
        for k in ["estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high",
                  "n_obs", "n_clusters", "beta", "seconds"]:
            if k in r:
                r[k] = er.unhex(r[k])
    return pd.DataFrame(out), res.stderr


def r_versions() -> dict:
    code = ('cat(R.version$version.string, "\\n");'
            'for (p in c("AER","clubSandwich","estimatr","sandwich")) '
            'cat(p, as.character(packageVersion(p)), "\\n")')
    out = subprocess.run(["Rscript", "--vanilla", "-e", code], capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C")).stdout.strip().splitlines()
    v = {"R": out[0].strip()}
    for line in out[1:]:
        k, val = line.split()
        v[k] = val
    for pkg in ["r-base-core", "r-cran-aer", "r-cran-clubsandwich", "r-cran-estimatr",
                "r-cran-sandwich"]:
        v[pkg + " (Debian)"] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                                              capture_output=True, text=True).stdout
    return v


def py_versions() -> dict:
    import importlib.metadata as md
    v = {"python": platform.python_version()}
    for pkg in ["pyfixest", "linearmodels", "statsmodels", "numpy", "pandas", "scipy",
                "formulaic", "numba"]:
        try:
            v[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return v


def existing_did(source: str) -> dict:
    out = {}
    with open(os.path.join(EST_DIR, source, "expected.csv"), newline="") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    for r in csv.DictReader(lines):
        if r["estimator"] == "did_twfe":
            out[(r["arm"], r["weights"], r["se_type"])] = r
    return out


def existing_cace_counts(case: str) -> dict:
    out = {}
    with open(os.path.join(OUT_DIR, case, "expected.csv"), newline="") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    for r in csv.DictReader(lines):
        if r["weights"] == "firm":
            out[r["arm"]] = r
    return out


# ------------------------------------------------------------------------------------------------
def process(case: str, grid: int, versions: dict, pyv: dict) -> float:
    t0 = time.time()
    cj, params, control, arms, clustered, info = case_data(case)
    case_dir = os.path.join(OUT_DIR, case)
    did = existing_did(cj["estimates_case"])
    counts = existing_cace_counts(case)
    xrows, notes, k_notes = [], [], []
    worst: dict[str, float] = {}

    def xadd(check, arm, wt, qty, ref, other, note="", key=None):
        rd_ = er.rel(ref, other) if ref is not None and other is not None else None
        xrows.append({"check": check, "arm": arm, "weights": wt, "quantity": qty,
                      "reference": er.fmt(ref), "other": er.fmt(other),
                      "rel_diff": er.fmt(rd_), "note": note})
        if key is not None and rd_ is not None:
            worst[key] = max(worst.get(key, 0.0), rd_)

    # ---------------------------------------------------------------- pyfixest + numpy + AR
    res: dict = {}
    jobs = []
    for arm in arms:
        p = info[arm]["p"]
        pts_by_wt = {}
        for wt in ["firm", "dagsverk"]:
            weighted = wt == "dagsverk"
            ivf = er.pf_fit("r ~ 1 | orgnr + kvartal | rd ~ d", p, weighted)
            fsf = er.pf_fit("rd ~ d | orgnr + kvartal", p, weighted)
            rff = er.pf_fit("r ~ d | orgnr + kvartal", p, weighted)
            q = p.copy()
            q["diff"] = q["r"] - q["rd"]
            dff = er.pf_fit("diff ~ d | orgnr + kvartal", q, weighted)
            iv = er.pf_row(ivf, "rd", "rd")
            fs = er.pf_row(fsf, "d", "d")
            rf = er.pf_row(rff, "d", "d")
            df_ = er.pf_row(dff, "d", "d")
            ssc_iv = float(np.ravel(ivf._ssc)[0])
            ssc_rf = float(np.ravel(rff._ssc)[0])
            N, G = int(ivf._N), int(np.min(ivf._G))
            T = p["kvartal"].nunique()
            K_iv, K_rf = int(ivf._df_k), int(rff._df_k)
            ssc_doc = G / (G - 1) * (N - 1) / (N - (1 + T))
            k_notes.append(
                f"pyfixest ssc {arm} {wt}: IV fit._df_k={K_iv} (reduced form {K_rf}, first stage "
                f"{int(fsf._df_k)}; 1 + T = {1 + T}), IV fit._ssc={ssc_iv!r}, reduced form "
                f"{ssc_rf!r}, G/(G-1)*(N-1)/(N-(1+T)) recomputed={ssc_doc!r}, df_t="
                f"{float(ivf._df_t)!r}, N={N} G={G} T={T}")
            xadd("pyfixest ssc factor: IV fit vs reduced-form fit (same K = 1 + T)", arm, wt,
                 "ssc_factor", ssc_iv, ssc_rf, f"K_iv={K_iv} K_rf={K_rf}", key="ssc")
            xadd("pyfixest ssc factor vs G/(G-1)*(N-1)/(N-(1+T)) recomputed", arm, wt,
                 "ssc_factor", ssc_iv, ssc_doc, key="ssc")
            nr = numpy_row(p, weighted, ssc_iv)
            j1 = joint(nr["V1"], nr["pi_y"], nr["pi_d"])
            j2 = joint(nr["V2"], nr["pi_y"], nr["pi_d"])
            # ---- CR1 checks
            xadd("CR1: pyfixest IV estimate vs numpy 2SLS (explicit dummies)", arm, wt,
                 "estimate", iv["estimate"], nr["beta"], key="est_np")
            xadd("CR1: pyfixest IV SE vs numpy CR1 of the structural residuals (X-hat scores, "
                 "times pyfixest's ssc)", arm, wt, "std_error", iv["std_error"], nr["se1"],
                 key="se1_np")
            xadd("CR1: pyfixest IV estimate vs reduced form / first stage (pyfixest)", arm, wt,
                 "estimate", iv["estimate"], rf["estimate"] / fs["estimate"], key="ratio")
            d_se = math.sqrt(j1["V_yy"] - 2 * iv["estimate"] * j1["V_yd"]
                             + iv["estimate"] ** 2 * j1["V_dd"]) / abs(fs["estimate"])
            xadd("CR1: pyfixest IV SE vs sqrt(V_yy - 2 b V_yd + b^2 V_dd)/|pi_d| (numpy joint "
                 "CR1, b = estimate; the AR quadratic's denominator at the estimate)", arm, wt,
                 "std_error", iv["std_error"], d_se, key="se1_delta")
            xadd("CR1: numpy joint V_yy vs pyfixest reduced-form SE^2", arm, wt, "V_yy",
                 rf["std_error"] ** 2, j1["V_yy"], key="V1")
            xadd("CR1: numpy joint V_dd vs pyfixest first-stage SE^2", arm, wt, "V_dd",
                 fs["std_error"] ** 2, j1["V_dd"], key="V1")
            xadd("CR1: numpy V_yy - 2 V_yd + V_dd vs pyfixest SE^2 of d in (r - rd) ~ d | FE",
                 arm, wt, "V_yy-2V_yd+V_dd", df_["std_error"] ** 2,
                 j1["V_yy"] - 2 * j1["V_yd"] + j1["V_dd"], key="V1")
            xadd("CR1: numpy V_yd (joint) vs (V_yy + V_dd - SE^2 of (r - rd) ~ d)/2 all from "
                 "pyfixest", arm, wt, "V_yd", j1["V_yd"],
                 (rf["std_error"] ** 2 + fs["std_error"] ** 2 - df_["std_error"] ** 2) / 2,
                 key="V_yd_polar")
            xadd("CR1: pyfixest p = 2*(1-t.cdf(|t|, G-1)) (used) vs 2*t.sf(|t|, G-1)", arm, wt,
                 "p_value", iv["p_value"], float(2 * sps.t.sf(abs(iv["statistic"]), iv["df"])),
                 "pyfixest's p is exact only in absolute terms (~1e-16)")
            xadd("numpy: structural residuals r - b rd - FE-hat vs e_y - b e_d (max abs diff / "
                 "max |u|)", arm, wt, "u", 0.0, nr["u_identity"])
            worst["u_identity"] = max(worst.get("u_identity", 0.0), nr["u_identity"])
            # first stage inside pyfixest's IV object
            try:
                m1 = ivf._model_1st_stage
                b1 = float(m1.coef()["d"])
                xadd("pyfixest IV's own first stage (_model_1st_stage) vs separate feols "
                     "rd ~ d | FE", arm, wt, "fs_estimate", fs["estimate"], b1, key="fs_own")
            except Exception as e:  # noqa: BLE001
                xadd("pyfixest IV's own first stage", arm, wt, "error", None, None, repr(e))
            # reduced form = did_twfe of the estimates fixture
            for se_t in ["CR1"]:
                ed = did.get((arm, wt, se_t))
                if ed is not None:
                    for k in ["estimate", "std_error", "df"]:
                        xadd(f"reduced form (pyfixest r ~ d | FE) vs did_twfe {se_t} in "
                             f"tests/fixtures/estimates/{cj['estimates_case']}/expected.csv",
                             arm, wt, k, float(ed[k]), rf[k], key="rf_vs_did")
            # linearmodels
            lm_b, lm_se0 = linearmodels_iv(p, weighted)
            xadd("linearmodels IV2SLS (dummies explicit, weights=w) estimate vs pyfixest", arm,
                 wt, "estimate", iv["estimate"], lm_b, key="lm_est")
            xadd("linearmodels IV2SLS cov_type='clustered' debiased=False (CR0) * sqrt(pyfixest "
                 "ssc) vs pyfixest CR1 SE", arm, wt, "std_error", iv["std_error"],
                 lm_se0 * math.sqrt(ssc_iv), key="lm_se")
            # ---- CR1 AR: pyfixest grid
            log: list = []
            t2f = pf_t2_factory(p, weighted, log)
            crit1 = float(sps.t.ppf(0.975, G - 1) ** 2)
            fsF1 = (fs["estimate"] / fs["std_error"]) ** 2
            ar1 = ar_invert(t2f, iv["estimate"], iv["std_error"], crit1, fsF1 <= crit1, grid)
            dfs = np.array([x[2] for x in log])
            worst["ar_df_const"] = max(worst.get("ar_df_const", 0.0),
                                       float(np.max(np.abs(dfs - (G - 1)))))
            cf1 = cr.ar_closed_form(j1, crit1)
            res[(arm, wt, "CR1")] = {"iv": iv, "fs": fs, "rf": rf, "ssc": ssc_iv, "N": N,
                                     "G": G, "J": j1, "ar": ar1, "crit": crit1, "ar_df": G - 1,
                                     "cf": cf1, "fs_df": fs["df"], "rf_df": rf["df"],
                                     "log": log}
            # ---- CR2 (numpy now, R later)
            crit2 = float(sps.t.ppf(0.975, nr["df_z"]) ** 2)
            t2n = np_cr2_t2_factory(nr)
            se2_delta = math.sqrt(j2["V_yy"] - 2 * nr["beta"] * j2["V_yd"]
                                  + nr["beta"] ** 2 * j2["V_dd"]) / abs(nr["pi_d"])
            xadd("CR2 (numpy): 2SLS SE (X-hat leverage, structural residuals) vs "
                 "sqrt(V_yy - 2 b V_yd + b^2 V_dd)/|pi_d| (numpy joint CR2 of the reduced form "
                 "and first stage)", arm, wt, "std_error", nr["se2"], se2_delta, key="se2_delta")
            xadd("CR2 (numpy): Satterthwaite df of the 2SLS coefficient (on X-hat) vs that of "
                 "the reduced-form d coefficient", arm, wt, "df", nr["df_iv"], nr["df_z"],
                 key="df2_iv_vs_rf")
            fsF2 = nr["pi_d"] ** 2 / j2["V_dd"]
            ar2 = ar_invert(t2n, nr["beta"], nr["se2"], crit2, fsF2 <= crit2, grid)
            cf2 = cr.ar_closed_form(j2, crit2)
            res[(arm, wt, "CR2")] = {"nr": nr, "J": j2, "ar": ar2, "crit": crit2,
                                     "ar_df": nr["df_z"], "cf": cf2, "N": N, "G": G}
            # points for R's CR2 AR statistic
            b0, s0 = nr["beta"], nr["se2"]
            pts = [("zero", 0.0), ("estimate", b0), ("est-2se", b0 - 2 * s0),
                   ("est+2se", b0 + 2 * s0), ("est-10se", b0 - 10 * s0),
                   ("est+10se", b0 + 10 * s0), ("minus1e4", -1e4), ("plus1e4", 1e4)]
            for lab, e in zip(["low_accepted", "low_rejected", "high_accepted", "high_rejected"],
                              ar2["ends"]):
                if e is not None:
                    pts.append((lab, e))
            pts_by_wt[wt] = pts
            res[(arm, wt, "CR2")]["points"] = pts
            res[(arm, wt, "CR2")]["t2n"] = t2n
            res[(arm, wt, "CR1")]["nr"] = nr
        jobs.append({"arm": arm, "p": p, "points": pts_by_wt})

    t_r = time.time()
    with tempfile.TemporaryDirectory(prefix="ia-rct-cace-panel-") as tmp:
        rout, rerr = run_r(jobs, tmp)
    secs_r = time.time() - t_r

    def rget(arm, wt, call, variant):
        m = rout[(rout["arm"] == arm) & (rout["weights"] == wt) & (rout["call"] == call)
                 & (rout["variant"] == variant)]
        if len(m) != 1:
            raise SystemExit(f"{case}: no unique R row {arm} {wt} {call} {variant}")
        return m.iloc[0]

    def ok(r):
        return not str(r.get("note", "")).startswith("ERROR")

    # ---------------------------------------------------------------- assemble rows + checks
    out_rows = []
    for arm in arms:
        p = info[arm]["p"]
        firms_z = p.drop_duplicates("orgnr")
        n_units = len(firms_z)
        rec1 = int(firms_z.loc[firms_z["z"] == 1, "D"].sum())
        n1 = int((firms_z["z"] == 1).sum())
        rec0 = int(firms_z.loc[firms_z["z"] == 0, "D"].sum())
        n0 = int((firms_z["z"] == 0).sum())
        dr = dict(info[arm]["dropped"])
        if info[arm]["n_single"]:
            dr["singleton"] = info[arm]["n_single"]
        dstr = ";".join(f"{k}={v}" for k, v in sorted(dr.items()) if v)
        ce = counts.get(arm)
        if ce is not None and info[arm]["n_single"] == 0:
            for k, v in [("received_treated", rec1), ("n_treated", n1),
                         ("received_control", rec0), ("n_control", n0)]:
                xadd("received counts of the panel firms vs the firm-level cace_iv fixture "
                     f"(tests/fixtures/cace/{case}/expected.csv; no singleton dropped)", arm,
                     "firm", k, float(ce[k]), float(v), key="counts")
        elif ce is not None:
            notes.append(f"{arm}: {info[arm]['n_single']} singleton firm(s) dropped from the "
                         f"panel; received z=1 {rec1}/{n1} (firm-level fixture "
                         f"{ce['received_treated']}/{ce['n_treated']}), z=0 {rec0}/{n0} "
                         f"({ce['received_control']}/{ce['n_control']})")
        for wt in ["firm", "dagsverk"]:
            c1, c2 = res[(arm, wt, "CR1")], res[(arm, wt, "CR2")]
            nr = c2["nr"]
            # ---------------------------------------------------- R checks
            ivc = rget(arm, wt, "ivreg_clubSandwich", "factor_tol1e-10")
            ivd = rget(arm, wt, "ivreg_clubSandwich", "factor")
            rfc = rget(arm, wt, "reduced_form", "factor")
            fsc = rget(arm, wt, "first_stage", "factor")
            dfc = rget(arm, wt, "difference", "factor")
            for r_ in (ivc, rfc, fsc, dfc):
                if not ok(r_):
                    raise SystemExit(f"{case}/{arm}/{wt}: {r_['note']}")
            h0 = rget(arm, wt, "ivreg_vcovCL_HC0", "factor")
            xadd("CR1: pyfixest IV SE vs sqrt(ssc) * sandwich::vcovCL(AER::ivreg, type='HC0', "
                 "cadjust=FALSE)", arm, wt, "std_error", c1["iv"]["std_error"],
                 math.sqrt(c1["ssc"]) * h0["std_error"], key="se1_sandwich")
            xadd("CR1: pyfixest IV estimate vs AER::ivreg (factor dummies)", arm, wt, "estimate",
                 c1["iv"]["estimate"], h0["estimate"], key="est_ivreg")
            xadd("CR0: numpy vs sandwich::vcovCL(ivreg, HC0, cadjust=FALSE)", arm, wt,
                 "std_error", h0["std_error"], nr["se0"], key="se0_np")
            # CR2: numpy (a) vs R (b)
            xadd("CR2: clubSandwich(ivreg) estimate vs numpy 2SLS", arm, wt, "estimate",
                 ivc["estimate"], nr["beta"], key="cr2_est")
            xadd("CR2: clubSandwich(ivreg) SE vs numpy CR2 (X-hat leverage, structural "
                 "residuals, working model I, original scale)", arm, wt, "std_error",
                 ivc["std_error"], nr["se2"], key="cr2_se")
            xadd("CR2: clubSandwich(ivreg) Satterthwaite df vs numpy", arm, wt, "df",
                 ivc["df"], nr["df_iv"], ivc["note"], key="cr2_df")
            if ok(ivd):
                for k in ["estimate", "std_error", "df", "p_value", "ci_low", "ci_high"]:
                    xadd("CR2: clubSandwich(ivreg) with B_s^(-1/2)'s eigenvalue cut-off 1e-10 "
                         "(used) vs clubSandwich as shipped (cut-off 1e-12)", arm, wt, k,
                         ivc[k], ivd[k], "not a check of the convention: shows the shipped "
                         "cut-off's numerical effect", key=f"cr2_shipped_{k}")
                xadd("CR2: clubSandwich(ivreg) as shipped (cut-off 1e-12) Satterthwaite df vs "
                     "numpy", arm, wt, "df", ivd["df"], nr["df_iv"], key="cr2_shipped_vs_np_df")
                xadd("CR2: clubSandwich(ivreg) as shipped (cut-off 1e-12) SE vs numpy", arm, wt,
                     "std_error", ivd["std_error"], nr["se2"], key="cr2_shipped_vs_np_se")
            for variant in ["fixed_effects", "factor"]:
                e_ = rget(arm, wt, "iv_robust", variant)
                if not ok(e_):
                    xadd(f"CR2: estimatr iv_robust ({variant})", arm, wt, "error", None, None,
                         e_["note"])
                    continue
                for k in ["estimate", "std_error", "df", "p_value", "ci_low", "ci_high"]:
                    xadd(f"CR2: clubSandwich(ivreg) (used) vs estimatr iv_robust ({variant})",
                         arm, wt, k, ivc[k], e_[k], e_["note"], key=f"cr2_estimatr_{k}")
            # CR2 df of the IV = CR2 df of the reduced form = did_twfe CR2 df
            xadd("CR2: clubSandwich df of the 2SLS coefficient (ivreg) vs of the reduced form "
                 "(lm r ~ d + dummies)", arm, wt, "df", ivc["df"], rfc["df"], key="cr2_df_rf")
            xadd("CR2: clubSandwich df of the first stage vs of the reduced form", arm, wt, "df",
                 fsc["df"], rfc["df"], key="cr2_df_rf")
            ed = did.get((arm, wt, "CR2"))
            if ed is not None:
                for k in ["estimate", "std_error", "df"]:
                    xadd("CR2: reduced form (clubSandwich) vs did_twfe CR2 in "
                         f"tests/fixtures/estimates/{cj['estimates_case']}/expected.csv", arm,
                         wt, k, float(ed[k]), rfc[k], key="rf_vs_did")
            j2 = c2["J"]
            xadd("CR2: numpy joint V_yy vs clubSandwich reduced-form SE^2", arm, wt, "V_yy",
                 rfc["std_error"] ** 2, j2["V_yy"], key="V2")
            xadd("CR2: numpy joint V_dd vs clubSandwich first-stage SE^2", arm, wt, "V_dd",
                 fsc["std_error"] ** 2, j2["V_dd"], key="V2")
            xadd("CR2: numpy V_yy - 2 V_yd + V_dd vs clubSandwich SE^2 of d in "
                 "lm(r - rd ~ d + dummies)", arm, wt, "V_yy-2V_yd+V_dd",
                 dfc["std_error"] ** 2, j2["V_yy"] - 2 * j2["V_yd"] + j2["V_dd"], key="V2")
            xadd("CR2: numpy V_yd vs (V_yy + V_dd - V_diff)/2 from clubSandwich", arm, wt,
                 "V_yd", j2["V_yd"],
                 (rfc["std_error"] ** 2 + fsc["std_error"] ** 2 - dfc["std_error"] ** 2) / 2,
                 key="V_yd_polar")
            xadd("CR2: numpy Satterthwaite df of the reduced form vs clubSandwich", arm, wt,
                 "df", rfc["df"], nr["df_z"], key="cr2_df")
            xadd("CR2: clubSandwich(ivreg) estimate vs reduced form / first stage "
                 "(clubSandwich lm)", arm, wt, "estimate", ivc["estimate"],
                 rfc["estimate"] / fsc["estimate"], key="ratio")
            # ---------------------------------------------------- AR checks
            for se_t, c in [("CR1", c1), ("CR2", c2)]:
                ar, crit, cf = c["ar"], c["crit"], c["cf"]
                qv = cr.ar_quadratic(c["J"], ar["betas"])
                t2 = ar["t2"]
                relq = np.abs(qv - t2) / np.maximum(np.maximum(np.abs(t2), np.abs(qv)), 1e-12)
                big = t2 >= 1e-2
                src = ("pyfixest feols(r - b rd ~ d | FE, CRV1)" if se_t == "CR1"
                       else "numpy explicit-dummy regression of r - b rd on d + dummies, CR2")
                xadd(f"AR {se_t}: closed-form quadratic (pi_y - b pi_d)^2/(V_yy - 2b V_yd + "
                     f"b^2 V_dd) vs {src} at the grid points (max |a-b|/max(|a|,|b|,1e-12) "
                     f"where t^2 >= 1e-2)", arm, wt, "max_rel_diff", 0.0,
                     float(np.max(relq[big])) if big.any() else None,
                     f"n={int(big.sum())} points with t^2 >= 1e-2; {int((~big).sum())} points "
                     f"below (next to the estimate, max {float(np.max(relq[~big])) if (~big).any() else 0.0:.3g})")
                if big.any():
                    worst[f"ar_quad_{se_t}"] = max(worst.get(f"ar_quad_{se_t}", 0.0),
                                                   float(np.max(relq[big])))
                shape, r1, r2 = cf
                if shape != ar["shape"]:
                    raise SystemExit(f"{case}/{arm}/{wt}/{se_t}: grid shape {ar['shape']} but "
                                     f"closed form {shape}")
                e = ar["ends"]
                if ar["shape"] in ("bounded", "two_rays"):
                    for root, x1, x2, nm in [(r1, e[0], e[1], "low"), (r2, e[2], e[3], "high")]:
                        inside = (min(x1, x2) - 1e-12 * abs(root) <= root
                                  <= max(x1, x2) + 1e-12 * abs(root))
                        xadd(f"AR {se_t} {nm} end: closed-form root vs grid bisection bracket "
                             "midpoint", arm, wt, f"ar_{nm}", (x1 + x2) / 2, root,
                             f"root inside [accepted, rejected]: {inside}; bracket width "
                             f"{abs(x1 - x2)!r}", key=f"ar_root_{se_t}")
                        if not inside:
                            notes.append(f"AR {se_t} {arm} {wt} {nm}: closed-form root {root!r} "
                                         f"outside the bracket [{x1!r}, {x2!r}]")
                else:
                    xadd(f"AR {se_t}: no end points; peak t^2 vs crit", arm, wt, "t2_peak", crit,
                         ar["t2_peak"], f"shape {ar['shape']}")
            # R's CR2 AR statistic at points
            for lab, b in c2["points"]:
                rp = rget(arm, wt, "ar_point", lab)
                if not ok(rp):
                    xadd("AR CR2 point (estimatr lm_robust)", arm, wt, lab, None, None, rp["note"])
                    continue
                qv = float(cr.ar_quadratic(j2, [b])[0])
                nv = float(c2["t2n"]([b])[0])
                if lab == "estimate":
                    xadd("AR CR2 at the estimate: estimatr lm_robust t^2 (~0; compare "
                         "absolutely)", arm, wt, "t2_abs", 0.0, rp["statistic"],
                         f"numpy quadratic {qv!r}, numpy regression {nv!r}")
                    continue
                xadd(f"AR CR2 at beta={b!r} ({lab}): estimatr lm_robust(r - b rd ~ d + "
                     "dummies, CR2) t^2 vs numpy quadratic", arm, wt, "t2", rp["statistic"], qv,
                     f"numpy regression t^2 {nv!r}; estimatr df {rp['df']!r}",
                     key="ar_point_R")
                xadd("AR CR2 df (estimatr lm_robust at this beta) vs numpy reduced-form df",
                     arm, wt, "df", rp["df"], c2["ar_df"], lab, key="ar_df_R")
                if lab.endswith("accepted") or lab.endswith("rejected"):
                    want = lab.endswith("accepted")
                    got = rp["statistic"] <= c2["crit"]
                    if want != got:
                        notes.append(f"AR CR2 {arm} {wt}: estimatr's verdict at {lab} "
                                     f"{b!r} differs from the numpy grid's")
            # ---------------------------------------------------- rows
            for se_t, c in [("CR1", c1), ("CR2", c2)]:
                ar = c["ar"]
                e = ar["ends"]
                lo = (e[0] + e[1]) / 2 if e[0] is not None else None
                hi = (e[2] + e[3]) / 2 if e[2] is not None else None
                resol = max(abs(e[0] - e[1]), abs(e[2] - e[3])) if e[0] is not None else None
                if se_t == "CR1":
                    iv, fs, rf = c["iv"], c["fs"], c["rf"]
                    vals = {k: iv[k] for k in ["estimate", "std_error", "df", "statistic",
                                               "p_value", "ci_low", "ci_high"]}
                    fsv, rfv = fs, rf
                    ssc = c["ssc"]
                else:
                    vals = {k: ivc[k] for k in ["estimate", "std_error", "df", "statistic",
                                                "p_value", "ci_low", "ci_high"]}
                    fsv = {k: fsc[k] for k in ["estimate", "std_error", "df"]}
                    rfv = {k: rfc[k] for k in ["estimate", "std_error", "df"]}
                    ssc = None
                J = c["J"]
                out_rows.append({
                    "arm": arm, "weights": wt, "se_type": se_t, "n_units": n_units,
                    "n_clusters": c["G"], "n_obs": c["N"], **vals, "ssc_factor": ssc,
                    "fs_estimate": fsv["estimate"], "fs_std_error": fsv["std_error"],
                    "rf_estimate": rfv["estimate"], "rf_std_error": rfv["std_error"],
                    "V_yy": J["V_yy"], "V_yd": J["V_yd"], "V_dd": J["V_dd"],
                    "ar_shape": ar["shape"], "ar_low": lo, "ar_high": hi, "ar_crit": c["crit"],
                    "ar_low_accepted": e[0], "ar_low_rejected": e[1],
                    "ar_high_accepted": e[2], "ar_high_rejected": e[3],
                    "ar_df": float(c["ar_df"]), "ar_resolution": resol,
                    "ar_grid_points": ar["grid_points"], "ar_t2_peak": ar["t2_peak"],
                    "fs_df": fsv["df"], "fs_F": (fsv["estimate"] / fsv["std_error"]) ** 2,
                    "rf_df": rfv["df"], "received_treated": rec1, "n_treated": n1,
                    "received_control": rec0, "n_control": n0, "dropped": dstr,
                })
    write_outputs(case, cj, params, control, arms, clustered, info, out_rows, xrows, notes,
                  k_notes, worst, versions, pyv, rerr, grid)
    secs = time.time() - t0
    print(f"{case}: {secs:.1f} s (R {secs_r:.1f} s); worst: "
          + ", ".join(f"{k}={v:.2e}" for k, v in sorted(worst.items())))
    return secs


def write_outputs(case, cj, params, control, arms, clustered, info, out_rows, xrows, notes,
                  k_notes, worst, versions, pyv, rerr, grid):
    case_dir = os.path.join(OUT_DIR, case)
    H = []
    H.append(f"ia-rct panel cace_iv fixture: case {case} (issue 14, panel part; "
             "protocols/ANALYSIS.md §2-§4 panel data as did_twfe)")
    H.append(f"produced by: ~/.cache/ia-rct-cace-venv/bin/python notebooks/cace_panel_reference.py "
             f"--grid {grid} {case} (R half: LC_ALL=C Rscript --vanilla "
             "notebooks/cace_panel_reference.R <tmp>, data passed as C99 hex floats)")
    H.append("tools: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    H.append("tools: " + ", ".join(f"{k} {v}" for k, v in pyv.items()))
    H.append(f"inputs: assignment/stats/params of tests/fixtures/estimates/{cj['estimates_case']}/, "
             f"take-up tests/fixtures/cace/{case}/takeup.csv, cutoff {cj['cutoff']} "
             f"({cj['noncompliance']} non-compliance); D_i = 1 when the firm has an AKTIV row "
             "dated on or before the cutoff (no rows: 0), read back from takeup.csv with "
             "cace_reference.read_received")
    H.append(f"design: randomized_at={params['randomized_at']} pre={params['pre']} "
             f"post={params['post']} control={control} arms={','.join(arms)} "
             f"clustered={'yes (cluster = klynge, else orgnr)' if clustered else 'no (cluster = orgnr)'}")
    for arm in arms:
        p = info[arm]["p"]
        fz = p.drop_duplicates("orgnr")
        H.append(f"contrast {arm} vs {control}: panel firms={len(fz)} (z=1: {int(fz['z'].sum())}) "
                 f"rows={len(p)} clusters={p['cl'].nunique()} quarters={p['kvartal'].nunique()} "
                 f"singleton firms dropped={info[arm]['n_single']} no_post_data="
                 f"{dict(info[arm]['dropped']).get('no_post_data', 0)}; received: z=1 "
                 f"{int(fz.loc[fz['z'] == 1, 'D'].sum())}, z=0 {int(fz.loc[fz['z'] == 0, 'D'].sum())}")
    H.append("model: r_it = beta rd_it + firm_i + quarter_t + u_it with rd_it = D_i x post_t "
             "(endogenous), instrument d_it = z_i x post_t (did_twfe's regressor); r_it = 100 "
             "tapte/mulige, the panel of did_twfe (windows, attrited firms out, singleton firms "
             "dropped, weights mulige_it for dagsverk)")
    H.append("CR1 rows: pyfixest feols('r ~ 1 | orgnr + kvartal | rd ~ d', vcov={'CRV1': 'cl'} "
             "[, weights='w']), default ssc() (k_adj, k_fixef='nonnested', G_adj, G_df='min'), "
             "fixef_tol=1e-14, fixef_maxiter=1e6; estimate..ci_high = its tidy() (df = G - 1, "
             "CI with t(G-1); p is pyfixest's 2*(1-cdf), exact only absolutely); ssc_factor = "
             "fit._ssc = G/(G-1)*(N-1)/(N-K) with K = fit._df_k = 1 + T (the endogenous "
             "coefficient + every quarter level, firm FE nested in clusters), the same as the "
             "reduced form's; fs_* = feols('rd ~ d | orgnr + kvartal'), rf_* = feols('r ~ d | "
             "orgnr + kvartal') (= did_twfe CR1) with the same vcov and weights")
    H.append("CR2 rows: AER::ivreg(r ~ rd + factor(orgnr) + factor(kvartal) | d + factor(orgnr) "
             "+ factor(kvartal) [, weights = w]) + clubSandwich vcovCR(cluster = cl, type = "
             "'CR2') (for ivreg inverse_var is always FALSE) + coef_test(test = 'Satterthwaite') "
             "+ conf_int, run with clubSandwich's matrix_power eigenvalue cut-off at 1e-10 "
             "instead of 1e-12 (B_s has an exact null space W_s 1_f from the firm effects; from "
             "a weak instrument's ill-conditioned X-hat R leaves those eigenvalues at "
             "1e-12..1e-10 in weighted fits, and inverting them moves the shipped package's "
             "Satterthwaite df by up to 34 %, weak/ledere/dagsverk; the kept eigenvalues are "
             ">= min_kept_eigenvalue in crosscheck_panel.csv; the shipped numbers are there "
             "too); i.e. CR2 of the structural residuals u = r - X b (original rd) with "
             "X-hat = Z(Z'WZ)^-1 Z'WX as the regressors: M = (X-hat'W X-hat)^-1, H = X-hat M "
             "X-hat'W, B_s = [(I-H)(I-H)']_ss, A_s = B_s^(+-1/2) (eigenvalues < 1e-12 dropped), "
             "working model I on the original scale; Satterthwaite df on X-hat. fs_*/rf_* = "
             "clubSandwich CR2 of lm(rd | r ~ d + factor(orgnr) + factor(kvartal) [, weights = "
             "w]) (inverse_var = FALSE), rf = did_twfe CR2. With one instrument and the same FE "
             "in both stages X-hat spans Z = [d, dummies], so H, A_s and the Satterthwaite df "
             "are those of the reduced form (df = rf_df = fs_df = ar_df)")
    H.append("V_yy, V_yd, V_dd: joint covariance of the reduced-form (r) and first-stage (rd) d "
             "coefficients under the row's se_type, numpy with explicit dummies: CR1 = ssc_factor"
             " * sum_g s_g s_g' (s_g = sum_{i in g} [(Z'WZ)^-1 z_i' w_i]_d e_i), CR2 = sum_s "
             "(c'M Z_s'W_s A_s e_s)(...)'; V_yy = rf_std_error^2, V_dd = fs_std_error^2, and "
             "std_error = sqrt(V_yy - 2 estimate V_yd + estimate^2 V_dd)/|fs_estimate| "
             "(crosscheck_panel.csv)")
    H.append("AR set: {b : t^2(b) <= ar_crit}, t^2(b) = (coef/se)^2 of d in the regression of "
             "r - b rd on d + firm + quarter FE with the row's SE. CR1: pyfixest feols('u ~ d | "
             "orgnr + kvartal', CRV1, same ssc), ar_crit = qt(0.975, G-1)^2, ar_df = G - 1. "
             "CR2: clubSandwich's CR2 (numpy, explicit dummies; estimatr lm_robust CR2 checks "
             "it at a few b), ar_crit = qt(0.975, ar_df)^2 with ar_df the Satterthwaite df "
             "of d (constant in b). Grid inversion: b = estimate + std_error * tan(theta), "
             f"{grid - 1} theta equally spaced on (-pi/2, pi/2), far points estimate +- 1e8 "
             "std_error (pushed out while their verdict differs from the limit b -> +-inf, "
             "accepted iff fs_F <= ar_crit), every change of verdict bisected to <= 1e-10 "
             "relative; the largest grid t^2 refined with scipy minimize_scalar (ar_t2_peak)")
    H.append("ar_shape: bounded = [ar_low, ar_high]; two_rays = (-inf, ar_low] U [ar_high, inf); "
             "whole_line; empty. ar_low/ar_high = midpoints of the final brackets "
             "[ar_*_accepted, ar_*_rejected]; ar_resolution = widest bracket (absolute); the "
             "closed-form roots of (pi_y - b pi_d)^2 - ar_crit (V_yy - 2b V_yd + b^2 V_dd) lie "
             "inside the brackets (crosscheck_panel.csv)")
    H.append("fs_F = (fs_estimate/fs_std_error)^2 (first-stage F with the row's SE); "
             "received_*/n_*: firms of the panel with D = 1 / all, by z; dropped: reason=count "
             "(no_post_data, singleton) as did_twfe")
    H.append("format: floats are Python repr() of the package's double; empty = not applicable")
    H.append("worst relative differences in this case (crosscheck_panel.csv): " + ", ".join(
        f"{k}={v:.3g}" for k, v in sorted(worst.items())))
    for k in k_notes:
        H.append(k)
    for n in notes:
        H.append(n)
    if rerr.strip():
        seen: dict[str, int] = {}
        for line in rerr.strip().splitlines():
            if line.strip():
                seen[line.strip()] = seen.get(line.strip(), 0) + 1
        H.append("R stderr (harmless: clubSandwich coef_test/conf_int take sqrt(diag(vcov)) of "
                 "every coefficient, and in the first stage lm(rd ~ d + dummies) the pre-period "
                 "quarter dummies have CR2 variance ~ -1e-19 (rd = 0 before the randomization "
                 "quarter); the d entry is not affected): " + " | ".join(
                     f"{ln} ({n}x)" for ln, n in seen.items()))
    with open(os.path.join(case_dir, "expected_panel.csv"), "w", newline="") as fh:
        for h in H:
            fh.write("# " + h.replace("\n", " ") + "\n")
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in out_rows:
            w.writerow({k: (er.fmt(v) if not isinstance(v, str) else v) for k, v in r.items()})
    with open(os.path.join(case_dir, "crosscheck_panel.csv"), "w", newline="") as fh:
        fh.write(f"# second opinions for the panel cace_iv of case {case}; reference = the number "
                 "in expected_panel.csv unless the check says otherwise; rel_diff = "
                 "|a-b|/max(|a|,|b|)\n")
        w = csv.DictWriter(fh, fieldnames=["check", "arm", "weights", "quantity", "reference",
                                           "other", "rel_diff", "note"], lineterminator="\n")
        w.writeheader()
        for r in xrows:
            w.writerow(r)


def main(argv: list[str]) -> None:
    grid = 1000
    if "--grid" in argv:
        i = argv.index("--grid")
        grid = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    cases = argv or CASES
    versions, pyv = r_versions(), py_versions()
    t0 = time.time()
    for c in cases:
        process(c, grid, versions, pyv)
    print(f"total {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
