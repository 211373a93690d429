#!/usr/bin/env python3
"""Reference numbers for ia-rct's event_study with CR2 (protocols/ANALYSIS.md), per fixture case.

    python3 notebooks/event_study_cr2_reference.py tests/fixtures/estimates/<case> [...]

Derives every contrast's panel exactly as notebooks/estimates_reference.py does (its `load_case`,
`derive` and `contrast`), adds the event-study dummies ev_e = z * 1{t - R = e} for e in -P..Q-1
but -1, runs notebooks/event_study_cr2_reference.R (clubSandwich's CR2 with Satterthwaite df, on
the regression with firm and quarter dummies) and writes `<case>/expected_event_study_cr2.csv`:
`#` header lines (tools, versions, command), then rows in the columns of expected.csv, which
tests/api/estimates.rs reads next to expected.csv. Needs R with r-cran-clubsandwich and numpy,
pandas and scipy (Debian's python3-pandas will do); not pyfixest. Cases whose name starts with
`singleton_` have no panel estimates in expected.csv and get none here either.
"""

from __future__ import annotations

import csv
import os
import platform
import subprocess
import sys
import tempfile
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import estimates_reference as er  # noqa: E402

R_SCRIPT = os.path.join(HERE, "event_study_cr2_reference.R")


def versions() -> list[str]:
    code = ('cat(R.version$version.string, "\\n");'
            'cat("clubSandwich", as.character(packageVersion("clubSandwich")), "\\n")')
    out = subprocess.run(["Rscript", "--vanilla", "-e", code], capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C")).stdout.strip().splitlines()
    v = [f"R {out[0].strip()}", out[1].strip()]
    for pkg in ["r-base-core", "r-cran-clubsandwich"]:
        ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                             text=True).stdout
        v.append(f"{pkg} (Debian) {ver}")
    import numpy
    import pandas
    v.append(f"python {platform.python_version()}, numpy {numpy.__version__}, "
             f"pandas {pandas.__version__}")
    return v


def dropped_str(dr: Counter) -> str:
    """As estimates_reference.py writes `dropped`: reason=count;... in order, zeros left out."""
    return ";".join(f"{k}={v}" for k, v in sorted(dr.items()) if v)


def process(case_dir: str, tools: list[str]) -> bool:
    case = os.path.basename(os.path.normpath(case_dir))
    if case.startswith("singleton_"):
        return False
    params, assign, stats = er.load_case(case_dir)
    R, P, Q, fd, panel, clustered = er.derive(params, assign, stats)
    control = params["control"]
    arms = [a for a in params["arms"] if a != control]
    es = [e for e in range(-P, Q) if e != -1]
    names = [er.ev_name(e) for e in es]
    info = {}
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "meta.csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["arm", "events", "terms"])
            for arm in arms:
                f, p, dropped, _, n_single, _ = er.contrast(fd, panel, arm, control)
                info[arm] = (p, dropped_str(dropped + Counter({"singleton": n_single})))
                w.writerow([arm, ";".join(names), ";".join(f"e={e}" for e in es)])
                with open(os.path.join(tmp, f"panel_{arm}.csv"), "w", newline="") as g:
                    cw = csv.writer(g)
                    cw.writerow(["orgnr", "kvartal", "cl", "r", "w"] + names)
                    for r in p.itertuples():
                        ev = [er.hexf(r.z * float(r.e == e)) for e in es]
                        cw.writerow([r.orgnr, r.kvartal, r.cl, er.hexf(r.r), er.hexf(r.w)] + ev)
        env = dict(os.environ, LC_ALL="C", LANG="C")
        res = subprocess.run(["Rscript", "--vanilla", R_SCRIPT, tmp], env=env,
                             capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write(res.stdout + res.stderr)
            raise SystemExit("Rscript failed")
        with open(os.path.join(tmp, "r_out.csv"), newline="") as fh:
            rout = list(csv.DictReader(fh))
    rows = []
    notes = []
    for r in rout:
        if r["note"].startswith("ERROR"):
            notes.append(f"{r['arm']} {r['weights']}: {r['note']}")
            continue
        p, d_panel = info[r["arm"]]
        row = {c: "" for c in er.COLUMNS}
        row.update({"estimator": "event_study", "arm": r["arm"], "weights": r["weights"],
                    "se_type": "CR2", "term": r["term"], "n_units": er.fmt(p["orgnr"].nunique()),
                    "n_clusters": er.fmt(int(er.unhex(r["n_clusters"]))),
                    "n_obs": er.fmt(int(er.unhex(r["n_obs"]))), "dropped": d_panel})
        for k in ["estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high"]:
            row[k] = er.fmt(er.unhex(r[k]))
        rows.append(row)
        note = f"{r['arm']} {r['weights']}: {r['note']}"
        if note not in notes:
            notes.append(note)
    with open(os.path.join(case_dir, "expected_event_study_cr2.csv"), "w", newline="") as fh:
        for h in [
            f"ia-rct estimator fixture: event_study CR2, case {case} (protocols/ANALYSIS.md)",
            f"produced by: python3 notebooks/event_study_cr2_reference.py "
            f"tests/fixtures/estimates/{case}",
            "R half: LC_ALL=C Rscript --vanilla notebooks/event_study_cr2_reference.R <tmp> "
            "(data passed as C99 hex floats, exact)",
            "tools: " + ", ".join(tools),
            "panel and contrasts: estimates_reference.py's derive() and contrast() (see "
            "expected.csv's header)",
            "event_study CR2: clubSandwich vcovCR(lm(r ~ ev_m{P}+...+ev_m2+ev_p0+...+ev_p{Q-1} + "
            "factor(orgnr) + factor(kvartal) [, weights = w]), cluster = cl, type = 'CR2' "
            "[weighted: inverse_var = FALSE]) + coef_test(test = 'Satterthwaite') + "
            "conf_int(test = 'Satterthwaite', level = 0.95); ev_e = z*1{t-R=e}, reference e=-1",
            "columns and format: as expected.csv",
        ] + notes:
            fh.write("# " + h.replace("\n", " ") + "\n")
        w = csv.DictWriter(fh, fieldnames=er.COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return True


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    tools = versions()
    for d in argv:
        if os.path.exists(os.path.join(d, "params.json")) and process(d, tools):
            print(f"wrote {d}/expected_event_study_cr2.csv")


if __name__ == "__main__":
    main(sys.argv[1:])
