//! The report edge: the one status writer, server-side apply only (field manager `wufb-operator`, and
//! `wufb-operator-stall` for the conditions of an object that cannot be read), skipped when nothing but
//! timestamps changed.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
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

/// The one status writer. Every status write of the operator is a server-side apply by [`MANAGER`]
/// (forced) of the whole status that manager owns: a field it stops applying is dropped, so a write
/// always carries everything (an apply of, say, only `createIntent` would drop the rest). With
/// `precondition`, the object must still be at that resourceVersion (409 otherwise): what makes a create
/// intent exactly-once. Without one, a write that changes nothing but timestamps from `old` is skipped.
/// Returns the status as written, or `None` when skipped.
pub async fn write<K, S>(
    api: &Api<K>,
    writes: &LastWrites,
    name: &str,
    old: Option<&S>,
    status: &S,
    precondition: Option<&str>,
) -> Result<Option<Written<S>>, Error>
where
    K: kube::Resource<DynamicType = ()> + Clone,
    S: Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let new = serde_json::to_value(status).map_err(Error::encode("the status"))?;
    if let (Some(old), None) = (old, precondition) {
        let old = serde_json::to_value(old).map_err(Error::encode("the status"))?;
        if comparable(&old) == comparable(&new) {
            return Ok(None);
        }
    }
    // The apiVersion of the type, never a literal: a server answers 400 to an apply of another version.
    let mut patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": new});
    if let Some(rv) = precondition {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    let written = written_api::<K, S>(api)
        .patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(Error::kube("write status"))?;
    writes.record(&written.metadata);
    Ok(Some(written))
}

/// The field manager of the stall written for an object whose spec or status this version cannot read
/// (or whose pass panicked): its conditions and observedGeneration only. A manager of its own, so that
/// applying those two fields drops nothing [`MANAGER`] owns (the ids cleanup needs above all); the
/// operator's next full write takes them back.
pub const STALL_MANAGER: &str = "wufb-operator-stall";

/// Writes a stall's conditions and observedGeneration, by server-side apply as [`STALL_MANAGER`].
pub async fn write_stall(
    client: kube::Client,
    resource: &ApiResource,
    namespace: &str,
    name: &str,
    generation: Option<i64>,
    conditions: &[Condition],
) -> Result<(), Error> {
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client, namespace, resource);
    let patch = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "status": {"observedGeneration": generation, "conditions": conditions},
    });
    api.patch_status(
        name,
        &PatchParams::apply(STALL_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube("write status"))?;
    Ok(())
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
