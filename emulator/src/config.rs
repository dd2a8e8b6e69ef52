//! Emulator configuration: limits, app registrations and injected faults.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The built-in tenant id.
pub const DEFAULT_TENANT_ID: &str = "11111111-1111-4111-8111-111111111111";
/// The built-in app registration with `WindowsUpdates.ReadWrite.All`.
pub const DEFAULT_CLIENT_ID: &str = "22222222-2222-4222-8222-222222222222";
/// The built-in app's client secret. Public by design: it only opens the emulator.
pub const DEFAULT_CLIENT_SECRET: &str = "wufb-emulator-secret";
/// A built-in app that only holds `WindowsUpdates.Read.All`.
pub const READONLY_CLIENT_ID: &str = "33333333-3333-4333-8333-333333333333";
/// The read-only app's client secret.
pub const READONLY_CLIENT_SECRET: &str = "wufb-emulator-readonly-secret";

/// The permission a Graph write needs.
pub const READ_WRITE: &str = "WindowsUpdates.ReadWrite.All";
/// The least permission a Graph read needs.
pub const READ: &str = "WindowsUpdates.Read.All";
/// The permissions that list an Entra group's transitive device members.
pub const GROUP_MEMBER_READ: &str = "GroupMember.Read.All";
pub const DEVICE_READ: &str = "Device.Read.All";

/// An app registration the token endpoint accepts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppRegistration {
    pub tenant_id: String,
    pub client_id: String,
    /// Accepted client secret, if any.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// PEM public key (or certificate) that verifies client assertions. Without one, any well-formed
    /// assertion whose issuer and subject are the client id is accepted.
    #[serde(default)]
    pub certificate_pem: Option<String>,
    /// Federated credentials: `(issuer, subject)` pairs accepted for workload identity assertions.
    #[serde(default)]
    pub federated: Vec<FederatedCredential>,
    /// Application permissions granted (`WindowsUpdates.ReadWrite.All`, `WindowsUpdates.Read.All`).
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
}

impl AppRegistration {
    pub fn defaults() -> Vec<AppRegistration> {
        vec![
            AppRegistration {
                tenant_id: DEFAULT_TENANT_ID.into(),
                client_id: DEFAULT_CLIENT_ID.into(),
                client_secret: Some(DEFAULT_CLIENT_SECRET.into()),
                certificate_pem: None,
                federated: Vec::new(),
                roles: vec![READ_WRITE.into(), GROUP_MEMBER_READ.into(), DEVICE_READ.into()],
            },
            AppRegistration {
                tenant_id: DEFAULT_TENANT_ID.into(),
                client_id: READONLY_CLIENT_ID.into(),
                client_secret: Some(READONLY_CLIENT_SECRET.into()),
                certificate_pem: None,
                federated: Vec::new(),
                roles: vec![READ.into(), GROUP_MEMBER_READ.into(), DEVICE_READ.into()],
            },
        ]
    }
}

/// How a 429 tells the client when to come back.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RetryAfterForm {
    /// Whole seconds (`Retry-After: 2`).
    #[default]
    Seconds,
    /// Fractional seconds (`Retry-After: 1.5`), as Graph sometimes sends.
    Fractional,
    /// An HTTP-date.
    HttpDate,
    /// No header at all: the client must back off on its own.
    None,
}

impl std::str::FromStr for RetryAfterForm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "seconds" => Ok(Self::Seconds),
            "fractional" => Ok(Self::Fractional),
            "http-date" => Ok(Self::HttpDate),
            "none" => Ok(Self::None),
            _ => Err(format!(
                "unknown Retry-After form '{s}' (use seconds, fractional, http-date or none)"
            )),
        }
    }
}

/// Injected faults. Every rate is a probability in `0.0..=1.0`, drawn from a generator seeded by `seed`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultConfig {
    pub seed: u64,
    /// Share of Graph requests answered 429 with `Retry-After`.
    pub throttle_rate: f64,
    /// The `Retry-After` delay in seconds.
    pub retry_after_secs: f64,
    pub retry_after_form: RetryAfterForm,
    /// Share of Graph requests answered with a server error (500 or 503, alternating by draw).
    pub error_rate: f64,
    /// Share of Graph requests whose connection is dropped without an answer.
    pub drop_rate: f64,
    /// Share of Graph requests that are carried out but whose answer is lost (the connection drops
    /// after the change was applied): the ambiguous outcome a client must cope with.
    pub lost_answer_rate: f64,
    /// Milliseconds a successful write waits, already applied, before it is answered (a window in which
    /// a client crash leaves a change it never heard about).
    pub answer_delay_ms: u64,
    /// Latency added to every Graph request, in milliseconds.
    pub latency_ms: u64,
    /// Share of Graph requests that get `spike_ms` of extra latency.
    pub spike_rate: f64,
    pub spike_ms: u64,
    /// Only writes (POST, PATCH, DELETE) are faulted when set.
    pub writes_only: bool,
    /// Only these operations (as the request log names them, e.g. `deployments.create`) are faulted;
    /// empty: all.
    pub operations: Vec<String>,
    /// Every Graph request answers 503 while set (an outage).
    pub outage: bool,
    /// Share of token requests answered with a 500 `temporarily_unavailable`.
    pub token_error_rate: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            throttle_rate: 0.0,
            retry_after_secs: 1.0,
            retry_after_form: RetryAfterForm::Seconds,
            error_rate: 0.0,
            drop_rate: 0.0,
            lost_answer_rate: 0.0,
            answer_delay_ms: 0,
            latency_ms: 0,
            spike_rate: 0.0,
            spike_ms: 200,
            writes_only: false,
            operations: Vec::new(),
            outage: false,
            token_error_rate: 0.0,
        }
    }
}

impl FaultConfig {
    /// Checks every rate is a probability.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("throttleRate", self.throttle_rate),
            ("errorRate", self.error_rate),
            ("dropRate", self.drop_rate),
            ("lostAnswerRate", self.lost_answer_rate),
            ("spikeRate", self.spike_rate),
            ("tokenErrorRate", self.token_error_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        if !(0.0..=3600.0).contains(&self.retry_after_secs) {
            return Err(format!(
                "retryAfterSecs must be between 0 and 3600, got {}",
                self.retry_after_secs
            ));
        }
        Ok(())
    }
}

/// Everything the emulator is started with.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Items per page before `@odata.nextLink`.
    pub page_size: usize,
    /// Most assets one audience or group write may carry; above it the request is answered 413. The
    /// reference documents no such limit, so there is none unless one is set.
    pub max_assets_per_request: Option<usize>,
    /// Check bearer tokens on Graph calls.
    pub auth: bool,
    pub apps: Vec<AppRegistration>,
    pub token_lifetime: Duration,
    pub faults: FaultConfig,
    /// The catalog holds the releases of the 24 months up to this date.
    pub catalog_until: chrono::NaiveDate,
    /// Listing members or exclusions of an audience that never had any answers 404, as the real service
    /// has been seen to (on by default).
    pub audience_404_when_empty: bool,
    /// Reads (GET) see the tenant as it was this many milliseconds ago: a created object is not found,
    /// and a change is not visible, until the lag has passed (replication lag, and 202 writes applied
    /// later). 0 by default. While set, every write keeps a copy of the tenant and every read works on
    /// one: an option for tests, not for large tenants.
    pub read_lag_ms: u64,
    /// Refuse `$filter` on the deployments list with a 400, as a service that does not support the
    /// (undocumented) `createdDateTime` filter would.
    pub refuse_deployment_filter: bool,
    /// Refuse to delete a group that an audience holds (409), as a service with such a rule would; the
    /// reference documents none, so off by default (the group is then taken out of every audience).
    pub refuse_group_delete_in_use: bool,
    /// Let `WindowsUpdates.Read.All` read the catalog and get an audience. The reference lists only
    /// `WindowsUpdates.ReadWrite.All` for those reads (other pages allow Read.All for other reads), so
    /// by default the read-only app is refused them with 403.
    pub read_all_catalog: bool,
    /// Serve `$count`, `$skip` and `$top` on audience member and exclusion lists (older pages). The
    /// newest page says only `$skiptoken` paging is supported there, so by default they are refused
    /// with 400.
    pub audience_client_paging: bool,
    /// Answer every request for the deployment service inside a `$batch` with 400, as a service whose
    /// paths JSON batching does not reach would (whether the deployment service's paths accept `$batch`
    /// is not documented). Off by default: they are served inside a batch as on their own.
    pub refuse_batch: bool,
    /// Device ids that register with an error, by reason (e.g. `missingTrustType`).
    pub device_errors: BTreeMap<String, String>,
    /// The simulated fleet behind `data/deviceProfiles`.
    pub fleet: crate::fleet::FleetConfig,
    /// Where state is persisted between runs; nothing is written when unset.
    pub state_file: Option<std::path::PathBuf>,
    /// Most request-log entries kept (older ones are dropped; counts are kept in full).
    pub request_log_limit: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            page_size: 100,
            max_assets_per_request: None,
            auth: true,
            apps: AppRegistration::defaults(),
            token_lifetime: Duration::from_secs(3600),
            faults: FaultConfig::default(),
            catalog_until: chrono::Utc::now().date_naive(),
            audience_404_when_empty: true,
            read_lag_ms: 0,
            refuse_deployment_filter: false,
            refuse_group_delete_in_use: false,
            read_all_catalog: false,
            audience_client_paging: false,
            refuse_batch: false,
            device_errors: BTreeMap::new(),
            fleet: Default::default(),
            state_file: None,
            request_log_limit: 200_000,
        }
    }
}
