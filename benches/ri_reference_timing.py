"""The workload of `cargo bench --bench ri` in a vectorised numpy loop (the reference timing).

Same sizes: N firms in strata of 8 (1:1), D draws, a baseline covariate. Each draw permutes the
treated labels within strata (one argsort of random keys per block of draws), and computes
  - dim: the blocked difference in means (equal strata: the mean of per-stratum differences);
  - ancova_t: y ~ z + b with stratum effects, the z coefficient over its HC2 SE (FWL on the
    stratum-demeaned data, vectorised over a block of draws).
Prints "numpy <statistic> <seconds>" lines.

    python3 benches/ri_reference_timing.py --firms 20000 --draws 10000
"""
import argparse
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--firms", type=int, default=20000)
    ap.add_argument("--draws", type=int, default=10000)
    ap.add_argument("--block", type=int, default=200, help="draws per vectorised block")
    a = ap.parse_args()
    n, draws, size = a.firms - a.firms % 8, a.draws, 8
    rng = np.random.default_rng(2026)
    s = n // size
    b = 6.0 * rng.exponential(size=n)
    y = 0.6 * b + 3.0 * rng.exponential(size=n)
    z0 = np.tile(np.array([1, 0] * (size // 2), dtype=float), s)
    strata = np.repeat(np.arange(s), size)

    def demean(v):
        return v - np.repeat(v.reshape(s, size).mean(axis=1), size)

    yt, bt = demean(y), demean(b)
    ey = yt - bt * (bt @ yt) / (bt @ bt)
    h0 = 1.0 / size + bt * bt / (bt @ bt)

    def draws_z(k):
        keys = rng.random((k, s, size))
        order = np.argsort(keys, axis=2)
        return np.take_along_axis(np.broadcast_to(z0.reshape(s, size), (k, s, size)), order, axis=2).reshape(k, n)

    # dim
    t = time.perf_counter()
    done = 0
    while done < draws:
        k = min(a.block, draws - done)
        z = draws_z(k)
        yz = (z * y).reshape(k, s, size).sum(axis=2)
        nt = z.reshape(k, s, size).sum(axis=2)
        ysum = y.reshape(s, size).sum(axis=1)
        diff = yz / nt - (ysum - yz) / (size - nt)
        _ = diff.mean(axis=1)
        done += k
    print(f"numpy dim {time.perf_counter() - t:.4f}")

    # ancova_t (HC2)
    t = time.perf_counter()
    done = 0
    while done < draws:
        k = min(a.block, draws - done)
        z = draws_z(k)
        zt = z - np.repeat(z.reshape(k, s, size).mean(axis=2), size, axis=1)
        zr = zt - np.outer(zt @ bt / (bt @ bt), bt)
        den = (zr * zr).sum(axis=1)
        beta = (zr @ ey) / den
        e = ey[None, :] - beta[:, None] * zr
        h = h0[None, :] + zr * zr / den[:, None]
        v = ((zr * e) ** 2 / (1.0 - h)).sum(axis=1) / den**2
        _ = beta / np.sqrt(v)
        done += k
    print(f"numpy ancova_t {time.perf_counter() - t:.4f}")


if __name__ == "__main__":
    main()
