#!/usr/bin/env python3
"""Validate ia-rct's OpenAPI document with an independent validator (openapi-spec-validator, PyPI).

The Rust test `tests/api/openapi.rs` checks the document's structure on every CI run; this script is
the outside check, run by hand when the API changes:

    pip install openapi-spec-validator==0.9.0
    cargo run --release -- serve --bind 127.0.0.1:8080 &
    python3 notebooks/check_openapi.py http://127.0.0.1:8080/openapi.json

Last run: 2026-11-22, openapi-spec-validator 0.9.0: valid OpenAPI 3.1.0, 23 operations.
"""

import json
import sys
import urllib.request

from openapi_spec_validator import validate


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/openapi.json"
    with urllib.request.urlopen(url) as response:
        doc = json.load(response)
    validate(doc)
    operations = [
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
    ]
    print(f"valid OpenAPI {doc['openapi']}, {len(operations)} operations:")
    for method, path in sorted(operations, key=lambda o: (o[1], o[0])):
        roles = doc["paths"][path][method.lower()].get("x-ia-rct-roles", ["(public)"])
        print(f"  {method:6} {path:28} {', '.join(roles)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
