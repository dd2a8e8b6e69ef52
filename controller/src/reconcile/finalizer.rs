//! The finalizer `wufb.dev/cleanup` goes on before the first Graph write.

use std::sync::Arc;

use kube::{Resource, ResourceExt};

use super::error::Error;
use super::writes::LastWrites;

/// Adds the operator's finalizer to a live object that lacks it and returns the object as written, so
/// that the pass goes on at once. (kube's `finalizer` helper ends the pass there and waits for the watch
/// to bring the change back; under load that queued every new object's first Graph write behind the
/// finalizer passes of all the objects that arrived after it.) The patch is the helper's own: a test of
/// the current list, then an add, so a concurrent writer gets a conflict instead of a lost finalizer.
pub async fn with_finalizer<K>(api: &kube::Api<K>, writes: &LastWrites, obj: Arc<K>) -> Result<Arc<K>, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let has = obj.finalizers().iter().any(|f| f == crate::crd::FINALIZER);
    if has || obj.meta().deletion_timestamp.is_some() {
        return Ok(obj);
    }
    let ops = if obj.finalizers().is_empty() {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [crate::crd::FINALIZER]},
        ])
    } else {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": obj.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": crate::crd::FINALIZER},
        ])
    };
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(Error::encode("the finalizer patch"))?;
    let written = api
        .patch(
            &obj.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Json::<()>(patch),
        )
        .await
        .map_err(Error::kube("add finalizer"))?;
    writes.record(written.meta());
    Ok(Arc::new(written))
}
