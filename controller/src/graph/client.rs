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
use super::models::{AssetKind, AssetRef, CatalogEntry, Deployment, NS, UpdatableAsset, odata_type};
use super::transport::{Idempotency, Payload, Transport, TransportConfig, http_client};

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

/// Which content a new deployment carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentRequest {
    /// `catalogContent` with an entry id (the current form).
    CatalogEntry(String),
    /// The legacy `expeditedQualityUpdateReference`: minimum compliance with the release of that date.
    ReleaseDate {
        date: String,
        equivalent_content: String,
    },
}

/// The settings the operator manages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SettingsRequest {
    pub days_until_forced_reboot: Option<i32>,
    pub offer_as_optional: Option<bool>,
    pub readiness_test: bool,
}

/// Set differences to apply to an audience.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AudienceDiff {
    pub add_members: Vec<AssetRef>,
    pub remove_members: Vec<AssetRef>,
    pub add_exclusions: Vec<AssetRef>,
    pub remove_exclusions: Vec<AssetRef>,
}

impl AudienceDiff {
    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    pub fn size(&self) -> usize {
        self.add_members.len()
            + self.remove_members.len()
            + self.add_exclusions.len()
            + self.remove_exclusions.len()
    }
}

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

const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

/// The client for one tenant: shared by every reconcile, which share its rate limit.
#[derive(Debug)]
pub struct GraphClient {
    transport: Transport,
    tokens: Option<Arc<TokenProvider>>,
    batch_size: usize,
    catalog_cache: tokio::sync::Mutex<HashMap<String, (Instant, Vec<CatalogEntry>)>>,
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
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.transport.endpoints
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Tokens fetched so far (0 without a credential).
    pub fn token_acquisitions(&self) -> u64 {
        self.tokens.as_ref().map_or(0, |t| t.acquisitions())
    }

    fn url(&self, path: &str) -> String {
        self.transport.endpoints.updates_url(path)
    }

    // ----- catalog -----------------------------------------------------------------------------------

    async fn catalog_query(&self, query: &str) -> Result<Vec<CatalogEntry>, GraphError> {
        let url = format!("{}?{query}", self.url("catalog/entries"));
        // Held across the fetch: concurrent reconciles asking for the same content share one call.
        let mut cache = self.catalog_cache.lock().await;
        if let Some((_, entries)) = cache.get(&url).filter(|(at, _)| at.elapsed() < CATALOG_TTL) {
            return Ok(entries.clone());
        }
        let entries: Vec<CatalogEntry> = self.transport.collect("list catalog entries", &url).await?;
        cache.insert(url, (Instant::now(), entries.clone()));
        Ok(entries)
    }

    /// The newest expeditable quality updates, newest first.
    pub async fn expeditable_updates(&self, top: usize) -> Result<Vec<CatalogEntry>, GraphError> {
        let filter = format!(
            "isof('{NS}qualityUpdateCatalogEntry') and {NS}qualityUpdateCatalogEntry/isExpeditable eq true"
        );
        self.catalog_query(&format!(
            "$filter={}&$orderby={}&$top={top}",
            enc(&filter),
            enc("releaseDateTime desc")
        ))
        .await
    }

    /// The security quality update released on `date` (`YYYY-MM-DD`), if the catalog has one.
    pub async fn security_release_on(&self, date: &str) -> Result<Option<CatalogEntry>, GraphError> {
        let filter = format!("isof('{NS}qualityUpdateCatalogEntry') and releaseDateTime eq {date}T00:00:00Z");
        let entries = self.catalog_query(&format!("$filter={}", enc(&filter))).await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.quality_update_classification.as_deref() == Some("security"))
            .max_by_key(|e| e.can_expedite()))
    }

    /// One catalog entry by id; `None` when the catalog has no such entry.
    pub async fn catalog_entry(&self, id: &str) -> Result<Option<CatalogEntry>, GraphError> {
        let url = self.url(&format!("catalog/entries/{}", enc(id)));
        match self
            .transport
            .json("get catalog entry", Method::GET, &url, None, Idempotency::Safe)
            .await
        {
            Ok(e) => Ok(Some(e)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ----- deployments -------------------------------------------------------------------------------

    /// `POST /deployments`. Never retried blindly: an unclear outcome is `GraphError::AmbiguousCreate`.
    pub async fn create_deployment(
        &self,
        content: &ContentRequest,
        settings: &SettingsRequest,
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
        let body = json!({
            "@odata.type": odata_type("deployment"),
            "content": content,
            "settings": settings_body(settings, legacy),
        });
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
        match self
            .transport
            .json("get deployment", Method::GET, &url, None, Idempotency::Safe)
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the managed settings (`PATCH`, 202 with the deployment).
    pub async fn update_settings(
        &self,
        id: &str,
        settings: &SettingsRequest,
        legacy: bool,
    ) -> Result<Deployment, GraphError> {
        let body =
            json!({"@odata.type": odata_type("deployment"), "settings": settings_body(settings, legacy)});
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
        let url = self.url(&format!("deployments/{}", enc(id)));
        match self
            .transport
            .send("delete deployment", Method::DELETE, &url, None, Idempotency::Safe)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deployments created at or after `since`, for adopting a create whose answer was lost.
    pub async fn deployments_created_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Deployment>, GraphError> {
        let filter = format!("createdDateTime ge {}", since.format("%Y-%m-%dT%H:%M:%SZ"));
        let url = format!("{}?$filter={}", self.url("deployments"), enc(&filter));
        self.transport.collect("list deployments", &url).await
    }

    // ----- audiences ---------------------------------------------------------------------------------

    async fn audience_list(
        &self,
        deployment_id: &str,
        which: &str,
    ) -> Result<Option<Vec<UpdatableAsset>>, GraphError> {
        let url = self.url(&format!("deployments/{}/audience/{which}", enc(deployment_id)));
        let op = if which == "members" {
            "list audience members"
        } else {
            "list audience exclusions"
        };
        match self
            .transport
            .collect_sized(op, &url, |a: &UpdatableAsset| &a.id)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads members and exclusions, following every page. A 404 (an audience that never had members)
    /// reads as empty.
    pub async fn audience(&self, deployment_id: &str) -> Result<Audience, GraphError> {
        let (members, exclusions) = futures::try_join!(
            self.audience_list(deployment_id, "members"),
            self.audience_list(deployment_id, "exclusions")
        )?;
        let never_listed = members.is_none() && exclusions.is_none();
        let mut a = Audience {
            never_listed,
            ..Default::default()
        };
        for asset in members.iter().flatten().chain(exclusions.iter().flatten()) {
            if !asset.errors.is_empty() {
                a.device_errors.insert(
                    asset.id.clone(),
                    asset
                        .errors
                        .iter()
                        .filter_map(|e| e.reason.as_ref().map(|r| r.to_string()))
                        .collect(),
                );
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

    /// Applies a diff with `updateAudience` in batches of at most `batch_size` assets. Exclusions are added
    /// first and removed last, so no device is offered the update while it should be excluded. A batch the
    /// service refuses with 400 is split in halves until the refused asset is isolated. Returns the
    /// number of calls made.
    pub async fn apply_audience_diff(
        &self,
        deployment_id: &str,
        diff: &AudienceDiff,
    ) -> Result<usize, GraphError> {
        let url = self.url(&format!(
            "deployments/{}/audience/updateAudience",
            enc(deployment_id)
        ));
        let ordered: Vec<(&'static str, &AssetRef)> = diff
            .add_exclusions
            .iter()
            .map(|a| ("addExclusions", a))
            .chain(diff.remove_members.iter().map(|a| ("removeMembers", a)))
            .chain(diff.add_members.iter().map(|a| ("addMembers", a)))
            .chain(diff.remove_exclusions.iter().map(|a| ("removeExclusions", a)))
            .collect();
        // Written straight from the assets: `{"addExclusions":[…],"removeMembers":[…],…}`.
        let body = |items: &[(&'static str, &AssetRef)]| {
            let mut lists: BTreeMap<&'static str, Vec<&AssetRef>> = BTreeMap::new();
            for (field, asset) in items {
                lists.entry(field).or_default().push(asset);
            }
            serde_json::to_vec(&lists).unwrap_or_default()
        };
        // Batches go out in three waves, each wave's batches at once: those adding exclusions, then the
        // member changes, then those removing exclusions. No device is offered the update before its
        // exclusion is in place, and the number of calls stays at the lower bound.
        let chunks: Vec<&[(&'static str, &AssetRef)]> = ordered.chunks(self.batch_size).collect();
        let first = |c: &&[(&'static str, &AssetRef)]| c.iter().any(|(f, _)| *f == "addExclusions");
        let last =
            |c: &&[(&'static str, &AssetRef)]| !first(c) && c.iter().any(|(f, _)| *f == "removeExclusions");
        let waves: [Vec<&[(&'static str, &AssetRef)]>; 3] = [
            chunks.iter().filter(|c| first(c)).copied().collect(),
            chunks.iter().filter(|c| !first(c) && !last(c)).copied().collect(),
            chunks.iter().filter(|c| last(c)).copied().collect(),
        ];
        let mut calls = 0;
        for wave in waves {
            let sent = futures::future::join_all(
                wave.into_iter()
                    .map(|chunk| self.send_split("update deployment audience", &url, chunk, body)),
            )
            .await;
            for r in sent {
                calls += r?;
            }
        }
        Ok(calls)
    }

    /// Sends `items` as one request; on a 400 for more than one item, splits in halves and retries each.
    async fn send_split<T: Clone + ItemId>(
        &self,
        operation: &'static str,
        url: &str,
        items: &[T],
        body: impl Fn(&[T]) -> Vec<u8>,
    ) -> Result<usize, GraphError> {
        let mut stack: Vec<&[T]> = vec![items];
        let mut calls = 0;
        while let Some(part) = stack.pop() {
            if part.is_empty() {
                continue;
            }
            calls += 1;
            let serialized = bytes::Bytes::from(body(part));
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
                Err(e) if e.status() == Some(400) && part.len() > 1 => {
                    let (a, b) = part.split_at(part.len() / 2);
                    stack.push(b);
                    stack.push(a);
                }
                Err(GraphError::Status {
                    operation,
                    status: 400,
                    mut detail,
                    retry_after,
                }) => {
                    detail.message = format!("{} (asset {})", detail.message, part[0].item_id());
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

    // ----- updatable asset groups --------------------------------------------------------------------

    /// Creates an empty `updatableAssetGroup` and returns its id.
    pub async fn create_group(&self) -> Result<String, GraphError> {
        let body = json!({"@odata.type": odata_type("updatableAssetGroup")});
        let created: UpdatableAsset = self
            .transport
            .json(
                "create device group",
                Method::POST,
                &self.url("updatableAssets"),
                Some(&body),
                Idempotency::CreateOnce,
            )
            .await?;
        Ok(created.id)
    }

    /// Deletes a group (its devices stay registered). `Ok(false)` when it was already gone.
    pub async fn delete_group(&self, id: &str) -> Result<bool, GraphError> {
        let url = self.url(&format!("updatableAssets/{}", enc(id)));
        match self
            .transport
            .send(
                "delete device group",
                Method::DELETE,
                &url,
                None,
                Idempotency::Safe,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The devices of a group; `None` when the group does not exist.
    pub async fn group_members(&self, id: &str) -> Result<Option<Vec<UpdatableAsset>>, GraphError> {
        let url = self.url(&format!(
            "updatableAssets/{}/{NS}updatableAssetGroup/members",
            enc(id)
        ));
        match self
            .transport
            .collect_sized("list device group members", &url, |a: &UpdatableAsset| &a.id)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds and removes group devices with `addMembersById` / `removeMembersById` in batches. Returns the
    /// number of calls made.
    pub async fn apply_group_diff(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<usize, GraphError> {
        // Every batch at once (the transport bounds concurrency); adds and removes touch different ids.
        let mut sends = Vec::new();
        for (action, ids, op) in [
            ("addMembersById", add, "add device group members"),
            ("removeMembersById", remove, "remove device group members"),
        ] {
            let url = self.url(&format!("updatableAssets/{}/{action}", enc(id)));
            for chunk in ids.chunks(self.batch_size) {
                let url = url.clone();
                sends.push(async move {
                    self.send_split(op, &url, chunk, |items| {
                        #[derive(serde::Serialize)]
                        #[serde(rename_all = "camelCase")]
                        struct ById<'a> {
                            ids: &'a [String],
                            member_entity_type: &'static str,
                        }
                        serde_json::to_vec(&ById {
                            ids: items,
                            member_entity_type: AssetKind::Device.odata_type(),
                        })
                        .unwrap_or_default()
                    })
                    .await
                });
            }
        }
        let mut calls = 0;
        for r in futures::future::join_all(sends).await {
            calls += r?;
        }
        Ok(calls)
    }
}

/// Names an item in an error about it.
trait ItemId {
    fn item_id(&self) -> &str;
}

impl ItemId for String {
    fn item_id(&self) -> &str {
        self
    }
}

impl ItemId for (&'static str, &AssetRef) {
    fn item_id(&self) -> &str {
        &self.1.id
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
