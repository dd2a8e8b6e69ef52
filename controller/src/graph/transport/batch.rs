//! JSON batching (`POST /$batch`, at most 20 requests a round trip: https://learn.microsoft.com/graph/json-batching).
//!
//! With `--graph-batch auto`, reads and set-based writes ([`Idempotency::Safe`](super::Idempotency))
//! wait for a request slot in a shared queue; whichever request gets a slot first takes up to 20 queued
//! ones and sends them as one batch (one request alone goes as it is). Nothing waits for a batch to
//! fill: batches form only when more requests want to go than there are slots, so a quiet operator
//! sends single requests as before and a busy one carries up to 20 in each round trip. Each request's
//! answer is judged as if it had come alone (its status, `Retry-After` and request ids), so retries,
//! throttling and re-authentication work per request. Creates are never batched (their exactly-once
//! rules depend on seeing their own exchange).
//!
//! Whether the deployment service's paths are reachable through `$batch` is not documented: the first
//! batch is preceded by a probe (a batch of one read of the deployments list); a tenant that refuses it
//! is sent single requests from then on, as is a tenant whose answer to a batch is not a batch.

use std::collections::VecDeque;

use bytes::Bytes;
use reqwest::Method;
use serde_json::Value;

use super::Transport;
use super::exchange::{Exchange, describe, read_capped, request_id};
use super::retry::parse_retry_after;

/// Most requests in one batch (Graph's limit).
pub const MAX_BATCH: usize = 20;

/// Most request-body bytes one batch carries: under Graph's 4 MB request limit, with room for the
/// batch's own JSON (twenty audience writes of 1,000 ids would not fit).
const MAX_BATCH_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How the transport sends requests that may share a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BatchMode {
    /// One HTTP request per Graph request.
    #[default]
    Off,
    /// JSON batches when requests queue for a slot, once a probe shows the tenant takes them.
    Auto,
}

/// One request waiting in the queue.
pub(super) struct Queued {
    method: Method,
    url: String,
    body: Option<Bytes>,
    client_request_id: String,
    answer: tokio::sync::oneshot::Sender<Exchange>,
}

/// The queue and what the probe found.
#[derive(Debug, Default)]
pub(super) struct Batcher {
    queue: std::sync::Mutex<VecDeque<QueuedBox>>,
    /// `Some(true)`: the tenant takes batches; `Some(false)`: it does not (single requests from then on).
    allowed: tokio::sync::Mutex<Option<bool>>,
}

/// A queued request behind a box, so the queue's `Debug` says only how many wait.
pub(super) struct QueuedBox(Box<Queued>);

impl std::fmt::Debug for QueuedBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queued")
    }
}

impl Batcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<QueuedBox>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where Graph's version root ends in an absolute URL (`…/beta` or `…/v1.0`), so that `url[root..]`
/// is the path a batch request carries.
fn version_root(url: &str) -> Option<usize> {
    ["/beta/", "/v1.0/"]
        .iter()
        .filter_map(|v| url.find(v).map(|i| i + v.len() - 1))
        .min()
}

impl Transport {
    /// Whether this request may share a round trip.
    pub(super) fn batchable(&self, method: &Method, idempotency: super::Idempotency) -> bool {
        self.config.batch == BatchMode::Auto
            && idempotency == super::Idempotency::Safe
            && (*method == Method::GET || *method == Method::POST)
    }

    /// Whether the tenant takes JSON batches, asked once (a probe that could not be sent is asked again
    /// next time).
    pub(super) async fn batches_allowed(&self, token: Option<&str>) -> bool {
        let mut allowed = self.batcher.allowed.lock().await;
        if let Some(a) = *allowed {
            return a;
        }
        match self.probe_batch(token).await {
            Ok(a) => {
                if !a {
                    tracing::info!(
                        "the tenant does not take JSON batches for the deployment service; sending single requests"
                    );
                }
                *allowed = Some(a);
                a
            }
            Err(detail) => {
                tracing::debug!(%detail, "the JSON batch probe could not be sent");
                false
            }
        }
    }

    /// Whether the tenant takes JSON batches for the deployment service, asked now (for `check`).
    pub async fn json_batches(&self) -> Result<bool, crate::graph::GraphError> {
        const OPERATION: &str = "probe JSON batch";
        let token = match &self.tokens {
            Some(t) => Some(t.token().await?),
            None => None,
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| crate::graph::GraphError::Protocol {
                operation: OPERATION,
                detail: "the client is shutting down".into(),
            })?;
        self.probe_batch(token.as_ref().map(|t| t.expose()))
            .await
            .map_err(|detail| crate::graph::GraphError::Transport {
                operation: OPERATION,
                detail,
                source: None,
            })
    }

    /// Sends a batch of one read of the deployments list: `Ok(true)` when the read is answered 2xx
    /// inside a 200 batch, `Ok(false)` when the service answers otherwise, `Err` when nothing came back.
    /// The caller holds a request slot.
    pub(super) async fn probe_batch(&self, token: Option<&str>) -> Result<bool, String> {
        let url = self.endpoints.updates_url("deployments?$top=1");
        let Some(root) = version_root(&url) else {
            return Ok(false);
        };
        let body = format!(
            r#"{{"requests":[{{"id":"probe","method":"GET","url":{}}}]}}"#,
            Value::String(url[root..].to_string())
        );
        let mut req = self
            .http
            .post(format!("{}/$batch", &url[..root]))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Accept", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| describe(&e))?;
        if resp.status().as_u16() != 200 {
            return Ok(false);
        }
        let bytes = read_capped(resp, self.config.max_response_bytes).await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(value["responses"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["status"].as_u64())
            .is_some_and(|s| (200..300).contains(&s)))
    }

    /// Queues the request and sends it, alone or in a batch, when a request slot frees up.
    pub(super) async fn exchange_batched(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
        client_request_id: String,
        token: Option<&str>,
    ) -> Exchange {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.batcher.lock().push_back(QueuedBox(Box::new(Queued {
            method,
            url: url.to_string(),
            body,
            client_request_id,
            answer: tx,
        })));
        let permit = tokio::select! {
            biased;
            answer = &mut rx => return answer.unwrap_or_else(|_| dropped()),
            permit = self.permits.acquire() => permit,
        };
        let Ok(permit) = permit else {
            return Exchange::SendFailed {
                detail: "the client is shutting down".into(),
                refused: true,
                source: None,
            };
        };
        let taken = self.take_batch();
        if !taken.is_empty() {
            self.send_taken(taken, token).await;
        }
        drop(permit);
        rx.await.unwrap_or_else(|_| dropped())
    }

    /// Up to [`MAX_BATCH`] queued requests under the same version root as the first.
    fn take_batch(&self) -> Vec<Queued> {
        let mut queue = self.batcher.lock();
        let Some(first) = queue.front() else {
            return Vec::new();
        };
        let root = version_root(&first.0.url).map(|r| first.0.url[..r].to_string());
        let mut taken = Vec::new();
        let mut bytes = 0;
        let mut i = 0;
        while i < queue.len() && taken.len() < MAX_BATCH {
            let same_root = version_root(&queue[i].0.url).map(|r| &queue[i].0.url[..r]) == root.as_deref();
            let size = queue[i].0.body.as_ref().map_or(0, Bytes::len) + queue[i].0.url.len();
            let fits = bytes + size <= MAX_BATCH_BODY_BYTES;
            if taken.is_empty() || (same_root && fits) {
                bytes += size;
                if let Some(q) = queue.remove(i) {
                    taken.push(*q.0);
                }
            } else {
                i += 1;
            }
        }
        taken
    }

    /// Sends what was taken: one request alone, more as a batch (when the tenant takes batches).
    async fn send_taken(&self, taken: Vec<Queued>, token: Option<&str>) {
        if taken.len() > 1 && self.batches_allowed(token).await {
            let (requests, answers): (Vec<_>, Vec<_>) = taken
                .into_iter()
                .map(|q| ((q.method, q.url, q.body, q.client_request_id), q.answer))
                .unzip();
            let exchanges = self.send_batch(&requests, token).await;
            for (answer, exchange) in answers.into_iter().zip(exchanges) {
                let _ = answer.send(exchange);
            }
            return;
        }
        for q in taken {
            let exchange = self
                .exchange_single(&q.method, &q.url, q.body.as_ref(), &q.client_request_id, token)
                .await;
            let _ = q.answer.send(exchange);
        }
    }

    /// One `POST /$batch` for `requests` (method, absolute URL, body, client-request-id); an exchange
    /// per request, in order. A batch answered otherwise than with a batch turns batching off and each
    /// request is sent again alone.
    async fn send_batch(
        &self,
        requests: &[(Method, String, Option<Bytes>, String)],
        token: Option<&str>,
    ) -> Vec<Exchange> {
        let root = version_root(&requests[0].1).unwrap_or(0);
        let mut body = String::from(r#"{"requests":["#);
        for (i, (method, url, payload, crid)) in requests.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"id":"{i}","method":"{method}","url":{},"headers":{{"client-request-id":"{crid}","Prefer":"include-unknown-enum-members""#,
                Value::String(url[root..].to_string())
            ));
            match payload {
                Some(p) => {
                    body.push_str(r#","Content-Type":"application/json"},"body":"#);
                    body.push_str(&String::from_utf8_lossy(p));
                    body.push('}');
                }
                None => body.push_str("}}"),
            }
        }
        body.push_str("]}");
        let mut req = self
            .http
            .post(format!("{}/$batch", &requests[0].1[..root]))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Accept", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let failed = |detail: String, refused: bool| -> Vec<Exchange> {
            requests
                .iter()
                .map(|_| Exchange::SendFailed {
                    detail: detail.clone(),
                    refused,
                    source: None,
                })
                .collect()
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return failed(describe(&e), e.is_connect()),
        };
        let status = resp.status().as_u16();
        let cap = self.config.max_response_bytes.saturating_mul(MAX_BATCH);
        let bytes = match read_capped(resp, cap).await {
            Ok(b) => b,
            Err(detail) => return failed(detail, false),
        };
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let Some(responses) = value["responses"].as_array().filter(|_| status == 200) else {
            // Too large, throttled or failing as a whole: these requests go alone this time. Anything
            // else says the tenant does not take batches: single requests from then on.
            if !matches!(status, 413 | 429 | 500..=599) {
                tracing::info!(
                    status,
                    "a JSON batch was not answered with a batch; sending single requests"
                );
                *self.batcher.allowed.lock().await = Some(false);
            }
            let mut out = Vec::with_capacity(requests.len());
            for (method, url, payload, crid) in requests {
                out.push(
                    self.exchange_single(method, url, payload.as_ref(), crid, token)
                        .await,
                );
            }
            return out;
        };
        (0..requests.len())
            .map(|i| {
                let id = i.to_string();
                let Some(r) = responses.iter().find(|r| r["id"].as_str() == Some(id.as_str())) else {
                    return Exchange::SendFailed {
                        detail: "the batch answer left this request out".into(),
                        refused: false,
                        source: None,
                    };
                };
                let header = |name: &str| {
                    r["headers"]
                        .as_object()
                        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                        .and_then(|(_, v)| v.as_str())
                };
                let body = match &r["body"] {
                    Value::Null => Bytes::new(),
                    b => Bytes::from(serde_json::to_vec(b).unwrap_or_default()),
                };
                Exchange::Answer {
                    status: r["status"]
                        .as_u64()
                        .and_then(|s| u16::try_from(s).ok())
                        .unwrap_or(0),
                    retry_after: header("retry-after").and_then(parse_retry_after),
                    ids: (
                        header("request-id").and_then(request_id),
                        header("client-request-id").and_then(request_id),
                    ),
                    bytes: body,
                }
            })
            .collect()
    }
}

fn dropped() -> Exchange {
    Exchange::SendFailed {
        detail: "the request's batch was dropped".into(),
        refused: false,
        source: None,
    }
}
