//! Permissions, asked of the API server: the operator's service account through SubjectAccessReview
//! (every verb the chart's RBAC grants it), the caller through SelfSubjectAccessReview (what `plan`,
//! `status` and `promote|abort|retry` need, and with `--pre` what installing the chart needs).

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::{Check, CheckArgs};
use crate::reconcile::reasons::Reason;

const GROUP: &str = "cluster";

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

pub(super) async fn operator_permissions(client: &kube::Client, args: &CheckArgs, out: &mut Vec<Check>) {
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

pub(super) async fn caller_permissions(client: &kube::Client, out: &mut Vec<Check>) {
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

pub(super) async fn install_permissions(client: &kube::Client, namespace: &str, out: &mut Vec<Check>) {
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
