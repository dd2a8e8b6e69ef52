//! Field ownership, as server-side apply keeps it: which manager owns which fields of an object, per
//! operation (`Apply` or `Update`) and subresource, and what an apply does with fields a manager stops
//! applying. A minimal, honest version of kube-apiserver's structured merge:
//!
//! - A field set holds leaf paths. Objects recurse; lists follow the schema's
//!   `x-kubernetes-list-type`: `atomic` (the default) is one leaf, `set` has one leaf per value, `map`
//!   has one entry per key (`x-kubernetes-list-map-keys`) and recurses into it.
//! - Apply by manager M: the fields M applied before and no longer applies are removed from the object,
//!   unless another manager entry (including M's own `Update` entry) owns them too; the applied config is
//!   merged in (atomic lists replaced, set and map lists merged by value and key); M's `Apply` entry
//!   becomes exactly the applied fields; with `force`, other managers lose the fields M applied, and
//!   without it, a field another manager owns with a different value is a conflict.
//! - Any other write (create, update, merge and JSON patches) records the fields whose values it set
//!   under (manager, `Update`), and takes them from every other entry.
//!
//! Entries are rendered into `metadata.managedFields` in the `FieldsV1` form.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// An object member.
    Field(String),
    /// A `map` list item, by its key fields (a JSON object of them).
    Key(String),
    /// A `set` list item, by its value (JSON).
    Value(String),
}

pub type Path = Vec<Step>;
pub type FieldSet = BTreeSet<Path>;

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// The schema node at `schema` for a member or an item.
fn member<'a>(schema: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    schema?.get("properties")?.get(name)
}

fn items(schema: Option<&Value>) -> Option<&Value> {
    schema?.get("items")
}

fn list_type(schema: Option<&Value>) -> ListType {
    let Some(s) = schema else {
        return ListType::Atomic;
    };
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            s.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

fn key_of(item: &Value, keys: &[String]) -> String {
    let mut k = Map::new();
    for name in keys {
        k.insert(name.clone(), item.get(name).cloned().unwrap_or(Value::Null));
    }
    Value::Object(k).to_string()
}

/// The leaf fields of `value` (under `prefix`), by the schema's list types.
pub fn fields(value: &Value, schema: Option<&Value>, prefix: &mut Path, out: &mut FieldSet) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                prefix.push(Step::Field(k.clone()));
                fields(v, member(schema, k), prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => match list_type(schema) {
            ListType::Atomic => {
                out.insert(prefix.clone());
            }
            ListType::Set => {
                for item in a {
                    prefix.push(Step::Value(item.to_string()));
                    out.insert(prefix.clone());
                    prefix.pop();
                }
            }
            ListType::Map(keys) => {
                for item in a {
                    prefix.push(Step::Key(key_of(item, &keys)));
                    out.insert(prefix.clone());
                    fields(item, items(schema), prefix, out);
                    prefix.pop();
                }
            }
        },
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The value at `path`, if there is one.
pub fn get<'a>(value: &'a Value, path: &[Step], schema: Option<&Value>) -> Option<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    match first {
        Step::Field(k) => get(value.get(k)?, rest, member(schema, k)),
        Step::Key(key) => {
            let ListType::Map(keys) = list_type(schema) else {
                return None;
            };
            let item = value.as_array()?.iter().find(|i| key_of(i, &keys) == *key)?;
            get(item, rest, items(schema))
        }
        Step::Value(v) => value.as_array()?.iter().find(|i| i.to_string() == *v),
    }
}

/// Merges an applied configuration into `target`: objects member by member, `set` and `map` lists by
/// value and key, anything else replaced.
pub fn merge(target: &mut Value, applied: &Value, schema: Option<&Value>) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, v) in a {
                let s = member(schema, k);
                match t.get_mut(k) {
                    Some(existing) if !v.is_null() => merge(existing, v, s),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t @ Value::Array(_), Value::Array(a)) => match list_type(schema) {
            ListType::Atomic => *t = Value::Array(a.clone()),
            ListType::Set => {
                if let Value::Array(list) = t {
                    let mut present: std::collections::HashSet<String> =
                        list.iter().map(Value::to_string).collect();
                    for item in a {
                        if present.insert(item.to_string()) {
                            list.push(item.clone());
                        }
                    }
                }
            }
            ListType::Map(keys) => {
                if let Value::Array(list) = t {
                    let mut at: std::collections::HashMap<String, usize> = list
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (key_of(x, &keys), i))
                        .collect();
                    for item in a {
                        let key = key_of(item, &keys);
                        match at.get(&key) {
                            Some(&i) => merge(&mut list[i], item, items(schema)),
                            None => {
                                at.insert(key, list.len());
                                list.push(item.clone());
                            }
                        }
                    }
                }
            }
        },
        (t, a) => *t = a.clone(),
    }
}

/// The leaf fields of `new` whose values differ from `old` (absent in `old` counts), in one walk.
fn changed_fields(
    old: Option<&Value>,
    new: &Value,
    schema: Option<&Value>,
    prefix: &mut Path,
    out: &mut FieldSet,
) {
    match new {
        Value::Object(m) if !m.is_empty() => {
            let o = old.and_then(Value::as_object);
            for (k, v) in m {
                prefix.push(Step::Field(k.clone()));
                changed_fields(o.and_then(|o| o.get(k)), v, member(schema, k), prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => match list_type(schema) {
            ListType::Atomic => {
                if old != Some(new) {
                    out.insert(prefix.clone());
                }
            }
            ListType::Set => {
                let before: std::collections::HashSet<String> = old
                    .and_then(Value::as_array)
                    .map(|l| l.iter().map(Value::to_string).collect())
                    .unwrap_or_default();
                for item in a {
                    let text = item.to_string();
                    if !before.contains(&text) {
                        prefix.push(Step::Value(text));
                        out.insert(prefix.clone());
                        prefix.pop();
                    }
                }
            }
            ListType::Map(keys) => {
                let before: std::collections::HashMap<String, &Value> = old
                    .and_then(Value::as_array)
                    .map(|l| l.iter().map(|i| (key_of(i, &keys), i)).collect())
                    .unwrap_or_default();
                for item in a {
                    let key = key_of(item, &keys);
                    let was = before.get(&key).copied();
                    prefix.push(Step::Key(key));
                    if was.is_none() {
                        out.insert(prefix.clone());
                    }
                    changed_fields(was, item, items(schema), prefix, out);
                    prefix.pop();
                }
            }
        },
        _ => {
            if old != Some(new) {
                out.insert(prefix.clone());
            }
        }
    }
}

/// Removes from `value` every field in `drop`, walking the value once.
fn prune(value: &mut Value, schema: Option<&Value>, prefix: &mut Path, drop: &FieldSet) {
    match value {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                prefix.push(Step::Field(k.clone()));
                if drop.contains(prefix) {
                    m.remove(&k);
                } else if let Some(child) = m.get_mut(&k) {
                    prune(child, member(schema, &k), prefix, drop);
                    if child.as_object().is_some_and(Map::is_empty) {
                        m.remove(&k);
                    }
                }
                prefix.pop();
            }
        }
        Value::Array(a) => match list_type(schema) {
            ListType::Atomic => {}
            ListType::Set => a.retain(|item| {
                prefix.push(Step::Value(item.to_string()));
                let keep = !drop.contains(prefix);
                prefix.pop();
                keep
            }),
            ListType::Map(keys) => {
                a.retain(|item| {
                    prefix.push(Step::Key(key_of(item, &keys)));
                    let keep = !drop.contains(prefix);
                    prefix.pop();
                    keep
                });
                for item in a.iter_mut() {
                    prefix.push(Step::Key(key_of(item, &keys)));
                    prune(item, items(schema), prefix, drop);
                    prefix.pop();
                }
            }
        },
        _ => {}
    }
}

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: &'static str,
    /// Empty for the main resource.
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

/// The ownership of one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Managed {
    pub entries: Vec<Entry>,
}

/// Why an apply is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub path: String,
}

pub fn describe(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Field(f) => format!(".{f}"),
            Step::Key(k) => format!("[{k}]"),
            Step::Value(v) => format!("[={v}]"),
        })
        .collect()
}

impl Managed {
    fn entry_mut(&mut self, manager: &str, operation: &'static str, subresource: &str) -> &mut Entry {
        let i =
            match self.entries.iter().position(|e| {
                e.manager == manager && e.operation == operation && e.subresource == subresource
            }) {
                Some(i) => i,
                None => {
                    self.entries.push(Entry {
                        manager: manager.into(),
                        operation,
                        subresource: subresource.into(),
                        api_version: String::new(),
                        time: String::new(),
                        fields: FieldSet::new(),
                    });
                    self.entries.len() - 1
                }
            };
        &mut self.entries[i]
    }

    fn owned_elsewhere(&self, manager: &str, operation: &str, subresource: &str, path: &Path) -> bool {
        self.entries.iter().any(|e| {
            !(e.manager == manager && e.operation == operation && e.subresource == subresource)
                && e.fields.contains(path)
        })
    }

    /// Applies `applied` (the fields under `scope`, e.g. `status` for the status subresource) to
    /// `current` as manager `manager`; returns the new object.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        current: &Value,
        applied: &Value,
        scope: &[&str],
        schema: Option<&Value>,
        manager: &str,
        subresource: &str,
        force: bool,
        stamp: (&str, &str),
    ) -> Result<Value, Conflict> {
        let mut new_fields = FieldSet::new();
        for part in scope {
            if let Some(v) = applied.get(*part) {
                let mut prefix = vec![Step::Field((*part).to_string())];
                fields(v, member(schema, part), &mut prefix, &mut new_fields);
            }
        }
        if !force {
            for e in self
                .entries
                .iter()
                .filter(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource))
            {
                for path in e.fields.intersection(&new_fields) {
                    let theirs = get(current, path, schema);
                    let ours = get(applied, path, schema);
                    if theirs.is_some() && theirs != ours {
                        return Err(Conflict {
                            manager: e.manager.clone(),
                            path: describe(path),
                        });
                    }
                }
            }
        }
        let before = self
            .entries
            .iter()
            .find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let mut object = current.clone();
        // Fields no longer applied, and owned by nobody else, go.
        let dropped: FieldSet = before
            .difference(&new_fields)
            .filter(|p| !self.owned_elsewhere(manager, "Apply", subresource, p))
            .cloned()
            .collect();
        if !dropped.is_empty() {
            prune(&mut object, schema, &mut Vec::new(), &dropped);
        }
        for part in scope {
            if let Some(v) = applied.get(*part) {
                match object.get_mut(*part) {
                    Some(existing) => merge(existing, v, member(schema, part)),
                    None => object[*part] = v.clone(),
                }
            }
        }
        if force {
            for e in &mut self.entries {
                if !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource) {
                    e.fields.retain(|p| !new_fields.contains(p));
                }
            }
        }
        let entry = self.entry_mut(manager, "Apply", subresource);
        entry.fields = new_fields;
        entry.api_version = stamp.0.into();
        entry.time = stamp.1.into();
        self.entries.retain(|e| !e.fields.is_empty());
        Ok(object)
    }

    /// Records an update (any write but an apply) as manager `manager`: it owns the fields whose values
    /// it set; fields it removed are nobody's.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        old: &Value,
        new: &Value,
        scope: &[&str],
        schema: Option<&Value>,
        manager: &str,
        subresource: &str,
        stamp: (&str, &str),
    ) {
        let mut after = FieldSet::new();
        for part in scope {
            let mut prefix = vec![Step::Field((*part).to_string())];
            if let Some(v) = new.get(*part) {
                fields(v, member(schema, part), &mut prefix, &mut after);
            }
        }
        let mut changed = FieldSet::new();
        for part in scope {
            let mut prefix = vec![Step::Field((*part).to_string())];
            if let Some(v) = new.get(*part) {
                changed_fields(old.get(*part), v, member(schema, part), &mut prefix, &mut changed);
            }
        }
        let in_scope = |p: &Path| matches!(p.first(), Some(Step::Field(f)) if scope.contains(&f.as_str()));
        for e in &mut self.entries {
            // Within the write's scope, gone fields are nobody's and changed ones are the writer's;
            // fields outside it (the status, for a main-resource write) are untouched.
            e.fields
                .retain(|p| !in_scope(p) || (after.contains(p) && !changed.contains(p)));
        }
        if !changed.is_empty() {
            let entry = self.entry_mut(manager, "Update", subresource);
            entry.fields.extend(changed);
            entry.api_version = stamp.0.into();
            entry.time = stamp.1.into();
        }
        self.entries.retain(|e| !e.fields.is_empty());
    }

    /// The entries as `metadata.managedFields` shows them.
    pub fn render(&self) -> Value {
        Value::Array(
            self.entries
                .iter()
                .map(|e| {
                    let mut v = json!({
                        "manager": e.manager,
                        "operation": e.operation,
                        "apiVersion": e.api_version,
                        "time": e.time,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": fields_v1(&e.fields),
                    });
                    if !e.subresource.is_empty() {
                        v["subresource"] = json!(e.subresource);
                    }
                    v
                })
                .collect(),
        )
    }
}

/// The `FieldsV1` trie of a field set: `f:name`, `k:{…}`, `v:…`, leaves `{}`, and `.` for a node that is
/// owned itself and has owned children.
fn fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        owned: bool,
        children: BTreeMap<String, Node>,
    }
    fn render(node: &Node) -> Value {
        let mut m = Map::new();
        if node.owned && !node.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, child) in &node.children {
            m.insert(k.clone(), render(child));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for step in path {
            let name = match step {
                Step::Field(f) => format!("f:{f}"),
                Step::Key(k) => format!("k:{k}"),
                Step::Value(v) => format!("v:{v}"),
            };
            node = node.children.entry(name).or_default();
        }
        node.owned = true;
    }
    render(&root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_schema() -> Value {
        json!({"properties": {"status": {"properties": {
            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"], "items": {}},
            "deviceErrors": {"type": "array"},
            "tags": {"type": "array", "x-kubernetes-list-type": "set"},
        }}}})
    }

    #[test]
    fn a_field_a_manager_stops_applying_is_removed_unless_someone_else_owns_it() {
        let schema = status_schema();
        let mut m = Managed::default();
        let stamp = ("wufb.dev/v1alpha1", "t");
        let obj = json!({"status": {}});
        let a1 = json!({"status": {"deviceErrors": [1], "graphState": "offering", "deploymentId": "d1"}});
        let obj = m
            .apply(&obj, &a1, &["status"], Some(&schema), "op", "status", true, stamp)
            .unwrap();
        // Another writer's Update entry co-owns deploymentId.
        let mut merged = obj.clone();
        merged["status"]["deploymentId"] = json!("d1");
        merged["status"]["note"] = json!("x");
        m.update(
            &obj,
            &merged,
            &["status"],
            Some(&schema),
            "other",
            "status",
            stamp,
        );
        let a2 = json!({"status": {"graphState": "paused"}});
        let after = m
            .apply(
                &merged,
                &a2,
                &["status"],
                Some(&schema),
                "op",
                "status",
                true,
                stamp,
            )
            .unwrap();
        assert!(
            after["status"].get("deviceErrors").is_none(),
            "dropped by its only owner: {after}"
        );
        assert_eq!(after["status"]["graphState"], "paused");
        assert_eq!(after["status"]["note"], "x", "another manager's field stays");
        assert!(
            after["status"].get("deploymentId").is_none(),
            "only the applier owned deploymentId (the update did not change it): {after}"
        );
    }

    #[test]
    fn map_lists_merge_by_key_and_set_lists_by_value() {
        let schema = status_schema();
        let mut m = Managed::default();
        let stamp = ("v", "t");
        let obj = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Custom", "status": "True"}]}});
        m.update(
            &json!({}),
            &obj,
            &["status"],
            Some(&schema),
            "admin",
            "status",
            stamp,
        );
        let applied = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "tags": ["a"]}});
        let after = m
            .apply(
                &obj,
                &applied,
                &["status"],
                Some(&schema),
                "op",
                "status",
                true,
                stamp,
            )
            .unwrap();
        let conds = after["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 2, "the admin's condition stays: {after}");
        assert!(
            conds
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        );
        let fv1 = m.render();
        assert!(
            fv1.to_string().contains("k:{\\\"type\\\":\\\"Ready\\\"}"),
            "{fv1}"
        );
    }

    #[test]
    fn without_force_another_managers_field_is_a_conflict() {
        let schema = json!({});
        let mut m = Managed::default();
        let stamp = ("v", "t");
        let obj = json!({"spec": {"paused": true}});
        m.update(
            &json!({}),
            &obj,
            &["spec"],
            Some(&schema),
            "kubectl-edit",
            "",
            stamp,
        );
        let err = m
            .apply(
                &obj,
                &json!({"spec": {"paused": false}}),
                &["spec"],
                Some(&schema),
                "kubectl",
                "",
                false,
                stamp,
            )
            .unwrap_err();
        assert_eq!(err.manager, "kubectl-edit");
        assert!(
            m.apply(
                &obj,
                &json!({"spec": {"paused": false}}),
                &["spec"],
                Some(&schema),
                "kubectl",
                "",
                true,
                stamp
            )
            .is_ok()
        );
    }
}
