//! Durations as people write them in the API (gate waits, interval annotations) and in the operator's
//! flags: a whole number and a unit, `90s`, `5m`, `4h`, `1d` (a bare number is seconds). One grammar,
//! and every use names its bounds: no value a user writes reaches a timer, `Duration` or date
//! arithmetic without passing through [`Bounds::parse`].

use std::fmt;
use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// The most characters a duration may have: `7776000s` (90 days in seconds) has 8; a longer text is
/// refused before any digit is read.
pub const MAX_LEN: usize = 16;

/// The range a duration must fall in, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
}

/// `spec.rollout.waves[].gate.wait`: one second to 90 days.
pub const GATE_WAIT: Bounds = Bounds::secs(1, 90 * DAY);
/// `wufb.dev/resync-interval` and `--resync-interval`: 10 seconds to 7 days.
pub const RESYNC: Bounds = Bounds::secs(10, 7 * DAY);
/// `wufb.dev/progress-interval` and `--progress-interval`: 10 seconds to 1 day.
pub const PROGRESS: Bounds = Bounds::secs(10, DAY);
/// `wufb.dev/catalog-poll-interval`: 1 minute to 7 days.
pub const CATALOG_POLL: Bounds = Bounds::secs(MINUTE, 7 * DAY);

/// Why a text is not a duration within its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Not a whole number with an optional unit (s, m, h, d), or longer than [`MAX_LEN`].
    Form,
    /// A duration, but outside the bounds.
    Range,
}

impl Bounds {
    pub const fn secs(min: u64, max: u64) -> Bounds {
        Bounds {
            min: Duration::from_secs(min),
            max: Duration::from_secs(max),
        }
    }

    /// Parses `s` and checks it against the bounds. Never overflows: the number is read with checked
    /// arithmetic and refused as out of range when it is larger than any bound.
    pub fn parse(&self, s: &str) -> Result<Duration, DurationError> {
        let d = parse(s)?;
        if d < self.min || d > self.max {
            return Err(DurationError::Range);
        }
        Ok(d)
    }

    /// What a value must look like, for messages: `a whole number and a unit (s, m, h or d) from 10s to
    /// 7d`.
    pub fn expected(&self) -> String {
        format!(
            "a whole number and a unit (s, m, h or d) from {} to {}",
            short(self.min),
            short(self.max)
        )
    }
}

/// Reads a duration with no bounds but what fits: `Range` for a number too large to hold.
fn parse(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_LEN {
        return Err(DurationError::Form);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(DurationError::Form);
    }
    let scale = match unit {
        "" | "s" => 1,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => return Err(DurationError::Form),
    };
    // At most 16 digits: fits a u64 (20 digits), and the product is checked.
    let n: u64 = num.parse().map_err(|_| DurationError::Form)?;
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or(DurationError::Range)
}

/// The shortest exact way to write `d` in the grammar (`90s`, `5m`, `7d`).
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % DAY == 0 => format!("{}d", s / DAY),
        s if s % HOUR == 0 => format!("{}h", s / HOUR),
        s if s % MINUTE == 0 => format!("{}m", s / MINUTE),
        s => format!("{s}s"),
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DurationError::Form => "not a duration",
            DurationError::Range => "out of range",
        })
    }
}

impl std::error::Error for DurationError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_grammar() {
        let any = Bounds::secs(0, u64::MAX);
        assert_eq!(any.parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(any.parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(any.parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(any.parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(any.parse(" 30 "), Ok(Duration::from_secs(30)));
        for bad in [
            "", "soon", "-5m", "1.5h", "5 m", "5M", "1e3", "NaN", "٣s", "5mm", "m", "+5s",
        ] {
            assert_eq!(any.parse(bad), Err(DurationError::Form), "{bad:?}");
        }
    }

    #[test]
    fn the_values_that_crashed_are_refused_with_a_reason() {
        // Past u64 by length, past u64 as a number of days, and past 90 days.
        assert_eq!(RESYNC.parse("18446744073709551615"), Err(DurationError::Form));
        assert_eq!(RESYNC.parse("999999999999999d"), Err(DurationError::Range));
        assert_eq!(GATE_WAIT.parse("99999999999d"), Err(DurationError::Range));
        assert_eq!(GATE_WAIT.parse("91d"), Err(DurationError::Range));
        assert_eq!(GATE_WAIT.parse("90d"), Ok(Duration::from_secs(90 * DAY)));
        assert_eq!(GATE_WAIT.parse("0s"), Err(DurationError::Range));
    }

    #[test]
    fn each_bound_at_and_past_its_ends() {
        for (b, below, low, high, above) in [
            (RESYNC, "9s", "10s", "7d", "169h"),
            (PROGRESS, "9", "10s", "1d", "86401s"),
            (CATALOG_POLL, "59s", "1m", "7d", "10081m"),
            (GATE_WAIT, "0m", "1s", "90d", "2161h"),
        ] {
            assert_eq!(b.parse(below), Err(DurationError::Range), "{below}");
            assert_eq!(b.parse(low), Ok(b.min), "{low}");
            assert_eq!(b.parse(high), Ok(b.max), "{high}");
            assert_eq!(b.parse(above), Err(DurationError::Range), "{above}");
        }
        assert_eq!(
            RESYNC.expected(),
            "a whole number and a unit (s, m, h or d) from 10s to 7d"
        );
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panicking(s in ".{0,40}") {
            for b in [RESYNC, PROGRESS, CATALOG_POLL, GATE_WAIT] {
                if let Ok(d) = b.parse(&s) {
                    prop_assert!(d >= b.min && d <= b.max);
                }
            }
        }

        #[test]
        fn digits_and_a_unit_round_trip(n in 0u64..=u64::MAX, unit in prop::sample::select(vec!["", "s", "m", "h", "d"])) {
            let text = format!("{n}{unit}");
            let any = Bounds::secs(0, u64::MAX);
            let scale = match unit { "m" => MINUTE, "h" => HOUR, "d" => DAY, _ => 1 };
            match (text.len() <= MAX_LEN, n.checked_mul(scale)) {
                (false, _) => prop_assert_eq!(any.parse(&text), Err(DurationError::Form)),
                (true, None) => prop_assert_eq!(any.parse(&text), Err(DurationError::Range)),
                (true, Some(secs)) => {
                    prop_assert_eq!(any.parse(&text), Ok(Duration::from_secs(secs)));
                    let written = short(Duration::from_secs(secs));
                    if written.len() <= MAX_LEN {
                        prop_assert_eq!(any.parse(&written), Ok(Duration::from_secs(secs)));
                    }
                }
            }
        }
    }
}
