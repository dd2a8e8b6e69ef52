//! Tenant state: deployments, audiences and updatable assets, with the service's rules.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::GraphError;
use crate::odata::{NS, short_type};
use crate::validate;

mod assets;

/// What kind of updatable asset an id names.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum AssetKind {
    Device,
    Group,
}

impl AssetKind {
    pub fn type_name(self) -> &'static str {
        match self {
            AssetKind::Device => "azureADDevice",
            AssetKind::Group => "updatableAssetGroup",
        }
    }

    pub fn parse(ty: &str) -> Option<Self> {
        match short_type(ty) {
            "azureADDevice" => Some(AssetKind::Device),
            "updatableAssetGroup" => Some(AssetKind::Group),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub content: Value,
    pub settings: Value,
    pub requested: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub effective_since: DateTime<Utc>,
    pub audience_id: String,
    /// Created through Intune: its audience cannot be read or changed through Graph (a documented known issue).
    #[serde(default)]
    pub intune_managed: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Audience {
    pub id: String,
    pub members: BTreeMap<String, AssetKind>,
    pub exclusions: BTreeMap<String, AssetKind>,
    /// Whether anything was ever added; see `audience_404_when_empty`.
    pub ever_used: bool,
    /// Created together with a deployment (deleted with it).
    pub implicit: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Asset {
    pub id: String,
    pub kind: AssetKind,
    /// Registration errors (azureADDeviceRegistrationError reasons) of a device.
    pub errors: Vec<String>,
    /// Update categories a device is enrolled in.
    pub enrollments: BTreeSet<String>,
    /// Members of a group.
    pub members: BTreeSet<String>,
}

/// A deployment's content as the reference shows it in answers: `catalogContent` names its entry by
/// reference (`{"@odata.id": "catalog/entries/{id}"}`, as in the update-deployment sample), not by id.
fn content_reference(content: &Value) -> Value {
    let id = content.pointer("/catalogEntry/id").and_then(Value::as_str);
    match (
        content.get("@odata.type").and_then(Value::as_str).map(short_type),
        id,
    ) {
        (Some("catalogContent"), Some(id)) => json!({
            "@odata.type": content["@odata.type"],
            "catalogEntry": {"@odata.id": format!("catalog/entries/{id}")},
        }),
        _ => content.clone(),
    }
}

/// The answer to one Graph request.
#[derive(Debug)]
pub enum Reply {
    Json(StatusCode, Value),
    Empty(StatusCode),
    Text(String),
}

/// The tenant.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Store {
    /// Entra ID groups (directory groups, not updatable asset groups), by object id.
    #[serde(default)]
    pub entra_groups: BTreeMap<String, EntraGroup>,
    pub deployments: BTreeMap<String, Deployment>,
    pub audiences: BTreeMap<String, Audience>,
    pub assets: BTreeMap<String, Asset>,
    /// Counter behind generated ids.
    pub id_counter: u64,
    /// Id seed, so that two emulators with different seeds never hand out the same ids.
    pub id_seed: u64,
    /// Moves with every change of deployments, audiences or assets, and with every write that tried
    /// one and was refused (a number no other store of the process had): what the simulated fleet's
    /// offered devices are worked out again on. Moving without a change costs one recomputation.
    #[serde(skip)]
    pub revision: u64,
    /// Devices registered since the simulated fleet last took them (`take_registered`), so a read of
    /// the fleet gives new devices their place without walking the whole tenant.
    #[serde(skip)]
    registered: Vec<String>,
}

/// The last revision handed out, process-wide: a store replaced by a new one never reuses a revision.
static REVISIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An Entra ID group: devices (by Entra device id) and nested groups (by object id).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct EntraGroup {
    pub devices: Vec<String>,
    pub groups: Vec<String>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Is this a well-formed Entra device id (a GUID)?
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A typed reference in an action body.
pub struct AssetRef {
    pub id: String,
    pub kind: AssetKind,
}

impl Store {
    pub fn new(seed: u64) -> Self {
        let mut store = Store {
            id_seed: seed,
            ..Default::default()
        };
        store.touch();
        store
    }

    /// Marks a change of deployments, audiences or assets.
    pub(crate) fn touch(&mut self) {
        self.revision = REVISIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    }

    /// The devices registered since the last call, in order.
    pub fn take_registered(&mut self) -> Vec<String> {
        std::mem::take(&mut self.registered)
    }

    /// A new GUID, deterministic for a given seed and call count.
    pub fn new_id(&mut self) -> String {
        self.id_counter += 1;
        let mut x = self.id_seed ^ self.id_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let (a, b) = (next(), next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    // ----- deployments -------------------------------------------------------------------------------

    pub fn render_deployment(&self, d: &Deployment, now: DateTime<Utc>) -> Value {
        let start = d
            .settings
            .pointer("/schedule/startDateTime")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let (effective, reason) = if d.requested == "paused" {
            ("paused", "pausedByRequest")
        } else if start.is_some_and(|s| s > now) {
            ("scheduled", "scheduledByOfferWindow")
        } else {
            ("offering", "offeringByRequest")
        };
        json!({
            "@odata.type": format!("#{NS}deployment"),
            "id": d.id,
            "createdDateTime": ts(d.created),
            "lastModifiedDateTime": ts(d.modified),
            "state": {
                "@odata.type": format!("#{NS}deploymentState"),
                "effectiveValue": effective,
                "value": effective,
                "requestedValue": d.requested,
                "effectiveSinceDate": ts(d.effective_since),
                "reasons": [{"@odata.type": format!("#{NS}deploymentStateReason"), "value": reason}],
            },
            "content": content_reference(&d.content),
            "settings": d.settings,
        })
    }

    pub fn list_deployments(&self, now: DateTime<Utc>) -> Vec<Value> {
        let mut all: Vec<&Deployment> = self.deployments.values().collect();
        all.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        all.into_iter().map(|d| self.render_deployment(d, now)).collect()
    }

    pub fn deployment(&self, id: &str) -> Result<&Deployment, GraphError> {
        self.deployments
            .get(id)
            .ok_or_else(|| GraphError::not_found("deployment", id))
    }

    pub fn create_deployment(
        &mut self,
        body: &Value,
        catalog: &[Value],
        now: DateTime<Utc>,
    ) -> Result<Reply, GraphError> {
        self.touch();
        let valid = validate::deployment_create(body, catalog)?;
        let audience_id = match valid.audience_id {
            Some(aid) => {
                if !self.audiences.contains_key(&aid) {
                    return Err(GraphError::bad_request(format!(
                        "deploymentAudience '{aid}' does not exist."
                    ))
                    .with_target("audience"));
                }
                aid
            }
            None => {
                // The service names a readiness test's own audience with a `_Readiness` suffix.
                let readiness =
                    valid.settings.pointer("/expedite/isReadinessTest") == Some(&Value::Bool(true));
                let mut aid = self.new_id();
                if readiness {
                    aid.push_str("_Readiness");
                }
                self.audiences.insert(
                    aid.clone(),
                    Audience {
                        id: aid.clone(),
                        implicit: true,
                        ..Default::default()
                    },
                );
                aid
            }
        };
        let id = self.new_id();
        let d = Deployment {
            id: id.clone(),
            content: valid.content,
            settings: valid.settings,
            requested: valid.requested.unwrap_or_else(|| "none".into()),
            created: now,
            modified: now,
            effective_since: now,
            audience_id,
            intune_managed: false,
        };
        let mut body = self.render_deployment(&d, now);
        // The create answer embeds the audience, as the service's does, and a skeleton of the catalog
        // entry: its id, and defaults in place of what the entry says (it is not expeditable, it has no
        // name). Expeditability is read from the catalog, never from this echo.
        body["audience"] = json!({"@odata.type": format!("#{NS}deploymentAudience"), "id": d.audience_id});
        if let Some(entry) = d.content.pointer("/catalogEntry/id").and_then(Value::as_str) {
            body["content"]["catalogEntry"] = json!({
                "@odata.type": format!("#{NS}qualityUpdateCatalogEntry"),
                "id": entry,
                "displayName": null,
                "releaseDateTime": "0001-01-01T00:00:00Z",
                "deployableUntilDateTime": null,
                "isExpeditable": false,
                "qualityUpdateClassification": "all",
                "qualityUpdateCadence": "monthly",
                "catalogName": null,
                "shortName": null,
                "cveSeverityInformation": null,
            });
        }
        self.deployments.insert(id, d);
        Ok(Reply::Json(StatusCode::CREATED, body))
    }

    pub fn update_deployment(
        &mut self,
        id: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<Reply, GraphError> {
        self.touch();
        let existing = self.deployment(id)?.clone();
        let patch = validate::deployment_patch(body, &existing.settings)?;
        let d = self
            .deployments
            .get_mut(id)
            .ok_or_else(|| GraphError::not_found("deployment", id))?;
        if let Some(settings) = patch.settings {
            d.settings = settings;
        }
        if let Some(req) = patch.requested {
            if req != d.requested {
                d.effective_since = now;
            }
            d.requested = req;
        }
        d.modified = now;
        let d = d.clone();
        Ok(Reply::Json(StatusCode::ACCEPTED, self.render_deployment(&d, now)))
    }

    pub fn delete_deployment(&mut self, id: &str) -> Result<Reply, GraphError> {
        self.touch();
        let d = self
            .deployments
            .remove(id)
            .ok_or_else(|| GraphError::not_found("deployment", id))?;
        if self.audiences.get(&d.audience_id).is_some_and(|a| a.implicit) {
            self.audiences.remove(&d.audience_id);
        }
        Ok(Reply::Empty(StatusCode::ACCEPTED))
    }

    // ----- audiences ---------------------------------------------------------------------------------

    /// The audience of a deployment, refusing Intune-owned deployments as the service does.
    pub fn deployment_audience_id(&self, deployment_id: &str) -> Result<(String, bool), GraphError> {
        let d = self.deployment(deployment_id)?;
        Ok((d.audience_id.clone(), d.intune_managed))
    }

    pub fn audience(&self, id: &str) -> Result<&Audience, GraphError> {
        self.audiences.get(id).ok_or_else(|| {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "Requested resource 'deployment audience' not found.",
            )
        })
    }

    pub fn audience_collection(
        &self,
        id: &str,
        exclusions: bool,
        empty_is_404: bool,
    ) -> Result<Box<dyn Iterator<Item = (&str, AssetKind)> + '_>, GraphError> {
        let a = self.audience(id)?;
        // An audience holding assets is listed, however they got there (the admin API, a test).
        let used = a.ever_used || !a.members.is_empty() || !a.exclusions.is_empty();
        if empty_is_404 && !used {
            return Err(GraphError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "Requested resource 'deployment audience' not found.",
            ));
        }
        let set = if exclusions { &a.exclusions } else { &a.members };
        // Borrowed and walked lazily: a page of a large audience neither copies nor visits every id in it.
        Ok(Box::new(set.iter().map(|(id, kind)| (id.as_str(), *kind))))
    }

    /// Applies an `updateAudience(ById)` body. Validation happens before any change, so a rejected request
    /// changes nothing.
    pub fn update_audience(
        &mut self,
        audience_id: &str,
        changes: &validate::AudienceChanges,
        device_errors: &BTreeMap<String, String>,
    ) -> Result<Reply, GraphError> {
        self.touch();
        self.audience(audience_id)?;
        for (field, refs) in changes.fields() {
            self.check_refs(refs, field)?;
        }
        for r in changes.all().filter(|r| r.kind == AssetKind::Device) {
            self.register_device(&r.id, device_errors);
        }
        let a = self
            .audiences
            .get_mut(audience_id)
            .ok_or_else(|| GraphError::not_found("deploymentAudience", audience_id))?;
        for r in &changes.add_members {
            a.members.insert(r.id.clone(), r.kind);
        }
        for r in &changes.remove_members {
            a.members.remove(&r.id);
        }
        for r in &changes.add_exclusions {
            a.exclusions.insert(r.id.clone(), r.kind);
        }
        for r in &changes.remove_exclusions {
            a.exclusions.remove(&r.id);
        }
        if !changes.add_members.is_empty() || !changes.add_exclusions.is_empty() {
            a.ever_used = true;
        }
        Ok(Reply::Empty(StatusCode::ACCEPTED))
    }

    pub fn create_audience(&mut self) -> Reply {
        self.touch();
        let id = self.new_id();
        self.audiences.insert(
            id.clone(),
            Audience {
                id: id.clone(),
                ..Default::default()
            },
        );
        Reply::Json(
            StatusCode::CREATED,
            json!({"@odata.type": format!("#{NS}deploymentAudience"), "id": id}),
        )
    }

    pub fn delete_audience(&mut self, id: &str) -> Result<Reply, GraphError> {
        self.touch();
        self.audience(id)?;
        if let Some(d) = self.deployments.values().find(|d| d.audience_id == id) {
            return Err(GraphError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "The deploymentAudience '{id}' is used by deployment '{}'; delete the deployment first.",
                    d.id
                ),
            ));
        }
        self.audiences.remove(id);
        Ok(Reply::Empty(StatusCode::NO_CONTENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_guids_and_unique() {
        let mut s = Store::new(7);
        let ids: BTreeSet<String> = (0..1000).map(|_| s.new_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|i| is_guid(i)));
        let mut other = Store::new(8);
        assert!(!ids.contains(&other.new_id()));
    }

    #[test]
    fn guid_check() {
        assert!(is_guid("3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01"));
        assert!(!is_guid("dev-0001"));
        assert!(!is_guid("3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a0g"));
    }
}
