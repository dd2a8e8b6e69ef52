//! The words status, Events and metrics share: condition types and reasons, in one place. A reason is
//! CamelCase and static; error categories (`GraphThrottled`, `KubernetesConflict`, ...) are reasons too.

use std::fmt;

/// The kstatus condition types, in the order status lists them.
pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// A CamelCase reason: a condition's reason, an Event's reason, a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reason(&'static str);

impl Reason {
    // Where a pass ends.
    /// Graph matches the spec.
    pub const CONVERGED: Reason = Reason("Converged");
    /// Writes were sent; the next pass reads them back.
    pub const VERIFYING: Reason = Reason("Verifying");
    /// The spec breaks a rule (field named in the message).
    pub const INVALID_SPEC: Reason = Reason("InvalidSpec");
    /// The audience reaches more devices than a limit allows.
    pub const AUDIENCE_TOO_LARGE: Reason = Reason("AudienceTooLarge");
    /// A DeviceGroup (or updatableAssetGroup) the spec names is not there or not Ready yet.
    pub const WAITING_FOR_DEVICE_GROUP: Reason = Reason("WaitingForDeviceGroup");
    /// The catalog has no such content.
    pub const CONTENT_NOT_FOUND: Reason = Reason("ContentNotFound");
    /// The catalog entry cannot be expedited.
    pub const CONTENT_NOT_EXPEDITABLE: Reason = Reason("ContentNotExpeditable");
    pub const CONTENT_EXPIRED: Reason = Reason("ContentExpired");
    pub const CONTENT_AMBIGUOUS: Reason = Reason("ContentAmbiguous");
    /// The deployment named by spec.deploymentId (or to observe) does not exist.
    pub const DEPLOYMENT_NOT_FOUND: Reason = Reason("DeploymentNotFound");
    /// An adopted deployment carries other content than the spec.
    pub const CONTENT_DIFFERS: Reason = Reason("ContentDiffers");
    pub const CONTENT_UNVERIFIED: Reason = Reason("ContentUnverified");
    /// More matching deployments than objects waiting for them after a lost create answer.
    pub const AMBIGUOUS_ADOPTION: Reason = Reason("AmbiguousAdoption");
    /// Graph does not expose the deployment's audience (an Intune deployment).
    pub const AUDIENCE_NOT_MANAGEABLE: Reason = Reason("AudienceNotManageable");
    /// The Entra ID group a DeviceGroup names does not exist.
    pub const ENTRA_GROUP_NOT_FOUND: Reason = Reason("EntraGroupNotFound");
    /// A DeviceGroup being deleted is still referenced.
    pub const IN_USE: Reason = Reason("InUse");
    /// This operator version cannot decode the object.
    pub const UNDECODABLE_OBJECT: Reason = Reason("UndecodableObject");
    /// An annotation of the operator's holds a value out of its form or range; its default applies.
    pub const ANNOTATION_IGNORED: Reason = Reason("AnnotationIgnored");
    /// A pass failed inside the operator (a bug): the object is retried with backoff, the others go on.
    pub const INTERNAL_ERROR: Reason = Reason("InternalError");

    /// A later wave waits for its gate (time, health figures or a person).
    pub const WAITING_FOR_GATE: Reason = Reason("WaitingForGate");
    /// Too many devices failed: the operator paused the deployment and waits for retry or abort.
    pub const ROLLOUT_HALTED: Reason = Reason("RolloutHalted");
    /// Promotion stopped for good by wufb.dev/abort; the deployment stays paused until the spec changes.
    pub const ROLLOUT_ABORTED: Reason = Reason("RolloutAborted");

    // What a pass did (Events).
    /// A wave was added to the deployment's audience.
    pub const WAVE_PROMOTED: Reason = Reason("WavePromoted");
    /// A halt was lifted by wufb.dev/retry.
    pub const ROLLOUT_RETRIED: Reason = Reason("RolloutRetried");
    /// A sent wave was removed from the spec: its devices stay offered until withdrawnWaves names it.
    pub const WITHDRAWAL_NOT_CONFIRMED: Reason = Reason("WithdrawalNotConfirmed");
    /// Audience members the spec no longer lists were taken out of a rollout's deployment.
    pub const MEMBERS_WITHDRAWN: Reason = Reason("MembersWithdrawn");
    /// A rollout request (wufb.dev/retry, ...) that does not apply to the rollout's state was ignored.
    pub const REQUEST_IGNORED: Reason = Reason("RequestIgnored");
    pub const CREATED: Reason = Reason("Created");
    pub const ADOPTED: Reason = Reason("Adopted");
    pub const PAUSED: Reason = Reason("Paused");
    pub const RESUMED: Reason = Reason("Resumed");
    pub const SETTINGS_UPDATED: Reason = Reason("SettingsUpdated");
    pub const AUDIENCE_UPDATED: Reason = Reason("AudienceUpdated");
    pub const MEMBERS_UPDATED: Reason = Reason("MembersUpdated");
    pub const REPLACED: Reason = Reason("Replaced");
    /// `refresh: OnNewRelease` found a newer matching catalog entry and replaced the deployment.
    pub const CONTENT_REFRESHED: Reason = Reason("ContentRefreshed");
    // Rollout progress milestones (Events).
    /// The first targeted device runs the update.
    pub const FIRST_DEVICE_UPDATED: Reason = Reason("FirstDeviceUpdated");
    /// Half of the targeted devices run it.
    pub const HALF_UPDATED: Reason = Reason("HalfUpdated");
    /// Nine tenths of the targeted devices run it.
    pub const MOST_UPDATED: Reason = Reason("MostUpdated");
    /// No reporting device is still pending.
    pub const REPORTING_DEVICES_DONE: Reason = Reason("ReportingDevicesDone");
    /// More targeted devices failed.
    pub const DEVICES_FAILED: Reason = Reason("DevicesFailed");
    pub const DELETED: Reason = Reason("Deleted");
    pub const ORPHANED: Reason = Reason("Orphaned");
    /// A deployment the status names was deleted outside the operator.
    pub const DEPLOYMENT_MISSING: Reason = Reason("DeploymentMissing");
    /// A recorded object answered 404: checked again before it is created again.
    pub const CONFIRMING_ABSENCE: Reason = Reason("ConfirmingAbsence");
    /// A group the status names was deleted outside the operator.
    pub const GROUP_MISSING: Reason = Reason("GroupMissing");
    /// A group create was interrupted before its id was recorded.
    pub const CREATE_INTERRUPTED: Reason = Reason("CreateInterrupted");
    /// spec.connectionRef names a connection that does not exist (yet).
    pub const CONNECTION_NOT_FOUND: Reason = Reason("ConnectionNotFound");
    /// spec.connectionRef names a connection that has not signed in yet (or cannot).
    pub const CONNECTION_NOT_READY: Reason = Reason("ConnectionNotReady");
    /// spec.connectionRef names a ClusterGraphConnection that does not admit the namespace.
    pub const CONNECTION_NOT_ALLOWED: Reason = Reason("ConnectionNotAllowed");
    /// spec.connectionRef is set while the operator runs with connections off.
    pub const CONNECTIONS_DISABLED: Reason = Reason("ConnectionsDisabled");
    /// A deployment and a DeviceGroup it uses name different connections.
    pub const CONNECTION_MISMATCH: Reason = Reason("ConnectionMismatch");
    /// spec.connectionRef now leads to another tenant than the one the Graph objects live in.
    pub const CONNECTION_CHANGED: Reason = Reason("ConnectionChanged");
    /// A connection signed in and read Graph.
    pub const CONNECTED: Reason = Reason("Connected");
    /// A connection could not sign in or read Graph.
    pub const CONNECTION_FAILED: Reason = Reason("ConnectionFailed");
    /// A connection's Secret does not exist.
    pub const SECRET_NOT_FOUND: Reason = Reason("SecretNotFound");

    /// An error category (see the errors' `category()`) as a reason.
    pub const fn category(category: &'static str) -> Reason {
        Reason(category)
    }

    pub const fn as_str(self) -> &'static str {
        self.0
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
