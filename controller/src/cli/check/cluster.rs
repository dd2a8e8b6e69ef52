//! The cluster's checks: its version, the CRDs (installed, Established, at this version's schema), the
//! operator (its Lease renewed, its version), then permissions ([`super::access`]) and the objects
//! ([`super::objects`]).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::access::{caller_permissions, install_permissions, operator_permissions};
use super::objects::{connections, objects};
use super::{Check, CheckArgs, Found};
use crate::cli::cluster::{ClusterArgs, client};

use crate::reconcile::reasons::Reason;

const GROUP: &str = "cluster";

/// Runs the cluster's checks into `out`.
pub async fn check(args: &CheckArgs, in_process: bool, out: &mut Vec<Check>) -> Found {
    let mut found = Found::default();
    let cluster_args = ClusterArgs {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
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
}
