//! Objects are decoded one at a time, so one that this operator version cannot read (an enum value added
//! by a newer version, a downgrade, an object stored before the CRD's schema was tightened) never stops
//! the others. A typed list fails as a whole; here the watcher reads [`Decoded`] objects, passes the
//! readable ones on as the typed kind and sends the others to the quarantine (see
//! [`super::quarantine`]).

use std::borrow::Cow;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::crd::{DeviceGroup, ExpeditedDeployment};

/// Longest decode error kept in a log line, a condition or an Event.
const MAX_ERROR: usize = 300;

/// An object as listed or watched: the typed object, or the raw one and why it could not be read.
#[derive(Clone, Debug)]
pub struct Decoded<K> {
    pub object: Result<K, Box<Undecodable>>,
}

/// An object that could not be decoded as its kind.
#[derive(Clone, Debug)]
pub struct Undecodable {
    pub metadata: ObjectMeta,
    pub raw: Arc<Value>,
    /// The field that could not be read and why, e.g. `spec.deletionPolicy: unknown variant ...`.
    pub error: String,
}

pub(super) fn bounded(mut s: String) -> String {
    if s.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl<K: Resource> Decoded<K> {
    pub fn metadata(&self) -> &ObjectMeta {
        match &self.object {
            Ok(k) => k.meta(),
            Err(bad) => &bad.metadata,
        }
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The object's text is kept as it came (no tree of values is built): the typed decode reads it
        // once, as a typed watcher would. Only an object that fails is read again, for the field path
        // and its raw fields.
        let text = Box::<serde_json::value::RawValue>::deserialize(d)?;
        if let Ok(k) = serde_json::from_str::<K>(text.get()) {
            return Ok(Decoded { object: Ok(k) });
        }
        let raw: Value = serde_json::from_str(text.get()).map_err(serde::de::Error::custom)?;
        let metadata = ObjectMeta::deserialize(&raw["metadata"]).map_err(serde::de::Error::custom)?;
        let mut de = serde_json::Deserializer::from_str(text.get());
        let error = match serde_path_to_error::deserialize::<_, K>(&mut de) {
            Ok(_) => "the object could not be decoded".to_string(),
            Err(e) => {
                let path = e.path().to_string();
                bounded(format!("{path}: {}", e.into_inner()))
            }
        };
        Ok(Decoded {
            object: Err(Box::new(Undecodable {
                metadata,
                raw: Arc::new(raw),
                error,
            })),
        })
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Decoded<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.metadata()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.object {
            Ok(k) => k.meta_mut(),
            Err(bad) => &mut bad.metadata,
        }
    }
}

/// A kind the controller watches.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
    /// Which one (the quarantine acts per kind).
    const WHICH: Which;
    /// A stand-in holding only `meta`, to take an object out of a store.
    fn placeholder(meta: ObjectMeta) -> Self;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Deployment,
    Group,
}

impl Watched for ExpeditedDeployment {
    const WHICH: Which = Which::Deployment;
    fn placeholder(metadata: ObjectMeta) -> Self {
        ExpeditedDeployment {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }
}

impl Watched for DeviceGroup {
    const WHICH: Which = Which::Group;
    fn placeholder(metadata: ObjectMeta) -> Self {
        DeviceGroup {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }
}

/// What the quarantine hears from a watch.
#[derive(Debug)]
pub enum Notice {
    /// An object version that cannot be decoded.
    Bad(Box<Undecodable>),
    /// An object (by uid) that is readable again, or gone.
    Clear { uid: String },
}

/// The watch events of `K`, decoded one object at a time: readable objects pass on as `K`; an object
/// that cannot be read goes to `notices` and is taken out of the store (a stale readable copy must not
/// be acted on).
pub fn decoded<K: Watched>(
    events: impl futures::Stream<Item = Result<watcher::Event<Decoded<K>>, watcher::Error>> + Send + 'static,
    notices: mpsc::UnboundedSender<(Which, Notice)>,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    let tell = move |n: Notice| {
        let _ = notices.send((K::WHICH, n));
    };
    events.filter_map(move |event| {
        let uid = |d: &Decoded<K>| d.metadata().uid.clone().unwrap_or_default();
        let out = match event {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Init) => Some(Ok(watcher::Event::Init)),
            Ok(watcher::Event::InitDone) => Some(Ok(watcher::Event::InitDone)),
            Ok(watcher::Event::Delete(d)) => {
                tell(Notice::Clear { uid: uid(&d) });
                Some(Ok(watcher::Event::Delete(match d.object {
                    Ok(k) => k,
                    Err(bad) => K::placeholder(bad.metadata),
                })))
            }
            Ok(watcher::Event::Apply(d)) | Ok(watcher::Event::InitApply(d)) if d.object.is_err() => {
                let meta = d.metadata().clone();
                if let Err(bad) = d.object {
                    tell(Notice::Bad(bad));
                }
                // Out of the store (during a relist it is simply not listed).
                Some(Ok(watcher::Event::Delete(K::placeholder(meta))))
            }
            Ok(watcher::Event::Apply(d)) => {
                tell(Notice::Clear { uid: uid(&d) });
                d.object.ok().map(|k| Ok(watcher::Event::Apply(lean(k))))
            }
            Ok(watcher::Event::InitApply(d)) => {
                tell(Notice::Clear { uid: uid(&d) });
                d.object.ok().map(|k| Ok(watcher::Event::InitApply(lean(k))))
            }
        };
        std::future::ready(out)
    })
}

/// The annotation client-side `kubectl apply` keeps a whole second copy of the object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An object as the stores keep it: without its managedFields and the last-applied annotation, which no
/// pass reads and which can be larger than the rest of the object.
fn lean<K: Resource>(mut k: K) -> K {
    let meta = k.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_bad_object_names_its_field_and_keeps_its_metadata() {
        let raw = json!({
            "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
            "metadata": {"name": "skewed", "namespace": "n", "uid": "u1", "resourceVersion": "7"},
            "spec": {"content": {"latest": true}, "deletionPolicy": "Shred"}
        });
        let d: Decoded<ExpeditedDeployment> = serde_json::from_str(&raw.to_string()).unwrap();
        assert_eq!(d.metadata().name.as_deref(), Some("skewed"));
        let bad = d.object.unwrap_err();
        assert!(
            bad.error
                .starts_with("spec.deletionPolicy: unknown variant `Shred`"),
            "{}",
            bad.error
        );
        let good: Decoded<ExpeditedDeployment> = serde_json::from_str(
            &json!({
                "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
                "metadata": {"name": "fine", "namespace": "n"},
                "spec": {"content": {"latest": true}}
            })
            .to_string(),
        )
        .unwrap();
        assert!(good.object.is_ok());
    }

    #[test]
    fn a_list_with_one_bad_item_decodes_the_others() {
        let list = json!({"items": [
            {"metadata": {"name": "a"}, "spec": {"devices": ["x"]}},
            {"metadata": {"name": "b"}, "spec": {"devices": [42]}},
            {"metadata": {"name": "c"}, "spec": {"devices": []}},
        ]});
        #[derive(Deserialize)]
        struct List {
            items: Vec<Decoded<DeviceGroup>>,
        }
        let l: List = serde_json::from_str(&list.to_string()).unwrap();
        let ok: Vec<bool> = l.items.iter().map(|d| d.object.is_ok()).collect();
        assert_eq!(ok, [true, false, true]);
        let err = l.items[1].object.as_ref().unwrap_err();
        assert!(err.error.starts_with("spec.devices[0]:"), "{}", err.error);
    }

    #[test]
    fn the_stores_keep_objects_without_managed_fields_or_the_last_applied_copy() {
        let applied = |annotations: Value| -> ExpeditedDeployment {
            serde_json::from_value(json!({
                "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
                "metadata": {
                    "name": "a", "namespace": "n", "annotations": annotations,
                    "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:spec": {}}}]
                },
                "spec": {"content": {"latest": true}}
            }))
            .unwrap()
        };
        let kept = lean(applied(
            json!({LAST_APPLIED: "{\"big\": true}", "wufb.dev/promote": "broad"}),
        ));
        assert!(kept.metadata.managed_fields.is_none());
        let annotations = kept.metadata.annotations.unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["wufb.dev/promote"],
            "other annotations stay"
        );
        let only_copy = lean(applied(json!({LAST_APPLIED: "{}"})));
        assert!(only_copy.metadata.annotations.is_none());
        assert_eq!(only_copy.spec.content.latest, Some(true), "the spec is untouched");
    }

    #[test]
    fn errors_are_bounded() {
        let long = "x".repeat(10_000);
        assert!(bounded(long).len() <= MAX_ERROR + 3);
    }
}
