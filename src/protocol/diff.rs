//! What changed between two protocol versions, field by field.

use serde::Serialize;
use serde_json::Value;

use super::Protocol;

/// One changed field: its path (`strata.min_size`, `arms[2].ratio`) and both values.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Change {
    /// Where.
    pub path: String,
    /// The old value (absent if added).
    #[schema(value_type = Object)]
    pub before: Option<Value>,
    /// The new value (absent if removed).
    #[schema(value_type = Object)]
    pub after: Option<Value>,
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Change>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&p, x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                walk(&format!("{path}[{i}]"), x.get(i), y.get(i), out);
            }
        }
        (a, b) if a != b => out.push(Change {
            path: path.to_owned(),
            before: a.cloned(),
            after: b.cloned(),
        }),
        _ => {}
    }
}

/// Every field that differs between `before` and `after`, in path order.
pub fn diff(before: &Protocol, after: &Protocol) -> Vec<Change> {
    let a = serde_json::to_value(before).unwrap_or(Value::Null);
    let b = serde_json::to_value(after).unwrap_or(Value::Null);
    let mut out = Vec::new();
    walk("", Some(&a), Some(&b), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_each_changed_field() {
        let a = Protocol::from_toml(include_str!("../../protocols/nals-arbeidsformer.toml"))
            .expect("valid");
        let mut b = a.clone();
        b.version = 2;
        b.strata.min_size = 12;
        b.arms[3].ratio = 2;
        let changes = diff(&a, &b);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, vec!["arms[3].ratio", "strata.min_size", "version"]);
        assert_eq!(changes[1].before, Some(Value::from(8)));
        assert_eq!(changes[1].after, Some(Value::from(12)));
        assert!(diff(&a, &a).is_empty());
    }
}
