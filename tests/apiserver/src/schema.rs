//! What a real API server checks on a custom resource before it stores it, in its order: unknown fields
//! pruned (or refused under `fieldValidation=Strict`), nulls of non-nullable fields dropped, schema
//! defaults applied, the structural schema checked (types, required, enum, formats, patterns, bounds,
//! list uniqueness), then the `x-kubernetes-validations` CEL rules evaluated (with `oldSelf` on update)
//! through kube-cel. Failures answer 422 `Invalid` with one cause per field, in the shape kubectl prints.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::store::ApiError;
use crate::types::ResourceType;

/// One failed check: the field path and what kubectl prints after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub field: String,
    pub reason: &'static str,
    pub message: String,
}

impl Cause {
    fn new(field: &str, reason: &'static str, message: impl Into<String>) -> Self {
        Cause {
            field: field.to_string(),
            reason,
            message: message.into(),
        }
    }

    fn text(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// The CRDs' CEL rules, each schema's compiled once: compiling parses every rule (an ANTLR parse), and
/// doing it for each write would cost more than the write itself at a thousand audience items.
#[derive(Default)]
pub struct Cel {
    validator: kube_cel::Validator,
    /// By schema and the top-level fields an update changed, the newest few (a CRD update brings a new
    /// schema; the old one is dropped).
    compiled: std::sync::Mutex<Vec<Compiled>>,
    /// By schema and the top-level fields an update left as they were, the schema without them.
    reduced: std::sync::Mutex<Vec<Reduced>>,
}

/// A cache key holds the schema's `Arc`, so a dropped schema's address is never taken for another's.
struct Compiled {
    schema: Arc<Value>,
    changed: Option<Vec<String>>,
    /// `None` when no rule is left to run (kube-cel converts each node's whole value to CEL whether
    /// or not the node has a rule, so a status write is not walked for nothing).
    rules: Option<std::sync::Arc<RuleTree>>,
}

struct Reduced {
    schema: Arc<Value>,
    unchanged: Vec<String>,
    reduced: Arc<Value>,
}

/// The newest few entries of a cache are kept (a CRD update brings a new schema).
const CACHED: usize = 32;

/// A schema's rules as a tree that reaches only the nodes with rules. kube-cel, given a whole schema,
/// converts the value of every node on the way to a rule into CEL (the whole object at the root, the
/// whole spec below it, ...), so a rule on each of a thousand audience items cost five conversions of
/// the audience. Here each node with rules is compiled on its own, over a copy of its schema with the
/// rules below it taken out (the types and formats stay, for the conversion), and run on its own
/// value: each value a rule reads is converted once. The same rules run, on the same values, with
/// the same `oldSelf` (by index in lists, as kube-cel pairs them) and the same field paths.
struct RuleTree {
    /// The node's own rules.
    own: Option<kube_cel::CompiledSchema>,
    properties: Vec<(String, RuleTree)>,
    items: Option<Box<RuleTree>>,
    /// `additionalProperties`, with the names `properties` declares (kube-cel skips those).
    additional: Option<(Box<RuleTree>, Vec<String>)>,
}

const RULES: &str = "x-kubernetes-validations";

impl RuleTree {
    /// `None` when the schema has no rule.
    fn of(schema: &Value) -> Option<RuleTree> {
        if !has_rules(schema) {
            return None;
        }
        // Rules under allOf, oneOf, anyOf or not: kube-cel runs the node's whole subtree.
        let in_branches = ["allOf", "oneOf", "anyOf", "not"]
            .iter()
            .any(|k| schema.get(*k).is_some_and(has_rules));
        if in_branches {
            return Some(RuleTree {
                own: Some(kube_cel::compile_schema(schema)),
                properties: Vec::new(),
                items: None,
                additional: None,
            });
        }
        let own = schema
            .get(RULES)
            .map(|_| kube_cel::compile_schema(&without_rules_below(schema, true)));
        let props = schema.get("properties").and_then(Value::as_object);
        let properties = props
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), RuleTree::of(v)?)))
            .collect();
        let items = schema.get("items").and_then(RuleTree::of).map(Box::new);
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
        let additional = schema
            .get("additionalProperties")
            .filter(|a| a.is_object() && !preserve)
            .and_then(RuleTree::of)
            .map(|t| {
                let declared = props.into_iter().flatten().map(|(k, _)| k.clone()).collect();
                (Box::new(t), declared)
            });
        Some(RuleTree {
            own,
            properties,
            items,
            additional,
        })
    }

    fn run(
        &self,
        validator: &kube_cel::Validator,
        value: &Value,
        old: Option<&Value>,
        path: &str,
        out: &mut Vec<kube_cel::ValidationError>,
    ) {
        if let Some(own) = &self.own
            && let Err(errors) = validator.validate_compiled(own, value, old)
        {
            out.extend(errors.into_vec().into_iter().map(|mut e| {
                e.field_path = under(path, &e.field_path);
                e
            }));
        }
        if let Some(map) = value.as_object() {
            for (key, tree) in &self.properties {
                if let Some(v) = map.get(key) {
                    tree.run(validator, v, old.and_then(|o| o.get(key)), &join(path, key), out);
                }
            }
            if let Some((tree, declared)) = &self.additional {
                for (key, v) in map.iter().filter(|(k, _)| !declared.contains(k)) {
                    tree.run(validator, v, old.and_then(|o| o.get(key)), &join(path, key), out);
                }
            }
        }
        if let (Some(tree), Some(items)) = (&self.items, value.as_array()) {
            for (i, v) in items.iter().enumerate() {
                let old = old.and_then(Value::as_array).and_then(|o| o.get(i));
                tree.run(validator, v, old, &format!("{path}[{i}]"), out);
            }
        }
    }
}

/// A field path kube-cel gave relative to a node, under the node's path.
fn under(node: &str, rel: &str) -> String {
    if node.is_empty() {
        rel.to_string()
    } else if rel.is_empty() {
        node.to_string()
    } else if rel.starts_with(['.', '[']) {
        format!("{node}{rel}")
    } else {
        format!("{node}.{rel}")
    }
}

/// The schema with the rules of every node below it taken out (its own kept when `top`).
fn without_rules_below(schema: &Value, top: bool) -> Value {
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| top || k.as_str() != RULES)
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "properties" => Value::Object(
                            v.as_object()
                                .into_iter()
                                .flatten()
                                .map(|(name, s)| (name.clone(), without_rules_below(s, false)))
                                .collect(),
                        ),
                        RULES => v.clone(),
                        _ => without_rules_below(v, false),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| without_rules_below(v, false)).collect()),
        other => other.clone(),
    }
}

/// A schema pattern, compiled once per process: a DeviceGroup's 15,000 ids share one pattern.
/// A CRD pattern, compiled once. Shared behind an `Arc`: a cloned `Regex` starts with an empty
/// match cache, which it would build again for every string checked.
fn pattern_regex(pattern: &str) -> Result<std::sync::Arc<regex::Regex>, regex::Error> {
    type Cache = std::collections::HashMap<String, std::sync::Arc<regex::Regex>>;
    static CACHE: std::sync::LazyLock<std::sync::Mutex<Cache>> = std::sync::LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(re) = cache.get(pattern) {
        return Ok(re.clone());
    }
    let re = std::sync::Arc::new(regex::Regex::new(pattern)?);
    cache.insert(pattern.to_string(), re.clone());
    Ok(re)
}

fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k == "x-kubernetes-validations" || has_rules(v)),
        Value::Array(a) => a.iter().any(has_rules),
        _ => false,
    }
}

impl Cel {
    /// Runs the rules on `obj`. On an update, the rules under a top-level field the update left as it
    /// was (the spec, on a status write) are not run: with validation ratcheting (GA in Kubernetes 1.33)
    /// their errors would not fail the update, so skipping them answers the same, and a status write
    /// does not evaluate a thousand audience items' rules.
    fn validate(
        &self,
        schema: &Arc<Value>,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), kube_cel::ValidationErrors> {
        let changed: Option<Vec<String>> = old.map(|old| {
            let keys = obj.as_object().into_iter().flat_map(|o| o.keys());
            keys.filter(|k| obj.get(k.as_str()) != old.get(k.as_str()))
                .cloned()
                .collect()
        });
        let rules = {
            let mut cache = self
                .compiled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match cache
                .iter()
                .find(|c| c.changed == changed && Arc::ptr_eq(&c.schema, schema))
            {
                Some(c) => c.rules.clone(),
                None => {
                    let mut pruned = (**schema).clone();
                    if let (Some(changed), Some(props)) = (
                        &changed,
                        pruned.get_mut("properties").and_then(Value::as_object_mut),
                    ) {
                        props.retain(|k, _| changed.contains(k));
                    }
                    let rules = RuleTree::of(&pruned).map(std::sync::Arc::new);
                    if cache.len() >= CACHED {
                        cache.remove(0);
                    }
                    cache.push(Compiled {
                        schema: Arc::clone(schema),
                        changed,
                        rules: rules.clone(),
                    });
                    rules
                }
            }
        };
        let Some(rules) = rules else {
            return Ok(());
        };
        let mut errors = Vec::new();
        rules.run(&self.validator, obj, old, "", &mut errors);
        match errors.is_empty() {
            true => Ok(()),
            false => Err(errors.into()),
        }
    }
}

impl Cel {
    /// `schema` without the properties `unchanged`, made once per schema and set of fields.
    fn reduced(&self, schema: &Arc<Value>, unchanged: &[String]) -> Arc<Value> {
        let mut cache = self
            .reduced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = cache
            .iter()
            .find(|r| r.unchanged == unchanged && Arc::ptr_eq(&r.schema, schema))
        {
            return Arc::clone(&r.reduced);
        }
        let reduced = Arc::new(schema_without(schema, unchanged));
        if cache.len() >= CACHED {
            cache.remove(0);
        }
        cache.push(Reduced {
            schema: Arc::clone(schema),
            unchanged: unchanged.to_vec(),
            reduced: Arc::clone(&reduced),
        });
        reduced
    }
}

/// On an update, the top-level fields besides `metadata` that the update left as they were, when the
/// schema has no rule at its root (a root rule may read any field, so nothing is set aside then).
fn unchanged_fields(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<String> {
    let (Some(fields), Some(old)) = (obj.as_object(), old) else {
        return Vec::new();
    };
    if schema.get("x-kubernetes-validations").is_some() {
        return Vec::new();
    }
    fields
        .iter()
        .filter(|(k, v)| k.as_str() != "metadata" && old.get(k.as_str()) == Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Takes `fields` out of `obj`, to put back after admission.
fn set_aside(obj: &mut Value, fields: &[String]) -> serde_json::Map<String, Value> {
    let mut kept = serde_json::Map::new();
    if let Some(m) = obj.as_object_mut() {
        for f in fields {
            if let Some(v) = m.remove(f) {
                kept.insert(f.clone(), v);
            }
        }
    }
    kept
}

/// `obj` without `fields` (the others copied).
fn without_fields(obj: &Value, fields: &[String]) -> Value {
    match obj.as_object() {
        Some(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !fields.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => obj.clone(),
    }
}

/// The root schema without the properties `fields` (and without requiring them).
fn schema_without(schema: &Value, fields: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in schema.as_object().into_iter().flatten() {
        let v = match k.as_str() {
            "properties" => without_fields(v, fields),
            "required" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| !r.as_str().is_some_and(|r| fields.iter().any(|f| f == r)))
                    .cloned()
                    .collect(),
            ),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

/// Checks `obj` (and, on update, against `old`) for a type with a schema; returns the object as it
/// is stored (pruned and defaulted). Types without a schema (built-ins) pass unchanged.
pub fn admit(
    validator: &Cel,
    t: &ResourceType,
    obj: Value,
    old: Option<&Value>,
    strict: bool,
) -> Result<Value, ApiError> {
    admit_besides(validator, t, obj, old, strict, &[])
}

/// Whether a type's schema has rules at its root: such a rule may read any field, so an update's
/// unchanged fields cannot be set aside.
pub fn has_root_rules(t: &ResourceType) -> bool {
    t.schema.as_ref().is_some_and(|s| s.get(RULES).is_some())
}

/// [`admit`] for an update whose top-level fields `besides` are left as they were and were taken out of
/// both `obj` and `old` by the caller (a status write changes the stored object in place). Not for a
/// schema with root rules (see [`has_root_rules`]).
pub fn admit_besides(
    validator: &Cel,
    t: &ResourceType,
    obj: Value,
    old: Option<&Value>,
    strict: bool,
    besides: &[String],
) -> Result<Value, ApiError> {
    let Some(full_schema) = &t.schema else {
        return Ok(obj);
    };
    let mut obj = obj;
    // The top-level fields an update left as they were are set aside: stored already pruned, defaulted
    // and checked, they are not walked again (a status write does not walk a thousand audience items);
    // validation ratcheting would not fail them either. They go back unchanged.
    let mut unchanged = unchanged_fields(full_schema, &obj, old);
    unchanged.extend(besides.iter().cloned());
    unchanged.sort();
    unchanged.dedup();
    let kept = set_aside(&mut obj, &unchanged);
    let reduced_old = old.map(|o| without_fields(o, &unchanged));
    let reduced_schema = (!unchanged.is_empty()).then(|| validator.reduced(full_schema, &unchanged));
    let schema: &Value = reduced_schema.as_deref().unwrap_or(full_schema);
    let old = reduced_old.as_ref();
    let mut unknown = Vec::new();
    prune(schema, &mut obj, "", &mut unknown, true);
    if strict && !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect();
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            t.kind,
            t.version,
            t.kind,
            list.join(", ")
        )));
    }
    apply_defaults(schema, &mut obj, 0);
    let old = old.map(|o| {
        let mut o = o.clone();
        apply_defaults(schema, &mut o, 0);
        o
    });
    let old = old.as_ref();
    let mut causes = Vec::new();
    check(schema, &obj, old, "", &mut causes, true);
    // The rules of the whole schema: those under a field set aside are not run (it is absent from both
    // sides, so unchanged).
    if causes.is_empty()
        && let Err(errors) = validator.validate(full_schema, &obj, old)
    {
        for e in errors.into_vec() {
            // Ratcheting: a rule on a value the update left as it was does not fail the update.
            if let Some(old) = &old
                && at_path(&obj, &e.field_path).is_some()
                && at_path(&obj, &e.field_path) == at_path(old, &e.field_path)
            {
                continue;
            }
            causes.push(Cause::new(
                &e.field_path,
                "FieldValueInvalid",
                format!("Invalid value: \"object\": {}", e.message),
            ));
        }
    }
    if causes.is_empty() {
        if let Some(m) = obj.as_object_mut() {
            m.extend(kept);
        }
        return Ok(obj);
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let texts: Vec<String> = causes.iter().map(Cause::text).collect();
    let joined = if texts.len() == 1 {
        texts[0].clone()
    } else {
        format!("[{}]", texts.join(", "))
    };
    let mut err = ApiError::new(
        422,
        "Invalid",
        format!("{}.{} \"{name}\" is invalid: {joined}", t.kind, t.group),
    );
    err.details = Some(json!({
        "name": name,
        "group": t.group,
        "kind": t.kind,
        "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
    }));
    Err(err)
}

/// kube-cel's nesting limit: defaults stop there, as its validators do.
const MAX_SCHEMA_DEPTH: usize = 64;

/// Fills the schema's `default`s into `value` in place, as `kube_cel::apply_defaults` does (missing
/// declared properties get their default; declared properties, map values and list items are walked),
/// without copying the value at each level and without walking lists and maps whose item schema
/// declares no default anywhere (a thousand audience items have none).
fn apply_defaults(schema: &Value, value: &mut Value, depth: usize) {
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    match value {
        Value::Object(obj) => {
            let additional = (!preserves(schema))
                .then(|| schema.get("additionalProperties").filter(|a| a.is_object()))
                .flatten();
            let props = schema.get("properties").and_then(Value::as_object);
            for (key, prop) in props.into_iter().flatten() {
                if !obj.contains_key(key)
                    && let Some(default) = prop.get("default")
                {
                    // A default is inserted as written: kube-cel does not walk into it.
                    obj.insert(key.clone(), default.clone());
                    continue;
                }
                if let Some(v) = obj.get_mut(key) {
                    apply_defaults(prop, v, depth + 1);
                }
            }
            if let Some(add) = additional.filter(|a| declares_default(a)) {
                for (key, v) in obj.iter_mut() {
                    if props.is_none_or(|p| !p.contains_key(key)) {
                        apply_defaults(add, v, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| declares_default(i)) {
                for v in items {
                    apply_defaults(item, v, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Whether a `default` is declared anywhere at or below this schema node.
fn declares_default(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("default") || m.values().any(declares_default),
        Value::Array(a) => a.iter().any(declares_default),
        _ => false,
    }
}

/// The value at a field path such as `spec.audience.members[0]` (empty: the whole object).
fn at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = obj;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = part.split_once('[').map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            v = v.get(key)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            v = v.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(v)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

/// Drops fields the schema does not know (recording their paths) and nulls where null is not allowed.
/// At the root, `apiVersion`, `kind` and `metadata` are the server's, not the schema's.
fn prune(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>, root: bool) {
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child = props.and_then(|p| p.get(&key)).or(additional);
                match child {
                    Some(child) => {
                        if map[&key].is_null() && child["nullable"] != true {
                            map.remove(&key);
                            continue;
                        }
                        if let Some(v) = map.get_mut(&key) {
                            prune(child, v, &join(path, &key), unknown, false);
                        }
                    }
                    None if preserves(schema) => {}
                    None => {
                        map.remove(&key);
                        unknown.push(join(path, &key));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(item, v, &format!("{path}[{i}]"), unknown, false);
                }
            }
        }
        _ => {}
    }
}

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

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10
}

fn is_date_time(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok() && s.len() == 36
}

/// The structural checks, collecting every failure (a real server reports them all at once).
fn check(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    causes: &mut Vec<Cause>,
    root: bool,
) {
    let field = if path.is_empty() { "<root>" } else { path };
    // Ratcheting, as a real server does it: a value an update leaves as it was is not judged again, so
    // an object stored under a looser schema can still get a status or a finalizer.
    if value.is_null() || old == Some(value) {
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_string() || type_name(value) == "integer") {
            causes.push(Cause::new(
                field,
                "FieldValueTypeInvalid",
                format!(
                    "Invalid value: {}: {field} in body must be of type int-or-string: {}",
                    shown(value),
                    shown(value)
                ),
            ));
        }
        return;
    }
    if let Some(want) = schema["type"].as_str() {
        let have = type_name(value);
        let ok = have == want || (want == "number" && have == "integer");
        if !ok {
            causes.push(Cause::new(
                field,
                "FieldValueTypeInvalid",
                format!(
                    "Invalid value: {}: {field} in body must be of type {want}: \"{have}\"",
                    shown(value)
                ),
            ));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        let supported: Vec<String> = options.iter().map(shown).collect();
        causes.push(Cause::new(
            field,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: {}",
                shown(value),
                supported.join(", ")
            ),
        ));
    }
    match value {
        Value::Object(map) => {
            for req in schema["required"].as_array().into_iter().flatten() {
                if let Some(key) = req.as_str()
                    && !map.contains_key(key)
                {
                    causes.push(Cause::new(
                        &join(path, key),
                        "FieldValueRequired",
                        "Required value",
                    ));
                }
            }
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, v) in map {
                if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(child) = props.and_then(|p| p.get(key)).or(additional) {
                    check(
                        child,
                        v,
                        old.and_then(|o| o.get(key)),
                        &join(path, key),
                        causes,
                        false,
                    );
                }
            }
            bounds_of_map(schema, map, field, causes);
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = schema["maxItems"].as_u64()
                && n > max
            {
                causes.push(Cause::new(
                    field,
                    "FieldValueTooMany",
                    format!("Too many: {n}: must have at most {max} items"),
                ));
            }
            if let Some(min) = schema["minItems"].as_u64()
                && n < min
            {
                causes.push(Cause::new(
                    field,
                    "FieldValueInvalid",
                    format!("Invalid value: {n}: {field} in body should have at least {min} items"),
                ));
            }
            unique(schema, items, path, causes);
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(
                        item,
                        v,
                        old.and_then(|o| o.get(i)),
                        &format!("{path}[{i}]"),
                        causes,
                        false,
                    );
                }
            }
        }
        Value::String(s) => {
            let chars = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64()
                && chars > max
            {
                causes.push(Cause::new(
                    field,
                    "FieldValueTooLong",
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = schema["minLength"].as_u64()
                && chars < min
            {
                causes.push(Cause::new(
                    field,
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {field} in body should be at least {min} chars long",
                        shown(value)
                    ),
                ));
            }
            if let Some(pattern) = schema["pattern"].as_str() {
                match pattern_regex(pattern) {
                    Ok(re) if !re.is_match(s) => causes.push(Cause::new(
                        field,
                        "FieldValueInvalid",
                        format!(
                            "Invalid value: {}: {field} in body should match '{pattern}'",
                            shown(value)
                        ),
                    )),
                    Ok(_) => {}
                    Err(e) => causes.push(Cause::new(
                        field,
                        "FieldValueInvalid",
                        format!("bad pattern: {e}"),
                    )),
                }
            }
            let format_ok = match schema["format"].as_str() {
                Some("date") => is_date(s),
                Some("date-time") => is_date_time(s),
                Some("uuid") => is_uuid(s),
                _ => true,
            };
            if !format_ok {
                causes.push(Cause::new(
                    field,
                    "FieldValueTypeInvalid",
                    format!(
                        "Invalid value: {}: {field} in body must be of type {}: {}",
                        shown(value),
                        schema["format"].as_str().unwrap_or(""),
                        shown(value)
                    ),
                ));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema["minimum"].as_f64()
                && x < min
            {
                causes.push(Cause::new(
                    field,
                    "FieldValueInvalid",
                    format!("Invalid value: {n}: {field} in body should be greater than or equal to {min}"),
                ));
            }
            if let Some(max) = schema["maximum"].as_f64()
                && x > max
            {
                causes.push(Cause::new(
                    field,
                    "FieldValueInvalid",
                    format!("Invalid value: {n}: {field} in body should be less than or equal to {max}"),
                ));
            }
        }
        _ => {}
    }
}

fn bounds_of_map(schema: &Value, map: &Map<String, Value>, field: &str, causes: &mut Vec<Cause>) {
    if let Some(max) = schema["maxProperties"].as_u64()
        && map.len() as u64 > max
    {
        causes.push(Cause::new(
            field,
            "FieldValueTooMany",
            format!("Too many: {}: must have at most {max} items", map.len()),
        ));
    }
}

/// `x-kubernetes-list-type: set` (no value twice) and `map` (no key tuple twice).
fn unique(schema: &Value, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    match schema["x-kubernetes-list-type"].as_str() {
        Some("set") => {
            let mut seen = std::collections::HashSet::new();
            for (i, v) in items.iter().enumerate() {
                if !seen.insert(v.to_string()) {
                    causes.push(Cause::new(
                        &format!("{path}[{i}]"),
                        "FieldValueDuplicate",
                        format!("Duplicate value: {}", shown(v)),
                    ));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut seen = std::collections::HashSet::new();
            for (i, v) in items.iter().enumerate() {
                let key: Vec<String> = keys.iter().map(|k| v[*k].to_string()).collect();
                if !seen.insert(key.clone()) {
                    let shown_key: Vec<String> = keys
                        .iter()
                        .zip(&key)
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    causes.push(Cause::new(
                        &format!("{path}[{i}]"),
                        "FieldValueDuplicate",
                        format!(
                            "Duplicate value: map[string]interface {{}}{{{}}}",
                            shown_key.join(", ")
                        ),
                    ));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: Value) -> ResourceType {
        ResourceType {
            group: "wufb.dev".into(),
            version: "v1alpha1".into(),
            plural: "things".into(),
            singular: "thing".into(),
            kind: "Thing".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            status: true,
            printer_columns: vec![],
            schema: Some(Arc::new(schema)),
            view: Default::default(),
        }
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "required": ["mode"],
                    "properties": {
                        "mode": {"type": "string", "enum": ["A", "B"]},
                        "day": {"type": "string", "format": "date"},
                        "n": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 4}, "x-kubernetes-list-type": "set"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    },
                    "x-kubernetes-validations": [{"rule": "self.mode != 'B' || self.n > 5", "message": "mode B needs n above 5"}]
                }
            }
        })
    }

    fn run(obj: Value, strict: bool) -> Result<Value, ApiError> {
        admit(&Cel::default(), &t(schema()), obj, None, strict)
    }

    fn object(spec: Value) -> Value {
        json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "Thing", "metadata": {"name": "x"}, "spec": spec})
    }

    #[test]
    fn a_good_object_is_pruned_and_defaulted() {
        let out = run(
            object(json!({"mode": "A", "extra": 1, "free": {"any": {"thing": 1}}})),
            false,
        )
        .unwrap();
        assert_eq!(
            out["spec"],
            json!({"mode": "A", "n": 3, "free": {"any": {"thing": 1}}})
        );
    }

    #[test]
    fn strict_field_validation_refuses_unknown_fields() {
        let err = run(object(json!({"mode": "A", "extra": 1})), true).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("unknown field \"spec.extra\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn each_structural_failure_names_its_field() {
        let cases = [
            (json!({}), "spec.mode: Required value"),
            (
                json!({"mode": "C"}),
                "spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\"",
            ),
            (
                json!({"mode": 1}),
                "spec.mode: Invalid value: 1: spec.mode in body must be of type string: \"integer\"",
            ),
            (
                json!({"mode": "A", "day": "2024-13-01"}),
                "spec.day: Invalid value: \"2024-13-01\": spec.day in body must be of type date",
            ),
            (
                json!({"mode": "A", "n": 11}),
                "spec.n: Invalid value: 11: spec.n in body should be less than or equal to 10",
            ),
            (
                json!({"mode": "A", "n": -1}),
                "spec.n in body should be greater than or equal to 0",
            ),
            (
                json!({"mode": "A", "tags": ["a", "b", "c"]}),
                "spec.tags: Too many: 3: must have at most 2 items",
            ),
            (
                json!({"mode": "A", "tags": ["toolong"]}),
                "spec.tags[0]: Too long: may not be more than 4 bytes",
            ),
            (
                json!({"mode": "A", "tags": ["a", "a"]}),
                "spec.tags[1]: Duplicate value: \"a\"",
            ),
            (
                json!({"mode": "B"}),
                "spec: Invalid value: \"object\": mode B needs n above 5",
            ),
        ];
        for (spec, want) in cases {
            let err = run(object(spec.clone()), false).unwrap_err();
            assert_eq!(err.code, 422, "{spec}");
            assert!(
                err.message.starts_with("Thing.wufb.dev \"x\" is invalid: "),
                "{}",
                err.message
            );
            assert!(err.message.contains(want), "{spec}: {}", err.message);
            let causes = err.details.as_ref().unwrap()["causes"]
                .as_array()
                .unwrap()
                .clone();
            assert!(!causes.is_empty());
        }
        // Every failure at once, as a list.
        let err = run(object(json!({"mode": "C", "n": 11})), false).unwrap_err();
        assert!(
            err.message.contains(": [spec.mode: Unsupported value"),
            "{}",
            err.message
        );
    }

    /// Defaults land where kube-cel's walk puts them: on every published CRD's schema, and on a schema
    /// with defaults in list items, map values, nested objects and beside preserved fields.
    #[test]
    fn defaults_in_place_match_kube_cel() {
        let mut schemas: Vec<Value> = [
            include_str!("../../../crds/expediteddeployments.wufb.dev.yaml"),
            include_str!("../../../crds/devicegroups.wufb.dev.yaml"),
            include_str!("../../../crds/graphconnections.wufb.dev.yaml"),
            include_str!("../../../crds/clustergraphconnections.wufb.dev.yaml"),
        ]
        .iter()
        .map(|y| {
            let crd: Value = serde_yaml::from_str(y).unwrap();
            crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
        })
        .collect();
        schemas.push(json!({"type": "object", "properties": {
            "a": {"type": "string", "default": "x"},
            "list": {"type": "array", "items": {"type": "object", "properties": {
                "n": {"type": "integer", "default": 3},
                "inner": {"type": "object", "default": {"k": 1}, "properties": {"k": {"type": "integer"}, "d": {"type": "string", "default": "deep"}}}}}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"on": {"type": "boolean", "default": true}}}},
            "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "additionalProperties": {"type": "object", "properties": {"z": {"default": 1}}}},
            "plain": {"type": "array", "items": {"type": "string"}}}}));
        let id = "00000000-0000-4000-8000-000000000001";
        let objects = [
            json!({}),
            json!({"spec": {}}),
            json!({"spec": {"audience": {"members": [{"device": id}, {"device": id.to_uppercase()}]}, "content": {"latest": true}, "rollout": {"waves": [{"name": "a"}, {"name": "b", "gate": {}}]}}, "status": {"conditions": []}}),
            json!({"spec": {"tenantId": "t", "clientId": "c", "secretRef": {"name": "s"}, "cloud": null}}),
            json!({"a": "set", "list": [{}, {"n": 1}, {"inner": {}}, {"inner": {"k": 2, "d": "kept"}}, "odd"], "map": {"x": {}, "y": {"on": false}}, "open": {"q": {}}, "plain": ["p"]}),
            json!({"list": [], "map": {}, "open": null}),
        ];
        let mut compared = 0;
        for schema in &schemas {
            for obj in &objects {
                let want = kube_cel::apply_defaults(schema, obj);
                let mut have = obj.clone();
                apply_defaults(schema, &mut have, 0);
                assert_eq!(have, want, "{obj}");
                compared += 1;
            }
        }
        assert_eq!(compared, 30);
        // The synthetic schema does default: the comparison is not between two untouched copies.
        let mut have = objects[4].clone();
        apply_defaults(&schemas[4], &mut have, 0);
        assert_eq!(have["list"][0], json!({"n": 3, "inner": {"k": 1}}));
        assert_eq!(have["list"][2]["inner"]["d"], "deep");
        assert_eq!(have["map"]["x"]["on"], true);
    }

    /// The rules run node by node give what kube-cel's walk of the whole schema gives: the same
    /// failures at the same paths, on the published ExpeditedDeployment schema, with rules failing in
    /// audience members and exclusions, the content, and a wave's gate and members.
    #[test]
    fn node_by_node_rules_fail_as_the_whole_schema_walk_does() {
        let crd: Value =
            serde_yaml::from_str(include_str!("../../../crds/expediteddeployments.wufb.dev.yaml")).unwrap();
        let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        let id = "00000000-0000-4000-8000-000000000001";
        let two = json!({"device": id, "assetGroupId": "g"});
        let spec = |audience: Value, content: Value, waves: Value| {
            json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
                   "metadata": {"name": "x"},
                   "spec": {"audience": audience, "content": content, "rollout": {"waves": waves}}})
        };
        let good_waves = json!([{"name": "a", "members": [{"device": id}], "gate": {"wait": "1h"}}]);
        let cases = [
            spec(
                json!({"members": [{"device": id}]}),
                json!({"latest": true}),
                good_waves.clone(),
            ),
            spec(
                json!({"members": [{"device": id}, two, {}], "exclusions": [two]}),
                json!({"latest": true}),
                good_waves.clone(),
            ),
            spec(
                json!({"members": [{"device": id}]}),
                json!({"latest": true, "releaseDate": "2026-01-13", "refresh": "Daily"}),
                good_waves.clone(),
            ),
            spec(
                json!({"members": [{"device": id}]}),
                json!({"releaseDate": "2026-01-13", "refresh": "Daily"}),
                json!([{"name": "a", "members": [{"device": id}, two], "gate": {"wait": "91d"}},
                       {"name": "b", "members": [{}], "gate": {"wait": "2h"}}]),
            ),
        ];
        let cel = Cel::default();
        let shared = Arc::new(schema.clone());
        let reference = kube_cel::Validator::new();
        let sorted = |r: Result<(), kube_cel::ValidationErrors>| {
            let mut v: Vec<(String, String, String)> = r
                .err()
                .map(kube_cel::ValidationErrors::into_vec)
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.field_path, e.message, e.rule))
                .collect();
            v.sort();
            v
        };
        let mut failures = 0;
        for obj in &cases {
            let want = sorted(reference.validate(&schema, obj, None));
            let have = sorted(cel.validate(&shared, obj, None));
            assert_eq!(have, want, "{obj}");
            failures += want.len();
            // On an update (oldSelf bound, by index as kube-cel pairs list items) too.
            let old = &cases[0];
            let want = sorted(reference.validate(&schema, obj, Some(old)));
            let have = sorted(cel.validate(&shared, obj, Some(old)));
            assert_eq!(have, want, "update to {obj}");
        }
        assert!(failures >= 7, "the cases fail rules at every depth: {failures}");
    }

    #[test]
    fn an_update_that_leaves_an_invalid_value_as_it_was_passes() {
        let v = Cel::default();
        let ty = t(schema());
        // Stored under a looser schema: an unsupported mode and a rule that fails.
        let stored = object(json!({"mode": "B", "n": 1, "day": "2024-13-01"}));
        let mut with_status = stored.clone();
        with_status["status"] = json!({"seen": true});
        assert!(
            admit(&v, &ty, with_status, Some(&stored), false).is_ok(),
            "spec unchanged"
        );
        // Changing the invalid value is judged.
        let changed = object(json!({"mode": "B", "n": 2, "day": "2024-13-01"}));
        let err = admit(&v, &ty, changed, Some(&stored), false).unwrap_err();
        assert!(err.message.contains("mode B needs n above 5"), "{}", err.message);
        assert!(
            !err.message.contains("spec.day"),
            "the unchanged day is ratcheted: {}",
            err.message
        );
    }

    /// A status write does not walk the unchanged spec again (it was admitted when stored), but the
    /// status it changes is checked, and the spec comes back as stored.
    #[test]
    fn a_status_write_sets_the_unchanged_spec_aside_and_checks_the_status() {
        let mut with_status = schema();
        with_status["properties"]["status"] = json!({
            "type": "object",
            "properties": {"count": {"type": "integer", "minimum": 0}}
        });
        let ty = t(with_status);
        let v = Cel::default();
        // Stored with a spec the schema would now change (an unknown field, a default not applied).
        let mut stored = object(json!({"mode": "A", "legacy": true}));
        stored["status"] = json!({"count": 1});
        let mut update = stored.clone();
        update["status"]["count"] = json!(2);
        let out = admit(&v, &ty, update, Some(&stored), false).unwrap();
        assert_eq!(out["spec"], stored["spec"], "the spec as stored");
        assert_eq!(out["status"]["count"], 2);
        let mut bad = stored.clone();
        bad["status"]["count"] = json!(-1);
        let err = admit(&v, &ty, bad, Some(&stored), false).unwrap_err();
        assert!(err.message.contains("status.count"), "{}", err.message);
        // A changed spec is admitted whole again: pruned and defaulted.
        let mut changed = stored.clone();
        changed["spec"]["mode"] = json!("B");
        changed["spec"]["n"] = json!(7);
        let out = admit(&v, &ty, changed, Some(&stored), false).unwrap();
        assert_eq!(out["spec"], json!({"mode": "B", "n": 7}));
    }

    #[test]
    fn built_in_types_pass_unchanged() {
        let mut plain = t(schema());
        plain.schema = None;
        let obj = json!({"anything": true});
        assert_eq!(
            admit(&Cel::default(), &plain, obj.clone(), None, true).unwrap(),
            obj
        );
    }
}
