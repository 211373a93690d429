#!/usr/bin/env python3
"""Reference fixtures for attrition bounds on a two-arm contrast (tests/fixtures/bounds/).

    ~/.cache/ia-rct-bounds-venv/bin/python notebooks/bounds_reference.py [--no-sim] [--reps 5000]

(see notebooks/README-bounds.md, which states every definition the Rust side copies). It

1. writes `tests/fixtures/bounds/<case>/firms.csv` (orgnr,arm,stratum,y,m) from a seeded
   `numpy.random.default_rng`: valid 9-digit MOD11 orgnrs, a post-period sick-leave rate y in
   [0, 100] rounded to 2 decimals (EMPTY when the firm attrited, exact attrition counts per arm), a
   positive weight m. Floats are written with repr(), so they read back exactly;
2. reads the file back and computes, in EXACT RATIONAL arithmetic (fractions.Fraction on the
   doubles as read; square roots in 60-digit decimal), the Lee (2009) trimming bounds with exact
   fractional trimming, Lee's Proposition 3 analytic standard errors, the Imbens-Manski (2004) and
   the naive 95% intervals, and the pooled and blocked Manski worst-case bounds; every number is
   then rounded once to a double and written to `expected.json`;
3. recomputes everything in plain double precision (numpy; the way the Rust side will) and with
   StatsPAI 1.40.2 `lee_bounds(se_method="analytic", trimming="exact")` (Lee Prop. 3 as Stata
   `leebounds` v1.5, Tauchmann 2014, computes it) and writes the comparisons to `crosscheck.json`;
4. unless --no-sim, validates the analytic SE by simulation (5,000 datasets per design from a
   known data-generating process, and 20,000 for two designs): SD of the bound estimators across replications against the
   mean analytic SE and the true asymptotic SD, with Monte Carlo SEs from a bootstrap over
   replications; writes `tests/fixtures/bounds/se_validation.json`.

Deterministic: every random draw comes from its own `default_rng(seed)`; two runs write the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import sys
import time
import warnings
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pandas as pd
import scipy
from scipy import optimize, special

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "bounds")
COMMAND = "~/.cache/ia-rct-bounds-venv/bin/python notebooks/bounds_reference.py"

LEVEL = 0.95
Z_TWO = float(special.ndtri(0.975))  # 1.959963984540054, the naive interval's z
Z_ONE = float(special.ndtri(0.95))  # 1.6448536269514722, the IM critical value's lower limit
Y_MIN, Y_MAX = Fraction(0), Fraction(100)

# ------------------------------------------------------------------------------------------------
# cases. strata: label -> (treated firms, control firms). attrit: (treated, control) firms without
# y, drawn without replacement among all firms of the arm. base: stratum mean rate (percent) of
# control; effect: treated shift (percentage points). zeros: share of firms with y = 0 exactly.
# tiny draws y from a small set of values instead, so that it has ties.
CASES = {
    "unbalanced": {
        "seed": 2026_1601,
        "strata": {"fylke=03": (40, 32), "fylke=15": (35, 30), "fylke=31": (35, 28)},
        "base": [5.0, 6.5, 8.0], "effect": -0.6, "zeros": 0.04,
        "attrit": (23, 8),
        "note": "unequal arms (110/90), both arms attrit, treated more (23 vs 8): control is "
                "trimmed; fractional kept mass K = 87*90/110 = 71.18...; some y = 0 ties",
    },
    "treated_attrits_more": {
        "seed": 2026_1602,
        "strata": {"fylke=03": (18, 12), "fylke=11": (16, 14), "fylke=34": (14, 16),
                   "fylke=50": (16, 14)},
        "base": [4.5, 6.0, 7.0, 5.5], "effect": -0.8, "zeros": 0.0,
        "attrit": (11, 0),
        "note": "64 treated / 56 control; only treated attrit (p0 = 1): control is trimmed; "
                "K = 53*56/64 = 46.375",
    },
    "control_attrits_more": {
        "seed": 2026_1603,
        "strata": {"fylke=03": (22, 18), "fylke=15": (20, 20), "fylke=46": (18, 22)},
        "base": [5.5, 6.5, 7.5], "effect": -0.5, "zeros": 0.03,
        "attrit": (3, 12),
        "note": "60/60; control attrits more (12 vs 3): treated is trimmed; equal arm sizes "
                "make the kept mass a whole number (K = 48, no fractional weight)",
    },
    "equal_attrition": {
        "seed": 2026_1604,
        "strata": {"fylke=03": (19, 15), "fylke=15": (16, 18), "fylke=42": (15, 17)},
        "base": [5.0, 6.0, 7.0], "effect": -0.4, "zeros": 0.0,
        "attrit": (6, 6),
        "note": "50/50 with 6 attrited in each arm: p1 = p0, q = 0, no trimming; the bounds are "
                "the plain difference of observed means",
    },
    "tiny": {
        "seed": 2026_1605,
        "strata": {"fylke=03": (3, 2), "fylke=15": (2, 2), "fylke=31": (2, 2)},
        "values": [2.5, 4.0, 5.5, 8.0, 11.5],
        "attrit": (1, 2),
        "note": "13 firms (7 treated, 6 control), y from {2.5, 4, 5.5, 8, 11.5} (ties); treated "
                "is trimmed by q = 2/9, K = 14/3 = 4.667: the boundary observation keeps weight "
                "2/3 and is tied with a neighbour",
    },
}

# ------------------------------------------------------------------------------------------------
# data generation


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


def generate(case: str, spec: dict) -> list[dict]:
    """Firms of one case, in the (shuffled) row order of firms.csv."""
    rng = np.random.default_rng(spec["seed"])
    used: set[str] = set()
    firms: list[dict] = []
    for j, (label, counts) in enumerate(spec["strata"].items()):
        for arm, n in zip(("treated", "control"), counts):
            for orgnr in make_orgnrs(rng, n, used):
                if "values" in spec:
                    y = float(rng.choice(spec["values"]))
                else:
                    mu = (spec["base"][j] + (spec["effect"] if arm == "treated" else 0.0)) / 100.0
                    kappa = 25.0
                    y = 100.0 * float(rng.beta(kappa * mu, kappa * (1.0 - mu)))
                    if rng.random() < spec["zeros"]:
                        y = 0.0
                    y = round(y, 2)
                m = round(float(rng.lognormal(7.0, 0.9)), 2)
                assert 0.0 <= y <= 100.0 and m > 0.0
                firms.append({"orgnr": orgnr, "arm": arm, "stratum": label, "y": y, "m": m})
    for arm, a in zip(("treated", "control"), spec["attrit"]):
        idx = [i for i, f in enumerate(firms) if f["arm"] == arm]
        for i in rng.choice(len(idx), size=a, replace=False):
            firms[idx[int(i)]]["y"] = None
    order = rng.permutation(len(firms))
    return [firms[int(i)] for i in order]


def write_firms(path: str, firms: list[dict]) -> None:
    buf = io.StringIO()
    buf.write("orgnr,arm,stratum,y,m\n")
    for f in firms:
        y = "" if f["y"] is None else repr(f["y"])
        buf.write(f"{f['orgnr']},{f['arm']},{f['stratum']},{y},{f['m']!r}\n")
    with open(path, "w", newline="") as fh:
        fh.write(buf.getvalue())


def read_firms(path: str) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        assert len(r["orgnr"]) == 9 and r["orgnr"].isdigit()
        assert r["arm"] in ("treated", "control")
        out.append({"orgnr": r["orgnr"], "arm": r["arm"], "stratum": r["stratum"],
                    "y": float(r["y"]) if r["y"] != "" else None, "m": float(r["m"])})
    assert len({r["orgnr"] for r in out}) == len(out), "orgnr must be unique"
    return out


# ------------------------------------------------------------------------------------------------
# the reference: exact rational arithmetic


def dsqrt(x: Fraction) -> float:
    """Correctly rounded (to ~60 digits, then once to double) square root of a rational."""
    with localcontext() as ctx:
        ctx.prec = 60
        return float((Decimal(x.numerator) / Decimal(x.denominator)).sqrt())


def fmean(v: list[Fraction]) -> Fraction:
    return sum(v, Fraction(0)) / len(v)


def fvar1(v: list[Fraction]) -> Fraction:
    """Sample variance, divisor n - 1."""
    mu = fmean(v)
    return sum(((x - mu) ** 2 for x in v), Fraction(0)) / (len(v) - 1)


def trim_weights(n: int, K: Fraction, keep: str) -> list[Fraction]:
    """Fractional weights on the ascending-sorted values: total mass K, from the low end
    (keep='low') or the high end (keep='high'). w_i = clamp(K - (rank from that end - 1), 0, 1)."""
    w = []
    for i in range(1, n + 1):  # ascending rank i
        r = i if keep == "low" else n - i + 1  # rank counted from the kept end
        w.append(min(Fraction(1), max(Fraction(0), K - (r - 1))))
    return w


def trimmed_exact(vals: list[Fraction], K: Fraction, keep: str, convention: str = "ia-rct"):
    """Trimmed mean, variance (divisor = mass) and boundary value.

    convention='ia-rct' (the fixture definition): the boundary value is the kept observation
    farthest into the trimmed side (ascending rank ceil(K) for keep='low', n - ceil(K) + 1 for
    keep='high'); variance divisor K always.
    convention='statspai': StatsPAI 1.40.2 trimming='exact' (= Stata leebounds' fractional branch):
    threshold = Stata _pctile (the average of two order statistics when n*share is whole);
    observations strictly beyond it kept whole, those equal to it share the remaining mass; the
    variance divides by the mass when some weight is fractional, else by mass - 1."""
    v = sorted(vals)
    n = len(v)
    if convention == "ia-rct":
        w = trim_weights(n, K, keep)
        c = math.ceil(K)
        yb = v[c - 1] if keep == "low" else v[n - c]
        div = K
    else:
        P = K if keep == "low" else n - K  # n * (1-q) for the low tail, n * q for the high tail
        if P.denominator == 1:
            k = int(P)
            thr = v[0] if k <= 0 else v[-1] if k >= n else (v[k - 1] + v[k]) / 2
        else:
            thr = v[min(math.floor(P) + 1, n) - 1]
        inside = [x < thr if keep == "low" else x > thr for x in v]
        tied = [x == thr for x in v]
        if any(tied):
            share = (K - sum(inside)) / sum(tied)
            w = [Fraction(1) if a else share if t else Fraction(0) for a, t in zip(inside, tied)]
        else:
            w = [Fraction(1) if (x <= thr if keep == "low" else x >= thr) else Fraction(0)
                 for x in v]
        yb = thr
        mass = sum(w, Fraction(0))
        div = mass if any(x != 1 and x != 0 for x in w) else mass - 1
    mass = sum(w, Fraction(0))
    assert mass == K or convention != "ia-rct"
    mu = sum((wi * x for wi, x in zip(w, v)), Fraction(0)) / mass
    s2 = sum((wi * (x - mu) ** 2 for wi, x in zip(w, v)), Fraction(0)) / div
    return {"mean": mu, "var": s2, "boundary": yb, "mass": mass, "weights": w, "sorted": v}


def lee_exact(yt: list[float], yc: list[float], Nt: int, Nc: int, convention: str = "ia-rct"):
    """Lee bounds and Prop. 3 variances; yt, yc the observed outcomes of each arm."""
    t = [Fraction(x) for x in yt]
    c = [Fraction(x) for x in yc]
    Ot, Oc = len(t), len(c)
    if Ot < 2 or Oc < 2:
        raise ValueError("each arm needs at least 2 observed outcomes")
    p1, p0 = Fraction(Ot, Nt), Fraction(Oc, Nc)
    res = {"p1": p1, "p0": p0}
    if p1 == p0 and convention == "ia-rct":
        d = fmean(t) - fmean(c)
        v = fvar1(t) / Ot + fvar1(c) / Oc
        res.update(arm="none", q=Fraction(0), K=None, lower=d, upper=d, var_lower=v, var_upper=v)
        return res
    if p1 >= p0:  # (p1 == p0 only under convention='statspai', which then trims treated, q = 0)
        arm, trim, other, p_tr, p_ot = "treated", t, c, p1, p0
    else:
        arm, trim, other, p_tr, p_ot = "control", c, t, p0, p1
    q = (p_tr - p_ot) / p_tr
    O_tr, O_ot = len(trim), len(other)
    K = O_tr * (1 - q)  # = O_other * N_trimmed / N_other
    m_other, v_other = fmean(other), fvar1(other) / O_ot
    parts = {}
    for keep in ("low", "high"):
        tr = trimmed_exact(trim, K, keep, convention)
        d2 = (tr["boundary"] - tr["mean"]) ** 2
        if convention == "ia-rct":
            v1 = tr["var"] / K
        else:
            v1 = tr["var"] / tr["mass"]
        v2 = d2 * q / K
        v3 = d2 * ((1 - p_tr) / O_tr + (1 - p_ot) / O_ot)
        parts[keep] = {"mean": tr["mean"], "boundary": tr["boundary"], "v_kept": v1,
                       "v_quantile": v2, "v_share": v3, "v_other": v_other,
                       "var": v1 + v2 + v3 + v_other, "tr": tr}
    if arm == "treated":
        lo, hi = parts["low"], parts["high"]
        res.update(lower=lo["mean"] - m_other, upper=hi["mean"] - m_other)
    else:
        lo, hi = parts["high"], parts["low"]  # LB subtracts the control mean that keeps the top
        res.update(lower=m_other - lo["mean"], upper=m_other - hi["mean"])
    res.update(arm=arm, q=q, K=K, var_lower=lo["var"], var_upper=hi["var"], parts_lower=lo,
               parts_upper=hi)
    return res


def im_critical(delta: float, sigma_max: float) -> float:
    """Imbens-Manski (2004) C: Phi(C + delta/sigma_max) - Phi(-C) = 0.95, C in [z_.95, z_.975]."""
    if delta == 0.0:
        return Z_TWO
    r = delta / sigma_max

    def f(c: float) -> float:
        return float(special.ndtr(c + r) - special.ndtr(-c) - LEVEL)

    if f(Z_ONE) >= 0.0:
        return Z_ONE
    c = optimize.brentq(f, Z_ONE, Z_TWO, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=200)
    # polish: the double with the smallest |f| among c and its neighbours
    cands = [c]
    for direction in (np.inf, -np.inf):
        x = c
        for _ in range(4):
            x = float(np.nextafter(x, direction))
            cands.append(x)
    return float(min(cands, key=lambda x: (abs(f(x)), x)))


def manski_exact(firms: list[dict]):
    def arm_mean(rows, fill):
        vals = [Fraction(r["y"]) if r["y"] is not None else fill for r in rows]
        return sum(vals, Fraction(0)) / len(vals)

    def bounds(rows):
        t = [r for r in rows if r["arm"] == "treated"]
        c = [r for r in rows if r["arm"] == "control"]
        if not t or not c:
            raise ValueError("a stratum without one of the arms has no blocked Manski bound")
        return (arm_mean(t, Y_MIN) - arm_mean(c, Y_MAX), arm_mean(t, Y_MAX) - arm_mean(c, Y_MIN))

    pooled = bounds(firms)
    N = len(firms)
    lo = hi = Fraction(0)
    strata = sorted({r["stratum"] for r in firms})
    for s in strata:
        rows = [r for r in firms if r["stratum"] == s]
        bl, bu = bounds(rows)
        lo += Fraction(len(rows), N) * bl
        hi += Fraction(len(rows), N) * bu
    return pooled, (lo, hi)


# ------------------------------------------------------------------------------------------------
# the same in plain double precision (what the Rust side does; also used by the simulation)


def lee_float(yt: np.ndarray, yc: np.ndarray, Nt: int, Nc: int) -> dict:
    Ot, Oc = len(yt), len(yc)
    p1, p0 = Ot / Nt, Oc / Nc
    if Ot * Nc == Oc * Nt:
        d = float(np.mean(yt) - np.mean(yc))
        se = math.sqrt(np.var(yt, ddof=1) / Ot + np.var(yc, ddof=1) / Oc)
        return {"arm": "none", "q": 0.0, "lower": d, "upper": d, "se_lower": se, "se_upper": se,
                "p1": p1, "p0": p0}
    if Ot * Nc > Oc * Nt:
        arm, trim, other, p_tr, p_ot = "treated", yt, yc, p1, p0
        num, den = Oc * Nt, Nc
    else:
        arm, trim, other, p_tr, p_ot = "control", yc, yt, p0, p1
        num, den = Ot * Nc, Nt
    q = (p_tr - p_ot) / p_tr
    k, rem = divmod(num, den)  # K = num / den = k + rem / den
    K = num / den
    frac = rem / den
    v = np.sort(trim)
    n = len(v)
    O_tr, O_ot = len(trim), len(other)
    m_other = float(np.mean(other))
    v_other = float(np.var(other, ddof=1)) / O_ot
    share = (1.0 - p_tr) / O_tr + (1.0 - p_ot) / O_ot
    out = {}
    for keep in ("low", "high"):
        if keep == "low":
            full = v[:k]
            part = v[k] if rem else None
            yb = v[k] if rem else v[k - 1]
        else:
            full = v[n - k:]
            part = v[n - k - 1] if rem else None
            yb = v[n - k - 1] if rem else v[n - k]
        s = float(np.sum(full)) + (frac * part if rem else 0.0)
        mu = s / K
        ss = float(np.sum((full - mu) ** 2)) + (frac * (part - mu) ** 2 if rem else 0.0)
        d2 = (yb - mu) ** 2
        var = ss / K / K + d2 * q / K + d2 * share + v_other
        out[keep] = (mu, math.sqrt(var))
    if arm == "treated":
        lo, hi = out["low"], out["high"]
        lower, upper = lo[0] - m_other, hi[0] - m_other
    else:
        lo, hi = out["high"], out["low"]
        lower, upper = m_other - lo[0], m_other - hi[0]
    return {"arm": arm, "q": q, "lower": lower, "upper": upper, "se_lower": lo[1],
            "se_upper": hi[1], "p1": p1, "p0": p0}


def manski_float(firms: list[dict]):
    df = pd.DataFrame(firms)
    df["y_lo"] = np.where(df["y"].isna(), np.where(df["arm"] == "treated", 0.0, 100.0), df["y"])
    df["y_hi"] = np.where(df["y"].isna(), np.where(df["arm"] == "treated", 100.0, 0.0), df["y"])

    def b(g):
        t, c = g[g.arm == "treated"], g[g.arm == "control"]
        return t.y_lo.mean() - c.y_lo.mean(), t.y_hi.mean() - c.y_hi.mean()

    pooled = b(df)
    lo = hi = 0.0
    for _, g in df.groupby("stratum"):
        bl, bu = b(g)
        lo += len(g) / len(df) * bl
        hi += len(g) / len(df) * bu
    return pooled, (lo, hi)


def rel(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


# ------------------------------------------------------------------------------------------------
# one case


def tools_string(with_statspai: str | None) -> str:
    s = (f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
         f"pandas {pd.__version__}; reference = exact rational arithmetic (fractions.Fraction, "
         f"60-digit decimal sqrt) in notebooks/bounds_reference.py, IM critical value by "
         f"scipy.optimize.brentq on scipy.special.ndtr")
    if with_statspai:
        s += f"; cross-check (crosscheck.json): statspai {with_statspai} lee_bounds"
    return s


def run_case(case: str, spec: dict, statspai_version: str | None) -> dict:
    d = os.path.join(OUT_DIR, case)
    os.makedirs(d, exist_ok=True)
    write_firms(os.path.join(d, "firms.csv"), generate(case, spec))
    firms = read_firms(os.path.join(d, "firms.csv"))
    treated = [f for f in firms if f["arm"] == "treated"]
    control = [f for f in firms if f["arm"] == "control"]
    yt = [f["y"] for f in treated if f["y"] is not None]
    yc = [f["y"] for f in control if f["y"] is not None]
    Nt, Nc = len(treated), len(control)

    L = lee_exact(yt, yc, Nt, Nc)
    lower, upper = float(L["lower"]), float(L["upper"])
    se_lo, se_hi = dsqrt(L["var_lower"]), dsqrt(L["var_upper"])
    delta = float(L["upper"] - L["lower"])
    c_im = im_critical(delta, max(se_lo, se_hi))
    (mp_lo, mp_hi), (mb_lo, mb_hi) = manski_exact(firms)

    expected = {
        "case": case,
        "n_treated": Nt,
        "n_control": Nc,
        "observed_treated": len(yt),
        "observed_control": len(yc),
        "p1": float(L["p1"]),
        "p0": float(L["p0"]),
        "trimmed_arm": L["arm"],
        "q": float(L["q"]),
        "lee": {
            "lower": lower,
            "upper": upper,
            "se_lower": se_lo,
            "se_upper": se_hi,
            "im_ci_low": lower - c_im * se_lo,
            "im_ci_high": upper + c_im * se_hi,
            "im_c": c_im,
            "naive_ci_low": lower - Z_TWO * se_lo,
            "naive_ci_high": upper + Z_TWO * se_hi,
        },
        "manski_pooled": {"lower": float(mp_lo), "upper": float(mp_hi)},
        "manski_blocked": {"lower": float(mb_lo), "upper": float(mb_hi)},
        "provenance": {"tools": tools_string(statspai_version), "command": COMMAND},
    }
    with open(os.path.join(d, "expected.json"), "w") as fh:
        json.dump(expected, fh, indent=2)
        fh.write("\n")

    # ---- cross-checks
    checks = []

    def add(check, quantity, reference, other, note=""):
        checks.append({"check": check, "quantity": quantity, "reference": reference,
                       "other": other, "rel_diff": rel(reference, other),
                       "abs_diff": abs(reference - other), "note": note})

    F = lee_float(np.array(yt), np.array(yc), Nt, Nc)
    for k in ("lower", "upper", "se_lower", "se_upper"):
        add("plain double precision (numpy, this script's lee_float)", k, expected["lee"][k], F[k])
    add("plain double precision (numpy, this script's lee_float)", "q", expected["q"], F["q"])
    assert F["arm"] == L["arm"]
    (fp_lo, fp_hi), (fb_lo, fb_hi) = manski_float(firms)
    for k, a, b in (("manski_pooled.lower", mp_lo, fp_lo), ("manski_pooled.upper", mp_hi, fp_hi),
                    ("manski_blocked.lower", mb_lo, fb_lo),
                    ("manski_blocked.upper", mb_hi, fb_hi)):
        add("Manski in double precision (pandas groupby)", k, float(a), float(b))
    # IM: C solves the equation, and the interval nests between the one- and two-sided ones
    r = delta / max(se_lo, se_hi) if delta else 0.0
    resid = float(special.ndtr(c_im + r) - special.ndtr(-c_im) - LEVEL)
    add("IM equation residual Phi(C + D/s) - Phi(-C) - 0.95", "im_c", 0.0, resid)
    assert Z_ONE <= c_im <= Z_TWO and abs(resid) < 1e-15

    details = {
        "case": case, "seed": spec["seed"], "note": spec["note"],
        "strata": {k: {"treated": v[0], "control": v[1]} for k, v in spec["strata"].items()},
    }
    if L["arm"] != "none":
        Kf = L["K"]
        details["kept_mass_K"] = {"value": float(Kf), "as_fraction": f"{Kf.numerator}/{Kf.denominator}",
                                  "whole": int(math.floor(Kf)),
                                  "fractional_weight": float(Kf - math.floor(Kf))}
        for side in ("lower", "upper"):
            P = L[f"parts_{side}"]
            tr = P["tr"]
            v, w = tr["sorted"], tr["weights"]
            ib = [i for i, x in enumerate(w) if x > 0]
            b_idx = ib[-1] if (L["arm"] == "treated") == (side == "lower") else ib[0]
            tie = sum(1 for x in v if x == v[b_idx]) > 1
            details[f"lee_{side}"] = {
                "kept_tail": "low" if (L["arm"] == "treated") == (side == "lower") else "high",
                "trimmed_mean": float(P["mean"]),
                "boundary_value": float(P["boundary"]),
                "boundary_ascending_rank_1based": b_idx + 1,
                "boundary_weight": float(w[b_idx]),
                "boundary_tied": tie,
                "var_terms": {"kept_outcomes": float(P["v_kept"]),
                              "quantile": float(P["v_quantile"]),
                              "trimming_share": float(P["v_share"]),
                              "untrimmed_arm": float(P["v_other"])},
            }
    else:
        details["difference_of_means_variance"] = float(L["var_lower"])

    # StatsPAI 1.40.2, Lee Prop. 3 as Stata leebounds computes it
    if statspai_version:
        import statspai as sp

        df = pd.DataFrame({"y": [f["y"] if f["y"] is not None else np.nan for f in firms],
                           "d": [1 if f["arm"] == "treated" else 0 for f in firms]})
        df["s"] = df["y"].notna().astype(int)
        for trimming in ("exact", "leebounds"):
            with warnings.catch_warnings(record=True) as wlist:
                warnings.simplefilter("always")
                res = sp.lee_bounds(df, y="y", treat="d", selection="s", se_method="analytic",
                                    trimming=trimming, alpha=0.05)
            mi = res.model_info
            other = {"lower": mi["lower_bound"], "upper": mi["upper_bound"],
                     "se_lower": mi["se_lower"], "se_upper": mi["se_upper"],
                     "im_c": mi["imbens_manski_cn"], "im_ci_low": res.ci[0],
                     "im_ci_high": res.ci[1]}
            name = f"statspai {statspai_version} lee_bounds(se_method='analytic', trimming='{trimming}')"
            note = "; ".join(sorted({str(w.message)[:160] for w in wlist}))
            for k in ("lower", "upper", "se_lower", "se_upper", "im_c", "im_ci_low", "im_ci_high"):
                add(name, k, expected["lee"][k], float(other[k]), note)
            if trimming == "exact":
                # the same formulas under StatsPAI's conventions (Stata _pctile threshold, divisor
                # mass - 1 without a fractional weight, q = 0 treated as 'trim treated by 0')
                S = lee_exact(yt, yc, Nt, Nc, convention="statspai")
                s_lo, s_hi = dsqrt(S["var_lower"]), dsqrt(S["var_upper"])
                conv = "this script's exact formulas under statspai's conventions"
                add(f"{name} vs {conv}", "se_lower", s_lo, float(other["se_lower"]))
                add(f"{name} vs {conv}", "se_upper", s_hi, float(other["se_upper"]))
                add(f"{name} vs {conv}", "lower", float(S["lower"]), float(other["lower"]))
                add(f"{name} vs {conv}", "upper", float(S["upper"]), float(other["upper"]))
    with open(os.path.join(d, "crosscheck.json"), "w") as fh:
        json.dump({"details": details, "checks": checks}, fh, indent=2)
        fh.write("\n")
    return {"expected": expected, "details": details, "checks": checks}


# ------------------------------------------------------------------------------------------------
# SE validation by simulation

SIM_DESIGNS = {
    # name: treated/control firms, retention (observed share) per arm, Beta outcome (percent)
    "A_trim_control_200": {"seed": 2026_1701, "Nt": 110, "Nc": 90, "s1": 0.75, "s0": 0.92,
                           "mu1": 0.054, "mu0": 0.060, "kappa": 25.0, "round": None},
    "B_trim_treated_120": {"seed": 2026_1702, "Nt": 60, "Nc": 60, "s1": 0.95, "s0": 0.70,
                           "mu1": 0.054, "mu0": 0.060, "kappa": 25.0, "round": None},
    "C_trim_treated_2000": {"seed": 2026_1703, "Nt": 1000, "Nc": 1000, "s1": 0.90, "s0": 0.75,
                            "mu1": 0.054, "mu0": 0.060, "kappa": 25.0, "round": None},
    "D_trim_treated_120_rounded": {"seed": 2026_1704, "Nt": 60, "Nc": 60, "s1": 0.95, "s0": 0.70,
                                   "mu1": 0.054, "mu0": 0.060, "kappa": 25.0, "round": 2},
    # the same designs as B and C with 20,000 replications (new seeds), to resolve a 1-2 % gap
    "B_long_20000": {"seed": 2026_1705, "Nt": 60, "Nc": 60, "s1": 0.95, "s0": 0.70,
                     "mu1": 0.054, "mu0": 0.060, "kappa": 25.0, "round": None, "reps": 20000},
    "C_long_20000": {"seed": 2026_1706, "Nt": 1000, "Nc": 1000, "s1": 0.90, "s0": 0.75,
                     "mu1": 0.054, "mu0": 0.060, "kappa": 25.0, "round": None, "reps": 20000},
}


def beta_truth(spec: dict) -> dict:
    """Population Lee bounds and the Prop. 3 asymptotic SDs at the design's arm sizes."""
    k = spec["kappa"]
    a1, b1 = k * spec["mu1"], k * (1 - spec["mu1"])
    a0, b0 = k * spec["mu0"], k * (1 - spec["mu0"])

    def moments(a, b, lo, hi):  # E[X 1{lo<X<hi}], E[X^2 1{..}] and P(lo<X<hi) for Beta(a,b)
        I = lambda aa, x: float(special.betainc(aa, b, x))  # noqa: E731
        m1 = a / (a + b) * (I(a + 1, hi) - I(a + 1, lo))
        m2 = a * (a + 1) / ((a + b) * (a + b + 1)) * (I(a + 2, hi) - I(a + 2, lo))
        return m1, m2, I(a, hi) - I(a, lo)

    s1, s0 = spec["s1"], spec["s0"]
    if s1 > s0:
        arm, (a, b), (ao, bo), s_tr, s_ot, N_tr, N_ot = "treated", (a1, b1), (a0, b0), s1, s0, spec["Nt"], spec["Nc"]
    else:
        arm, (a, b), (ao, bo), s_tr, s_ot, N_tr, N_ot = "control", (a0, b0), (a1, b1), s0, s1, spec["Nc"], spec["Nt"]
    p = 1 - s_ot / s_tr
    mo = ao / (ao + bo)
    vo = ao * bo / ((ao + bo) ** 2 * (ao + bo + 1))
    out = {}
    for keep in ("low", "high"):
        if keep == "low":
            yq = float(special.betaincinv(a, b, 1 - p))
            m1, m2, pr = moments(a, b, 0.0, yq)
        else:
            yq = float(special.betaincinv(a, b, p))
            m1, m2, pr = moments(a, b, yq, 1.0)
        mu = m1 / pr
        var = m2 / pr - mu * mu
        V = (var / (N_tr * s_tr * (1 - p)) + (yq - mu) ** 2 * p / (N_tr * s_tr * (1 - p))
             + (yq - mu) ** 2 * ((1 - s_tr) / (N_tr * s_tr) + (1 - s_ot) / (N_ot * s_ot))
             + vo / (N_ot * s_ot))
        out[keep] = (100 * mu, 100 * math.sqrt(V))
    if arm == "treated":
        lb, ub = out["low"][0] - 100 * mo, out["high"][0] - 100 * mo
        sd_lb, sd_ub = out["low"][1], out["high"][1]
    else:
        lb, ub = 100 * mo - out["high"][0], 100 * mo - out["low"][0]
        sd_lb, sd_ub = out["high"][1], out["low"][1]
    return {"trimmed_arm": arm, "p": p, "lower": lb, "upper": ub, "asy_sd_lower": sd_lb,
            "asy_sd_upper": sd_ub, "theta": 100 * (spec["mu1"] - spec["mu0"])}


def simulate(name: str, spec: dict, reps: int, boot: int = 1000) -> dict:
    rng = np.random.default_rng(spec["seed"])
    k = spec["kappa"]
    est = np.empty((reps, 4))
    arms = []
    for r in range(reps):
        y1 = 100.0 * rng.beta(k * spec["mu1"], k * (1 - spec["mu1"]), spec["Nt"])
        y0 = 100.0 * rng.beta(k * spec["mu0"], k * (1 - spec["mu0"]), spec["Nc"])
        if spec["round"] is not None:
            y1, y0 = np.round(y1, spec["round"]), np.round(y0, spec["round"])
        s1 = rng.random(spec["Nt"]) < spec["s1"]
        s0 = rng.random(spec["Nc"]) < spec["s0"]
        F = lee_float(y1[s1], y0[s0], spec["Nt"], spec["Nc"])
        est[r] = (F["lower"], F["upper"], F["se_lower"], F["se_upper"])
        arms.append(F["arm"])
    truth = beta_truth(spec)
    brng = np.random.default_rng(spec["seed"] + 1)
    idx = brng.integers(0, reps, size=(boot, reps))
    out = {"design": {k2: v for k2, v in spec.items() if k2 != "reps"}, "reps": reps, "bootstrap_over_reps": boot,
           "truth": truth,
           "share_reps_trimming_other_arm": sum(a != truth["trimmed_arm"] for a in arms) / reps}
    z = Z_TWO
    for j, side in ((0, "lower"), (1, "upper")):
        e, s = est[:, j], est[:, j + 2]
        sd = float(np.std(e, ddof=1))
        mse = float(np.mean(s))
        bsd = np.std(e[idx], axis=1, ddof=1)
        bmse = np.mean(s[idx], axis=1)
        bratio = bsd / bmse
        tv = truth[side]
        cover = float(np.mean(np.abs(e - tv) <= z * s))
        out[side] = {
            "sd_estimator": sd, "mc_se_sd": float(np.std(bsd, ddof=1)),
            "mean_analytic_se": mse, "mc_se_mean_se": float(np.std(bmse, ddof=1)),
            "ratio_sd_over_mean_se": sd / mse, "mc_se_ratio": float(np.std(bratio, ddof=1)),
            "sd_of_analytic_se": float(np.std(s, ddof=1)),
            "asymptotic_sd": truth[f"asy_sd_{side}"],
            "mean_estimate": float(np.mean(e)), "true_bound": tv,
            "coverage_of_true_bound_by_estimate_pm_1.96se": cover,
            "mc_se_coverage": math.sqrt(cover * (1 - cover) / reps),
        }
    # IM coverage of theta (inside the identified set, so at least 95% asymptotically)
    lo, hi, slo, shi = est.T
    cs = np.array([im_critical(float(h - l), float(max(a, b))) for l, h, a, b in zip(lo, hi, slo, shi)])
    th = truth["theta"]
    out["im_coverage_of_theta"] = float(np.mean((lo - cs * slo <= th) & (th <= hi + cs * shi)))
    return out


# ------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-sim", action="store_true", help="skip the SE validation simulation")
    ap.add_argument("--reps", type=int, default=5000)
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    t0 = time.time()
    try:
        import statspai

        sp_version = statspai.__version__
    except Exception:  # pragma: no cover
        sp_version = None
    os.makedirs(OUT_DIR, exist_ok=True)
    summary = []
    for case in args.cases or CASES:
        tc = time.time()
        res = run_case(case, CASES[case], sp_version)
        e = res["expected"]
        worst = {}
        for c in res["checks"]:
            worst[c["check"]] = max(worst.get(c["check"], 0.0), c["rel_diff"])
        summary.append((case, e, worst, time.time() - tc))
    for case, e, worst, dt in summary:
        L = e["lee"]
        print(f"== {case} ({dt:.2f} s): Nt={e['n_treated']} Nc={e['n_control']} Ot={e['observed_treated']} "
              f"Oc={e['observed_control']} p1={e['p1']:.6f} p0={e['p0']:.6f} trim={e['trimmed_arm']} q={e['q']:.6f}")
        print(f"   lee [{L['lower']:.6f}, {L['upper']:.6f}] se ({L['se_lower']:.6f}, {L['se_upper']:.6f}) "
              f"IM C={L['im_c']:.6f} [{L['im_ci_low']:.6f}, {L['im_ci_high']:.6f}] naive "
              f"[{L['naive_ci_low']:.6f}, {L['naive_ci_high']:.6f}]")
        print(f"   manski pooled [{e['manski_pooled']['lower']:.6f}, {e['manski_pooled']['upper']:.6f}] "
              f"blocked [{e['manski_blocked']['lower']:.6f}, {e['manski_blocked']['upper']:.6f}]")
        for k, v in worst.items():
            print(f"   max rel diff {v:.2e}  {k}")
    if not args.no_sim:
        sim = {"definition": "SD across replications of the Lee bound estimators (this script's "
                             "lee_float, the fixture definition in double precision) against the "
                             "mean Prop. 3 analytic SE; MC SEs from a bootstrap over replications",
               "designs": {}}
        for name, spec in SIM_DESIGNS.items():
            ts = time.time()
            r = simulate(name, spec, spec.get("reps", args.reps))
            r["seconds"] = round(time.time() - ts, 1)
            sim["designs"][name] = r
            for side in ("lower", "upper"):
                s = r[side]
                print(f"sim {name} {side}: sd {s['sd_estimator']:.5f} (mc {s['mc_se_sd']:.5f}) "
                      f"mean se {s['mean_analytic_se']:.5f} (mc {s['mc_se_mean_se']:.5f}) ratio "
                      f"{s['ratio_sd_over_mean_se']:.4f} +- {s['mc_se_ratio']:.4f} asy sd "
                      f"{s['asymptotic_sd']:.5f} cover {s['coverage_of_true_bound_by_estimate_pm_1.96se']:.4f}")
            print(f"sim {name}: IM coverage of theta {r['im_coverage_of_theta']:.4f}; other-arm "
                  f"trims {r['share_reps_trimming_other_arm']:.4f} ({r['seconds']} s)")
        sim["provenance"] = {"tools": tools_string(None), "command": COMMAND}
        # seconds vary between runs; keep the file byte-identical across runs
        for r in sim["designs"].values():
            r.pop("seconds")
        with open(os.path.join(OUT_DIR, "se_validation.json"), "w") as fh:
            json.dump(sim, fh, indent=2)
            fh.write("\n")
    print(f"total {time.time() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
