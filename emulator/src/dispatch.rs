//! What each Graph operation does to the tenant: a routed request, read against the live tenant or
//! (with a read lag) an older copy, written to the live one, after simulated time has moved the fleet on.

use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};

use crate::error::GraphError;
use crate::odata::{Query, collection};
use crate::routes::{AudienceOf, Route, method_not_allowed};
use crate::server::self_url;
use crate::state::{LogEntry, Shared, lock};
use crate::store::{AssetKind, Reply};
use crate::validate;

/// One routed Graph request.
pub struct Call<'a> {
    pub route: Route,
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a Value,
}

pub fn dispatch(
    st: &Shared,
    settings: &crate::state::Settings,
    call: Call<'_>,
    entry: &mut LogEntry,
) -> Result<Reply, GraphError> {
    let now = st.clock.utc();
    // Simulated time passes for the fleet before the tenant is read (it may put errors on assets); a
    // device profile read starts the fleet.
    if matches!(call.route, Route::DeviceProfiles | Route::DeviceProfile(_)) {
        st.read_fleet();
    } else {
        st.tick_fleet();
    }
    let mut live = lock(&st.store);
    // With a read lag, a read sees an older tenant (a copy of a snapshot: the option is for tests); a
    // write always acts on the live one.
    let mut lagged;
    let writing = *call.method != Method::GET;
    let store: &mut crate::store::Store = match st.lagged_view(settings.read_lag_ms).filter(|_| !writing) {
        Some(view) => {
            lagged = (*view).clone();
            &mut lagged
        }
        None => {
            if writing {
                st.before_write(&live, settings.read_lag_ms);
            }
            &mut live
        }
    };
    let reply = dispatch_on(st, settings, store, call, entry, now);
    if writing {
        st.after_write(&live, settings.read_lag_ms);
    }
    reply
}

fn dispatch_on(
    st: &Shared,
    settings: &crate::state::Settings,
    store: &mut crate::store::Store,
    call: Call<'_>,
    entry: &mut LogEntry,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Reply, GraphError> {
    let Call {
        route,
        method,
        uri,
        headers,
        body,
    } = call;
    let list = |items: Vec<Value>| -> Result<Reply, GraphError> {
        let q = Query::parse(uri.query())?;
        crate::odata::check_orderby(&items, &q)?;
        Ok(Reply::Json(
            StatusCode::OK,
            collection(items, &q, settings.page_size, &self_url(headers, uri.path())),
        ))
    };
    let list_refs = |store: &crate::store::Store,
                     refs: Box<dyn Iterator<Item = (&str, AssetKind)> + '_>|
     -> Result<Reply, GraphError> {
        let q = Query::parse(uri.query())?;
        let body = crate::odata::collection_with(
            refs,
            &q,
            settings.page_size,
            &self_url(headers, uri.path()),
            |(id, kind)| store.render_asset_ref(id, *kind),
        )?;
        Ok(Reply::Json(StatusCode::OK, body))
    };
    let audience_id = |store: &crate::store::Store, of: &AudienceOf| -> Result<(String, bool), GraphError> {
        match of {
            AudienceOf::Deployment(d) => store.deployment_audience_id(d),
            AudienceOf::Audience(a) => store.audience(a).map(|a| (a.id.clone(), false)),
        }
    };
    match (route, method.clone()) {
        (Route::CatalogEntries, _) => {
            let q = Query::parse(uri.query())?;
            let expand = q.expands("productRevisions");
            let items = lock(&st.catalog)
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    if !expand && let Some(o) = e.as_object_mut() {
                        o.remove("productRevisions");
                    }
                    e
                })
                .collect();
            list(items)
        }
        (Route::CatalogCount, _) => {
            let q = Query::parse(uri.query())?;
            let n = lock(&st.catalog)
                .iter()
                .filter(|e| q.filter.as_ref().is_none_or(|f| crate::odata::matches(f, e)))
                .count();
            Ok(Reply::Text(n.to_string()))
        }
        (Route::CatalogEntry(id), _) => {
            let e = lock(&st.catalog)
                .iter()
                .find(|e| e["id"] == id.as_str())
                .cloned()
                .ok_or_else(|| GraphError::not_found("catalogEntry", &id))?;
            Ok(Reply::Json(StatusCode::OK, e))
        }
        (Route::Deployments, Method::GET) => {
            if settings.refuse_deployment_filter && Query::parse(uri.query())?.filter.is_some() {
                return Err(GraphError::bad_request(
                    "Query option 'Filter' is not allowed. To allow it, set the 'AllowedQueryOptions' property on EnableQueryAttribute or QueryValidationSettings.",
                ));
            }
            list(store.list_deployments(now))
        }
        (Route::Deployments, _) => store.create_deployment(body, &lock(&st.catalog), now),
        (Route::DeploymentsCount, _) => {
            let q = Query::parse(uri.query())?;
            let n = store
                .list_deployments(now)
                .iter()
                .filter(|d| q.filter.as_ref().is_none_or(|f| crate::odata::matches(f, d)))
                .count();
            Ok(Reply::Text(n.to_string()))
        }
        (Route::Deployment(id), Method::GET) => {
            let d = store.deployment(&id)?;
            Ok(Reply::Json(StatusCode::OK, store.render_deployment(d, now)))
        }
        (Route::Deployment(id), Method::PATCH) => store.update_deployment(&id, body, now),
        (Route::Deployment(id), _) => store.delete_deployment(&id),
        (Route::AudienceGet(of), _) => {
            let (aid, _) = audience_id(store, &of)?;
            Ok(Reply::Json(
                StatusCode::OK,
                json!({"@odata.type": format!("#{}deploymentAudience", crate::odata::NS), "id": aid}),
            ))
        }
        (Route::AudienceList(of, exclusions), _) => {
            let (aid, intune) = audience_id(store, &of)?;
            let q = Query::parse(uri.query())?;
            if !settings.audience_client_paging && (q.count || q.skip > 0 || q.top.is_some()) {
                return Err(GraphError::bad_request(
                    "Client-driven paging is not supported for deployment audience members and exclusions: only $skiptoken paging is (follow @odata.nextLink); $count, $skip and $top are not allowed.",
                ));
            }
            if intune {
                return Err(GraphError::new(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "Requested resource 'deployment audience' not found.",
                ));
            }
            let refs = store.audience_collection(&aid, exclusions, settings.audience_404_when_empty)?;
            list_refs(store, refs)
        }
        (Route::AudienceUpdate(of, by_id), _) => {
            let (aid, intune) = audience_id(store, &of)?;
            let changes = validate::audience_changes(body, by_id)?;
            entry.assets = changes.count();
            validate::check_cap(changes.count(), settings.max_assets_per_request)?;
            if intune {
                // The documented known issue: accepted, but nothing changes.
                return Ok(Reply::Empty(StatusCode::ACCEPTED));
            }
            store.update_audience(&aid, &changes, &settings.device_errors)
        }
        (Route::ApplicableContent(of), _) => {
            // Applicability needs device scan data the emulator does not have: always an empty collection.
            audience_id(store, &of)?;
            list(Vec::new())
        }
        (Route::Audiences, Method::GET) => {
            let items = store.audiences.values().map(|a| json!({"@odata.type": format!("#{}deploymentAudience", crate::odata::NS), "id": a.id})).collect();
            list(items)
        }
        (Route::Audiences, Method::POST) => {
            // A deployment audience is created empty: a body may carry only OData annotations.
            match body {
                Value::Null => {}
                Value::Object(o) => {
                    if let Some(k) = o.keys().find(|k| !k.starts_with('@')) {
                        return Err(GraphError::bad_request(format!(
                            "The property '{}' does not exist on type 'microsoft.graph.windowsUpdates.deploymentAudience'.",
                            k.chars().take(80).collect::<String>()
                        )));
                    }
                }
                _ => return Err(GraphError::bad_request("The request body must be a JSON object.")),
            }
            Ok(store.create_audience())
        }
        (Route::Audiences, m) => Err(method_not_allowed(&m)),
        (Route::AudienceDelete(id), Method::GET) => {
            let a = store.audience(&id)?;
            Ok(Reply::Json(
                StatusCode::OK,
                json!({"@odata.type": format!("#{}deploymentAudience", crate::odata::NS), "id": a.id}),
            ))
        }
        (Route::AudienceDelete(id), _) => store.delete_audience(&id),
        (Route::DeviceProfiles, _) => {
            // Rendered a page at a time: a tenant of 100,000 devices is not rebuilt for every page.
            let fleet = lock(&st.fleet);
            let q = Query::parse(uri.query())?;
            let body = crate::odata::collection_with(
                fleet.reporting(),
                &q,
                settings.page_size,
                &self_url(headers, uri.path()),
                |(id, d)| crate::fleet::Fleet::profile(id, d),
            )?;
            Ok(Reply::Json(StatusCode::OK, body))
        }
        (Route::DeviceProfile(id), _) => lock(&st.fleet)
            .profile_of(&id)
            .map(|p| Reply::Json(StatusCode::OK, p))
            .ok_or_else(|| {
                GraphError::new(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("The device profile '{id}' was not found."),
                )
            }),
        (Route::Assets(kind), Method::GET) => {
            // Rendered a page at a time, as device profiles are: the progress poll pages through every
            // device asset of the tenant.
            let q = Query::parse(uri.query())?;
            let assets = store.assets.values().filter(|a| kind.is_none_or(|k| a.kind == k));
            let body = crate::odata::collection_with(
                assets,
                &q,
                settings.page_size,
                &self_url(headers, uri.path()),
                |a| store.render_asset(a),
            )?;
            Ok(Reply::Json(StatusCode::OK, body))
        }
        (Route::Assets(_), _) => {
            let ty = body.get("@odata.type").and_then(Value::as_str).unwrap_or("");
            if AssetKind::parse(ty) != Some(AssetKind::Group) {
                return Err(GraphError::bad_request(
                    "Only an updatableAssetGroup can be created; set '@odata.type' to '#microsoft.graph.windowsUpdates.updatableAssetGroup'.",
                )
                .with_target("@odata.type"));
            }
            if let Some(k) = body
                .as_object()
                .and_then(|o| o.keys().find(|k| !k.starts_with("@odata.") && *k != "id"))
            {
                return Err(GraphError::bad_request(format!("The property '{k}' does not exist on type 'microsoft.graph.windowsUpdates.updatableAssetGroup'.")).with_target(k.clone()));
            }
            Ok(store.create_group())
        }
        (Route::Enroll { enroll, by_id }, _) => {
            let obj = body
                .as_object()
                .ok_or_else(|| GraphError::bad_request("The request body must be an object."))?;
            let category = obj.get("updateCategory").and_then(Value::as_str).unwrap_or("");
            if !["feature", "quality", "driver"].contains(&category) {
                return Err(GraphError::bad_request(format!(
                    "'{category}' is not a valid updateCategory (feature, quality, driver)."
                ))
                .with_target("updateCategory"));
            }
            let refs = asset_refs(obj, by_id, settings, entry)?;
            store.enroll(category, &refs, enroll, &settings.device_errors)
        }
        (Route::Asset(id), Method::GET) => {
            let a = store.asset(&id)?;
            Ok(Reply::Json(StatusCode::OK, store.render_asset(a)))
        }
        (Route::Asset(id), _) => {
            if settings.refuse_group_delete_in_use
                && let Some(a) = store
                    .audiences
                    .values()
                    .find(|a| a.members.contains_key(&id) || a.exclusions.contains_key(&id))
            {
                return Err(GraphError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "The updatableAssetGroup '{id}' is in use by deploymentAudience '{}'.",
                        a.id
                    ),
                ));
            }
            store.delete_asset(&id)
        }
        (Route::GroupMembers(id), _) => {
            let refs = store.group_members(&id)?;
            list_refs(store, refs)
        }
        (Route::GroupChange { id, add, by_id }, _) => {
            let obj = body
                .as_object()
                .ok_or_else(|| GraphError::bad_request("The request body must be an object."))?;
            let refs = asset_refs(obj, by_id, settings, entry)?;
            store.change_group_members(&id, &refs, add, &settings.device_errors)
        }
    }
}

/// The assets an enrollment or group change names (`ids` with `memberEntityType`, or `assets`), counted
/// into the log entry and held to the per-request cap.
fn asset_refs(
    obj: &serde_json::Map<String, Value>,
    by_id: bool,
    settings: &crate::state::Settings,
    entry: &mut LogEntry,
) -> Result<Vec<crate::store::AssetRef>, GraphError> {
    let refs = if by_id {
        let kind = validate::member_entity_type(obj)?;
        validate::asset_ids(obj.get("ids"), "ids", kind)?
    } else {
        validate::asset_objects(obj.get("assets"), "assets")?
    };
    entry.assets = refs.len();
    validate::check_cap(refs.len(), settings.max_assets_per_request)?;
    Ok(refs)
}
