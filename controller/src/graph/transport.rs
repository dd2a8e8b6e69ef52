//! Resilient transport: TLS with verification, timeouts, a shared token-bucket rate limit, bounded
//! concurrency, retries that honour `Retry-After` (seconds, fractional seconds or an HTTP-date) with
//! exponential backoff and jitter otherwise, bounded response sizes, and `@odata.nextLink` paging.

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
use super::models::{ErrorEnvelope, Page};

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

/// A token bucket shared by every caller of one tenant.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            // Not a finite positive rate: unlimited (the flag and the connection budget refuse one).
            rate: if rate_per_sec.is_finite() && rate_per_sec > 0.0 {
                rate_per_sec
            } else {
                0.0
            },
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        if self.rate <= 0.0 {
            return;
        }
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                // At most a second of tokens short, so at most 1/rate seconds (bounded for any rate).
                Duration::try_from_secs_f64((1.0 - s.0) / self.rate).unwrap_or(MAX_RETRY_AFTER)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The longest wait a `Retry-After` can ask for; a longer one is held to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// Parses `Retry-After`: delta-seconds (whole or fractional) or an HTTP-date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
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
    metrics: GraphMetrics,
    jitter: AtomicU64,
    /// Operations whose collections refused client-driven paging (or whose parallel pages did not add
    /// up): read by `@odata.nextLink` from then on, without asking again.
    next_link_only: std::sync::Mutex<std::collections::BTreeSet<&'static str>>,
    /// Requests the service asked to hold (`Retry-After`), by method, URL and body: the same request is
    /// not sent again before its time, whichever caller sends it (a later pass, or a pass started after
    /// the one that was waiting was dropped).
    held: std::sync::Mutex<std::collections::HashMap<u64, Instant>>,
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

/// Builds the HTTP client: rustls with the ring provider, the public web roots and any extra CA file.
pub fn http_client(config: &TransportConfig) -> Result<reqwest::Client, GraphError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.ca_file {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| GraphError::Config {
            detail: format!("cannot read CA file '{}': {e}", path.display()),
        })?;
        for cert in certs {
            let cert = cert.map_err(|e| GraphError::Config {
                detail: format!("bad certificate in '{}': {e}", path.display()),
            })?;
            roots.add(cert).map_err(|e| GraphError::Config {
                detail: format!("unusable CA in '{}': {e}", path.display()),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GraphError::Config {
            detail: format!("TLS setup failed: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(config.timeout)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("wufb-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| GraphError::Config {
            detail: format!("HTTP client setup failed: {e}"),
        })
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
                        target: None,
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
        let Ok(_permit) = self.permits.acquire().await else {
            return Attempt::Fail(GraphError::Protocol {
                operation,
                detail: "the client is shutting down".into(),
            });
        };
        let token = match &self.tokens {
            Some(t) => match t.token().await {
                Ok(tok) => Some(tok),
                Err(e) => return Attempt::Fail(e),
            },
            None => None,
        };
        let mut req = self
            .http
            .request(method, url)
            .header("Prefer", "include-unknown-enum-members")
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .header("Accept", "application/json");
        if let Some(tok) = &token {
            req = req.bearer_auth(tok.expose());
        }
        match body {
            Some(Payload::Json(b)) => req = req.json(b),
            Some(Payload::Serialized(b)) => {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            None => {}
        }
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.metrics
                    .observe(operation, "error", started.elapsed().as_secs_f64());
                let refused = e.is_connect();
                if idempotency == Idempotency::CreateOnce && !refused {
                    return Attempt::Fail(GraphError::AmbiguousCreate {
                        operation,
                        detail: describe(&e),
                    });
                }
                if e.is_builder() {
                    return Attempt::Fail(GraphError::Transport {
                        operation,
                        detail: describe(&e),
                        source: Some(e),
                    });
                }
                tracing::debug!(operation, error = %describe(&e), "Graph request failed");
                return Attempt::Retry(
                    self.backoff(retry),
                    GraphError::Transport {
                        operation,
                        detail: describe(&e),
                        source: Some(e),
                    },
                );
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = match read_capped(resp, self.config.max_response_bytes).await {
            Ok(b) => b,
            Err(detail) => {
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
        let detail = odata_detail(&bytes);
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

    /// Sends a request and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<T, GraphError> {
        let (_, bytes) = self.send(operation, method, url, body, idempotency).await?;
        serde_json::from_slice(&bytes).map_err(|e| GraphError::Decode {
            operation,
            detail: e.to_string(),
        })
    }

    /// Reads a whole collection, following `@odata.nextLink` until the last page.
    pub async fn collect<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: &str,
    ) -> Result<Vec<T>, GraphError> {
        self.follow(operation, Vec::new(), url.to_string()).await
    }

    /// Appends to `out` the page at `url` and every page after it.
    async fn follow<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        mut out: Vec<T>,
        url: String,
    ) -> Result<Vec<T>, GraphError> {
        self.for_each_page(operation, url, |page| out.extend(page))
            .await?;
        Ok(out)
    }

    /// Reads a collection page by page, following `@odata.nextLink` until the last page, and hands
    /// each page's items to `each` as it arrives: a caller that folds them into something smaller
    /// (a set of ids, counts) never holds the whole collection as read.
    pub async fn for_each_page<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: String,
        mut each: impl FnMut(Vec<T>),
    ) -> Result<(), GraphError> {
        let mut next = Some(url);
        let mut seen = HashSet::new();
        while let Some(url) = next.take() {
            if seen.len() >= self.config.max_pages {
                return Err(GraphError::Protocol {
                    operation,
                    detail: format!(
                        "more than {} pages; the collection is too large or the service loops",
                        self.config.max_pages
                    ),
                });
            }
            if !seen.insert(url.clone()) {
                return Err(GraphError::Protocol {
                    operation,
                    detail: "the service returned a nextLink that was already followed".into(),
                });
            }
            let page: Page<T> = self
                .json(operation, Method::GET, &url, None, Idempotency::Safe)
                .await?;
            each(page.value);
            if let Some(link) = page.next_link {
                if !self.endpoints.same_origin(&link) {
                    return Err(GraphError::Protocol {
                        operation,
                        detail: "the service returned a nextLink to another host; it was not followed".into(),
                    });
                }
                next = Some(link);
            }
        }
        Ok(())
    }
}

/// A page asked with `$count=true`.
#[derive(Debug, serde::Deserialize)]
struct CountedPage<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.count", default)]
    count: Option<u64>,
}

impl Transport {
    /// Reads a whole collection, fetching its pages in parallel when the service reports the size.
    ///
    /// The first page is asked with `$count=true`; it gives the page size and the count, and the other
    /// pages are then asked at once with `$skip` and `$top` (documented query options, not values taken
    /// out of a nextLink). The pages must add up to exactly the count of distinct ids; if they do not
    /// (the collection changed while it was read, or the service does not keep a stable order), or if
    /// the service gives no count, the collection is read again by following `@odata.nextLink`, the
    /// one way of paging every service supports. A collection of N pages then takes about N ÷
    /// concurrency round trips instead of N.
    pub async fn collect_sized<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: &str,
        id: fn(&T) -> &str,
    ) -> Result<Vec<T>, GraphError> {
        self.fold_sized(
            operation,
            url,
            |_| Vec::new(),
            |out: &mut Vec<T>, page| out.extend(page),
            |out| distinct_ids(out, id),
        )
        .await
    }

    /// [`Transport::collect_sized`], with each page folded into `A` as it arrives instead of kept:
    /// `new` makes an empty `A` (given the service's count when it gave one), `distinct` counts the
    /// distinct ids folded so far (the check that the pages add up).
    pub async fn fold_sized<T: DeserializeOwned, A>(
        &self,
        operation: &'static str,
        url: &str,
        new: impl Fn(Option<u64>) -> A,
        mut fold: impl FnMut(&mut A, Vec<T>),
        distinct: impl Fn(&mut A) -> usize,
    ) -> Result<A, GraphError> {
        let sep = if url.contains('?') { '&' } else { '?' };
        let remembered = self
            .next_link_only
            .lock()
            .map(|s| s.contains(operation))
            .unwrap_or(false);
        if remembered {
            return self.fold_pages(operation, url, new(None), fold).await;
        }
        let first: CountedPage<T> = match self
            .json(
                operation,
                Method::GET,
                &format!("{url}{sep}$count=true"),
                None,
                Idempotency::Safe,
            )
            .await
        {
            Ok(page) => page,
            // Refused client-driven paging (the newest audience pages allow only `$skiptoken`).
            Err(e) if e.status() == Some(400) => {
                self.only_next_links(operation, &e.to_string());
                return self.fold_pages(operation, url, new(None), fold).await;
            }
            Err(e) => return Err(e),
        };
        let page_size = first.value.len();
        let mut out = new(first.count);
        let Some(next) = first.next_link else {
            fold(&mut out, first.value);
            return Ok(out);
        };
        let Some(count) = first.count.filter(|_| page_size > 0) else {
            // No count (or an empty page): the pages can only be followed one after the other.
            if !self.endpoints.same_origin(&next) {
                return Err(GraphError::Protocol {
                    operation,
                    detail: "the service returned a nextLink to another host; it was not followed".into(),
                });
            }
            fold(&mut out, first.value);
            self.for_each_page(operation, next, |page| fold(&mut out, page))
                .await?;
            return Ok(out);
        };
        let pages = count.div_ceil(page_size as u64);
        if pages > self.config.max_pages as u64 {
            return Err(GraphError::Protocol {
                operation,
                detail: format!(
                    "{count} items in pages of {page_size}: more than {} pages; the collection is too large",
                    self.config.max_pages
                ),
            });
        }
        let mut items = page_size;
        fold(&mut out, first.value);
        let rest = (1..pages).map(|k| format!("{url}{sep}$skip={}&$top={page_size}", k * page_size as u64));
        let mut fetched = std::pin::pin!(
            futures::stream::iter(rest)
                .map(|u| async move {
                    self.json::<CountedPage<T>>(operation, Method::GET, &u, None, Idempotency::Safe)
                        .await
                })
                .buffered(self.config.concurrency.max(1))
        );
        let mut complete = true;
        while let Some(page) = fetched.next().await {
            match page {
                Ok(page) => {
                    complete &= page.next_link.is_none();
                    items += page.value.len();
                    fold(&mut out, page.value);
                }
                Err(e) if e.status() == Some(400) => {
                    self.only_next_links(operation, &e.to_string());
                    drop(out);
                    return self.fold_pages(operation, url, new(None), fold).await;
                }
                Err(e) => return Err(e),
            }
        }
        let distinct = distinct(&mut out);
        if complete && distinct as u64 == count && items == distinct {
            return Ok(out);
        }
        drop(out);
        self.only_next_links(
            operation,
            &format!("{items} items read in parallel pages, {distinct} distinct, of {count} counted"),
        );
        self.fold_pages(operation, url, new(None), fold).await
    }

    /// Every page from `url` on, folded into `out`.
    async fn fold_pages<T: DeserializeOwned, A>(
        &self,
        operation: &'static str,
        url: &str,
        mut out: A,
        mut fold: impl FnMut(&mut A, Vec<T>),
    ) -> Result<A, GraphError> {
        self.for_each_page(operation, url.to_string(), |page| fold(&mut out, page))
            .await?;
        Ok(out)
    }

    /// Remembers that `operation`'s collections are read by `@odata.nextLink` only.
    fn only_next_links(&self, operation: &'static str, why: &str) {
        if let Ok(mut s) = self.next_link_only.lock()
            && s.insert(operation)
        {
            tracing::info!(
                operation,
                why,
                "client-driven paging refused or inconsistent; following nextLink from now on"
            );
        }
    }
}

fn distinct_ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> usize {
    items.iter().map(id).collect::<HashSet<&str>>().len()
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

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection refused or unreachable"
    } else {
        "connection failed"
    };
    match std::error::Error::source(e) {
        Some(src) => format!("{kind}: {src}"),
        None => kind.to_string(),
    }
}

fn odata_detail(bytes: &[u8]) -> ODataDetail {
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
    }
}

async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<bytes::Bytes, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("2.128"), Some(Duration::from_millis(2128)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:12 GMT"),
            Some(Duration::ZERO),
            "past dates mean now"
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(5))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let d = parse_retry_after(&soon).unwrap();
        assert!(d > Duration::from_secs(3) && d <= Duration::from_secs(5), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test]
    async fn token_bucket_paces_after_the_burst() {
        let l = RateLimiter::new(100.0, 5);
        let t = Instant::now();
        for _ in 0..15 {
            l.acquire().await;
        }
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(90),
            "10 tokens at 100/s take about 100 ms, took {e:?}"
        );
    }
}
