#!/usr/bin/env python3
"""Independent reference implementation of ia-rct's randomization (`ia-rct/randomization/v1`).

Written from protocols/RANDOMIZATION.md alone (sections 2-6), without reading the Rust code in
src/randomization/, in plain Python 3.11 with the standard library only, so that it can catch
mistakes in the Rust implementation. Everything is spelled out by hand: the ChaCha20 block function
(RFC 7539 quarter rounds, 64-bit block counter in state words 12-13, 64-bit stream number in words
14-15), `below`, `shuffle`, the key derivation, cluster aggregation, stratum keys, quantile cuts,
small-stratum merging, the deck and the per-stratum assignment. The assignment CSV of section 6 is
written to stdout byte for byte (six `# ` header lines, `\\n` line ends, rows sorted by orgnr,
`trukket` empty).

Run:

    python3 notebooks/randomization_reference.py \\
        --protocol protocols/nals-arbeidsformer.toml \\
        --protocol-hash "$(ia-rct protocol hash protocols/nals-arbeidsformer.toml)" \\
        --units units.csv --seed "$SEED" --wave 1 > check.csv

    python3 notebooks/randomization_reference.py --self-test

The protocol hash is taken as given (computing it needs the protocol schema's defaults, which this
script does not know). The seed is checked against the protocol's `seed.sha256[wave - 1]`;
`--skip-seed-check` turns that into a warning.

Choices where RANDOMIZATION.md is silent (also listed in tests/fixtures/randomization/README.md):
- a firm (not only a cluster) whose mulige dagsverk are 0 has an unknown baseline;
- an arm without `ratio` has ratio 1; a missing `strata.min_size` means 1 (no merging);
- `baseline_cuts` wins over `baseline_quantiles` if both are given; no cuts (or quantiles with
  no known baselines) means every known baseline is `b1`;
- `size` with an empty `size_cuts` is `0+`;
- an empty `sektor` in units.csv is read as `UKJENT`;
- floats are written like Rust's `{}` (shortest round-trip digits, never an exponent, no trailing
  `.0`), which equals Python's `repr` for every value in the fixtures but not for integral values
  (`1` vs `1.0`) or very large/small ones (`1e+20`, `1e-07`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import sys
import tomllib
from collections import Counter
from decimal import Decimal
from functools import reduce

ALGORITHM = "ia-rct/randomization/v1"
MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF
CONSTANTS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


# --------------------------------------------------------------------------------------------
# §4 ChaCha20, below, shuffle
# --------------------------------------------------------------------------------------------

def _rotl(v: int, c: int) -> int:
    return ((v << c) & MASK32) | (v >> (32 - c))


def _quarter_round(x: list[int], a: int, b: int, c: int, d: int) -> None:
    x[a] = (x[a] + x[b]) & MASK32
    x[d] = _rotl(x[d] ^ x[a], 16)
    x[c] = (x[c] + x[d]) & MASK32
    x[b] = _rotl(x[b] ^ x[c], 12)
    x[a] = (x[a] + x[b]) & MASK32
    x[d] = _rotl(x[d] ^ x[a], 8)
    x[c] = (x[c] + x[d]) & MASK32
    x[b] = _rotl(x[b] ^ x[c], 7)


def chacha20_block_words(key: bytes, w12: int, w13: int, w14: int, w15: int) -> list[int]:
    """RFC 7539 §2.3 block function on an explicit state (words 12-15 given as 32-bit words)."""
    assert len(key) == 32
    key_words = [int.from_bytes(key[4 * i:4 * i + 4], "little") for i in range(8)]
    state = list(CONSTANTS) + key_words + [w12 & MASK32, w13 & MASK32, w14 & MASK32, w15 & MASK32]
    x = state[:]
    for _ in range(10):  # 20 rounds = 10 double rounds
        _quarter_round(x, 0, 4, 8, 12)
        _quarter_round(x, 1, 5, 9, 13)
        _quarter_round(x, 2, 6, 10, 14)
        _quarter_round(x, 3, 7, 11, 15)
        _quarter_round(x, 0, 5, 10, 15)
        _quarter_round(x, 1, 6, 11, 12)
        _quarter_round(x, 2, 7, 8, 13)
        _quarter_round(x, 3, 4, 9, 14)
    return [(x[i] + state[i]) & MASK32 for i in range(16)]


class ChaChaStream:
    """Stream `stream` of `key`: words of block 0, 1, ... (64-bit counter words 12-13, stream 14-15)."""

    def __init__(self, key: bytes, stream: int):
        self.key = key
        self.stream = stream & MASK64
        self.counter = 0
        self.buf: list[int] = []
        self.pos = 0

    def next_u32(self) -> int:
        if self.pos >= len(self.buf):
            c = self.counter
            self.buf = chacha20_block_words(
                self.key, c & MASK32, c >> 32, self.stream & MASK32, self.stream >> 32
            )
            self.counter = (self.counter + 1) & MASK64
            self.pos = 0
        w = self.buf[self.pos]
        self.pos += 1
        return w

    def next_u64(self) -> int:
        lo = self.next_u32()
        hi = self.next_u32()
        return lo | (hi << 32)

    def below(self, n: int) -> int:
        assert n >= 1
        zone = ((1 << 64) // n) * n
        while True:
            x = self.next_u64()
            if x < zone:
                return x % n

    def shuffle(self, a: list) -> None:
        for i in range(len(a) - 1, 0, -1):
            j = self.below(i + 1)
            a[i], a[j] = a[j], a[i]


def derive_key(protocol_hash: str, wave: int, seed: str) -> bytes:
    msg = (
        ALGORITHM.encode("utf-8") + b"\x00" + protocol_hash.encode("ascii") + b"\x00"
        + str(wave).encode("utf-8") + b"\x00" + seed.encode("utf-8")
    )
    return hashlib.sha256(msg).digest()


# --------------------------------------------------------------------------------------------
# number formatting (§6)
# --------------------------------------------------------------------------------------------

def fmt_float(x: float) -> str:
    """Shortest round-trip decimal, written like Rust's `{}` for f64 (no exponent, no `.0`)."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"cannot write {x}")
    d = Decimal(repr(x))  # repr gives the shortest round-trip digits
    if d == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    return format(d.normalize(), "f")


# --------------------------------------------------------------------------------------------
# §2 units
# --------------------------------------------------------------------------------------------

def bytewise(s: str) -> bytes:
    return s.encode("utf-8")


def mode_smallest(values: list[str]) -> str:
    counts = Counter(values)
    best = max(counts.values())
    return min((v for v, c in counts.items() if c == best), key=bytewise)


def _num(s: str) -> float | None:
    s = s.strip()
    return None if s == "" else float(s)


def read_units_csv(path: str) -> list[dict]:
    with open(path, "r", encoding="utf-8-sig", newline="") as f:
        text = f.read()
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.DictReader(io.StringIO(text), delimiter=delim))
    firms = []
    for r in rows:
        tapte = _num(r["tapte_dagsverk"])
        mulige = _num(r["mulige_dagsverk"])
        sektor = r["sektor"].strip() or "UKJENT"
        firms.append({
            "orgnr": r["orgnr"].strip().replace(" ", ""),
            "klynge": r["klynge"].strip().replace(" ", ""),
            "fylke": r["fylke"].strip(),
            "bransje": r["bransje"].strip(),
            "sektor": sektor,
            "antall_ansatte": int(r["antall_ansatte"].strip()),
            "tapte": tapte,
            "mulige": mulige,
        })
    return firms


def build_units(firms: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """Returns the units and a map firm orgnr -> unit id."""
    units = []
    firm_unit: dict[str, str] = {}
    clusters: dict[str, list[dict]] = {}
    for f in firms:
        if f["klynge"] == "":
            pct = None
            if f["tapte"] is not None and f["mulige"] is not None and f["mulige"] != 0:
                pct = (100 * f["tapte"]) / f["mulige"]
            units.append({
                "id": f["orgnr"], "fylke": f["fylke"], "bransje": f["bransje"],
                "sektor": f["sektor"], "antall_ansatte": f["antall_ansatte"], "baseline": pct,
            })
            firm_unit[f["orgnr"]] = f["orgnr"]
        else:
            clusters.setdefault(f["klynge"], []).append(f)
    for k, members in clusters.items():
        members = sorted(members, key=lambda m: bytewise(m["orgnr"]))
        T = 0.0
        M = 0.0
        have = 0
        for m in members:
            if m["tapte"] is not None and m["mulige"] is not None:
                T = T + m["tapte"]
                M = M + m["mulige"]
                have += 1
        pct = None if have == 0 or M == 0 else (100 * T) / M
        uid = "K" + k
        units.append({
            "id": uid,
            "fylke": mode_smallest([m["fylke"] for m in members]),
            "bransje": mode_smallest([m["bransje"] for m in members]),
            "sektor": mode_smallest([m["sektor"] for m in members]),
            "antall_ansatte": sum(m["antall_ansatte"] for m in members),
            "baseline": pct,
        })
        for m in members:
            firm_unit[m["orgnr"]] = uid
    return units, firm_unit


# --------------------------------------------------------------------------------------------
# §3 strata
# --------------------------------------------------------------------------------------------

def quantile_type7(xs_sorted: list[float], q: float) -> float:
    n = len(xs_sorted)
    h = (n - 1) * q
    lo = math.floor(h)
    return xs_sorted[lo] + (h - lo) * (xs_sorted[min(lo + 1, n - 1)] - xs_sorted[lo])


def _fmt_cut(c) -> str:
    return str(c) if isinstance(c, int) else fmt_float(c)


def size_label(n: int, cuts: list) -> str:
    m = len(cuts)
    if m == 0:
        return "0+"
    i = sum(1 for c in cuts if c <= n)
    if i == 0:
        return f"0-{_fmt_cut(cuts[0] - 1)}"
    if i == m:
        return f"{_fmt_cut(cuts[m - 1])}+"
    return f"{_fmt_cut(cuts[i - 1])}-{_fmt_cut(cuts[i] - 1)}"


def component_values(units: list[dict], strata: dict) -> list[list[tuple[str, str]]]:
    by = list(strata.get("by", []))
    size_cuts = list(strata.get("size_cuts", []))
    baseline_cuts = None
    if "baseline" in by:
        if "baseline_cuts" in strata:
            baseline_cuts = [float(c) for c in strata["baseline_cuts"]]
        elif "baseline_quantiles" in strata:
            known = sorted(u["baseline"] for u in units if u["baseline"] is not None)
            baseline_cuts = [] if not known else [
                quantile_type7(known, float(q)) for q in strata["baseline_quantiles"]
            ]
        else:
            baseline_cuts = []
    out = []
    for u in units:
        comps = []
        for var in by:
            if var == "fylke":
                v = u["fylke"]
            elif var == "bransje":
                v = u["bransje"]
            elif var == "sektor":
                v = u["sektor"]
            elif var == "size":
                v = size_label(u["antall_ansatte"], size_cuts)
            elif var == "baseline":
                if u["baseline"] is None:
                    v = "ukjent"
                else:
                    v = f"b{sum(1 for c in baseline_cuts if c <= u['baseline']) + 1}"
            else:
                raise ValueError(f"unknown strata variable {var!r}")
            comps.append((var, v))
        out.append(comps)
    return out


def level_key(comps: list[tuple[str, str]], level: int) -> str:
    if not comps:
        return "alle"
    return "|".join(f"{n}={v}" if i < level else f"{n}=*" for i, (n, v) in enumerate(comps))


def assign_strata(units: list[dict], strata: dict) -> dict[str, str]:
    """unit id -> final stratum key, with the bottom-up merging of §3."""
    comps = component_values(units, strata)
    d = len(strata.get("by", []))
    min_size = int(strata.get("min_size", 1))
    result: dict[str, str] = {}
    remaining = list(range(len(units)))
    for level in range(d, 0, -1):
        groups: dict[str, list[int]] = {}
        for i in remaining:
            groups.setdefault(level_key(comps[i], level), []).append(i)
        remaining = []
        for key, idx in groups.items():
            if len(idx) >= min_size:
                for i in idx:
                    result[units[i]["id"]] = key
            else:
                remaining.extend(idx)
    for i in remaining:
        result[units[i]["id"]] = level_key(comps[i], 0)
    return result


# --------------------------------------------------------------------------------------------
# §5 assignment
# --------------------------------------------------------------------------------------------

def reduce_ratios(ratios: list[int]) -> list[int]:
    g = reduce(math.gcd, ratios)
    return [r // g for r in ratios]


def assign_arms(strata_units: dict[str, list[str]], ratios: list[int], key: bytes) -> dict[str, int]:
    """strata_units: stratum key -> unit ids. Returns unit id -> arm index."""
    r = reduce_ratios(ratios)
    R = sum(r)
    deck = [k for k, rk in enumerate(r) for _ in range(rk)]
    ChaChaStream(key, 0).shuffle(deck)
    cursor = 0
    out: dict[str, int] = {}
    for i, skey in enumerate(sorted(strata_units, key=bytewise)):
        ids = sorted(strata_units[skey], key=bytewise)
        n = len(ids)
        full, L = divmod(n, R)
        labels = [k for k, rk in enumerate(r) for _ in range(full * rk)]
        labels += [deck[(cursor + j) % R] for j in range(L)]
        cursor = (cursor + L) % R
        ChaChaStream(key, i + 1).shuffle(labels)
        for uid, lab in zip(ids, labels):
            out[uid] = lab
    return out


# --------------------------------------------------------------------------------------------
# §6 output
# --------------------------------------------------------------------------------------------

def csv_field(s: str) -> str:
    if any(ch in s for ch in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def run(protocol: dict, protocol_hash: str, firms: list[dict], seed: str, wave: int) -> str:
    arms = protocol["arms"]
    ratios = [int(a.get("ratio", 1)) for a in arms]
    r = reduce_ratios(ratios)
    R = sum(r)
    unit = protocol.get("unit", {})
    if unit.get("level", "virksomhet") == "virksomhet" and any(f["klynge"] for f in firms):
        print("warning: unit.level is virksomhet but units.csv has klynge values; "
              "following units.csv (RANDOMIZATION.md §2)", file=sys.stderr)
    units, firm_unit = build_units(firms)
    stratum_of = assign_strata(units, protocol.get("strata", {}))
    strata_units: dict[str, list[str]] = {}
    for u in units:
        strata_units.setdefault(stratum_of[u["id"]], []).append(u["id"])
    arm_of = assign_arms(strata_units, ratios, derive_key(protocol_hash, wave, seed))
    lines = [
        "# ia-rct assignment",
        f"# protocol_id={protocol['id']}",
        f"# protocol_hash={protocol_hash}",
        f"# algorithm={ALGORITHM}",
        f"# wave={wave}",
        f"# seed={seed}",
        "orgnr,arm,stratum,klynge,bolge,sannsynlighet,trukket",
    ]
    for f in sorted(firms, key=lambda f: bytewise(f["orgnr"])):
        uid = firm_unit[f["orgnr"]]
        k = arm_of[uid]
        lines.append(",".join([
            csv_field(f["orgnr"]), csv_field(arms[k]["id"]), csv_field(stratum_of[uid]),
            csv_field(f["klynge"]), str(wave), fmt_float(r[k] / R), "",
        ]))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# self-test
# --------------------------------------------------------------------------------------------

GOLDEN_EXPECTED = [2, 1, 2, 2, 0, 2, 1, 0, 2, 2, 2, 1, 2, 0, 0]


def golden_vector() -> list[int]:
    strata_units = {
        "a": [f"a-{i:04d}" for i in range(5)],
        "b": [f"b-{i:04d}" for i in range(3)],
        "c": [f"c-{i:04d}" for i in range(7)],
    }
    key = derive_key("0" * 64, 1, "golden")
    arm_of = assign_arms(strata_units, [1, 1, 2], key)
    return [arm_of[u] for s in sorted(strata_units, key=bytewise)
            for u in sorted(strata_units[s], key=bytewise)]


def self_test() -> int:
    ok = True
    # all-zero key, stream 0
    s = ChaChaStream(bytes(32), 0)
    got = [s.next_u64(), s.next_u64()]
    want = [0x903DF1A0ADE0B876, 0x28BD8653E56A5D40]
    print(f"zero key stream 0: {[hex(x) for x in got]} {'ok' if got == want else 'FAIL'}")
    ok &= got == want
    # RFC 7539 §2.3.2: key 00..1f, counter 1, nonce 00:00:00:09:00:00:00:4a:00:00:00:00
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a00000000")
    nw = [int.from_bytes(nonce[4 * i:4 * i + 4], "little") for i in range(3)]
    block = chacha20_block_words(key, 1, nw[0], nw[1], nw[2])
    want_block = [
        0xE4E7F110, 0x15593BD1, 0x1FDD0F50, 0xC47120A3, 0xC7F4D1C7, 0x0368C033, 0x9AAA2204, 0x4E6CD4C3,
        0x466482D2, 0x09AA9F07, 0x05D7C214, 0xA2028BD9, 0xD19C12B5, 0xB94E16DE, 0xE883D0CB, 0x4E3C50A2,
    ]
    print(f"RFC 7539 §2.3.2 block: {'ok' if block == want_block else 'FAIL'}")
    ok &= block == want_block
    # 64-bit counter carries into word 13 (Bernstein layout): block 2^32 of stream 0 must equal
    # the raw block function with words 12-13 = (0, 1).
    s = ChaChaStream(bytes(32), 5)
    s.counter = (1 << 32) - 1
    s.next_u32()
    s.pos = 16
    w = s.next_u32()
    ok_carry = w == chacha20_block_words(bytes(32), 0, 1, 5, 0)[0]
    print(f"64-bit counter carry: {'ok' if ok_carry else 'FAIL'}")
    ok &= ok_carry
    # fmt_float
    cases = {0.25: "0.25", 1 / 6: "0.16666666666666666", 1 / 3: "0.3333333333333333",
             1.0: "1", 2440.0: "2440", 1e20: "100000000000000000000", 1e-7: "0.0000001"}
    fok = all(fmt_float(k) == v for k, v in cases.items())
    print(f"float formatting: {'ok' if fok else 'FAIL'}")
    ok &= fok
    # quantile
    qok = quantile_type7([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5 and quantile_type7([7.0], 0.5) == 7.0
    print(f"type-7 quantile: {'ok' if qok else 'FAIL'}")
    ok &= qok
    # golden
    g = golden_vector()
    print(f"golden vector: {g}")
    print(f"expected:      {GOLDEN_EXPECTED} {'ok' if g == GOLDEN_EXPECTED else 'DIFFERS'}")
    ok &= g == GOLDEN_EXPECTED
    print("self-test passed" if ok else "self-test FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--protocol")
    p.add_argument("--protocol-hash")
    p.add_argument("--units")
    p.add_argument("--seed")
    p.add_argument("--wave", type=int)
    p.add_argument("--skip-seed-check", action="store_true")
    p.add_argument("--self-test", action="store_true")
    a = p.parse_args(argv)
    if a.self_test:
        return self_test()
    for name in ("protocol", "protocol_hash", "units", "seed", "wave"):
        if getattr(a, name) is None:
            p.error(f"--{name.replace('_', '-')} is required")
    if len(a.protocol_hash) != 64 or any(c not in "0123456789abcdef" for c in a.protocol_hash):
        p.error("--protocol-hash must be 64 lowercase hex digits")
    if a.wave < 1:
        p.error("--wave counts from 1")
    with open(a.protocol, "rb") as f:
        protocol = tomllib.load(f)
    committed = protocol.get("seed", {}).get("sha256", [])
    digest = hashlib.sha256(a.seed.encode("utf-8")).hexdigest()
    if len(committed) < a.wave or committed[a.wave - 1].lower() != digest:
        msg = f"seed does not match the protocol's seed.sha256[{a.wave - 1}]"
        if not a.skip_seed_check:
            print(f"error: {msg}", file=sys.stderr)
            return 2
        print(f"warning: {msg}", file=sys.stderr)
    firms = read_units_csv(a.units)
    out = run(protocol, a.protocol_hash, firms, a.seed, a.wave)
    sys.stdout.buffer.write(out.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
