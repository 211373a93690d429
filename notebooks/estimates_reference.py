#!/usr/bin/env python3
"""Reference numbers for ia-rct's estimators (protocols/ANALYSIS.md), one case directory at a time.

    python3 notebooks/estimates_reference.py tests/fixtures/estimates/<case> [...]

Reads `<case>/assignment.csv`, `<case>/stats.csv` (NAV DVH CSV) and `<case>/params.json`, derives
the firm-level and panel datasets from ANALYSIS.md §2-§3 (written from the document alone, not
from the Rust code), runs the reference packages and writes

* `<case>/expected.csv`   the fixture: `#` header lines (tools, versions, command, conventions),
                          then one row per estimator x arm x weighting x coefficient;
* `<case>/crosscheck.csv` the second opinions (estimatr fixed_effects vs factor(), clubSandwich vs
                          estimatr, linearmodels vs pyfixest, our Pashley-Miratrix code vs estimatr,
                          pyfixest's chi2 Wald p) with their relative differences.

Which package produces which row:
* itt_dim      estimatr 1.0.0 difference_in_means (R); for designs with a singleton arm in some
               stratum (which estimatr 1.0.0 cannot do unless every stratum is a pair) the
               Pashley-Miratrix formulas of ANALYSIS.md §5, coded here and checked by exhaustive
               enumeration of the within-stratum re-assignments;
* itt_ancova   estimatr lm_robust(y ~ z + b [+ bmiss], fixed_effects = ~stratum, HC2 | CR2);
* itt_lin      estimatr lm_lin(y ~ z, covariates = ~ b [+ bmiss] + factor(stratum)); where its
               pivoted QR drops a collinear column other than the later one and that changes the
               z coefficient, lm_robust on lm_lin's columns after R's qr() (ANALYSIS.md §4);
* did_twfe     CR1: pyfixest 0.60.0 feols("r ~ d | orgnr + kvartal", vcov={"CRV1": "cl"});
               CR2: clubSandwich 0.5.8 vcovCR(lm(r ~ d + factor(orgnr) + factor(kvartal)), CR2)
               + coef_test(Satterthwaite) + conf_int;
* event_study  pyfixest, one dummy per relative quarter (reference e = -1), CRV1; the pretrend row
               is pyfixest's wald_test on the leads.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from collections import Counter, defaultdict

# pyfixest's demeaner runs on rayon threads; one thread makes its sums run in one order, so that
# reruns give the same bits (with several threads the pyfixest rows moved by up to ~4e-12 rel.)
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import scipy
from scipy import stats as sps

HERE = os.path.dirname(os.path.abspath(__file__))
R_SCRIPT = os.path.join(HERE, "estimates_reference.R")
# pyfixest's default demeaner (MapDemeaner, tol 1e-6) leaves SEs accurate to ~1e-7 relative and
# not identical from run to run on unbalanced panels; the fixtures use a tight tolerance instead.
FIXEF_TOL = 1e-14
FIXEF_MAXITER = 1_000_000
COLUMNS = ["estimator", "arm", "weights", "se_type", "term", "estimate", "std_error", "df",
           "statistic", "p_value", "ci_low", "ci_high", "n_units", "n_clusters", "n_obs",
           "ssc_factor", "design", "df1", "df2", "dropped"]


# ------------------------------------------------------------------------------------------------
# formatting
def fmt(x) -> str:
    """repr() of a float (shortest round-trip = 17 significant digits at most); ints as ints."""
    if x is None:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if math.isnan(x):
        return ""
    return repr(x)


def rel(a, b) -> float:
    a, b = float(a), float(b)
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def hexf(x: float) -> str:
    return float(x).hex()


def unhex(s: str):
    if s in ("", "NA"):
        return None
    if s in ("Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    return float.fromhex(s)


# ------------------------------------------------------------------------------------------------
# quarters
def q_index(label: str) -> int:
    y, q = label.upper().replace("Q", "K").replace("-", "").split("K")
    return int(y) * 4 + int(q) - 1


def q_label(idx: int) -> str:
    return f"{idx // 4}K{idx % 4 + 1}"


# ------------------------------------------------------------------------------------------------
# ANALYSIS.md §1-§3: inputs -> firm-level and panel data
def load_case(d: str):
    with open(os.path.join(d, "params.json")) as fh:
        params = json.load(fh)
    with open(os.path.join(d, "assignment.csv"), newline="") as fh:
        assign = list(csv.DictReader(fh))
    with open(os.path.join(d, "stats.csv"), newline="") as fh:
        stats = [
            (r["orgnr"], int(r["arstall"]) * 4 + int(r["kvartal"]) - 1, float(r["taptedv"]),
             float(r["muligedv"]))
            for r in csv.DictReader(fh)
        ]
    return params, assign, stats


def derive(params, assign, stats):
    R = q_index(params["randomized_at"])
    P, Q = int(params["pre"]), int(params["post"])
    pre_q = set(range(R - P, R))
    post_q = set(range(R, R + Q))
    firms = {a["orgnr"]: a for a in assign}
    clustered = any(a.get("klynge", "") != "" for a in assign)
    rows = [r for r in stats if r[0] in firms and (r[1] in pre_q or r[1] in post_q)]
    by_firm: dict[str, list] = defaultdict(list)
    for r in rows:
        by_firm[r[0]].append(r)
    firm_rows = []
    for o, a in firms.items():
        rs = by_firm.get(o, [])
        post = [r for r in rs if r[1] in post_q]
        pre = [r for r in rs if r[1] in pre_q]
        rec = {"orgnr": o, "arm": a["arm"], "stratum": a["stratum"],
               "cl": a["klynge"] if a.get("klynge", "") != "" else o,
               "n_post": len(post), "n_pre": len(pre)}
        if post:
            st, sm = math.fsum(r[2] for r in post), math.fsum(r[3] for r in post)
            rec["y"] = 100.0 * st / sm          # ratio of sums, left to right: (100*st)/sm
            rec["m"] = sm
        if pre:
            st, sm = math.fsum(r[2] for r in pre), math.fsum(r[3] for r in pre)
            rec["b"], rec["bmiss"] = 100.0 * st / sm, 0.0
        else:
            rec["b"], rec["bmiss"] = 0.0, 1.0
        firm_rows.append(rec)
    fd = pd.DataFrame(firm_rows).sort_values("orgnr").reset_index(drop=True)
    panel = pd.DataFrame(rows, columns=["orgnr", "t", "tapte", "mulige"])
    panel["r"] = 100.0 * panel["tapte"] / panel["mulige"]   # (100*tapte)/mulige elementwise
    panel["w"] = panel["mulige"]
    panel["e"] = panel["t"] - R
    panel["post"] = (panel["t"] >= R).astype(float)
    panel["kvartal"] = [q_label(t) for t in panel["t"]]
    return R, P, Q, fd, panel, clustered


def contrast(fd: pd.DataFrame, panel: pd.DataFrame, arm: str, control: str):
    both = fd[fd["arm"].isin([arm, control])]
    attr = both[both["n_post"] == 0]
    dropped = Counter()
    for a in attr["arm"]:
        dropped["no_post_data"] += 1
    dropped_by_arm = Counter(attr["arm"])
    f = both[both["n_post"] > 0].copy()
    f["z"] = (f["arm"] == arm).astype(float)
    f = f.sort_values("orgnr").reset_index(drop=True)
    use_bmiss = bool((f["bmiss"] == 1.0).any())
    # panel: firms of the contrast after attrition, singleton firms dropped until none remain
    p = panel[panel["orgnr"].isin(set(f["orgnr"]))].copy()
    z_of = dict(zip(f["orgnr"], f["z"]))
    cl_of = dict(zip(f["orgnr"], f["cl"]))
    n_single = 0
    while True:
        cnt = p.groupby("orgnr")["t"].transform("size")
        if (cnt > 1).all():
            break
        n_single += int(p.loc[cnt == 1, "orgnr"].nunique())
        p = p[cnt > 1]
    p["z"] = p["orgnr"].map(z_of)
    p["d"] = p["z"] * p["post"]
    p["cl"] = p["orgnr"].map(cl_of)
    p = p.sort_values(["orgnr", "t"]).reset_index(drop=True)
    return f, p, dropped, dropped_by_arm, n_single, use_bmiss


def both_arms_only(f: pd.DataFrame) -> pd.DataFrame:
    """The firms of the strata in which both arms have a firm (after attrition)."""
    arms_in = f.groupby("stratum")["z"].agg(lambda z: z.nunique())
    both = set(arms_in[arms_in == 2].index)
    return f[f["stratum"].isin(both)].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------
# ANALYSIS.md §5 / docs/statistics.md B.4: blocked difference in means with Pashley-Miratrix small blocks
class Refused(Exception):
    pass


def pm_parts(y: np.ndarray, z: np.ndarray, strata: np.ndarray):
    """Per-stratum summaries (tau_j, V_j or None, N_j, in_B) of the strata having both arms."""
    out = []
    for s in sorted(set(strata)):
        ys, zs = y[strata == s], z[strata == s]
        y1, y0 = ys[zs == 1], ys[zs == 0]
        n1, n0 = len(y1), len(y0)
        if n1 == 0 or n0 == 0:
            continue
        tau = float(np.mean(y1) - np.mean(y0))
        if n1 >= 2 and n0 >= 2:
            v = float(np.var(y1, ddof=1) / n1 + np.var(y0, ddof=1) / n0)
            out.append((s, tau, v, n1 + n0, True))
        else:
            out.append((s, tau, None, n1 + n0, False))
    return out


def pm_dim(y, z, strata):
    parts = pm_parts(np.asarray(y, float), np.asarray(z, float), np.asarray(strata))
    B = [p for p in parts if p[4]]
    S = [p for p in parts if not p[4]]
    N = sum(p[3] for p in parts)
    n_B = sum(p[3] for p in B)
    n_S = sum(p[3] for p in S)
    tau = math.fsum(p[3] * p[1] for p in parts) / N
    V_B = math.fsum(p[3] ** 2 * p[2] for p in B) / n_B ** 2 if B else 0.0
    df_B = n_B - 2 * len(B)
    V_S, df_S, sizes = 0.0, len(S) - 1, sorted({p[3] for p in S})
    if S:
        if len(S) == 1:
            raise Refused("exactly one stratum with a singleton arm")
        tau_S = math.fsum(p[3] * p[1] for p in S) / n_S
        if len(sizes) == 1:
            V_S = math.fsum((p[1] - tau_S) ** 2 for p in S) / (len(S) * (len(S) - 1))
        else:
            if max(sizes) * 2 >= n_S:
                raise Refused("unequal small blocks with one holding half of n_S or more")
            om = [p[3] ** 2 / (n_S - 2 * p[3]) for p in S]
            V_S = math.fsum(w * (p[1] - tau_S) ** 2 for w, p in zip(om, S)) / (n_S + math.fsum(om))
    aB, aS = (n_B / N) ** 2, (n_S / N) ** 2
    V = aB * V_B + aS * V_S
    if not S:
        df, design = df_B, "Blocked"
    elif not B:
        df = df_S
        design = "Matched-pair" if sizes == [2] else "Small blocks"
    else:
        df = V ** 2 / ((aB * V_B) ** 2 / df_B + (aS * V_S) ** 2 / df_S)
        design = "Hybrid blocked"
    se = math.sqrt(V)
    t = tau / se
    crit = sps.t.ppf(0.975, df)
    return {"estimate": tau, "std_error": se, "df": float(df), "statistic": t,
            "p_value": 2.0 * sps.t.sf(abs(t), df), "ci_low": tau - crit * se,
            "ci_high": tau + crit * se, "design": design, "n_B": n_B, "n_S": n_S,
            "nB": len(B), "nS": len(S), "V_B": V_B, "V_S": V_S}


def enumerate_pm(y, z, strata, y1=None):
    """Potential-outcome schedule Y(0) = observed y, Y(1) = y1 (default: Y(0), the zero effect);
    every within-stratum re-assignment with the realized arm counts is equally likely. Returns
    (#assignments, Var(tau_hat), E[V_hat], E[tau_hat]), all assignments enumerated jointly (the S
    part of V_hat does not split by stratum)."""
    y, z, strata = np.asarray(y, float), np.asarray(z, float), np.asarray(strata)
    y1 = y.copy() if y1 is None else np.asarray(y1, float)
    levels = [s for s in sorted(set(strata))]
    per = []   # for each stratum: arrays over its local assignments of tau_j and V_j
    for s in levels:
        ys0, ys1 = y[strata == s], y1[strata == s]
        n, n1 = len(ys0), int(z[strata == s].sum())
        taus, vs = [], []
        for tr in itertools.combinations(range(n), n1):
            mask = np.zeros(n, bool)
            mask[list(tr)] = True
            y1_, y0 = ys1[mask], ys0[~mask]
            taus.append(y1_.mean() - y0.mean())
            vs.append(np.var(y1_, ddof=1) / len(y1_) + np.var(y0, ddof=1) / len(y0)
                      if len(y1_) >= 2 and len(y0) >= 2 else np.nan)
        per.append((n, n1, np.array(taus), np.array(vs)))
    J = len(per)
    shape = [len(p[2]) for p in per]
    total = int(np.prod(shape))
    N = sum(p[0] for p in per)
    inB = [p[1] >= 2 and p[0] - p[1] >= 2 for p in per]
    n_B = sum(p[0] for p, b in zip(per, inB) if b)
    n_S = N - n_B
    S_sizes = sorted({p[0] for p, b in zip(per, inB) if not b})

    def bc(j, arr):
        sh = [1] * J
        sh[j] = len(arr)
        return arr.reshape(sh)

    tau = sum(bc(j, p[0] / N * p[2]) for j, p in enumerate(per))
    tau = np.broadcast_to(tau, shape)
    V = np.zeros(shape)
    if n_B:
        V = V + (n_B / N) ** 2 * sum(bc(j, (p[0] ** 2) * p[3] / n_B ** 2)
                                     for j, (p, b) in enumerate(zip(per, inB)) if b)
    if n_S:
        Sj = [j for j in range(J) if not inB[j]]
        tau_S = sum(bc(j, per[j][0] / n_S * per[j][2]) for j in Sj)
        if len(S_sizes) == 1:
            acc = sum((bc(j, per[j][2]) - tau_S) ** 2 for j in Sj)
            V_S = acc / (len(Sj) * (len(Sj) - 1))
        else:
            om = {j: per[j][0] ** 2 / (n_S - 2 * per[j][0]) for j in Sj}
            acc = sum(om[j] * (bc(j, per[j][2]) - tau_S) ** 2 for j in Sj)
            V_S = acc / (n_S + sum(om.values()))
        V = V + (n_S / N) ** 2 * V_S
    V = np.broadcast_to(V, shape)
    return total, float(np.mean((tau - tau.mean()) ** 2)), float(np.mean(V)), float(tau.mean())


def enumeration_notes(arm: str, f: pd.DataFrame) -> list[str]:
    """Zero-effect schedule (the check asked for) and a heterogeneous one (effects varying across
    and within strata) to show the estimator is conservative, not only unbiased at zero effect."""
    y, z, st = f["y"].to_numpy(), f["z"].to_numpy(), f["stratum"].to_numpy()
    out = []
    lev = sorted(set(st))
    j = np.array([lev.index(s) for s in st], float)
    delta = 0.5 * (j - (len(lev) - 1) / 2.0) + 0.3 * (y - y.mean())
    for label, y1 in [("zero effect, Y(1)=Y(0)=y", None),
                      ("heterogeneous, Y(1)=y+0.5*(j-(J-1)/2)+0.3*(y-mean(y)), j=stratum index",
                       y + delta)]:
        tot, vtrue, vmean, tmean = enumerate_pm(y, z, st, y1)
        sate = 0.0 if y1 is None else float(np.mean(delta))
        out.append(
            f"enumeration ({arm}, firm, {label}): {tot} within-stratum re-assignments with the "
            f"realized arm counts: SATE={sate!r}, E[tau_hat]={tmean!r}, Var(tau_hat)={vtrue!r}, "
            f"E[V_hat]={vmean!r}, E[V_hat]/Var={vmean / vtrue!r} "
            f"({'conservative' if vmean >= vtrue * (1 - 1e-12) else 'NOT CONSERVATIVE'})")
    return out


# ------------------------------------------------------------------------------------------------
# R (estimatr, clubSandwich)
def run_r(jobs: list[dict], tmp: str) -> pd.DataFrame:
    with open(os.path.join(tmp, "meta.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arm", "clustered", "use_bmiss", "panel"])
        for j in jobs:
            w.writerow([j["arm"], int(j["clustered"]), int(j["use_bmiss"]), int(j["panel"])])
            f = j["firm"]
            with open(os.path.join(tmp, f"firm_{j['arm']}.csv"), "w", newline="") as g:
                cw = csv.writer(g)
                cw.writerow(["orgnr", "stratum", "cl", "y", "z", "b", "bmiss", "m"])
                for r in f.itertuples():
                    cw.writerow([r.orgnr, r.stratum, r.cl, hexf(r.y), hexf(r.z), hexf(r.b),
                                 hexf(r.bmiss), hexf(r.m)])
            if j["panel"]:
                p = j["pd"]
                with open(os.path.join(tmp, f"panel_{j['arm']}.csv"), "w", newline="") as g:
                    cw = csv.writer(g)
                    cw.writerow(["orgnr", "kvartal", "cl", "r", "d", "w"])
                    for r in p.itertuples():
                        cw.writerow([r.orgnr, r.kvartal, r.cl, hexf(r.r), hexf(r.d), hexf(r.w)])
    env = dict(os.environ, LC_ALL="C", LANG="C")
    res = subprocess.run(["Rscript", "--vanilla", R_SCRIPT, tmp], env=env, capture_output=True,
                         text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit("Rscript failed")
    with open(os.path.join(tmp, "r_out.csv"), newline="") as fh:
        out = list(csv.DictReader(fh))
    for r in out:
        for k in ["estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high",
                  "n_obs", "n_clusters"]:
            r[k] = unhex(r[k])
    return pd.DataFrame(out), res.stderr


def r_versions() -> dict:
    code = ('cat(R.version$version.string, "\\n");'
            'for (p in c("estimatr","clubSandwich","sandwich")) '
            'cat(p, as.character(packageVersion(p)), "\\n")')
    out = subprocess.run(["Rscript", "--vanilla", "-e", code], capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C")).stdout.strip().splitlines()
    v = {"R": out[0].strip()}
    for line in out[1:]:
        k, val = line.split()
        v[k] = val
    v["r-base-core (Debian)"] = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "r-base-core"], capture_output=True, text=True).stdout
    for pkg in ["r-cran-estimatr", "r-cran-clubsandwich", "r-cran-sandwich"]:
        v[pkg] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                                text=True).stdout
    return v


# ------------------------------------------------------------------------------------------------
# statsmodels (third opinion on ANCOVA HC2, unclustered designs)
def statsmodels_ancova(f: pd.DataFrame, use_bmiss: bool, weighted: bool):
    import statsmodels.api as sm
    cols = [np.ones(len(f)), f["z"].to_numpy(), f["b"].to_numpy()]
    if use_bmiss:
        cols.append(f["bmiss"].to_numpy())
    lev = sorted(set(f["stratum"]))
    for s in lev[1:]:
        cols.append((f["stratum"] == s).to_numpy().astype(float))
    X = np.column_stack(cols)
    # drop columns that are linear combinations of earlier ones (R lm order)
    keep = []
    for j in range(X.shape[1]):
        if np.linalg.matrix_rank(X[:, keep + [j]]) == len(keep) + 1:
            keep.append(j)
    X = X[:, keep]
    y = f["y"].to_numpy()
    if weighted:
        return sm.WLS(y, X, weights=f["m"].to_numpy()).fit(cov_type="HC2", use_t=True)
    return sm.OLS(y, X).fit(cov_type="HC2", use_t=True)


# ------------------------------------------------------------------------------------------------
# the CR2 convention that estimatr / clubSandwich use, written out (a check of the description in
# the fixture header, not a source of fixture numbers)
def cr2_formula(p: pd.DataFrame, weighted: bool):
    """Weighted CR2 with working model I on the original scale (clubSandwich inverse_var=FALSE):
    M = (X'WX)^-1, H = X M X'W, B_s = [(I-H)(I-H)']_ss, A_s = B_s^(+-1/2) (eigenvalues < 1e-12
    dropped), V = M (sum_s X_s'W_s A_s e_s e_s'A_s W_s X_s) M; Satterthwaite df for c'beta:
    g_s = (I-H)_{s.}' A_s W_s X_s M c, df = (sum_s g_s'g_s)^2 / sum_s sum_t (g_s'g_t)^2."""
    firms = pd.get_dummies(p["orgnr"]).to_numpy(float)
    qs = pd.get_dummies(p["kvartal"], drop_first=True).to_numpy(float)
    X = np.column_stack([p["d"].to_numpy(), firms, qs])
    y = p["r"].to_numpy()
    w = p["w"].to_numpy() if weighted else np.ones(len(p))
    w = w / w.mean()
    XW = X * w[:, None]
    M = np.linalg.inv(X.T @ XW)
    beta = M @ (XW.T @ y)
    e = y - X @ beta
    IH = np.eye(len(y)) - X @ M @ XW.T
    c = np.zeros(X.shape[1])
    c[0] = 1.0
    cl = p["cl"].to_numpy()
    terms, G = [], []
    for s in pd.unique(cl):
        idx = np.where(cl == s)[0]
        B = IH[idx, :] @ IH[idx, :].T
        ev, U = np.linalg.eigh(B)
        ev = np.where(ev > 1e-12, np.abs(ev) ** -0.5, 0.0)
        A = U @ np.diag(ev) @ U.T
        u = c @ M @ XW[idx].T @ A
        terms.append(float(u @ e[idx]))
        G.append(IH[idx, :].T @ u)
    G = np.array(G)
    GG = G @ G.T
    return float(beta[0]), math.sqrt(math.fsum(t * t for t in terms)), \
        float(np.trace(GG) ** 2 / np.sum(GG ** 2))


# ------------------------------------------------------------------------------------------------
# pyfixest / linearmodels
def pf_fit(fml: str, p: pd.DataFrame, weighted: bool):
    import pyfixest as pf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pf.feols(fml, data=p, vcov={"CRV1": "cl"}, weights="w" if weighted else None,
                        fixef_tol=FIXEF_TOL, fixef_maxiter=FIXEF_MAXITER)


def pf_row(fit, term: str, coef: str):
    tb = fit.tidy()
    r = tb.loc[coef]
    return {"term": term, "estimate": float(r["Estimate"]), "std_error": float(r["Std. Error"]),
            "df": float(fit._df_t), "statistic": float(r["t value"]),
            "p_value": float(r["Pr(>|t|)"]), "ci_low": float(r["2.5%"]),
            "ci_high": float(r["97.5%"])}


def ev_name(e: int) -> str:
    return f"ev_m{-e}" if e < 0 else f"ev_p{e}"


def linearmodels_twfe(p: pd.DataFrame, weighted: bool, count_effects: bool | None):
    from linearmodels import PanelOLS
    q = p.copy()
    q["tnum"] = q["t"].astype(int)
    q = q.set_index(["orgnr", "tnum"])
    mod = PanelOLS(q["r"], q[["d"]], entity_effects=True, time_effects=True,
                   weights=q["w"] if weighted else None)
    clusters = pd.DataFrame({"cl": pd.factorize(q["cl"])[0]}, index=q.index)
    kw = {}
    if count_effects is not None:
        kw = {"auto_df": False, "count_effects": count_effects}
    res = mod.fit(cov_type="clustered", clusters=clusters, debiased=True, group_debias=True, **kw)
    return res


# ------------------------------------------------------------------------------------------------
def process(case_dir: str, versions: dict, py_versions: dict) -> None:
    import pyfixest as pf  # noqa: F401

    case = os.path.basename(os.path.normpath(case_dir))
    params, assign, stats = load_case(case_dir)
    R, P, Q, fd, panel, clustered = derive(params, assign, stats)
    control = params["control"]
    arms = [a for a in params["arms"] if a != control]
    singleton_case = case.startswith("singleton_")
    rows: list[dict] = []
    xrows: list[dict] = []
    notes: list[str] = []
    jobs = []
    info = {}
    for arm in arms:
        f, p, dropped, dropped_by_arm, n_single, use_bmiss = contrast(fd, panel, arm, control)
        info[arm] = (f, p, dropped, dropped_by_arm, n_single, use_bmiss)
        jobs.append({"arm": arm, "clustered": clustered, "use_bmiss": use_bmiss,
                     "panel": not singleton_case, "firm": f, "pd": p})
        fb = both_arms_only(f)
        if len(fb) < len(f):
            # ANALYSIS.md §5: itt_dim uses the strata having both arms (estimatr refuses the
            # whole contrast); the R job "<arm>__both" runs difference_in_means on those only
            jobs.append({"arm": arm + "__both", "clustered": clustered,
                         "use_bmiss": bool((fb["bmiss"] == 1.0).any()), "panel": False,
                         "firm": fb, "pd": None})

    with tempfile.TemporaryDirectory() as tmp:
        rout, rerr = run_r(jobs, tmp)

    def rget(arm, wt, est, variant, se_type=None):
        m = (rout["arm"] == arm) & (rout["weights"] == wt) & (rout["estimator"] == est) & \
            (rout["variant"] == variant)
        if se_type is not None:
            m &= rout["se_type"] == se_type
        sub = rout[m]
        assert len(sub) == 1, (arm, wt, est, variant, se_type, len(sub))
        return sub.iloc[0]

    def dropped_str(dr: Counter) -> str:
        return ";".join(f"{k}={v}" for k, v in sorted(dr.items()) if v)

    def add(est, arm, wt, se_type, vals, n_units, n_clusters, n_obs, ssc=None, design="",
            df1=None, df2=None, dropped=""):
        r = {c: "" for c in COLUMNS}
        r.update({"estimator": est, "arm": arm, "weights": wt, "se_type": se_type,
                  "n_units": fmt(n_units), "n_clusters": fmt(n_clusters), "n_obs": fmt(n_obs),
                  "ssc_factor": fmt(ssc), "design": design, "df1": fmt(df1), "df2": fmt(df2),
                  "dropped": dropped})
        for k in ["term", "estimate", "std_error", "df", "statistic", "p_value", "ci_low",
                  "ci_high"]:
            if k in vals:
                r[k] = vals[k] if k == "term" else fmt(vals[k])
        rows.append(r)

    def xadd(check, arm, wt, quantity, ref, other, note=""):
        xrows.append({"check": check, "arm": arm, "weights": wt, "quantity": quantity,
                      "reference": fmt(ref), "other": fmt(other),
                      "rel_diff": fmt(rel(ref, other)) if ref is not None and other is not None
                      else "", "note": note})

    K_notes = set()
    for arm in arms:
        f, p, dropped, dropped_by_arm, n_single, use_bmiss = info[arm]
        n_firms = len(f)
        n_cl_firm = f["cl"].nunique()
        firm_cl = n_cl_firm if clustered else None
        d_firm = dropped_str(dropped)
        # itt_dim: the strata having both arms (ANALYSIS.md §5), the others in `dropped`
        fb = both_arms_only(f)
        n_dim = len(fb)
        dim_cl = fb["cl"].nunique() if clustered else None
        d_dim = dropped_str(dropped + Counter({"stratum_without_both_arms": len(f) - len(fb)}))
        dim_arm = arm if len(fb) == len(f) else arm + "__both"
        if len(fb) < len(f):
            lacking = sorted(set(f["stratum"]) - set(fb["stratum"]))
            notes.append(
                f"{arm}: strata without both arms after attrition: "
                + "; ".join(f"{s} (z=1: {int(f.loc[f['stratum'] == s, 'z'].sum())}, z=0: "
                            f"{int((f.loc[f['stratum'] == s, 'z'] == 0).sum())})"
                            for s in lacking)
                + f"; itt_dim rows are difference_in_means on the other strata ({n_dim} firms; "
                "estimatr refuses the whole contrast), itt_ancova and itt_lin rows use every firm")
        for wt in ["firm", "dagsverk"]:
            # ---------------------------------------------------------------- itt_dim
            r = rget(dim_arm, wt, "itt_dim", "estimatr")
            err = r["note"] if str(r["note"]).startswith("ERROR") else None
            parts = pm_parts(fb["y"].to_numpy(), fb["z"].to_numpy(), fb["stratum"].to_numpy())
            has_S = any(not pp[4] for pp in parts)
            all_pairs = all(pp[3] == 2 for pp in parts)
            se_label = ("CR2" if clustered else ("HC2" if wt == "dagsverk" else "neyman_blocked"))
            # estimatr 1.0.0 is the reference where it implements ANALYSIS.md §5: no singleton arm,
            # or every stratum a 1+1 pair (its matched-pair formula = the paired P-M formula).
            # With a mix of 2-unit and larger strata it silently uses the matched-pair formula on
            # every block (a warning), which is not §5: then this script's P-M code is used.
            if not has_S or (all_pairs and not clustered and wt == "firm"):
                if err:
                    raise SystemExit(f"{case}/{arm}/{wt}: estimatr refused: {err}")
                if has_S:
                    se_label = "neyman_matched_pair"
                add("itt_dim", arm, wt, se_label, {"term": "z", **{k: r[k] for k in [
                    "estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high"]}},
                    n_dim, dim_cl, n_dim, design=r["design"], dropped=d_dim)
                if not clustered and wt == "firm":
                    mine = pm_dim(fb["y"], fb["z"], fb["stratum"])
                    for k in ["estimate", "std_error", "df"]:
                        xadd("itt_dim: estimatr vs ANALYSIS.md §5 formulas (this script)", arm, wt,
                             k, r[k], mine[k])
                    if has_S:
                        notes.extend(enumeration_notes(arm, fb))
            else:
                # singleton arms: Pashley-Miratrix (no package); weighted is refused by the contract
                if err:
                    xadd("itt_dim: estimatr 1.0.0 on a singleton-arm design", arm, wt, "estimatr",
                         None, None, err)
                else:
                    xadd("itt_dim: estimatr 1.0.0 on a singleton-arm design (NOT used)", arm, wt,
                         "std_error", r["std_error"], None,
                         f"estimatr returned design={r['design']} "
                         f"estimate={float(r['estimate'])!r} df={float(r['df'])!r}")
                if wt == "dagsverk":
                    notes.append(f"itt_dim {arm} dagsverk: not computed (weighted with a "
                                 "singleton arm is a typed error in ANALYSIS.md §5)")
                    continue
                mine = pm_dim(fb["y"], fb["z"], fb["stratum"])
                add("itt_dim", arm, wt, "pashley_miratrix", {"term": "z", **{k: mine[k] for k in [
                    "estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high"]}},
                    n_dim, dim_cl, n_dim, design=mine["design"], dropped=d_dim)
                notes.append(
                    f"itt_dim {arm}: Pashley-Miratrix by this script: design={mine['design']}, "
                    f"|B|={mine['nB']} (n_B={mine['n_B']}), |S|={mine['nS']} (n_S={mine['n_S']}), "
                    f"V_B={mine['V_B']!r}, V_S={mine['V_S']!r}; df = "
                    + ("Welch-Satterthwaite of (n_B/N)^2 V_B on n_B-2|B| and (n_S/N)^2 V_S on |S|-1"
                       if mine["design"] == "Hybrid blocked" else "|S|-1"))
                notes.extend(enumeration_notes(arm, fb))
            if singleton_case:
                continue

            # ---------------------------------------------------------------- itt_ancova
            se_itt = "CR2" if clustered else "HC2"
            rfe = rget(arm, wt, "itt_ancova", "fixed_effects")
            rfa = rget(arm, wt, "itt_ancova", "factor")
            if str(rfa["note"]).startswith("ERROR"):
                raise SystemExit(f"{case}/{arm}/{wt}: {rfa['note']}")
            use = rfe
            if str(rfe["note"]).startswith("ERROR"):
                # estimatr 1.0.0 refuses fixed_effects with weighted CR2: the explicit-dummy
                # regression (same model, leverage of the full design) is the reference then
                use = rfa
                notes.append(f"itt_ancova {arm} {wt}: lm_robust(fixed_effects = ~stratum) "
                             f"refused ({rfe['note']}); row is lm_robust(y ~ z + b "
                             f"{'+ bmiss ' if use_bmiss else ''}+ factor(stratum), "
                             f"se_type = '{se_itt}', clusters = cl, weights = m)")
            add("itt_ancova", arm, wt, se_itt, {"term": "z", **{k: use[k] for k in [
                "estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high"]}},
                n_firms, firm_cl, n_firms, dropped=d_firm)
            if use is rfe:
                for k in ["estimate", "std_error", "df", "p_value"]:
                    xadd("itt_ancova: fixed_effects=~stratum (used) vs + factor(stratum)", arm, wt,
                         k, rfe[k], rfa[k], f"fe {rfe['note']}; factor {rfa['note']}")
            if "dropped=" in rfe["note"] and rfe["note"] != "dropped=":
                notes.append(f"itt_ancova {arm} {wt}: lm_robust(fixed_effects) {rfe['note']}; "
                             f"with factor(stratum) instead: {rfa['note']}")
            if not clustered:
                sm_fit = statsmodels_ancova(f, use_bmiss, wt == "dagsverk")
                for k, v in [("estimate", float(sm_fit.params[1])),
                             ("std_error", float(sm_fit.bse[1])), ("df", float(sm_fit.df_resid))]:
                    xadd("itt_ancova: estimatr (used) vs statsmodels OLS/WLS + stratum dummies "
                         "cov_type='HC2'", arm, wt, k, use[k], v)
            # ---------------------------------------------------------------- itt_lin
            rl = rget(arm, wt, "itt_lin", "lm_lin")
            if str(rl["note"]).startswith("ERROR"):
                raise SystemExit(f"{case}/{arm}/{wt}: {rl['note']}")
            rq = rget(arm, wt, "itt_lin", "lm_lin_lmrule")
            if str(rq["note"]).startswith("ERROR"):
                raise SystemExit(f"{case}/{arm}/{wt}: {rq['note']}")
            # lm_lin is the reference; when it drops a collinear column whose choice changes the
            # z coefficient (estimatr's pivoted QR may drop any column of the collinear set), the
            # row is R lm's rule instead (ANALYSIS.md §4: the later column is dropped), and both
            # are in the header
            lin_fields = ["estimate", "std_error", "df", "statistic", "p_value", "ci_low",
                          "ci_high"]
            same = all(rel(rl[k], rq[k]) <= 1e-10 for k in ["estimate", "std_error", "df"])
            use_l = rl if same else rq
            add("itt_lin", arm, wt, se_itt, {"term": "z", **{k: use_l[k] for k in lin_fields}},
                n_firms, firm_cl, n_firms, dropped=d_firm)
            notes.append(f"itt_lin {arm} {wt}: lm_lin {rl['note']}")
            if not same:
                notes.append(
                    f"itt_lin {arm} {wt}: lm_lin's collinear column is not the later one, and its "
                    f"z coefficient differs: lm_lin estimate={float(rl['estimate'])!r} "
                    f"std_error={float(rl['std_error'])!r} df={float(rl['df'])!r}; the row is "
                    f"lm_robust(y ~ 0 + X[, keep], se_type = '{se_itt}' [, weights = m]) on "
                    "lm_lin's columns ((Intercept), z, centered covariates, z x centered "
                    "covariates) after R's qr() (tol 1e-7, the rule of lm()) kept the first "
                    f"linearly independent ones (ANALYSIS.md §4): {rq['note']}")
            for k in ["estimate", "std_error", "df"]:
                xadd("itt_lin: lm_lin vs lm_robust on lm_lin's columns after R's qr() (the "
                     "later collinear column dropped)", arm, wt, k, rl[k], rq[k],
                     f"lm_lin {rl['note'].split('|')[0]}; qr() {rq['note']}; used: "
                     + ("lm_lin" if same else "qr()"))

            # ---------------------------------------------------------------- did_twfe CR1
            weighted = wt == "dagsverk"
            fit = pf_fit("r ~ d | orgnr + kvartal", p, weighted)
            G = int(np.min(fit._G))
            d_panel = dropped_str(dropped + Counter({"singleton": n_single}))
            vals = pf_row(fit, "d", "d")
            add("did_twfe", arm, wt, "CR1", vals, p["orgnr"].nunique(), G, int(fit._N),
                ssc=float(np.ravel(fit._ssc)[0]), dropped=d_panel)
            rcr0 = rget(arm, wt, "did_twfe", "sandwich_vcovCL_HC0_dummies", "CR0")
            xadd("did_twfe CR1: pyfixest SE vs sqrt(pyfixest ssc_factor * CR0 of sandwich::vcovCL("
                 "lm with firm and quarter dummies, type='HC0', cadjust=FALSE))", arm, wt,
                 "std_error", vals["std_error"],
                 math.sqrt(float(np.ravel(fit._ssc)[0])) * rcr0["std_error"])
            xadd("did_twfe CR1: pyfixest estimate vs lm with dummies (exact)", arm, wt,
                 "estimate", vals["estimate"], rcr0["estimate"])
            xadd("did_twfe CR1: pyfixest p = 2*(1-t.cdf(|t|, G-1)) (used) vs 2*t.sf(|t|, G-1)",
                 arm, wt, "p_value", vals["p_value"],
                 float(2.0 * sps.t.sf(abs(vals["statistic"]), vals["df"])))
            T = p["kvartal"].nunique()
            N_, K_ = int(fit._N), int(fit._df_k)
            ssc_ = float(np.ravel(fit._ssc)[0])
            K_doc = 1 + (T - 1)   # ANALYSIS.md §4 wording: d + quarter FE not implied by firm FE
            K_notes.add(
                f"pyfixest did_twfe {arm} {wt}: N={N_} G={G} firms={p['orgnr'].nunique()} "
                f"quarters T={T}: pyfixest K (fit._df_k)={K_} (= 1 + T: "
                f"{'yes' if K_ == 1 + T else 'NO'}), ssc_factor (fit._ssc)={ssc_!r}, "
                f"G/(G-1)*(N-1)/(N-K) recomputed={float(G / (G - 1) * (N_ - 1) / (N_ - K_))!r}; "
                f"df_t={float(fit._df_t)!r}; rows pyfixest's own fixef_rm='singleton' dropped "
                f"after ours: {len(p) - N_}; [not a package number: with K = 1 + (T-1) = {K_doc} "
                f"the factor would be {float(G / (G - 1) * (N_ - 1) / (N_ - K_doc))!r}]")
            # alternatives: k_fixef = "none" / "full"
            import pyfixest as pf
            for kf in ["none", "full"]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    alt = pf.feols("r ~ d | orgnr + kvartal", data=p, vcov={"CRV1": "cl"},
                                   weights="w" if weighted else None, ssc=pf.ssc(k_fixef=kf),
                                   fixef_tol=FIXEF_TOL, fixef_maxiter=FIXEF_MAXITER)
                xadd(f"did_twfe CR1: pyfixest default ssc (k_fixef='nonnested') vs "
                     f"k_fixef='{kf}'", arm, wt, "std_error", vals["std_error"],
                     float(alt.tidy().loc["d", "Std. Error"]),
                     f"K={int(alt._df_k)} ssc={float(np.ravel(alt._ssc)[0])!r}")
            # linearmodels cross-check
            for ce in [None, False]:
                lm = linearmodels_twfe(p, weighted, ce)
                lab = "auto_df (default)" if ce is None else "auto_df=False,count_effects=False"
                xadd(f"did_twfe CR1: pyfixest vs linearmodels PanelOLS entity+time effects, "
                     f"clustered, debiased, group_debias, {lab}", arm, wt, "estimate",
                     vals["estimate"], float(lm.params["d"]))
                xadd(f"did_twfe CR1: pyfixest vs linearmodels PanelOLS {lab}", arm, wt,
                     "std_error", vals["std_error"], float(lm.std_errors["d"]),
                     f"linearmodels df_resid={int(lm.df_resid)} (its t df), pyfixest df="
                     f"{float(fit._df_t)!r}; "
                     f"linearmodels p={float(lm.pvalues['d'])!r} vs pyfixest "
                     f"p={vals['p_value']!r}")

            # ---------------------------------------------------------------- did_twfe CR2
            iv = "clubSandwich_inverse_var=" + ("FALSE" if weighted else "default")
            rc = rget(arm, wt, "did_twfe", iv)
            if str(rc["note"]).startswith("ERROR"):
                raise SystemExit(f"{case}/{arm}/{wt}: {rc['note']}")
            add("did_twfe", arm, wt, "CR2", {"term": "d", **{k: rc[k] for k in [
                "estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high"]}},
                p["orgnr"].nunique(), int(rc["n_clusters"]), int(rc["n_obs"]), dropped=d_panel)
            for variant, se in [("estimatr_dummies", "CR2"), ("estimatr_fixed_effects", "CR2"),
                                ("clubSandwich_inverse_var=TRUE", "CR2"),
                                ("clubSandwich_sqrtw_rows", "CR2")]:
                if (variant.endswith("TRUE") or variant.endswith("rows")) and not weighted:
                    continue
                ro = rget(arm, wt, "did_twfe", variant, se)
                if str(ro["note"]).startswith("ERROR"):
                    xadd(f"did_twfe CR2: clubSandwich ({iv}) vs {variant}", arm, wt, "error",
                         None, None, ro["note"])
                    continue
                for k in ["std_error", "df"]:
                    xadd(f"did_twfe CR2: clubSandwich ({iv}) vs {variant}", arm, wt, k,
                         rc[k], ro[k])
            if len(p) <= 2500:
                _, se_f, df_f = cr2_formula(p, weighted)
                xadd("did_twfe CR2: clubSandwich (used) vs the formula in the header, coded in "
                     "numpy (estimates_reference.cr2_formula)", arm, wt, "std_error",
                     rc["std_error"], se_f)
                xadd("did_twfe CR2: clubSandwich (used) vs the formula in the header, coded in "
                     "numpy (estimates_reference.cr2_formula)", arm, wt, "df", rc["df"], df_f)
            for variant in ["estimatr_dummies", "estimatr_fixed_effects"]:
                ro = rget(arm, wt, "did_twfe", variant, "stata")
                if str(ro["note"]).startswith("ERROR"):
                    xadd(f"did_twfe CR1: pyfixest vs estimatr {variant} se_type='stata'", arm, wt,
                         "error", None, None, ro["note"])
                    continue
                xadd(f"did_twfe CR1: pyfixest vs estimatr {variant} se_type='stata'", arm, wt,
                     "std_error", vals["std_error"], ro["std_error"],
                     f"estimatr df={float(ro['df'])!r}")

            # ---------------------------------------------------------------- event_study
            es = list(range(-P, Q))
            es = [e for e in es if e != -1]
            q = p.copy()
            names = []
            for e in es:
                nm = ev_name(e)
                q[nm] = q["z"] * (q["e"] == e).astype(float)
                names.append(nm)
            fit = pf_fit("r ~ " + " + ".join(names) + " | orgnr + kvartal", q, weighted)
            kept = list(fit._coefnames)
            for e, nm in zip(es, names):
                if nm not in kept:
                    notes.append(f"event_study {arm} {wt}: {nm} dropped by pyfixest (collinear)")
                    continue
                add("event_study", arm, wt, "CR1", pf_row(fit, f"e={e}", nm),
                    q["orgnr"].nunique(), int(np.min(fit._G)), int(fit._N),
                    ssc=float(np.ravel(fit._ssc)[0]), dropped=d_panel)
            leads = [nm for e, nm in zip(es, names) if e <= -2 and nm in kept]
            Rm = np.zeros((len(leads), len(kept)))
            for i, nm in enumerate(leads):
                Rm[i, kept.index(nm)] = 1.0
            with warnings.catch_warnings(record=True) as wl:
                warnings.simplefilter("always")
                res = fit.wald_test(R=Rm, distribution="F")
            wmsg = "; ".join(str(w.message) for w in wl)
            Fst, dfn, dfd = float(fit._f_statistic), int(fit._dfn), int(fit._dfd)
            pF = float(sps.f.sf(Fst, dfn, dfd))
            add("event_study_pretrend", arm, wt, "CR1",
                {"term": "leads:" + ",".join(f"e={e}" for e in es if e <= -2),
                 "statistic": Fst, "p_value": pF, "df": float(dfd)},
                q["orgnr"].nunique(), int(np.min(fit._G)), int(fit._N), ssc=float(np.ravel(fit._ssc)[0]),
                df1=dfn, df2=dfd, dropped=d_panel)
            xadd("event_study_pretrend: F p-value scipy f.sf(F, df1, df2) (used) vs pyfixest's "
                 "wald_test p (chi2 on W, df1)", arm, wt, "p_value", pF, float(res["pvalue"]),
                 f"pyfixest W={float(fit._wald_statistic)!r} F=W/df1={Fst!r} dfn={dfn} "
                 f"dfd={dfd}; warning: {wmsg}")
            xadd("event_study_pretrend: F = W/df1 (used) vs the statistic pyfixest's "
                 "wald_test returned (W, as it switched to chi2)", arm, wt, "statistic", Fst,
                 float(res["statistic"]))

    write_outputs(case_dir, case, params, rows, xrows, notes, K_notes, versions, py_versions,
                  clustered, info, arms, control, rerr)


def write_outputs(case_dir, case, params, rows, xrows, notes, K_notes, versions, py_versions,
                  clustered, info, arms, control, rerr):
    H = []
    H.append(f"ia-rct estimator fixture: case {case} (protocols/ANALYSIS.md)")
    H.append("produced by: python3 notebooks/make_estimate_datasets.py && "
             f"python3 notebooks/estimates_reference.py tests/fixtures/estimates/{case}")
    H.append("R half: LC_ALL=C Rscript --vanilla notebooks/estimates_reference.R <tmp> "
             "(data passed as C99 hex floats, exact)")
    H.append("tools: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    H.append("tools: " + ", ".join(f"{k} {v}" for k, v in py_versions.items()))
    H.append(f"design: randomized_at={params['randomized_at']} pre={params['pre']} "
             f"post={params['post']} control={control} arms={','.join(arms)} "
             f"clustered={'yes (cluster = klynge, else orgnr)' if clustered else 'no'}")
    for arm in arms:
        f, p, dropped, dropped_by_arm, n_single, use_bmiss = info[arm]
        H.append(f"contrast {arm} vs {control}: firms={len(f)} (z=1: {int(f['z'].sum())}) "
                 f"strata={f['stratum'].nunique()} clusters={f['cl'].nunique()} "
                 f"no_post_data by arm={dict(sorted(dropped_by_arm.items()))} "
                 f"b_missing firms={int(f['bmiss'].sum())} (indicator in ANCOVA/Lin: "
                 f"{'yes' if use_bmiss else 'no'}) panel rows={len(p)} panel firms="
                 f"{p['orgnr'].nunique()} singleton firms dropped={n_single}")
    H.append("columns: estimator,arm,weights,se_type,term,estimate,std_error,df,statistic,"
             "p_value,ci_low,ci_high,n_units,n_clusters,n_obs,ssc_factor,design,df1,df2,dropped")
    H.append("format: floats are Python repr() of the package's double (shortest round-trip); "
             "empty = not applicable; dropped = reason=count;... (no_post_data, singleton)")
    H.append("rows: itt_* n_units=n_obs=firms of the contrast, n_clusters only when clustered; "
             "did_twfe/event_study n_units=panel firms, n_clusters=G, n_obs=panel rows")
    H.append("itt_dim: estimatr difference_in_means(y ~ z, blocks = stratum [, clusters = cl] "
             "[, weights = m]); se_type label neyman_blocked | neyman_matched_pair | HC2 "
             "(weighted: estimatr's within-block lm_robust HC2) | CR2 (clustered) | "
             "pashley_miratrix (no package: ANALYSIS.md §5 coded in estimates_reference.py)")
    H.append("itt_ancova: estimatr lm_robust(y ~ z + b [+ bmiss], fixed_effects = ~stratum, "
             "se_type = 'HC2' | 'CR2' [, clusters = cl] [, weights = m]); cross-checked against "
             "+ factor(stratum) in crosscheck.csv")
    H.append("itt_lin: estimatr lm_lin(y ~ z, covariates = ~ b [+ bmiss] + factor(stratum), "
             "se_type = 'HC2' | 'CR2' [, clusters = cl] [, weights = m]); factor levels in C "
             "collation, first level left out")
    H.append("did_twfe CR1: pyfixest feols('r ~ d | orgnr + kvartal', vcov={'CRV1': 'cl'} "
             "[, weights='w']) with the default ssc() = ssc(k_adj=True, k_fixef='nonnested', "
             "G_adj=True, G_df='min'), fixef_tol=1e-14, fixef_maxiter=1e6 (the default tol "
             "1e-6 is not precise enough for a fixture); kvartal = year-quarter label (2024K1), "
             "d = z*post, "
             "w = muligedv; ssc_factor = fit._ssc; df = G-1; p = pyfixest's")
    H.append("p_value of pyfixest rows (did_twfe CR1, event_study) is pyfixest's 2*(1 - "
             "t.cdf(|t|, df)), exact only in absolute terms (~1e-16): compare it with an absolute "
             "tolerance, or recompute 2*t.sf from statistic and df (crosscheck.csv has both; in "
             "longer, did_twfe firm, pyfixest gives 0.0 where 2*t.sf = 7.1e-40). pyfixest rows "
             "agree with an exact dummy-variable fit to ~1e-12 relative (crosscheck.csv)")
    H.append("did_twfe CR2: clubSandwich vcovCR(lm(r ~ d + factor(orgnr) + factor(kvartal) "
             "[, weights = w]), cluster = cl, type = 'CR2') [weighted: inverse_var = FALSE, the "
             "default for weighted lm, which equals estimatr lm_robust(se_type='CR2', weights=)]"
             " + coef_test(test='Satterthwaite') + conf_int(test='Satterthwaite')")
    H.append("CR2 convention (checked in crosscheck.csv): M = (X'WX)^-1, H = X M X'W, "
             "B_s = [(I-H)(I-H)']_ss, A_s = B_s^(+-1/2) (eigenvalues < 1e-12 dropped), "
             "V = M sum_s X_s'W_s A_s e_s e_s'A_s W_s X_s M; Satterthwaite df for c'b: "
             "g_s = (I-H)_(s.)' A_s W_s X_s M c, df = (sum_s g_s'g_s)^2 / sum_s sum_t (g_s'g_t)^2 "
             "(working model I on the original scale; W = I unweighted). This is NOT CR2 on the "
             "sqrt(w)-transformed rows (ANALYSIS.md §4 wording): that gives another SE and df, "
             "see crosscheck.csv clubSandwich_sqrtw_rows")
    H.append("event_study: pyfixest feols('r ~ ev_m{P}+...+ev_m2+ev_p0+...+ev_p{Q-1} | orgnr + "
             "kvartal'), ev_e = z*1{t-R=e}, reference e=-1, CRV1 as did_twfe; term 'e=<e>'")
    H.append("event_study_pretrend: statistic = W/L from pyfixest wald_test on the leads e<=-2 "
             "(W = b'(R V R')^+ b with pyfixest's CRV1 vcov), df1 = L (fit._dfn), df2 = df = "
             "G-1 (fit._dfd); p_value = scipy.stats.f.sf(F, L, G-1): pyfixest itself switches "
             "to chi2(L) on W when R is not the identity (its p is in crosscheck.csv)")
    for k in sorted(K_notes):
        H.append(k)
    for n in notes:
        H.append(n)
    if rerr.strip():
        for line in rerr.strip().splitlines():
            if line.strip():
                H.append("R stderr: " + line.strip())
    with open(os.path.join(case_dir, "expected.csv"), "w", newline="") as fh:
        for h in H:
            fh.write("# " + h.replace("\n", " ") + "\n")
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    if xrows:
        with open(os.path.join(case_dir, "crosscheck.csv"), "w", newline="") as fh:
            fh.write(f"# second opinions for case {case}; reference = the number in expected.csv "
                     "unless the check says otherwise; rel_diff = |a-b|/max(|a|,|b|)\n")
            w = csv.DictWriter(fh, fieldnames=["check", "arm", "weights", "quantity", "reference",
                                               "other", "rel_diff", "note"], lineterminator="\n")
            w.writeheader()
            for r in xrows:
                w.writerow(r)
    elif os.path.exists(os.path.join(case_dir, "crosscheck.csv")):
        os.remove(os.path.join(case_dir, "crosscheck.csv"))


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    import importlib.metadata as md
    versions = r_versions()
    py_versions = {"python": platform.python_version()}
    for pkg in ["pyfixest", "linearmodels", "statsmodels", "numpy", "pandas", "scipy",
                "formulaic", "numba"]:
        try:
            py_versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    for d in argv:
        if not os.path.exists(os.path.join(d, "params.json")):
            continue
        process(d, versions, py_versions)
        print(f"wrote {d}/expected.csv")


if __name__ == "__main__":
    main(sys.argv[1:])
