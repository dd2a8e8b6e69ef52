//! Typed Graph objects, read tolerantly: `value` or `effectiveValue`, `releaseDate` or `releaseDateTime`,
//! `@odata.type` with or without `#`, unknown properties ignored, unknown enum members kept.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

mod requests;

pub use requests::*;

/// The namespace of every Windows Update type.
pub const NS: &str = "microsoft.graph.windowsUpdates.";

/// A short type name (`catalogContent`) from any spelling (`#microsoft.graph.windowsUpdates.catalogContent`).
pub fn short_type(ty: &str) -> &str {
    let ty = ty.trim_start_matches('#');
    ty.strip_prefix(NS).unwrap_or(ty)
}

/// The fully qualified `#` form of a short type name.
pub fn odata_type(short: &str) -> String {
    format!("#{NS}{short}")
}

/// Declares a Graph enum that keeps members it does not know (evolvable enums).
macro_rules! graph_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A member this client does not know yet.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::from(s.as_str()))
            }
        }
    };
}

graph_enum!(
    /// `deploymentStateValue`: the effective state.
    DeploymentStateValue {
        Scheduled => "scheduled",
        Offering => "offering",
        Paused => "paused",
        Faulted => "faulted",
        Archived => "archived",
    }
);

graph_enum!(
    /// `requestedDeploymentStateValue`.
    RequestedState {
        None => "none",
        Paused => "paused",
        Archived => "archived",
    }
);

graph_enum!(
    /// `azureADDeviceRegistrationError.reason`.
    RegistrationErrorReason {
        InvalidGlobalDeviceId => "invalidGlobalDeviceId",
        InvalidAzureAdDeviceId => "invalidAzureADDeviceId",
        MissingTrustType => "missingTrustType",
        InvalidAzureAdJoin => "invalidAzureADJoin",
    }
);

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct StateReason {
    pub value: Option<String>,
}

/// `deploymentState`. The service has called the effective state both `value` and `effectiveValue`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentState {
    effective_value: Option<DeploymentStateValue>,
    value: Option<DeploymentStateValue>,
    pub requested_value: Option<RequestedState>,
    pub reasons: Vec<StateReason>,
}

impl DeploymentState {
    pub fn effective(&self) -> Option<&DeploymentStateValue> {
        self.effective_value.as_ref().or(self.value.as_ref())
    }

    pub fn reason_values(&self) -> Vec<String> {
        self.reasons.iter().filter_map(|r| r.value.clone()).collect()
    }
}

/// Deployed content, in either form.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// `catalogContent` naming a catalog entry (the entry may be absent when not expanded).
    Catalog {
        entry_id: Option<String>,
    },
    /// The legacy `expeditedQualityUpdateReference` by release date.
    ExpeditedReleaseDate {
        release_date: String,
        equivalent_content: Option<String>,
    },
    Other(Value),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let ty = v
            .get("@odata.type")
            .and_then(Value::as_str)
            .map(short_type)
            .unwrap_or("");
        Ok(match ty {
            "catalogContent" => Content::Catalog {
                entry_id: v.get("catalogEntry").and_then(catalog_entry_id),
            },
            "expeditedQualityUpdateReference" | "qualityUpdateReference" => {
                let date = v
                    .get("releaseDateTime")
                    .or_else(|| v.get("releaseDate"))
                    .and_then(Value::as_str);
                match date {
                    Some(date) => Content::ExpeditedReleaseDate {
                        release_date: date.get(..10).unwrap_or(date).to_string(),
                        equivalent_content: v
                            .get("equivalentContent")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    },
                    None => Content::Other(v),
                }
            }
            _ => Content::Other(v),
        })
    }
}

/// The id of a catalog entry named in a deployment's content, in each documented form: the entry
/// itself (`{"id": …}`), or a reference to it (`{"@odata.id": "catalog/entries/{id}"}`, relative or
/// absolute, with the id bare or in key syntax `entries('{id}')`).
fn catalog_entry_id(entry: &Value) -> Option<String> {
    if let Some(id) = entry.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        return Some(id.to_string());
    }
    let reference = entry.get("@odata.id").and_then(Value::as_str)?;
    let path = reference.split(['?', '#']).next().unwrap_or_default();
    let (_, tail) = path.rsplit_once("entries")?;
    let key = tail
        .strip_prefix('/')
        .or_else(|| tail.strip_prefix("('").and_then(|k| k.strip_suffix("')")))
        .or_else(|| tail.strip_prefix('(').and_then(|k| k.strip_suffix(')')))?;
    let key = key.trim_end_matches('/');
    (!key.is_empty() && !key.contains(['/', '(', ')', '\''])).then(|| key.to_string())
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct UserExperience {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_until_forced_reboot: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_as_optional: Option<bool>,
    /// Fields the operator does not own (`isHotpatchEnabled`, …), kept as Graph holds them.
    #[serde(flatten, skip_serializing)]
    pub unowned: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Expedite {
    pub is_expedited: bool,
    pub is_readiness_test: bool,
}

/// `deploymentSettings` (or the legacy `windowsDeploymentSettings`), the parts the operator manages.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    pub user_experience: Option<UserExperience>,
    pub expedite: Option<Expedite>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    #[serde(default)]
    pub state: DeploymentState,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub settings: Option<Settings>,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub last_modified_date_time: Option<String>,
    /// The deployment's audience, when the answer embeds it (the create answer does).
    #[serde(default)]
    pub audience: Option<AudienceRef>,
}

/// A `deploymentAudience` as another object embeds it.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct AudienceRef {
    pub id: Option<String>,
}

impl Deployment {
    /// The audience id, when the answer names it.
    pub fn audience_id(&self) -> Option<&str> {
        self.audience.as_ref()?.id.as_deref().filter(|s| !s.is_empty())
    }

    pub fn created(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let t = self.created_date_time.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    pub fn is_paused_by_request(&self) -> bool {
        self.state.requested_value == Some(RequestedState::Paused)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct KnowledgeBaseArticle {
    pub id: Option<String>,
}

/// The CVEs a quality update fixes, as the catalog summarises them.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct CveSeverityInformation {
    pub max_severity: Option<String>,
    pub max_base_score: Option<f64>,
    pub exploited_cves: Vec<ExploitedCve>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ExploitedCve {
    pub number: String,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ProductRevision {
    pub id: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    pub knowledge_base_article: Option<KnowledgeBaseArticle>,
    /// The build the revision brings a device to.
    pub os_build: Option<super::build::OsBuild>,
    /// A hotpatch revision (a lower build revision than the restart-requiring one of the same build).
    pub is_hotpatch_update: Option<bool>,
}

/// A catalog entry; quality-update properties are absent on other entry types.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    release_date_time: Option<String>,
    #[serde(default)]
    release_date: Option<String>,
    #[serde(default)]
    pub is_expeditable: Option<bool>,
    #[serde(default)]
    pub quality_update_classification: Option<String>,
    #[serde(default)]
    pub short_name: Option<String>,
    /// `monthly` or `outOfBand`.
    #[serde(default)]
    pub quality_update_cadence: Option<String>,
    #[serde(default)]
    pub cve_severity_information: Option<CveSeverityInformation>,
    /// After this time the content can no longer be deployed.
    #[serde(default)]
    pub deployable_until_date_time: Option<String>,
    #[serde(default)]
    pub product_revisions: Vec<ProductRevision>,
}

impl CatalogEntry {
    /// The release date (`YYYY-MM-DD`).
    pub fn release_date(&self) -> Option<&str> {
        let d = self
            .release_date_time
            .as_deref()
            .or(self.release_date.as_deref())?;
        d.get(..10)
    }

    pub fn is_quality(&self) -> bool {
        self.odata_type.as_deref().map(short_type) == Some("qualityUpdateCatalogEntry")
    }

    pub fn can_expedite(&self) -> bool {
        self.is_quality() && self.is_expeditable == Some(true)
    }

    /// The exploited CVEs the entry fixes.
    pub fn cves(&self) -> Vec<String> {
        self.cve_severity_information
            .iter()
            .flat_map(|c| c.exploited_cves.iter().map(|e| e.number.clone()))
            .collect()
    }

    pub fn max_severity(&self) -> Option<&str> {
        self.cve_severity_information.as_ref()?.max_severity.as_deref()
    }
}

/// What kind of asset an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

    /// The `@odata.type` of the kind.
    pub fn odata_type(self) -> &'static str {
        match self {
            AssetKind::Device => "#microsoft.graph.windowsUpdates.azureADDevice",
            AssetKind::Group => "#microsoft.graph.windowsUpdates.updatableAssetGroup",
        }
    }
}

/// A typed asset reference, as audiences hold them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetRef {
    pub kind: AssetKind,
    pub id: String,
}

impl AssetRef {
    pub fn device(id: impl Into<String>) -> Self {
        AssetRef {
            kind: AssetKind::Device,
            id: id.into(),
        }
    }

    pub fn group(id: impl Into<String>) -> Self {
        AssetRef {
            kind: AssetKind::Group,
            id: id.into(),
        }
    }
}

/// Written as Graph's asset object (`{"@odata.type": …, "id": …}`) with no intermediate `Value`.
impl Serialize for AssetRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("@odata.type", self.kind.odata_type())?;
        m.serialize_entry("id", &self.id)?;
        m.end()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistrationError {
    pub reason: Option<RegistrationErrorReason>,
}

/// `deviceProfile`: a device's Windows servicing information (only what progress needs is read).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceProfile {
    pub id: String,
    pub azure_ad_device_id: Option<String>,
    /// A string such as `10.0.26100.2605` (see [`super::build::OsBuild::parse`]).
    pub os_build: Option<String>,
}

/// An updatable asset as listed in audiences and groups.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdatableAsset {
    // Read straight into the kind: audiences list up to hundreds of thousands of assets, and a type
    // string per asset would dominate the memory of a read.
    #[serde(
        rename = "@odata.type",
        default = "device_kind",
        deserialize_with = "asset_kind"
    )]
    pub asset_kind: AssetKind,
    pub id: String,
    #[serde(default)]
    pub errors: Vec<RegistrationError>,
}

fn device_kind() -> AssetKind {
    AssetKind::Device
}

fn asset_kind<'de, D: Deserializer<'de>>(d: D) -> Result<AssetKind, D::Error> {
    let ty: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
    Ok(match ty.as_deref().map(short_type) {
        Some("updatableAssetGroup") => AssetKind::Group,
        _ => AssetKind::Device,
    })
}

impl UpdatableAsset {
    pub fn kind(&self) -> AssetKind {
        self.asset_kind
    }

    /// The reasons of its registration errors that Graph names.
    pub fn error_reasons(&self) -> Vec<String> {
        self.errors
            .iter()
            .filter_map(|e| e.reason.as_ref().map(|r| r.to_string()))
            .collect()
    }

    /// The asset as the audience diff compares it: device ids in lower case, as the desired side holds
    /// them (Entra device ids are GUIDs, compared without regard to case), so that an id Graph echoes in
    /// another case is neither added again nor removed.
    pub fn to_ref(&self) -> AssetRef {
        let kind = self.kind();
        let id = match kind {
            AssetKind::Device if self.id.bytes().any(|b| b.is_ascii_uppercase()) => {
                self.id.to_ascii_lowercase()
            }
            _ => self.id.clone(),
        };
        AssetRef { kind, id }
    }
}

/// A page of a collection.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// The OData error envelope.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ErrorEnvelope {
    #[serde(default)]
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub target: Option<String>,
    pub details: Vec<ErrorBody>,
    /// The service's `request-id` and the caller's `client-request-id` (when the headers lack them).
    #[serde(rename = "innerError")]
    pub inner_error: Option<InnerError>,
}

/// The identifiers in an error body's `innerError`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct InnerError {
    #[serde(rename = "request-id")]
    pub request_id: Option<String>,
    #[serde(rename = "client-request-id")]
    pub client_request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalog_content_is_read_in_every_documented_form() {
        let entry = |catalog_entry: Value| -> Option<Content> {
            serde_json::from_value::<Deployment>(json!({
                "id": "d",
                "content": {"@odata.type": "#microsoft.graph.windowsUpdates.catalogContent", "catalogEntry": catalog_entry},
            }))
            .unwrap()
            .content
        };
        let named = |id: &str| {
            Some(Content::Catalog {
                entry_id: Some(id.into()),
            })
        };
        assert_eq!(entry(json!({"id": "e1", "displayName": null})), named("e1"));
        // The reference form of the PATCH sample, relative and absolute, bare key and key syntax.
        assert_eq!(entry(json!({"@odata.id": "catalog/entries/e2"})), named("e2"));
        assert_eq!(
            entry(
                json!({"@odata.id": "https://graph.microsoft.com/beta/admin/windows/updates/catalog/entries/e3"})
            ),
            named("e3")
        );
        assert_eq!(entry(json!({"@odata.id": "catalog/entries('e4')"})), named("e4"));
        // Neither form: the content is unknown, never a guessed id.
        let unknown = Some(Content::Catalog { entry_id: None });
        assert_eq!(entry(json!({})), unknown);
        assert_eq!(entry(json!({"@odata.id": "catalog/entries"})), unknown);
        assert_eq!(entry(json!({"@odata.id": "deployments/d1"})), unknown);
        assert_eq!(entry(json!({"id": ""})), unknown);
        // The create sample carries no catalog entry at all.
        let bare: Deployment = serde_json::from_value(json!({
            "id": "d", "content": {"@odata.type": "#microsoft.graph.windowsUpdates.catalogContent"}
        }))
        .unwrap();
        assert_eq!(bare.content, unknown);
    }

    #[test]
    fn device_ids_from_graph_compare_without_case() {
        let echoed: UpdatableAsset = serde_json::from_value(json!({
            "@odata.type": "#microsoft.graph.windowsUpdates.azureADDevice",
            "id": "6A6B6C6D-0000-4000-8000-00000000000A"
        }))
        .unwrap();
        assert_eq!(
            echoed.to_ref(),
            AssetRef::device("6a6b6c6d-0000-4000-8000-00000000000a")
        );
        // Group ids are Graph's own and kept as Graph spells them.
        let group: UpdatableAsset = serde_json::from_value(json!({
            "@odata.type": "#microsoft.graph.windowsUpdates.updatableAssetGroup",
            "id": "Group-ABC"
        }))
        .unwrap();
        assert_eq!(group.to_ref().id, "Group-ABC");
    }

    #[test]
    fn reads_both_state_spellings_and_unknown_members() {
        let old: DeploymentState =
            serde_json::from_value(json!({"value": "offering", "requestedValue": "none"})).unwrap();
        assert_eq!(old.effective(), Some(&DeploymentStateValue::Offering));
        let both: DeploymentState =
            serde_json::from_value(json!({"value": "paused", "effectiveValue": "paused"})).unwrap();
        assert_eq!(both.effective(), Some(&DeploymentStateValue::Paused));
        let new: DeploymentState =
            serde_json::from_value(json!({"effectiveValue": "hibernating", "reasons": [{"value": "faultedByContentOutdated"}], "extra": 1}))
                .unwrap();
        assert_eq!(
            new.effective(),
            Some(&DeploymentStateValue::Other("hibernating".into()))
        );
        assert_eq!(new.reason_values(), vec!["faultedByContentOutdated".to_string()]);
    }

    #[test]
    fn reads_both_content_forms_and_type_spellings() {
        let c: Content = serde_json::from_value(json!({"@odata.type": "microsoft.graph.windowsUpdates.expeditedQualityUpdateReference", "releaseDate": "2026-01-13T00:00:00Z"})).unwrap();
        assert_eq!(
            c,
            Content::ExpeditedReleaseDate {
                release_date: "2026-01-13".into(),
                equivalent_content: None
            }
        );
        let c: Content = serde_json::from_value(json!({"@odata.type": "#microsoft.graph.windowsUpdates.qualityUpdateReference", "releaseDateTime": "2026-01-13T00:00:00Z", "equivalentContent": "latestSecurity"})).unwrap();
        assert!(matches!(
            c,
            Content::ExpeditedReleaseDate {
                equivalent_content: Some(_),
                ..
            }
        ));
        let c: Content =
            serde_json::from_value(json!({"@odata.type": "#microsoft.graph.windowsUpdates.catalogContent"}))
                .unwrap();
        assert_eq!(c, Content::Catalog { entry_id: None });
        let e: CatalogEntry = serde_json::from_value(json!({"@odata.type": "microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry", "id": "x", "releaseDate": "2026-01-13T00:00:00Z", "isExpeditable": true})).unwrap();
        assert_eq!(e.release_date(), Some("2026-01-13"));
        assert!(e.can_expedite());
    }

    #[test]
    fn assets_know_their_kind() {
        let a: UpdatableAsset = serde_json::from_value(
            json!({"@odata.type": "#microsoft.graph.windowsUpdates.updatableAssetGroup", "id": "g"}),
        )
        .unwrap();
        assert_eq!(a.to_ref(), AssetRef::group("g"));
        let d: UpdatableAsset = serde_json::from_value(
            json!({"id": "d", "errors": [{"reason": "invalidAzureADDeviceId"}, {"reason": "newReason"}]}),
        )
        .unwrap();
        assert_eq!(d.kind(), AssetKind::Device);
        assert_eq!(
            d.errors[1].reason,
            Some(RegistrationErrorReason::Other("newReason".into()))
        );
    }
}
