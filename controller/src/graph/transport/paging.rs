//! Reading collections: `@odata.nextLink` pages one by one, or in parallel when the service counts them.

use super::*;

impl Transport {
    /// Sends a request and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<T, GraphError> {
        let (_, bytes) = self.send(operation, method, url, body, idempotency).await?;
        serde_json::from_slice(&bytes).map_err(|e| GraphError::Decode {
            operation,
            detail: e.to_string(),
        })
    }

    /// Reads a whole collection, following `@odata.nextLink` until the last page.
    pub async fn collect<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: &str,
    ) -> Result<Vec<T>, GraphError> {
        self.follow(operation, Vec::new(), url.to_string()).await
    }

    /// Appends to `out` the page at `url` and every page after it.
    async fn follow<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        mut out: Vec<T>,
        url: String,
    ) -> Result<Vec<T>, GraphError> {
        self.for_each_page(operation, url, |page| out.extend(page))
            .await?;
        Ok(out)
    }

    /// Reads a collection page by page, following `@odata.nextLink` until the last page, and hands
    /// each page's items to `each` as it arrives: a caller that folds them into something smaller
    /// (a set of ids, counts) never holds the whole collection as read.
    pub async fn for_each_page<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: String,
        mut each: impl FnMut(Vec<T>),
    ) -> Result<(), GraphError> {
        let mut next = Some(url);
        let mut seen = HashSet::new();
        while let Some(url) = next.take() {
            if seen.len() >= self.config.max_pages {
                return Err(GraphError::Protocol {
                    operation,
                    detail: format!(
                        "more than {} pages; the collection is too large or the service loops",
                        self.config.max_pages
                    ),
                });
            }
            if !seen.insert(url.clone()) {
                return Err(GraphError::Protocol {
                    operation,
                    detail: "the service returned a nextLink that was already followed".into(),
                });
            }
            let page: Page<T> = self
                .json(operation, Method::GET, &url, None, Idempotency::Safe)
                .await?;
            each(page.value);
            if let Some(link) = page.next_link {
                if !self.endpoints.same_origin(&link) {
                    return Err(GraphError::Protocol {
                        operation,
                        detail: "the service returned a nextLink to another host; it was not followed".into(),
                    });
                }
                next = Some(link);
            }
        }
        Ok(())
    }
}

/// A page asked with `$count=true`.
#[derive(Debug, serde::Deserialize)]
struct CountedPage<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.count", default)]
    count: Option<u64>,
}

impl Transport {
    /// Reads a whole collection, fetching its pages in parallel when the service reports the size.
    ///
    /// The first page is asked with `$count=true`; it gives the page size and the count, and the other
    /// pages are then asked at once with `$skip` and `$top` (documented query options, not values taken
    /// out of a nextLink). The pages must add up to exactly the count of distinct ids; if they do not
    /// (the collection changed while it was read, or the service does not keep a stable order), or if
    /// the service gives no count, the collection is read again by following `@odata.nextLink`, the
    /// one way of paging every service supports. A collection of N pages then takes about N ÷
    /// concurrency round trips instead of N.
    pub async fn collect_sized<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: &str,
        id: fn(&T) -> &str,
    ) -> Result<Vec<T>, GraphError> {
        self.fold_sized(
            operation,
            url,
            |_| Vec::new(),
            |out: &mut Vec<T>, page| out.extend(page),
            |out| distinct_ids(out, id),
        )
        .await
    }

    /// [`Transport::collect_sized`], with each page folded into `A` as it arrives instead of kept:
    /// `new` makes an empty `A` (given the service's count when it gave one), `distinct` counts the
    /// distinct ids folded so far (the check that the pages add up).
    pub async fn fold_sized<T: DeserializeOwned, A>(
        &self,
        operation: &'static str,
        url: &str,
        new: impl Fn(Option<u64>) -> A,
        mut fold: impl FnMut(&mut A, Vec<T>),
        distinct: impl Fn(&mut A) -> usize,
    ) -> Result<A, GraphError> {
        let sep = if url.contains('?') { '&' } else { '?' };
        let remembered = self
            .next_link_only
            .lock()
            .map(|s| s.contains(operation))
            .unwrap_or(false);
        if remembered {
            return self.fold_pages(operation, url, new(None), fold).await;
        }
        let first: CountedPage<T> = match self
            .json(
                operation,
                Method::GET,
                &format!("{url}{sep}$count=true"),
                None,
                Idempotency::Safe,
            )
            .await
        {
            Ok(page) => page,
            // Refused client-driven paging (the newest audience pages allow only `$skiptoken`).
            Err(e) if e.status() == Some(400) => {
                self.only_next_links(operation, &e.to_string());
                return self.fold_pages(operation, url, new(None), fold).await;
            }
            Err(e) => return Err(e),
        };
        let page_size = first.value.len();
        let mut out = new(first.count);
        let Some(next) = first.next_link else {
            fold(&mut out, first.value);
            return Ok(out);
        };
        let Some(count) = first.count.filter(|_| page_size > 0) else {
            // No count (or an empty page): the pages can only be followed one after the other.
            if !self.endpoints.same_origin(&next) {
                return Err(GraphError::Protocol {
                    operation,
                    detail: "the service returned a nextLink to another host; it was not followed".into(),
                });
            }
            fold(&mut out, first.value);
            self.for_each_page(operation, next, |page| fold(&mut out, page))
                .await?;
            return Ok(out);
        };
        let pages = count.div_ceil(page_size as u64);
        if pages > self.config.max_pages as u64 {
            return Err(GraphError::Protocol {
                operation,
                detail: format!(
                    "{count} items in pages of {page_size}: more than {} pages; the collection is too large",
                    self.config.max_pages
                ),
            });
        }
        let mut items = page_size;
        fold(&mut out, first.value);
        let rest = (1..pages).map(|k| format!("{url}{sep}$skip={}&$top={page_size}", k * page_size as u64));
        let mut fetched = std::pin::pin!(
            futures::stream::iter(rest)
                .map(|u| async move {
                    self.json::<CountedPage<T>>(operation, Method::GET, &u, None, Idempotency::Safe)
                        .await
                })
                .buffered(self.config.concurrency.max(1))
        );
        let mut complete = true;
        while let Some(page) = fetched.next().await {
            match page {
                Ok(page) => {
                    complete &= page.next_link.is_none();
                    items += page.value.len();
                    fold(&mut out, page.value);
                }
                Err(e) if e.status() == Some(400) => {
                    self.only_next_links(operation, &e.to_string());
                    drop(out);
                    return self.fold_pages(operation, url, new(None), fold).await;
                }
                Err(e) => return Err(e),
            }
        }
        let distinct = distinct(&mut out);
        if complete && distinct as u64 == count && items == distinct {
            return Ok(out);
        }
        drop(out);
        self.only_next_links(
            operation,
            &format!("{items} items read in parallel pages, {distinct} distinct, of {count} counted"),
        );
        self.fold_pages(operation, url, new(None), fold).await
    }

    /// Every page from `url` on, folded into `out`.
    async fn fold_pages<T: DeserializeOwned, A>(
        &self,
        operation: &'static str,
        url: &str,
        mut out: A,
        mut fold: impl FnMut(&mut A, Vec<T>),
    ) -> Result<A, GraphError> {
        self.for_each_page(operation, url.to_string(), |page| fold(&mut out, page))
            .await?;
        Ok(out)
    }

    /// Remembers that `operation`'s collections are read by `@odata.nextLink` only.
    fn only_next_links(&self, operation: &'static str, why: &str) {
        if let Ok(mut s) = self.next_link_only.lock()
            && s.insert(operation)
        {
            tracing::info!(
                operation,
                why,
                "client-driven paging refused or inconsistent; following nextLink from now on"
            );
        }
    }
}

fn distinct_ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> usize {
    items.iter().map(id).collect::<HashSet<&str>>().len()
}
