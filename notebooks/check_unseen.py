#!/usr/bin/env python3
"""`ia-rct estimate` on a dataset it has never seen, against estimatr, clubSandwich and pyfixest.

    python3 notebooks/check_unseen.py [--seed S] [--firms 3000] [--bin PATH] [--keep]

1. `ia-rct simulate --firms N --out TMP --seed S --protocol protocols/nals-arbeidsformer.toml
   --effect bred_prosess=-0.8,ledere=-0.4,digital=-0.2` (S from --seed, else the current time;
   printed, so a failure can be reproduced with --seed S);
2. `ia-rct estimate --assignment TMP/assignment.csv --stats TMP/statistics.csv --protocol ...
   --format json`;
3. every estimate again with the reference packages, through notebooks/estimates_reference.py's
   own functions (ANALYSIS.md §2-§3 derivation `derive`/`contrast`, `run_r`, `pf_fit`, `pf_row`)
   and the reference calls of estimates_reference.R (run by notebooks/check_unseen.R, which
   evaluates estimates_reference.R's helpers and repeats only its fixture-producing calls):
   estimatr difference_in_means / lm_robust(fixed_effects) / lm_lin (CR2 when clustered),
   pyfixest did_twfe and event_study (CRV1) and the pre-trend F, clubSandwich CR2 for did_twfe
   (weighted: estimatr's CR2 on the same dummy regression, which the fixtures' crosscheck.csv
   pin to clubSandwich inverse_var=FALSE within 1e-13, since clubSandwich's Satterthwaite df
   needs N x N matrices there; --clubsandwich-weighted forces clubSandwich);
4. compares estimate, std_error, df, statistic, p_value, ci_low, ci_high (relative 1e-6; p-values
   with an absolute floor of 1e-12; estimate and CI limits with a floor of 1e-6 x std_error, since
   a limit can be ~0), the counts (n_obs, n_clusters, n_units) and the `dropped` reasons exactly,
   and checks that every `skipped` entry of ia-rct is a case the reference refuses or ANALYSIS.md
   refuses (and that nothing ANALYSIS.md refuses is reported).

Where ANALYSIS.md fixes something the packages leave open, the script follows ANALYSIS.md and says
so: itt_dim uses only the strata having both arms (§5; estimatr would refuse the whole contrast),
and, when lm_lin has a collinear column, itt_lin is also compared with lm_robust on lm_lin's
columns after R's qr() drops the later column of the collinear set (§4 "as R's lm does";
estimatr's own pivoted QR may drop another one, which changes the z coefficient).

About 8 minutes and 3.5 GB of memory at --firms 3000 (R: clubSandwich's Satterthwaite df and the
weighted estimatr CR2 on ~10 000-row panels with ~550 firm dummies, ~90 s each per contrast).

Exit code 0 when everything agrees, 1 on any failure (the temporary directory is then kept).
The binary is --bin, else $IA_RCT_BIN, else $CARGO_TARGET_DIR/release/ia-rct, else
target/release/ia-rct.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import warnings
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True   # no notebooks/__pycache__ from importing estimates_reference

import estimates_reference as ref  # noqa: E402  (sets RAYON_NUM_THREADS=1 for pyfixest)
import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

ref.R_SCRIPT = os.path.join(HERE, "check_unseen.R")   # run_r() reads the module global

PROTOCOL = os.path.join(ROOT, "protocols", "nals-arbeidsformer.toml")
EFFECT = "bred_prosess=-0.8,ledere=-0.4,digital=-0.2"
TOL = 1e-6
P_FLOOR = 1e-12
FIELDS = ["estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high"]
COUNTS = ["n_obs", "n_clusters", "n_units"]
DROP_KEYS = ["no_post_data", "singleton", "stratum_without_both_arms"]


def default_bin() -> str:
    if os.environ.get("IA_RCT_BIN"):
        return os.environ["IA_RCT_BIN"]
    if os.environ.get("CARGO_TARGET_DIR"):
        return os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "ia-rct")
    return os.path.join(ROOT, "target", "release", "ia-rct")


def run(cmd: list[str]) -> str:
    print("$ " + " ".join(cmd), flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"command failed with exit code {res.returncode}")
    return res.stdout


# ------------------------------------------------------------------------------------------------
# inputs (I/O only; the analysis derivation is estimates_reference.derive / contrast)
def load_inputs(tmp: str, protocol_path: str):
    with open(protocol_path, "rb") as fh:
        proto = tomllib.load(fh)
    control = next(a["id"] for a in proto["arms"] if a.get("control"))
    params = {"randomized_at": proto["follow_up"]["randomization_quarter"],
              "pre": proto["follow_up"]["pre_quarters"],
              "post": proto["follow_up"]["post_quarters"], "control": control}
    with open(os.path.join(tmp, "assignment.csv"), newline="") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    assign = [{k: (v or "").strip() for k, v in r.items()} for r in csv.DictReader(lines)]
    with open(os.path.join(tmp, "statistics.csv"), newline="") as fh:
        stats = [(r["orgnr"], int(r["arstall"]) * 4 + int(r["kvartal"]) - 1, float(r["taptedv"]),
                  float(r["muligedv"])) for r in csv.DictReader(fh)]
    return params, assign, stats


def stratum_check(f, clustered: bool):
    """Strata of the contrast with both arms, and, per used stratum, the units (clusters when
    clustered) in each arm."""
    both, lacking, counts = [], [], {}
    for s, g in f.groupby("stratum", sort=True):
        n1, n0 = int((g["z"] == 1).sum()), int((g["z"] == 0).sum())
        if n1 == 0 or n0 == 0:
            lacking.append((s, n1, n0))
            continue
        both.append(s)
        if clustered:
            counts[s] = (g.loc[g["z"] == 1, "cl"].nunique(), g.loc[g["z"] == 0, "cl"].nunique(),
                         n1, n0)
        else:
            counts[s] = (n1, n0, n1, n0)
    return both, lacking, counts


# ------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="simulate --seed (default: time)")
    ap.add_argument("--firms", type=int, default=3000)
    ap.add_argument("--bin", default=default_bin())
    ap.add_argument("--protocol", default=PROTOCOL)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--clubsandwich-weighted", action="store_true",
                    help="weighted did_twfe CR2 from clubSandwich (inverse_var=FALSE) rather than "
                    "estimatr's identical CR2: needs ~N^2 memory (13 GB at 10 000 panel rows)")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int(time.time())
    print(f"seed: {seed}   (reproduce: python3 notebooks/check_unseen.py --seed {seed} "
          f"--firms {a.firms})", flush=True)
    if not os.path.exists(a.bin):
        raise SystemExit(f"no ia-rct binary at {a.bin} (use --bin, $IA_RCT_BIN or build it)")
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix=f"ia-rct-unseen-{seed}-")
    sim = run([a.bin, "simulate", "--firms", str(a.firms), "--out", tmp, "--seed", str(seed),
               "--protocol", a.protocol, "--effect", EFFECT])
    print("  " + "\n  ".join(sim.strip().splitlines()[:3]))
    out = run([a.bin, "estimate", "--assignment", os.path.join(tmp, "assignment.csv"),
               "--stats", os.path.join(tmp, "statistics.csv"), "--protocol", a.protocol,
               "--format", "json"])
    with open(os.path.join(tmp, "estimate.json"), "w") as fh:
        fh.write(out)
    rust = json.loads(out)

    failures: list[str] = []
    notes: list[str] = []

    # -------------------------------------------------------------------- reference derivation
    params, assign, stats = load_inputs(tmp, a.protocol)
    R, P, Q, fd, panel, clustered = ref.derive(params, assign, stats)
    control = params["control"]
    arms = sorted({x["arm"] for x in assign} - {control})
    if clustered:
        lone = {x["orgnr"] for x in assign if x.get("klynge", "") == ""}
        clash = lone & {x["klynge"] for x in assign if x.get("klynge", "") != ""}
        if clash:   # derive() uses the bare klynge / orgnr as cluster id; the Rust code does not
            failures.append("klynge ids equal to orgnrs of firms randomized alone: "
                            f"{sorted(clash)}")
    print(f"design: clustered={clustered} firms={len(fd)} strata={fd['stratum'].nunique()} "
          f"clusters={fd['cl'].nunique()} R={ref.q_label(R)} pre={P} post={Q} arms={arms}")

    info, jobs, expect_refuse = {}, [], {}
    for arm in arms:
        f, p, dropped, dropped_by_arm, n_single, use_bmiss = ref.contrast(fd, panel, arm, control)
        both, lacking, counts = stratum_check(f, clustered)
        fb = f[f["stratum"].isin(both)].reset_index(drop=True)
        use_bmiss_b = bool((fb["bmiss"] == 1.0).any())
        info[arm] = dict(f=f, p=p, dropped=dropped, n_single=n_single, use_bmiss=use_bmiss,
                         both=both, lacking=lacking, counts=counts, fb=fb,
                         use_bmiss_b=use_bmiss_b)
        jobs.append({"arm": arm, "clustered": clustered, "use_bmiss": use_bmiss, "panel": True,
                     "firm": f, "pd": p})
        if lacking:
            # ANALYSIS.md §5 leaves strata without both arms out of itt_dim (estimatr refuses):
            # its reference runs on the restricted data; itt_lin keeps them, as lm_lin does
            # (§4), and lm_lin on the restricted data is only reported beside it
            jobs.append({"arm": arm + "__both", "clustered": clustered,
                         "use_bmiss": use_bmiss_b, "panel": False, "firm": fb, "pd": None})
            notes.append(f"{arm}: strata without both arms after attrition: {lacking}; the "
                         "itt_dim reference uses the other strata only, itt_lin every firm")
        # ANALYSIS.md §5 refusals of itt_dim
        for wt in ["firm", "dagsverk"]:
            why = None
            if clustered:
                bad = {s: c for s, c in counts.items() if c[0] < 2 or c[1] < 2}
                if bad:
                    # estimatr 1.0.0 (difference_in_means_internal) refuses a block only when an
                    # arm has fewer than two *units*; with one cluster of >= 2 units it computes
                    # a CR2 to which that lone cluster contributes nothing (X_s'A_s e_s = 0)
                    parts = [f"{s}: {c[0]} treated cluster(s) ({c[2]} firms), {c[1]} control "
                             f"cluster(s) ({c[3]} firms)"
                             + ("" if min(c[2], c[3]) < 2 else
                                " [estimatr's block rule accepts this stratum: its lone cluster "
                                "adds no variance to the CR2]")
                             for s, c in bad.items()]
                    why = (f"ANALYSIS.md §5 / docs/statistics.md B.4 clustered: {len(bad)} stratum/"
                           f"strata with a single treated or control cluster: " + "; ".join(parts))
            else:
                bad = {s: c for s, c in counts.items() if c[0] < 2 or c[1] < 2}
                if bad and wt == "dagsverk":
                    why = "ANALYSIS.md §5 weighted: a stratum with fewer than two firms in an arm"
                elif bad:
                    try:
                        ref.pm_dim(fb["y"], fb["z"], fb["stratum"])
                    except ref.Refused as e:
                        why = f"ANALYSIS.md §5 Pashley-Miratrix: {e}"
            if why:
                expect_refuse[("itt_dim", arm, wt)] = why

    t1 = time.time()
    if a.clubsandwich_weighted:
        os.environ["CHECK_UNSEEN_CLUB_WEIGHTED"] = "1"
    with tempfile.TemporaryDirectory() as rtmp:
        rout, rerr = ref.run_r(jobs, rtmp)
    t_r = time.time() - t1
    for line in rerr.strip().splitlines():
        if line.strip():
            notes.append("R stderr: " + line.strip())

    def rget(arm, wt, est, variant):
        m = ((rout["arm"] == arm) & (rout["weights"] == wt) & (rout["estimator"] == est)
             & (rout["variant"] == variant))
        sub = rout[m]
        assert len(sub) == 1, (arm, wt, est, variant, len(sub))
        return sub.iloc[0]

    def is_err(r) -> bool:
        return str(r["note"]).startswith("ERROR")

    # -------------------------------------------------------------------- reference rows
    refrows: dict[tuple, dict] = {}
    refused: dict[tuple, str] = {}   # (estimator, arm, weights[, se]) -> why the reference refuses

    def key(est, arm, wt, se, term):
        return (est, arm, wt, se if est in ("did_twfe",) else "-", term)

    def put(est, arm, wt, se, term, vals, counts, dropped, source):
        refrows[key(est, arm, wt, se, term)] = {"vals": vals, "counts": counts,
                                                "dropped": dropped, "source": source}

    lin_notes: dict[tuple, str] = {}
    lin_alt: dict[tuple, object] = {}
    lin_rule: dict[tuple, object] = {}
    t2 = time.time()
    for arm in arms:
        I = info[arm]
        f, p, fb = I["f"], I["p"], I["fb"]
        lack = bool(I["lacking"])
        base_drop = {k: v for k, v in I["dropped"].items() if v}
        ncl = lambda d: int(d["cl"].nunique()) if clustered else None  # noqa: E731
        for wt in ["firm", "dagsverk"]:
            weighted = wt == "dagsverk"
            # ---------------- itt_dim
            dim_arm = arm + "__both" if lack else arm
            r = rget(dim_arm, wt, "itt_dim", "estimatr")
            dd = dict(base_drop)
            if lack:
                dd["stratum_without_both_arms"] = len(f) - len(fb)
            if ("itt_dim", arm, wt) in expect_refuse:
                why = expect_refuse[("itt_dim", arm, wt)]
                if is_err(r):
                    beh = f"estimatr refuses too: {r['note']}"
                else:
                    beh = (f"estimatr does NOT refuse: design={r['design']!r} "
                           f"estimate={float(r['estimate'])!r} "
                           f"std_error={float(r['std_error'])!r} df={float(r['df'])!r} "
                           f"({r['note']})")
                refused[("itt_dim", arm, wt)] = why + " || " + beh
            elif not clustered and not weighted and any(
                    c[0] < 2 or c[1] < 2 for c in I["counts"].values()):
                # singleton arms, unclustered: Pashley-Miratrix coded in estimates_reference
                mine = ref.pm_dim(fb["y"], fb["z"], fb["stratum"])
                put("itt_dim", arm, wt, "-", "z", {k: mine[k] for k in FIELDS},
                    {"n_obs": len(fb), "n_clusters": None, "n_units": len(fb)}, dd,
                    "estimates_reference.pm_dim")
            else:
                if is_err(r):
                    refused[("itt_dim", arm, wt)] = f"estimatr: {r['note']}"
                else:
                    put("itt_dim", arm, wt, "-", "z", {k: r[k] for k in FIELDS},
                        {"n_obs": len(fb), "n_clusters": ncl(fb), "n_units": len(fb)}, dd,
                        f"estimatr difference_in_means ({r['design']})")
            # ---------------- itt_ancova
            rfe = rget(arm, wt, "itt_ancova", "fixed_effects")
            rfa = rget(arm, wt, "itt_ancova", "factor")
            use, src = rfe, "estimatr lm_robust(fixed_effects = ~stratum)"
            if is_err(rfe):
                use, src = rfa, "estimatr lm_robust(+ factor(stratum)) [fixed_effects refused]"
            if is_err(use):
                refused[("itt_ancova", arm, wt)] = f"estimatr: {use['note']}"
            else:
                put("itt_ancova", arm, wt, "-", "z", {k: use[k] for k in FIELDS},
                    {"n_obs": len(f), "n_clusters": ncl(f), "n_units": len(f)}, base_drop, src)
            # ---------------- itt_lin: lm_lin on every firm of the contrast (ANALYSIS.md §4
            # says nothing of leaving strata out for Lin; the restricted fit is reported too)
            rl = rget(arm, wt, "itt_lin", "lm_lin")
            if is_err(rl):
                refused[("itt_lin", arm, wt)] = f"estimatr: {rl['note']}"
            else:
                put("itt_lin", arm, wt, "-", "z", {k: rl[k] for k in FIELDS},
                    {"n_obs": len(f), "n_clusters": ncl(f), "n_units": len(f)}, base_drop,
                    "estimatr lm_lin")
                lin_notes[(arm, wt)] = rl["note"]
                rr_ = rget(arm, wt, "itt_lin", "lm_lin_lmrule")
                if not is_err(rr_):
                    lin_rule[(arm, wt)] = rr_
                if lack:
                    rb = rget(dim_arm, wt, "itt_lin", "lm_lin")
                    lin_alt[(arm, wt)] = rb
            # ---------------- did_twfe CR1 (pyfixest)
            pdrop = dict(base_drop)
            if I["n_single"]:
                pdrop["singleton"] = I["n_single"]
            fit = ref.pf_fit("r ~ d | orgnr + kvartal", p, weighted)
            vals = ref.pf_row(fit, "d", "d")
            G = int(np.min(fit._G))
            pc = {"n_obs": int(fit._N), "n_clusters": G, "n_units": int(p["orgnr"].nunique())}
            put("did_twfe", arm, wt, "CR1", "d", {k: vals[k] for k in FIELDS}, pc, pdrop,
                "pyfixest feols CRV1")
            # ---------------- did_twfe CR2 (clubSandwich)
            if weighted and not a.clubsandwich_weighted:
                iv = "estimatr_dummies"
                src = "estimatr lm_robust(dummies, weights, CR2) = clubSandwich inverse_var=FALSE"
            else:
                iv = "clubSandwich_inverse_var=" + ("FALSE" if weighted else "default")
                src = f"clubSandwich vcovCR CR2 ({iv.split('_', 1)[1]})"
            rc = rget(arm, wt, "did_twfe", iv)
            if is_err(rc):
                refused[("did_twfe", arm, wt, "CR2")] = f"{iv}: {rc['note']}"
            else:
                put("did_twfe", arm, wt, "CR2", "d", {k: rc[k] for k in FIELDS},
                    {"n_obs": int(rc["n_obs"]), "n_clusters": int(rc["n_clusters"]),
                     "n_units": int(p["orgnr"].nunique())}, pdrop, src)
            # ---------------- event_study + pre-trend F (pyfixest), as estimates_reference
            es = [e for e in range(-P, Q) if e != -1]
            q = p.copy()
            names = []
            for e in es:
                nm = ref.ev_name(e)
                q[nm] = q["z"] * (q["e"] == e).astype(float)
                names.append(nm)
            fit = ref.pf_fit("r ~ " + " + ".join(names) + " | orgnr + kvartal", q, weighted)
            kept = list(fit._coefnames)
            qc = {"n_obs": int(fit._N), "n_clusters": int(np.min(fit._G)),
                  "n_units": int(q["orgnr"].nunique())}
            for e, nm in zip(es, names):
                if nm not in kept:
                    notes.append(f"event_study {arm} {wt}: {nm} dropped by pyfixest (collinear)")
                    continue
                row = ref.pf_row(fit, f"e={e}", nm)
                put("event_study", arm, wt, "CR1", f"e={e}", {k: row[k] for k in FIELDS}, qc,
                    pdrop, "pyfixest feols CRV1")
            leads = [nm for e, nm in zip(es, names) if e <= -2 and nm in kept]
            Rm = np.zeros((len(leads), len(kept)))
            for i, nm in enumerate(leads):
                Rm[i, kept.index(nm)] = 1.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit.wald_test(R=Rm, distribution="F")
            Fst, dfn, dfd = float(fit._f_statistic), int(fit._dfn), int(fit._dfd)
            put("event_study_pretrend", arm, wt, "-", "pretrend",
                {"statistic": Fst, "df": float(dfd), "df1": float(dfn),
                 "p_value": float(sps.f.sf(Fst, dfn, dfd))},
                {"n_clusters": int(np.min(fit._G))}, None,
                "pyfixest wald_test (F = W/L), p = scipy f.sf")
    t_py = time.time() - t2

    # -------------------------------------------------------------------- ia-rct rows
    rrows: dict[tuple, dict] = {}
    for e in rust["estimates"]:
        k = key(e["estimator"], e["arm"], e["weights"], e["se_type"], e["term"])
        if k in rrows:
            failures.append(f"ia-rct reports {k} twice")
        rrows[k] = e
    for t in rust["tests"]:
        k = key("event_study_pretrend", t["arm"], t["weights"], "-", "pretrend")
        rrows[k] = {"statistic": t["statistic"], "df": t["df_den"], "df1": t["df_num"],
                    "p_value": t["p_value"], "n_clusters": t["n_clusters"]}

    # -------------------------------------------------------------------- compare
    maxrel: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    nrows = nvals = 0
    for k in sorted(set(refrows) | set(rrows)):
        label = "/".join(x for x in k if x != "-")
        if k not in rrows:
            failures.append(f"{label}: reference has a row ({refrows[k]['source']}), ia-rct "
                            "neither reports nor skips it")
            continue
        if k not in refrows:
            why = refused.get(k[:3]) or refused.get(k[:4])
            failures.append(f"{label}: ia-rct reports a row the reference does not have"
                            + (f" (reference: {why})" if why else ""))
            continue
        rr, mine = refrows[k], rrows[k]
        nrows += 1
        est = k[0] if k[0] != "did_twfe" else f"did_twfe {k[3]}"
        se = rr["vals"].get("std_error")
        for fld, a_ in rr["vals"].items():
            b_ = mine.get(fld)
            nvals += 1
            if a_ is None or b_ is None or (isinstance(a_, float) and math.isnan(a_)):
                failures.append(f"{label} {fld}: reference {a_!r}, ia-rct {b_!r}")
                continue
            a_, b_ = float(a_), float(b_)
            d = abs(a_ - b_)
            scale = max(abs(a_), abs(b_))
            r_ = d / scale if scale > 0 else 0.0
            maxrel[est][fld] = max(maxrel[est][fld], r_)
            allow = TOL * scale
            if fld == "p_value":
                allow = max(allow, P_FLOOR)
            if fld in ("estimate", "ci_low", "ci_high") and se:
                allow = max(allow, TOL * float(se))
            if not d <= allow:
                failures.append(f"{label} {fld}: reference {a_!r} ({rr['source']}) vs ia-rct "
                                f"{b_!r}: rel diff {r_:.3e}")
        for c, v in rr["counts"].items():
            if v is not None and mine.get(c) != v:
                failures.append(f"{label} {c}: reference {v}, ia-rct {mine.get(c)}")
        if k[0] != "event_study_pretrend":
            if clustered and mine.get("n_clusters") is None:
                failures.append(f"{label}: clustered design but ia-rct n_clusters is null")
            if clustered and mine.get("se_type") not in ("CR1", "CR2"):
                failures.append(f"{label}: clustered design but se_type {mine.get('se_type')}")
            if rr["dropped"] is not None:
                rd = {x: v for x, v in mine.get("dropped", {}).items() if x in DROP_KEYS and v}
                if rd != rr["dropped"]:
                    failures.append(f"{label} dropped: reference {rr['dropped']}, ia-rct {rd}")

    # itt_lin with a collinear column: lm_lin (estimatr's pivoted QR) may drop any column of the
    # collinear set; ANALYSIS.md §4 drops the later one, as R's lm does. Compare with that too.
    for (arm, wt), note in lin_notes.items():
        k = key("itt_lin", arm, wt, "-", "z")
        if k not in rrows:
            continue
        mine = rrows[k]
        rdrop = [x.removeprefix("collinear_column:") for x in mine.get("dropped", {})
                 if x.startswith("collinear_column")]
        ldrop = note.split("|")[0].removeprefix("dropped=")
        rule = lin_rule.get((arm, wt))
        if rule is None:
            failures.append(f"itt_lin/{arm}/{wt}: no lm-rule reference (R error)")
            continue
        rdrop_rule = str(rule["note"]).removeprefix("dropped=")
        if not ldrop and not rdrop and not rdrop_rule:
            if ref.rel(rule["estimate"], mine["estimate"]) > 1e-9:
                notes.append(f"itt_lin {arm} {wt}: lm_lin and its explicit lm_robust version "
                             "differ without a collinear column")
            continue
        bad = []
        for fld in FIELDS:
            a_, b_ = float(rule[fld]), float(mine[fld])
            allow = TOL * max(abs(a_), abs(b_), float(rule["std_error"]) if fld in
                              ("estimate", "ci_low", "ci_high") else 0.0)
            if fld == "p_value":
                allow = max(allow, P_FLOOR)
            if abs(a_ - b_) > allow:
                bad.append(f"{fld} (rel {ref.rel(a_, b_):.1e})")
        msg = (f"itt_lin/{arm}/{wt}: collinear column. ia-rct dropped {rdrop} (the arm "
               f"without variation in it shares the control arm's slope); estimatr lm_lin "
               f"dropped [{ldrop}]; R lm's rule (ANALYSIS.md §4, later column) drops "
               f"[{rdrop_rule}] (the treated slope equals the control slope), which gives "
               f"estimate {float(rule['estimate'])!r} se {float(rule['std_error'])!r} df "
               f"{float(rule['df'])!r} (lm_robust on lm_lin's columns after qr()) vs ia-rct "
               f"{mine['estimate']!r} {mine['std_error']!r} {mine['df']!r}")
        if bad:
            failures.append(msg + "; ANALYSIS.md rule differs in " + "; ".join(bad))
        else:
            notes.append(msg + "; ia-rct matches it")
        if (arm, wt) in lin_alt:
            rb = lin_alt[(arm, wt)]
            notes.append(
                f"itt_lin {arm} {wt}: lm_lin on the strata with both arms only gives estimate "
                f"{rb['estimate']!r} se {rb['std_error']!r} (ia-rct {mine['estimate']!r} "
                f"{mine['std_error']!r}): rel diff "
                f"{ref.rel(rb['estimate'], mine['estimate']):.2e} / "
                f"{ref.rel(rb['std_error'], mine['std_error']):.2e}")

    # -------------------------------------------------------------------- skipped
    skip_lines = []
    seen_skips = set()
    for s in rust["skipped"]:
        k3 = (s["estimator"], s["arm"], s["weights"])
        kk = k3 + ((s["se_type"],) if s.get("se_type") else ())
        seen_skips.add(kk)
        why = refused.get(kk) or refused.get(k3)
        if why is None:
            failures.append(f"ia-rct skipped {'/'.join(kk)} ({s['error']}) but the reference "
                            "computes it and ANALYSIS.md does not refuse it")
        skip_lines.append(f"{'/'.join(kk)}: ia-rct: {s['error']}\n      reference: {why}")
        if k3 in expect_refuse and not s["error"].startswith("design not supported"):
            failures.append(f"{'/'.join(kk)}: expected a design refusal, got {s['error']}")
    for k, why in expect_refuse.items():
        if k not in seen_skips:
            failures.append(f"{'/'.join(k)}: ANALYSIS.md refuses ({why}) but ia-rct does not "
                            "skip it")
    for k, why in refused.items():
        if k not in seen_skips and k not in expect_refuse and k[:3] not in seen_skips:
            failures.append(f"{'/'.join(k)}: the reference refuses ({why}) but ia-rct does "
                            "not skip it")

    # -------------------------------------------------------------------- attrition
    att = {x["arm"]: x for x in rust["attrition"]}
    for arm in arms + [control]:
        g = fd[fd["arm"] == arm]
        exp = {"assigned": len(g), "with_post_data": int((g["n_post"] > 0).sum()),
               "no_post_data": int((g["n_post"] == 0).sum()),
               "no_pre_data": int(((g["n_post"] > 0) & (g["bmiss"] == 1.0)).sum())}
        got = {k: att.get(arm, {}).get(k) for k in exp}
        if got != exp:
            failures.append(f"attrition {arm}: reference {exp}, ia-rct {got}")

    # -------------------------------------------------------------------- report
    print(f"\nseed {seed}, firms {a.firms}: {len(fd)} randomized, {len(arms)} contrasts; "
          f"R {t_r:.0f} s, pyfixest {t_py:.0f} s, total {time.time() - t0:.0f} s")
    for arm in arms:
        I = info[arm]
        print(f"  {arm} vs {control}: firms {len(I['f'])} (clusters {I['f']['cl'].nunique()}), "
              f"panel rows {len(I['p'])}, singleton firms dropped {I['n_single']}, "
              f"b_missing indicator {'yes' if I['use_bmiss'] else 'no'}")
    print(f"\nrows compared: {nrows} ({nvals} values); ia-rct rows {len(rrows)}, reference rows "
          f"{len(refrows)}, ia-rct skipped {len(rust['skipped'])}")
    fl = ["estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high"]
    print("max relative difference |a-b|/max(|a|,|b|):")
    print(f"  {'estimator':<22}" + "".join(f"{x:>11}" for x in fl) + f"{'all':>11}")
    for est in sorted(maxrel):
        m = maxrel[est]
        print(f"  {est:<22}" + "".join(f"{m[x]:11.2e}" if x in m else f"{'':>11}" for x in fl)
              + f"{max(m.values()):11.2e}")
    if skip_lines:
        print("skipped by ia-rct:")
        for s in skip_lines:
            print("  " + s)
    for n in notes:
        print("note: " + n)
    if failures:
        print(f"\nFAILURES ({len(failures)}):")
        for x in failures:
            print("  " + x)
        print(f"inputs and ia-rct output kept in {tmp}")
        return 1
    print("\nOK: every estimate matches the reference packages within 1e-6")
    if a.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
