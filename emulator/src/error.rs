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

    pub fn body(&self, request_id: &str) -> Value {
        let mut err = json!({
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "request-id": request_id,
                "client-request-id": request_id,
            }
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
        (
            self.status,
            axum::Json(self.body("00000000-0000-0000-0000-000000000000")),
        )
            .into_response()
    }
}
