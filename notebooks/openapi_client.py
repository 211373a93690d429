#!/usr/bin/env python3
"""Generate a Python client from the running service's /openapi.json and call every route with it.

A client generator is what a researcher or an integrating team points at the document first; this
script checks that one (openapi-python-client, PyPI) can build a client from ia-rct's document and
that the generated functions reach every operation: it runs a whole trial through the generated
client (tokens, statistics, a protocol, enrollment, the draw, acknowledgement, take-up, surveys,
balance, outcomes, estimates, the draw files and the audit log), with request bodies built from the
generated models and every declared query parameter set from the document's examples, and fails
unless every operation of the document answered 2xx and was parsed into its model. The Rust test
`tests/api/openapi.rs` checks the same document against the routes on every CI run (CI has no
Python); this is the outside check, run by hand when the API changes:

    python3 -m venv /tmp/openapi-venv
    /tmp/openapi-venv/bin/pip install openapi-python-client==0.29.1
    cargo build
    IA_RCT_DATABASE_URL=sqlite:///tmp/oa.db target/debug/ia-rct serve --bind 127.0.0.1:8080 &
    IA_RCT_DATABASE_URL=sqlite:///tmp/oa.db /tmp/openapi-venv/bin/python notebooks/openapi_client.py \
        http://127.0.0.1:8080

(use a fresh database: the script registers protocols/nals-arbeidsformer.toml). It makes its
direktorat token with `ia-rct token create` (IA_RCT: the binary, default target/debug/ia-rct) and
its data with `ia-rct simulate`.

openapi-python-client reads only JSON request bodies: it skips the `text/csv` and TOML media types
of the upload routes (with a warning, "Unsupported content type"), so the generated client sends
the JSON forms the same routes read (NAV's `virksomhet.json` rows, register, take-up and survey
rows as JSON). The CSV and TOML forms are exercised by the Rust test and scripts/walkthrough.sh.

Last run: 2026-12-03, openapi-python-client 0.29.1, against `ia-rct serve` (release) built from
main after the acknowledgement-status route on a fresh SQLite database (600 simulated firms):
    generated ia_rct_client (8 warnings: application/toml, text/csv, text/toml not supported)
    calling every operation of http://127.0.0.1:40837/openapi.json through the generated client:
      GET    /healthz                                      200 Status
      ...
      POST   /v1/trials/{id}/randomize                     201 DrawSummary
      GET    /v1/trials/{id}/assignments                   200 text/csv; charset=utf-8 (raw)
      GET    /v1/trials/{id}/assignments                   200 AssignmentPage
      ...
      GET    /v1/trials/{id}/estimates                     200 EstimatesResponse
      GET    /v1/trials/{id}/draws/{wave}/units.csv        200 NoneType
      GET    /v1/trials/{id}/draws/{wave}/assignment.csv   200 NoneType
      GET    /v1/audit                                     200 AuditPage
    33 of 33 operations called through the generated client, every one 2xx, every JSON answer
    parsed into its model: ok
(`NoneType`: a CSV file or this document, which the generated function returns unparsed; the
generated function for the assignments parses every 200 as JSON, so their CSV form is fetched with
the generated request and read raw.)
"""

import datetime
import enum
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import typing
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "protocols" / "nals-arbeidsformer.toml"
TRIAL = "nals-arbeidsformer"
SEED = "nals-arbeidsformer-demo-wave-1"


def generate(url: str, out: Path) -> str:
    """Runs openapi-python-client on the document; the generated package's name."""
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [str(generator), "generate", "--url", f"{url}/openapi.json", "--output-path",
         str(out / "client"), "--overwrite"],
        capture_output=True, text=True, check=False)
    warnings = [l for l in (result.stdout + result.stderr).splitlines()
                if l.startswith("Unsupported content type")]
    packages = [p for p in (out / "client").glob("*/api")]
    if result.returncode != 0 or not packages:
        sys.exit(f"openapi-python-client failed:\n{result.stdout}\n{result.stderr}")
    name = packages[0].parent.name
    print(f"generated {name} ({len(warnings)} warnings: "
          f"{', '.join(sorted(set(w.split()[-1] for w in warnings)))} not supported)")
    sys.path.insert(0, str(out / "client"))
    return name


def csv_rows(path: Path) -> list[dict]:
    import csv
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class Run:
    def __init__(self, package: str, doc: dict, base: str):
        self.package = package
        self.doc = doc
        self.client_mod = importlib.import_module(f"{package}.client")
        self.base = base
        self.called: set[tuple[str, str]] = set()
        self.operations = {}
        for path, item in doc["paths"].items():
            for method, op in item.items():
                self.operations[op["operationId"]] = (method, path, op)

    def client(self, token: str | None):
        if token is None:
            return self.client_mod.Client(base_url=self.base)
        return self.client_mod.AuthenticatedClient(base_url=self.base, token=token)

    def module(self, operation_id: str):
        _, _, op = self.operations[operation_id]
        return importlib.import_module(f"{self.package}.api.{op['tags'][0]}.{operation_id}")

    def call(self, operation_id: str, token: str | None, body=None, **given):
        """Calls the generated function of an operation with every declared parameter (from the
        document's examples unless given) and `body` built into the generated model."""
        method, path, op = self.operations[operation_id]
        fn = self.module(operation_id).sync_detailed
        hints = typing.get_type_hints(fn)
        kwargs = {"client": self.client(token)}
        for param in op.get("parameters", []):
            name = param["name"].replace("-", "_").lower()
            py = name if name in hints else f"{name}_"
            value = param.get("example")
            for key in (param["name"], py):
                if key in given:
                    value = given.pop(key)
            if value is None:  # given as None: leave the parameter out
                continue
            kwargs[py] = convert(hints[py], value)
        if body is not None:
            kwargs["body"] = convert(hints["body"], body)
        raw = given.pop("raw", False)
        kwargs.update(given)
        if raw:  # call the generated request, but do not let it parse a non-JSON body
            module = self.module(operation_id)
            request = module._get_kwargs(**{k: v for k, v in kwargs.items() if k != "client"})
            response = kwargs["client"].get_httpx_client().request(**request)
            print(f"  {method.upper():6} {path:45} {response.status_code} "
                  f"{response.headers.get('content-type')} (raw)")
            if not 200 <= response.status_code < 300:
                sys.exit(f"{operation_id} failed: {response.status_code} {response.content[:500]!r}")
            self.called.add(operation_id)
            return None, response
        response = fn(**kwargs)
        status = int(response.status_code)
        parsed = response.parsed
        ok = 200 <= status < 300 and not type(parsed).__name__ == "ErrorEnvelope"
        print(f"  {method.upper():6} {path:45} {status} {type(parsed).__name__}")
        if not ok:
            sys.exit(f"{operation_id} failed: {status} {response.content[:500]!r}")
        self.called.add(operation_id)
        return parsed, response


def convert(annotation, value):
    """A JSON value as the generated type: models from_dict, enums, datetimes, lists of those."""
    if value is None:
        return None
    args = [a for a in typing.get_args(annotation) if a.__name__ not in ("Unset", "NoneType")] \
        if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType")) \
        else [annotation]
    for target in args:
        origin = typing.get_origin(target)
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(target)
            return [convert(item, v) for v in value]
        if inspect.isclass(target):
            if hasattr(target, "from_dict") and isinstance(value, dict):
                return target.from_dict(value)
            if issubclass(target, enum.Enum):
                return target(value)
            if target is datetime.datetime:
                return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if target in (int, float, str, bool) and isinstance(value, target):
                return value
    return value


def main() -> int:
    base = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080").rstrip("/")
    binary = os.environ.get("IA_RCT", str(ROOT / "target" / "debug" / "ia-rct"))
    with urllib.request.urlopen(f"{base}/openapi.json") as response:
        doc = json.load(response)
    work = Path(tempfile.mkdtemp(prefix="ia-rct-client-"))
    package = generate(base, work)
    run = Run(package, doc, base)

    token = subprocess.run([binary, "token", "create", "--role", "direktorat", "--name",
                            f"Generated client {datetime.datetime.now():%H%M%S%f}"],
                           capture_output=True, text=True, check=True).stdout.strip().split()[-1]
    subprocess.run([binary, "simulate", "--firms", "600", "--out", str(work / "sim"), "--protocol",
                    str(PROTOCOL)], cwd=ROOT, check=True, capture_output=True)
    register = csv_rows(work / "sim" / "register.csv")
    statistics = csv_rows(work / "sim" / "statistics.csv")

    print(f"calling every operation of {base}/openapi.json through the generated client:")
    for probe in ["healthz", "readyz", "openapi_json"]:
        run.call(probe, None)
    run.call("whoami", token)
    created, _ = run.call("create_token", token, body={
        "name": f"NAV Vestland {datetime.datetime.now():%H%M%S%f}", "role": "fylke", "fylke": "46"})
    vestland = created.token
    spare, _ = run.call("create_token", token, body={
        "name": f"Til tilbakekalling {datetime.datetime.now():%H%M%S%f}", "role": "forsker"})
    researcher, _ = run.call("create_token", token, body={
        "name": f"Forsker {datetime.datetime.now():%H%M%S%f}", "role": "forsker"})
    run.call("list_tokens", token)
    run.call("revoke_token", token, id=spare.info.id)
    # NAV's virksomhet.json rows, made from the simulated DVH CSV.
    rows = [{"årstall": int(r["arstall"]), "kvartal": int(r["kvartal"]), "orgnr": r["orgnr"],
             "tapteDagsverk": r["taptedv"], "muligeDagsverk": r["muligedv"],
             "antallPersoner": r["antpers"]} for r in statistics]
    run.call("upload_statistics", token, body=rows)
    run.call("list_vintages", researcher.token)
    run.call("get_metadata", token)
    protocol = run.operations["create_trial"][2]["requestBody"]["content"]["application/json"]["example"]
    run.call("create_trial", token, body=protocol)
    run.call("save_protocol", token, body=protocol)
    run.call("list_trials", researcher.token)
    run.call("get_trial", researcher.token)
    run.call("list_versions", researcher.token)
    run.call("transition_trial", token, body={"to": "registered"})
    run.call("transition_trial", token, body={"to": "enrolling"})
    firms = []
    for r in register:
        firm = {k: v for k, v in r.items() if v != ""}
        firm["antall_ansatte"] = int(firm["antall_ansatte"])
        for k in ("tapte_dagsverk", "mulige_dagsverk"):
            if k in firm:
                firm[k] = float(firm[k])
        if "villig" in firm:
            firm["villig"] = firm["villig"] == "true"
        firms.append(firm)
    run.call("enroll", token, body=firms)
    run.call("list_enrollment", vestland)
    run.call("randomize_wave", token, body={"seed": SEED})
    # The generated function parses every 200 as JSON (it keeps only the first media type), so
    # the CSV form (`format=csv`) is read from the raw response; then the JSON form.
    _, raw = run.call("list_assignments", vestland, raw=True)
    assert raw.headers["content-type"].startswith("text/csv"), raw.headers
    page, _ = run.call("list_assignments", vestland, format_="json", dialect=None,
                       after="100000008")
    firm = page.assignments[0].orgnr
    run.call("acknowledge", vestland, body={"wave": 1})
    run.call("list_acknowledgements", token)
    run.call("acknowledgement_status", token)
    run.call("record_takeup", vestland, body=[
        {"orgnr": firm, "status": "KONTAKTET", "dato": "2026-09-01", "timer": 1.5}])
    run.call("record_surveys", vestland, body=[
        {"orgnr": firm, "bolge": 1, "maal": "arbeidsmiljo_indeks", "verdi": 3.8, "antall_svar": 42}])
    run.call("list_takeup", vestland)
    run.call("list_deviations", token)
    for who in (token, researcher.token):
        run.call("get_balance", who)
        run.call("outcome_summary", who)
        run.call("get_estimates", who)
    run.call("get_draw_units", token)
    run.call("get_draw_assignment", token)
    run.call("list_audit", token)

    missing = sorted(set(run.operations) - run.called)
    if missing:
        sys.exit(f"not called through the generated client: {missing}")
    print(f"{len(run.called)} of {len(run.operations)} operations called through the generated "
          "client, every one 2xx, every JSON answer parsed into its model: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
