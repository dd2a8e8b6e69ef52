//! `POST /beta/$batch`: JSON batching as Graph documents it (https://learn.microsoft.com/graph/json-batching).
//! A body of 1 to 20 `requests` (`id`, `method`, a `url` relative to `/beta`, `headers`, `body`,
//! `dependsOn`), each served exactly as on its own (authentication with the batch's bearer token, faults,
//! throttling and logging per request), answered as `responses` with each request's `status`,
//! `headers` and `body`. Requests without `dependsOn` run side by side; with it, in order, and a request
//! whose dependency failed answers 424. Ids must be unique and a dependency must come earlier; more
//! than 20 requests, or a body that is not a batch, answer 400. With `refuse_batch` set, requests for
//! the deployment service answer 400 inside a batch (as a service JSON batching does not reach would).
//! A fault that drops the connection of one request drops the whole batch: it is one exchange. A body
//! above Graph's 4 MB request limit is answered 413.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::{Value, json};

use crate::error::{GraphError, RequestIds};
use crate::routes::BASE;
use crate::server::{DropConnection, handle, json_reply};
use crate::state::{LogEntry, Shared, fnv, lock};

/// Most requests in one batch.
pub const MAX_REQUESTS: usize = 20;

/// Largest batch body: Graph's request body limit (4 MB), above which the batch is answered 413.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The headers of an answer that a batch response carries for each request.
const KEPT_HEADERS: [&str; 4] = ["content-type", "retry-after", "request-id", "client-request-id"];

/// One request of a batch, checked.
struct Part {
    id: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    depends_on: Vec<String>,
}

pub async fn batch(
    State(st): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = st.clock.now_ms();
    let ids = RequestIds::of(&headers);
    let mut entry = LogEntry::arriving(started, method.as_str(), &uri, "$batch");
    entry.body_hash = fnv(&body);
    let parts = match parse(&method, &headers, &body) {
        Ok(parts) => parts,
        Err(e) => {
            entry.status = e.status.as_u16();
            entry.request_id = Some(ids.request_id.clone());
            st.record(entry);
            let mut r = e.into_response();
            ids.set_headers(r.headers_mut());
            return r;
        }
    };
    let refuse = lock(&st.settings).refuse_batch;
    let sequential = parts.iter().any(|p| !p.depends_on.is_empty());
    let mut answers: HashMap<String, StatusCode> = HashMap::new();
    let mut responses = Vec::with_capacity(parts.len());
    if sequential {
        for part in parts {
            let failed = part
                .depends_on
                .iter()
                .find(|d| answers.get(*d).is_none_or(|s| !s.is_success()));
            let (status, sub) = match failed {
                Some(d) => failed_dependency(&part.id, d),
                None => {
                    let id = part.id.clone();
                    match serve(&st, part, refuse).await {
                        Some(answer) => {
                            answers.insert(id, answer.0);
                            responses.push(answer.1);
                            continue;
                        }
                        None => return dropped(&st, entry),
                    }
                }
            };
            answers.insert(part.id.clone(), status);
            responses.push(sub);
        }
    } else {
        let served = futures_join(parts.into_iter().map(|p| serve(&st, p, refuse))).await;
        for answer in served {
            match answer {
                Some((_, sub)) => responses.push(sub),
                None => return dropped(&st, entry),
            }
        }
    }
    entry.status = 200;
    st.record(entry);
    let mut r = json_reply(StatusCode::OK, &json!({ "responses": responses }));
    ids.set_headers(r.headers_mut());
    r
}

/// Runs the futures side by side (they borrow the shared state, so they are polled here rather than
/// spawned) and returns their outputs in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..pinned.len()).collect();
    std::future::poll_fn(|cx| {
        pending.retain(|&i| match pinned[i].as_mut().poll(cx) {
            std::task::Poll::Ready(v) => {
                out[i] = Some(v);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

fn dropped(st: &Shared, mut entry: LogEntry) -> Response {
    entry.fault = Some("drop".into());
    st.record(entry);
    let mut r = Response::new(axum::body::Body::empty());
    r.extensions_mut().insert(DropConnection);
    r
}

fn failed_dependency(id: &str, dependency: &str) -> (StatusCode, Value) {
    let status = StatusCode::FAILED_DEPENDENCY;
    let body = json!({"error": {"code": "FailedDependency",
        "message": format!("The request depends on request '{dependency}', which failed.")}});
    (status, json!({"id": id, "status": status.as_u16(), "body": body}))
}

/// Serves one request of the batch; `None` when its connection would have been dropped.
async fn serve(st: &Arc<Shared>, part: Part, refuse: bool) -> Option<(StatusCode, Value)> {
    if refuse && part.uri.path().starts_with(BASE) {
        let status = StatusCode::BAD_REQUEST;
        let body = json!({"error": {"code": "BadRequest",
            "message": "Requests to this resource are not supported in a JSON batch."}});
        return Some((
            status,
            json!({"id": part.id, "status": status.as_u16(), "body": body}),
        ));
    }
    let response = handle(st.clone(), part.method, part.uri, part.headers, part.body, true).await;
    if response.extensions().get::<DropConnection>().is_some() {
        return None;
    }
    let status = response.status();
    let mut headers = serde_json::Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name.to_string(), Value::String(v.to_string()));
        }
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    let mut sub = json!({"id": part.id, "status": status.as_u16(), "headers": headers});
    if !body.is_null() {
        sub["body"] = body;
    }
    Some((status, sub))
}

/// Checks the batch and turns each request into one the Graph handler takes: its URL under `/beta`,
/// the batch's `Authorization` and `Host` with the request's own headers.
fn parse(method: &Method, outer: &HeaderMap, body: &[u8]) -> Result<Vec<Part>, GraphError> {
    if method != Method::POST {
        return Err(GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            "A batch is sent with POST.",
        ));
    }
    let bad = |m: String| GraphError::bad_request(m);
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("Invalid batch payload: {e}.")))?;
    let requests = value
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("Invalid batch payload: 'requests' must be an array.".into()))?;
    if requests.is_empty() || requests.len() > MAX_REQUESTS {
        return Err(bad(format!(
            "A batch holds 1 to {MAX_REQUESTS} requests; this one holds {}.",
            requests.len()
        )));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut parts = Vec::with_capacity(requests.len());
    for r in requests {
        let id = r["id"].as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let id = id.ok_or_else(|| bad("Each request of a batch needs a non-empty string 'id'.".into()))?;
        if seen.iter().any(|s| s.eq_ignore_ascii_case(&id)) {
            return Err(bad(format!("The request id '{id}' appears twice in the batch.")));
        }
        let method = r["method"]
            .as_str()
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .ok_or_else(|| bad(format!("Request '{id}' has no valid 'method'.")))?;
        let url = r["url"].as_str().unwrap_or("");
        let path = if url.starts_with('/') {
            url.to_string()
        } else {
            format!("/{url}")
        };
        let uri: Uri = format!("/beta{path}")
            .parse()
            .map_err(|_| bad(format!("Request '{id}' has an invalid 'url'.")))?;
        let depends_on: Vec<String> = r["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().map(str::to_string))
            .collect();
        if let Some(d) = depends_on
            .iter()
            .find(|d| !seen.iter().any(|s| s.eq_ignore_ascii_case(d)))
        {
            return Err(bad(format!(
                "Request '{id}' depends on '{d}', which is not an earlier request of the batch."
            )));
        }
        let mut headers = HeaderMap::new();
        for name in [header::AUTHORIZATION, header::HOST] {
            if let Some(v) = outer.get(&name) {
                headers.insert(name, v.clone());
            }
        }
        for (k, v) in r["headers"].as_object().into_iter().flatten() {
            if let (Ok(k), Some(Ok(v))) = (
                HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                headers.insert(k, v);
            }
        }
        let body = match r.get("body") {
            None | Some(Value::Null) => Bytes::new(),
            Some(b) => {
                if !headers.contains_key(header::CONTENT_TYPE) {
                    return Err(bad(format!(
                        "Request '{id}' has a body but no Content-Type header."
                    )));
                }
                Bytes::from(serde_json::to_vec(b).unwrap_or_default())
            }
        };
        seen.push(id.clone());
        parts.push(Part {
            id,
            method,
            uri,
            headers,
            body,
            depends_on,
        });
    }
    Ok(parts)
}
