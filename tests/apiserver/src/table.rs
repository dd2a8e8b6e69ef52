//! `meta.k8s.io/v1` Table output for `kubectl get`, from a CRD's additionalPrinterColumns.

use serde_json::{Value, json};

use crate::types::ResourceType;

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `[N]` and `[?(@.field=="value")]`.
pub fn jsonpath(obj: &Value, path: &str) -> Option<Value> {
    let mut cur = vec![obj.clone()];
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            cur = cur.iter().filter_map(|v| v.get(field).cloned()).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("[?(") {
            let end = r.find(")]")?;
            let expr = &r[..end];
            let (lhs, rhs) = expr.split_once("==")?;
            let field = lhs.trim().strip_prefix("@.")?;
            let want = rhs.trim().trim_matches(['"', '\'']);
            cur = cur
                .iter()
                .filter_map(Value::as_array)
                .flatten()
                .filter(|item| item.get(field).and_then(Value::as_str) == Some(want))
                .cloned()
                .collect();
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let index: usize = r[..end].parse().ok()?;
            cur = cur.iter().filter_map(|v| v.get(index).cloned()).collect();
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    cur.into_iter().next()
}

/// `5s`, `3m`, `2h`, `4d`: how kubectl shows ages.
pub fn age(timestamp: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn columns(t: &ResourceType) -> Vec<Value> {
    if t.printer_columns.is_empty() {
        vec![json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})]
    } else {
        t.printer_columns.clone()
    }
}

/// Renders objects as a Table.
pub fn table(t: &ResourceType, objects: &[Value], resource_version: &str) -> Value {
    let cols = columns(t);
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
    ];
    defs.extend(cols.iter().map(|c| {
        json!({"name": c["name"], "type": c["type"], "format": "", "description": c["description"].as_str().unwrap_or(""), "priority": c["priority"].as_i64().unwrap_or(0)})
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for c in &cols {
                let v = jsonpath(o, c["jsonPath"].as_str().unwrap_or("")).unwrap_or(Value::Null);
                cells.push(match (c["type"].as_str(), v) {
                    (Some("date"), Value::String(s)) => json!(age(&s)),
                    (_, Value::Null) => json!("<none>"),
                    (_, v) => v,
                });
            }
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version}, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths() {
        let o = json!({"status": {"graphState": "paused", "conditions": [{"type": "Stalled", "status": "False"}, {"type": "Ready", "status": "True"}]}, "items": [1, 2]});
        assert_eq!(jsonpath(&o, ".status.graphState"), Some(json!("paused")));
        assert_eq!(
            jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(jsonpath(&o, ".items[1]"), Some(json!(2)));
        assert_eq!(jsonpath(&o, ".status.missing"), None);
    }
}
