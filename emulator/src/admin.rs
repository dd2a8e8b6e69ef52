//! The admin API under `/_emulator`: request log, counts, state dump, reset, faults and settings at run
//! time. It is not part of Graph and is never faulted or authenticated.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::FaultConfig;
use crate::state::{Settings, Shared, lock};
use crate::store::Store;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/health", get(|| async { "ok" }))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/counts", get(counts))
        .route("/_emulator/state", get(state))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/faults", get(get_faults).put(put_faults))
        .route("/_emulator/settings", get(get_settings).put(put_settings))
        .route("/_emulator/tokens/revoke", post(revoke_tokens))
        .route("/_emulator/deployments/{id}/intune", post(mark_intune))
        .route("/_emulator/entraGroups/{id}", axum::routing::put(put_entra_group))
        .route("/_emulator/catalog/entries", post(publish_catalog_entry))
}

#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn requests(State(st): State<Arc<Shared>>, Query(q): Query<Since>) -> Json<Value> {
    let log = lock(&st.log);
    let since = q.since.unwrap_or(0);
    let entries: Vec<_> = log.entries.iter().filter(|e| e.seq >= since).collect();
    Json(json!({"requests": entries, "next": log.next_seq}))
}

async fn counts(State(st): State<Arc<Shared>>) -> Json<Value> {
    let log = lock(&st.log);
    Json(json!({"total": log.next_seq, "operations": log.counts}))
}

async fn state(State(st): State<Arc<Shared>>) -> Json<Value> {
    let store = lock(&st.store);
    let now = st.clock.utc();
    Json(json!({
        "deployments": store.list_deployments(now),
        "audiences": store.audiences,
        "assets": store.assets.values().map(|a| store.render_asset(a)).collect::<Vec<_>>(),
        "groups": store.assets.values().filter(|a| a.kind == crate::store::AssetKind::Group)
            .map(|a| json!({"id": a.id, "members": a.members})).collect::<Vec<_>>(),
        "intuneManaged": store.deployments.values().filter(|d| d.intune_managed).map(|d| &d.id).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
struct ResetQuery {
    #[serde(default)]
    log_only: bool,
}

async fn reset(State(st): State<Arc<Shared>>, Query(q): Query<ResetQuery>) -> StatusCode {
    if !q.log_only {
        let mut store = lock(&st.store);
        let seed = store.id_seed;
        let counter = store.id_counter;
        *store = Store::new(seed);
        // Ids stay unique across resets.
        store.id_counter = counter;
    }
    let mut log = lock(&st.log);
    log.entries.clear();
    log.counts.clear();
    drop(log);
    st.persist();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(st): State<Arc<Shared>>) -> Json<FaultConfig> {
    Json(lock(&st.faults).config.clone())
}

async fn put_faults(State(st): State<Arc<Shared>>, Json(config): Json<FaultConfig>) -> Response {
    if let Err(e) = config.validate() {
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    let mut faults = lock(&st.faults);
    if faults.config.seed != config.seed {
        faults.rng = crate::state::Rng::new(config.seed);
    }
    faults.config = config;
    StatusCode::NO_CONTENT.into_response()
}

/// Stands in for a client secret in what the admin API returns: it never returns one.
pub const REDACTED: &str = "(redacted)";

/// The settings, with every app's client secret replaced by [`REDACTED`].
async fn get_settings(State(st): State<Arc<Shared>>) -> Json<Settings> {
    let mut settings = lock(&st.settings).clone();
    for app in &mut settings.apps {
        if app.client_secret.is_some() {
            app.client_secret = Some(REDACTED.into());
        }
    }
    Json(settings)
}

/// Replaces the settings. An app sent back with the [`REDACTED`] secret keeps the secret it had, so
/// that a GET, an edit and a PUT do not lose it.
async fn put_settings(State(st): State<Arc<Shared>>, Json(mut settings): Json<Settings>) -> StatusCode {
    let mut current = lock(&st.settings);
    for app in &mut settings.apps {
        if app.client_secret.as_deref() == Some(REDACTED) {
            app.client_secret = current
                .apps
                .iter()
                .find(|a| a.tenant_id == app.tenant_id && a.client_id == app.client_id)
                .and_then(|a| a.client_secret.clone());
        }
    }
    *current = Settings {
        page_size: settings.page_size.max(1),
        max_assets_per_request: settings.max_assets_per_request.map(|c| c.max(1)),
        ..settings
    };
    StatusCode::NO_CONTENT
}

async fn revoke_tokens(State(st): State<Arc<Shared>>) -> StatusCode {
    lock(&st.tokens).clear();
    StatusCode::NO_CONTENT
}

async fn mark_intune(State(st): State<Arc<Shared>>, Path(id): Path<String>) -> StatusCode {
    match lock(&st.store).deployments.get_mut(&id) {
        Some(d) => {
            d.intune_managed = true;
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// Creates or replaces an Entra ID group (`{"devices": [...], "groups": [...]}`): the directory groups
/// a DeviceGroup may take its devices from.
/// Publishes a catalog entry (a new release), as the service's catalog grows.
async fn publish_catalog_entry(State(st): State<Arc<Shared>>, Json(entry): Json<Value>) -> Response {
    if !entry["id"].is_string() || !entry["releaseDateTime"].is_string() {
        return (
            StatusCode::BAD_REQUEST,
            "a catalog entry needs an id and a releaseDateTime",
        )
            .into_response();
    }
    st.publish(entry);
    StatusCode::CREATED.into_response()
}

async fn put_entra_group(
    State(st): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(group): Json<crate::store::EntraGroup>,
) -> StatusCode {
    lock(&st.store).entra_groups.insert(id, group);
    st.persist();
    StatusCode::NO_CONTENT
}
