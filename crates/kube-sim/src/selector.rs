//! Label and field selectors with the apiserver's syntax and semantics.
//!
//! Label selectors support equality (`=`, `==`, `!=`), sets (`in`, `notin`), existence
//! (`key`, `!key`) and the numeric `gt`/`lt` forms (`>`, `<`). Field selectors support
//! `=`, `==`, `!=` on `metadata.name`, `metadata.namespace` and the per-kind labels of
//! [`ResourceDef::field_labels`]. Parse errors carry the message the REST layer returns in
//! a 400 `Status`.

use serde_json::{Map, Value};

use super::object;
use super::resources::ResourceDef;

/// A selector operator.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

/// A selector that could not be parsed; the message is user-facing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

impl LabelSelector {
    /// Parses the `labelSelector` query syntax.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s)? {
            let part = part.trim();
            if part.is_empty() {
                if s.trim().is_empty() {
                    continue;
                }
                return Err(SelectorError(format!(
                    "unable to parse requirement: found '', expected: identifier in {s:?}"
                )));
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(Self { reqs })
    }

    /// An equality selector from a map (a Service's `spec.selector`).
    pub fn from_map(map: &Map<String, Value>) -> Self {
        let reqs = map
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                op: Op::Eq,
                values: vec![v.as_str().unwrap_or_default().to_string()],
            })
            .collect();
        Self { reqs }
    }

    /// Whether the selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether an object's labels satisfy every requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.reqs.iter().all(|r| {
            let v = labels.get(&r.key).and_then(Value::as_str);
            match r.op {
                Op::Eq | Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotEq | Op::NotIn => v.is_none_or(|v| r.values.iter().all(|x| x != v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
                Op::Gt | Op::Lt => {
                    let (Some(v), Some(bound)) = (
                        v.and_then(|v| v.parse::<i64>().ok()),
                        r.values.first().and_then(|b| b.parse::<i64>().ok()),
                    ) else {
                        return false;
                    };
                    if r.op == Op::Gt {
                        v > bound
                    } else {
                        v < bound
                    }
                }
            }
        })
    }

    /// Whether an object (its `metadata.labels`) matches.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.reqs.is_empty() {
            return true;
        }
        let empty = Map::new();
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches(labels)
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(s: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    SelectorError(format!(
                        "unable to parse requirement: unbalanced ')' in {s:?}"
                    ))
                })?
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!(
            "unable to parse requirement: unclosed '(' in {s:?}"
        )));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        validate_key(key)?;
        return Ok(Requirement {
            key: key.to_string(),
            op: Op::DoesNotExist,
            values: vec![],
        });
    }
    // Set-based: `key in (a,b)` / `key notin (a,b)`.
    if let Some(paren) = part.find('(') {
        let head = part[..paren].trim();
        let (key, op) = if let Some(k) = head.strip_suffix("notin") {
            (k.trim(), Op::NotIn)
        } else if let Some(k) = head.strip_suffix("in") {
            (k.trim(), Op::In)
        } else {
            return Err(SelectorError(format!(
                "unable to parse requirement: found '(', expected: in, notin in {part:?}"
            )));
        };
        if key.is_empty() || key.contains(char::is_whitespace) && key.split_whitespace().count() > 1
        {
            return Err(SelectorError(format!(
                "unable to parse requirement: invalid key in {part:?}"
            )));
        }
        if !head[..head.len() - if op == Op::In { 2 } else { 5 }].ends_with(char::is_whitespace) {
            return Err(SelectorError(format!(
                "unable to parse requirement: expected whitespace before operator in {part:?}"
            )));
        }
        validate_key(key)?;
        let rest = part[paren + 1..].trim_end();
        let inner = rest.strip_suffix(')').ok_or_else(|| {
            SelectorError(format!(
                "unable to parse requirement: expected ')' in {part:?}"
            ))
        })?;
        let mut values = Vec::new();
        for v in inner.split(',') {
            let v = v.trim();
            validate_value(v)?;
            values.push(v.to_string());
        }
        return Ok(Requirement {
            key: key.to_string(),
            op,
            values,
        });
    }
    for (tok, op) in [
        ("!=", Op::NotEq),
        ("==", Op::Eq),
        ("=", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
    ] {
        if let Some(i) = part.find(tok) {
            let key = part[..i].trim();
            let value = part[i + tok.len()..].trim();
            validate_key(key)?;
            validate_value(value)?;
            if matches!(op, Op::Gt | Op::Lt) && value.parse::<i64>().is_err() {
                return Err(SelectorError(format!(
                    "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {part:?}"
                )));
            }
            return Ok(Requirement {
                key: key.to_string(),
                op,
                values: vec![value.to_string()],
            });
        }
    }
    let key = part.trim();
    validate_key(key)?;
    Ok(Requirement {
        key: key.to_string(),
        op: Op::Exists,
        values: vec![],
    })
}

fn is_name(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Validates a label key (`[prefix/]name`) as the apiserver does.
pub fn validate_key(key: &str) -> Result<(), SelectorError> {
    let ok = match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name(name, 63),
        None => is_name(key, 63),
    };
    if ok {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "unable to parse requirement: invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

/// Validates a label value (empty, or a name of at most 63 characters).
pub fn validate_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || is_name(value, 63) {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "unable to parse requirement: invalid label value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses the `fieldSelector` syntax, rejecting fields this kind does not index
    /// (`field label not supported: …`, as the apiserver says).
    pub fn parse(s: &str, def: &ResourceDef) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            let supported = matches!(field, "metadata.name" | "metadata.namespace")
                || def
                    .field_labels
                    .is_none_or(|labels| labels.contains(&field));
            if !supported {
                return Err(SelectorError(format!("field label not supported: {field}")));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self { reqs })
    }

    /// Whether an object satisfies every requirement.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.reqs
            .iter()
            .all(|(field, eq, value)| (object::field_value(obj, field) == *value) == *eq)
    }

    /// Whether the selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn equality_set_and_existence_requirements_match_like_the_apiserver() {
        let l = labels(json!({"app": "origin", "tier": "edge", "v": "3"}));
        for (sel, want) in [
            ("app=origin", true),
            ("app==origin", true),
            ("app!=origin", false),
            ("app in (origin, other)", true),
            ("app notin (origin)", false),
            ("tier,app=origin", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("v>2", true),
            ("v<3", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for sel in [
            "app in (a",
            "a b c",
            "app=in valid",
            "=x",
            "app in a)",
            "kin (a)",
        ] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }
}
