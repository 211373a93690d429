#!/usr/bin/env python3
"""Validate ia-rct's OpenAPI document with an independent validator (openapi-spec-validator, PyPI),
and every example in it against its schema with jsonschema (JSON Schema 2020-12, as OpenAPI 3.1).

The Rust test `tests/api/openapi.rs` checks the document's structure on every CI run; this script is
the outside check, run by hand when the API changes:

    pip install openapi-spec-validator==0.9.0
    cargo run --release -- serve --bind 127.0.0.1:8080 &
    python3 notebooks/check_openapi.py http://127.0.0.1:8080/openapi.json

Last run: 2026-12-03, openapi-spec-validator 0.9.0, jsonschema 4.26.0: valid OpenAPI 3.1.0, 32
operations, 123 examples valid against their schemas.
"""

import json
import sys
import urllib.request

import jsonschema
from openapi_spec_validator import validate


def check_examples(doc: dict) -> int:
    """Checks every example of a request body or response against its schema; their number."""
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            media = [(f"request {t}", m) for t, m in op.get("requestBody", {}).get("content", {}).items()]
            for status, response in op["responses"].items():
                media += [(f"{status} {t}", m) for t, m in response.get("content", {}).items()]
            for where, m in media:
                examples = ([m["example"]] if "example" in m else []) + [
                    e["value"] for e in m.get("examples", {}).values()]
                if "schema" not in m:
                    continue
                schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                          "allOf": [m["schema"]], "components": doc["components"]}
                for example in examples:
                    try:
                        jsonschema.Draft202012Validator(schema).validate(example)
                    except jsonschema.ValidationError as e:
                        raise SystemExit(f"{method.upper()} {path} {where}: {e.message}")
                    checked += 1
    return checked


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/openapi.json"
    with urllib.request.urlopen(url) as response:
        doc = json.load(response)
    validate(doc)
    checked = check_examples(doc)
    operations = [
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
    ]
    print(f"valid OpenAPI {doc['openapi']}, {len(operations)} operations, "
          f"{checked} examples valid against their schemas:")
    for method, path in sorted(operations, key=lambda o: (o[1], o[0])):
        roles = doc["paths"][path][method.lower()].get("x-ia-rct-roles", ["(public)"])
        print(f"  {method:6} {path:28} {', '.join(roles)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
