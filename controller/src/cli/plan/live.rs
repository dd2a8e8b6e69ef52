//! The live objects a plan reads from the cluster, and the object a manifest would make of them.

use kube::api::Api;
use kube::{Resource, ResourceExt};
use serde::Serialize;

pub async fn live<K>(client: Option<&kube::Client>, ns: &str) -> anyhow::Result<Vec<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match client {
        Some(c) => Ok(Api::<K>::namespaced(c.clone(), ns)
            .list(&Default::default())
            .await?
            .items),
        None => Ok(Vec::new()),
    }
}

/// The object a manifest would make, with the live one's metadata when it exists (the caller adds the
/// live status).
pub fn desired_object<K: Resource<DynamicType = ()> + Clone + Serialize>(
    live: Option<&K>,
    mut manifest: K,
    ns: &str,
    name: &str,
) -> K {
    if let Some(l) = live {
        // A spec that differs is a new generation, as the API server makes it: the planner tells a
        // spec change from the lag of its own last write by it.
        let spec = |k: &K| serde_json::to_value(k).ok().map(|v| v["spec"].clone());
        let changed = spec(l) != spec(&manifest);
        *manifest.meta_mut() = l.meta().clone();
        if changed {
            let m = manifest.meta_mut();
            m.generation = Some(m.generation.unwrap_or_default() + 1);
        }
    }
    let m = manifest.meta_mut();
    m.name = Some(name.to_string());
    m.namespace = Some(ns.to_string());
    manifest
}

/// The names of the live objects of kind `K` in `ns` that `selector` selects.
pub async fn selected_names<K>(client: &kube::Client, ns: &str, selector: &str) -> anyhow::Result<Vec<String>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let listed = Api::<K>::namespaced(client.clone(), ns)
        .list_metadata(&kube::api::ListParams::default().labels(selector))
        .await;
    match listed {
        Ok(l) => Ok(l.items.iter().map(|m| m.name_any()).collect()),
        Err(kube::Error::Api(s)) if s.code == 400 => anyhow::bail!(
            "--selector '{selector}' is not a label selector the API server accepts ({}); write KEY=VALUE[,KEY=VALUE...]",
            s.message
        ),
        Err(e) => Err(crate::cli::cluster::object_error(
            e,
            &format!(
                "the {} objects --selector selects in namespace {ns}",
                K::kind(&())
            ),
            "kubectl get",
        )),
    }
}
