#!/usr/bin/env python3
"""The Python half of benches/estimate_vs_reference.sh: the design, the reference timings and the
table. Not meant to be run by hand (the shell script passes the paths), but every step is a
subcommand that can be:

    assign     REGISTER OUT              two arms, strata fylke x size class, half of each treated
    pyfixest   DIR ESTIMATOR             feols DiD / event study with CR1 on DIR's panel, timed
    firmdata   DIR                       the firm-level data of each contrast for the R half
    selfcheck  DIR                       this file's vectorized derivation vs notebooks/
                                         estimates_reference.py's (the fixtures' own code)
    report     DIR                       the table: ia-rct vs the references, times, ratios, memory

DIR holds `statistics.csv` (NAV DVH CSV from `ia-rct simulate`), `assignment.csv` and
`design.json` ({"randomized_at", "pre", "post", "control"}); results are written next to them.

The data steps are those of protocols/ANALYSIS.md §2-§3 as notebooks/estimates_reference.py codes
them (`derive`, `contrast`), vectorized with numpy so that 12 million rows fit in memory and time:
window filter, ratio-of-sums firm rates, attrition (no post row), missing baseline (b = 0 plus an
indicator when any firm lacks one), cluster = klynge or the firm itself, singleton firms dropped
until none remain, d = z x post and one dummy per relative quarter but e = -1. `selfcheck` runs both
derivations on the same files and prints the largest difference.

Timings: `fit_s` is the reference call alone (pyfixest `feols(...)` + `tidy()`, or estimatr's call
+ `tidy()` inside R's `system.time`), summed over the contrasts; `read_s` + `derive_s` are pandas
reading the statistics and building the data it needs. pyfixest's default demeaner (0.60: MAP,
Rust backend, `fixef_tol` 1e-6) is used with its default threads and its memory-saving options
(`copy_data=False, store_data=False, lean=True`), after a warm-up fit on a few rows so no one-off
compilation is timed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections import defaultdict

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOKS = os.path.join(os.path.dirname(HERE), "notebooks")
ESTIMATORS = ["itt_dim", "itt_ancova", "itt_lin", "did_twfe", "event_study"]
PANEL_ESTIMATORS = {"did_twfe", "event_study"}
# firm u32 + quarter u16 + y f64 + w f64: the panel's own columns (docs/statistics.md A.5).
PANEL_ROW_BYTES = 4 + 2 + 8 + 8


# ------------------------------------------------------------------------------------------------
# design
def splitmix64(x: int) -> int:
    m = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def size_class(employees: int) -> int:
    for k, upper in enumerate([4, 14, 49, 149]):
        if employees <= upper:
            return k
    return 4


def cmd_assign(register: str, out: str) -> None:
    """Stratum = fylke x size class (as benches/estimate.rs); within a stratum firms are ordered by
    splitmix64(orgnr) and ranks 1, 3, 5, ... are treated (`behandling`), the rest `kontroll`."""
    reg = pd.read_csv(register, dtype={"orgnr": str, "fylke": str},
                      usecols=["orgnr", "fylke", "antall_ansatte"])
    strata: dict[str, list[str]] = defaultdict(list)
    for o, fylke, n in zip(reg["orgnr"], reg["fylke"], reg["antall_ansatte"]):
        strata[f"{fylke}-{size_class(int(n))}"].append(o)
    with open(out, "w") as fh:
        fh.write("orgnr,arm,stratum\n")
        for label in sorted(strata):
            members = sorted(strata[label], key=lambda o: (splitmix64(int(o)), int(o)))
            for rank, o in enumerate(members):
                fh.write(f"{o},{'behandling' if rank % 2 == 1 else 'kontroll'},{label}\n")
    print(f"{out}: {len(reg)} firms, {len(strata)} strata, arms kontroll/behandling")


# ------------------------------------------------------------------------------------------------
# data (ANALYSIS.md §2-§3, vectorized)
def q_index(label: str) -> int:
    y, q = label.upper().replace("Q", "K").replace("-", "").split("K")
    return int(y) * 4 + int(q) - 1


def read_design(d: str) -> dict:
    with open(os.path.join(d, "design.json")) as fh:
        return json.load(fh)


def read_inputs(d: str):
    """The statistics (int orgnr, quarter index, tapte, mulige) and the assignment."""
    st = pd.read_csv(os.path.join(d, "statistics.csv"),
                     usecols=["orgnr", "arstall", "kvartal", "taptedv", "muligedv"],
                     dtype={"orgnr": np.int64, "arstall": np.int32, "kvartal": np.int32,
                            "taptedv": np.float64, "muligedv": np.float64})
    asg = pd.read_csv(os.path.join(d, "assignment.csv"), dtype=str, comment="#",
                      keep_default_na=False)
    return st, asg


class Study:
    """Firm-level table and panel rows of the study (all arms), ready to split by contrast."""

    def __init__(self, st: pd.DataFrame, asg: pd.DataFrame, design: dict):
        R = q_index(design["randomized_at"])
        P, Q = int(design["pre"]), int(design["post"])
        self.control = design["control"]
        org_a = asg["orgnr"].astype(np.int64).to_numpy()
        order = np.argsort(org_a, kind="stable")
        org_a = org_a[order]
        self.arm = asg["arm"].to_numpy()[order]
        self.stratum = asg["stratum"].to_numpy()[order]
        klynge = asg["klynge"].to_numpy()[order] if "klynge" in asg else np.full(len(asg), "")
        self.clustered = bool((klynge != "").any())
        # cluster id per firm: its klynge, else itself
        keys = np.where(klynge != "", np.char.add("k:", klynge.astype(str)),
                        np.char.add("f:", org_a.astype(str)))
        self.cl = pd.factorize(keys)[0]
        self.orgnr = org_a
        n = len(org_a)
        org = st["orgnr"].to_numpy()
        t = st["arstall"].to_numpy() * 4 + st["kvartal"].to_numpy() - 1
        e = t - R
        pos = np.searchsorted(org_a, org)
        pos_c = np.minimum(pos, n - 1)
        keep = (org_a[pos_c] == org) & (e >= -P) & (e < Q)
        self.unit = pos_c[keep].astype(np.int64)
        self.t = t[keep].astype(np.int64)
        self.e = e[keep].astype(np.int64)
        self.tapte = st["taptedv"].to_numpy()[keep]
        self.mulige = st["muligedv"].to_numpy()[keep]
        o = np.lexsort((self.t, self.unit))
        for k in ["unit", "t", "e", "tapte", "mulige"]:
            setattr(self, k, getattr(self, k)[o])
        post = self.e >= 0
        self.post = post
        bc = lambda w, m: np.bincount(self.unit[m], weights=w[m], minlength=n)  # noqa: E731
        self.n_post = np.bincount(self.unit[post], minlength=n)
        self.n_pre = np.bincount(self.unit[~post], minlength=n)
        sp_t, sp_m = bc(self.tapte, post), bc(self.mulige, post)
        sb_t, sb_m = bc(self.tapte, ~post), bc(self.mulige, ~post)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.y = np.where(self.n_post > 0, 100.0 * sp_t / sp_m, np.nan)
            self.b = np.where(self.n_pre > 0, 100.0 * sb_t / sb_m, 0.0)
        self.m = sp_m
        self.bmiss = (self.n_pre == 0).astype(float)
        self.P, self.Q = P, Q

    def arms(self) -> list[str]:
        return sorted(a for a in set(self.arm) if a != self.control)

    def firms(self, arm: str) -> pd.DataFrame:
        """The contrast's firms with post data, by orgnr."""
        sel = np.isin(self.arm, [arm, self.control]) & (self.n_post > 0)
        return pd.DataFrame({
            "orgnr": self.orgnr[sel], "stratum": self.stratum[sel], "cl": self.cl[sel],
            "y": self.y[sel], "z": (self.arm[sel] == arm).astype(float), "b": self.b[sel],
            "bmiss": self.bmiss[sel], "m": self.m[sel]})

    def panel(self, arm: str, event: bool) -> tuple[pd.DataFrame, list[str], list[int]]:
        """The contrast's panel (firms with post data, singletons dropped until none remain):
        r, w, firm, quarter and cluster codes, and d or the event dummies."""
        unit_ok = np.isin(self.arm, [arm, self.control]) & (self.n_post > 0)
        rows = unit_ok[self.unit]
        unit, t, e = self.unit[rows], self.t[rows], self.e[rows]
        tapte, mulige, post = self.tapte[rows], self.mulige[rows], self.post[rows]
        while True:
            cnt = np.bincount(unit, minlength=len(self.orgnr))[unit]
            qcnt = np.bincount(t - t.min(), minlength=1)[t - t.min()] if len(t) else cnt
            k = (cnt > 1) & (qcnt > 1)
            if k.all():
                break
            unit, t, e, tapte, mulige, post = (a[k] for a in (unit, t, e, tapte, mulige, post))
        z = (self.arm[unit] == arm).astype(float)
        p = pd.DataFrame({"r": 100.0 * tapte / mulige, "w": mulige, "firm": unit, "q": t,
                          "cl": self.cl[unit]})
        names, rels = [], []
        if event == "i":
            # for pyfixest's own interaction syntax i(rel, z, ref=-1): no dummies built here
            p["rel"] = e
            p["z"] = z
            rels = [rel for rel in range(-self.P, self.Q) if rel != -1]
        elif event:
            for rel in range(-self.P, self.Q):
                if rel == -1:
                    continue
                nm = f"ev_m{-rel}" if rel < 0 else f"ev_p{rel}"
                p[nm] = z * (e == rel)
                names.append(nm)
                rels.append(rel)
        else:
            p["d"] = z * post
        return p, names, rels


# ------------------------------------------------------------------------------------------------
# pyfixest
def cmd_pyfixest(d: str, estimator: str) -> None:
    import pyfixest as pf

    design = read_design(d)
    weighted = False  # the bench is firm weighting (the CLI's --weights firm)
    t0 = time.perf_counter()
    st, asg = read_inputs(d)
    t1 = time.perf_counter()
    study = Study(st, asg, design)
    del st
    t2 = time.perf_counter()
    # event_study: one dummy column per relative quarter built here (as the fixtures do; the
    # fastest); event_study_i: pyfixest's own i(rel, z, ref=-1), which builds them in the call.
    event = {"event_study": True, "event_study_i": "i"}.get(estimator, False)

    # warm-up on a few rows of the same shape (no compilation is timed)
    warm = pd.DataFrame({"r": np.arange(40.0) % 7, "firm": np.repeat(np.arange(10), 4),
                         "q": np.tile(np.arange(4), 10), "cl": np.repeat(np.arange(10), 4),
                         "d": np.tile([0.0, 0.0, 1.0, 1.0], 10) * (np.arange(40) % 8 < 4)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf.feols("r ~ d | firm + q", data=warm, vcov={"CRV1": "cl"}, copy_data=False,
                 store_data=False, lean=True).tidy()

    derive_s, fit_s = t2 - t1, 0.0
    coefs: dict[str, dict[str, list[float]]] = {}
    rows = 0
    for arm in study.arms():
        a = time.perf_counter()
        p, names, rels = study.panel(arm, event)
        b = time.perf_counter()
        derive_s += b - a
        rhs = "i(rel, z, ref=-1)" if event == "i" else " + ".join(names) if event else "d"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = pf.feols(f"r ~ {rhs} | firm + q", data=p, vcov={"CRV1": "cl"},
                           weights="w" if weighted else None, copy_data=False,
                           store_data=False, lean=True)
            tb = fit.tidy()
        c = time.perf_counter()
        fit_s += c - b
        rows += int(fit._N)
        out = {}
        if event == "i":
            for rel in rels:
                if f"rel::{rel}:z" in tb.index:
                    out[f"e={rel}"] = [float(tb.loc[f"rel::{rel}:z", "Estimate"]),
                                       float(tb.loc[f"rel::{rel}:z", "Std. Error"])]
        elif event:
            for nm, rel in zip(names, rels):
                if nm in tb.index:
                    out[f"e={rel}"] = [float(tb.loc[nm, "Estimate"]), float(tb.loc[nm, "Std. Error"])]
        else:
            out["d"] = [float(tb.loc["d", "Estimate"]), float(tb.loc["d", "Std. Error"])]
        coefs[arm] = out
        del fit, p
    tool = f"pyfixest {pf.__version__}" + (" i()" if event == "i" else "")
    res = {"tool": tool, "estimator": estimator, "read_s": t1 - t0,
           "derive_s": derive_s, "fit_s": fit_s, "rows": rows, "coefs": coefs}
    with open(os.path.join(d, f"ref_{estimator}.json"), "w") as fh:
        json.dump(res, fh)
    print(json.dumps({k: v for k, v in res.items() if k != "coefs"}))


# ------------------------------------------------------------------------------------------------
# firm-level data for R (hex floats: exact)
def hexcol(x: np.ndarray) -> list[str]:
    return [float(v).hex() for v in x]


def cmd_firmdata(d: str) -> None:
    design = read_design(d)
    t0 = time.perf_counter()
    st, asg = read_inputs(d)
    t1 = time.perf_counter()
    study = Study(st, asg, design)
    del st
    frames = {arm: study.firms(arm) for arm in study.arms()}
    t2 = time.perf_counter()
    with open(os.path.join(d, "firm_meta.csv"), "w") as fh:
        fh.write("arm,clustered,use_bmiss\n")
        for arm, f in frames.items():
            fh.write(f"{arm},{int(study.clustered)},{int((f['bmiss'] == 1.0).any())}\n")
            g = pd.DataFrame({"orgnr": f["orgnr"].astype(str), "stratum": f["stratum"],
                              "cl": f["cl"].astype(str)})
            for k in ["y", "z", "b", "bmiss", "m"]:
                g[k] = hexcol(f[k].to_numpy())
            g.to_csv(os.path.join(d, f"firm_{arm}.csv"), index=False)
    with open(os.path.join(d, "firmdata.json"), "w") as fh:
        json.dump({"read_s": t1 - t0, "derive_s": t2 - t1}, fh)
    print(f"firm-level data of {len(frames)} contrast(s): read {t1 - t0:.2f} s, "
          f"derive {t2 - t1:.2f} s")


# ------------------------------------------------------------------------------------------------
# the notebook's derivation on the same files
def cmd_selfcheck(d: str) -> None:
    sys.path.insert(0, NOTEBOOKS)
    import estimates_reference as nb  # noqa: E402  (sets RAYON_NUM_THREADS: separate process)

    design = read_design(d)
    st, asg = read_inputs(d)
    study = Study(st, asg, design)
    params = {"randomized_at": design["randomized_at"], "pre": design["pre"],
              "post": design["post"]}
    assign = asg.to_dict("records")
    stats = [(f"{o:09d}", int(a) * 4 + int(k) - 1, float(t), float(m)) for o, a, k, t, m in
             zip(st["orgnr"], st["arstall"], st["kvartal"], st["taptedv"], st["muligedv"])]
    R, P, Q, fd, panel, clustered = nb.derive(params, assign, stats)
    assert clustered == study.clustered
    worst = 0.0
    for arm in study.arms():
        f_nb, p_nb, *_ = nb.contrast(fd, panel, arm, design["control"])
        f_me = study.firms(arm)
        assert list(f_nb["orgnr"].astype(np.int64)) == list(f_me["orgnr"]), arm
        for k in ["y", "z", "b", "bmiss", "m"]:
            a, b = f_nb[k].to_numpy(float), f_me[k].to_numpy(float)
            worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300))))
        assert list(f_nb["stratum"]) == list(f_me["stratum"])
        p_me, _, _ = study.panel(arm, event=False)
        assert len(p_me) == len(p_nb), (len(p_me), len(p_nb))
        assert np.array_equal(p_nb["d"].to_numpy(float), p_me["d"].to_numpy(float))
        assert np.array_equal(p_nb["r"].to_numpy(float), p_me["r"].to_numpy(float))
        assert np.array_equal(p_nb["t"].to_numpy(), p_me["q"].to_numpy())
    print(f"selfcheck: the vectorized derivation equals notebooks/estimates_reference.py's "
          f"(panel rows identical; firm-level y, b, m max rel diff {worst:.1e}, fsum vs bincount)")


# ------------------------------------------------------------------------------------------------
# report
def read_time(path: str):
    """`/usr/bin/time -f "%e %M %x [%U %S]"` lines (one per repeat): best wall, max peak KB, exit
    code, and the CPU seconds (user + system) of the run with the best wall (None if not given)."""
    if not os.path.exists(path):
        return None
    runs = []
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) in (3, 5) and parts[0][0].isdigit():
                cpu = float(parts[3]) + float(parts[4]) if len(parts) == 5 else None
                runs.append((float(parts[0]), int(parts[1]), int(parts[2]), cpu))
    if not runs:
        return None
    best = min(runs, key=lambda r: r[0])
    return best[0], max(r[1] for r in runs), runs[-1][2], best[3]


def read_status(path: str) -> str:
    if not os.path.exists(path):
        return "not run"
    with open(path) as fh:
        # "exit-code memory-cap-GB timeout-s", as estimate_vs_reference.sh writes it
        parts = (fh.read().split() + ["?", "?"])[:3]
    code, cap_gb, timeout_s = int(parts[0]), parts[1], parts[2]
    if code == 0:
        return "ok"
    if code == 124:
        return f"timeout ({timeout_s} s)"
    log = path[: -len(".status")] + ".log"
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    if code in (137, 9, -9) or any(m in text for m in ("MemoryError", "memory allocation of",
                                                       "cannot allocate", "Unable to allocate")):
        return f"out of memory (cap {cap_gb} GB)"
    return f"failed (exit {code})"


def rel(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def ia_coefs(path: str) -> dict:
    with open(path) as fh:
        rep = json.load(fh)
    out: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for e in rep["estimates"]:
        if e["weights"] != "firm" or (e["estimator"] == "did_twfe" and e["se_type"] == "CR2"):
            continue
        out[e["arm"]][e["term"]] = [e["estimate"], e["std_error"]]
    return out, rep.get("skipped", [])


def fmt_s(x) -> str:
    """Seconds (milliseconds below 0.1 s)."""
    if x is None:
        return "-"
    if x < 0.1:
        return f"{x * 1000:.1f}ms"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def fmt_ratio(x) -> str:
    return "-" if x is None else (f"{x:.1f}x" if x < 100 else f"{x:.0f}x")


def cmd_report(d: str, label: str) -> None:
    design = read_design(d)
    load = read_time(os.path.join(d, "ia_load.time"))
    phases = {}
    if os.path.exists(os.path.join(d, "ia_phases.json")):
        with open(os.path.join(d, "ia_phases.json")) as fh:
            phases = json.load(fh)
    firmdata = {}
    if os.path.exists(os.path.join(d, "firmdata.json")):
        with open(os.path.join(d, "firmdata.json")) as fh:
            firmdata = json.load(fh)
    lines = []
    head = (f"{'estimator':<12} {'ia total s':>10} {'ia cpu s':>8} {'ia est s':>8} {'ia MB':>7} "
            f"{'reference':<19} {'ref fit s':>9} {'ref tot s':>9} {'ref MB':>7} "
            f"{'fit/ia':>7} {'fit/est':>8} {'tot/tot':>8} {'rel d est':>9} {'rel d se':>9}")
    lines.append(head)
    lines.append("-" * len(head))
    notes = []
    for est in ESTIMATORS + ["event_study_i"]:
        if est == "event_study_i" and not os.path.exists(os.path.join(d, f"ref_{est}.status")):
            continue
        ia_est = "event_study" if est == "event_study_i" else est
        t = read_time(os.path.join(d, f"ia_{ia_est}.time"))
        ia_total = t[0] if t else None
        ia_mb = t[1] / 1024 if t else None
        ia_cpu = t[3] if t else None
        ia_only = phases.get("estimate_s", {}).get(ia_est)
        ia, skipped = ia_coefs(os.path.join(d, f"ia_{ia_est}.json")) if t else ({}, [])
        if skipped:
            notes.append(f"{est}: ia-rct refused {len(skipped)} contrast(s), e.g. "
                         f"{skipped[0]['arm']}: {skipped[0]['error']}")
        if est in PANEL_ESTIMATORS or est == "event_study_i":
            tool_default = "pyfixest" + (" i()" if est == "event_study_i" else "")
            ref_path = os.path.join(d, f"ref_{est}.json")
        else:
            tool_default = "estimatr"
            ref_path = os.path.join(d, f"ref_{est}.json")
        status = read_status(os.path.join(d, f"ref_{est}.status"))
        rt = read_time(os.path.join(d, f"ref_{est}.time"))
        ref = None
        if status == "ok" and os.path.exists(ref_path):
            with open(ref_path) as fh:
                ref = json.load(fh)
        if ref is None:
            log = os.path.join(d, f"ref_{est}.log")
            if status.startswith("failed") and os.path.exists(log):
                with open(log) as fh:
                    text = fh.read().splitlines()
                at = [i for i, x in enumerate(text) if "rror" in x]
                if at:
                    msg = " ".join(x.strip() for x in text[at[0]:at[0] + 2])
                    notes.append(f"{est}: {tool_default}: {msg[:240]}")
            lines.append(f"{ia_est:<12} {fmt_s(ia_total):>10} {fmt_s(ia_cpu):>8} {fmt_s(ia_only):>8} "
                         f"{ia_mb or 0:>7.0f} {tool_default + ': ' + status:<42}"
                         + (f" (after {rt[0]:.0f} s, {rt[1] / 1024:.0f} MB)" if rt else ""))
            continue
        if est in PANEL_ESTIMATORS or est == "event_study_i":
            ref_total = ref["read_s"] + ref["derive_s"] + ref["fit_s"]
        else:
            ref_total = firmdata.get("read_s", 0.0) + firmdata.get("derive_s", 0.0) + \
                ref["read_s"] + ref["fit_s"]
        d_est = d_se = 0.0
        n_cmp = 0
        for arm, terms in ref["coefs"].items():
            for term, (b, se) in terms.items():
                if arm not in ia or term not in ia[arm]:
                    notes.append(f"{est} {arm} {term}: not in ia-rct's output")
                    continue
                d_est = max(d_est, rel(b, ia[arm][term][0]))
                d_se = max(d_se, rel(se, ia[arm][term][1]))
                n_cmp += 1
        if n_cmp == 0:
            notes.append(f"{est}: nothing compared")
        elif max(d_est, d_se) > 1e-6:
            notes.append(f"{est}: ia-rct and {ref['tool']} differ (rel {max(d_est, d_se):.1e}): on "
                         "small data, strata lacking an arm are dropped by ia-rct (ANALYSIS.md §5) "
                         "and kept by estimatr; otherwise a bug")
        fit = ref["fit_s"]
        lines.append(
            f"{ia_est:<12} {fmt_s(ia_total):>10} {fmt_s(ia_cpu):>8} {fmt_s(ia_only):>8} {ia_mb:>7.0f} "
            f"{ref['tool']:<19} {fmt_s(fit):>9} {fmt_s(ref_total):>9} "
            f"{(rt[1] / 1024 if rt else 0):>7.0f} "
            f"{fmt_ratio(fit / ia_total if ia_total else None):>7} "
            f"{fmt_ratio(fit / ia_only if ia_only else None):>8} "
            f"{fmt_ratio(ref_total / ia_total if ia_total else None):>8} "
            f"{d_est:>9.1e} {d_se:>9.1e}")
    n_rows = phases.get("rows")
    print(f"== {label}: R = {design['randomized_at']}, pre {design['pre']}, post {design['post']}, "
          f"control {design['control']}"
          + (f"; panel {n_rows:,} firm-quarters in the windows" if n_rows else ""))
    for line in lines:
        print(line)
    if load:
        print(f"ia-rct data step alone (`ia-rct estimate --control` naming no arm: reads the "
              f"assignment and statistics, builds the study, stops): {load[0]:.3f} s wall "
              f"({fmt_s(load[3])} CPU), peak {load[1] / 1024:.0f} MB"
              + (f"; in-process (benches/estimate.rs): {phases['load_s']:.3f} s for "
                 f"{phases['rows']:,} window rows" if phases else ""))
    if n_rows:
        col_mb = n_rows * PANEL_ROW_BYTES / 2**20
        t = read_time(os.path.join(d, "ia_did_twfe.time"))
        if t:
            print(f"panel columns (rows x {PANEL_ROW_BYTES} B) {col_mb:.0f} MB; ia-rct did_twfe "
                  f"peak RSS {t[1] / 1024:.0f} MB = {t[1] * 1024 / (n_rows * PANEL_ROW_BYTES):.2f}x "
                  f"the columns (aim < 3x); did_twfe CR1 total {t[0]:.2f} s (aim < 10 s)")
    for n in notes:
        print("note:", n)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "assign":
        cmd_assign(*args)
    elif cmd == "pyfixest":
        cmd_pyfixest(*args)
    elif cmd == "firmdata":
        cmd_firmdata(*args)
    elif cmd == "selfcheck":
        cmd_selfcheck(*args)
    elif cmd == "report":
        cmd_report(*args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
