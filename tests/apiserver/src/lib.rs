//! `wufb-test-apiserver`: a small Kubernetes API server for wufb-operator's end-to-end tests and the
//! local demo. It serves what kube-rs (list, watch, status patches, finalizers, events, leases) and
//! kubectl (discovery, apply, get with server-side Table printing, delete, wait) use, on
//! `http://127.0.0.1:PORT`, JSON only. It is test infrastructure: never deployed.
//!
//! The same end-to-end tests run against a real cluster when `WUFB_E2E_KUBECONFIG` names a kubeconfig;
//! this server is then not started.
//!
//! # Differences from kube-apiserver
//!
//! | Area | kube-apiserver | this server |
//! |---|---|---|
//! | Server-side apply | managedFields, conflicts between managers, fields dropped from an applied config are removed | the same, minimally (`fields.rs`): ownership per manager, operation and subresource; a field a manager stops applying is removed unless another entry owns it; `atomic`, `set` and `map` lists from the CRD schema; conflicts unless forced; `managedFields` rendered in FieldsV1; the body's apiVersion and kind must be served |
//! | Strategic merge patch | supported for built-in types | 415 (kubectl uses JSON merge patch for custom resources) |
//! | Table output | every type, all printer-column JSONPath | CRD printer columns with the JSONPath subset `.a.b`, `[N]`, `[?(@.f=="v")]`; other types print Name and Age |
//! | Paging | `limit` and `continue` over a consistent snapshot | the same; the newest 16 lists are kept, an older or compacted token answers 410 Expired |
//! | Authentication, authorization, TLS | yes | plain HTTP; by default every request is allowed; with `Options::tokens`, a bearer token is required (401 without one) and a discovery-only token gets 403 for everything else |
//! | Access reviews | SubjectAccessReview, SelfSubjectAccessReview and the rest, answered from RBAC | SubjectAccessReview and SelfSubjectAccessReview (resource attributes only), allowed unless `TestApiServer::deny` matches |
//! | `/version` | the server's | the oldest version the operator supports ([`VERSION`]), or what `TestApiServer::set_version` sets |
//! | Protobuf, aggregated discovery | served | JSON only (a protobuf request body, as kubectl sends for built-in types such as `kubectl create namespace`, gets 415); legacy discovery |
//! | OpenAPI | v2 and v3, every type | v3 only (`openapi.rs`): one document per group-version, with the CRDs' schemas and paths whose writes declare `fieldValidation`, so kubectl validates through the server (`kubectl apply` needs no `--validate=false`) and `kubectl explain` works; built-in types get an open schema |
//! | Schema validation, pruning, defaulting, CEL | enforced from the CRD's openAPIV3Schema | enforced (`schema.rs`): unknown fields pruned (400 under `fieldValidation=Strict`), defaults, types, required, enum, `date`/`date-time`/`uuid` formats, patterns, min/max, lengths, item counts, set and map list uniqueness, then the `x-kubernetes-validations` CEL rules through kube-cel (`oldSelf` on update); 422 `Invalid` with a cause per field. Not checked: `int-or-string` details, `x-kubernetes-embedded-resource`, CEL cost at runtime, ratcheting of unchanged invalid fields. `TestApiServer::set_schema_checks(false)` stores objects as sent, as an older, looser CRD would have |
//! | Admission webhooks, version conversion | yes | none |
//! | Watch latency | events reach clients after the write's answer, later under load | `Options::watch_delay` after the write, in order (the e2e harness uses 100 ms) |
//! | Object size | 1.5 MiB per object (etcd), 3 MiB per request, 256 KiB of annotations | the same (500 `etcdserver: request is too large`, 413, 422) |
//! | Event validation | note at most 1 KiB, reason and action at most 128 bytes | the same (422) |
//! | Metadata normalisation | empty finalizers, labels and annotations dropped | the same |
//! | Watch history | etcd compaction window (minutes) | the last N events (default 10,000); older resourceVersions get 410 sooner |
//! | Deletion options | propagationPolicy, gracePeriodSeconds, dryRun, garbage collection | ignored; no owner-reference garbage collector |
//! | Namespaces | must exist before objects are created in them; deleting one deletes its objects | exist implicitly; deleting one deletes nothing else |
//! | Bookmarks, streaming lists | sent when asked | periodic bookmarks (`Options::bookmark_interval`) and the streaming-list end marker |
//! | Served types | everything | namespaces, secrets, config maps, service accounts, services, deployments and RBAC roles and bindings (stored, never run or enforced), events.k8s.io events (also listed read-only through `/api/v1/.../events` in the core shape, with field selectors on any field, for `kubectl describe`), leases, CRDs and registered custom resources |
//! | `generation` | set by each type's strategy | set (and bumped on spec change and on deletion) only for types with a status subresource |

pub mod fields;
mod openapi;
pub mod schema;
mod server;
pub mod store;
pub mod table;
pub mod types;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub use server::Shared;

/// The Kubernetes version `/version` reports: the oldest the operator supports
/// (`wufb_operator::crd::MIN_KUBERNETES`; a test keeps the two equal), so every test runs against it.
pub const VERSION: (u32, u32) = (1, 30);

/// An access review answer to deny: `user` `None` is the caller (SelfSubjectAccessReview), `Some` the
/// user a SubjectAccessReview names; `verb` and `resource` (`expediteddeployments/status`) match
/// exactly, or anything when `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub user: Option<String>,
    pub verb: String,
    pub resource: String,
}

impl Denial {
    fn matches(&self, user: Option<&str>, verb: &str, resource: &str) -> bool {
        self.user.as_deref() == user
            && (self.verb == "*" || self.verb == verb)
            && (self.resource == "*" || self.resource == resource)
    }
}
pub use store::{ApiError, PatchType, Store};

/// A running test API server. Dropping it stops serving.
pub struct TestApiServer {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Start options.
#[derive(Debug, Clone)]
pub struct Options {
    /// CRD objects (JSON) registered before the first request.
    pub crds: Vec<Value>,
    /// Watch events retained for resuming watches.
    pub history: usize,
    pub watch_timeout: Duration,
    /// Address to bind (`127.0.0.1:0` picks a free port).
    pub addr: String,
    /// Bearer tokens and what each may do. Empty (the default): no authentication at all; otherwise a
    /// request without a listed token gets 401 Unauthorized.
    pub tokens: Vec<(String, Access)>,
    /// How long after a write its watch event is delivered (events keep their order). A real server's
    /// watch lags its writes, by milliseconds to seconds under load; zero delivers at once.
    pub watch_delay: Duration,
    /// How often a watch that allows bookmarks gets one (a real server: about a minute).
    pub bookmark_interval: Duration,
}

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything.
    Full,
    /// Discovery only (`/version`, `/api`, `/apis`); anything else is 403 Forbidden.
    Discovery,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            crds: Vec::new(),
            history: 10_000,
            watch_timeout: Duration::from_secs(1800),
            addr: "127.0.0.1:0".into(),
            tokens: Vec::new(),
            watch_delay: Duration::ZERO,
            bookmark_interval: Duration::from_secs(60),
        }
    }
}

impl TestApiServer {
    /// Binds and serves in the background; the CRDs are registered (and stored) before it answers.
    pub async fn start(options: Options) -> std::io::Result<TestApiServer> {
        let listener = tokio::net::TcpListener::bind(&options.addr).await?;
        let addr = listener.local_addr()?;
        let mut store = Store::new(options.history);
        let crd_type = store.find_type("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        for crd in options.crds {
            if let Some(t) = &crd_type {
                store
                    .create(t, "", crd)
                    .map_err(|e| std::io::Error::other(e.message))?;
            }
        }
        let (closing, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            tokens: options.tokens,
            watch_delay: options.watch_delay,
            bookmark_interval: options.bookmark_interval,
            addr: addr.to_string(),
            watch_timeout: options.watch_timeout,
            closing,
            denials: Mutex::new(Vec::new()),
            version: Mutex::new(VERSION),
        });
        // The request size limit is the server's own (3 MiB, answered as a Status), not axum's.
        let app = axum::Router::new()
            .fallback(server::handle)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(TestApiServer {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server (kubectl and kube-rs both accept it).
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: wufb-test\n  cluster:\n    server: {}\ncontexts:\n- name: wufb-test\n  context:\n    cluster: wufb-test\n    user: wufb-test\n    namespace: {namespace}\ncurrent-context: wufb-test\nusers:\n- name: wufb-test\n  user: {{}}\n",
            self.url()
        )
    }

    /// With `false`, custom resources are stored as sent, as objects written under an older, looser CRD
    /// are on a real cluster; tests of how the controller treats such objects turn the checks off for
    /// their write and on again.
    pub fn set_schema_checks(&self, on: bool) {
        self.shared.lock().schema_checks = on;
    }

    /// `/version` reports `(major, minor)` from now on (default [`VERSION`]).
    pub fn set_version(&self, version: (u32, u32)) {
        *self.shared.version.lock().unwrap_or_else(|e| e.into_inner()) = version;
    }

    /// Access reviews deny `verb` on `resource` to `user` (`None`: the caller) from now on.
    pub fn deny(&self, user: Option<&str>, verb: &str, resource: &str) {
        self.shared
            .denials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Denial {
                user: user.map(str::to_string),
                verb: verb.into(),
                resource: resource.into(),
            });
    }

    /// Drops the retained watch history, so resuming any watch answers 410 Expired.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }

    /// Ends every open watch and drops the watch history, as an API server restart does: clients that
    /// resume their watch get 410 Expired and list again.
    pub fn restart_watches(&self) {
        let _ = self.shared.closing.send(true);
        self.compact();
    }

    /// Stops serving (open watches end).
    pub fn stop(&mut self) {
        let _ = self.shared.closing.send(true);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}
