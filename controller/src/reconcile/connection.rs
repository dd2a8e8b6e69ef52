//! GraphConnection and ClusterGraphConnection: build the connection's own Graph client (its token
//! cache, rate limiter and concurrency), sign in and prove the permission with a cheap read, and hold
//! the client for the objects that name the connection ([`crate::connections`]). The Secret is read by
//! name at every pass (about once a minute), so a rotated credential is picked up without a restart;
//! a connection that objects still use is not deleted (the finalizer stays, the users in status).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use super::error::Error;
use super::finalizer::with_finalizer;
use super::reasons::Reason;
use super::status::{self, Outcome};
use kube::runtime::reflector::ObjectRef;

use crate::connections::{ConnKey, Connected, UsesConnection};
use crate::crd::{
    ClusterGraphConnection, ConnectionSpec, DeviceGroup, ExpeditedDeployment, FINALIZER, GraphConnection,
    GraphConnectionStatus,
};
use crate::graph::{Credential, Endpoints, GraphClient, GraphConfig, GraphError};

/// How long a successful sign-in and read stands before the next one.
pub const RECHECK: Duration = Duration::from_secs(600);
/// Most users listed in status.
pub const MAX_USERS: usize = 50;

/// Either connection kind, as a pass sees it.
pub trait ConnectionObject:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug + Send + Sync + 'static
{
    const KIND: &'static str;
    fn connection(&self) -> &ConnectionSpec;
    fn key(&self) -> ConnKey;
    /// The namespace of its Secret.
    fn secret_namespace(&self, operator_namespace: &str) -> String;
    fn connection_status(&self) -> Option<&GraphConnectionStatus>;
    fn api(client: &kube::Client, obj: &Self) -> Api<Self>;
}

impl ConnectionObject for GraphConnection {
    const KIND: &'static str = "GraphConnection";
    fn connection(&self) -> &ConnectionSpec {
        &self.spec.connection
    }
    fn key(&self) -> ConnKey {
        ConnKey::graph(&self.namespace().unwrap_or_default(), &self.name_any())
    }
    fn secret_namespace(&self, _: &str) -> String {
        self.namespace().unwrap_or_default()
    }
    fn connection_status(&self) -> Option<&GraphConnectionStatus> {
        self.status.as_ref()
    }
    fn api(client: &kube::Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default())
    }
}

impl ConnectionObject for ClusterGraphConnection {
    const KIND: &'static str = "ClusterGraphConnection";
    fn connection(&self) -> &ConnectionSpec {
        &self.spec.connection
    }
    fn key(&self) -> ConnKey {
        ConnKey::cluster(&self.name_any())
    }
    fn secret_namespace(&self, operator_namespace: &str) -> String {
        operator_namespace.to_string()
    }
    fn connection_status(&self) -> Option<&GraphConnectionStatus> {
        self.status.as_ref()
    }
    fn api(client: &kube::Client, _: &Self) -> Api<Self> {
        Api::all(client.clone())
    }
}

/// A connection's Secret as read.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretRead {
    /// The credential is workload identity: no Secret.
    NotNeeded,
    Found {
        data: BTreeMap<String, Vec<u8>>,
        version: String,
    },
    /// `namespace/name` does not exist.
    Missing(String),
}

impl SecretRead {
    /// Reads Secret `ns/name` by name.
    pub async fn get(client: &kube::Client, ns: &str, name: &str) -> Result<SecretRead, kube::Error> {
        Ok(
            match Api::<Secret>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await?
            {
                Some(s) => SecretRead::Found {
                    version: s.metadata.resource_version.clone().unwrap_or_default(),
                    data: s
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect(),
                },
                None => SecretRead::Missing(format!("{ns}/{name}")),
            },
        )
    }
}

/// What a connection's client is built from, or why it cannot be built (the outcome to report).
#[derive(Debug)]
pub struct Planned {
    pub config: GraphConfig,
    /// The generation and the Secret's version: a change builds a new client.
    pub built_from: String,
    /// Passes of the connection's objects at once (its concurrency; the driver also keeps it to half
    /// the admission gate).
    pub passes: usize,
}

/// Decides a connection's client from its spec, its Secret and the operator's defaults. Pure. `namespaced`
/// is true for a GraphConnection.
pub fn plan_connection(
    spec: &ConnectionSpec,
    generation: Option<i64>,
    namespaced: bool,
    defaults: &super::settings::ConnectionDefaults,
    secret: &SecretRead,
) -> Result<Planned, Outcome> {
    let invalid = |m: String| Outcome::stalled(Reason::INVALID_SPEC, m);
    let cloud: crate::graph::Cloud = spec.cloud.into();
    let endpoints = match &spec.endpoints {
        Some(e) => {
            let authority = match &e.authority_host {
                Some(a) => a.clone(),
                None => reqwest::Url::parse(&e.graph_url)
                    .map(|u| u.origin().ascii_serialization())
                    .map_err(|_| invalid(format!("spec.endpoints.graphUrl: '{}' is not a URL such as https://graph.microsoft.com/beta", e.graph_url)))?,
            };
            Endpoints::custom(&authority, &e.graph_url)
                .map_err(|err| invalid(format!("spec.endpoints: {err}")))?
        }
        None => {
            if cloud.availability() == crate::graph::endpoints::Availability::Unavailable {
                return Err(invalid(
                    "spec.cloud: the Windows Update for Business deployment service is not offered in china; use global, us-gov or us-gov-dod".into(),
                ));
            }
            Endpoints::cloud(cloud).map_err(|err| invalid(format!("spec.cloud: {err}")))?
        }
    };
    let credential = match (
        &spec.credential.secret_ref,
        &spec.credential.workload_identity,
        secret,
    ) {
        (Some(_), _, SecretRead::Found { data, .. }) => {
            Credential::for_connection(&spec.tenant_id, &spec.client_id, data).map_err(|e| {
                invalid(format!(
                    "spec.credential.secretRef: {}",
                    e.to_string()
                        .trim_start_matches("failed to read the credential: ")
                ))
            })?
        }
        (Some(r), _, _) => {
            let at = match secret {
                SecretRead::Missing(at) => at.clone(),
                _ => r.name.clone(),
            };
            return Err(Outcome::progressing(
                Reason::SECRET_NOT_FOUND,
                format!(
                    "spec.credential.secretRef: Secret {at} does not exist; create it with the key clientSecret or clientCertificate"
                ),
            ));
        }
        (None, Some(_), _) if namespaced && !defaults.namespaced_workload_identity => {
            return Err(invalid(
                "spec.credential.workloadIdentity: a GraphConnection may not sign in as the operator's own service account (anyone who can create one in a namespace could then act as any app that trusts the operator); use a ClusterGraphConnection, a secretRef, or run the operator with --namespaced-workload-identity".into(),
            ));
        }
        (None, Some(_), _) => match &defaults.federated_token_file {
            Some(file) => Credential::workload_identity(&spec.tenant_id, &spec.client_id, file),
            None => {
                return Err(invalid(
                    "spec.credential.workloadIdentity: the operator has no service-account token file for workload identity (set --federated-token-file or AZURE_FEDERATED_TOKEN_FILE, as the chart's workloadIdentity values do)".into(),
                ));
            }
        },
        (None, None, _) => {
            return Err(invalid(
                "spec.credential: set exactly one of secretRef or workloadIdentity".into(),
            ));
        }
    };
    let budget = spec.budget.clone().unwrap_or_default();
    let mut transport = defaults.transport.clone();
    if let Some(r) = budget.requests_per_second {
        transport.rate_per_sec = f64::from(r);
    }
    if let Some(b) = budget.burst {
        transport.burst = b;
    }
    if let Some(c) = budget.concurrency {
        transport.concurrency = c as usize;
    }
    transport.concurrency = transport.concurrency.max(1);
    let version = match secret {
        SecretRead::Found { version, .. } => version.as_str(),
        _ => "-",
    };
    Ok(Planned {
        passes: transport.concurrency,
        config: GraphConfig {
            endpoints,
            credential: Some(credential),
            transport,
            batch_size: defaults.batch_size.max(1),
        },
        built_from: format!("{}/{version}", generation.unwrap_or_default()),
    })
}

/// The message of a failed sign-in or read, saying what to fix. Never carries the credential (token
/// errors carry the identity platform's error code and description only).
pub fn failure_message(spec: &ConnectionSpec, err: &GraphError) -> String {
    match err.status() {
        Some(403) => format!(
            "the app {} lacks a Graph application permission in tenant {}: grant WindowsUpdates.ReadWrite.All (and GroupMember.Read.All with Device.Read.All for DeviceGroups that read Entra groups) with admin consent; Graph said: {err}",
            spec.client_id, spec.tenant_id
        ),
        _ => match err {
            GraphError::Token { .. } => format!(
                "signing in to tenant {} as app {} failed: {err}; check the tenant and client ids and the credential",
                spec.tenant_id, spec.client_id
            ),
            _ => format!("reading Graph in tenant {} failed: {err}", spec.tenant_id),
        },
    }
}

/// The objects whose connectionRef names `key`.
pub struct Users {
    pub deployments: Vec<ObjectRef<ExpeditedDeployment>>,
    pub groups: Vec<ObjectRef<DeviceGroup>>,
}

impl Users {
    pub fn of(ctx: &Context, key: &ConnKey) -> Users {
        fn named<K>(store: &kube::runtime::reflector::Store<K>, key: &ConnKey) -> Vec<ObjectRef<K>>
        where
            K: UsesConnection + Resource<DynamicType = ()> + Clone,
        {
            store
                .state()
                .iter()
                .filter(|o| {
                    o.connection_ref().is_some_and(|r| {
                        &ConnKey::of(r, o.meta().namespace.as_deref().unwrap_or_default()) == key
                    })
                })
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect()
        }
        Users {
            deployments: named(&ctx.deployments, key),
            groups: named(&ctx.groups, key),
        }
    }

    /// As status lists them: `namespace/Kind/name`, sorted.
    pub fn names(&self) -> Vec<String> {
        let name = |kind: &str, ns: &Option<String>, n: &str| {
            format!("{}/{kind}/{n}", ns.as_deref().unwrap_or_default())
        };
        let mut out: Vec<String> = self
            .deployments
            .iter()
            .map(|r| name("ExpeditedDeployment", &r.namespace, &r.name))
            .chain(
                self.groups
                    .iter()
                    .map(|r| name("DeviceGroup", &r.namespace, &r.name)),
            )
            .collect();
        out.sort();
        out
    }

    /// Passes for every user now, instead of at their next look: the connection they wait for is
    /// ready, or its credential changed.
    pub fn wake(self, ctx: &Context) {
        if let Some(stores) = &ctx.connection_stores {
            for r in self.deployments {
                let _ = stores.wake_deployments.send(r);
            }
            for r in self.groups {
                let _ = stores.wake_groups.send(r);
            }
        }
    }
}

/// The objects whose connectionRef names `key`, as `namespace/Kind/name`, sorted.
pub fn users(ctx: &Context, key: &ConnKey) -> Vec<String> {
    Users::of(ctx, key).names()
}

/// One pass over a connection.
pub async fn reconcile<K: ConnectionObject>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api = K::api(&ctx.client, &obj);
    let obj = with_finalizer(&api, &ctx.writes, obj).await?;
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(o) => apply(o.as_ref(), &ctx, &api).await,
            Finalizer::Cleanup(o) => cleanup(o.as_ref(), &ctx, &api).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn read_secret<K: ConnectionObject>(obj: &K, ctx: &Context) -> Result<SecretRead, Error> {
    let Some(r) = &obj.connection().credential.secret_ref else {
        return Ok(SecretRead::NotNeeded);
    };
    let ns = obj.secret_namespace(&ctx.settings.connections.operator_namespace);
    SecretRead::get(&ctx.client, &ns, &r.name)
        .await
        .map_err(Error::kube("read the connection's Secret"))
}

async fn apply<K: ConnectionObject>(obj: &K, ctx: &Context, api: &Api<K>) -> Result<Action, Error> {
    let key = obj.key();
    let users = users(ctx, &key);
    let secret = read_secret(obj, ctx).await?;
    let namespaced = K::KIND == GraphConnection::KIND;
    let held = ctx.connections.held(&key);
    let old = obj.connection_status().cloned().unwrap_or_default();
    let checked_recently = old
        .last_check_time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| {
            chrono::Utc::now()
                .signed_duration_since(t)
                .to_std()
                .unwrap_or_default()
                < RECHECK
        });
    let mut behaviours = old.service_behaviours.clone();
    let planned = plan_connection(
        obj.connection(),
        obj.meta().generation,
        namespaced,
        &ctx.settings.connections,
        &secret,
    );
    let certificate_expiry = planned
        .as_ref()
        .ok()
        .and_then(|p| p.config.credential.as_ref())
        .and_then(crate::graph::Credential::certificate_expiry)
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let (outcome, last_check) = match planned {
        Err(outcome) => {
            ctx.connections.set_not_ready(&key, outcome.message(), false);
            (outcome, old.last_check_time.clone())
        }
        Ok(planned)
            if held.as_ref().is_some_and(|h| h.built_from == planned.built_from)
                && checked_recently
                && old
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True") =>
        {
            (
                Outcome::converged(format!("signed in to tenant {}", obj.connection().tenant_id)),
                old.last_check_time.clone(),
            )
        }
        Ok(planned) => {
            let rotated = held.as_ref().is_some_and(|h| h.built_from != planned.built_from);
            let client = Arc::new(
                GraphClient::new(
                    planned.config,
                    ctx.settings.connections.metrics.for_connection(&key.label()),
                )
                .map_err(Error::Graph)?,
            );
            match client.probe().await {
                Ok(()) => {
                    // What the service does where the reference is silent, as `check` reports it.
                    let found = client.service_behaviours().await;
                    log_behaviours(&key.label(), &behaviours, &found);
                    behaviours = found;
                    ctx.connections.set_ready(
                        &key,
                        Arc::new(Connected {
                            client,
                            tenant_id: obj.connection().tenant_id.to_lowercase(),
                            built_from: planned.built_from,
                            // At most half the admission gate, whatever its budget: two slow tenants
                            // never hold every slot.
                            passes: Arc::new(tokio::sync::Semaphore::new(
                                planned
                                    .passes
                                    .min((usize::from(ctx.settings.reconcile_concurrency) / 2).max(1)),
                            )),
                        }),
                    );
                    let message = format!(
                        "signed in to tenant {} as app {} and read Graph",
                        obj.connection().tenant_id,
                        obj.connection().client_id
                    );
                    // The objects waiting for it go now.
                    Users::of(ctx, &key).wake(ctx);
                    if rotated || held.is_none() {
                        ctx.events.notify(
                            obj,
                            EventType::Normal,
                            Reason::CONNECTED,
                            "Connect",
                            if rotated {
                                format!("{message}, with the changed credential")
                            } else {
                                message.clone()
                            },
                        );
                    }
                    (Outcome::converged(message), Some(status::timestamp()))
                }
                Err(e) => {
                    let message = failure_message(obj.connection(), &e);
                    // A passing failure keeps a client that worked, so its objects go on; a refused
                    // sign-in or permission drops it.
                    let keep = e.is_transient() && !rotated;
                    ctx.connections.set_not_ready(&key, &message, keep);
                    let outcome = if e.is_transient() {
                        Outcome::progressing(Reason::CONNECTION_FAILED, message)
                    } else {
                        Outcome::stalled(Reason::CONNECTION_FAILED, message)
                    };
                    (outcome, old.last_check_time.clone())
                }
            }
        }
    };
    ctx.stalled_once(obj, &old.conditions, &outcome);
    let checked = Checked {
        last_check_time: last_check,
        certificate_expiry_time: certificate_expiry,
        service_behaviours: behaviours,
    };
    write(obj, ctx, api, users, checked, &outcome).await?;
    // Looked at again (its Secret read, a rotation picked up) every check interval; sooner while it
    // waits for something that may come by itself.
    let every = ctx.settings.connections.check_interval;
    Ok(Action::requeue(if outcome.is_ready() || outcome.is_stalled() {
        every
    } else {
        every.min(Duration::from_secs(10))
    }))
}

/// Logs each service behaviour found that differs from what was found before (one line each).
pub fn log_behaviours(
    connection: &str,
    before: &[crate::crd::ServiceBehaviour],
    found: &[crate::crd::ServiceBehaviour],
) {
    for b in found.iter().filter(|b| !before.contains(b)) {
        tracing::info!(connection, behaviour = %b.name, value = %b.value, "service behaviour: {}", b.found);
    }
}

/// What a check found, for the status.
struct Checked {
    last_check_time: Option<String>,
    certificate_expiry_time: Option<String>,
    service_behaviours: Vec<crate::crd::ServiceBehaviour>,
}

/// Writes a connection's status: the users, what the check found, and the conditions of `outcome`.
/// Returns whether it wrote.
async fn write<K: ConnectionObject>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    users: Vec<String>,
    checked: Checked,
    outcome: &Outcome,
) -> Result<bool, Error> {
    let Checked {
        last_check_time,
        certificate_expiry_time,
        service_behaviours,
    } = checked;
    let old = obj
        .connection_status()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let status = GraphConnectionStatus {
        observed_generation: obj.meta().generation,
        user_count: Some(users.len() as u64),
        users: users.into_iter().take(MAX_USERS).collect(),
        last_check_time,
        certificate_expiry_time,
        service_behaviours,
        conditions: status::conditions(outcome, obj.meta().generation, old),
    };
    status::write(
        api,
        &ctx.writes,
        &obj.name_any(),
        obj.connection_status(),
        &status,
        None,
    )
    .await
    .map(|w| w.is_some())
}

async fn cleanup<K: ConnectionObject>(obj: &K, ctx: &Context, api: &Api<K>) -> Result<Action, Error> {
    let key = obj.key();
    let users = users(ctx, &key);
    if users.is_empty() {
        ctx.connections.forget(&key);
        return Ok(Action::await_change());
    }
    let message = format!(
        "{} object(s) still use this connection ({}{}); it is deleted once they name another connection or are deleted",
        users.len(),
        users.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
        if users.len() > 10 { ", ..." } else { "" }
    );
    let outcome = Outcome::progressing(Reason::IN_USE, message.clone());
    let old = obj.connection_status().cloned().unwrap_or_default();
    let checked = Checked {
        last_check_time: old.last_check_time,
        certificate_expiry_time: old.certificate_expiry_time,
        service_behaviours: old.service_behaviours,
    };
    if write(obj, ctx, api, users, checked, &outcome).await? {
        ctx.events
            .notify(obj, EventType::Warning, Reason::IN_USE, "Delete", message.clone());
    }
    Err(Error::Waiting {
        reason: Reason::IN_USE,
        message,
        retry: Duration::from_secs(5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::settings::ConnectionDefaults;

    fn spec(credential: serde_json::Value, extra: serde_json::Value) -> ConnectionSpec {
        let mut v = serde_json::json!({
            "tenantId": "00000000-0000-4000-8000-0000000000aa",
            "clientId": "00000000-0000-4000-8000-0000000000bb",
            "credential": credential,
        });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn secret(pairs: &[(&str, &str)], version: &str) -> SecretRead {
        SecretRead::Found {
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            version: version.into(),
        }
    }

    #[test]
    fn a_connection_is_built_only_from_a_usable_credential_and_says_what_to_fix() {
        let defaults = ConnectionDefaults::default();
        let by_secret = spec(
            serde_json::json!({"secretRef": {"name": "t"}}),
            serde_json::json!({}),
        );
        let wif = spec(serde_json::json!({"workloadIdentity": {}}), serde_json::json!({}));
        let with_file = ConnectionDefaults {
            federated_token_file: Some("/var/run/secrets/azure/tokens/azure-identity-token".into()),
            ..Default::default()
        };
        let allowed = ConnectionDefaults {
            namespaced_workload_identity: true,
            ..with_file.clone()
        };
        let china = spec(
            serde_json::json!({"secretRef": {"name": "t"}}),
            serde_json::json!({"cloud": "china"}),
        );
        let custom = spec(
            serde_json::json!({"secretRef": {"name": "t"}}),
            serde_json::json!({"endpoints": {"graphUrl": "http://127.0.0.1:9/beta"}}),
        );
        let ok = secret(&[("clientSecret", "s3cr3t-value")], "7");
        let missing = SecretRead::Missing("ns/t".into());
        let keyless = secret(&[("other", "x")], "8");
        type Row<'a> = (
            &'a str,
            &'a ConnectionSpec,
            bool,
            &'a ConnectionDefaults,
            &'a SecretRead,
            Result<&'a str, &'a str>,
        );
        let rows: Vec<Row> = vec![
            (
                "a Secret with a client secret",
                &by_secret,
                true,
                &defaults,
                &ok,
                Ok("1/7"),
            ),
            (
                "a missing Secret waits",
                &by_secret,
                true,
                &defaults,
                &missing,
                Err("Secret ns/t does not exist"),
            ),
            (
                "a Secret without a credential key",
                &by_secret,
                true,
                &defaults,
                &keyless,
                Err("spec.credential.secretRef"),
            ),
            (
                "workload identity on a namespaced connection is refused",
                &wif,
                true,
                &with_file,
                &SecretRead::NotNeeded,
                Err("--namespaced-workload-identity"),
            ),
            (
                "workload identity on a cluster connection",
                &wif,
                false,
                &with_file,
                &SecretRead::NotNeeded,
                Ok("1/-"),
            ),
            (
                "workload identity allowed on namespaced ones by the flag",
                &wif,
                true,
                &allowed,
                &SecretRead::NotNeeded,
                Ok("1/-"),
            ),
            (
                "workload identity without a token file",
                &wif,
                false,
                &defaults,
                &SecretRead::NotNeeded,
                Err("--federated-token-file"),
            ),
            (
                "china is refused",
                &china,
                true,
                &defaults,
                &ok,
                Err("spec.cloud"),
            ),
            ("custom endpoints", &custom, true, &defaults, &ok, Ok("1/7")),
        ];
        for (name, spec, namespaced, defaults, secret, want) in rows {
            match (plan_connection(spec, Some(1), namespaced, defaults, secret), want) {
                (Ok(p), Ok(from)) => assert_eq!(p.built_from, from, "{name}"),
                (Err(o), Err(fix)) => {
                    assert!(o.message().contains(fix), "{name}: {}", o.message());
                    assert!(
                        !o.message().contains("s3cr3t-value"),
                        "{name}: no secret in a message"
                    );
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_budget_sets_the_connections_own_limits() {
        let s = spec(
            serde_json::json!({"secretRef": {"name": "t"}}),
            serde_json::json!({"budget": {"requestsPerSecond": 5, "burst": 10, "concurrency": 3}}),
        );
        let p = plan_connection(
            &s,
            Some(2),
            true,
            &ConnectionDefaults::default(),
            &secret(&[("clientSecret", "x")], "1"),
        )
        .unwrap();
        assert_eq!(
            (
                p.config.transport.rate_per_sec,
                p.config.transport.burst,
                p.config.transport.concurrency,
                p.passes
            ),
            (5.0, 10, 3, 3)
        );
    }

    proptest::proptest! {
        /// Any spec and Secret a namespace user can write: a connection is planned or refused with a
        /// bounded message that never quotes the Secret, never a panic, and a planned one has a budget
        /// within its bounds.
        #[test]
        fn any_connection_spec_and_secret_is_planned_or_refused(
            tenant in "\\PC{0,40}",
            url in proptest::option::of(proptest::prop_oneof![
                proptest::strategy::Just("http://127.0.0.1:1/beta".to_string()),
                proptest::strategy::Just("https://graph.microsoft.com/beta".to_string()),
                "\\PC{0,60}",
            ]),
            authority in proptest::option::of("\\PC{0,40}"),
            rate in proptest::option::of(proptest::num::u32::ANY),
            burst in proptest::option::of(proptest::num::u32::ANY),
            concurrency in proptest::option::of(proptest::num::u32::ANY),
            secret_value in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            key in proptest::sample::select(vec!["clientSecret", "clientCertificate", "other"]),
            workload in proptest::bool::ANY,
        ) {
            let mut extra = serde_json::json!({"tenantId": tenant});
            if let Some(u) = url {
                extra["endpoints"] = serde_json::json!({"graphUrl": u, "authorityHost": authority});
            }
            extra["budget"] = serde_json::json!({"requestsPerSecond": rate, "burst": burst, "concurrency": concurrency});
            let credential = if workload {
                serde_json::json!({"workloadIdentity": {}})
            } else {
                serde_json::json!({"secretRef": {"name": "s"}})
            };
            let s = spec(credential, extra);
            let read = SecretRead::Found {
                data: [(key.to_string(), secret_value.clone())].into(),
                version: "1".into(),
            };
            match plan_connection(&s, Some(1), true, &ConnectionDefaults::default(), &read) {
                Ok(p) => {
                    proptest::prop_assert!(p.passes >= 1);
                    proptest::prop_assert!(p.config.transport.rate_per_sec.is_finite() && p.config.transport.rate_per_sec >= 0.0);
                }
                Err(outcome) => {
                    proptest::prop_assert!(outcome.message().len() < 8192, "bounded");
                    if let Ok(text) = std::str::from_utf8(&secret_value) {
                        let text = text.trim();
                        proptest::prop_assert!(text.len() < 8 || !outcome.message().contains(text), "{}", outcome.message());
                    }
                }
            }
        }
    }
}
