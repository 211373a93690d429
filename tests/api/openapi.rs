//! `/openapi.json` is a well-formed OpenAPI 3 document: every reference resolves, every operation
//! has an id, a tag and responses, and the bearer scheme the roles refer to is defined.

use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::{Backend, TestApp};

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target);
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

#[tokio::test]
async fn openapi_document_is_well_formed_openapi_3() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("json");

    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "ia-rct");
    assert!(doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        assert!(
            resolve(&doc, reference).is_some(),
            "unresolved $ref {reference}"
        );
    }

    let mut ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        assert!(path.starts_with('/'), "{path}");
        for (method, op) in item.as_object().expect("path item") {
            assert!(
                [
                    "get", "put", "post", "delete", "patch", "head", "options", "trace"
                ]
                .contains(&method.as_str()),
                "{method} {path}"
            );
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path} has no tag"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            {
                let declared = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
                });
                assert!(
                    declared,
                    "{method} {path} does not declare path parameter {name}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The document against itself: descriptions, examples, the responses the middleware gives, and the
// media types the upload routes read.
// ---------------------------------------------------------------------------------------------

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// Every operation of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// The examples of a media type object: its `example`, or the values of its `examples`.
fn media_examples(media: &Value) -> Vec<&Value> {
    let mut out: Vec<&Value> = media.get("example").into_iter().collect();
    if let Some(examples) = media["examples"].as_object() {
        out.extend(examples.values().filter_map(|e| e.get("value")));
    }
    out
}

/// Checks `value` against an OpenAPI 3.1 schema (the subset of JSON Schema that utoipa writes;
/// any other keyword is reported, so a schema this cannot check fails instead of passing).
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            errors.push(format!("{at}: no value is allowed here"));
        }
        return;
    };
    for key in schema.keys() {
        if ![
            "$ref",
            "allOf",
            "oneOf",
            "anyOf",
            "type",
            "enum",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "prefixItems",
            "minimum",
            "maximum",
            "propertyNames",
            "uniqueItems",
            "format",
            "description",
            "example",
            "examples",
            "title",
            "default",
            "deprecated",
            "nullable",
        ]
        .contains(&key.as_str())
        {
            errors.push(format!("{at}: the test cannot check schema keyword `{key}`"));
        }
    }
    if let Some(Value::String(reference)) = schema.get("$ref") {
        match resolve(doc, reference) {
            Some(target) => validate(doc, target, value, at, errors),
            None => errors.push(format!("{at}: unresolved {reference}")),
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(doc, s, value, at, errors);
        }
    }
    for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let matching = options
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    validate(doc, s, value, at, &mut e);
                    e.is_empty()
                })
                .count();
            if matching == 0 || (exactly_one && matching > 1) {
                errors.push(format!(
                    "{at}: {value} matches {matching} of the {key} schemas"
                ));
            }
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let fits = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            _ => false,
        });
        if !fits {
            errors.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n < min
    {
        errors.push(format!("{at}: {n} is below the minimum {min}"));
    }
    if let (Some(Value::String(format)), Value::String(s)) = (schema.get("format"), value) {
        let ok = match format.as_str() {
            "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: {s:?} is not a {format}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                errors.push(format!("{at}: the required `{name}` is missing"));
            }
        }
        for (name, v) in object {
            let at = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(s) => validate(doc, s, v, &at, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{at}: not in the schema")),
                    Some(s @ Value::Object(_)) => validate(doc, s, v, &at, errors),
                    _ => {}
                },
            }
            if let Some(names) = schema.get("propertyNames") {
                validate(doc, names, &Value::from(name.as_str()), &at, errors);
            }
        }
    }
    if let Some(items) = value.as_array() {
        let prefix = schema
            .get("prefixItems")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (i, v) in items.iter().enumerate() {
            let at = format!("{at}[{i}]");
            if let Some(s) = prefix.get(i) {
                validate(doc, s, v, &at, errors);
            } else if let Some(s) = schema.get("items") {
                validate(doc, s, v, &at, errors);
            }
        }
    }
}

async fn fetch_doc(app: &TestApp) -> Value {
    app.client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("json")
}

/// The validator itself refuses what it should: a wrong type, a missing required field, a value
/// outside an enum, a count that fits no `oneOf` branch, a bad date-time.
#[test]
fn the_schema_checker_finds_what_is_wrong() {
    let doc = serde_json::json!({ "components": { "schemas": {
        "Count": { "oneOf": [ { "type": "integer", "minimum": 0 }, { "type": "string", "enum": ["<5"] } ] },
        "Row": { "type": "object", "required": ["n", "at"], "properties": {
            "n": { "$ref": "#/components/schemas/Count" },
            "at": { "type": "string", "format": "date-time" },
            "tags": { "type": "array", "items": { "type": "string" } } } }
    } } });
    let schema = serde_json::json!({ "$ref": "#/components/schemas/Row" });
    let check = |value: Value| {
        let mut errors = Vec::new();
        validate(&doc, &schema, &value, "$", &mut errors);
        errors
    };
    assert!(check(serde_json::json!({ "n": 7, "at": "2026-12-03T10:35:38Z" })).is_empty());
    assert!(check(serde_json::json!({ "n": "<5", "at": "2026-12-03T10:35:38Z" })).is_empty());
    for bad in [
        serde_json::json!({ "n": "masked", "at": "2026-12-03T10:35:38Z" }),
        serde_json::json!({ "n": -1, "at": "2026-12-03T10:35:38Z" }),
        serde_json::json!({ "at": "2026-12-03T10:35:38Z" }),
        serde_json::json!({ "n": 1, "at": "3 December" }),
        serde_json::json!({ "n": 1, "at": "2026-12-03T10:35:38Z", "tags": [1] }),
        serde_json::json!([1]),
    ] {
        assert!(!check(bad.clone()).is_empty(), "{bad} passed");
    }
    let mut errors = Vec::new();
    validate(&doc, &serde_json::json!({ "pattern": "x" }), &Value::Null, "$", &mut errors);
    assert!(!errors.is_empty(), "an unknown keyword must not pass silently");
}

/// Every response has a description, every operation an example of its main (2xx) response and
/// of each request body media type, every example fits its schema, and every route that needs a
/// token lists 401 (and 403 unless every role is admitted) with the error envelope.
#[tokio::test]
async fn every_operation_is_described_with_examples_and_its_refusals() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = fetch_doc(&app).await;
    let all_roles: Vec<&str> = ia_rct::domain::Role::ALL
        .iter()
        .map(ia_rct::domain::Role::as_str)
        .collect();
    let mut problems = Vec::new();
    let ops = operations(&doc);
    assert!(ops.len() >= 32, "{} operations", ops.len());
    for (method, path, op) in &ops {
        let name = format!("{} {path}", method.to_uppercase());
        let mut main_example = false;
        for (status, response) in op["responses"].as_object().expect("responses") {
            if response["description"]
                .as_str()
                .is_none_or(|d| d.trim().is_empty())
            {
                problems.push(format!("{name} {status}: no description"));
            }
            for (media_type, media) in response["content"].as_object().into_iter().flatten() {
                for example in media_examples(media) {
                    if example.is_null() {
                        problems.push(format!("{name} {status} {media_type}: a null example"));
                    }
                    if status.starts_with('2') {
                        main_example = true;
                    }
                    if let Some(schema) = media.get("schema") {
                        validate(
                            &doc,
                            schema,
                            example,
                            &format!("{name} {status} {media_type} example"),
                            &mut problems,
                        );
                    }
                }
            }
        }
        if !main_example {
            problems.push(format!("{name}: no example of its 2xx response"));
        }
        if let Some(body) = op.get("requestBody") {
            if body["description"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{name}: the request body has no description"));
            }
            for (media_type, media) in body["content"].as_object().expect("content") {
                let examples = media_examples(media);
                if examples.is_empty() || examples.iter().any(|e| e.is_null()) {
                    problems.push(format!("{name} request {media_type}: no example"));
                }
                if let Some(schema) = media.get("schema") {
                    for example in examples {
                        validate(
                            &doc,
                            schema,
                            example,
                            &format!("{name} request {media_type} example"),
                            &mut problems,
                        );
                    }
                }
            }
        }
        for param in op["parameters"].as_array().into_iter().flatten() {
            if param.get("example").is_none() {
                problems.push(format!("{name}: parameter {} has no example", param["name"]));
            }
        }
        let secured = op
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|s| !s.is_empty());
        let roles: Vec<&str> = op["x-ia-rct-roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            secured,
            path.starts_with("/v1/"),
            "{name}: every /v1 route and only those need a token"
        );
        if secured {
            let mut refusals = vec!["401"];
            if roles.len() < all_roles.len() {
                refusals.push("403");
            }
            for status in refusals {
                let response = &op["responses"][status];
                if response["content"]["application/json"]["schema"]["$ref"]
                    != "#/components/schemas/ErrorEnvelope"
                {
                    problems.push(format!("{name}: {status} is not listed with the envelope"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The media types each upload route reads (docs/data-formats.md) are declared on its request
/// body, and each upload example is read by the service's own reader.
#[tokio::test]
async fn upload_routes_declare_what_they_read_and_their_examples_parse() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = fetch_doc(&app).await;
    let content = |method: &str, path: &str| -> serde_json::Map<String, Value> {
        doc["paths"][path][method]["requestBody"]["content"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no request body"))
            .clone()
    };
    let types = |c: &serde_json::Map<String, Value>| -> Vec<String> { c.keys().cloned().collect() };
    for (method, path) in [("post", "/v1/trials"), ("put", "/v1/trials/{id}/protocol")] {
        let c = content(method, path);
        assert_eq!(
            types(&c),
            ["application/json", "application/toml", "text/toml"],
            "{method} {path}"
        );
        let json = serde_json::to_string(&c["application/json"]["example"]).expect("json");
        ia_rct::protocol::Protocol::from_json(&json).expect("the JSON protocol example is valid");
        for toml in ["application/toml", "text/toml"] {
            let text = c[toml]["example"].as_str().expect("TOML example text");
            ia_rct::protocol::Protocol::from_toml(text).expect("the TOML protocol example is valid");
        }
    }
    let text_of = |v: &Value| -> Vec<u8> {
        match v {
            Value::String(s) => s.clone().into_bytes(),
            other => serde_json::to_vec(other).expect("json"),
        }
    };
    for (path, read) in [
        (
            "/v1/trials/{id}/enrollment",
            (|b: &[u8]| {
                ia_rct::register::parse_register(
                    b,
                    ia_rct::register::detect_format(b),
                    &ia_rct::register::RegisterOptions::default(),
                )
                .map(|rows| rows.len())
                .map_err(|e| format!("{:?}", e.errors))
            }) as fn(&[u8]) -> Result<usize, String>,
        ),
        ("/v1/trials/{id}/takeup", |b| {
            ia_rct::takeup::parse_takeup(b)
                .map(|rows| rows.len())
                .map_err(|e| format!("{:?}", e.errors))
        }),
        ("/v1/trials/{id}/surveys", |b| {
            ia_rct::takeup::parse_surveys(b)
                .map(|rows| rows.len())
                .map_err(|e| format!("{:?}", e.errors))
        }),
        ("/v1/statistics", |b| {
            use ia_rct::statistics::{StatsFormat, detect, read_metadata, read_stats};
            let format = detect(b);
            let rows: Result<Vec<()>, _> = match format {
                StatsFormat::DvhCsv | StatsFormat::VirksomhetJson => {
                    read_stats(b, format).map(|r| r.map(|_| ())).collect()
                }
                StatsFormat::MetadataCsv | StatsFormat::MetadataJson => {
                    read_metadata(b, format).map(|r| r.map(|_| ())).collect()
                }
            };
            rows.map(|r| r.len()).map_err(|e| format!("{e:?}"))
        }),
    ] {
        let c = content("post", path);
        assert_eq!(types(&c), ["application/json", "text/csv"], "POST {path}");
        for (media_type, media) in &c {
            for example in media_examples(media) {
                let rows = read(&text_of(example))
                    .unwrap_or_else(|e| panic!("POST {path} {media_type} example: {e}"));
                assert!(rows > 0, "POST {path} {media_type} example has no rows");
            }
        }
    }
    let metadata_example = &content("post", "/v1/statistics")["application/json"]["examples"];
    assert!(
        metadata_example["virksomhet_metadata.json"]["value"].is_array(),
        "{metadata_example}"
    );
}
