//! Resilient transport: TLS with verification, timeouts, a shared token-bucket rate limit, bounded
//! concurrency, retries that honour `Retry-After` (seconds, fractional seconds or an HTTP-date) with
//! exponential backoff and jitter otherwise, bounded response sizes, and `@odata.nextLink` paging.
//!
//! Here the request loop (send, retry, re-authenticate); [`tls`] the HTTP client, [`limit`] the rate
//! limit, [`retry`] `Retry-After`, [`paging`] collections, [`exchange`] one HTTP exchange and its answer,
//! [`batch`] JSON batches.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use super::auth::TokenProvider;
use super::endpoints::Endpoints;
use super::error::{GraphError, ODataDetail};
use super::metrics::GraphMetrics;
use super::models::Page;
use exchange::odata_detail;

mod batch;
mod exchange;
mod limit;
mod paging;
mod retry;
mod tls;

pub use batch::{BatchMode, MAX_BATCH};
pub use limit::RateLimiter;
pub use retry::{MAX_RETRY_AFTER, parse_retry_after};
pub use tls::http_client;

/// Transport limits and retry policy.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Most retries of one request.
    pub max_retries: u32,
    /// Most time one request may spend waiting between retries; past it the error is returned (with the
    /// service's `Retry-After`) so the caller can requeue instead of holding a worker.
    pub retry_budget: Duration,
    /// First backoff step when the service gives no `Retry-After`; doubles per retry.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Sustained requests per second across all callers (0 = unlimited).
    pub rate_per_sec: f64,
    /// Requests that may be sent at once after an idle period.
    pub burst: u32,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
    /// Most pages followed for one collection.
    pub max_pages: usize,
    /// Extra CA certificates (PEM) to trust, besides the public web roots.
    pub ca_file: Option<PathBuf>,
    /// JSON batching of reads and set-based writes ([`batch`]).
    pub batch: BatchMode,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 6,
            retry_budget: Duration::from_secs(20),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(16),
            concurrency: 16,
            rate_per_sec: 50.0,
            burst: 100,
            max_response_bytes: 8 * 1024 * 1024,
            max_pages: 10_000,
            ca_file: None,
            batch: BatchMode::Off,
        }
    }
}

/// Whether a request may be sent again after an unclear failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads and set-based writes: safe to repeat.
    Safe,
    /// `POST /deployments`: repeated only when the service proves it did nothing (429 or a refused
    /// connection); anything else is an ambiguous outcome.
    CreateOnce,
}

/// One HTTP client for one tenant.
#[derive(Debug)]
pub struct Transport {
    http: reqwest::Client,
    pub endpoints: Endpoints,
    tokens: Option<Arc<TokenProvider>>,
    limiter: RateLimiter,
    permits: Semaphore,
    config: TransportConfig,
    pub(in crate::graph) metrics: GraphMetrics,
    jitter: AtomicU64,
    /// Operations whose collections refused client-driven paging (or whose parallel pages did not add
    /// up): read by `@odata.nextLink` from then on, without asking again.
    next_link_only: std::sync::Mutex<std::collections::BTreeSet<&'static str>>,
    /// Requests the service asked to hold (`Retry-After`), by method, URL and body: the same request is
    /// not sent again before its time, whichever caller sends it (a later pass, or a pass started after
    /// the one that was waiting was dropped).
    held: std::sync::Mutex<std::collections::HashMap<u64, Instant>>,
    /// Requests waiting to share a round trip, and whether the tenant takes batches.
    batcher: batch::Batcher,
}

/// Identifies a request by what it sends.
fn request_key(method: &Method, url: &str, body: Option<Payload<'_>>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    method.as_str().hash(&mut h);
    url.hash(&mut h);
    match body {
        Some(Payload::Json(v)) => serde_json::to_vec(v).unwrap_or_default().hash(&mut h),
        Some(Payload::Serialized(b)) => b.as_ref().hash(&mut h),
        None => {}
    }
    h.finish()
}

/// A request body: a JSON value, or JSON already serialized (large batches are written straight from
/// typed items, without a `Value` per item).
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    Json(&'a Value),
    Serialized(&'a bytes::Bytes),
}

struct Req<'a> {
    operation: &'static str,
    method: Method,
    url: &'a str,
    body: Option<Payload<'a>>,
    idempotency: Idempotency,
}

enum Attempt {
    Done(u16, bytes::Bytes),
    /// Wait and try again; the error is what the caller gets if the retry budget is spent.
    Retry(Duration, GraphError),
    Fail(GraphError),
}

impl Transport {
    /// Requests in flight at once.
    pub fn concurrency(&self) -> usize {
        self.config.concurrency.max(1)
    }

    pub fn new(
        endpoints: Endpoints,
        tokens: Option<Arc<TokenProvider>>,
        http: reqwest::Client,
        config: TransportConfig,
        metrics: GraphMetrics,
    ) -> Self {
        Transport {
            http,
            endpoints,
            tokens,
            limiter: RateLimiter::new(config.rate_per_sec, config.burst),
            permits: Semaphore::new(config.concurrency.max(1)),
            config,
            metrics,
            jitter: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(7),
            ),
            next_link_only: Default::default(),
            held: Default::default(),
            batcher: Default::default(),
        }
    }

    /// How long the request `key` is still held, if at all.
    fn held_for(&self, key: u64) -> Option<Duration> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        held.retain(|_, until| *until > now);
        held.get(&key).map(|until| *until - now)
    }

    /// Holds the request `key` for `wait` from now (a later hold never shortens an earlier one).
    fn hold(&self, key: u64, wait: Duration) {
        let until = Instant::now() + wait;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let entry = held.entry(key).or_insert(until);
        *entry = (*entry).max(until);
    }

    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// Exponential backoff with jitter (50–100% of the step).
    fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .config
            .base_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.config.max_backoff);
        let mut x = self.jitter.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let frac = 0.5 + ((x >> 11) as f64 / (1u64 << 53) as f64) / 2.0;
        step.mul_f64(frac)
    }

    /// Sends one request with retries; returns the status and body of a 2xx answer.
    pub async fn send(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<(u16, bytes::Bytes), GraphError> {
        self.send_payload(operation, method, url, body.map(Payload::Json), idempotency)
            .await
    }

    /// [`Transport::send`] with a body of either form.
    pub async fn send_payload(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        body: Option<Payload<'_>>,
        idempotency: Idempotency,
    ) -> Result<(u16, bytes::Bytes), GraphError> {
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;
        let key = request_key(&method, url, body);
        if let Some(wait) = self.held_for(key) {
            // Asked to wait before: wait out the rest, or hand it back when that is longer than a request
            // may wait.
            if wait > self.config.retry_budget {
                return Err(GraphError::Status {
                    operation,
                    status: 429,
                    detail: ODataDetail {
                        code: "TooManyRequests".into(),
                        message: "Graph asked for this request to wait (Retry-After)".into(),
                        ..Default::default()
                    },
                    retry_after: Some(wait),
                });
            }
            tokio::time::sleep(wait).await;
            waited += wait;
        }
        loop {
            let req = Req {
                operation,
                method: method.clone(),
                url,
                body,
                idempotency,
            };
            match self.attempt(req, attempt, &mut reauthenticated).await {
                Attempt::Done(status, bytes) => return Ok((status, bytes)),
                Attempt::Fail(e) => {
                    if let Some(wait) = e.retry_after() {
                        self.hold(key, wait);
                    }
                    return Err(e);
                }
                Attempt::Retry(wait, error) => {
                    self.hold(key, wait);
                    attempt += 1;
                    if attempt > self.config.max_retries || waited + wait > self.config.retry_budget {
                        return Err(with_retry_after(error, wait));
                    }
                    self.metrics.retried(operation);
                    tracing::debug!(
                        operation,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "retrying Graph request"
                    );
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
            }
        }
    }

    async fn attempt(&self, req: Req<'_>, retry: u32, reauthenticated: &mut bool) -> Attempt {
        let Req {
            operation,
            method,
            url,
            body,
            idempotency,
        } = req;
        self.limiter.acquire().await;
        let token = match &self.tokens {
            Some(t) => match t.token().await {
                Ok(tok) => Some(tok),
                Err(e) => return Attempt::Fail(e),
            },
            None => None,
        };
        let bearer = token.as_ref().map(|t| t.expose());
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let body = body.map(|b| match b {
            Payload::Json(v) => bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            Payload::Serialized(b) => b.clone(),
        });
        let started = Instant::now();
        let exchange = if self.batchable(&method, idempotency) {
            self.exchange_batched(method, url, body, client_request_id.clone(), bearer)
                .await
        } else {
            let Ok(_permit) = self.permits.acquire().await else {
                return Attempt::Fail(GraphError::Protocol {
                    operation,
                    detail: "the client is shutting down".into(),
                });
            };
            self.exchange_single(&method, url, body.as_ref(), &client_request_id, bearer)
                .await
        };
        let (status, retry_after, ids, bytes) = match exchange {
            exchange::Exchange::Answer {
                status,
                retry_after,
                ids,
                bytes,
            } => (status, retry_after, ids, bytes),
            exchange::Exchange::SendFailed {
                detail,
                refused,
                source,
            } => {
                self.metrics
                    .observe(operation, "error", started.elapsed().as_secs_f64());
                if idempotency == Idempotency::CreateOnce && !refused {
                    return Attempt::Fail(GraphError::AmbiguousCreate { operation, detail });
                }
                if source.as_ref().is_some_and(reqwest::Error::is_builder) {
                    return Attempt::Fail(GraphError::Transport {
                        operation,
                        detail,
                        source,
                    });
                }
                tracing::debug!(operation, error = %detail, "Graph request failed");
                return Attempt::Retry(
                    self.backoff(retry),
                    GraphError::Transport {
                        operation,
                        detail,
                        source,
                    },
                );
            }
            exchange::Exchange::ReadFailed { status, detail } => {
                self.metrics
                    .observe(operation, "error", started.elapsed().as_secs_f64());
                if idempotency == Idempotency::CreateOnce && (200..300).contains(&status) {
                    return Attempt::Fail(GraphError::AmbiguousCreate { operation, detail });
                }
                return Attempt::Fail(GraphError::Protocol { operation, detail });
            }
        };
        self.metrics
            .observe(operation, &status.to_string(), started.elapsed().as_secs_f64());
        if (200..300).contains(&status) {
            return Attempt::Done(status, bytes);
        }
        let mut detail = odata_detail(&bytes);
        // The headers first (Graph sets both on every answer), then the body's innerError, then the id
        // the operator sent.
        let body = detail.ids.take().map(|b| *b).unwrap_or_default();
        let ids = crate::graph::error::RequestIds {
            request_id: ids.0.or(body.request_id),
            client_request_id: ids.1.or(body.client_request_id).or(Some(client_request_id)),
        };
        // Every failed call is logged with both ids (a 404, which reads expect while cleaning up, at
        // debug).
        macro_rules! failed {
            ($level:ident) => {
                tracing::$level!(
                    operation,
                    status,
                    code = %detail.code,
                    request_id = ids.request_id.as_deref().unwrap_or("none"),
                    client_request_id = ids.client_request_id.as_deref().unwrap_or("none"),
                    "Graph request failed"
                )
            };
        }
        if status == 404 {
            failed!(debug);
        } else {
            failed!(info);
        }
        detail.ids = Some(Box::new(ids));
        if status == 401
            && !*reauthenticated
            && let (Some(tokens), Some(tok)) = (&self.tokens, &token)
        {
            tokens.invalidate(tok).await;
            *reauthenticated = true;
            return Attempt::Retry(
                Duration::ZERO,
                GraphError::Status {
                    operation,
                    status,
                    detail,
                    retry_after,
                },
            );
        }
        let retryable = match idempotency {
            Idempotency::Safe => matches!(status, 429 | 500 | 502 | 503 | 504),
            Idempotency::CreateOnce => status == 429,
        };
        if idempotency == Idempotency::CreateOnce && matches!(status, 500 | 502 | 503 | 504) {
            return Attempt::Fail(GraphError::AmbiguousCreate {
                operation,
                detail: format!("Graph answered {status} {}", detail.code),
            });
        }
        if retryable {
            let wait = retry_after.unwrap_or_else(|| self.backoff(retry));
            let error = GraphError::Status {
                operation,
                status,
                detail,
                retry_after: Some(wait),
            };
            if wait > self.config.retry_budget {
                return Attempt::Fail(error);
            }
            return Attempt::Retry(wait, error);
        }
        Attempt::Fail(GraphError::Status {
            operation,
            status,
            detail,
            retry_after,
        })
    }
}

fn with_retry_after(error: GraphError, wait: Duration) -> GraphError {
    match error {
        GraphError::Status {
            operation,
            status,
            detail,
            retry_after,
        } => GraphError::Status {
            operation,
            status,
            detail,
            retry_after: retry_after.or(Some(wait)),
        },
        other => other,
    }
}
