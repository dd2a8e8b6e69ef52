//! The report edge: kstatus-compatible conditions, and status writes by server-side apply (field manager
//! `wufb-operator`) that are skipped when nothing but timestamps changed.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, Patch, PatchParams};
use kube::core::DynamicResourceScope;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::Error;
use super::writes::LastWrites;

pub use super::outcome::{MAX_CONDITION_MESSAGE, Outcome, already_stalled, conditions};

/// The field manager of every operator write.
pub const MANAGER: &str = "wufb-operator";

/// The status without the fields that change on every pass (sync time, transition times).
fn comparable(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("lastSyncTime");
    }
    if let Some(conds) = s.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
    }
    s
}

/// What a status write reads back: metadata and status. The spec in the answer is skipped, not parsed:
/// it can hold a thousand audience entries, and every status write would otherwise parse (and hold)
/// them again.
#[derive(Deserialize, Clone, Debug)]
pub struct Written<S> {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default = "Option::default")]
    pub status: Option<S>,
}

impl<S: Clone> kube::Resource for Written<S> {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The status subresource of `api`'s kind, read back as [`Written`].
fn written_api<K, S>(api: &Api<K>) -> Api<Written<S>>
where
    K: kube::Resource<DynamicType = ()> + Clone,
    S: Clone,
{
    let ar = ApiResource::erase::<K>(&());
    let client = api.clone().into_client();
    match api.namespace() {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    }
}

/// Writes `status` by server-side apply unless only timestamps differ from `old`. Returns whether it wrote.
pub async fn apply<K, S>(
    api: &Api<K>,
    writes: &LastWrites,
    name: &str,
    kind: &str,
    old: Option<&S>,
    status: &S,
) -> Result<bool, Error>
where
    K: kube::Resource<DynamicType = ()> + Clone,
    S: Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let new = serde_json::to_value(status).map_err(Error::encode("the status"))?;
    if let Some(old) = old {
        let old = serde_json::to_value(old).map_err(Error::encode("the status"))?;
        if comparable(&old) == comparable(&new) {
            return Ok(false);
        }
    }
    // The apiVersion of the type, never a literal: a server answers 400 to an apply of another version.
    let patch = json!({"apiVersion": K::api_version(&()), "kind": kind, "status": new});
    let written = written_api::<K, S>(api)
        .patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(Error::kube("write status"))?;
    writes.record(&written.metadata);
    Ok(true)
}

/// A merge patch of status fields, checked against `resource_version` when given (409 if the object
/// changed since it was read).
pub async fn merge<K, S>(
    api: &Api<K>,
    writes: &LastWrites,
    name: &str,
    resource_version: Option<&str>,
    status: Value,
) -> Result<Written<S>, Error>
where
    K: kube::Resource<DynamicType = ()> + Clone,
    S: DeserializeOwned + Clone + std::fmt::Debug,
{
    let mut patch = json!({"status": status});
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let written = written_api::<K, S>(api)
        .patch_status(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(Error::kube("record status"))?;
    writes.record(&written.metadata);
    Ok(written)
}

/// RFC 3339 now, for status timestamps.
pub fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_alone_do_not_count_as_a_change() {
        let a = json!({"graphState": "offering", "lastSyncTime": "1", "conditions": [{"type": "Ready", "lastTransitionTime": "x"}]});
        let b = json!({"graphState": "offering", "lastSyncTime": "2", "conditions": [{"type": "Ready", "lastTransitionTime": "y"}]});
        assert_eq!(comparable(&a), comparable(&b));
        let c = json!({"graphState": "paused", "lastSyncTime": "2"});
        assert_ne!(comparable(&a), comparable(&c));
    }
}
