//! The operator's annotations: what each may hold, read once and bounded. A value out of its form or
//! range is refused, never saturated: the default applies and [`ignored`] names the value and what was
//! expected, for the object's Ready condition, an Event and `wufb-operator validate`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::duration::{self, Bounds};
use super::text::{is_invisible, printable};

/// Annotation: per-object resync interval (`5m`, `1h`, ...), 10 seconds to 7 days.
pub const RESYNC: &str = "wufb.dev/resync-interval";
/// Per-object override of how often `refresh: OnNewRelease` reads the catalog again (`15m`, `1h`,
/// ...), 1 minute to 7 days.
pub const CATALOG_POLL: &str = "wufb.dev/catalog-poll-interval";
/// Per-object rollout progress poll interval (`5m`, `90s`, ...), overriding `--progress-interval`;
/// 10 seconds to 1 day.
pub const PROGRESS: &str = "wufb.dev/progress-interval";
/// Annotation: promote the waves up to and including the one named, past their gates (never past a
/// halt, an abort or spec.paused). Set by `wufb-operator promote`.
pub const PROMOTE: &str = "wufb.dev/promote";
/// Annotation: stop promoting for good and keep the deployment paused until the spec changes; any new
/// value is a new request. Set by `wufb-operator abort`.
pub const ABORT: &str = "wufb.dev/abort";
/// Annotation: lift a halt and resume the gates; any new value is a new request. Set by
/// `wufb-operator retry`.
pub const RETRY: &str = "wufb.dev/retry";
/// Annotation: any change reconciles the object at once. Its value is never read beyond its length.
pub const RECONCILE_REQUESTED: &str = "wufb.dev/reconcile-requested-at";

/// The longest value a request annotation (abort, retry, reconcile-requested-at) may have. Abort and
/// retry values are recorded in status, so a larger one would grow every status write.
pub const MAX_REQUEST_LEN: usize = 256;

/// An interval an annotation overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Resync,
    Progress,
    CatalogPoll,
}

impl Interval {
    pub const fn key(self) -> &'static str {
        match self {
            Interval::Resync => RESYNC,
            Interval::Progress => PROGRESS,
            Interval::CatalogPoll => CATALOG_POLL,
        }
    }

    pub const fn bounds(self) -> Bounds {
        match self {
            Interval::Resync => duration::RESYNC,
            Interval::Progress => duration::PROGRESS,
            Interval::CatalogPoll => duration::CATALOG_POLL,
        }
    }
}

/// A request a person makes of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Promote,
    Abort,
    Retry,
}

impl Request {
    pub const fn key(self) -> &'static str {
        match self {
            Request::Promote => PROMOTE,
            Request::Abort => ABORT,
            Request::Retry => RETRY,
        }
    }
}

/// An annotation whose value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub key: &'static str,
    /// The value, shortened and with invisible characters replaced.
    pub value: String,
    /// The form and range the value must have.
    pub expected: String,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ignored {}='{}': expected {}",
            self.key, self.value, self.expected
        )
    }
}

type Annotations = BTreeMap<String, String>;

/// The interval an annotation sets, when it is set and within its bounds (else the caller's default
/// applies; [`ignored`] says why).
pub fn interval(annotations: Option<&Annotations>, which: Interval) -> Option<Duration> {
    let v = annotations?.get(which.key())?;
    which.bounds().parse(v).ok()
}

/// A rollout request's value, when it is set and well formed (else `None`; [`ignored`] says why).
pub fn request(annotations: Option<&Annotations>, which: Request) -> Option<&str> {
    let v = annotations?.get(which.key())?;
    request_problem(which, v).is_none().then_some(v.as_str())
}

/// Every annotation of the operator's whose value is refused, in key order.
pub fn ignored(annotations: Option<&Annotations>) -> Vec<Ignored> {
    let Some(a) = annotations else { return Vec::new() };
    let mut out = Vec::new();
    let mut refuse = |key: &'static str, value: &str, expected: String| {
        out.push(Ignored {
            key,
            value: printable(value),
            expected,
        });
    };
    for which in [Interval::Resync, Interval::Progress, Interval::CatalogPoll] {
        if let Some(v) = a.get(which.key())
            && which.bounds().parse(v).is_err()
        {
            refuse(which.key(), v, which.bounds().expected());
        }
    }
    for which in [Request::Promote, Request::Abort, Request::Retry] {
        if let Some(v) = a.get(which.key())
            && let Some(expected) = request_problem(which, v)
        {
            refuse(which.key(), v, expected);
        }
    }
    if let Some(v) = a.get(RECONCILE_REQUESTED)
        && v.len() > MAX_REQUEST_LEN
    {
        refuse(
            RECONCILE_REQUESTED,
            v,
            format!("at most {MAX_REQUEST_LEN} characters, such as a timestamp"),
        );
    }
    out.sort_by_key(|i| i.key);
    out
}

/// What is wrong with a request value, as the form it must have; `None` when it is well formed. An
/// empty value is no request (nothing to refuse).
fn request_problem(which: Request, v: &str) -> Option<String> {
    if v.trim().is_empty() {
        return None;
    }
    match which {
        Request::Promote => {
            let (wave, at) = v.trim().split_once('@').map_or((v.trim(), None), |(w, t)| (w, Some(t)));
            let timed = at.is_none_or(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
            (!(is_label(wave) && timed)).then(|| {
                "the name of a wave (a DNS label of at most 63 characters), optionally with @ and an RFC 3339 time".into()
            })
        }
        Request::Abort | Request::Retry => (v.len() > MAX_REQUEST_LEN || v.chars().any(is_invisible)).then(|| {
            format!("at most {MAX_REQUEST_LEN} characters without control or invisible characters, such as a timestamp")
        }),
    }
}

/// The wave a `wufb.dev/promote` value names: `WAVE` or `WAVE@<RFC 3339 time>` (the time makes each
/// request from `wufb-operator promote` a new one).
pub fn promote_wave(value: &str) -> &str {
    let v = value.trim();
    v.split_once('@').map_or(v, |(wave, _)| wave)
}

fn is_label(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn of(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_interval_in_range_is_used_and_one_out_of_range_is_ignored_by_name() {
        let a = of(&[
            (RESYNC, "5m"),
            (PROGRESS, "2d"),
            (CATALOG_POLL, "18446744073709551615"),
        ]);
        assert_eq!(
            interval(Some(&a), Interval::Resync),
            Some(Duration::from_secs(300))
        );
        assert_eq!(interval(Some(&a), Interval::Progress), None);
        assert_eq!(interval(Some(&a), Interval::CatalogPoll), None);
        let ignored: Vec<String> = ignored(Some(&a)).iter().map(ToString::to_string).collect();
        assert_eq!(
            ignored,
            [
                "ignored wufb.dev/catalog-poll-interval='18446744073709551615': expected a whole number and a unit (s, m, h or d) from 1m to 7d",
                "ignored wufb.dev/progress-interval='2d': expected a whole number and a unit (s, m, h or d) from 10s to 1d",
            ]
        );
    }

    #[test]
    fn requests_are_bounded_in_length_and_form() {
        let long = "x".repeat(60_000);
        let a = of(&[
            (PROMOTE, "Broad Wave"),
            (ABORT, &long),
            (RETRY, "2026-12-07T10:00:00Z"),
            (RECONCILE_REQUESTED, &long),
        ]);
        assert_eq!(request(Some(&a), Request::Promote), None);
        assert_eq!(request(Some(&a), Request::Abort), None);
        assert_eq!(request(Some(&a), Request::Retry), Some("2026-12-07T10:00:00Z"));
        let keys: Vec<&str> = ignored(Some(&a)).iter().map(|i| i.key).collect();
        assert_eq!(keys, [ABORT, PROMOTE, RECONCILE_REQUESTED]);
        // The value is shown shortened, never whole.
        assert!(ignored(Some(&a)).iter().all(|i| i.value.chars().count() <= 81));
        let timed = of(&[(PROMOTE, "broad@2026-12-07T10:00:00.123Z")]);
        assert_eq!(
            request(Some(&timed), Request::Promote).map(promote_wave),
            Some("broad")
        );
        let untimed = of(&[(PROMOTE, "broad@yesterday")]);
        assert_eq!(request(Some(&untimed), Request::Promote), None);
        let ctl = of(&[(RETRY, "now\u{202e}\n")]);
        assert_eq!(request(Some(&ctl), Request::Retry), None);
        assert_eq!(ignored(Some(&ctl))[0].value, "now\u{fffd}\u{fffd}");
    }

    proptest! {
        #[test]
        fn any_annotation_value_is_used_within_bounds_or_named(key in prop::sample::select(vec![RESYNC, PROGRESS, CATALOG_POLL, PROMOTE, ABORT, RETRY, RECONCILE_REQUESTED]), value in "(\\PC|[\u{0}-\u{1f}\u{202e}]){0,300}") {
            let a = of(&[(key, &value)]);
            let refused = ignored(Some(&a));
            for which in [Interval::Resync, Interval::Progress, Interval::CatalogPoll] {
                match interval(Some(&a), which) {
                    Some(d) => prop_assert!(d >= which.bounds().min && d <= which.bounds().max),
                    None if which.key() == key => prop_assert_eq!(refused.len(), 1),
                    None => {}
                }
            }
            for which in [Request::Promote, Request::Abort, Request::Retry] {
                if which.key() == key && !value.trim().is_empty() {
                    prop_assert_eq!(request(Some(&a), which).is_some(), refused.is_empty());
                }
            }
            for i in &refused {
                prop_assert!(i.value.chars().count() <= 81);
                prop_assert!(!i.value.chars().any(char::is_control));
            }
        }
    }
}
