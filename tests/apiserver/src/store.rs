//! Objects, the global resourceVersion, the bounded watch history, and every write rule: generation,
//! status isolation, finalizer-aware delete, resourceVersion preconditions and the patch types.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::types::ResourceType;

/// A Kubernetes `Status` failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(t: &ResourceType, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", t.qualified()),
            details: Some(json!({"name": name, "group": t.group, "kind": t.plural})),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn status(&self) -> Value {
        let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": self.message, "reason": self.reason, "code": self.code});
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// A change, as watchers see it: the object's JSON (serialized once, when it was stored) and what
/// selectors read, not the object itself, so the stored version is the only one kept and a status
/// write changes it in place.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    /// When the write happened (a watch delay counts from it).
    pub at: std::time::Instant,
    pub type_key: String,
    pub namespace: String,
    pub kind: &'static str,
    /// What watch selectors read of the object: its name, namespace and labels.
    pub selectable: Value,
    /// The object as JSON, serialized once when it was stored: its size is checked on it, the write's
    /// answer sends it and every watch line carries it.
    pub json: Bytes,
    line: OnceLock<Bytes>,
}

impl Change {
    /// The watch event line (`{"type":…,"object":…}` and a newline).
    pub fn line(&self) -> Bytes {
        self.line
            .get_or_init(|| {
                let head = format!("{{\"type\":\"{}\",\"object\":", self.kind);
                let mut line = Vec::with_capacity(head.len() + self.json.len() + 2);
                line.extend_from_slice(head.as_bytes());
                line.extend_from_slice(&self.json);
                line.extend_from_slice(b"}\n");
                Bytes::from(line)
            })
            .clone()
    }
}

/// One watch event line, serialized straight from the object (no copy of it).
pub fn event_line(kind: &str, object: &Value) -> Bytes {
    #[derive(Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    let mut line = serde_json::to_vec(&Event { kind, object }).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// How a patch body is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Apply,
}

type Key = (String, String, String);

/// Who writes: the field manager (the `fieldManager` parameter, else the user agent's product) and,
/// for server-side apply, whether conflicts are forced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub manager: String,
    pub force: bool,
    /// `fieldValidation=Strict`: an unknown field is refused rather than pruned.
    pub strict: bool,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            manager: "unknown".into(),
            force: false,
            strict: false,
        }
    }
}

/// The largest object etcd stores (its default request limit, 1.5 MiB).
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;
/// The most bytes of annotations (keys and values) an object may carry.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;
/// The longest Event note events.k8s.io/v1 accepts, and the longest reason and action.
pub const MAX_EVENT_NOTE: usize = 1024;
pub const MAX_EVENT_REASON: usize = 128;

/// How a write changes field ownership.
enum Ownership<'a> {
    /// Any write but an apply: the writer owns what it set.
    Update(&'a Writer),
    /// An apply already computed the new ownership (and whether it asked for strict field validation).
    Set(crate::fields::Managed, bool),
}

impl Ownership<'_> {
    fn strict(&self) -> bool {
        match self {
            Ownership::Update(w) => w.strict,
            Ownership::Set(_, strict) => *strict,
        }
    }
}

/// A list's pages: the objects as of the first page, so that the pages add up to one consistent list.
struct Snapshot {
    id: u64,
    rv: u64,
    items: Arc<Vec<Arc<Value>>>,
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Arc<Value>>,
    pub rv: u64,
    /// The token for the next page, and how many items remain after this page.
    pub next: Option<(String, usize)>,
}

pub struct Store {
    pub types: Vec<ResourceType>,
    objects: BTreeMap<Key, Arc<Value>>,
    pub rv: u64,
    pub history: VecDeque<Arc<Change>>,
    /// The newest resourceVersion whose event was dropped from the history (watching from before it
    /// answers 410 Expired).
    pub compacted: u64,
    history_limit: usize,
    pub tx: broadcast::Sender<Arc<Change>>,
    /// Field ownership per object (rendered into `metadata.managedFields`).
    managed: BTreeMap<Key, crate::fields::Managed>,
    /// Lists being paged through (the newest few; an older token answers 410).
    snapshots: VecDeque<Snapshot>,
    next_snapshot: u64,
    /// Evaluates the CRDs' CEL rules.
    cel: crate::schema::Cel,
    /// Custom resources are checked against their schema (on by default).
    pub schema_checks: bool,
}

pub fn type_key(t: &ResourceType) -> String {
    format!("{}/{}", t.group, t.plural)
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Whether two objects differ in anything but metadata and status: such a change bumps the generation.
fn spec_differs(a: &Value, b: &Value) -> bool {
    const SKIP: [&str; 4] = ["metadata", "status", "apiVersion", "kind"];
    let empty = Map::new();
    let (a, b) = (a.as_object().unwrap_or(&empty), b.as_object().unwrap_or(&empty));
    let keys = |m: &Map<String, Value>| m.keys().filter(|k| !SKIP.contains(&k.as_str())).count();
    keys(a) != keys(b)
        || a.iter()
            .filter(|(k, _)| !SKIP.contains(&k.as_str()))
            .any(|(k, v)| b.get(k) != Some(v))
}

/// Metadata fields whose ownership is tracked (the rest is the server's).
const OWNED_METADATA: [&str; 3] = ["labels", "annotations", "finalizers"];

/// The part of an object whose fields are owned: for the status subresource its status; for the main
/// resource everything but status and server metadata (metadata narrowed to labels, annotations and
/// finalizers).
fn owned_view(obj: &Value, status: bool) -> Value {
    let mut view = Map::new();
    if status {
        if let Some(st) = obj.get("status").filter(|s| !s.is_null()) {
            view.insert("status".into(), st.clone());
        }
        return Value::Object(view);
    }
    for (k, v) in obj.as_object().into_iter().flatten() {
        if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") && !v.is_null() {
            view.insert(k.clone(), v.clone());
        }
    }
    if let Some(m) = owned_metadata(obj) {
        view.insert("metadata".into(), m);
    }
    Value::Object(view)
}

/// [`owned_view`] of the main resource, with its fields moved out of `obj` (metadata's owned fields
/// copied: they stay where they are); [`give_back`] returns them.
fn take_owned_view(obj: &mut Value) -> Value {
    let mut view = Map::new();
    if let Some(o) = obj.as_object_mut() {
        let keys: Vec<String> = o
            .iter()
            .filter(|(k, v)| {
                !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") && !v.is_null()
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(v) = o.remove(&k) {
                view.insert(k, v);
            }
        }
    }
    if let Some(m) = owned_metadata(obj) {
        view.insert("metadata".into(), m);
    }
    Value::Object(view)
}

/// Puts back the fields [`take_owned_view`] took.
fn give_back(obj: &mut Value, view: Value) {
    if let (Some(o), Value::Object(view)) = (obj.as_object_mut(), view) {
        for (k, v) in view {
            if k != "metadata" {
                o.insert(k, v);
            }
        }
    }
}

/// The owned views of an update's before and after, less the top-level parts (and owned metadata
/// fields) it left as they were. An update gives its manager the fields it changes and takes away the
/// fields it removes; within an unchanged part neither happens, so ownership comes out as from the
/// whole views, without copying an unchanged thousand-item spec twice for a finalizer or status write.
fn changed_views(old: &Value, new: &Value, status: bool) -> (Value, Value) {
    if status {
        if old.get("status") == new.get("status") {
            return (json!({}), json!({}));
        }
        return (owned_view(old, true), owned_view(new, true));
    }
    let present = |obj: &Value, k: &str| obj.get(k).filter(|v| !v.is_null()).cloned();
    let (mut before, mut after) = (Map::new(), Map::new());
    let keys: std::collections::BTreeSet<&String> = [old, new]
        .iter()
        .flat_map(|o| o.as_object().into_iter().flatten().map(|(k, _)| k))
        .filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
        .collect();
    for k in keys {
        let (a, b) = (old.get(k.as_str()), new.get(k.as_str()));
        if a.filter(|v| !v.is_null()) == b.filter(|v| !v.is_null()) {
            continue;
        }
        if let Some(v) = present(old, k) {
            before.insert(k.clone(), v);
        }
        if let Some(v) = present(new, k) {
            after.insert(k.clone(), v);
        }
    }
    // Metadata's owned fields are few and small: taken whole when any of them changed.
    let (metadata_before, metadata_after) = (owned_metadata(old), owned_metadata(new));
    if metadata_before != metadata_after {
        if let Some(m) = metadata_before {
            before.insert("metadata".into(), m);
        }
        if let Some(m) = metadata_after {
            after.insert("metadata".into(), m);
        }
    }
    (Value::Object(before), Value::Object(after))
}

/// The owned metadata fields of an object (labels, annotations, finalizers), if it has any.
fn owned_metadata(obj: &Value) -> Option<Value> {
    let mut m = Map::new();
    for f in OWNED_METADATA {
        if let Some(v) = obj["metadata"].get(f).filter(|v| !v.is_null()) {
            m.insert(f.into(), v.clone());
        }
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// `current` with its owned part replaced by `view`.
fn from_view(current: &Value, view: &Value, status: bool) -> Value {
    let mut out = current.clone();
    let Some(o) = out.as_object_mut() else {
        return out;
    };
    if status {
        match view.get("status") {
            Some(st) => {
                o.insert("status".into(), st.clone());
            }
            None => {
                o.remove("status");
            }
        }
        return out;
    }
    o.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
    for (k, v) in view.as_object().into_iter().flatten() {
        if k != "metadata" {
            o.insert(k.clone(), v.clone());
        }
    }
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in OWNED_METADATA {
            match view.get("metadata").and_then(|vm| vm.get(f)) {
                Some(v) => {
                    m.insert(f.into(), v.clone());
                }
                None => {
                    m.remove(f);
                }
            }
        }
    }
    out
}

fn scope_of(views: &[&Value]) -> Vec<String> {
    let mut keys: Vec<String> = views
        .iter()
        .flat_map(|v| v.as_object().into_iter().flatten().map(|(k, _)| k.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Drops what a real server normalises away: empty finalizers, labels and annotations; and folds a
/// Secret's write-only `stringData` into its `data` (base64), as a real server stores it.
fn normalise(obj: &mut Value) {
    if obj["kind"] == "Secret"
        && obj["apiVersion"] == "v1"
        && let Some(o) = obj.as_object_mut()
        && let Some(Value::Object(strings)) = o.remove("stringData")
    {
        use base64::Engine;
        let data = o.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in strings {
                let text = v.as_str().unwrap_or_default().to_string();
                data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
            }
        }
    }
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in OWNED_METADATA {
            let empty = match m.get(f) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                m.remove(f);
            }
        }
    }
}

/// Why a name is not one the type accepts: namespaces take an RFC 1123 label (63 characters), everything
/// else here an RFC 1123 subdomain (253), as a real server's name validation asks.
fn name_problem(t: &ResourceType, name: &str) -> Option<String> {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if t.plural == "namespaces" {
        return (!label(name)).then(|| {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
        });
    }
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    (!name.split('.').all(label)).then(|| {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()
    })
}

/// The limits a real server enforces on what it stores, but its size (`Store::seal` checks that).
fn check_limits(t: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let annotations: usize = obj["metadata"]["annotations"]
        .as_object()
        .map(|a| {
            a.iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    if annotations > MAX_ANNOTATION_BYTES {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "{} \"{}\" is invalid: metadata.annotations: Too long: must have at most {MAX_ANNOTATION_BYTES} bytes",
                t.kind,
                meta_str(obj, "name").unwrap_or("")
            ),
        ));
    }
    if t.group == "events.k8s.io" {
        let long = |field: &str, max: usize| obj[field].as_str().is_some_and(|v| v.len() > max);
        for (field, max) in [
            ("note", MAX_EVENT_NOTE),
            ("reason", MAX_EVENT_REASON),
            ("action", MAX_EVENT_REASON),
        ] {
            if long(field, max) {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "Event.events.k8s.io is invalid: {field}: Too long: may not be more than {max} bytes"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `obj` with resourceVersion `rv`, serialized, if it is within the limits (see `Store::seal`).
fn sealed(t: &ResourceType, obj: &mut Value, rv: u64) -> Result<Bytes, ApiError> {
    check_limits(t, obj)?;
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    let json = serde_json::to_vec(&*obj).unwrap_or_default();
    if json.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::new(
            500,
            "InternalError",
            "etcdserver: request is too large",
        ));
    }
    Ok(Bytes::from(json))
}

/// The 409 of a write whose resourceVersion precondition no longer holds.
fn conflict(t: &ResourceType, name: &str) -> ApiError {
    ApiError {
        code: 409,
        reason: "Conflict",
        message: format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            t.qualified()
        ),
        details: Some(json!({"name": name, "group": t.group, "kind": t.plural})),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(history_limit.max(16));
        Store {
            types: ResourceType::builtins(),
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            compacted: 0,
            history_limit: history_limit.max(1),
            tx,
            managed: BTreeMap::new(),
            snapshots: VecDeque::new(),
            next_snapshot: 1,
            cel: crate::schema::Cel::default(),
            schema_checks: true,
        }
    }

    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .map(|t| {
                // Made once on the stored type, so each request's copy shares it.
                t.view_schema();
                t.clone()
            })
    }

    /// Registers (or re-registers) the types of a CRD.
    pub fn register_crd(&mut self, crd: &Value) -> Result<(), ApiError> {
        for t in ResourceType::from_crd(crd).map_err(ApiError::bad_request)? {
            self.types
                .retain(|o| !(o.group == t.group && o.version == t.version && o.plural == t.plural));
            self.types.push(t);
        }
        Ok(())
    }

    fn emit(&mut self, t: &ResourceType, kind: &'static str, object: &Value, json: Bytes) {
        let mut metadata = Map::new();
        for f in ["name", "namespace", "labels"] {
            if let Some(v) = object["metadata"].get(f) {
                metadata.insert(f.into(), v.clone());
            }
        }
        let change = Arc::new(Change {
            rv: self.rv,
            at: std::time::Instant::now(),
            type_key: type_key(t),
            namespace: meta_str(object, "namespace").unwrap_or("").to_string(),
            kind,
            selectable: json!({ "metadata": metadata }),
            json,
            line: OnceLock::new(),
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        let _ = self.tx.send(change);
    }

    /// Drops every retained event (tests use it to force 410 Expired).
    pub fn compact(&mut self) {
        self.snapshots.clear();
        self.compacted = self.rv;
        self.history.clear();
    }

    /// Gives an object about to be stored its resourceVersion and serializes it, once: the size limit is
    /// checked on those bytes, which the watch lines and the write's answer then carry. Too large, it
    /// is refused and the resourceVersion is not used.
    fn seal(&mut self, t: &ResourceType, obj: &mut Value) -> Result<Bytes, ApiError> {
        let json = sealed(t, obj, self.rv + 1)?;
        self.rv += 1;
        Ok(json)
    }

    /// The JSON of `obj` if it is the object the latest write stored (what that write answers with).
    pub fn stored_json(&self, obj: &Value) -> Option<Bytes> {
        let rv = meta_str(obj, "resourceVersion")?;
        self.history
            .back()
            .filter(|c| c.rv.to_string() == rv)
            .map(|c| c.json.clone())
    }

    pub fn get(&self, t: &ResourceType, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.objects
            .get(&(type_key(t), ns.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(t, name))
    }

    /// A page of a list: the first `limit` matching objects, or the next ones of a list begun before
    /// (`cont`), as of when that list began. A token older than the newest few lists (or than a
    /// compaction) answers 410 Expired, as an expired continue token does.
    pub fn list_page(
        &mut self,
        t: &ResourceType,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> Result<Page, ApiError> {
        let (snapshot, offset) = match cont {
            Some(token) => {
                let (id, offset) = token
                    .split_once(':')
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<usize>().ok()?)))
                    .ok_or_else(|| ApiError::bad_request("the continue token is malformed"))?;
                let s = self.snapshots.iter().find(|s| s.id == id).ok_or_else(|| {
                    ApiError::new(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    )
                })?;
                ((s.id, s.rv, s.items.clone()), offset)
            }
            None => {
                let items: Vec<Arc<Value>> = self.list(t, ns).into_iter().filter(|o| keep(o)).collect();
                let id = self.next_snapshot;
                ((id, self.rv, Arc::new(items)), 0)
            }
        };
        let (id, rv, items) = snapshot;
        let end = limit.map_or(items.len(), |l| (offset + l.max(1)).min(items.len()));
        let page: Vec<Arc<Value>> = items[offset.min(items.len())..end].to_vec();
        let next = (end < items.len()).then(|| (format!("{id}:{end}"), items.len() - end));
        if next.is_some() && cont.is_none() {
            self.next_snapshot += 1;
            self.snapshots.push_back(Snapshot { id, rv, items });
            while self.snapshots.len() > 16 {
                self.snapshots.pop_front();
            }
        }
        Ok(Page {
            items: page,
            rv,
            next,
        })
    }

    /// Objects of a type, in one namespace or all, in (namespace, name) order.
    pub fn list(&self, t: &ResourceType, ns: Option<&str>) -> Vec<Arc<Value>> {
        let key = type_key(t);
        self.objects
            .iter()
            .filter(|((k, n, _), _)| *k == key && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn create(&mut self, t: &ResourceType, ns: &str, body: Value) -> Result<Arc<Value>, ApiError> {
        self.create_as(t, ns, body, &Writer::default())
    }

    /// Creates an object written by `writer` (who then owns its fields).
    pub fn create_as(
        &mut self,
        t: &ResourceType,
        ns: &str,
        body: Value,
        writer: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        self.create_owned(t, ns, body, writer, false)
    }

    fn create_owned(
        &mut self,
        t: &ResourceType,
        ns: &str,
        body: Value,
        writer: &Writer,
        applied: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let Value::Object(_) = body else {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        };
        let mut obj = body;
        if let Some(bns) = meta_str(&obj, "namespace").filter(|b| !b.is_empty())
            && t.namespaced
            && bns != ns
        {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object ({bns}) does not match the namespace sent on the request ({ns})"
            )));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let name = match meta_str(&obj, "name").filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => match meta_str(&obj, "generateName") {
                Some(prefix) => format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..5]),
                None => {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!("{} is invalid: metadata.name: Required value", t.kind),
                    ));
                }
            },
        };
        if let Some(problem) = name_problem(t, &name) {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": {problem}",
                    t.kind
                ),
            ));
        }
        let key = (
            type_key(t),
            if t.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.clone(),
        );
        if self.objects.contains_key(&key) {
            return Err(ApiError {
                code: 409,
                reason: "AlreadyExists",
                message: format!("{} \"{name}\" already exists", t.qualified()),
                details: Some(json!({"name": name, "group": t.group, "kind": t.plural})),
            });
        }
        let m = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        m.insert("name".into(), json!(name));
        if t.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("resourceVersion");
        if t.status {
            m.insert("generation".into(), json!(1));
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        obj["apiVersion"] = json!(t.api_version());
        obj["kind"] = json!(t.kind);
        normalise(&mut obj);
        if self.schema_checks {
            obj = crate::schema::admit(&self.cel, t, obj, None, writer.strict)?;
        }
        let mut managed = crate::fields::Managed::default();
        // The owned view takes the object's fields for the moment it is read (moved, not copied: a
        // thousand-item spec is not cloned to be walked once) and gives them back after.
        let view = take_owned_view(&mut obj);
        let schema = t.view_schema();
        let scope = scope_of(&[&view]);
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        managed.update(
            &json!({}),
            &view,
            &scope,
            Some(schema),
            &writer.manager,
            "",
            (&t.api_version(), &now()),
        );
        give_back(&mut obj, view);
        if applied {
            // An apply that creates the object owns what it sent as an apply.
            for e in &mut managed.entries {
                e.operation = "Apply";
            }
        }
        if !managed.entries.is_empty() {
            obj["metadata"]["managedFields"] = managed.render();
        }
        if t.plural == "customresourcedefinitions" {
            // Served at once: the real server sets these conditions within a second of the create.
            let names = obj["spec"]["names"].clone();
            let at = now();
            obj["status"] = json!({
                "acceptedNames": names,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": at},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": at},
                ],
                "storedVersions": obj["spec"]["versions"].as_array().into_iter().flatten()
                    .filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>(),
            });
        }
        let json = self.seal(t, &mut obj)?;
        let obj = Arc::new(obj);
        self.managed.insert(key.clone(), managed);
        self.objects.insert(key, obj.clone());
        self.emit(t, "ADDED", &obj, json);
        if t.plural == "customresourcedefinitions" {
            self.register_crd(&obj)?;
        }
        Ok(obj)
    }

    /// Writes a new full object (from PUT or a patch): resourceVersion precondition, status isolation,
    /// generation, finalizer rules, and removal of a deleting object left without finalizers.
    pub fn update(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        new: Value,
        status_only: bool,
        writer: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        self.update_owned(t, ns, name, new, status_only, Ownership::Update(writer))
    }

    fn update_owned(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        mut new: Value,
        status_only: bool,
        ownership: Ownership<'_>,
    ) -> Result<Arc<Value>, ApiError> {
        let ns = if t.namespaced { ns } else { "" };
        let key = (type_key(t), ns.to_string(), name.to_string());
        if status_only && !crate::schema::has_root_rules(t) {
            return self.update_status(t, key, name, new, ownership);
        }
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(t, name))?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(conflict(t, name));
        }
        let mut merged;
        if status_only {
            merged = (*old).clone();
            match new.as_object_mut().and_then(|o| o.remove("status")) {
                Some(s) if !s.is_null() => merged["status"] = s,
                _ => {
                    if let Some(o) = merged.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        } else {
            merged = new;
            // Server-managed metadata keeps its stored values.
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
                "name",
                "namespace",
            ] {
                match old["metadata"].get(field) {
                    Some(v) => merged["metadata"][field] = v.clone(),
                    None => {
                        if let Some(m) = merged["metadata"].as_object_mut() {
                            m.remove(field);
                        }
                    }
                }
            }
            if t.status {
                match old.get("status") {
                    Some(s) => merged["status"] = s.clone(),
                    None => {
                        if let Some(o) = merged.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            merged["apiVersion"] = json!(t.api_version());
            merged["kind"] = json!(t.kind);
        }
        let deleting = meta_str(&old, "deletionTimestamp").is_some();
        if deleting {
            let before = finalizers(&old);
            if let Some(added) = finalizers(&merged).into_iter().find(|f| !before.contains(f)) {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]",
                        t.kind
                    ),
                ));
            }
        }
        if self.schema_checks {
            merged = crate::schema::admit(&self.cel, t, merged, Some(&old), ownership.strict())?;
        }
        if t.status && !status_only && spec_differs(&old, &merged) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            merged["metadata"]["generation"] = json!(g + 1);
        }
        normalise(&mut merged);
        // Field ownership: what the server records, never what the client sent.
        let managed = self.ownership_after(t, &key, ownership, (&old, &merged), status_only);
        match merged["metadata"].as_object_mut() {
            Some(meta) if !managed.entries.is_empty() => {
                meta.insert("managedFields".into(), managed.render());
            }
            Some(meta) => {
                meta.remove("managedFields");
            }
            None => {}
        }
        if merged == *old {
            return Ok(old);
        }
        let json = self.seal(t, &mut merged)?;
        let merged = Arc::new(merged);
        if deleting && finalizers(&merged).is_empty() {
            self.objects.remove(&key);
            self.managed.remove(&key);
            self.emit(t, "DELETED", &merged, json);
            return Ok(merged);
        }
        self.managed.insert(key.clone(), managed);
        self.objects.insert(key, merged.clone());
        self.emit(t, "MODIFIED", &merged, json);
        Ok(merged)
    }

    /// The object's field ownership after a write: what an apply worked out, or, for an update, the
    /// writer's fields moved to it from the parts the write changed.
    fn ownership_after(
        &self,
        t: &ResourceType,
        key: &Key,
        ownership: Ownership<'_>,
        (old, new): (&Value, &Value),
        status_only: bool,
    ) -> crate::fields::Managed {
        match ownership {
            Ownership::Set(m, _) => m,
            Ownership::Update(writer) => {
                let mut m = self.managed.get(key).cloned().unwrap_or_default();
                let (before, after) = changed_views(old, new, status_only);
                let scope = scope_of(&[&before, &after]);
                let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
                let sub = if status_only { "status" } else { "" };
                m.update(
                    &before,
                    &after,
                    &scope,
                    Some(t.view_schema()),
                    &writer.manager,
                    sub,
                    (&t.api_version(), &now()),
                );
                m
            }
        }
    }

    /// A status write (an update, or an apply whose ownership is worked out). Only the status, and the
    /// managed fields with it, change: they are admitted and owned on a copy of the small parts
    /// (metadata and status) and then set on the stored object in place, copied first only if a reader
    /// still holds it; the spec beside them is neither copied nor walked (it was admitted when stored).
    fn update_status(
        &mut self,
        t: &ResourceType,
        key: Key,
        name: &str,
        mut new: Value,
        ownership: Ownership<'_>,
    ) -> Result<Arc<Value>, ApiError> {
        let stored = self
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found(t, name))?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        let mut small = Map::new();
        let mut besides = Vec::new();
        for (k, v) in stored.as_object().into_iter().flatten() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
                small.insert(k.clone(), v.clone());
            } else {
                besides.push(k.clone());
            }
        }
        let old = Value::Object(small);
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(conflict(t, name));
        }
        let mut merged = old.clone();
        match new.as_object_mut().and_then(|o| o.remove("status")) {
            Some(s) if !s.is_null() => merged["status"] = s,
            _ => {
                if let Some(o) = merged.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        if self.schema_checks {
            let strict = ownership.strict();
            merged = crate::schema::admit_besides(&self.cel, t, merged, Some(&old), strict, &besides)?;
        }
        normalise(&mut merged);
        let managed = self.ownership_after(t, &key, ownership, (&old, &merged), true);
        if let Some(meta) = merged["metadata"].as_object_mut() {
            if managed.entries.is_empty() {
                meta.remove("managedFields");
            } else {
                meta.insert("managedFields".into(), managed.render());
            }
        }
        let Some(slot) = self.objects.get_mut(&key) else {
            return Err(ApiError::not_found(t, name));
        };
        if merged == old {
            return Ok(slot.clone());
        }
        let obj = Arc::make_mut(slot);
        let Some(o) = obj.as_object_mut() else {
            return Err(ApiError::bad_request("the stored object is not a JSON object"));
        };
        let set = |o: &mut Map<String, Value>, from: &Value| {
            for k in ["metadata", "status"] {
                match from.get(k) {
                    Some(v) => o.insert(k.into(), v.clone()),
                    None => o.remove(k),
                };
            }
        };
        set(o, &merged);
        let json = match sealed(t, obj, self.rv + 1) {
            Ok(json) => json,
            Err(e) => {
                if let Some(o) = obj.as_object_mut() {
                    set(o, &old);
                }
                return Err(e);
            }
        };
        self.rv += 1;
        let obj = slot.clone();
        self.managed.insert(key, managed);
        self.emit(t, "MODIFIED", &obj, json);
        Ok(obj)
    }

    /// Applies a patch. Server-side apply creates a missing object.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchType,
        patch: Value,
        status_only: bool,
        writer: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        if kind == PatchType::Apply {
            let sent = patch["apiVersion"].as_str().unwrap_or("");
            if sent != t.api_version() {
                return Err(ApiError::bad_request(format!(
                    "Incorrect version specified in apply patch. Specified patch version: {sent}, expected: {}",
                    t.api_version()
                )));
            }
            if patch["kind"].as_str() != Some(t.kind.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Incorrect kind specified in apply patch: {}, expected: {}",
                    patch["kind"], t.kind
                )));
            }
            if patch["metadata"]["managedFields"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
            {
                return Err(ApiError::bad_request("metadata.managedFields must be nil"));
            }
        }
        let current = match self.get(t, if t.namespaced { ns } else { "" }, name) {
            Ok(c) => c,
            Err(_) if kind == PatchType::Apply && !status_only => {
                let mut body = patch;
                if !body["metadata"].is_object() {
                    body["metadata"] = json!({});
                }
                body["metadata"]["name"] = json!(name);
                return self.create_owned(t, ns, body, writer, true);
            }
            Err(e) => return Err(e),
        };
        if kind == PatchType::Apply {
            return self.apply(t, ns, name, current, patch, status_only, writer);
        }
        if status_only && kind != PatchType::Json {
            // Only the status (and a resourceVersion precondition) counts on the status subresource, so
            // the patch is merged into a copy of the status alone, not of the whole object.
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut status = current.get("status").cloned().unwrap_or(Value::Null);
            if let Some(p) = patch.get("status") {
                json_patch::merge(&mut status, p);
            }
            let mut new = json!({ "status": status });
            if let Some(rv) = patch.pointer("/metadata/resourceVersion") {
                new["metadata"] = json!({ "resourceVersion": rv });
            }
            // Let go of the stored object, so the status write can change it in place.
            drop(current);
            return self.update(t, ns, name, new, true, writer);
        }
        let mut target = (*current).clone();
        match kind {
            PatchType::Merge | PatchType::Apply => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                json_patch::merge(&mut target, &patch);
            }
            PatchType::Json => {
                let ops = patch
                    .as_array()
                    .ok_or_else(|| ApiError::bad_request("a JSON patch must be an array of operations"))?;
                // kube-apiserver treats an absent path as null in `test`; the json-patch crate does not.
                let mut rest = Vec::new();
                for op in ops {
                    let is_null_test = op["op"] == "test" && op["value"].is_null();
                    if is_null_test {
                        let path = op["path"].as_str().unwrap_or("");
                        match target.pointer(path) {
                            None | Some(Value::Null) => continue,
                            Some(_) => {
                                return Err(ApiError::new(
                                    422,
                                    "Invalid",
                                    format!("the test operation on {path} failed"),
                                ));
                            }
                        }
                    }
                    rest.push(op.clone());
                }
                let parsed: json_patch::Patch = serde_json::from_value(Value::Array(rest))
                    .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
                json_patch::patch(&mut target, &parsed)
                    .map_err(|e| ApiError::new(422, "Invalid", format!("the JSON patch failed: {e}")))?;
            }
        }
        self.update(t, ns, name, target, status_only, writer)
    }

    /// Server-side apply: fields the manager stops applying go unless another manager owns them; list
    /// types are honoured; a field another manager owns with another value is a conflict unless forced.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        current: Arc<Value>,
        patch: Value,
        status_only: bool,
        writer: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        let key = (
            type_key(t),
            if t.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let mut managed = self.managed.get(&key).cloned().unwrap_or_default();
        let applied = owned_view(&patch, status_only);
        let before = owned_view(&current, status_only);
        let scope = scope_of(&[&applied]);
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        let sub = if status_only { "status" } else { "" };
        let view = managed
            .apply(
                &before,
                &applied,
                &scope,
                Some(t.view_schema()),
                &writer.manager,
                sub,
                writer.force,
                (&t.api_version(), &now()),
            )
            .map_err(|c| ApiError {
                code: 409,
                reason: "Conflict",
                message: format!(
                    "Apply failed with 1 conflict: conflict with \"{}\": {}",
                    c.manager, c.path
                ),
                details: None,
            })?;
        // A status write reads only the status (and a resourceVersion precondition) of what it is given.
        let mut target = if status_only {
            owned_view(&view, true)
        } else {
            from_view(&current, &view, false)
        };
        if let Some(rv) = patch.pointer("/metadata/resourceVersion") {
            target["metadata"]["resourceVersion"] = rv.clone();
        }
        // Let go of the stored object, so a status write can change it in place.
        drop(current);
        self.update_owned(
            t,
            ns,
            name,
            target,
            status_only,
            Ownership::Set(managed, writer.strict),
        )
    }

    /// Deletes an object, or marks it deleting while finalizers remain.
    pub fn delete(&mut self, t: &ResourceType, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        let ns = if t.namespaced { ns } else { "" };
        let key = (type_key(t), ns.to_string(), name.to_string());
        let stored = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(t, name))?;
        if meta_str(&stored, "deletionTimestamp").is_some() && !finalizers(&stored).is_empty() {
            return Ok(stored);
        }
        let mut obj = (*stored).clone();
        if finalizers(&obj).is_empty() {
            self.objects.remove(&key);
            self.managed.remove(&key);
            let json = self.seal(t, &mut obj)?;
            let obj = Arc::new(obj);
            self.emit(t, "DELETED", &obj, json);
            return Ok(obj);
        }
        obj["metadata"]["deletionTimestamp"] = json!(now());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if t.status {
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        let json = self.seal(t, &mut obj)?;
        let obj = Arc::new(obj);
        self.objects.insert(key, obj.clone());
        self.emit(t, "MODIFIED", &obj, json);
        Ok(obj)
    }
}

/// One label-selector requirement.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Parses `labelSelector`.
pub fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, ApiError> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let set = |op: &str| -> Option<(String, Vec<String>)> {
            let (k, rest) = p.split_once(op)?;
            let vals = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            Some((
                k.trim().to_string(),
                vals.split(',').map(|v| v.trim().to_string()).collect(),
            ))
        };
        let req = if let Some((k, v)) = set(" notin ") {
            LabelReq::NotIn(k, v)
        } else if let Some((k, v)) = set(" in ") {
            LabelReq::In(k, v)
        } else if let Some((k, v)) = p.split_once("!=") {
            LabelReq::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            LabelReq::Eq(k.trim().into(), v.trim().into())
        } else if let Some(k) = p.strip_prefix('!') {
            LabelReq::NotExists(k.trim().into())
        } else if p.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
            LabelReq::Exists(p.into())
        } else {
            return Err(ApiError::bad_request(format!("unable to parse requirement: {p}")));
        };
        out.push(req);
    }
    Ok(out)
}

pub fn labels_match(obj: &Value, reqs: &[LabelReq]) -> bool {
    let labels: Map<String, Value> = obj["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
        LabelReq::Ne(k, v) => get(k) != Some(v.as_str()),
        LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        LabelReq::Exists(k) => get(k).is_some(),
        LabelReq::NotExists(k) => get(k).is_none(),
    })
}

/// Parses `fieldSelector`: only `metadata.name` and `metadata.namespace`, with `=`, `==` or `!=`.
pub fn parse_field_selector(s: &str) -> Result<Vec<(String, bool, String)>, ApiError> {
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, eq, value) = if let Some((f, v)) = p.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            (f, true, v)
        } else {
            return Err(ApiError::bad_request(format!("invalid field selector: {p}")));
        };
        let field = field.trim();
        if value.contains(['=', '!']) {
            return Err(ApiError::bad_request(format!("invalid field selector: {p}")));
        }
        if field != "metadata.name" && field != "metadata.namespace" {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
        out.push((field.to_string(), eq, value.trim().to_string()));
    }
    Ok(out)
}

pub fn fields_match(obj: &Value, reqs: &[(String, bool, String)]) -> bool {
    reqs.iter().all(|(field, eq, value)| {
        let actual = meta_str(obj, field.trim_start_matches("metadata.")).unwrap_or("");
        (actual == value) == *eq
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Managed;

    fn update(m: &Managed, before: &Value, after: &Value, manager: &str, status: bool) -> Managed {
        let mut m = m.clone();
        let scope = scope_of(&[before, after]);
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        let sub = if status { "status" } else { "" };
        m.update(before, after, &scope, None, manager, sub, ("v1", "t"));
        m
    }

    /// The view a create takes out of its object is the owned view, and the object is whole again after.
    #[test]
    fn a_taken_view_is_the_owned_view_and_goes_back() {
        let obj = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "x", "labels": {"a": "b"}, "uid": "u"},
                         "spec": {"list": ["d1", "d2"]}, "extra": 1, "gone": null, "status": {"s": 1}});
        let mut taken = obj.clone();
        let view = take_owned_view(&mut taken);
        assert_eq!(view, owned_view(&obj, false));
        assert!(taken.get("spec").is_none(), "moved, not copied");
        give_back(&mut taken, view);
        assert_eq!(taken, obj);
    }

    /// Ownership after an update made from the changed parts alone is what the whole owned views give,
    /// over a chain of writes by several managers that change, keep and remove spec fields, owned
    /// metadata and the status.
    #[test]
    fn changed_views_own_fields_as_whole_views_do() {
        let objects = [
            json!({"metadata": {"name": "x"}, "spec": {"a": 1, "list": ["d1", "d2"]}}),
            json!({"metadata": {"name": "x", "finalizers": ["f"]}, "spec": {"a": 1, "list": ["d1", "d2"]}}),
            json!({"metadata": {"name": "x", "finalizers": ["f"]}, "spec": {"a": 1, "list": ["d1", "d2"]}, "status": {"s": "one"}}),
            json!({"metadata": {"name": "x", "finalizers": ["f"], "labels": {"l": "v"}}, "spec": {"a": 2, "list": ["d1", "d2"], "b": true}, "status": {"s": "one"}}),
            json!({"metadata": {"name": "x", "labels": {"l": "v"}}, "spec": {"list": ["d3"]}, "status": {"s": "two", "t": 3}}),
            json!({"metadata": {"name": "x", "labels": {"l": "v"}}, "spec": {"list": ["d3"]}, "extra": {"e": null}, "status": null}),
            json!({"metadata": {"name": "x"}, "spec": null, "extra": {"e": 1}}),
        ];
        let managers = ["apply-bot", "operator", "kubectl"];
        let (mut whole, mut changed) = (Managed::default(), Managed::default());
        let (mut steps, mut most_managers) = (0, 0);
        for (i, pair) in objects.windows(2).enumerate() {
            for status in [false, true] {
                let (old, new) = (&pair[0], &pair[1]);
                let manager = managers[(i + usize::from(status)) % managers.len()];
                whole = update(
                    &whole,
                    &owned_view(old, status),
                    &owned_view(new, status),
                    manager,
                    status,
                );
                let (before, after) = changed_views(old, new, status);
                changed = update(&changed, &before, &after, manager, status);
                assert_eq!(changed, whole, "step {i}, status {status}");
                steps += 1;
                most_managers = most_managers.max(whole.entries.len());
            }
        }
        assert_eq!(steps, 12);
        // Ownership was shared along the way: the chain exercised more than one entry.
        assert!(most_managers >= 3, "{most_managers}");
    }
}
