//! Offline checks of an object against the generated CRD schema (the structural subset the CRDs use:
//! types, properties, unknown fields, enums, patterns, lengths, ranges, list sizes and set lists). The
//! CEL rules are checked by [`super::validate`], which uses the same wording.

use serde_json::Value;

use super::validate::{FieldError, printable};

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn err(out: &mut Vec<FieldError>, field: &str, problem: String, fix: impl Into<String>) {
    out.push(FieldError {
        field: field.to_string(),
        problem,
        fix: fix.into(),
    });
}

/// A JSON type as a person would say it, with its article.
fn human_type(t: &str) -> &str {
    match t {
        "integer" => "an integer",
        "number" => "a number",
        "string" => "a string",
        "boolean" => "true or false",
        "array" => "a list",
        "object" => "a mapping",
        "null" => "null",
        _ => "a value of another type",
    }
}

/// What a schema pattern asks for, in words, and how to fix a value that breaks it. The CRDs' common
/// patterns; any other is named as a format.
fn pattern_meaning(pattern: &str) -> (String, String) {
    const GUID: &str = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
    const DATE: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
    const WAIT: &str = r"^[1-9][0-9]{0,8}[smhd]$";
    match pattern {
        GUID => (
            "an Entra device id".into(),
            "give the device's Entra (Azure AD) device id, a GUID such as 3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01".into(),
        ),
        DATE => (
            "a date in the form YYYY-MM-DD".into(),
            "give a date such as 2026-11-10".into(),
        ),
        WAIT => (
            "a duration".into(),
            format!("write {}, such as 30m, 4h or 1d", super::duration::GATE_WAIT.expected()),
        ),
        other => (
            "in the expected format".into(),
            format!("give a value that matches the regular expression {other}"),
        ),
    }
}

/// Checks `value` at `path` against `schema`, appending every problem.
pub fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    if value.is_null() {
        if schema["nullable"] != true {
            err(out, path, "is null".into(), "give a value or remove the field");
        }
        return;
    }
    let want = schema["type"].as_str().unwrap_or("");
    let have = type_name(value);
    let type_ok = match want {
        "" => true,
        "number" => matches!(have, "number" | "integer"),
        "integer" => have == "integer" || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        w => w == have,
    };
    if !type_ok {
        let shown = match value {
            Value::String(s) => format!("\"{}\"", printable(s)),
            Value::Object(_) => "a mapping".into(),
            Value::Array(_) => "a list".into(),
            other => other.to_string(),
        };
        err(
            out,
            path,
            format!(
                "is {shown} ({}), but must be {}",
                human_type(have),
                human_type(want)
            ),
            format!("give {}", human_type(want)),
        );
        return;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        let names: Vec<String> = options
            .iter()
            .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_string))
            .collect();
        err(
            out,
            path,
            format!("{value} is not allowed"),
            format!("use one of {}", names.join(", ")),
        );
    }
    match value {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema["minLength"].as_u64()
                && len < min
            {
                err(
                    out,
                    path,
                    format!("is {len} characters, fewer than {min}"),
                    format!("give at least {min} characters"),
                );
            }
            if let Some(max) = schema["maxLength"].as_u64()
                && len > max
            {
                err(
                    out,
                    path,
                    format!("is {len} characters, more than {max}"),
                    format!("give at most {max} characters"),
                );
            }
            if let Some(p) = schema["pattern"].as_str()
                && !regex::Regex::new(p).is_ok_and(|re| re.is_match(s))
            {
                let (what, fix) = pattern_meaning(p);
                err(out, path, format!("\"{}\" is not {what}", printable(s)), fix);
            }
        }
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema["minimum"].as_f64()
                && f < min
            {
                err(
                    out,
                    path,
                    format!("{n} is less than {min}"),
                    format!("use at least {min}"),
                );
            }
            if let Some(max) = schema["maximum"].as_f64()
                && f > max
            {
                err(
                    out,
                    path,
                    format!("{n} is more than {max}"),
                    format!("use at most {max}"),
                );
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                err(
                    out,
                    path,
                    format!("has {} items, more than {max}", items.len()),
                    format!("keep it to {max} items"),
                );
            }
            if schema["x-kubernetes-list-type"] == "set" {
                for (i, item) in items.iter().enumerate() {
                    if let Some(first) = items[..i].iter().position(|x| x == item) {
                        err(
                            out,
                            &format!("{path}[{i}]"),
                            format!("{item} is listed twice (first at {path}[{first}])"),
                            "remove the duplicate",
                        );
                    }
                }
            }
            for (i, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in map {
                    match props.get(k) {
                        Some(s) => check(s, v, &format!("{path}.{k}"), out),
                        None => {
                            let known: Vec<&str> = props.keys().map(String::as_str).collect();
                            err(
                                out,
                                &format!("{path}.{}", printable(k)),
                                "is not a known field".into(),
                                format!(
                                    "remove it or fix the spelling; known fields: {}",
                                    known.join(", ")
                                ),
                            );
                        }
                    }
                }
                for r in schema["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !map.contains_key(r) {
                        err(out, &format!("{path}.{r}"), "is required".into(), "add it");
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    fn spec_schema() -> Value {
        let crd = serde_json::to_value(crate::crd::ExpeditedDeployment::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
    }

    fn problems(spec: Value) -> Vec<String> {
        let mut out = Vec::new();
        check(&spec_schema(), &spec, "spec", &mut out);
        out.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_spec_passes() {
        assert!(
            problems(
                json!({"content": {"releaseDate": "2026-11-10"}, "paused": true, "deletionPolicy": "Orphan"})
            )
            .is_empty()
        );
    }

    #[test]
    fn types_unknown_fields_enums_patterns_and_ranges() {
        let got = problems(json!({
            "content": {"releaseDate": "11/10/2026", "lates": true},
            "paused": "yes",
            "deletionPolicy": "Keep",
            "userExperience": {"daysUntilForcedReboot": 99},
            "audience": {"members": [{"device": "not-a-guid"}]},
        }));
        assert_eq!(
            got,
            vec![
                "spec.audience.members[0].device",
                "spec.content.lates",
                "spec.content.releaseDate",
                "spec.deletionPolicy",
                "spec.paused",
                "spec.userExperience.daysUntilForcedReboot",
            ]
        );
        assert_eq!(problems(json!({})), vec!["spec.content"], "content is required");
    }

    #[test]
    fn set_lists_reject_duplicates() {
        let crd = serde_json::to_value(crate::crd::DeviceGroup::crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let d = "3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01";
        let mut out = Vec::new();
        check(schema, &json!({"devices": [d, d]}), "spec", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].field, "spec.devices[1]");
    }
}
