//! HTTP routing: discovery, the generic resource handlers and chunked watches.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::store::{
    ApiError, Change, PatchType, Store, Writer, event_line, fields_match, labels_match, parse_field_selector,
    parse_label_selector, type_key,
};
use crate::table::table;
use crate::types::{ResourceType, api_group_list, api_resource_list, api_versions};

pub struct Shared {
    pub store: Mutex<Store>,
    /// Bearer tokens and what they may do; empty: no authentication.
    pub tokens: Vec<(String, crate::Access)>,
    pub addr: String,
    /// Default watch timeout when the client gives none.
    pub watch_timeout: Duration,
    /// How long after a write its watch event is delivered (a real server's watch cache lags).
    pub watch_delay: Duration,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Set when the server stops: every open watch ends at once.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// What access reviews deny (everything else is allowed).
    pub denials: Mutex<Vec<crate::Denial>>,
    /// The (major, minor) `/version` reports.
    pub version: Mutex<(u32, u32)>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_bytes_response(code: u16, json: Bytes) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}

fn error(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

fn not_found_path(path: &str) -> Response {
    error(&ApiError::new(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
    ))
}

/// A parsed resource request.
struct Target {
    t: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_target(store: &Store, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if !matches!(*plural, "status" | "finalize") => {
            (Some(ns.to_string()), {
                let mut v = vec![*plural];
                v.extend_from_slice(more);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(*s)),
        _ => return None,
    };
    let t = store.find_type(group, version, plural)?;
    if namespace.is_some() && !t.namespaced {
        return None;
    }
    match sub {
        None => Some(Target {
            t,
            namespace,
            name,
            status: false,
        }),
        Some("status") => Some(Target {
            t,
            namespace,
            name,
            status: true,
        }),
        Some(_) => None,
    }
}

pub async fn handle(
    State(st): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if !st.tokens.is_empty() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match st.tokens.iter().find(|(t, _)| Some(t.as_str()) == presented) {
            None => return error(&ApiError::new(401, "Unauthorized", "Unauthorized")),
            Some((_, crate::Access::Discovery))
                if !matches!(path.as_str(), "/version" | "/api" | "/apis") =>
            {
                return error(&ApiError::new(
                    403,
                    "Forbidden",
                    format!("forbidden: the user may not {method} {path}"),
                ));
            }
            Some(_) => {}
        }
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if let Err(e) = check_query(uri.query(), &query) {
        return error(&e);
    }
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => {
            let (major, minor) = *st.version.lock().unwrap_or_else(|e| e.into_inner());
            return json_response(
                200,
                &json!({"major": major.to_string(), "minor": minor.to_string(), "gitVersion": format!("v{major}.{minor}.0"), "platform": "linux/amd64", "goVersion": "go1.22"}),
            );
        }
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            kind @ ("subjectaccessreviews" | "selfsubjectaccessreviews"),
        ] if method == Method::POST => {
            return access_review(&st, kind, &body);
        }
        ["api"] => return json_response(200, &api_versions(&st.addr)),
        ["apis"] => return json_response(200, &api_group_list(&st.lock().types)),
        ["openapi", "v3"] => return json_response(200, &crate::openapi::root(&st.lock().types)),
        ["openapi", "v3", "api", v] => {
            return crate::openapi::group_version(&st.lock().types, "", v)
                .map_or_else(|| not_found_path(&path), |d| json_response(200, &d));
        }
        ["openapi", "v3", "apis", g, v] => {
            return crate::openapi::group_version(&st.lock().types, g, v)
                .map_or_else(|| not_found_path(&path), |d| json_response(200, &d));
        }
        ["openapi", ..] => return not_found_path(&path),
        ["api", "v1"] => {
            return api_resource_list(&st.lock().types, "", "v1")
                .map_or_else(|| not_found_path(&path), |v| json_response(200, &v));
        }
        ["apis", g, v] => {
            return api_resource_list(&st.lock().types, g, v)
                .map_or_else(|| not_found_path(&path), |v| json_response(200, &v));
        }
        ["api", "v1", "namespaces", ns, "events"] if method == Method::GET => {
            return core_events(&st, Some(ns), &query);
        }
        ["api", "v1", "events"] if method == Method::GET => return core_events(&st, None, &query),
        ["api", "v1", rest @ ..] => ("", "v1", rest.to_vec()),
        ["apis", g, v, rest @ ..] => (*g, *v, rest.to_vec()),
        _ => return not_found_path(&path),
    };
    let Some(target) = parse_target(&st.lock(), group, version, &rest) else {
        return not_found_path(&path);
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let wants_table = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("protobuf") {
        return error(&ApiError::new(
            415,
            "UnsupportedMediaType",
            "this test API server reads JSON request bodies only, not protobuf",
        ));
    }
    if body.len() > MAX_REQUEST_BYTES {
        return error(&ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {MAX_REQUEST_BYTES}"),
        ));
    }
    // The field manager: the parameter, else the user agent's product, as the real server takes it.
    let writer = Writer {
        manager: query.get("fieldManager").cloned().unwrap_or_else(|| {
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|m| !m.is_empty())
                .unwrap_or("unknown")
                .to_string()
        }),
        force: query.get("force").is_some_and(|f| f == "true"),
        strict: query.get("fieldValidation").is_some_and(|f| f == "Strict"),
    };
    let parse_body = || -> Result<Value, ApiError> {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    };
    // A write answers with the JSON it stored (serialized once, as its watch lines carry it).
    let mut stored: Option<Bytes> = None;
    let result: Result<(u16, Arc<Value>), ApiError> = match (method.clone(), &target.name) {
        (Method::GET, None) => {
            if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
                return watch(st.clone(), target, &query);
            }
            list(&st, &target, &query, wants_table).map(|(c, v)| (c, Arc::new(v)))
        }
        (Method::POST, None) => parse_body().and_then(|b| {
            let mut store = st.lock();
            let created = store.create_as(&target.t, &ns, b, &writer)?;
            stored = store.stored_json(&created);
            Ok((201, created))
        }),
        (Method::GET, Some(name)) => st.lock().get(&target.t, &ns, name).map(|o| {
            if wants_table {
                (
                    200,
                    Arc::new(table(
                        &target.t,
                        std::slice::from_ref(&*o),
                        o["metadata"]["resourceVersion"].as_str().unwrap_or(""),
                    )),
                )
            } else {
                (200, o)
            }
        }),
        (Method::PUT, Some(name)) => parse_body().and_then(|b| {
            let mut store = st.lock();
            let o = store.update(&target.t, &ns, name, b, target.status, &writer)?;
            stored = store.stored_json(&o);
            Ok((200, o))
        }),
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = match content_type.split(';').next().unwrap_or("").trim() {
                "application/merge-patch+json" => Ok(PatchType::Merge),
                "application/json-patch+json" => Ok(PatchType::Json),
                "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
                other => Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other})"
                    ),
                )),
            };
            let kind = kind.and_then(|k| match k {
                PatchType::Apply if query.get("fieldManager").is_none_or(|m| m.is_empty()) => Err(ApiError::new(
                    400,
                    "BadRequest",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                )),
                k => Ok(k),
            });
            kind.and_then(|k| {
                parse_body().and_then(|b| {
                    let mut store = st.lock();
                    let o = store.patch(&target.t, &ns, name, k, b, target.status, &writer)?;
                    stored = store.stored_json(&o);
                    Ok(o)
                })
            })
            .map(|o| (200, o))
        }
        (Method::DELETE, Some(name)) if !target.status => {
            let mut store = st.lock();
            store.delete(&target.t, &ns, name).map(|o| {
                stored = store.stored_json(&o);
                (200, o)
            })
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {path}"),
        )),
    };
    match (result, stored) {
        (Ok((code, _)), Some(json)) => json_bytes_response(code, json),
        (Ok((code, v)), None) => json_response(code, &v),
        (Err(e), _) => error(&e),
    }
}

struct Filters {
    labels: Vec<crate::store::LabelReq>,
    fields: Vec<(String, bool, String)>,
}

fn filters(query: &HashMap<String, String>) -> Result<Filters, ApiError> {
    Ok(Filters {
        labels: query
            .get("labelSelector")
            .map(|s| parse_label_selector(s))
            .transpose()?
            .unwrap_or_default(),
        fields: query
            .get("fieldSelector")
            .map(|s| parse_field_selector(s))
            .transpose()?
            .unwrap_or_default(),
    })
}

impl Filters {
    fn matches(&self, obj: &Value) -> bool {
        labels_match(obj, &self.labels) && fields_match(obj, &self.fields)
    }
}

/// Refuses query options a real server would not parse: text that is not UTF-8 once decoded, and
/// `limit`, `resourceVersion` and `timeoutSeconds` that are not non-negative integers.
fn check_query(raw: Option<&str>, query: &HashMap<String, String>) -> Result<(), ApiError> {
    if raw.is_some_and(|r| percent_encoding::percent_decode_str(r).decode_utf8().is_err()) {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "the query string is not valid UTF-8",
        ));
    }
    for key in ["limit", "resourceVersion", "timeoutSeconds"] {
        if let Some(v) = query.get(key).filter(|v| !v.is_empty())
            && v.parse::<u64>().is_err()
        {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!(
                    "{key}: Invalid value: \"{}\": must be a non-negative integer",
                    v.chars().take(80).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// The largest request body a real server reads (3 MiB).
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

fn list(
    st: &Shared,
    target: &Target,
    query: &HashMap<String, String>,
    wants_table: bool,
) -> Result<(u16, Value), ApiError> {
    let f = filters(query)?;
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let cont = query
        .get("continue")
        .map(String::as_str)
        .filter(|c| !c.is_empty());
    let mut store = st.lock();
    let page = store.list_page(
        &target.t,
        target.namespace.as_deref(),
        |o| f.matches(o),
        limit,
        cont,
    )?;
    let items: Vec<Value> = page.items.iter().map(|o| (**o).clone()).collect();
    let rv = page.rv.to_string();
    let mut metadata = json!({"resourceVersion": rv});
    if let Some((token, remaining)) = &page.next {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(remaining);
    }
    if wants_table {
        let mut t = table(&target.t, &items, &rv);
        t["metadata"] = metadata;
        return Ok((200, t));
    }
    Ok((
        200,
        json!({"kind": format!("{}List", target.t.kind), "apiVersion": target.t.api_version(), "metadata": metadata, "items": items}),
    ))
}

/// An `events.k8s.io/v1` Event as the core `v1` API shows it: a real server stores both in one place,
/// and `kubectl describe` lists an object's Events through the core API with field selectors on
/// `involvedObject`.
pub fn core_event(e: &Value) -> Value {
    let series = &e["series"];
    let last = series["lastObservedTime"]
        .as_str()
        .or_else(|| e["eventTime"].as_str())
        .or_else(|| e["metadata"]["creationTimestamp"].as_str());
    json!({
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": e["metadata"],
        "involvedObject": e["regarding"],
        "related": e["related"],
        "reason": e["reason"],
        "message": e["note"],
        "type": e["type"],
        "action": e["action"],
        "count": series["count"].as_i64().unwrap_or(1),
        "eventTime": e["eventTime"],
        "firstTimestamp": e["eventTime"].as_str().or(last),
        "lastTimestamp": last,
        "reportingComponent": e["reportingController"],
        "reportingInstance": e["reportingInstance"],
        "source": {"component": e["reportingController"]},
    })
}

/// `GET /api/v1[/namespaces/NS]/events`: the stored Events in the core shape, with field selectors on
/// any of their fields (`involvedObject.name`, `involvedObject.kind`, `type`, `reason`, ...).
fn core_events(st: &Shared, ns: Option<&str>, query: &HashMap<String, String>) -> Response {
    let mut selectors = Vec::new();
    for p in query
        .get("fieldSelector")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (field, eq, value) = match p.split_once("!=") {
            Some((f, v)) => (f, false, v),
            None => match p.split_once("==").or_else(|| p.split_once('=')) {
                Some((f, v)) => (f, true, v),
                None => return error(&ApiError::bad_request(format!("invalid field selector: {p}"))),
            },
        };
        selectors.push((field.trim().to_string(), eq, value.trim().to_string()));
    }
    let store = st.lock();
    let Some(t) = store.find_type("events.k8s.io", "v1", "events") else {
        return not_found_path("/api/v1/events");
    };
    let items: Vec<Value> = store
        .list(&t, ns)
        .iter()
        .map(|e| core_event(e))
        .filter(|e| {
            selectors.iter().all(|(field, eq, value)| {
                let actual = field
                    .split('.')
                    .try_fold(e, |v, k| v.get(k))
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .unwrap_or_default();
                (actual == *value) == *eq
            })
        })
        .collect();
    json_response(
        200,
        &json!({"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": store.rv.to_string()}, "items": items}),
    )
}

fn expired_line(rv: u64) -> Bytes {
    let status = ApiError::new(410, "Expired", format!("too old resource version: {rv}")).status();
    event_line("ERROR", &status)
}

/// A chunked watch: replayed history (or synthetic ADDED events) and then live events, until the timeout.
fn watch(st: Arc<Shared>, target: Target, query: &HashMap<String, String>) -> Response {
    let f = match filters(query) {
        Ok(f) => f,
        Err(e) => return error(&e),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(st.watch_timeout, Duration::from_secs);
    let send_initial_events = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    // A streaming list starts from the current state whatever resourceVersion it names.
    let from: Option<u64> = query
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0 && !send_initial_events);
    let key = type_key(&target.t);
    let ns = target.namespace.clone();
    let relevant = move |c: &Change, f: &Filters| {
        c.type_key == key && ns.as_ref().is_none_or(|n| *n == c.namespace) && f.matches(&c.selectable)
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    let (initial, mut live, start) = {
        let store = st.lock();
        let live = store.tx.subscribe();
        match from {
            Some(rv) if rv < store.compacted => (vec![expired_line(rv)], None, rv),
            Some(rv) => {
                let replay: Vec<Bytes> = store
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && relevant(c, &f))
                    .map(|c| c.line())
                    .collect();
                (replay, Some(live), store.rv.max(rv))
            }
            None => {
                let mut added: Vec<Bytes> = store
                    .list(&target.t, target.namespace.as_deref())
                    .iter()
                    .filter(|o| f.matches(o))
                    .map(|o| event_line("ADDED", o))
                    .collect();
                if send_initial_events {
                    // A streaming list ends its initial events with an annotated bookmark.
                    let bookmark = json!({"kind": target.t.kind, "apiVersion": target.t.api_version(),
                        "metadata": {"resourceVersion": store.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                    added.push(event_line("BOOKMARK", &bookmark));
                }
                (added, Some(live), store.rv)
            }
        }
    };
    let mut closing = st.closing.subscribe();
    let delay = st.watch_delay;
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let bookmark_every = st.bookmark_interval;
    let (bookmark_kind, bookmark_api) = (target.t.kind.clone(), target.t.api_version());
    let shared = st.clone();
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let Some(live) = live.as_mut() else { return };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmark =
            tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = closing.changed() => return,
                _ = bookmark.tick(), if bookmarks => {
                    let rv = shared.lock().rv;
                    let b = json!({"kind": bookmark_kind, "apiVersion": bookmark_api, "metadata": {"resourceVersion": rv.to_string()}});
                    if tx.send(Ok(event_line("BOOKMARK", &b))).await.is_err() {
                        return;
                    }
                }
                ev = live.recv() => match ev {
                    Ok(c) if c.rv > start && relevant(&c, &f) => {
                        // Delivered a while after the write, in order, as a loaded server does.
                        if !delay.is_zero() {
                            tokio::time::sleep_until((c.at + delay).into()).await;
                        }
                        if tx.send(Ok(c.line())).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        let _ = tx.send(Ok(expired_line(start))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A SubjectAccessReview (for the user it names) or SelfSubjectAccessReview (for the caller), answered
/// from `Shared::denials`: allowed unless a denial matches.
fn access_review(st: &Shared, kind: &str, body: &[u8]) -> Response {
    let Ok(mut review) = serde_json::from_slice::<Value>(body) else {
        return error(&ApiError::bad_request("the request body is not valid JSON"));
    };
    let attributes = &review["spec"]["resourceAttributes"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let verb = text(&attributes["verb"]);
    let resource = match attributes["subresource"].as_str().filter(|s| !s.is_empty()) {
        Some(sub) => format!("{}/{sub}", text(&attributes["resource"])),
        None => text(&attributes["resource"]),
    };
    let user = (kind == "subjectaccessreviews").then(|| text(&review["spec"]["user"]));
    let denials = st.denials.lock().unwrap_or_else(|e| e.into_inner());
    let denied = denials
        .iter()
        .any(|d| d.matches(user.as_deref(), &verb, &resource));
    review["status"] = if denied {
        json!({"allowed": false, "denied": true, "reason": "denied by the test API server's rules"})
    } else {
        json!({"allowed": true, "reason": "the test API server allows everything not denied"})
    };
    review["kind"] = json!(if kind == "subjectaccessreviews" {
        "SubjectAccessReview"
    } else {
        "SelfSubjectAccessReview"
    });
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    json_response(201, &review)
}
