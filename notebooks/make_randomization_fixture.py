#!/usr/bin/env python3
"""Generate the randomization fixtures in tests/fixtures/randomization/ (test data only).

Deterministic (random.Random(20251)), standard library only. Writes:

- units.csv               ~400 synthetic eligible firms in the RANDOMIZATION.md §6 units format,
                          KOMMUNAL firms partly clustered under ~25 parent orgnrs;
- units-virksomhet.csv    the same firms with `klynge` empty (what `--units-out` writes for a
                          protocol with unit.level = "virksomhet");
- protocol.toml           protocols/nals-arbeidsformer.toml with id fixture-arbeidsformer;
- protocol-ratios.toml    ratios 1, 2, 1, 2, unit.level = "virksomhet", strata by fylke and size;
- assignment.csv          reference output: protocol.toml, units.csv, seed fixture-seed, wave 1;
- assignment-ratios.csv   reference output: protocol-ratios.toml, units-virksomhet.csv,
                          seed fixture-seed-2, wave 2;
- README.md               provenance.

Run from the repository root:

    python3 notebooks/make_randomization_fixture.py
"""

from __future__ import annotations

import datetime
import hashlib
import math
import pathlib
import platform
import random
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "randomization"
sys.path.insert(0, str(ROOT / "notebooks"))
import randomization_reference as ref  # noqa: E402

PROTOCOL_HASH = "5f1e" * 16
SEED_1 = "fixture-seed"
SEED_2 = "fixture-seed-2"
N_FIRMS = 400

FYLKER = ["03", "11", "15", "18", "31", "32", "33", "34", "39", "40", "42", "46", "50", "55", "56"]
# skewed: Oslo, Akershus, Vestland, Rogaland big; Finnmark, Telemark, Buskerud small
FYLKE_WEIGHTS = [14, 10, 5, 4, 6, 12, 2, 4, 3, 2, 3, 12, 6, 4, 1.5]
BRANSJER = ["sykehus", "sykehjem", "barnehager", "naeringsmiddelindustri", "transport", "bygg",
            "anlegg", "annen_naering"]
BRANSJE_WEIGHTS = {
    "STATLIG": [6, 0.5, 0.2, 0.1, 1, 0.2, 0.5, 3],
    "KOMMUNAL": [0.3, 6, 5, 0.1, 0.5, 0.3, 0.8, 3],
    "PRIVAT": [0.5, 2, 2, 3, 3, 4, 2, 5],
}
WEIGHTS = [3, 2, 7, 6, 5, 4, 3, 2]


def mod11(first8: str) -> str | None:
    s = sum(int(d) * w for d, w in zip(first8, WEIGHTS))
    c = 11 - s % 11
    if c == 11:
        c = 0
    if c == 10:
        return None
    return first8 + str(c)


def new_orgnr(rng: random.Random, used: set[str]) -> str:
    while True:
        first8 = rng.choice("89") + "".join(rng.choice("0123456789") for _ in range(7))
        o = mod11(first8)
        if o is not None and o not in used:
            used.add(o)
            return o


def employees(rng: random.Random) -> int:
    while True:
        n = int(round(math.exp(rng.gauss(math.log(60), 1.1))))
        if 5 <= n <= 3000:
            return n


def dagsverk(rng: random.Random, n: int) -> tuple[float | None, float | None]:
    if rng.random() < 0.05:
        return None, None
    mulige = round(n * 61 * 4 * rng.uniform(0.85, 1.08), rng.choice([1, 2]))
    rate = rng.uniform(0.02, 0.20)
    tapte = round(mulige * rate, rng.choice([1, 2, 3]))
    # never integral, so Python's repr and Rust's `{}` write the same digits
    if mulige == int(mulige):
        mulige += 0.5
    if tapte == int(tapte):
        tapte += 0.25
    return tapte, mulige


def make_firms(rng: random.Random) -> list[dict]:
    used: set[str] = set()
    parents = [new_orgnr(rng, used) for _ in range(25)]
    firms = []

    def firm(fylke: str, sektor: str, klynge: str) -> dict:
        n = employees(rng)
        tapte, mulige = dagsverk(rng, n)
        return {
            "orgnr": new_orgnr(rng, used), "klynge": klynge, "fylke": fylke,
            "bransje": rng.choices(BRANSJER, BRANSJE_WEIGHTS[sektor])[0], "sektor": sektor,
            "antall_ansatte": n, "tapte": tapte, "mulige": mulige,
        }

    # clusters: each parent has a home fylke, 1-8 firms; a few span a second fylke
    spanning = 0
    for p in parents:
        home = rng.choices(FYLKER, FYLKE_WEIGHTS)[0]
        size = rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 7, 8])
        other = None
        if rng.random() < 0.25 and size >= 2:
            other = rng.choice([f for f in FYLKER if f != home])
            spanning += 1
        for j in range(size):
            fylke = other if (other is not None and j % 3 == 1) else home
            firms.append(firm(fylke, "KOMMUNAL", p))
    n_clustered = len(firms)
    # unclustered KOMMUNAL: ~40% of all KOMMUNAL
    n_kommunal_single = round(n_clustered * 0.4 / 0.6)
    for _ in range(n_kommunal_single):
        firms.append(firm(rng.choices(FYLKER, FYLKE_WEIGHTS)[0], "KOMMUNAL", ""))
    while len(firms) < N_FIRMS:
        sektor = rng.choices(["STATLIG", "PRIVAT"], [1, 3])[0]
        firms.append(firm(rng.choices(FYLKER, FYLKE_WEIGHTS)[0], sektor, ""))
    firms.sort(key=lambda f: f["orgnr"])
    print(f"{len(firms)} firms, {n_clustered} clustered under {len(parents)} parents "
          f"({spanning} spanning two fylker)", file=sys.stderr)
    return firms


def units_csv(firms: list[dict], with_klynge: bool) -> str:
    lines = ["orgnr,klynge,fylke,bransje,sektor,antall_ansatte,tapte_dagsverk,mulige_dagsverk"]
    for f in firms:
        lines.append(",".join([
            f["orgnr"], f["klynge"] if with_klynge else "", f["fylke"], f["bransje"], f["sektor"],
            str(f["antall_ansatte"]),
            "" if f["tapte"] is None else ref.fmt_float(f["tapte"]),
            "" if f["mulige"] is None else ref.fmt_float(f["mulige"]),
        ]))
    return "\n".join(lines) + "\n"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def sub1(pattern: str, repl: str, text: str) -> str:
    new, n = re.subn(pattern, repl, text, count=1, flags=re.M)
    if n != 1:
        raise SystemExit(f"pattern not found in protocol: {pattern}")
    return new


GENERATED = ("# GENERATED by notebooks/make_randomization_fixture.py from "
             "protocols/nals-arbeidsformer.toml; see README.md.\n")


def protocol_fixture(src: str) -> str:
    t = sub1(r'^id = "nals-arbeidsformer"$', 'id = "fixture-arbeidsformer"', src)
    t = sub1(r'^by = \[.*?\]$', 'by = ["fylke", "bransje", "size", "baseline"]', t)
    t = sub1(r'^size_cuts = \[.*?\]$', 'size_cuts = [50, 200]', t)
    t = sub1(r'^baseline_quantiles = \[.*?\]$', 'baseline_quantiles = [0.5]', t)
    t = sub1(r'^min_size = \d+$', 'min_size = 8', t)
    t = sub1(r'^sha256 = \[[^\]]*\]$',
             f'sha256 = [\n    "{sha(SEED_1)}",\n    "{sha(SEED_2)}",\n]', t)
    return GENERATED + t


def protocol_ratios(src: str) -> str:
    t = sub1(r'^id = "nals-arbeidsformer"$', 'id = "fixture-arbeidsformer-ratios"', src)
    t = sub1(r'^level = "overordnet_enhet"\ncluster_sektorer = \[.*?\]$', 'level = "virksomhet"', t)
    # arms in order kontroll, bred_prosess, ledere, digital -> ratios 1, 2, 1, 2
    t = sub1(r'^(id = "bred_prosess"\n(?:(?!\[).*\n){0,6}?)ratio = 1$', r'\1ratio = 2', t)
    t = sub1(r'^(id = "digital"\n(?:(?!\[).*\n){0,6}?)ratio = 1$', r'\1ratio = 2', t)
    t = sub1(r'^by = \[.*?\]$', 'by = ["fylke", "size"]', t)
    t = sub1(r'^size_cuts = \[.*?\]$', 'size_cuts = [50, 200]', t)
    t = sub1(r'^baseline_quantiles = \[.*?\]\n', '', t)
    t = sub1(r'^min_size = \d+$', 'min_size = 8', t)
    t = sub1(r'^sha256 = \[[^\]]*\]$',
             f'sha256 = [\n    "{sha(SEED_1)}",\n    "{sha(SEED_2)}",\n]', t)
    return GENERATED + t


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20251)
    firms = make_firms(rng)
    (OUT / "units.csv").write_bytes(units_csv(firms, True).encode())
    (OUT / "units-virksomhet.csv").write_bytes(units_csv(firms, False).encode())
    src = (ROOT / "protocols" / "nals-arbeidsformer.toml").read_text(encoding="utf-8")
    (OUT / "protocol.toml").write_bytes(protocol_fixture(src).encode())
    (OUT / "protocol-ratios.toml").write_bytes(protocol_ratios(src).encode())

    cmd = [sys.executable, str(ROOT / "notebooks" / "randomization_reference.py")]
    runs = [
        ("assignment.csv", "protocol.toml", "units.csv", SEED_1, 1),
        ("assignment-ratios.csv", "protocol-ratios.toml", "units-virksomhet.csv", SEED_2, 2),
    ]
    import subprocess
    commands = []
    for out, proto, units, seed, wave in runs:
        args = ["--protocol", str(OUT / proto), "--protocol-hash", PROTOCOL_HASH,
                "--units", str(OUT / units), "--seed", seed, "--wave", str(wave)]
        res = subprocess.run(cmd + args, capture_output=True, check=True)
        (OUT / out).write_bytes(res.stdout)
        commands.append(
            "python3 notebooks/randomization_reference.py "
            f"--protocol tests/fixtures/randomization/{proto} --protocol-hash {PROTOCOL_HASH} "
            f"--units tests/fixtures/randomization/{units} --seed {seed} --wave {wave} "
            f"> tests/fixtures/randomization/{out}")

    readme = f"""# Randomization fixtures

Generated {datetime.date.today().isoformat()} with Python {platform.python_version()} (standard
library only) by

```sh
python3 notebooks/make_randomization_fixture.py
```

which writes the synthetic inputs (deterministic, `random.Random(20251)`) and then runs the
independent reference implementation `notebooks/randomization_reference.py` (written from
`protocols/RANDOMIZATION.md` alone, not from the Rust code) as:

```sh
{commands[0]}
{commands[1]}
```

The Rust tests must reproduce `assignment.csv` and `assignment-ratios.csv` byte for byte.

| file | what |
|---|---|
| `units.csv` | {len(firms)} synthetic eligible firms (RANDOMIZATION.md §6 units format); valid MOD11 orgnrs; KOMMUNAL firms partly clustered (`klynge`) under 25 parent orgnrs, some clusters spanning two fylker; about 5% without dagsverk. Test data, not real firms. |
| `units-virksomhet.csv` | the same firms with `klynge` empty, as `--units-out` writes for `unit.level = "virksomhet"` |
| `protocol.toml` | `protocols/nals-arbeidsformer.toml` with `id = "fixture-arbeidsformer"`, strata by fylke, bransje, size (`[50, 200]`), baseline (median), `min_size = 8`; `seed.sha256` = SHA-256 of `{SEED_1}` and `{SEED_2}` |
| `protocol-ratios.toml` | id `fixture-arbeidsformer-ratios`, ratios 1, 2, 1, 2 (R = 6), `unit.level = "virksomhet"`, strata by fylke and size, same `seed.sha256` |
| `assignment.csv` | protocol.toml + units.csv, protocol hash `{PROTOCOL_HASH}` (a stand-in, not the file's real hash), seed `{SEED_1}`, wave 1 |
| `assignment-ratios.csv` | protocol-ratios.toml + units-virksomhet.csv, same hash, seed `{SEED_2}`, wave 2 |

Where RANDOMIZATION.md is silent the reference chooses (none of these cases occurs in the fixtures
except the last, where both writings agree): a firm with mulige dagsverk 0 has an unknown baseline;
a missing arm `ratio` is 1; `baseline_cuts` wins over `baseline_quantiles`; an empty `size_cuts`
gives `size=0+`; floats are written like Rust's `{{}}` (`1`, not Python's `1.0`; no exponent).
The fixture protocols' `seed.sha256` commit to the fixture seeds, not to the demo seeds.

`python3 notebooks/randomization_reference.py --self-test` checks ChaCha20 (zero key stream 0,
RFC 7539 §2.3.2 block) and the golden vector shared with the Rust tests.
"""
    (OUT / "README.md").write_text(readme, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
