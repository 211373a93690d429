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
            "minItems",
            "maxItems",
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
            errors.push(format!(
                "{at}: the test cannot check schema keyword `{key}`"
            ));
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
        let count = items.len() as u64;
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|n| count < n)
            || schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|n| count > n)
        {
            errors.push(format!("{at}: {count} items is outside minItems/maxItems"));
        }
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
    validate(
        &doc,
        &serde_json::json!({ "pattern": "x" }),
        &Value::Null,
        "$",
        &mut errors,
    );
    assert!(
        !errors.is_empty(),
        "an unknown keyword must not pass silently"
    );
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
            let in_path = path.contains(&format!("{{{}}}", param["name"].as_str().unwrap_or("?")));
            if (param["in"] == "path") != in_path {
                problems.push(format!(
                    "{name}: parameter {} is declared in {}",
                    param["name"], param["in"]
                ));
            }
            if param.get("example").is_none() {
                problems.push(format!(
                    "{name}: parameter {} has no example",
                    param["name"]
                ));
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
            ia_rct::protocol::Protocol::from_toml(text)
                .expect("the TOML protocol example is valid");
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

// ---------------------------------------------------------------------------------------------
// The document against the running routes.
// ---------------------------------------------------------------------------------------------

/// A parameter's example as it is written in a URL.
fn param_text(example: &Value) -> String {
    match example {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The document's operation for `method` and the route `template`.
fn operation<'a>(doc: &'a Value, method: &str, template: &str) -> &'a Value {
    let op = &doc["paths"][template][method];
    assert!(op.is_object(), "the document has no {method} {template}");
    op
}

/// The path with its parameters set from `path_params` (else their examples), and every query
/// parameter the document declares, with its example.
fn request_url(
    doc: &Value,
    method: &str,
    template: &str,
    path_params: &[(&str, String)],
) -> (String, Vec<(String, String)>) {
    let op = operation(doc, method, template);
    let mut path = template.to_owned();
    let mut query = Vec::new();
    for param in op["parameters"].as_array().into_iter().flatten() {
        let name = param["name"].as_str().expect("parameter name");
        let value = path_params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| param_text(&param["example"]));
        match param["in"].as_str() {
            Some("path") => path = path.replace(&format!("{{{name}}}"), &value),
            // An empty override leaves a query parameter out.
            Some("query") if value.is_empty() => {}
            Some("query") => query.push((name.to_owned(), value)),
            _ => {}
        }
    }
    (path, query)
}

/// One call and what came back.
struct Answer {
    status: u16,
    content_type: String,
    text: String,
}

struct Caller<'a> {
    app: &'a TestApp,
    doc: &'a Value,
    /// (method, template) of every call made.
    called: HashSet<(String, String)>,
    problems: Vec<String>,
}

impl Caller<'_> {
    /// Calls `method template` with `token`, the declared query parameters and `body`, and checks
    /// the answer against the document: a 2xx status that the operation lists, with a media type
    /// it declares for it and, for JSON, a body that fits the declared schema.
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        token: Option<&str>,
        path_params: &[(&str, String)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Value {
        let (path, query) = request_url(self.doc, method, template, path_params);
        let mut request = self
            .app
            .client
            .request(
                method.to_uppercase().parse().expect("method"),
                self.app.url(&path),
            )
            .query(&query);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let op = operation(self.doc, method, template);
        for param in op["parameters"].as_array().into_iter().flatten() {
            if param["in"] == "header" {
                request = request.header(
                    param["name"].as_str().expect("name"),
                    param_text(&param["example"]),
                );
            }
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("send");
        let answer = Answer {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            text: response.text().await.expect("body"),
        };
        let name = format!("{} {path}", method.to_uppercase());
        if !(200..300).contains(&answer.status) {
            self.problems.push(format!(
                "{name} with {query:?}: {} {}",
                answer.status, answer.text
            ));
            return Value::Null;
        }
        self.called.insert((method.to_owned(), template.to_owned()));
        self.check(method, template, &answer)
    }

    /// Checks an answer against the operation's declared response for its status.
    fn check(&mut self, method: &str, template: &str, answer: &Answer) -> Value {
        let name = format!("{} {template}", method.to_uppercase());
        let op = operation(self.doc, method, template);
        let status = answer.status.to_string();
        let Some(response) = op["responses"].get(&status) else {
            self.problems
                .push(format!("{name} answered {status}, which it does not list"));
            return Value::Null;
        };
        let mime = answer
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let Some(media) = response["content"].get(mime) else {
            self.problems.push(format!(
                "{name} {status} answered {mime}, which it does not declare"
            ));
            return Value::Null;
        };
        if mime != "application/json" {
            return Value::Null;
        }
        let value: Value = match serde_json::from_str(&answer.text) {
            Ok(v) => v,
            Err(e) => {
                self.problems.push(format!("{name}: not JSON ({e})"));
                return Value::Null;
            }
        };
        if let Some(schema) = media.get("schema") {
            validate(
                self.doc,
                schema,
                &value,
                &format!("{name} {status} answer"),
                &mut self.problems,
            );
        }
        value
    }
}

/// The request example of an operation for a media type, as bytes.
fn request_example(doc: &Value, method: &str, template: &str, media_type: &str) -> Vec<u8> {
    let media = &operation(doc, method, template)["requestBody"]["content"][media_type];
    match media_examples(media).first() {
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => serde_json::to_vec(other).expect("json"),
        None => panic!("{method} {template} has no {media_type} example"),
    }
}

/// A real server answers every operation of the document, called as the document says (the
/// request examples as bodies, every declared query parameter with its example, and data from
/// `ia-rct simulate`), with a status it lists and a body that fits the declared schema; and every
/// secured route refuses a call without a token with 401, and a role it does not admit with 403.
#[tokio::test]
async fn the_document_matches_the_running_routes() {
    use ia_rct::domain::Role;

    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = fetch_doc(&app).await;
    let work = tempfile::tempdir().expect("temp dir");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let simulated = std::process::Command::new(crate::helpers::BIN)
        .args(["simulate", "--firms", "600", "--out"])
        .arg(work.path())
        .args(["--protocol", "protocols/nals-arbeidsformer.toml"])
        .current_dir(root)
        .output()
        .expect("ia-rct simulate");
    assert!(simulated.status.success(), "{simulated:?}");
    let read = |name: &str| std::fs::read(work.path().join(name)).expect(name);
    let forsker = crate::helpers::make_token(app.store.as_ref(), "Forsker", Role::Forsker, None)
        .await
        .secret;
    let spare = crate::helpers::make_token(
        app.store.as_ref(),
        "Til tilbakekalling",
        Role::Forsker,
        None,
    )
    .await;
    let dir = app.direktorat.secret.clone();
    let mut c = Caller {
        app: &app,
        doc: &doc,
        called: HashSet::new(),
        problems: Vec::new(),
    };
    let d = Some(dir.as_str());
    let r = Some(forsker.as_str());
    let json = "application/json";

    for path in ["/healthz", "/readyz", "/openapi.json"] {
        c.call("get", path, None, &[], None).await;
    }
    c.call("get", "/v1/whoami", d, &[], None).await;
    let created = c
        .call(
            "post",
            "/v1/tokens",
            d,
            &[],
            Some((json, request_example(&doc, "post", "/v1/tokens", json))),
        )
        .await;
    let fylke = created["token"]
        .as_str()
        .expect("the fylke token")
        .to_owned();
    let f = Some(fylke.as_str());
    c.call("get", "/v1/tokens", d, &[], None).await;
    c.call(
        "post",
        "/v1/tokens/{id}/revoke",
        d,
        &[("id", spare.info.id.to_string())],
        None,
    )
    .await;
    c.call(
        "post",
        "/v1/statistics",
        d,
        &[],
        Some(("text/csv", read("statistics.csv"))),
    )
    .await;
    c.call("get", "/v1/statistics/vintages", r, &[], None).await;
    c.call("get", "/v1/statistics/metadata", d, &[], None).await;

    let trial = "/v1/trials/{id}";
    c.call(
        "post",
        "/v1/trials",
        d,
        &[],
        Some((
            "application/toml",
            request_example(&doc, "post", "/v1/trials", "application/toml"),
        )),
    )
    .await;
    c.call(
        "put",
        "/v1/trials/{id}/protocol",
        d,
        &[],
        Some((
            json,
            request_example(&doc, "put", "/v1/trials/{id}/protocol", json),
        )),
    )
    .await;
    c.call("get", "/v1/trials", r, &[], None).await;
    c.call("get", trial, r, &[], None).await;
    c.call("get", "/v1/trials/{id}/versions", r, &[], None)
        .await;
    let transitions = "/v1/trials/{id}/transitions";
    c.call(
        "post",
        transitions,
        d,
        &[],
        Some((json, request_example(&doc, "post", transitions, json))),
    )
    .await;
    c.call(
        "post",
        transitions,
        d,
        &[],
        Some((json, br#"{"to":"enrolling"}"#.to_vec())),
    )
    .await;
    c.call(
        "post",
        "/v1/trials/{id}/enrollment",
        d,
        &[],
        Some(("text/csv", read("register.csv"))),
    )
    .await;
    for token in [d, f] {
        c.call("get", "/v1/trials/{id}/enrollment", token, &[], None)
            .await;
    }
    let randomize = "/v1/trials/{id}/randomize";
    c.call(
        "post",
        randomize,
        d,
        &[],
        Some((json, request_example(&doc, "post", randomize, json))),
    )
    .await;
    // With every declared query parameter (`format=csv`), then as JSON to check its schema.
    c.call("get", "/v1/trials/{id}/assignments", f, &[], None)
        .await;
    let page = c
        .call(
            "get",
            "/v1/trials/{id}/assignments",
            f,
            &[
                ("format", "json".into()),
                ("dialect", String::new()),
                ("after", "100000008".into()),
            ],
            None,
        )
        .await;
    let vestland = page["assignments"][0]["orgnr"]
        .as_str()
        .unwrap_or_else(|| panic!("no Vestland firm in {page}:\n{}", c.problems.join("\n")))
        .to_owned();
    let acks = "/v1/trials/{id}/acknowledgements";
    c.call(
        "post",
        acks,
        f,
        &[],
        Some((json, request_example(&doc, "post", acks, json))),
    )
    .await;
    for token in [d, f] {
        c.call("get", acks, token, &[], None).await;
    }
    c.call(
        "get",
        "/v1/trials/{id}/acknowledgements/status",
        d,
        &[],
        None,
    )
    .await;
    let takeup = format!("orgnr,status,dato,timer\n{vestland},KONTAKTET,2026-09-01,1.5\n");
    c.call(
        "post",
        "/v1/trials/{id}/takeup",
        f,
        &[],
        Some(("text/csv", takeup.into_bytes())),
    )
    .await;
    let surveys =
        format!("orgnr,bolge,maal,verdi,antall_svar\n{vestland},1,arbeidsmiljo_indeks,3.8,42\n");
    c.call(
        "post",
        "/v1/trials/{id}/surveys",
        f,
        &[],
        Some(("text/csv", surveys.into_bytes())),
    )
    .await;
    for token in [d, f] {
        c.call("get", "/v1/trials/{id}/takeup", token, &[], None)
            .await;
    }
    c.call("get", "/v1/trials/{id}/deviations", d, &[], None)
        .await;
    for token in [d, r] {
        c.call("get", "/v1/trials/{id}/balance", token, &[], None)
            .await;
        c.call("get", "/v1/trials/{id}/outcomes/summary", token, &[], None)
            .await;
        c.call("get", "/v1/trials/{id}/estimates", token, &[], None)
            .await;
    }
    // Analysis runs: run 1 is the estimates' above (the same options), done; its job is job 1.
    let options =
        br#"{"estimator": "itt_dim,did_twfe", "weights": "firm", "vintage": 1, "cr2": true}"#;
    for token in [d, r] {
        c.call("get", "/v1/trials/{id}/analyses", token, &[], None)
            .await;
        c.call("get", "/v1/trials/{id}/analyses/{run}", token, &[], None)
            .await;
        c.call("get", "/v1/jobs/{job}", token, &[], None).await;
    }
    c.call(
        "post",
        "/v1/trials/{id}/analyses",
        d,
        &[],
        Some(("application/json", options.to_vec())),
    )
    .await;
    c.call(
        "get",
        "/v1/trials/{id}/analyses/{run}/result.json",
        d,
        &[],
        None,
    )
    .await;
    c.call("get", "/v1/jobs", d, &[], None).await;
    // With the workers stopped, a new run's job stays queued, and is cancelled at once.
    app.state.jobs.shutdown().await;
    let queued = c
        .call(
            "post",
            "/v1/trials/{id}/analyses",
            d,
            &[],
            Some(("application/json", br#"{"weights": "dagsverk"}"#.to_vec())),
        )
        .await;
    let job = queued["job"].as_i64().unwrap_or_default().to_string();
    c.call("delete", "/v1/jobs/{job}", d, &[("job", job)], None)
        .await;
    c.call(
        "get",
        "/v1/trials/{id}/draws/{wave}/units.csv",
        d,
        &[],
        None,
    )
    .await;
    c.call(
        "get",
        "/v1/trials/{id}/draws/{wave}/assignment.csv",
        d,
        &[],
        None,
    )
    .await;
    c.call("get", "/v1/audit", d, &[], None).await;

    let declared: HashSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let uncalled: Vec<_> = declared.difference(&c.called).collect();
    assert!(
        uncalled.is_empty(),
        "this test calls no {uncalled:?}: add them"
    );

    // The refusals, on every secured route: no token, and a role the route does not admit.
    let tokens = [
        (Role::Direktorat, dir.clone()),
        (Role::Fylke, fylke.clone()),
        (Role::Forsker, forsker.clone()),
    ];
    for (method, template, op) in operations(&doc) {
        let Some(roles) = op["x-ia-rct-roles"].as_array() else {
            continue;
        };
        let (path, _) = request_url(&doc, &method, &template, &[]);
        let refused = tokens
            .iter()
            .find(|(role, _)| !roles.contains(&Value::from(role.as_str())));
        for (token, expected) in [(None, 401), (refused.map(|(_, t)| t.as_str()), 403)] {
            if expected == 403 && refused.is_none() {
                continue;
            }
            let mut request = app.client.request(
                method.to_uppercase().parse().expect("method"),
                app.url(&path),
            );
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("send");
            let answer = Answer {
                status: response.status().as_u16(),
                content_type: response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                text: response.text().await.expect("body"),
            };
            if answer.status != expected {
                c.problems.push(format!(
                    "{} {path}: {} instead of {expected}: {}",
                    method.to_uppercase(),
                    answer.status,
                    answer.text
                ));
            }
            c.check(&method, &template, &answer);
        }
    }
    assert!(c.problems.is_empty(), "{}", c.problems.join("\n"));
}
