//! The report edge: kstatus-compatible conditions, and status writes by server-side apply (field manager
//! `wufb-operator`) that are skipped when nothing but timestamps changed.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::api::{Api, ApiResource, Patch, PatchParams};
use kube::core::DynamicResourceScope;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::Error;
use super::reasons::{READY, RECONCILING, Reason, STALLED};
use super::writes::LastWrites;

/// The field manager of every operator write.
pub const MANAGER: &str = "wufb-operator";

/// Where a reconcile ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Graph matches the spec.
    Converged { message: String },
    /// Writes were made or are waiting on something that will resolve by itself.
    Progressing { reason: Reason, message: String },
    /// Nothing more happens until the spec (or the tenant) changes.
    Stalled { reason: Reason, message: String },
}

impl Outcome {
    pub fn converged(message: impl Into<String>) -> Self {
        Outcome::Converged {
            message: message.into(),
        }
    }

    pub fn progressing(reason: Reason, message: impl Into<String>) -> Self {
        Outcome::Progressing {
            reason,
            message: message.into(),
        }
    }

    pub fn stalled(reason: Reason, message: impl Into<String>) -> Self {
        Outcome::Stalled {
            reason,
            message: message.into(),
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Outcome::Converged { .. } => Reason::CONVERGED,
            Outcome::Progressing { reason, .. } | Outcome::Stalled { reason, .. } => *reason,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Outcome::Converged { message }
            | Outcome::Progressing { message, .. }
            | Outcome::Stalled { message, .. } => message,
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Outcome::Converged { .. })
    }

    pub fn is_stalled(&self) -> bool {
        matches!(self, Outcome::Stalled { .. })
    }
}

/// The longest condition message written: a real API server refuses one past 32,768 bytes, and a
/// message quoting a user's value must never make every status write fail.
pub const MAX_CONDITION_MESSAGE: usize = 4096;

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    old: &[Condition],
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(now, |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: super::events::bounded(message.into(), MAX_CONDITION_MESSAGE),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Ready, Reconciling and Stalled for an outcome, keeping transition times of unchanged conditions.
pub fn conditions(outcome: &Outcome, generation: Option<i64>, old: &[Condition]) -> Vec<Condition> {
    let c = |type_: &str, status: bool, reason: Reason, message: &str| {
        condition(type_, status, reason.as_str(), message, generation, old)
    };
    match outcome {
        Outcome::Converged { message } => vec![
            c(READY, true, Reason::CONVERGED, message),
            c(RECONCILING, false, Reason::CONVERGED, ""),
            c(STALLED, false, Reason::CONVERGED, ""),
        ],
        Outcome::Progressing { reason, message } => vec![
            c(READY, false, *reason, message),
            c(RECONCILING, true, *reason, message),
            c(STALLED, false, *reason, ""),
        ],
        Outcome::Stalled { reason, message } => vec![
            c(READY, false, *reason, message),
            c(RECONCILING, false, *reason, ""),
            c(STALLED, true, *reason, message),
        ],
    }
}

/// Whether `conditions` already say the object is stalled for `reason` with `message` (an Event about
/// it was sent then).
pub fn already_stalled(conditions: &[Condition], reason: Reason, message: &str) -> bool {
    let written = super::events::bounded(message.to_string(), MAX_CONDITION_MESSAGE);
    conditions.iter().any(|c| {
        c.type_ == STALLED && c.status == "True" && reason == c.reason.as_str() && c.message == written
    })
}

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
    fn kstatus_shapes() {
        let c = conditions(&Outcome::converged("ok"), Some(3), &[]);
        let s: Vec<(&str, &str)> = c.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(
            s,
            [("Ready", "True"), ("Reconciling", "False"), ("Stalled", "False")]
        );
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
        let c = conditions(&Outcome::stalled(Reason::INVALID_SPEC, "bad"), Some(4), &c);
        let s: Vec<(&str, &str, &str)> = c
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            s,
            [
                ("Ready", "False", "InvalidSpec"),
                ("Reconciling", "False", "InvalidSpec"),
                ("Stalled", "True", "InvalidSpec")
            ]
        );
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let first = conditions(&Outcome::progressing(Reason::VERIFYING, "a"), Some(1), &[]);
        let mut old = first.clone();
        old[0].last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let again = conditions(
            &Outcome::progressing(Reason::WAITING_FOR_DEVICE_GROUP, "b"),
            Some(1),
            &old,
        );
        assert_eq!(
            again[0].last_transition_time, old[0].last_transition_time,
            "Ready stayed False"
        );
        let flipped = conditions(&Outcome::converged(""), Some(1), &old);
        assert_ne!(flipped[0].last_transition_time, old[0].last_transition_time);
    }

    #[test]
    fn timestamps_alone_do_not_count_as_a_change() {
        let a = json!({"graphState": "offering", "lastSyncTime": "1", "conditions": [{"type": "Ready", "lastTransitionTime": "x"}]});
        let b = json!({"graphState": "offering", "lastSyncTime": "2", "conditions": [{"type": "Ready", "lastTransitionTime": "y"}]});
        assert_eq!(comparable(&a), comparable(&b));
        let c = json!({"graphState": "paused", "lastSyncTime": "2"});
        assert_ne!(comparable(&a), comparable(&c));
    }
}
