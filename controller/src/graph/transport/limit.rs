//! The shared rate limit: a token bucket every request of a tenant waits on.

use super::*;

/// A token bucket shared by every caller of one tenant.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            // Not a finite positive rate: unlimited (the flag and the connection budget refuse one).
            rate: if rate_per_sec.is_finite() && rate_per_sec > 0.0 {
                rate_per_sec
            } else {
                0.0
            },
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        if self.rate <= 0.0 {
            return;
        }
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                // At most a second of tokens short, so at most 1/rate seconds (bounded for any rate).
                Duration::try_from_secs_f64((1.0 - s.0) / self.rate).unwrap_or(MAX_RETRY_AFTER)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_bucket_paces_after_the_burst() {
        let l = RateLimiter::new(100.0, 5);
        let t = Instant::now();
        for _ in 0..15 {
            l.acquire().await;
        }
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(90),
            "10 tokens at 100/s take about 100 ms, took {e:?}"
        );
    }
}
