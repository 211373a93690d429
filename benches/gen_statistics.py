#!/usr/bin/env python3
"""Writes a synthetic NAV DVH statistics file (docs/data-formats.md §2: orgnr, arstall, kvartal, taptedv,
muligedv, antpers) for the ingest benchmark: N firms x T quarters ending 2024K4, with firm sizes
log-normal, sick-leave levels by firm, seasonality and noise. Deterministic for a given --seed.

    python3 benches/gen_statistics.py --firms 300000 --quarters 40 --out history.csv
"""

import argparse
import math
import random

WEIGHTS = [3, 2, 7, 6, 5, 4, 3, 2]


def orgnrs(n):
    prefix = 80_000_000
    out = []
    while len(out) < n:
        digits = [int(c) for c in f"{prefix:08d}"]
        check = 11 - sum(w * d for w, d in zip(WEIGHTS, digits)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            out.append(f"{prefix:08d}{check}")
        prefix += 1
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--firms", type=int, required=True)
    p.add_argument("--quarters", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    r = random.Random(a.seed)
    season = [1.15, 0.95, 0.8, 1.1]
    last = 2024 * 4 + 3  # 2024K4 as year*4 + (quarter-1)
    first = last - a.quarters + 1
    with open(a.out, "w") as f:
        f.write("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n")
        for orgnr in orgnrs(a.firms):
            employees = max(1, min(5000, round(25 * math.exp(1.1 * r.gauss(0, 1)))))
            level = 0.055 * math.exp(0.45 * r.gauss(0, 1))
            shock = 0.0
            for t in range(first, last + 1):
                year, q = divmod(t, 4)
                shock = 0.6 * shock + r.gauss(0, 0.15)
                mulige = round(employees * 61 * (0.9 + 0.1 * r.random()), 4)
                rate = min(0.9, max(0.0, level * season[q] * math.exp(shock)))
                tapte = round(mulige * rate, 4)
                f.write(f"{orgnr},{year},{q + 1},{tapte},{mulige},{employees}\n")


if __name__ == "__main__":
    main()
