//! One HTTP exchange for one Graph request, and how its answer is read: the ids and `Retry-After` it
//! carries, a body capped at the configured size, the OData error inside.

use reqwest::Method;

use super::retry::parse_retry_after;
use std::time::Duration;

use bytes::Bytes;

use super::Transport;
use crate::graph::error::ODataDetail;
use crate::graph::models::ErrorEnvelope;

/// What one HTTP exchange (alone, or inside a batch) came to.
#[derive(Debug)]
pub(super) enum Exchange {
    Answer {
        status: u16,
        retry_after: Option<Duration>,
        /// `request-id` and `client-request-id` as the answer carried them.
        ids: (Option<String>, Option<String>),
        bytes: Bytes,
    },
    /// Nothing came back. `refused`: the connection was refused, so the service did nothing.
    SendFailed {
        detail: String,
        refused: bool,
        source: Option<reqwest::Error>,
    },
    /// An answer came but its body could not be read.
    ReadFailed { status: u16, detail: String },
}

impl Transport {
    /// One HTTP exchange for one Graph request.
    pub(super) async fn exchange_single(
        &self,
        method: &Method,
        url: &str,
        body: Option<&bytes::Bytes>,
        client_request_id: &str,
        bearer: Option<&str>,
    ) -> Exchange {
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("Prefer", "include-unknown-enum-members")
            .header("client-request-id", client_request_id)
            .header("Accept", "application/json");
        if let Some(tok) = bearer {
            req = req.bearer_auth(tok);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.clone());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Exchange::SendFailed {
                    detail: describe(&e),
                    refused: e.is_connect(),
                    source: Some(e),
                };
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(request_id)
        };
        let ids = (header("request-id"), header("client-request-id"));
        match read_capped(resp, self.config.max_response_bytes).await {
            Ok(bytes) => Exchange::Answer {
                status,
                retry_after,
                ids,
                bytes,
            },
            Err(detail) => Exchange::ReadFailed { status, detail },
        }
    }
}

pub(super) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection refused or unreachable"
    } else {
        "connection failed"
    };
    match crate::graph::error::causes(e) {
        c if c.is_empty() => kind.to_string(),
        c => format!("{kind}: {c}"),
    }
}

/// A request identifier as the service wrote it, if it looks like one (a GUID or similar token of at
/// most 128 visible ASCII characters); anything else is not repeated into messages.
pub(super) fn request_id(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)))
        .then(|| v.to_string())
}

pub(super) fn odata_detail(bytes: &[u8]) -> ODataDetail {
    let env: ErrorEnvelope = serde_json::from_slice(bytes).unwrap_or_default();
    // The details say what was wrong (which asset, which field): they follow the message.
    let mut message = env.error.message;
    for d in env.error.details.iter().take(10) {
        message.push_str(&format!(" [{}: {}", d.code, d.message));
        if let Some(t) = &d.target {
            message.push_str(&format!(" (target {t})"));
        }
        message.push(']');
    }
    if message.len() > 500 {
        let mut end = 500;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    ODataDetail {
        code: if env.error.code.is_empty() {
            "Unknown".into()
        } else {
            env.error.code
        },
        message,
        target: env.error.target,
        ids: env.error.inner_error.map(|i| {
            Box::new(crate::graph::error::RequestIds {
                request_id: i.request_id.as_deref().and_then(request_id),
                client_request_id: i.client_request_id.as_deref().and_then(request_id),
            })
        }),
    }
}

pub(super) async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<bytes::Bytes, String> {
    if resp.content_length().is_some_and(|n| n as usize > max) {
        return Err(format!("the response is larger than the {max}-byte limit"));
    }
    let mut buf = bytes::BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > max {
                    return Err(format!("the response is larger than the {max}-byte limit"));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => return Err(format!("the response was cut off: {}", describe(&e))),
        }
    }
}
