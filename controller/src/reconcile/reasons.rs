//! The words status, Events and metrics share, in one enumerable registry: every condition reason,
//! Event reason and error category, each with what it means and what fixes it ([`REGISTRY`]; the
//! reference documentation is generated from it). A reason is CamelCase and static; error categories
//! (`GraphThrottled`, `KubernetesConflict`, ...) are reasons too, reached through [`Category`].

use std::fmt;

/// The kstatus condition types, in the order status lists them.
pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// A CamelCase reason: a condition's reason, an Event's reason, a metric label. Only the registry makes
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reason(&'static str);

/// Where a reason shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The reason of the Ready, Reconciling and Stalled conditions (and of the Warning sent for a stall).
    Condition,
    /// An Event's reason.
    Event,
    /// An error category: the metric label, and the reason of the condition and Event a failed pass
    /// reports.
    Category,
    /// A finding of `wufb-operator check` that needs attention (a warning or a failure).
    Check,
}

/// Where the documentation lives; every hint links into it as `{DOCS_BASE}/reasons.html#<anchor>`.
pub const DOCS_BASE: &str = "https://wufb-operator.github.io/wufb-operator";

/// One registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub reason: Reason,
    pub kind: Kind,
    /// What it means.
    pub meaning: &'static str,
    /// What to do about it ("" when nothing needs doing).
    pub fix: &'static str,
}

macro_rules! registry {
    ($( $name:ident = $text:literal, $kind:ident, $meaning:literal, $fix:literal; )*) => {
        impl Reason {
            $(
                #[doc = $meaning]
                pub const $name: Reason = Reason($text);
            )*
        }

        /// Every reason the operator writes, in one table.
        pub const REGISTRY: &[Entry] = &[
            $( Entry { reason: Reason::$name, kind: Kind::$kind, meaning: $meaning, fix: $fix }, )*
        ];
    };
}

registry! {
    // Where a pass ends (conditions).
    CONVERGED = "Converged", Condition, "Graph matches the spec.", "";
    VERIFYING = "Verifying", Condition,
        "Writes were sent to Graph; the next pass reads them back (reads can lag writes).",
        "Nothing: it clears by itself. If it stays, compare the object with Graph and read the operator's log.";
    INVALID_SPEC = "InvalidSpec", Condition,
        "The spec breaks a rule; the message names the field. Nothing is written but a pause.",
        "Fix the named field (`wufb-operator validate` checks a manifest offline).";
    AUDIENCE_TOO_LARGE = "AudienceTooLarge", Condition,
        "The audience (every wave counted) reaches more devices than spec.maxDevices or --max-audience-devices allows; nothing was sent.",
        "Shrink the audience, or raise the limit that the message names.";
    WAITING_FOR_DEVICE_GROUP = "WaitingForDeviceGroup", Condition,
        "A DeviceGroup or updatableAssetGroup the spec names is missing or not Ready yet; nothing is written until it is.",
        "Create the DeviceGroup, or wait until it is Ready (`kubectl get dg`).";
    CONTENT_NOT_FOUND = "ContentNotFound", Condition,
        "The catalog has no entry for spec.content (no release on that date, no such id, or none passes the filters).",
        "Use a date, id or filters the message suggests, or content.latest.";
    CONTENT_NOT_EXPEDITABLE = "ContentNotExpeditable", Condition,
        "The catalog entry spec.content names cannot be expedited.",
        "Pick an entry whose isExpeditable is true, or use content.latest.";
    CONTENT_EXPIRED = "ContentExpired", Condition,
        "The catalog entry is past its deployableUntil date: Graph no longer deploys it.",
        "Choose newer content (content.latest, or a newer catalogEntryId or releaseDate).";
    CONTENT_AMBIGUOUS = "ContentAmbiguous", Condition,
        "Several expeditable updates were released on spec.content.releaseDate.",
        "Name one of those the message lists with spec.content.catalogEntryId.";
    DEPLOYMENT_NOT_FOUND = "DeploymentNotFound", Condition,
        "The deployment spec.deploymentId names (or the one to observe) does not exist in Graph.",
        "Correct spec.deploymentId, or remove it to let the operator create a deployment.";
    CONTENT_DIFFERS = "ContentDiffers", Condition,
        "An adopted deployment carries other content than spec.content resolves to.",
        "Change spec.content to match, or remove spec.deploymentId to let the operator replace it.";
    CONTENT_UNVERIFIED = "ContentUnverified", Event,
        "Graph does not name the catalog entry of an adopted deployment, so its content could not be checked.",
        "Check the deployment's content in Graph.";
    AMBIGUOUS_ADOPTION = "AmbiguousAdoption", Condition,
        "A create's answer was lost and more matching deployments exist than objects waiting for them.",
        "Set spec.deploymentId to the right deployment and delete the others in Graph.";
    AUDIENCE_NOT_MANAGEABLE = "AudienceNotManageable", Condition,
        "Graph does not expose the audience of the adopted deployment (deployments made through Intune).",
        "Manage it in Intune, or remove spec.deploymentId.";
    ENTRA_GROUP_NOT_FOUND = "EntraGroupNotFound", Condition,
        "The Entra ID group spec.entraGroupId names does not exist; nothing was written.",
        "Copy the group's object id from Entra ID.";
    IN_USE = "InUse", Condition,
        "A DeviceGroup or connection being deleted is still used; its Graph group or finalizer stays until it is not.",
        "Remove it from the objects (or, for a group Graph refuses to delete, the Graph deployment) the message names.";
    UNDECODABLE_OBJECT = "UndecodableObject", Condition,
        "This operator version cannot read a field of the object (a value from a newer version, or one stored past the schema); it is still paused and can still be deleted.",
        "Fix the named field, or run an operator version that knows its value.";
    ANNOTATION_IGNORED = "AnnotationIgnored", Event,
        "An annotation of the operator's holds a value out of its form or range; its default applies.",
        "Correct the annotation to the form the message gives, or remove it.";
    INTERNAL_ERROR = "InternalError", Category,
        "A pass failed inside the operator (a bug); the object is retried with backoff and the others go on.",
        "Report it with the operator's log; a paused spec is still paused.";
    WAITING_FOR_GATE = "WaitingForGate", Condition,
        "A later wave waits for its gate: a time, health figures or a person.",
        "Nothing, or `wufb-operator promote` for a manual gate.";
    ROLLOUT_HALTED = "RolloutHalted", Condition,
        "Too many devices of the waves sent failed: the operator paused the deployment.",
        "Fix or exclude the failed devices, then `wufb-operator retry`; or `wufb-operator abort`.";
    ROLLOUT_ABORTED = "RolloutAborted", Condition,
        "Promotion was stopped for good by wufb.dev/abort; the deployment stays paused.",
        "Change the spec to start again.";
    WITHDRAWAL_NOT_CONFIRMED = "WithdrawalNotConfirmed", Condition,
        "A wave already sent was removed from the spec: its devices stay offered until the removal is confirmed.",
        "Name the wave in spec.rollout.withdrawnWaves, or rename it with renamedFrom.";
    CONFIRMING_ABSENCE = "ConfirmingAbsence", Condition,
        "Graph answered 404 for a recorded deployment or group; it is read again before it is created again.",
        "Nothing: it is created again after --absence-confirm if it stays missing.";
    CONNECTION_NOT_FOUND = "ConnectionNotFound", Condition,
        "spec.connectionRef names a connection that does not exist (yet).",
        "Create the GraphConnection or ClusterGraphConnection, or correct spec.connectionRef.";
    CONNECTION_NOT_READY = "ConnectionNotReady", Condition,
        "spec.connectionRef names a connection that has not signed in yet (or cannot).",
        "See the connection's own conditions (`kubectl describe gc`).";
    CONNECTION_NOT_ALLOWED = "ConnectionNotAllowed", Condition,
        "spec.connectionRef names a ClusterGraphConnection that does not admit this namespace.",
        "Add the namespace to the connection's allowedNamespaces, or use another connection.";
    CONNECTIONS_DISABLED = "ConnectionsDisabled", Condition,
        "spec.connectionRef is set while the operator runs with --connections=false.",
        "Remove spec.connectionRef, or run the operator with connections on.";
    CONNECTION_MISMATCH = "ConnectionMismatch", Condition,
        "A deployment and a DeviceGroup it uses name different connections.",
        "Make both name the same connection.";
    CONNECTION_CHANGED = "ConnectionChanged", Condition,
        "spec.connectionRef now leads to another tenant than the one the object's Graph objects live in.",
        "Restore the connection, or delete the object and create it anew for the other tenant.";
    CONNECTED = "Connected", Condition, "A connection signed in and read Graph.", "";
    CONNECTION_FAILED = "ConnectionFailed", Condition,
        "A connection could not sign in or read Graph.",
        "Check the credential, the tenant id and the app's Graph permissions the message names.";
    SECRET_NOT_FOUND = "SecretNotFound", Condition,
        "A connection's Secret does not exist.",
        "Create the Secret the connection names.";

    // What a pass did (Events).
    WAVE_PROMOTED = "WavePromoted", Event, "A wave was added to the deployment's audience.", "";
    ROLLOUT_RETRIED = "RolloutRetried", Event,
        "A halt was lifted by wufb.dev/retry; the gates measure from figures read from now on.", "";
    MEMBERS_WITHDRAWN = "MembersWithdrawn", Event,
        "Audience members the spec no longer lists were taken out of a rollout's deployment.",
        "Restore them in the spec if that was not meant.";
    REQUEST_IGNORED = "RequestIgnored", Event,
        "A rollout request (wufb.dev/promote, retry or abort) that does not apply to the rollout's state was ignored.",
        "See the message for the state it needs.";
    CREATED = "Created", Event, "A Graph deployment, audience or group was created.", "";
    ADOPTED = "Adopted", Event, "The deployment a lost create made was found and recorded.", "";
    PAUSED = "Paused", Event, "The deployment was paused.", "";
    RESUMED = "Resumed", Event, "The deployment was resumed.", "";
    SETTINGS_UPDATED = "SettingsUpdated", Event, "The deployment's settings were updated.", "";
    AUDIENCE_UPDATED = "AudienceUpdated", Event, "The deployment's audience was updated.", "";
    MEMBERS_UPDATED = "MembersUpdated", Event, "A DeviceGroup's Graph group members were updated.", "";
    REPLACED = "Replaced", Event,
        "The content changed: a new deployment with the same audience replaced the old one.", "";
    CONTENT_REFRESHED = "ContentRefreshed", Event,
        "refresh: OnNewRelease found a newer matching catalog entry and replaced the deployment.", "";
    FIRST_DEVICE_UPDATED = "FirstDeviceUpdated", Event, "The first targeted device runs the update.", "";
    HALF_UPDATED = "HalfUpdated", Event, "Half of the targeted devices run the update.", "";
    MOST_UPDATED = "MostUpdated", Event, "Nine tenths of the targeted devices run the update.", "";
    REPORTING_DEVICES_DONE = "ReportingDevicesDone", Event, "No reporting device is still pending.", "";
    DEVICES_FAILED = "DevicesFailed", Event,
        "More targeted devices failed.",
        "`wufb-operator status <object> --devices` lists them.";
    DELETED = "Deleted", Event, "A Graph object was deleted with its object.", "";
    ORPHANED = "Orphaned", Event, "The deployment was left in Graph (deletionPolicy Orphan).", "";
    DEPLOYMENT_MISSING = "DeploymentMissing", Event,
        "A deployment the status names was deleted outside the operator; it is created again.",
        "Delete the object instead, if the deployment was meant to go.";
    GROUP_MISSING = "GroupMissing", Event,
        "A group the status names was deleted outside the operator; it is created again.",
        "Delete the DeviceGroup instead, if the group was meant to go.";
    CREATE_INTERRUPTED = "CreateInterrupted", Event,
        "A create was interrupted before its id was recorded: an empty audience or group may be left in the tenant (nothing uses it).",
        "Nothing, or delete the empty object in Graph.";

    // Error categories (metric labels; the reason of a failed pass's condition and Event).
    WRITE_NOT_VISIBLE = "WriteNotVisible", Category,
        "A write Graph accepted did not show in its reads within the wait; the next pass sends what is missing.",
        "Nothing, unless it repeats: then Graph's reads lag more than usual.";
    GRAPH_CONFIG = "GraphConfig", Category,
        "The Graph client cannot be set up (a bad URL, CA file or cloud).",
        "Correct the flag or connection field the message names.";
    GRAPH_AUTHENTICATION = "GraphAuthentication", Category,
        "Sign-in to the identity platform failed.",
        "Check the tenant id, client id and credential; the message carries the identity platform's error.";
    GRAPH_CREDENTIAL = "GraphCredential", Category,
        "The credential cannot be read or used (a missing or malformed secret, certificate or token file).",
        "Fix the Secret or file the message names.";
    GRAPH_UNAUTHORIZED = "GraphUnauthorized", Category,
        "Graph answered 401: the token was refused.",
        "Check that the app registration belongs to the tenant and the credential is current.";
    GRAPH_FORBIDDEN = "GraphForbidden", Category,
        "Graph answered 403: the app lacks a permission.",
        "Grant the permission the README's Graph permissions table lists for the call, with admin consent.";
    GRAPH_NOT_FOUND = "GraphNotFound", Category, "Graph answered 404 for an object the pass needed.", "See the message.";
    GRAPH_CONFLICT = "GraphConflict", Category, "Graph answered 409.", "Retried; see the message if it stays.";
    GRAPH_THROTTLED = "GraphThrottled", Category,
        "Graph answered 429; the request is retried after Retry-After.",
        "Nothing, or lower --graph-rate-limit if it repeats.";
    GRAPH_REJECTED = "GraphRejected", Category,
        "Graph refused the request (a 4xx other than those above).",
        "See the message for Graph's error code.";
    GRAPH_UNAVAILABLE = "GraphUnavailable", Category, "Graph answered 5xx; retried with backoff.", "";
    GRAPH_UNREACHABLE = "GraphUnreachable", Category,
        "Graph could not be reached (DNS, connection, TLS or timeout).",
        "Check the network path, proxy and CA from the operator's pod to Graph.";
    GRAPH_AMBIGUOUS_CREATE = "GraphAmbiguousCreate", Category,
        "A create's outcome is unknown (the answer was lost); the next pass finds and adopts what it made.",
        "";
    GRAPH_BAD_RESPONSE = "GraphBadResponse", Category,
        "Graph's answer could not be read (a shape the operator does not expect).",
        "Report it with the operator's log.";
    ENCODE_FAILED = "EncodeFailed", Category, "A request body could not be written (a bug); nothing was sent.", "Report it.";
    KUBERNETES_CONFLICT = "KubernetesConflict", Category,
        "The object changed while the pass worked on it; the pass is tried again on the new version.",
        "";
    KUBERNETES_API = "KubernetesApi", Category,
        "A Kubernetes API call failed.",
        "Check the operator's RBAC and the API server; the message names the call.";
    FINALIZER = "Finalizer", Category, "Running the finalizer failed.", "See the message.";

    // What `wufb-operator check` finds (each a warning or a failure; the check's line says which).
    CLUSTER_UNREACHABLE = "ClusterUnreachable", Check,
        "The cluster could not be read with the kubeconfig given.",
        "Check --kubeconfig and --context, and that the API server answers (`kubectl version`).";
    KUBERNETES_TOO_OLD = "KubernetesTooOld", Check,
        "The API server is older than the minimum the CRDs need (CEL validation rules, and ratcheting so that an upgrade never refuses objects stored under an older schema).",
        "Upgrade the cluster to the minimum version the line names, or newer.";
    CRD_MISSING = "CrdMissing", Check,
        "A CustomResourceDefinition of the operator is not installed.",
        "Install the chart (it carries the CRDs), or `kubectl apply --server-side -f crds/`.";
    CRD_NOT_ESTABLISHED = "CrdNotEstablished", Check,
        "A CRD is installed but the API server does not serve it yet (its Established condition is not True).",
        "Wait a few seconds; if it stays, read the CRD's conditions (`kubectl describe crd`).";
    CRD_SCHEMA_OUTDATED = "CrdSchemaOutdated", Check,
        "An installed CRD's schema differs from the one this version of the operator generates (an upgrade that skipped the CRDs, or crds.enabled false): the API server prunes or refuses the new fields the line names.",
        "Upgrade the chart (its CRDs are templates, applied on upgrade), or apply this version's CRDs: `wufb-operator crdgen --stdout | kubectl apply --server-side -f -`.";
    OPERATOR_NOT_RUNNING = "OperatorNotRunning", Check,
        "No operator holds and renews the leader Lease: nothing reconciles the objects.",
        "Install or start the operator (`helm install`), and read its pod's log if it crashes; check --namespace and --lease-name name the operator's.";
    VERSION_SKEW = "VersionSkew", Check,
        "The running operator and this CLI are different versions: plan and status may predict what that operator would not do.",
        "Use the CLI of the operator's version, or upgrade the operator.";
    OPERATOR_PERMISSION_MISSING = "OperatorPermissionMissing", Check,
        "The operator's service account may not do something it needs; the pass that needs it fails.",
        "Install the chart's RBAC (its ClusterRole and Roles), or grant the verbs the line names.";
    CALLER_PERMISSION_MISSING = "CallerPermissionMissing", Check,
        "You may not do something a CLI command needs (plan, status, promote, abort, retry).",
        "Ask for the verbs the line names on the operator's kinds.";
    INSTALL_PERMISSION_MISSING = "InstallPermissionMissing", Check,
        "You may not create what installing the chart creates (CRDs, cluster roles, the operator's namespace objects).",
        "Install as a cluster administrator, or have one install the CRDs and the cluster roles.";
    OBJECTS_STALLED = "ObjectsStalled", Check,
        "Some objects are Stalled: the operator stopped on them until their spec or Graph changes.",
        "Read each object's Ready message (`kubectl get expd`, `wufb-operator status`) and fix what it names.";
    OBJECTS_UNDECODABLE = "ObjectsUndecodable", Check,
        "Some objects hold fields this version cannot read (written under another CRD schema, or by a newer operator).",
        "Fix the field each object's Stalled condition names, or run the operator version that wrote it.";
    FINALIZERS_WITHOUT_OPERATOR = "FinalizersWithoutOperator", Check,
        "Objects hold the wufb.dev/cleanup finalizer while no operator runs: they cannot be deleted, and uninstalling the operator first leaves them stuck.",
        "Start the operator and let it clean up before uninstalling it; only when Graph is already clean, remove the finalizer by hand.";
    SIGN_IN_FAILED = "SignInFailed", Check,
        "The app could not sign in to the tenant: a wrong tenant, client id, secret, certificate or federated credential.",
        "Correct the credential the line names (the AZURE_* variables, or the connection's Secret).";
    CERTIFICATE_EXPIRING = "CertificateExpiring", Check,
        "The certificate of a certificate credential expires within 14 days (or has expired): from then on the app cannot sign in and every object using the credential stalls.",
        "Upload a renewed certificate to the app registration in Entra ID, then put it with its private key in the Secret (or the AZURE_CLIENT_CERTIFICATE_PATH file); the operator reads the Secret again at the next check.";
    SERVICE_UNAVAILABLE = "ServiceUnavailable", Check,
        "The Windows Update for Business deployment service did not answer a catalog read in this cloud.",
        "Check --cloud (or --graph-url) and that the tenant is licensed for Windows Autopatch / the deployment service.";
    GRAPH_PERMISSION_MISSING = "GraphPermissionMissing", Check,
        "The access token lacks an application permission a feature needs; the line names the feature it blocks.",
        "Grant the permission to the app registration and give admin consent, then sign in again.";
    NO_EXPEDITABLE_CONTENT = "NoExpeditableContent", Check,
        "The catalog lists no expeditable quality update, so content.latest has nothing to deploy.",
        "Use content.releaseDate or catalogEntryId, or wait for the next security release.";
    DEVICE_SIGNALS_UNREADABLE = "DeviceSignalsUnreadable", Check,
        "Device profiles (data/deviceProfiles) could not be read: progress, health-gated waves and `status --devices` have no figures.",
        "Grant the permission the line names, or leave rollouts without health gates.";
    ENTRA_GROUP_UNREADABLE = "EntraGroupUnreadable", Check,
        "An Entra ID group a DeviceGroup names (spec.entraGroupId) could not be read.",
        "Grant GroupMember.Read.All and Device.Read.All, or correct the group id.";
    WRITE_CHECK_FAILED = "WriteCheckFailed", Check,
        "The write check could not create, read back or delete its paused, empty deployment.",
        "Read the step the line names; the app needs WindowsUpdates.ReadWrite.All.";
    READ_LAG_OVER_BUDGET = "ReadLagOverBudget", Check,
        "Graph showed a write later than the operator's --read-lag-budget allows: a pass may take lag for a change and write twice.",
        "Raise --read-lag-budget (and --absence-confirm) to the value the line recommends.";
}

/// The category of a failed pass, typed: the metric label and the reason of its condition and Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Graph(crate::graph::error::Category),
    KubernetesConflict,
    KubernetesApi,
    EncodeFailed,
    Finalizer,
    Internal,
    /// Cleanup or a pass waits, for the reason given.
    Waiting(Reason),
}

impl Category {
    pub fn reason(self) -> Reason {
        use crate::graph::error::Category as G;
        match self {
            Category::Graph(g) => match g {
                G::Config => Reason::GRAPH_CONFIG,
                G::Authentication => Reason::GRAPH_AUTHENTICATION,
                G::Credential => Reason::GRAPH_CREDENTIAL,
                G::Unauthorized => Reason::GRAPH_UNAUTHORIZED,
                G::Forbidden => Reason::GRAPH_FORBIDDEN,
                G::NotFound => Reason::GRAPH_NOT_FOUND,
                G::Conflict => Reason::GRAPH_CONFLICT,
                G::Throttled => Reason::GRAPH_THROTTLED,
                G::Rejected => Reason::GRAPH_REJECTED,
                G::Unavailable => Reason::GRAPH_UNAVAILABLE,
                G::Unreachable => Reason::GRAPH_UNREACHABLE,
                G::AmbiguousCreate => Reason::GRAPH_AMBIGUOUS_CREATE,
                G::BadResponse => Reason::GRAPH_BAD_RESPONSE,
                G::EncodeFailed => Reason::ENCODE_FAILED,
            },
            Category::KubernetesConflict => Reason::KUBERNETES_CONFLICT,
            Category::KubernetesApi => Reason::KUBERNETES_API,
            Category::EncodeFailed => Reason::ENCODE_FAILED,
            Category::Finalizer => Reason::FINALIZER,
            Category::Internal => Reason::INTERNAL_ERROR,
            Category::Waiting(r) => r,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.reason().as_str()
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Category {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Reason {
    /// An error category as a reason.
    pub fn category(category: Category) -> Reason {
        category.reason()
    }

    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// Its registry entry.
    pub fn entry(self) -> Option<&'static Entry> {
        REGISTRY.iter().find(|e| e.reason == self)
    }

    /// Its anchor in the reasons page: kebab case (`CrdSchemaOutdated` -> `crd-schema-outdated`).
    pub fn anchor(self) -> String {
        let mut out = String::with_capacity(self.0.len() + 4);
        let chars: Vec<char> = self.0.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_lower = i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            if c.is_ascii_uppercase() && i > 0 && (prev_lower || next_lower) {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    /// Where the documentation explains it.
    pub fn docs_url(self) -> String {
        format!("{DOCS_BASE}/reasons.html#{}", self.anchor())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_registered_once_camel_case_with_a_meaning() {
        let mut seen = std::collections::BTreeSet::new();
        for e in REGISTRY {
            let r = e.reason.as_str();
            assert!(seen.insert(r), "{r} registered twice");
            assert!(
                r.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && r.chars().all(|c| c.is_ascii_alphanumeric()),
                "{r} is not CamelCase"
            );
            assert!(
                e.meaning.ends_with('.') && e.meaning.len() > 10,
                "{r}: {}",
                e.meaning
            );
            assert!(e.fix.is_empty() || e.fix.ends_with('.'), "{r}: {}", e.fix);
        }
        // A stall tells the admin what to do.
        for e in REGISTRY.iter().filter(|e| e.kind == Kind::Condition) {
            let stalls = [Reason::CONVERGED, Reason::CONNECTED];
            if !stalls.contains(&e.reason) {
                assert!(!e.fix.is_empty(), "{} has no fix", e.reason);
            }
        }
    }

    #[test]
    fn anchors_are_kebab_case_and_distinct() {
        assert_eq!(Reason::CRD_SCHEMA_OUTDATED.anchor(), "crd-schema-outdated");
        assert_eq!(Reason::GRAPH_THROTTLED.anchor(), "graph-throttled");
        assert_eq!(
            Reason::WAITING_FOR_DEVICE_GROUP.anchor(),
            "waiting-for-device-group"
        );
        assert_eq!(
            Reason::SIGN_IN_FAILED.docs_url(),
            format!("{DOCS_BASE}/reasons.html#sign-in-failed")
        );
        let anchors: std::collections::BTreeSet<String> =
            REGISTRY.iter().map(|e| e.reason.anchor()).collect();
        assert_eq!(anchors.len(), REGISTRY.len());
        for a in &anchors {
            assert!(
                a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !a.contains("--"),
                "{a}"
            );
        }
    }

    #[test]
    fn every_error_category_is_a_registered_category() {
        use crate::graph::error::Category as G;
        let categories = G::ALL.into_iter().map(Category::Graph).chain([
            Category::KubernetesConflict,
            Category::KubernetesApi,
            Category::EncodeFailed,
            Category::Finalizer,
            Category::Internal,
        ]);
        for c in categories {
            let e = c
                .reason()
                .entry()
                .unwrap_or_else(|| panic!("{c} is not registered"));
            assert_eq!(e.kind, Kind::Category, "{c}");
        }
        for g in G::ALL {
            assert_eq!(
                Category::Graph(g).as_str(),
                g.as_str(),
                "the Graph layer's label is the registry's"
            );
        }
    }
}
