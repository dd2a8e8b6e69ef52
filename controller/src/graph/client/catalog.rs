//! The update catalog: entries by filter, by id and by release date, and an entry's product revisions.

use super::*;

impl GraphClient {
    async fn catalog_query(&self, query: &str) -> Result<Vec<CatalogEntry>, GraphError> {
        self.catalog_query_within(query, CATALOG_TTL).await
    }

    /// A catalog list no older than `max_age` (answered from the cache within it).
    async fn catalog_query_within(
        &self,
        query: &str,
        max_age: Duration,
    ) -> Result<Vec<CatalogEntry>, GraphError> {
        let url = format!("{}?{query}", self.url("catalog/entries"));
        // Held across the fetch: concurrent reconciles asking for the same content share one call.
        let mut cache = self.catalog_cache.lock().await;
        if let Some((_, entries)) = cache
            .get(&url)
            .filter(|(at, _)| at.elapsed() < CATALOG_TTL.min(max_age))
        {
            return Ok(entries.clone());
        }
        let entries: Vec<CatalogEntry> = self.transport.collect("list catalog entries", &url).await?;
        cache.insert(url, (Instant::now(), entries.clone()));
        Ok(entries)
    }

    /// The newest expeditable quality updates, newest first.
    pub async fn expeditable_updates(&self, top: usize) -> Result<Vec<CatalogEntry>, GraphError> {
        self.expeditable_updates_within(top, CATALOG_TTL).await
    }

    /// [`GraphClient::expeditable_updates`] read no longer than `max_age` ago.
    pub async fn expeditable_updates_within(
        &self,
        top: usize,
        max_age: Duration,
    ) -> Result<Vec<CatalogEntry>, GraphError> {
        let filter = format!(
            "isof('{NS}qualityUpdateCatalogEntry') and {NS}qualityUpdateCatalogEntry/isExpeditable eq true"
        );
        self.catalog_query_within(
            &format!(
                "$filter={}&$orderby={}&$top={top}",
                enc(&filter),
                enc("releaseDateTime desc")
            ),
            max_age,
        )
        .await
    }

    /// The security quality updates the catalog lists as released on `date` (`YYYY-MM-DD`).
    pub async fn security_releases_on(&self, date: &str) -> Result<Vec<CatalogEntry>, GraphError> {
        let filter = format!("isof('{NS}qualityUpdateCatalogEntry') and releaseDateTime eq {date}T00:00:00Z");
        let entries = self.catalog_query(&format!("$filter={}", enc(&filter))).await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.quality_update_classification.as_deref() == Some("security"))
            .collect())
    }

    /// One catalog entry by id; `None` when the catalog has no such entry.
    pub async fn catalog_entry(&self, id: &str) -> Result<Option<CatalogEntry>, GraphError> {
        let url = self.url(&format!("catalog/entries/{}", enc(id)));
        absent(
            self.transport
                .json("get catalog entry", Method::GET, &url, None, Idempotency::Safe)
                .await,
        )
    }

    /// The product revisions of a catalog entry (`$expand=productRevisions`), cached for good.
    pub async fn entry_revisions(&self, id: &str) -> Result<Arc<Vec<ProductRevision>>, GraphError> {
        if let Some(r) = self.revisions_cache.lock().await.get(id) {
            return Ok(r.clone());
        }
        let url = format!(
            "{}?$expand=productRevisions",
            self.url(&format!("catalog/entries/{}", enc(id)))
        );
        let entry: CatalogEntry = self
            .transport
            .json("get catalog entry", Method::GET, &url, None, Idempotency::Safe)
            .await?;
        let revisions = Arc::new(entry.product_revisions);
        self.revisions_cache
            .lock()
            .await
            .insert(id.to_string(), revisions.clone());
        Ok(revisions)
    }
}
