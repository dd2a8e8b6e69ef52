//! The operations the reconciler uses, each the fewest Graph calls that do the job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};

use super::auth::{Credential, TokenProvider};
use super::endpoints::Endpoints;
use super::error::GraphError;
use super::metrics::GraphMetrics;
use super::transport::{Idempotency, Payload, Transport, TransportConfig, http_client};
use crate::crd::DeviceId;
use crate::graph::compliance::OsBuild;
use crate::graph::models::{
    AssetRef, AudienceUpdate, CatalogEntry, ContentRequest, Deployment, DeviceProfile, NS, ProductRevision,
    SettingsPatch, SettingsRequest, UpdatableAsset, odata_type,
};

mod audiences;
mod catalog;
mod deployments;
mod probe;
mod signals;

pub use probe::{AUDIENCE_PAGING, DEPLOYMENT_FILTER, DEVICE_SIGNALS, TokenClaims};

/// How to reach a tenant.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub endpoints: Endpoints,
    /// `None` talks to an emulator started with `--no-auth`.
    pub credential: Option<Credential>,
    pub transport: TransportConfig,
    /// Most assets per audience or group write (default 1,000).
    pub batch_size: usize,
}

/// Default assets per audience or group write: about 95 KB of `updateAudience` body, well under any
/// request size limit, and 50 calls for 50,000 devices.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// An audience as Graph holds it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Audience {
    pub members: BTreeSet<AssetRef>,
    pub exclusions: BTreeSet<AssetRef>,
    /// Registration errors of listed devices, by device id.
    pub device_errors: BTreeMap<String, Vec<String>>,
    /// Graph answered 404 for the lists (an audience that never had members, or one Graph will not show).
    pub never_listed: bool,
}

/// A device id as Graph gives it, in lower case (how device ids compare).
pub(super) fn lower_id(mut id: String) -> DeviceId {
    id.make_ascii_lowercase();
    DeviceId::new(&id)
}

/// A 404 as `None`: the one place "not found" means "absent" for the calls below. (Whether a 404 proves
/// absence is the caller's question; these calls only report it.)
pub(super) fn absent<T>(result: Result<T, GraphError>) -> Result<Option<T>, GraphError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(super) fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

/// The client for one tenant: shared by every reconcile, which share its rate limit.
#[derive(Debug)]
pub struct GraphClient {
    pub(super) transport: Transport,
    tokens: Option<Arc<TokenProvider>>,
    batch_size: usize,
    catalog_cache: tokio::sync::Mutex<HashMap<String, (Instant, Vec<CatalogEntry>)>>,
    /// The tenant's device signals, read once per progress interval for every object.
    signals_cache: tokio::sync::Mutex<Option<(Instant, Arc<DeviceSignals>)>>,
    /// A background read of the device signals is under way.
    signals_refreshing: Arc<std::sync::atomic::AtomicBool>,
    /// Product revisions by catalog entry (an entry's revisions do not change).
    revisions_cache: tokio::sync::Mutex<HashMap<String, Arc<Vec<ProductRevision>>>>,
}

/// What Graph says about the tenant's devices at one moment: the build each reporting device runs
/// (`deviceProfiles`) and the registration errors of device assets (`updatableAssets`), by lower-case
/// device id.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeviceSignals {
    /// Each reporting device's build, by lower-case device id.
    pub builds: crate::graph::compliance::Builds,
    /// The registration errors of each device that has any, by lower-case device id.
    pub errors: BTreeMap<DeviceId, String>,
    /// When they were read (RFC 3339).
    pub read_time: String,
}

const CATALOG_TTL: Duration = Duration::from_secs(300);

impl GraphClient {
    pub fn new(config: GraphConfig, metrics: GraphMetrics) -> Result<Self, GraphError> {
        let http = http_client(&config.transport)?;
        let tokens = config
            .credential
            .map(|c| TokenProvider::new(c, &config.endpoints, http.clone()));
        Ok(GraphClient {
            transport: Transport::new(config.endpoints, tokens.clone(), http, config.transport, metrics),
            tokens,
            batch_size: config.batch_size.max(1),
            catalog_cache: tokio::sync::Mutex::new(HashMap::new()),
            signals_cache: tokio::sync::Mutex::new(None),
            signals_refreshing: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            revisions_cache: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.transport.endpoints
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Requests the transport sends at once.
    pub fn concurrency(&self) -> usize {
        self.transport.concurrency()
    }

    /// Signs in and makes the cheapest read a connection must be able to make (the newest expeditable
    /// catalog entry), so that a wrong credential or a missing permission shows before any object
    /// uses the client.
    pub async fn probe(&self) -> Result<(), GraphError> {
        self.expeditable_updates_within(1, Duration::ZERO)
            .await
            .map(|_| ())
    }

    /// The tenant the client signs in to (`None` without a credential).
    pub fn tenant_id(&self) -> Option<&str> {
        self.tokens.as_ref().map(|t| t.credential().tenant_id.as_str())
    }

    /// When the client's certificate credential expires (Unix seconds); `None` for other credentials.
    pub fn certificate_expiry(&self) -> Option<i64> {
        self.tokens
            .as_ref()
            .and_then(|t| t.credential().certificate_expiry())
    }

    /// Tokens fetched so far (0 without a credential).
    pub fn token_acquisitions(&self) -> u64 {
        self.tokens.as_ref().map_or(0, |t| t.acquisitions())
    }

    pub(super) fn url(&self, path: &str) -> String {
        self.transport.endpoints.updates_url(path)
    }
}

/// Names an item in an error about it.
/// How a deployment's audience is addressed: by its id (`deploymentAudiences/{id}`, the documented
/// form), or through the deployment (`deployments/{id}/audience`, for deployments whose audience id the
/// service does not give).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceOf<'a> {
    Id(&'a str),
    Deployment(&'a str),
}

impl AudienceOf<'_> {
    fn path(&self) -> String {
        match self {
            AudienceOf::Id(aid) => format!("deploymentAudiences/{}", enc(aid)),
            AudienceOf::Deployment(id) => format!("deployments/{}/audience", enc(id)),
        }
    }
}

pub(super) trait ItemId {
    /// The id as Graph's errors would name it (read only when a write is refused).
    fn item_id(&self) -> String;
}

impl ItemId for DeviceId {
    fn item_id(&self) -> String {
        self.to_string()
    }
}

impl ItemId for (&'static str, &AssetRef) {
    fn item_id(&self) -> String {
        self.1.id.clone()
    }
}
