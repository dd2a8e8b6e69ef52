//! The cluster's checks: its version, the CRDs (installed, Established, at this version's schema), the
//! operator (its Lease renewed, its version), permissions (the operator's service account through
//! SubjectAccessReview, the caller's through SelfSubjectAccessReview) and the objects.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::{Check, CheckArgs};
use crate::cli::cluster::{ClusterArgs, client};
use crate::connections::ConnKey;
use crate::crd::{ClusterGraphConnection, DeviceGroup, ExpeditedDeployment, FINALIZER, GraphConnection};
use crate::reconcile::reasons::Reason;

const GROUP: &str = "cluster";

/// What the cluster's checks found that later groups use.
#[derive(Default)]
pub struct Found {
    pub client: Option<kube::Client>,
    pub operator_version: Option<String>,
    /// The Entra ID group ids DeviceGroups name (`spec.entraGroupId`).
    pub entra_groups: Vec<String>,
    /// The connections the caller may read.
    pub connections: Vec<ConnKey>,
}

/// Runs the cluster's checks into `out`.
pub async fn check(args: &CheckArgs, in_process: bool, out: &mut Vec<Check>) -> Found {
    let mut found = Found::default();
    let cluster_args = ClusterArgs {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        offline: false,
    };
    let client = match client(&cluster_args).await {
        Ok((c, _, _)) => c,
        Err(e) => {
            out.push(Check::failed(
                GROUP,
                "reachable",
                e.what(),
                Reason::CLUSTER_UNREACHABLE,
            ));
            return found;
        }
    };
    if !version(&client, out).await {
        return found;
    }
    let crds = crds(&client, args.pre, out).await;
    if args.pre {
        install_permissions(&client, &args.namespace, out).await;
        found.client = Some(client);
        return found;
    }
    let running = if in_process {
        let why = "the operator runs in this process (the demo): no Lease, no service account";
        out.push(Check::skipped(GROUP, "operator-running", why));
        out.push(Check::skipped(GROUP, "operator-version", why));
        out.push(Check::skipped(GROUP, "operator-permissions", why));
        true
    } else {
        let running = lease(&client, args, &mut found, out).await;
        operator_permissions(&client, args, out).await;
        running
    };
    caller_permissions(&client, out).await;
    if crds {
        objects(&client, running, &mut found, out).await;
        found.connections = connections(&client).await;
    }
    found.client = Some(client);
    found
}

/// `(major, minor)` of a version answer: the minor may carry a suffix (`30+` on some providers).
pub fn parse_version(major: &str, minor: &str) -> Option<(u32, u32)> {
    let digits = |s: &str| -> Option<u32> {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        d.parse().ok()
    };
    Some((digits(major)?, digits(minor)?))
}

async fn version(client: &kube::Client, out: &mut Vec<Check>) -> bool {
    let (min_major, min_minor) = crate::crd::MIN_KUBERNETES;
    match client.apiserver_version().await {
        Err(e) => {
            out.push(Check::failed(
                GROUP,
                "reachable",
                format!("the API server did not answer /version: {e}"),
                Reason::CLUSTER_UNREACHABLE,
            ));
            false
        }
        Ok(info) => {
            out.push(Check::ok(GROUP, "reachable", "the API server answers"));
            let found = format!(
                "{} (the CRDs need {min_major}.{min_minor} or newer)",
                info.git_version
            );
            match parse_version(&info.major, &info.minor) {
                Some(v) if v >= (min_major, min_minor) => {
                    out.push(Check::ok(GROUP, "kubernetes-version", found))
                }
                Some(_) => out.push(Check::failed(
                    GROUP,
                    "kubernetes-version",
                    found,
                    Reason::KUBERNETES_TOO_OLD,
                )),
                None => out.push(Check::warning(
                    GROUP,
                    "kubernetes-version",
                    format!("unreadable version {:?}.{:?}; {found}", info.major, info.minor),
                    Reason::KUBERNETES_TOO_OLD,
                )),
            }
            true
        }
    }
}

/// Removes every `description` (they may differ without changing what the server accepts).
fn without_descriptions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("description");
            m.values_mut().for_each(without_descriptions);
        }
        Value::Array(a) => a.iter_mut().for_each(without_descriptions),
        _ => {}
    }
}

/// The paths where `live` differs from `want`, at most `limit` of them, each with how.
pub fn schema_diff(want: &Value, live: &Value, limit: usize) -> Vec<String> {
    fn walk(want: &Value, live: &Value, path: &str, out: &mut Vec<String>, limit: usize) {
        if out.len() >= limit || want == live {
            return;
        }
        let at = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match (want, live) {
            (Value::Object(w), Value::Object(l)) => {
                for (k, wv) in w {
                    match l.get(k) {
                        None => out.push(format!("{}: missing from the installed CRD", at(k))),
                        Some(lv) => walk(wv, lv, &at(k), out, limit),
                    }
                    if out.len() >= limit {
                        return;
                    }
                }
                for k in l.keys().filter(|k| !w.contains_key(*k)) {
                    if out.len() >= limit {
                        return;
                    }
                    out.push(format!("{}: in the installed CRD only", at(k)));
                }
            }
            (Value::Array(w), Value::Array(l)) if w.len() == l.len() => {
                for (i, (wv, lv)) in w.iter().zip(l).enumerate() {
                    walk(wv, lv, &format!("{path}[{i}]"), out, limit);
                }
            }
            _ => out.push(format!("{path}: {live} installed, {want} in this version")),
        }
    }
    let mut out = Vec::new();
    walk(want, live, "", &mut out, limit);
    out
}

/// What of a CRD's versions decides what the server accepts: names, served and storage flags, schemas
/// (descriptions aside) and subresources.
fn structural(crd: &CustomResourceDefinition) -> Value {
    let mut versions = serde_json::Map::new();
    for v in &crd.spec.versions {
        let mut schema = serde_json::to_value(&v.schema).unwrap_or(Value::Null);
        without_descriptions(&mut schema);
        versions.insert(
            v.name.clone(),
            serde_json::json!({
                "served": v.served,
                "storage": v.storage,
                "schema": schema,
                "subresources": serde_json::to_value(&v.subresources).unwrap_or(Value::Null),
            }),
        );
    }
    Value::Object(versions)
}

/// Each CRD installed, Established and at this version's schema; returns whether all are served.
async fn crds(client: &kube::Client, pre: bool, out: &mut Vec<Check>) -> bool {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut served = true;
    for want in crate::crd::all() {
        let name = want.metadata.name.clone().unwrap_or_default();
        let check = format!("crd-{}", want.spec.names.plural);
        match api.get_opt(&name).await {
            Err(e) => {
                served = false;
                out.push(Check::warning(
                    GROUP,
                    &check,
                    format!("{name} could not be read: {e}"),
                    Reason::CALLER_PERMISSION_MISSING,
                ));
            }
            Ok(None) if pre => {
                served = false;
                out.push(Check::ok(
                    GROUP,
                    &check,
                    format!("{name} not installed yet (the chart installs it)"),
                ));
            }
            Ok(None) => {
                served = false;
                out.push(Check::failed(
                    GROUP,
                    &check,
                    format!("{name} is not installed"),
                    Reason::CRD_MISSING,
                ));
            }
            Ok(Some(live)) => {
                let established = live
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
                let diff = schema_diff(&structural(&want), &structural(&live), 8);
                if !established {
                    served = false;
                    out.push(Check::failed(
                        GROUP,
                        &check,
                        format!("{name} is installed but not Established"),
                        Reason::CRD_NOT_ESTABLISHED,
                    ));
                } else if !diff.is_empty() {
                    out.push(Check::failed(
                        GROUP,
                        &check,
                        format!("{name} differs from this version's schema: {}", diff.join("; ")),
                        Reason::CRD_SCHEMA_OUTDATED,
                    ));
                } else {
                    out.push(Check::ok(
                        GROUP,
                        &check,
                        format!("{name} Established, at this version's schema"),
                    ));
                }
            }
        }
    }
    served
}

/// The operator's Lease (or its shards'), renewed while we watch: its resourceVersion changes within
/// `--lease-wait` (no comparison of renewTime with this machine's clock). Returns whether it runs.
async fn lease(client: &kube::Client, args: &CheckArgs, found: &mut Found, out: &mut Vec<Check>) -> bool {
    let api: Api<Lease> = Api::namespaced(client.clone(), &args.namespace);
    let shard_prefix = format!("{}-shard-", args.lease_name);
    let leases: Vec<Lease> = match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|l| {
                let n = l.metadata.name.as_deref().unwrap_or("");
                n == args.lease_name || n.starts_with(&shard_prefix)
            })
            .collect(),
        Err(e) => {
            out.push(Check::warning(
                GROUP,
                "operator-running",
                format!(
                    "the Leases in namespace {} could not be read: {e}",
                    args.namespace
                ),
                Reason::CALLER_PERMISSION_MISSING,
            ));
            return false;
        }
    };
    if leases.is_empty() {
        out.push(Check::failed(
            GROUP,
            "operator-running",
            format!(
                "no Lease {}/{} (or its shards'): no operator runs here with leader election",
                args.namespace, args.lease_name
            ),
            Reason::OPERATOR_NOT_RUNNING,
        ));
        out.push(Check::skipped(GROUP, "operator-version", "no operator Lease"));
        return false;
    }
    let mut running = true;
    for l in &leases {
        let name = l.metadata.name.clone().unwrap_or_default();
        let holder = l
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        let renewed = renewed_within(
            &api,
            &name,
            l.metadata.resource_version.as_deref(),
            args.lease_wait,
        )
        .await;
        if holder.is_empty() {
            running = false;
            out.push(Check::failed(
                GROUP,
                "operator-running",
                format!("Lease {}/{name} is released: no operator leads", args.namespace),
                Reason::OPERATOR_NOT_RUNNING,
            ));
        } else if renewed {
            out.push(Check::ok(
                GROUP,
                "operator-running",
                format!("Lease {}/{name} held by {holder} and renewed", args.namespace),
            ));
        } else {
            running = false;
            out.push(Check::failed(
                GROUP,
                "operator-running",
                format!(
                    "Lease {}/{name} held by {holder} was not renewed within {}s",
                    args.namespace,
                    args.lease_wait.as_secs()
                ),
                Reason::OPERATOR_NOT_RUNNING,
            ));
        }
        let version = l
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::leader::VERSION_ANNOTATION))
            .cloned();
        match &version {
            None => out.push(Check::warning(
                GROUP,
                "operator-version",
                format!(
                    "Lease {name} records no version ({}): the operator is older than this CLI ({})",
                    crate::leader::VERSION_ANNOTATION,
                    crate::leader::VERSION
                ),
                Reason::VERSION_SKEW,
            )),
            Some(v) if v != crate::leader::VERSION => out.push(Check::warning(
                GROUP,
                "operator-version",
                format!("the operator is {v}, this CLI {}", crate::leader::VERSION),
                Reason::VERSION_SKEW,
            )),
            Some(v) => out.push(Check::ok(GROUP, "operator-version", format!("{v}, the CLI's"))),
        }
        found.operator_version = found.operator_version.take().or(version);
    }
    running
}

async fn renewed_within(api: &Api<Lease>, name: &str, first: Option<&str>, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(Some(l)) = api.get_opt(name).await
            && l.metadata.resource_version.as_deref() != first
        {
            return true;
        }
    }
    false
}

/// One permission: verb, group, resource (with its subresource), namespace ("" for cluster-wide).
type Need = (&'static str, &'static str, &'static str, Option<&'static str>);

/// What the operator's service account needs in the namespaces it watches (the chart's RBAC).
const OPERATOR_WATCH: &[Need] = &[
    ("list", "wufb.dev", "expediteddeployments", None),
    ("watch", "wufb.dev", "expediteddeployments", None),
    ("patch", "wufb.dev", "expediteddeployments", None),
    ("patch", "wufb.dev", "expediteddeployments", Some("status")),
    ("list", "wufb.dev", "devicegroups", None),
    ("watch", "wufb.dev", "devicegroups", None),
    ("patch", "wufb.dev", "devicegroups", None),
    ("patch", "wufb.dev", "devicegroups", Some("status")),
    ("create", "events.k8s.io", "events", None),
    ("patch", "events.k8s.io", "events", None),
];

/// What it needs for connections (only when GraphConnections are used: a warning when missing).
const OPERATOR_CONNECTIONS: &[Need] = &[
    ("list", "wufb.dev", "graphconnections", None),
    ("watch", "wufb.dev", "graphconnections", None),
    ("patch", "wufb.dev", "graphconnections", Some("status")),
    ("get", "", "secrets", None),
];

/// What it needs in its own namespace.
const OPERATOR_SELF: &[Need] = &[
    ("get", "coordination.k8s.io", "leases", None),
    ("create", "coordination.k8s.io", "leases", None),
    ("update", "coordination.k8s.io", "leases", None),
];

fn attributes(n: &Need, namespace: &str) -> ResourceAttributes {
    ResourceAttributes {
        verb: Some(n.0.into()),
        group: Some(n.1.into()),
        resource: Some(n.2.into()),
        subresource: n.3.map(Into::into),
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        ..Default::default()
    }
}

fn describe(n: &Need, namespace: &str) -> String {
    let resource = match (n.1, n.3) {
        ("", None) => n.2.to_string(),
        ("", Some(s)) => format!("{}/{s}", n.2),
        (g, None) => format!("{}.{g}", n.2),
        (g, Some(s)) => format!("{}.{g}/{s}", n.2),
    };
    if namespace.is_empty() {
        format!("{} {resource}", n.0)
    } else {
        format!("{} {resource} in {namespace}", n.0)
    }
}

/// Asks the API server whether `user` may do each of `needs`; returns those denied (or unanswered).
async fn denied_for(
    client: &kube::Client,
    user: &str,
    needs: &[(Need, String)],
) -> Result<Vec<String>, String> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let reviews = needs.iter().map(|(n, ns)| {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.to_string()),
                resource_attributes: Some(attributes(n, ns)),
                ..Default::default()
            },
            ..Default::default()
        };
        let api = api.clone();
        async move { api.create(&PostParams::default(), &review).await }
    });
    let mut denied = Vec::new();
    for ((n, ns), answer) in needs.iter().zip(futures::future::join_all(reviews).await) {
        match answer {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => denied.push(describe(n, ns)),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(denied)
}

async fn operator_permissions(client: &kube::Client, args: &CheckArgs, out: &mut Vec<Check>) {
    let user = format!(
        "system:serviceaccount:{}:{}",
        args.namespace, args.service_account
    );
    let watched: Vec<String> = if args.watch_namespaces.is_empty() {
        vec![String::new()]
    } else {
        args.watch_namespaces.clone()
    };
    let with = |needs: &[Need], namespaces: &[String]| -> Vec<(Need, String)> {
        namespaces
            .iter()
            .flat_map(|ns| needs.iter().map(move |n| (*n, ns.clone())))
            .collect()
    };
    let mut required = with(OPERATOR_WATCH, &watched);
    required.extend(with(OPERATOR_SELF, std::slice::from_ref(&args.namespace)));
    match denied_for(client, &user, &required).await {
        Err(e) => out.push(Check::warning(
            GROUP,
            "operator-permissions",
            format!("SubjectAccessReview could not be asked: {e}"),
            Reason::CALLER_PERMISSION_MISSING,
        )),
        Ok(denied) if denied.is_empty() => out.push(Check::ok(
            GROUP,
            "operator-permissions",
            format!("{user} may do all {} things the operator needs", required.len()),
        )),
        Ok(denied) => out.push(Check::failed(
            GROUP,
            "operator-permissions",
            format!("{user} may not: {}", denied.join(", ")),
            Reason::OPERATOR_PERMISSION_MISSING,
        )),
    }
    let connections = with(OPERATOR_CONNECTIONS, &watched);
    match denied_for(client, &user, &connections).await {
        Ok(denied) if denied.is_empty() => out.push(Check::ok(
            GROUP,
            "operator-connection-permissions",
            "the operator may read GraphConnections and their Secrets",
        )),
        Ok(denied) => out.push(Check::warning(
            GROUP,
            "operator-connection-permissions",
            format!(
                "{user} may not: {} (needed only for objects with spec.connectionRef)",
                denied.join(", ")
            ),
            Reason::OPERATOR_PERMISSION_MISSING,
        )),
        Err(_) => {}
    }
}

/// What each CLI command needs of the caller.
const CALLER: &[(&str, Need)] = &[
    ("plan", ("list", "wufb.dev", "expediteddeployments", None)),
    ("plan", ("list", "wufb.dev", "devicegroups", None)),
    ("status", ("get", "wufb.dev", "expediteddeployments", None)),
    (
        "promote, abort, retry",
        ("patch", "wufb.dev", "expediteddeployments", None),
    ),
];

async fn caller_permissions(client: &kube::Client, out: &mut Vec<Check>) {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut denied: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (command, need) in CALLER {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(attributes(need, "")),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => denied.entry(command).or_default().push(describe(need, "")),
            Err(e) => {
                out.push(Check::warning(
                    GROUP,
                    "your-permissions",
                    format!("SelfSubjectAccessReview could not be asked: {e}"),
                    Reason::CALLER_PERMISSION_MISSING,
                ));
                return;
            }
        }
    }
    if denied.is_empty() {
        out.push(Check::ok(
            GROUP,
            "your-permissions",
            "you may run plan, status, promote, abort and retry (in every namespace)",
        ));
    } else {
        let list: Vec<String> = denied
            .iter()
            .map(|(c, d)| format!("{c} needs {}", d.join(", ")))
            .collect();
        out.push(Check::warning(
            GROUP,
            "your-permissions",
            format!(
                "cluster-wide, you may not do what {} (a namespace may still allow it)",
                list.join("; ")
            ),
            Reason::CALLER_PERMISSION_MISSING,
        ));
    }
}

/// What installing the chart creates.
const INSTALL: &[Need] = &[
    (
        "create",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        None,
    ),
    ("create", "rbac.authorization.k8s.io", "clusterroles", None),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", None),
];

const INSTALL_NAMESPACED: &[Need] = &[
    ("create", "apps", "deployments", None),
    ("create", "", "serviceaccounts", None),
    ("create", "rbac.authorization.k8s.io", "roles", None),
    ("create", "rbac.authorization.k8s.io", "rolebindings", None),
    ("create", "", "services", None),
];

async fn install_permissions(client: &kube::Client, namespace: &str, out: &mut Vec<Check>) {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let needs = INSTALL
        .iter()
        .map(|n| (*n, ""))
        .chain(INSTALL_NAMESPACED.iter().map(|n| (*n, namespace)));
    let mut denied = Vec::new();
    for (need, ns) in needs {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(attributes(&need, ns)),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => denied.push(describe(&need, ns)),
            Err(e) => denied.push(format!("{} (not answered: {e})", describe(&need, ns))),
        }
    }
    if denied.is_empty() {
        out.push(Check::ok(
            GROUP,
            "install-permissions",
            format!("you may create the CRDs, cluster roles and the operator's objects in {namespace}"),
        ));
    } else {
        out.push(Check::failed(
            GROUP,
            "install-permissions",
            format!("you may not: {}", denied.join(", ")),
            Reason::INSTALL_PERMISSION_MISSING,
        ));
    }
}

/// Objects of one kind by where they stand.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Tally {
    pub total: usize,
    pub ready: usize,
    pub reconciling: usize,
    pub stalled: Vec<String>,
    pub undecodable: Vec<String>,
    /// Objects holding the cleanup finalizer, and of them those being deleted.
    pub finalized: usize,
    pub deleting: Vec<String>,
}

fn is_true(obj: &DynamicObject, type_: &str) -> bool {
    obj.data["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == type_ && c["status"] == "True"))
}

/// Tallies objects as listed (raw, so one this version cannot read is counted, not lost).
pub fn tally<K: serde::de::DeserializeOwned>(items: &[DynamicObject]) -> Tally {
    let mut t = Tally::default();
    for o in items {
        let key = format!(
            "{}/{}",
            o.metadata.namespace.as_deref().unwrap_or(""),
            o.metadata.name.as_deref().unwrap_or("")
        );
        t.total += 1;
        let mut whole = o.data.clone();
        if let Value::Object(m) = &mut whole {
            m.insert(
                "metadata".into(),
                serde_json::to_value(&o.metadata).unwrap_or_default(),
            );
            if let Some(tm) = &o.types {
                m.insert("apiVersion".into(), tm.api_version.clone().into());
                m.insert("kind".into(), tm.kind.clone().into());
            }
        }
        if serde_json::from_value::<K>(whole).is_err() {
            t.undecodable.push(key.clone());
        }
        if is_true(o, crate::reconcile::reasons::READY) {
            t.ready += 1;
        } else if is_true(o, crate::reconcile::reasons::STALLED) {
            t.stalled.push(key.clone());
        } else if is_true(o, crate::reconcile::reasons::RECONCILING) {
            t.reconciling += 1;
        }
        if o.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER) {
            t.finalized += 1;
            if o.metadata.deletion_timestamp.is_some() {
                t.deleting.push(key);
            }
        }
    }
    t
}

fn few(keys: &[String]) -> String {
    let mut s = keys.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if keys.len() > 5 {
        s.push_str(&format!(" and {} more", keys.len() - 5));
    }
    s
}

async fn list_raw<K>(client: &kube::Client) -> Result<Vec<DynamicObject>, kube::Error>
where
    K: kube::Resource<DynamicType = ()>,
{
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<K>(&()));
    Ok(api.list(&ListParams::default()).await?.items)
}

async fn objects(client: &kube::Client, running: bool, found: &mut Found, out: &mut Vec<Check>) {
    let (expd, groups) = futures::join!(
        list_raw::<ExpeditedDeployment>(client),
        list_raw::<DeviceGroup>(client)
    );
    let (expd, groups) = match (expd, groups) {
        (Ok(e), Ok(g)) => (e, g),
        (Err(e), _) | (_, Err(e)) => {
            out.push(Check::warning(
                GROUP,
                "objects",
                format!("the objects could not be listed in every namespace: {e}"),
                Reason::CALLER_PERMISSION_MISSING,
            ));
            return;
        }
    };
    found.entra_groups = groups
        .iter()
        .filter_map(|g| g.data["spec"]["entraGroupId"].as_str().map(str::to_string))
        .collect();
    let tallies = [
        ("ExpeditedDeployments", tally::<ExpeditedDeployment>(&expd)),
        ("DeviceGroups", tally::<DeviceGroup>(&groups)),
    ];
    let describe = |(kind, t): &(&str, Tally)| {
        format!(
            "{} {kind}: {} Ready, {} Reconciling, {} Stalled",
            t.total,
            t.ready,
            t.reconciling,
            t.stalled.len()
        )
    };
    let counts = tallies.iter().map(describe).collect::<Vec<_>>().join("; ");
    let stalled: Vec<String> = tallies.iter().flat_map(|(_, t)| t.stalled.clone()).collect();
    if stalled.is_empty() {
        out.push(Check::ok(GROUP, "objects", counts));
    } else {
        out.push(Check::warning(
            GROUP,
            "objects",
            format!("{counts}; Stalled: {}", few(&stalled)),
            Reason::OBJECTS_STALLED,
        ));
    }
    let undecodable: Vec<String> = tallies.iter().flat_map(|(_, t)| t.undecodable.clone()).collect();
    if undecodable.is_empty() {
        out.push(Check::ok(
            GROUP,
            "objects-readable",
            "this version reads every object",
        ));
    } else {
        out.push(Check::warning(
            GROUP,
            "objects-readable",
            format!("this version cannot read {}", few(&undecodable)),
            Reason::OBJECTS_UNDECODABLE,
        ));
    }
    let finalized: usize = tallies.iter().map(|(_, t)| t.finalized).sum();
    let deleting: Vec<String> = tallies.iter().flat_map(|(_, t)| t.deleting.clone()).collect();
    if finalized == 0 || running {
        out.push(Check::ok(
            GROUP,
            "cleanup-finalizers",
            format!("{finalized} object(s) hold {FINALIZER}; an operator runs to clean them up"),
        ));
    } else {
        out.push(Check::failed(
            GROUP,
            "cleanup-finalizers",
            format!(
                "{finalized} object(s) hold {FINALIZER} while no operator runs{}",
                if deleting.is_empty() {
                    String::new()
                } else {
                    format!("; stuck deleting: {}", few(&deleting))
                }
            ),
            Reason::FINALIZERS_WITHOUT_OPERATOR,
        ));
    }
}

/// The connections the caller may read.
async fn connections(client: &kube::Client) -> Vec<ConnKey> {
    let mut keys = Vec::new();
    if let Ok(list) = Api::<GraphConnection>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        for c in list.items {
            keys.push(ConnKey::graph(
                c.metadata.namespace.as_deref().unwrap_or(""),
                c.metadata.name.as_deref().unwrap_or(""),
            ));
        }
    }
    if let Ok(list) = Api::<ClusterGraphConnection>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        for c in list.items {
            keys.push(ConnKey::cluster(c.metadata.name.as_deref().unwrap_or("")));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_parse_with_provider_suffixes() {
        assert_eq!(parse_version("1", "30"), Some((1, 30)));
        assert_eq!(parse_version("1", "29+"), Some((1, 29)));
        assert_eq!(parse_version("", "30"), None);
        assert!(parse_version("1", "29").unwrap() < crate::crd::MIN_KUBERNETES);
    }

    #[test]
    fn a_schema_diff_names_each_path_that_differs() {
        let want =
            json!({"v1": {"schema": {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}}});
        let live = json!({"v1": {"schema": {"properties": {"a": {"type": "integer"}, "c": {}}}}});
        let d = schema_diff(&want, &live, 8);
        assert_eq!(
            d,
            [
                "v1.schema.properties.a.type: \"integer\" installed, \"string\" in this version",
                "v1.schema.properties.b: missing from the installed CRD",
                "v1.schema.properties.c: in the installed CRD only",
            ]
        );
        assert!(schema_diff(&want, &want, 8).is_empty());
        assert_eq!(schema_diff(&want, &live, 1).len(), 1);
    }

    #[test]
    fn the_generated_crds_match_themselves_and_descriptions_do_not_count() {
        for crd in crate::crd::all() {
            let mut edited = crd.clone();
            let v = &mut edited.spec.versions[0];
            if let Some(s) = v.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
                s.description = Some("another description".into());
            }
            assert!(schema_diff(&structural(&crd), &structural(&edited), 8).is_empty());
        }
    }

    #[test]
    fn objects_are_tallied_raw_and_an_unreadable_one_is_counted() {
        let obj = |name: &str, spec: Value, cond: Option<&str>, finalizer: bool, deleting: bool| {
            let mut v = json!({
                "apiVersion": "wufb.dev/v1alpha1", "kind": "DeviceGroup",
                "metadata": {"name": name, "namespace": "n"},
                "spec": spec,
            });
            if let Some(c) = cond {
                v["status"] = json!({"conditions": [{"type": c, "status": "True", "reason": "X", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
            }
            if finalizer {
                v["metadata"]["finalizers"] = json!([FINALIZER]);
            }
            if deleting {
                v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            serde_json::from_value::<DynamicObject>(v).unwrap()
        };
        let items = [
            obj("a", json!({"devices": []}), Some("Ready"), true, false),
            obj("b", json!({"devices": 7}), Some("Stalled"), true, true),
            obj("c", json!({}), Some("Reconciling"), false, false),
        ];
        let t = tally::<DeviceGroup>(&items);
        assert_eq!(
            t,
            Tally {
                total: 3,
                ready: 1,
                reconciling: 1,
                stalled: vec!["n/b".into()],
                undecodable: vec!["n/b".into()],
                finalized: 2,
                deleting: vec!["n/b".into()],
            }
        );
    }
}
