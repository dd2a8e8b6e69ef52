//! OData error bodies, as Graph returns them.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

/// An error answered to a Graph request.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub target: Option<String>,
    pub details: Vec<(String, String, Option<String>)>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            target: None,
            details: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("Requested resource '{what}' with id '{id}' not found."),
        )
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn with_detail(mut self, code: &str, message: impl Into<String>, target: Option<&str>) -> Self {
        self.details
            .push((code.to_string(), message.into(), target.map(str::to_string)));
        self
    }

    /// The error body as Graph writes it: `innerError` carries the service's `request-id` and the
    /// caller's `client-request-id` (when it sent one), which Microsoft support asks for.
    pub fn body(&self, ids: &RequestIds) -> Value {
        let mut inner = json!({
            "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "request-id": ids.request_id,
        });
        if let Some(c) = &ids.client_request_id {
            inner["client-request-id"] = json!(c);
        }
        let mut err = json!({
            "code": self.code,
            "message": self.message,
            "innerError": inner,
        });
        if let Some(t) = &self.target {
            err["target"] = json!(t);
        }
        if !self.details.is_empty() {
            err["details"] = self
                .details
                .iter()
                .map(|(code, message, target)| json!({"code": code, "message": message, "target": target}))
                .collect();
        }
        json!({ "error": err })
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body(&RequestIds::new(None)))).into_response()
    }
}

/// A request's identifiers: the one the service gives each request (`request-id`, a GUID) and the one
/// the caller sent (`client-request-id`), echoed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: Option<String>,
}

impl RequestIds {
    /// A fresh service id for a request with these headers (its `client-request-id`, if any).
    pub fn of(headers: &axum::http::HeaderMap) -> Self {
        Self::new(headers.get("client-request-id").and_then(|v| v.to_str().ok()))
    }

    /// A fresh service id for a request that carried `client` (its `client-request-id`, if any).
    pub fn new(client: Option<&str>) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RequestIds {
            request_id: format!("e0e0e0e0-0000-4000-8000-{n:012x}"),
            client_request_id: client
                .filter(|c| !c.is_empty() && c.len() <= 128 && c.chars().all(|ch| ch.is_ascii_graphic()))
                .map(str::to_string),
        }
    }

    /// The response headers Graph sets: `request-id` and, echoed, `client-request-id`.
    pub fn set_headers(&self, headers: &mut axum::http::HeaderMap) {
        if let Ok(v) = axum::http::HeaderValue::from_str(&self.request_id) {
            headers.insert("request-id", v);
        }
        if let Some(v) = self
            .client_request_id
            .as_deref()
            .and_then(|c| axum::http::HeaderValue::from_str(c).ok())
        {
            headers.insert("client-request-id", v);
        }
    }
}
