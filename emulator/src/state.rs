//! Shared emulator state: the tenant, issued tokens, fault generator and request log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::auth::Issued;
use crate::config::{AppRegistration, EmulatorConfig, FaultConfig, RetryAfterForm};
use crate::store::Store;

/// Settings that can change at run time through the admin API.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub page_size: usize,
    /// `None`: no per-request asset cap (none is documented).
    #[serde(default)]
    pub max_assets_per_request: Option<usize>,
    pub auth: bool,
    pub audience_404_when_empty: bool,
    /// See [`EmulatorConfig::read_lag_ms`](crate::config::EmulatorConfig).
    #[serde(default)]
    pub read_lag_ms: u64,
    /// See [`EmulatorConfig::refuse_deployment_filter`](crate::config::EmulatorConfig).
    #[serde(default)]
    pub refuse_deployment_filter: bool,
    /// See [`EmulatorConfig::refuse_group_delete_in_use`](crate::config::EmulatorConfig).
    #[serde(default)]
    pub refuse_group_delete_in_use: bool,
    /// See [`EmulatorConfig::read_all_catalog`](crate::config::EmulatorConfig).
    #[serde(default)]
    pub read_all_catalog: bool,
    /// See [`EmulatorConfig::audience_client_paging`](crate::config::EmulatorConfig).
    #[serde(default)]
    pub audience_client_paging: bool,
    /// See [`EmulatorConfig::refuse_batch`](crate::config::EmulatorConfig).
    #[serde(default)]
    pub refuse_batch: bool,
    pub device_errors: BTreeMap<String, String>,
    pub apps: Vec<AppRegistration>,
    pub token_lifetime_secs: u64,
}

/// One logged request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub seq: u64,
    /// Unix time in milliseconds when the request arrived.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub operation: String,
    pub status: u16,
    /// The injected fault, if any: `throttle`, `error`, `drop`, `outage`, `spike`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// For a 429: the earliest time (unix ms) the client was told to come back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_not_before_ms: Option<u64>,
    /// FNV-1a hash of the request body, to match a retry with the request it repeats.
    pub body_hash: u64,
    /// Assets carried by an audience or group write.
    pub assets: usize,
    /// The app that made the call, when authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The id of the object a create made (deployments, groups, audiences).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_id: Option<String>,
    /// The `request-id` the answer carried, for a failed request (the id Microsoft support asks for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Carried inside a `$batch` (the batch itself is logged too, as operation `$batch`): not a round
    /// trip of its own.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_batch: bool,
}

impl LogEntry {
    /// A request as it arrives at `at_ms`: not answered yet, nothing found out about it.
    pub fn arriving(at_ms: u64, method: &str, uri: &http::Uri, operation: &str) -> LogEntry {
        LogEntry {
            seq: 0,
            at_ms,
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            operation: operation.to_string(),
            status: 0,
            fault: None,
            retry_not_before_ms: None,
            body_hash: 0,
            assets: 0,
            client_id: None,
            created_id: None,
            request_id: None,
            in_batch: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct RequestLog {
    pub next_seq: u64,
    pub entries: VecDeque<LogEntry>,
    pub counts: BTreeMap<String, BTreeMap<u16, u64>>,
}

/// A fault decision for one request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Decision {
    pub latency: Duration,
    pub spike: bool,
    pub drop: bool,
    pub lose_answer: bool,
    pub outage: bool,
    pub throttle: bool,
    pub error: Option<u16>,
}

/// Deterministic generator (SplitMix64).
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
pub struct Faults {
    pub config: FaultConfig,
    pub rng: Rng,
}

impl Faults {
    pub fn decide(&mut self, write: bool, operation: &str) -> Decision {
        let c = &self.config;
        let mut d = Decision {
            latency: Duration::from_millis(c.latency_ms),
            outage: c.outage,
            ..Default::default()
        };
        if (c.writes_only && !write)
            || (!c.operations.is_empty() && !c.operations.iter().any(|o| o == operation))
        {
            return d;
        }
        // Always draw the same number of values per request, so a seed replays identically.
        let mut draw = [0.0f64; 6];
        for d in &mut draw {
            *d = self.rng.unit();
        }
        let [r_spike, r_drop, r_throttle, r_error, r_kind, r_lost] = draw;
        d.spike = r_spike < c.spike_rate;
        if d.spike {
            d.latency += Duration::from_millis(c.spike_ms);
        }
        d.drop = r_drop < c.drop_rate;
        d.lose_answer = r_lost < c.lost_answer_rate;
        d.throttle = r_throttle < c.throttle_rate;
        if r_error < c.error_rate {
            d.error = Some(if r_kind < 0.5 { 500 } else { 503 });
        }
        d
    }

    pub fn token_fails(&mut self) -> bool {
        self.config.token_error_rate > 0.0 && self.rng.unit() < self.config.token_error_rate
    }

    /// The `Retry-After` header value and the earliest time (unix ms) a retry is allowed.
    pub fn retry_after(&self, now_ms: u64) -> (Option<String>, u64) {
        let secs = self.config.retry_after_secs;
        match self.config.retry_after_form {
            RetryAfterForm::Seconds => {
                let whole = secs.ceil() as u64;
                (Some(whole.to_string()), now_ms + whole * 1000)
            }
            RetryAfterForm::Fractional => {
                (Some(format!("{secs:.3}")), now_ms + (secs * 1000.0).ceil() as u64)
            }
            RetryAfterForm::HttpDate => {
                // HTTP-dates have whole-second resolution: round the deadline up to the next second.
                let until_ms = (now_ms + (secs * 1000.0).ceil() as u64).div_ceil(1000) * 1000;
                let t = UNIX_EPOCH + Duration::from_millis(until_ms);
                let dt: chrono::DateTime<chrono::Utc> = t.into();
                (Some(dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string()), until_ms)
            }
            RetryAfterForm::None => (None, now_ms),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Shared {
    pub store: Mutex<Store>,
    /// Newest first; the admin API can publish more entries.
    pub catalog: Mutex<Vec<Value>>,
    pub settings: Mutex<Settings>,
    pub faults: Mutex<Faults>,
    pub tokens: Mutex<HashMap<String, Issued>>,
    pub log: Mutex<RequestLog>,
    pub token_rng: Mutex<Rng>,
    pub request_log_limit: usize,
    pub state_file: Option<std::path::PathBuf>,
    /// What reads see while a read lag is set: tenant snapshots after each write, oldest first (see
    /// [`Shared::lagged_view`]).
    pub history: Mutex<VecDeque<Snapshot>>,
    /// The simulated fleet behind `data/deviceProfiles`.
    pub fleet: Mutex<crate::fleet::Fleet>,
    /// The tenant's time: read lag, token expiry, Retry-After, the fleet's time and the request log follow it.
    pub clock: Clock,
}

/// The emulator's clock: the machine's, moved on by [`Clock::advance`] so that a test of read lag, token
/// expiry, Retry-After or the fleet's progress takes no wall time. The request log's times follow it too.
#[derive(Debug, Default)]
pub struct Clock {
    skew_ms: std::sync::atomic::AtomicU64,
}

impl Clock {
    fn skew(&self) -> Duration {
        Duration::from_millis(self.skew_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Moves the tenant's time on by `by`.
    pub fn advance(&self, by: Duration) {
        self.skew_ms
            .fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Now, on the monotonic clock.
    pub fn instant(&self) -> std::time::Instant {
        std::time::Instant::now() + self.skew()
    }

    /// Now, in milliseconds since the Unix epoch (see [`now_ms`]).
    pub fn now_ms(&self) -> u64 {
        now_ms() + self.skew().as_millis() as u64
    }

    /// Now, in UTC.
    pub fn utc(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::Duration::from_std(self.skew()).unwrap_or_default()
    }
}

/// The tenant as it was after a write (`at`), or before the first recorded write (`at` is `None`).
#[derive(Debug)]
pub struct Snapshot {
    pub at: Option<std::time::Instant>,
    pub store: std::sync::Arc<Store>,
}

/// Locks a mutex, recovering the data if a holder panicked (the emulator's state stays usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch, read from the monotonic clock anchored to the wall clock once: a
/// step of the system clock (a fresh machine's first time sync) does not make a request look earlier
/// than one logged before it.
pub fn now_ms() -> u64 {
    static ANCHOR: std::sync::OnceLock<(std::time::Instant, u64)> = std::sync::OnceLock::new();
    let (start, wall) = ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        (std::time::Instant::now(), wall)
    });
    wall + start.elapsed().as_millis() as u64
}

/// FNV-1a.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Shared {
    /// Adds a catalog entry (replacing one with the same id), keeping the catalog newest first.
    pub fn publish(&self, entry: Value) {
        let mut catalog = lock(&self.catalog);
        catalog.retain(|e| e["id"] != entry["id"]);
        catalog.push(entry);
        catalog.sort_by(|a, b| b["releaseDateTime"].as_str().cmp(&a["releaseDateTime"].as_str()));
    }

    pub fn new(config: &EmulatorConfig) -> Self {
        let mut store = Store::new(config.faults.seed);
        if let Some(path) = &config.state_file
            && let Ok(bytes) = std::fs::read(path)
            && let Ok(loaded) = serde_json::from_slice::<Store>(&bytes)
        {
            store = loaded;
        }
        Shared {
            store: Mutex::new(store),
            catalog: Mutex::new(crate::catalog::seed(config.catalog_until)),
            settings: Mutex::new(Settings {
                page_size: config.page_size.max(1),
                max_assets_per_request: config.max_assets_per_request.map(|c| c.max(1)),
                auth: config.auth,
                audience_404_when_empty: config.audience_404_when_empty,
                read_lag_ms: config.read_lag_ms,
                refuse_deployment_filter: config.refuse_deployment_filter,
                refuse_group_delete_in_use: config.refuse_group_delete_in_use,
                read_all_catalog: config.read_all_catalog,
                audience_client_paging: config.audience_client_paging,
                refuse_batch: config.refuse_batch,
                device_errors: config.device_errors.clone(),
                apps: config.apps.clone(),
                token_lifetime_secs: config.token_lifetime.as_secs(),
            }),
            faults: Mutex::new(Faults {
                config: config.faults.clone(),
                rng: Rng::new(config.faults.seed),
            }),
            tokens: Mutex::new(HashMap::new()),
            log: Mutex::new(RequestLog::default()),
            token_rng: Mutex::new(Rng::new(config.faults.seed ^ 0x5eed)),
            request_log_limit: config.request_log_limit,
            state_file: config.state_file.clone(),
            history: Mutex::new(VecDeque::new()),
            fleet: Mutex::new(crate::fleet::Fleet::new(config.fleet.clone())),
            clock: Clock::default(),
        }
    }

    /// Moves the simulated fleet on to now, before a request that does not read the fleet: at most once a
    /// second, so a busy tenant does not walk its devices on every request (at 100,000 devices a walk
    /// holds the tenant for milliseconds).
    pub fn tick_fleet(&self) {
        self.tick_fleet_inner(false, 1000);
    }

    /// Starts the simulated fleet if it is idle, and moves it on to now (at most every 200 ms).
    pub fn read_fleet(&self) {
        self.tick_fleet_inner(true, 200);
    }

    fn tick_fleet_inner(&self, reading: bool, within_ms: u64) {
        let now = self.clock.now_ms();
        let mut fleet = lock(&self.fleet);
        if reading && !fleet.active {
            fleet.active = true;
        }
        if fleet.ticked_within(now, within_ms) {
            if reading {
                // A device the tenant got since the last tick shows in a read at once.
                fleet.know(&mut lock(&self.store));
            }
            return;
        }
        let catalog = lock(&self.catalog).clone();
        let mut store = lock(&self.store);
        fleet.tick(&mut store, &catalog, now, reading);
    }

    /// Before a write while a read lag is set: keeps the tenant as it was, if nothing older is kept.
    pub fn before_write(&self, store: &Store, lag_ms: u64) {
        let mut h = lock(&self.history);
        if lag_ms == 0 {
            h.clear();
            return;
        }
        if h.is_empty() {
            h.push_back(Snapshot {
                at: None,
                store: std::sync::Arc::new(store.clone()),
            });
        }
    }

    /// After a write while a read lag is set: keeps the tenant as it is now, and drops snapshots no read
    /// can see any more.
    pub fn after_write(&self, store: &Store, lag_ms: u64) {
        if lag_ms == 0 {
            return;
        }
        let now = self.clock.instant();
        let mut h = lock(&self.history);
        h.push_back(Snapshot {
            at: Some(now),
            store: std::sync::Arc::new(store.clone()),
        });
        let horizon = now.checked_sub(Duration::from_millis(lag_ms));
        // Keep the newest snapshot at or before the horizon, and everything after it.
        while h.len() > 1 && matches!((h[1].at, horizon), (Some(at), Some(hz)) if at <= hz) {
            h.pop_front();
        }
    }

    /// What a read sees with a lag of `lag_ms`: the newest snapshot taken at least that long ago, or
    /// `None` for the live tenant (no lag, or no write within the lag).
    pub fn lagged_view(&self, lag_ms: u64) -> Option<std::sync::Arc<Store>> {
        if lag_ms == 0 {
            return None;
        }
        let h = lock(&self.history);
        let horizon = self.clock.instant().checked_sub(Duration::from_millis(lag_ms));
        let newest_visible = h.iter().rev().find(|s| match (s.at, horizon) {
            (None, _) => true,
            (Some(at), Some(hz)) => at <= hz,
            (Some(_), None) => false,
        })?;
        // Every write is older than the lag: the live tenant is what reads see.
        if h.back().is_some_and(|last| std::ptr::eq(last, newest_visible)) && newest_visible.at.is_some() {
            return None;
        }
        Some(newest_visible.store.clone())
    }

    pub fn record(&self, mut entry: LogEntry) {
        let mut log = lock(&self.log);
        entry.seq = log.next_seq;
        log.next_seq += 1;
        *log.counts
            .entry(entry.operation.clone())
            .or_default()
            .entry(entry.status)
            .or_default() += 1;
        log.entries.push_back(entry);
        while log.entries.len() > self.request_log_limit {
            log.entries.pop_front();
        }
    }

    /// Writes the tenant to the state file, when one is configured.
    pub fn persist(&self) {
        let Some(path) = &self.state_file else { return };
        let bytes = match serde_json::to_vec(&*lock(&self.store)) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "failed to serialize emulator state");
                return;
            }
        };
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)) {
            tracing::warn!(error = %e, path = %path.display(), "failed to persist emulator state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_decisions_replay_from_a_seed() {
        let config = FaultConfig {
            throttle_rate: 0.3,
            error_rate: 0.1,
            drop_rate: 0.05,
            ..Default::default()
        };
        let run = |seed| {
            let mut f = Faults {
                config: config.clone(),
                rng: Rng::new(seed),
            };
            (0..200)
                .map(|_| {
                    let d = f.decide(true, "deployments.create");
                    (d.throttle, d.error, d.drop)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        let throttled = run(42).iter().filter(|d| d.0).count();
        assert!(
            (40..=80).contains(&throttled),
            "about 30% of 200, got {throttled}"
        );
    }

    #[test]
    fn retry_after_forms() {
        let mut f = Faults {
            config: FaultConfig {
                retry_after_secs: 1.5,
                ..Default::default()
            },
            rng: Rng::new(1),
        };
        assert_eq!(f.retry_after(10_000), (Some("2".into()), 12_000));
        f.config.retry_after_form = RetryAfterForm::Fractional;
        assert_eq!(f.retry_after(10_000), (Some("1.500".into()), 11_500));
        f.config.retry_after_form = RetryAfterForm::HttpDate;
        let (h, until) = f.retry_after(10_200);
        assert_eq!(until, 12_000);
        assert_eq!(h.as_deref(), Some("Thu, 01 Jan 1970 00:00:12 GMT"));
    }
}
