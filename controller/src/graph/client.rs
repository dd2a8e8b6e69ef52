//! The operations the reconciler uses, each the fewest Graph calls that do the job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};

use super::auth::{Credential, TokenProvider};
use super::compliance::OsBuild;
use super::endpoints::Endpoints;
use super::error::GraphError;
use super::metrics::GraphMetrics;
use super::models::{
    AssetRef, AudienceUpdate, CatalogEntry, ContentRequest, Deployment, DeviceProfile, NS, ProductRevision,
    SettingsPatch, SettingsRequest, UpdatableAsset, odata_type,
};
use super::transport::{Idempotency, Payload, Transport, TransportConfig, http_client};
use crate::crd::DeviceId;

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
    pub builds: super::compliance::Builds,
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

    /// Tokens fetched so far (0 without a credential).
    pub fn token_acquisitions(&self) -> u64 {
        self.tokens.as_ref().map_or(0, |t| t.acquisitions())
    }

    pub(super) fn url(&self, path: &str) -> String {
        self.transport.endpoints.updates_url(path)
    }

    // ----- catalog -----------------------------------------------------------------------------------

    async fn catalog_query(&self, query: &str) -> Result<Vec<CatalogEntry>, GraphError> {
        self.catalog_query_within(query, CATALOG_TTL).await
    }

    /// A catalog list no older than `max_age` (answered from the cache within it).
    async fn catalog_query_within(
        &self,
        query: &str,
        max_age: Duration,
    ) -> Result<Vec<CatalogEntry>, GraphError> {
        let url = format!("{}?{query}", self.url("catalog/entries"));
        // Held across the fetch: concurrent reconciles asking for the same content share one call.
        let mut cache = self.catalog_cache.lock().await;
        if let Some((_, entries)) = cache
            .get(&url)
            .filter(|(at, _)| at.elapsed() < CATALOG_TTL.min(max_age))
        {
            return Ok(entries.clone());
        }
        let entries: Vec<CatalogEntry> = self.transport.collect("list catalog entries", &url).await?;
        cache.insert(url, (Instant::now(), entries.clone()));
        Ok(entries)
    }

    /// The newest expeditable quality updates, newest first.
    pub async fn expeditable_updates(&self, top: usize) -> Result<Vec<CatalogEntry>, GraphError> {
        self.expeditable_updates_within(top, CATALOG_TTL).await
    }

    /// [`GraphClient::expeditable_updates`] read no longer than `max_age` ago.
    pub async fn expeditable_updates_within(
        &self,
        top: usize,
        max_age: Duration,
    ) -> Result<Vec<CatalogEntry>, GraphError> {
        let filter = format!(
            "isof('{NS}qualityUpdateCatalogEntry') and {NS}qualityUpdateCatalogEntry/isExpeditable eq true"
        );
        self.catalog_query_within(
            &format!(
                "$filter={}&$orderby={}&$top={top}",
                enc(&filter),
                enc("releaseDateTime desc")
            ),
            max_age,
        )
        .await
    }

    /// The security quality updates the catalog lists as released on `date` (`YYYY-MM-DD`).
    pub async fn security_releases_on(&self, date: &str) -> Result<Vec<CatalogEntry>, GraphError> {
        let filter = format!("isof('{NS}qualityUpdateCatalogEntry') and releaseDateTime eq {date}T00:00:00Z");
        let entries = self.catalog_query(&format!("$filter={}", enc(&filter))).await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.quality_update_classification.as_deref() == Some("security"))
            .collect())
    }

    /// One catalog entry by id; `None` when the catalog has no such entry.
    pub async fn catalog_entry(&self, id: &str) -> Result<Option<CatalogEntry>, GraphError> {
        let url = self.url(&format!("catalog/entries/{}", enc(id)));
        absent(
            self.transport
                .json("get catalog entry", Method::GET, &url, None, Idempotency::Safe)
                .await,
        )
    }

    /// The product revisions of a catalog entry (`$expand=productRevisions`), cached for good.
    pub async fn entry_revisions(&self, id: &str) -> Result<Arc<Vec<ProductRevision>>, GraphError> {
        if let Some(r) = self.revisions_cache.lock().await.get(id) {
            return Ok(r.clone());
        }
        let url = format!(
            "{}?$expand=productRevisions",
            self.url(&format!("catalog/entries/{}", enc(id)))
        );
        let entry: CatalogEntry = self
            .transport
            .json("get catalog entry", Method::GET, &url, None, Idempotency::Safe)
            .await?;
        let revisions = Arc::new(entry.product_revisions);
        self.revisions_cache
            .lock()
            .await
            .insert(id.to_string(), revisions.clone());
        Ok(revisions)
    }

    // ----- device signals ----------------------------------------------------------------------------

    /// The tenant's device signals, no older than `max_age`: answered from the cache within it, else two
    /// collections read to their last page by `@odata.nextLink` (`data/deviceProfiles` and the
    /// `azureADDevice` assets; no `$top`, which caps the whole result, not the page), held across the
    /// fetch so that concurrent passes share one read.
    pub async fn device_signals_within(&self, max_age: Duration) -> Result<Arc<DeviceSignals>, GraphError> {
        let mut cache = self.signals_cache.lock().await;
        if let Some((_, s)) = cache.as_ref().filter(|(at, _)| at.elapsed() < max_age) {
            return Ok(s.clone());
        }
        let signals = Arc::new(self.read_device_signals().await?);
        *cache = Some((Instant::now(), signals.clone()));
        Ok(signals)
    }

    /// The newest device signals without waiting for Graph: what the cache holds (possibly older than
    /// `max_age`, possibly nothing yet), and, when that is older than `max_age`, one read started in the
    /// background (never two at once). A reconcile pass never waits on a tenant-wide read, which at
    /// 100,000 devices is thousands of pages: a pause must not queue behind it.
    pub fn device_signals_nowait(self: &Arc<Self>, max_age: Duration) -> Option<Arc<DeviceSignals>> {
        use std::sync::atomic::Ordering;
        let (current, fresh) = match self.signals_cache.try_lock() {
            Ok(cache) => match cache.as_ref() {
                Some((at, s)) => (Some(s.clone()), at.elapsed() < max_age),
                None => (None, false),
            },
            // A blocking caller is reading right now: nothing to start.
            Err(_) => return None,
        };
        if !fresh && !self.signals_refreshing.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                // A panic in the read ends this read alone: the flag below is cleared either way, so
                // a later pass starts another.
                match crate::panics::Contained::new(this.read_device_signals()).await {
                    Ok(Ok(s)) => *this.signals_cache.lock().await = Some((Instant::now(), Arc::new(s))),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "could not read the tenant's device signals; progress keeps its last figures")
                    }
                    Err(caught) => {
                        tracing::error!(location = %caught.location, panic = %caught.message, "reading the tenant's device signals panicked; progress keeps its last figures")
                    }
                }
                this.signals_refreshing.store(false, Ordering::Release);
            });
        }
        current
    }

    /// Reads `data/deviceProfiles` and the `azureADDevice` assets to their last pages, each page folded
    /// into the build table and the error map as it comes (a tenant of 100,000 devices is never held as
    /// read).
    async fn read_device_signals(&self) -> Result<DeviceSignals, GraphError> {
        let read_time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut builds = super::compliance::BuildsBuilder::default();
        self.transport
            .for_each_page(
                "list device profiles",
                self.url("data/deviceProfiles"),
                |page: Vec<DeviceProfile>| {
                    for p in page {
                        if let Some(build) = p.os_build.as_deref().and_then(OsBuild::parse) {
                            builds.push(lower_id(p.azure_ad_device_id.unwrap_or(p.id)), build);
                        }
                    }
                },
            )
            .await?;
        let mut errors = Vec::new();
        self.transport
            .for_each_page(
                "list device assets",
                self.url(&format!("updatableAssets/{NS}azureADDevice")),
                |page: Vec<UpdatableAsset>| {
                    errors.extend(page.into_iter().filter(|a| !a.errors.is_empty()).map(|a| {
                        let reasons: Vec<String> = a
                            .errors
                            .iter()
                            .map(|e| e.reason.as_ref().map_or("unknown".to_string(), |r| r.to_string()))
                            .collect();
                        (lower_id(a.id), reasons.join(", "))
                    }))
                },
            )
            .await?;
        // A map built from sorted entries has full nodes.
        errors.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(DeviceSignals {
            builds: builds.finish(),
            errors: errors.into_iter().collect(),
            read_time,
        })
    }

    // ----- deployments -------------------------------------------------------------------------------

    /// `POST /deploymentAudiences`: an empty audience for a deployment to be created with. Never
    /// retried blindly (an unclear outcome is `AmbiguousCreate`).
    pub async fn create_audience(&self) -> Result<String, GraphError> {
        self.create_empty(
            "create deployment audience",
            "deploymentAudiences",
            "deploymentAudience",
        )
        .await
    }

    /// `POST {collection}` of an object of type `ty` with no properties; returns the new id.
    pub(super) async fn create_empty(
        &self,
        operation: &'static str,
        collection: &str,
        ty: &str,
    ) -> Result<String, GraphError> {
        #[derive(serde::Deserialize)]
        struct Created {
            id: String,
        }
        let body = json!({"@odata.type": odata_type(ty)});
        let made: Created = self
            .transport
            .json(
                operation,
                Method::POST,
                &self.url(collection),
                Some(&body),
                Idempotency::CreateOnce,
            )
            .await?;
        Ok(made.id)
    }

    /// The id of a deployment's audience (`GET /deployments/{id}/audience`), for deployments whose
    /// audience id is not recorded; `None` when the service does not answer it (404, or 400 for a path
    /// it no longer serves).
    pub async fn deployment_audience_id(&self, deployment_id: &str) -> Result<Option<String>, GraphError> {
        let url = self.url(&format!("deployments/{}/audience", enc(deployment_id)));
        let got: Result<super::models::AudienceRef, GraphError> = self
            .transport
            .json(
                "get deployment audience",
                Method::GET,
                &url,
                None,
                Idempotency::Safe,
            )
            .await;
        match got {
            Ok(a) => Ok(a.id.filter(|s| !s.is_empty())),
            Err(e) if matches!(e.status(), Some(400 | 404)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /deploymentAudiences/{id}`; `false` when it was already gone.
    pub async fn delete_audience(&self, audience_id: &str) -> Result<bool, GraphError> {
        self.delete(
            "delete deployment audience",
            &format!("deploymentAudiences/{}", enc(audience_id)),
        )
        .await
    }

    /// `POST /deployments`, with the audience when given. Never retried blindly: an unclear outcome is
    /// `GraphError::AmbiguousCreate`.
    pub async fn create_deployment(
        &self,
        content: &ContentRequest,
        settings: &SettingsRequest,
        audience_id: Option<&str>,
    ) -> Result<Deployment, GraphError> {
        let legacy = matches!(content, ContentRequest::ReleaseDate { .. });
        let content = match content {
            ContentRequest::CatalogEntry(id) => json!({
                "@odata.type": odata_type("catalogContent"),
                "catalogEntry": {"@odata.type": odata_type("qualityUpdateCatalogEntry"), "id": id},
            }),
            ContentRequest::ReleaseDate {
                date,
                equivalent_content,
            } => json!({
                "@odata.type": odata_type("expeditedQualityUpdateReference"),
                "releaseDate": date,
                "equivalentContent": equivalent_content,
            }),
        };
        let mut body = json!({
            "@odata.type": odata_type("deployment"),
            "content": content,
            "settings": settings_body(settings, legacy),
        });
        if let Some(aid) = audience_id {
            body["audience"] = json!({"@odata.type": odata_type("deploymentAudience"), "id": aid});
        }
        self.transport
            .json(
                "create deployment",
                Method::POST,
                &self.url("deployments"),
                Some(&body),
                Idempotency::CreateOnce,
            )
            .await
    }

    /// `GET /deployments/{id}`; `None` when it does not exist.
    pub async fn get_deployment(&self, id: &str) -> Result<Option<Deployment>, GraphError> {
        let url = self.url(&format!("deployments/{}", enc(id)));
        absent(
            self.transport
                .json("get deployment", Method::GET, &url, None, Idempotency::Safe)
                .await,
        )
    }

    /// Replaces the managed settings (`PATCH`, 202 with the deployment).
    pub async fn update_settings(
        &self,
        id: &str,
        patch: &SettingsPatch,
        legacy: bool,
    ) -> Result<Deployment, GraphError> {
        let mut settings = serde_json::Map::new();
        let ty = if legacy {
            "windowsDeploymentSettings"
        } else {
            "deploymentSettings"
        };
        settings.insert("@odata.type".into(), json!(odata_type(ty)));
        if let Some(ux) = &patch.user_experience {
            settings.insert("userExperience".into(), Value::Object(ux.clone()));
        }
        if let Some(e) = patch.expedite.as_ref().filter(|_| !legacy) {
            settings.insert(
                "expedite".into(),
                json!({"isExpedited": e.is_expedited, "isReadinessTest": e.is_readiness_test}),
            );
        }
        let body = json!({"@odata.type": odata_type("deployment"), "settings": settings});
        let url = self.url(&format!("deployments/{}", enc(id)));
        self.transport
            .json(
                "update deployment settings",
                Method::PATCH,
                &url,
                Some(&body),
                Idempotency::Safe,
            )
            .await
    }

    /// Pauses (`requestedValue: paused`) or resumes (`none`) a deployment.
    pub async fn set_paused(&self, id: &str, paused: bool) -> Result<Deployment, GraphError> {
        let body = json!({
            "@odata.type": odata_type("deployment"),
            "state": {"requestedValue": if paused { "paused" } else { "none" }},
        });
        let url = self.url(&format!("deployments/{}", enc(id)));
        let op = if paused {
            "pause deployment"
        } else {
            "resume deployment"
        };
        self.transport
            .json(op, Method::PATCH, &url, Some(&body), Idempotency::Safe)
            .await
    }

    /// Deletes a deployment. `Ok(false)` when it was already gone.
    pub async fn delete_deployment(&self, id: &str) -> Result<bool, GraphError> {
        self.delete("delete deployment", &format!("deployments/{}", enc(id)))
            .await
    }

    /// `DELETE` of a deployment service object at `path`; `Ok(false)` when it was already gone.
    pub(super) async fn delete(&self, operation: &'static str, path: &str) -> Result<bool, GraphError> {
        let url = self.url(path);
        Ok(absent(
            self.transport
                .send(operation, Method::DELETE, &url, None, Idempotency::Safe)
                .await,
        )?
        .is_some())
    }

    /// Deployments created at or after `since`, for adopting a create whose answer was lost. The
    /// `createdDateTime` filter is not documented for deployments: when the service refuses it (400, 501),
    /// the list is read whole and filtered here.
    pub async fn deployments_created_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Deployment>, GraphError> {
        let filter = format!("createdDateTime ge {}", since.format("%Y-%m-%dT%H:%M:%SZ"));
        let url = format!("{}?$filter={}", self.url("deployments"), enc(&filter));
        match self.transport.collect("list deployments", &url).await {
            Err(e) if matches!(e.status(), Some(400 | 501)) => {
                tracing::info!(error = %e, "the service refused the createdDateTime filter; listing every deployment");
                let all: Vec<Deployment> = self
                    .transport
                    .collect("list deployments", &self.url("deployments"))
                    .await?;
                // A deployment without a readable creation time may be the one: kept, for the caller's
                // matching to decide.
                Ok(all
                    .into_iter()
                    .filter(|d| d.created().is_none_or(|t| t >= since))
                    .collect())
            }
            other => other,
        }
    }

    // ----- audiences ---------------------------------------------------------------------------------

    async fn audience_list(
        &self,
        audience: AudienceOf<'_>,
        which: &str,
    ) -> Result<Option<Vec<UpdatableAsset>>, GraphError> {
        let url = self.url(&format!("{}/{which}", audience.path()));
        let op = if which == "members" {
            "list audience members"
        } else {
            "list audience exclusions"
        };
        absent(
            self.transport
                .collect_sized(op, &url, |a: &UpdatableAsset| &a.id)
                .await,
        )
    }

    /// The members (or the exclusions) of a deployment's audience, every page; a 404 reads as empty.
    pub async fn audience_assets(
        &self,
        audience: AudienceOf<'_>,
        exclusions: bool,
    ) -> Result<BTreeSet<AssetRef>, GraphError> {
        let which = if exclusions { "exclusions" } else { "members" };
        Ok(self
            .audience_list(audience, which)
            .await?
            .unwrap_or_default()
            .iter()
            .map(UpdatableAsset::to_ref)
            .collect())
    }

    /// Reads members and exclusions, following every page. A 404 (an audience that never had members)
    /// reads as empty.
    pub async fn audience(&self, audience: AudienceOf<'_>) -> Result<Audience, GraphError> {
        let (members, exclusions) = futures::try_join!(
            self.audience_list(audience, "members"),
            self.audience_list(audience, "exclusions")
        )?;
        let never_listed = members.is_none() && exclusions.is_none();
        let mut a = Audience {
            never_listed,
            ..Default::default()
        };
        for asset in members.iter().flatten().chain(exclusions.iter().flatten()) {
            if !asset.errors.is_empty() {
                a.device_errors.insert(asset.id.clone(), asset.error_reasons());
            }
        }
        a.members = members
            .unwrap_or_default()
            .iter()
            .map(UpdatableAsset::to_ref)
            .collect();
        a.exclusions = exclusions
            .unwrap_or_default()
            .iter()
            .map(UpdatableAsset::to_ref)
            .collect();
        Ok(a)
    }

    /// Sends one `updateAudience` request. A 400 that names one of its assets is blamed on it; one that
    /// points into the asset lists without naming one is split in halves until it is one asset; any other
    /// 400 fails as Graph said it. One refused as too large (413) is split without blame. Returns the number of calls made. (Which assets go in which
    /// request, and in what order the requests go, is the planner's.)
    pub async fn update_audience(
        &self,
        audience: AudienceOf<'_>,
        update: &AudienceUpdate<'_>,
    ) -> Result<usize, GraphError> {
        let url = self.url(&format!("{}/updateAudience", audience.path()));
        let items: Vec<(&'static str, &AssetRef)> = update.items().collect();
        // Written straight from the assets: `{"addExclusions":[…],"removeMembers":[…],…}`.
        self.send_split("update deployment audience", &url, &items, |part| {
            serde_json::to_vec(&AudienceUpdate::of(part.iter().copied()))
        })
        .await
    }

    /// Sends `items` as one request; see [`Self::update_audience`] for what a 400 or 413 does.
    pub(super) async fn send_split<T: Clone + ItemId>(
        &self,
        operation: &'static str,
        url: &str,
        items: &[T],
        body: impl Fn(&[T]) -> Result<Vec<u8>, serde_json::Error>,
    ) -> Result<usize, GraphError> {
        let mut stack: Vec<&[T]> = vec![items];
        let mut calls = 0;
        while let Some(part) = stack.pop() {
            if part.is_empty() {
                continue;
            }
            calls += 1;
            let serialized = bytes::Bytes::from(body(part).map_err(|e| GraphError::Encode {
                operation,
                detail: e.to_string(),
            })?);
            match self
                .transport
                .send_payload(
                    operation,
                    Method::POST,
                    url,
                    Some(Payload::Serialized(&serialized)),
                    Idempotency::Safe,
                )
                .await
            {
                Ok(_) => {}
                // Too many assets for one request (a limit the reference does not document): halves,
                // blaming no asset.
                Err(e) if e.status() == Some(413) && part.len() > 1 => {
                    let (a, b) = part.split_at(part.len() / 2);
                    stack.push(b);
                    stack.push(a);
                }
                // A refusal is blamed on an asset only when it names one. Bad devices are documented to
                // show in each device's `errors`, not as a 400, so a 400 that names no asset (a wrong
                // path, body or option) fails the request as Graph said it, with no split and no blame.
                Err(GraphError::Status {
                    operation,
                    status: 400,
                    mut detail,
                    retry_after,
                }) => {
                    let ids: Vec<String> = part.iter().map(ItemId::item_id).collect();
                    match detail.names(ids.iter().map(String::as_str)) {
                        Some(id) => {
                            detail.message = format!("{} (asset {id})", detail.message);
                        }
                        None if detail.points_at_assets() && part.len() > 1 => {
                            // It points into the lists without naming the asset: halves until it is one.
                            let (a, b) = part.split_at(part.len() / 2);
                            stack.push(b);
                            stack.push(a);
                            continue;
                        }
                        None if detail.points_at_assets() => {
                            detail.message = format!("{} (asset {})", detail.message, part[0].item_id());
                        }
                        None => {}
                    }
                    return Err(GraphError::Status {
                        operation,
                        status: 400,
                        detail,
                        retry_after,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(calls)
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

fn settings_body(s: &SettingsRequest, legacy: bool) -> Value {
    let mut ux = serde_json::Map::new();
    if let Some(d) = s.days_until_forced_reboot {
        ux.insert("daysUntilForcedReboot".into(), json!(d));
    }
    if let Some(o) = s.offer_as_optional {
        ux.insert("offerAsOptional".into(), json!(o));
    }
    if legacy {
        json!({"@odata.type": odata_type("windowsDeploymentSettings"), "userExperience": ux})
    } else {
        json!({
            "@odata.type": odata_type("deploymentSettings"),
            "expedite": {"isExpedited": true, "isReadinessTest": s.readiness_test},
            "userExperience": ux,
        })
    }
}
