//! Deployment audiences: create, find, delete, read both lists, and `updateAudience` in batches.

use super::*;

impl GraphClient {
    async fn audience_list(
        &self,
        audience: AudienceOf<'_>,
        which: &str,
    ) -> Result<Option<Vec<UpdatableAsset>>, GraphError> {
        let url = self.url(&format!("{}/{which}", audience.path()));
        let op = if which == "members" {
            "list audience members"
        } else {
            "list audience exclusions"
        };
        absent(
            self.transport
                .collect_sized(op, &url, |a: &UpdatableAsset| &a.id)
                .await,
        )
    }

    /// The members (or the exclusions) of a deployment's audience, every page; a 404 reads as empty.
    pub async fn audience_assets(
        &self,
        audience: AudienceOf<'_>,
        exclusions: bool,
    ) -> Result<BTreeSet<AssetRef>, GraphError> {
        let which = if exclusions { "exclusions" } else { "members" };
        Ok(self
            .audience_list(audience, which)
            .await?
            .unwrap_or_default()
            .iter()
            .map(UpdatableAsset::to_ref)
            .collect())
    }

    /// Reads members and exclusions, following every page. A 404 (an audience that never had members)
    /// reads as empty.
    pub async fn audience(&self, audience: AudienceOf<'_>) -> Result<Audience, GraphError> {
        let (members, exclusions) = futures::try_join!(
            self.audience_list(audience, "members"),
            self.audience_list(audience, "exclusions")
        )?;
        let never_listed = members.is_none() && exclusions.is_none();
        let mut a = Audience {
            never_listed,
            ..Default::default()
        };
        for asset in members.iter().flatten().chain(exclusions.iter().flatten()) {
            if !asset.errors.is_empty() {
                a.device_errors.insert(asset.id.clone(), asset.error_reasons());
            }
        }
        a.members = members
            .unwrap_or_default()
            .iter()
            .map(UpdatableAsset::to_ref)
            .collect();
        a.exclusions = exclusions
            .unwrap_or_default()
            .iter()
            .map(UpdatableAsset::to_ref)
            .collect();
        Ok(a)
    }

    /// Sends one `updateAudience` request. A 400 that names one of its assets is blamed on it; one that
    /// points into the asset lists without naming one is split in halves until it is one asset; any other
    /// 400 fails as Graph said it. One refused as too large (413) is split without blame. Returns the number of calls made. (Which assets go in which
    /// request, and in what order the requests go, is the planner's.)
    pub async fn update_audience(
        &self,
        audience: AudienceOf<'_>,
        update: &AudienceUpdate<'_>,
    ) -> Result<usize, GraphError> {
        let url = self.url(&format!("{}/updateAudience", audience.path()));
        let items: Vec<(&'static str, &AssetRef)> = update.items().collect();
        // Written straight from the assets: `{"addExclusions":[…],"removeMembers":[…],…}`.
        self.send_split("update deployment audience", &url, &items, |part| {
            serde_json::to_vec(&AudienceUpdate::of(part.iter().copied()))
        })
        .await
    }

    /// Sends `items` as one request; see [`Self::update_audience`] for what a 400 or 413 does.
    pub(in crate::graph) async fn send_split<T: Clone + ItemId>(
        &self,
        operation: &'static str,
        url: &str,
        items: &[T],
        body: impl Fn(&[T]) -> Result<Vec<u8>, serde_json::Error>,
    ) -> Result<usize, GraphError> {
        let mut stack: Vec<&[T]> = vec![items];
        let mut calls = 0;
        while let Some(part) = stack.pop() {
            if part.is_empty() {
                continue;
            }
            calls += 1;
            let serialized = bytes::Bytes::from(body(part).map_err(|e| GraphError::Encode {
                operation,
                detail: e.to_string(),
            })?);
            match self
                .transport
                .send_payload(
                    operation,
                    Method::POST,
                    url,
                    Some(Payload::Serialized(&serialized)),
                    Idempotency::Safe,
                )
                .await
            {
                Ok(_) => {}
                // Too many assets for one request (a limit the reference does not document): halves,
                // blaming no asset.
                Err(e) if e.status() == Some(413) && part.len() > 1 => {
                    let (a, b) = part.split_at(part.len() / 2);
                    stack.push(b);
                    stack.push(a);
                }
                // A refusal is blamed on an asset only when it names one. Bad devices are documented to
                // show in each device's `errors`, not as a 400, so a 400 that names no asset (a wrong
                // path, body or option) fails the request as Graph said it, with no split and no blame.
                Err(GraphError::Status {
                    operation,
                    status: 400,
                    mut detail,
                    retry_after,
                }) => {
                    let ids: Vec<String> = part.iter().map(ItemId::item_id).collect();
                    match detail.names(ids.iter().map(String::as_str)) {
                        Some(id) => {
                            detail.message = format!("{} (asset {id})", detail.message);
                        }
                        None if detail.points_at_assets() && part.len() > 1 => {
                            // It points into the lists without naming the asset: halves until it is one.
                            let (a, b) = part.split_at(part.len() / 2);
                            stack.push(b);
                            stack.push(a);
                            continue;
                        }
                        None if detail.points_at_assets() => {
                            detail.message = format!("{} (asset {})", detail.message, part[0].item_id());
                        }
                        None => {}
                    }
                    return Err(GraphError::Status {
                        operation,
                        status: 400,
                        detail,
                        retry_after,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(calls)
    }
}
