#!/usr/bin/env python3
"""Compute a protocol's content hash from its TOML, independently of ia-rct.

The hash is SHA-256 of the canonical JSON (protocols/RANDOMIZATION.md §1): every key of the schema
in protocols/README.md written out (absent optional values as null, empty lists as []), object
keys sorted, no whitespace, UTF-8. This script fills the schema's defaults itself and normalizes
the spellings ia-rct accepts (quarters to `2024K1`, sectors to their names), so it checks ia-rct's
`protocol hash` from the published TOML alone.

    python3 notebooks/protocol_hash.py protocols/*.toml            # prints "<hash>  <file>"
    python3 notebooks/protocol_hash.py --fixture > tests/fixtures/protocol-hashes.txt

Python 3.11 standard library only (tomllib, json, hashlib).
"""

import hashlib
import json
import re
import sys
import tomllib

SEKTOR = {"0": "UKJENT", "1": "STATLIG", "2": "KOMMUNAL", "3": "PRIVAT"}


def quarter(q):
    m = re.fullmatch(r"(\d{4})\s*-?\s*[KkQq]([1-4])", q.strip())
    if not m:
        raise ValueError(f"not a quarter: {q}")
    return f"{m.group(1)}K{m.group(2)}"


def sektor(s):
    s = str(s).strip()
    return SEKTOR.get(s, s.upper())


def thresholds(t):
    return {
        "min_employees": t.get("min_employees"),
        "min_baseline_percent": t.get("min_baseline_percent"),
        "min_lost_workdays_per_year": t.get("min_lost_workdays_per_year"),
    }


def outcomes(o):
    # `survey` is left out when empty, as ia-rct's serializer does (skip_serializing_if).
    out = {"primary": o["primary"], "secondary": o.get("secondary", [])}
    if o.get("survey"):
        out["survey"] = o["survey"]
    return out


def canonical(p):
    e = p.get("eligibility", {})
    s = p["strata"]
    return {
        "id": p["id"],
        "title": p["title"],
        "version": p["version"],
        "design": p["design"],
        "unit": {
            "level": p["unit"]["level"],
            "cluster_sektorer": [sektor(x) for x in p["unit"].get("cluster_sektorer", [])],
        },
        "naering_standard": p.get("naering_standard", "sn2007"),
        "arms": [
            {
                "id": a["id"],
                "name": a["name"],
                "description": a["description"],
                "control": a.get("control", False),
                "ratio": a["ratio"],
                "planned_duration": a["planned_duration"],
                "involvement": a["involvement"],
                "firm_drives": a["firm_drives"],
                "instructions": a["instructions"],
            }
            for a in p["arms"]
        ],
        "eligibility": {
            "required": thresholds(e.get("required", {})),
            "any_of": [thresholds(t) for t in e.get("any_of", [])],
            "sektorer": [sektor(x) for x in e.get("sektorer", [])],
            "bransjer": e.get("bransjer", []),
            "naeringskoder": e.get("naeringskoder", []),
            "fylker": e.get("fylker", []),
            "require_villig": e.get("require_villig", False),
        },
        "baseline": {"from": quarter(p["baseline"]["from"]), "to": quarter(p["baseline"]["to"])},
        "strata": {
            "by": s["by"],
            "size_cuts": s.get("size_cuts", []),
            "baseline_cuts": s.get("baseline_cuts", []),
            "baseline_quantiles": s.get("baseline_quantiles", []),
            "min_size": s["min_size"],
        },
        "outcomes": outcomes(p["outcomes"]),
        "follow_up": {
            "randomization_quarter": quarter(p["follow_up"]["randomization_quarter"]),
            "pre_quarters": p["follow_up"]["pre_quarters"],
            "post_quarters": p["follow_up"]["post_quarters"],
        },
        "analysis": p["analysis"],
        "seed": {"sha256": p["seed"]["sha256"]},
    }


def content_hash(path):
    with open(path, "rb") as f:
        p = tomllib.load(f)
    text = json.dumps(canonical(p), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def main(argv):
    if argv == ["--fixture"]:
        print(f"# protocol content hashes by notebooks/protocol_hash.py, Python {sys.version.split()[0]}")
        print("# command: python3 notebooks/protocol_hash.py --fixture > tests/fixtures/protocol-hashes.txt")
        argv = ["protocols/nals-arbeidsformer.toml", "protocols/nals-villige-b.toml"]
    for path in argv:
        print(f"{content_hash(path)}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
