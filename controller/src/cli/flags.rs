//! Flags more than one command takes: the bounded parsers of `run`'s durations and rates, and the
//! planner's settings, which `run` and `plan` share so that a plan decides as the controller does.

use std::time::Duration;

use crate::reconcile::Settings;

/// The operator's bounded flags: each duration and number `run` takes has a range, and a value out
/// of it stops `run` at start-up with the flag named (clap prefixes the flag to the message).
pub mod bounded {
    use std::time::Duration;

    use crate::crd::duration::{Bounds, DurationError};

    fn within(bounds: Bounds, s: &str) -> Result<Duration, String> {
        bounds.parse(s).map_err(|e| match e {
            DurationError::Form => format!("not a duration; expected {}", bounds.expected()),
            DurationError::Range => format!("out of range; expected {}", bounds.expected()),
        })
    }

    /// `--resync-interval`: 1 second (tests) to 7 days.
    pub fn resync(s: &str) -> Result<Duration, String> {
        within(Bounds::secs(1, crate::crd::duration::RESYNC.max.as_secs()), s)
    }
    /// `--progress-interval`: 1 second to 1 day.
    pub fn progress(s: &str) -> Result<Duration, String> {
        within(Bounds::secs(1, crate::crd::duration::PROGRESS.max.as_secs()), s)
    }
    /// `--catalog-poll-interval`: 1 second to 7 days.
    pub fn catalog_poll(s: &str) -> Result<Duration, String> {
        within(
            Bounds::secs(1, crate::crd::duration::CATALOG_POLL.max.as_secs()),
            s,
        )
    }
    /// `--absence-confirm`, `--connection-check-interval`: 1 second to 1 day.
    pub fn up_to_a_day(s: &str) -> Result<Duration, String> {
        within(Bounds::secs(1, 86_400), s)
    }
    /// `--read-lag-budget`, `--shutdown-timeout`: 1 second to 1 hour.
    pub fn up_to_an_hour(s: &str) -> Result<Duration, String> {
        within(Bounds::secs(1, 3600), s)
    }

    /// The most Graph requests per second `--graph-rate-limit` may set.
    pub const MAX_RATE: f64 = 10_000.0;
    /// The least non-zero rate: one request every 100 seconds.
    pub const MIN_RATE: f64 = 0.01;

    /// `--graph-rate-limit`: 0 (unlimited), or 0.01 to 10,000 requests per second.
    pub fn rate(s: &str) -> Result<f64, String> {
        let expected = format!("0 (unlimited) or {MIN_RATE} to {MAX_RATE} requests per second");
        let r: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("not a number; expected {expected}"))?;
        if r == 0.0 || (r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r)) {
            Ok(r)
        } else {
            Err(format!("out of range; expected {expected}"))
        }
    }
}

/// The settings the planner decides by: `run` and `plan` take the same flags and environment variables,
/// so a plan cannot disagree with the controller it previews.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct PlannerArgs {
    /// Operator-wide limit on the devices one deployment may reach.
    #[arg(long, env = "WUFB_MAX_AUDIENCE_DEVICES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_audience_devices: Option<u64>,
    /// How long a recorded deployment or group must keep answering 404 before it is created again (a read
    /// can lag a write, so one 404 is not proof that it is gone).
    #[arg(long, env = "WUFB_ABSENCE_CONFIRM", default_value = "2m", value_parser = bounded::up_to_a_day)]
    pub absence_confirm: Duration,
    /// How long after the operator's own last write to a deployment it waits for Graph to show that write
    /// before it sends again what a read does not show (reads can lag writes; a spec change is acted on at
    /// once).
    #[arg(long, env = "WUFB_READ_LAG_BUDGET", default_value = "60s", value_parser = bounded::up_to_an_hour)]
    pub read_lag_budget: Duration,
}

impl PlannerArgs {
    /// The operator settings these flags set (the others at their defaults).
    pub fn settings(&self) -> Settings {
        Settings {
            max_audience_devices: self.max_audience_devices,
            absence_confirm: self.absence_confirm,
            read_lag_budget: self.read_lag_budget,
            ..Default::default()
        }
    }
}
