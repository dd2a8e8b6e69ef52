//! HTTP front: the Graph handler (faults, auth, logging; [`crate::dispatch`] carries the operation out),
//! the token endpoint, the Entra ID group members endpoint and the serve loop, which can drop a
//! connection without answering.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::error::{GraphError, RequestIds};
use crate::odata::Query;
use crate::routes::{BASE, Route};
use crate::state::{LogEntry, Shared, fnv, lock};
use crate::store::Reply;

/// Marker on a response: close the connection instead of answering.
#[derive(Clone, Copy, Debug)]
pub struct DropConnection;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(&format!("{BASE}/{{*rest}}"), any(graph))
        .route(
            "/beta/$batch",
            any(crate::batch::batch)
                .layer(axum::extract::DefaultBodyLimit::max(crate::batch::MAX_BODY_BYTES)),
        )
        .route("/beta/groups/{id}/transitiveMembers/{cast}", any(entra_members))
        .route("/v1.0/groups/{id}/transitiveMembers/{cast}", any(entra_members))
        .merge(crate::admin::router())
        .fallback(|uri: Uri| async move {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "UnknownError",
                format!("No resource at '{}'.", uri.path()),
            )
        })
        .with_state(shared)
}

/// `GET /groups/{id}/transitiveMembers/microsoft.graph.device`: an Entra group's devices, nested groups
/// included, paged by `$top` (at most 999, default 100) with `@odata.nextLink`.
async fn entra_members(
    State(st): State<Arc<Shared>>,
    Path((id, cast)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let started = st.clock.now_ms();
    let request_id = RequestIds::of(&headers);
    let mut entry = LogEntry::arriving(started, method.as_str(), &uri, "groups.transitiveMembers.list");
    let decision = lock(&st.faults).decide(false, "token");
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let settings = lock(&st.settings).clone();
    let outcome: Result<Value, GraphError> = (|| {
        if method != Method::GET {
            return Err(GraphError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("The method {method} is not allowed on this resource."),
            ));
        }
        if settings.auth {
            let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            entry.client_id = Some(crate::auth::check_directory(
                &lock(&st.tokens),
                st.clock.instant(),
                auth,
            )?);
        }
        if decision.outage {
            return Err(GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
            ));
        }
        if cast != "microsoft.graph.device" {
            return Err(GraphError::bad_request(format!(
                "This emulator lists the device members of a group only, not '{cast}'."
            )));
        }
        let devices = lock(&st.store).transitive_devices(&id).ok_or_else(|| {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
            )
        })?;
        let q = Query::parse(uri.query())?;
        let page = q.top.unwrap_or(100).clamp(1, 999);
        let start = q.skiptoken.unwrap_or(0).min(devices.len());
        let end = (start + page).min(devices.len());
        let value: Vec<Value> = devices[start..end]
            .iter()
            .map(|d| {
                json!({"@odata.type": "#microsoft.graph.device", "id": format!("0b0b{}", &d[4.min(d.len())..]),
                       "deviceId": d, "accountEnabled": true})
            })
            .collect();
        entry.assets = value.len();
        let mut body = json!({"value": value});
        if end < devices.len() {
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &q.passthrough {
                ser.append_pair(k, v);
            }
            ser.append_pair("$skiptoken", &format!("o{end}"));
            body["@odata.nextLink"] = json!(format!("{}?{}", self_url(&headers, uri.path()), ser.finish()));
        }
        Ok(body)
    })();
    let response = match outcome {
        Ok(mut body) => {
            add_context(&mut body, &self_url(&headers, uri.path()), false);
            json_reply(StatusCode::OK, &body)
        }
        Err(e) => error_reply(&e, &request_id),
    };
    entry.status = response.status().as_u16();
    if !response.status().is_success() {
        entry.request_id = Some(request_id.request_id.clone());
    }
    st.record(entry);
    response
}

pub(crate) fn json_reply(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;odata.metadata=minimal"),
    );
    r
}

fn error_reply(e: &GraphError, ids: &RequestIds) -> Response {
    let mut r = json_reply(e.status, &e.body(ids));
    ids.set_headers(r.headers_mut());
    r
}

async fn token(
    State(st): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = st.clock.now_ms();
    let mut form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    // HTTP Basic authentication carries the client id and secret in the header instead.
    if let Some((id, secret)) = basic_credentials(&headers) {
        form.entry("client_id".into()).or_insert(id);
        form.entry("client_secret".into()).or_insert(secret);
    }
    let failing = lock(&st.faults).token_fails();
    let (status, body) = if failing {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable", "error_description": "AADSTS50000: There was an error issuing a token.", "error_codes": [50000]}),
        )
    } else {
        let settings = lock(&st.settings).clone();
        let mut tokens = lock(&st.tokens);
        let result = crate::auth::issue(
            &settings.apps,
            &tenant,
            &form,
            &mut tokens,
            st.clock.instant(),
            Duration::from_secs(settings.token_lifetime_secs),
            || {
                let mut rng = lock(&st.token_rng);
                format!("emu.{:016x}{:016x}", rng.next_u64(), rng.next_u64())
            },
        );
        match result {
            Ok(body) => (StatusCode::OK, body),
            Err(e) => (e.status, e.body()),
        }
    };
    let mut entry = LogEntry::arriving(started, "POST", &uri, "token");
    entry.status = status.as_u16();
    entry.fault = failing.then(|| "token".to_string());
    entry.client_id = form.get("client_id").cloned();
    st.record(entry);
    (status, axum::Json(body)).into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(v.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Every Graph request: route, delay, authenticate, inject faults, dispatch, log.
async fn graph(
    State(st): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(st, method, uri, headers, body, false).await
}

/// One Graph request, on its own or inside a `$batch` (`in_batch`: logged as such).
pub(crate) async fn handle(
    st: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    in_batch: bool,
) -> Response {
    let started = st.clock.now_ms();
    let request_id = RequestIds::of(&headers);
    let path = uri.path().to_string();
    let segs: Vec<String> = path
        .strip_prefix(BASE)
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let routed = Route::parse(&segs).and_then(|r| r.operation(&method).map(|op| (r, op)));
    let write = method != Method::GET;
    let operation = routed.as_ref().map_or("unknown", |(_, op)| op);
    let mut entry = LogEntry::arriving(started, method.as_str(), &uri, operation);
    entry.body_hash = fnv(&body);
    entry.in_batch = in_batch;

    let decision = lock(&st.faults).decide(write, &entry.operation);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if decision.spike {
        entry.fault = Some("spike".into());
    }
    if decision.drop {
        entry.fault = Some("drop".into());
        entry.status = 0;
        st.record(entry);
        let mut r = Response::new(Body::empty());
        r.extensions_mut().insert(DropConnection);
        return r;
    }

    let settings = lock(&st.settings).clone();
    let outcome: Result<Reply, GraphError> = (|| {
        let (route, _) = routed?;
        if settings.auth {
            let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            // Reads the reference lists with ReadWrite.All as the least privilege.
            let read_write_read = !settings.read_all_catalog
                && matches!(
                    entry.operation.as_str(),
                    "catalog.entries.list" | "catalog.entries.get" | "catalog.entries.count" | "audience.get"
                );
            entry.client_id = Some(crate::auth::check_bearer(
                &lock(&st.tokens),
                st.clock.instant(),
                auth,
                write || read_write_read,
            )?);
        }
        if decision.outage {
            entry.fault = Some("outage".into());
            return Err(GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
            ));
        }
        if decision.throttle {
            entry.fault = Some("throttle".into());
            return Err(GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Please retry again later.",
            ));
        }
        if let Some(code) = decision.error {
            entry.fault = Some("error".into());
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code = if code == 503 {
                "ServiceUnavailable"
            } else {
                "InternalServerError"
            };
            return Err(GraphError::new(
                status,
                code,
                "An unexpected error occurred; try the request again.",
            ));
        }
        let parsed_body = if body.is_empty() || method == Method::GET || method == Method::DELETE {
            Value::Null
        } else if !headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            })
        {
            return Err(GraphError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "A request body must be sent as application/json.",
            ));
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| GraphError::bad_request(format!("The request body is not valid JSON: {e}.")))?
        };
        crate::dispatch::dispatch(
            &st,
            &settings,
            crate::dispatch::Call {
                route,
                method: &method,
                uri: &uri,
                headers: &headers,
                body: &parsed_body,
            },
            &mut entry,
        )
    })();

    let response = match outcome {
        Ok(Reply::Json(status, mut value)) => {
            if status == StatusCode::CREATED {
                entry.created_id = value.get("id").and_then(Value::as_str).map(str::to_string);
            }
            add_context(
                &mut value,
                &self_url(&headers, uri.path()),
                status == StatusCode::CREATED,
            );
            json_reply(status, &value)
        }
        Ok(Reply::Empty(status)) => status.into_response(),
        Ok(Reply::Text(t)) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], t).into_response(),
        Err(e) => {
            let mut r = error_reply(&e, &request_id);
            if e.status == StatusCode::TOO_MANY_REQUESTS
                || (e.status == StatusCode::SERVICE_UNAVAILABLE && entry.fault.is_some())
            {
                let (value, not_before) = lock(&st.faults).retry_after(st.clock.now_ms());
                if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                    entry.retry_not_before_ms = Some(not_before);
                }
            }
            r
        }
    };
    entry.status = response.status().as_u16();
    if !response.status().is_success() {
        entry.request_id = Some(request_id.request_id.clone());
    }
    let persist = write && response.status().is_success();
    let answer_delay = lock(&st.faults).config.answer_delay_ms;
    if persist && answer_delay > 0 {
        tokio::time::sleep(Duration::from_millis(answer_delay)).await;
    }
    let lose = decision.lose_answer && response.status().is_success();
    if lose {
        entry.fault = Some("lost-answer".into());
    }
    st.record(entry);
    if persist {
        st.persist();
    }
    let mut response = response;
    request_id.set_headers(response.headers_mut());
    if lose {
        response.extensions_mut().insert(DropConnection);
    }
    response
}

pub(crate) fn self_url(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}{path}")
}

/// Adds `@odata.context` as Graph does: `…/$metadata#<collection path>` for a collection (a body with
/// `value`), and `…/$metadata#<collection path>/$entity` for one entity.
fn add_context(body: &mut Value, url: &str, created: bool) {
    let Some(obj) = body.as_object_mut() else { return };
    if obj.contains_key("@odata.context") {
        return;
    }
    let (base, path) = match url.find("/beta/") {
        Some(i) => (&url[..i + 5], &url[i + 6..]),
        None => return,
    };
    let context = if obj.contains_key("value") {
        format!("{base}/$metadata#{path}")
    } else if created {
        format!("{base}/$metadata#{path}/$entity")
    } else {
        // The entity's collection: the path without its last (id) segment.
        let collection = path.rsplit_once('/').map_or(path, |(c, _)| c);
        format!("{base}/$metadata#{collection}/$entity")
    };
    obj.insert("@odata.context".into(), Value::String(context));
}

/// Serves `router` on `listener` until `shutdown` resolves. A response marked [`DropConnection`] closes
/// the connection without an answer.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stop = stop_rx.clone();
    loop {
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut conn_stop = stop_rx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let router = router.clone();
                async move {
                    let response = router
                        .oneshot(req.map(Body::new))
                        .await
                        .unwrap_or_else(|e: Infallible| match e {});
                    if response.extensions().get::<DropConnection>().is_some() {
                        return Err(std::io::Error::other("connection dropped by fault injection"));
                    }
                    Ok::<_, std::io::Error>(response)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = conn_stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}
