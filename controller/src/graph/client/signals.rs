//! The tenant's device signals: the build each device reports and the registration errors of device
//! assets, read once per interval for every object.

use super::*;

impl GraphClient {
    /// The tenant's device signals, no older than `max_age`: answered from the cache within it, else two
    /// collections read to their last page by `@odata.nextLink` (`data/deviceProfiles` and the
    /// `azureADDevice` assets; no `$top`, which caps the whole result, not the page), held across the
    /// fetch so that concurrent passes share one read.
    pub async fn device_signals_within(&self, max_age: Duration) -> Result<Arc<DeviceSignals>, GraphError> {
        let mut cache = self.signals_cache.lock().await;
        if let Some((_, s)) = cache.as_ref().filter(|(at, _)| at.elapsed() < max_age) {
            return Ok(s.clone());
        }
        let signals = Arc::new(self.read_device_signals().await?);
        *cache = Some((Instant::now(), signals.clone()));
        Ok(signals)
    }

    /// The newest device signals without waiting for Graph: what the cache holds (possibly older than
    /// `max_age`, possibly nothing yet), and, when that is older than `max_age`, one read started in the
    /// background (never two at once). A reconcile pass never waits on a tenant-wide read, which at
    /// 100,000 devices is thousands of pages: a pause must not queue behind it.
    pub fn device_signals_nowait(self: &Arc<Self>, max_age: Duration) -> Option<Arc<DeviceSignals>> {
        use std::sync::atomic::Ordering;
        let (current, fresh) = match self.signals_cache.try_lock() {
            Ok(cache) => match cache.as_ref() {
                Some((at, s)) => (Some(s.clone()), at.elapsed() < max_age),
                None => (None, false),
            },
            // A blocking caller is reading right now: nothing to start.
            Err(_) => return None,
        };
        if !fresh && !self.signals_refreshing.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                // A panic in the read ends this read alone: the flag below is cleared either way, so
                // a later pass starts another.
                match crate::panics::Contained::new(this.read_device_signals()).await {
                    Ok(Ok(s)) => *this.signals_cache.lock().await = Some((Instant::now(), Arc::new(s))),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "could not read the tenant's device signals; progress keeps its last figures")
                    }
                    Err(caught) => {
                        tracing::error!(location = %caught.location, panic = %caught.message, "reading the tenant's device signals panicked; progress keeps its last figures")
                    }
                }
                this.signals_refreshing.store(false, Ordering::Release);
            });
        }
        current
    }

    /// Reads `data/deviceProfiles` and the `azureADDevice` assets to their last pages, each page folded
    /// into the build table and the error map as it comes (a tenant of 100,000 devices is never held as
    /// read).
    async fn read_device_signals(&self) -> Result<DeviceSignals, GraphError> {
        let read_time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut builds = crate::graph::compliance::BuildsBuilder::default();
        self.transport
            .for_each_page(
                "list device profiles",
                self.url("data/deviceProfiles"),
                |page: Vec<DeviceProfile>| {
                    for p in page {
                        if let Some(build) = p.os_build.as_deref().and_then(OsBuild::parse) {
                            builds.push(lower_id(p.azure_ad_device_id.unwrap_or(p.id)), build);
                        }
                    }
                },
            )
            .await?;
        let mut errors = Vec::new();
        self.transport
            .for_each_page(
                "list device assets",
                self.url(&format!("updatableAssets/{NS}azureADDevice")),
                |page: Vec<UpdatableAsset>| {
                    errors.extend(page.into_iter().filter(|a| !a.errors.is_empty()).map(|a| {
                        let reasons: Vec<String> = a
                            .errors
                            .iter()
                            .map(|e| e.reason.as_ref().map_or("unknown".to_string(), |r| r.to_string()))
                            .collect();
                        (lower_id(a.id), reasons.join(", "))
                    }))
                },
            )
            .await?;
        // A map built from sorted entries has full nodes.
        errors.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(DeviceSignals {
            builds: builds.finish(),
            errors: errors.into_iter().collect(),
            read_time,
        })
    }
}
