//! Request-body rules of the deployment service: closed types, content forms, expedite constraints and
//! action bodies. Every rejection is a 400 whose message names the property.

use serde_json::{Map, Value, json};

use crate::error::GraphError;
use crate::odata::{NS, is_of, short_type};
use crate::store::{AssetKind, AssetRef};

type Obj = Map<String, Value>;

fn unknown_property(prop: &str, ty: &str) -> GraphError {
    GraphError::bad_request(format!("The property '{prop}' does not exist on type '{NS}{ty}'. Make sure to only use property names that are defined by the type."))
        .with_target(prop)
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Obj, GraphError> {
    v.as_object()
        .ok_or_else(|| GraphError::bad_request(format!("'{what}' must be an object.")).with_target(what))
}

/// Rejects properties a closed type does not define.
fn closed(obj: &Obj, ty: &str, allowed: &[&str]) -> Result<(), GraphError> {
    for k in obj.keys() {
        if k.starts_with("@odata.") || allowed.contains(&k.as_str()) {
            continue;
        }
        return Err(unknown_property(k, ty));
    }
    Ok(())
}

fn odata_type(obj: &Obj) -> Option<&str> {
    obj.get("@odata.type").and_then(Value::as_str).map(short_type)
}

fn opt_bool(obj: &Obj, key: &str, path: &str) -> Result<Option<bool>, GraphError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(
            GraphError::bad_request(format!("'{path}' must be a boolean, got {other}.")).with_target(path),
        ),
    }
}

fn opt_datetime(obj: &Obj, key: &str, path: &str) -> Result<Option<String>, GraphError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_date(s).map(Some).ok_or_else(|| {
            GraphError::bad_request(format!(
                "Cannot convert the literal '{s}' of '{path}' to Edm.DateTimeOffset."
            ))
            .with_target(path)
        }),
        Some(other) => Err(GraphError::bad_request(format!(
            "'{path}' must be a DateTimeOffset string, got {other}."
        ))
        .with_target(path)),
    }
}

/// Parses `YYYY-MM-DD` or an RFC 3339 timestamp into the canonical `YYYY-MM-DDTHH:MM:SSZ` form.
pub fn parse_date(s: &str) -> Option<String> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(format!("{}T00:00:00Z", d.format("%Y-%m-%d")));
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| {
        t.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    })
}

fn is_iso_duration(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let Some(rest) = s.strip_prefix('P') else {
        return false;
    };
    let (date, time) = rest.split_once('T').map_or((rest, None), |(d, t)| (d, Some(t)));
    let ok_part = |p: &str, units: &[char]| {
        let mut digits = false;
        for c in p.chars() {
            if c.is_ascii_digit() || c == '.' {
                digits = true;
            } else if units.contains(&c) && digits {
                digits = false;
            } else {
                return false;
            }
        }
        !digits
    };
    !rest.is_empty()
        && ok_part(date, &['Y', 'M', 'W', 'D'])
        && time.is_none_or(|t| !t.is_empty() && ok_part(t, &['H', 'M', 'S']))
}

pub struct ValidCreate {
    pub content: Value,
    pub settings: Value,
    pub requested: Option<String>,
    pub audience_id: Option<String>,
}

pub struct ValidPatch {
    pub settings: Option<Value>,
    pub requested: Option<String>,
}

/// Validates `POST /deployments` and returns the content and settings as the service echoes them.
pub fn deployment_create(body: &Value, catalog: &[Value]) -> Result<ValidCreate, GraphError> {
    let obj = object(body, "deployment")?;
    closed(
        obj,
        "deployment",
        &[
            "id",
            "content",
            "settings",
            "state",
            "audience",
            "createdDateTime",
            "lastModifiedDateTime",
        ],
    )?;
    let content = obj.get("content").filter(|c| !c.is_null()).ok_or_else(|| {
        GraphError::bad_request("The 'content' property is required.").with_target("content")
    })?;
    let settings = normalize_settings(obj.get("settings").unwrap_or(&Value::Null), None)?;
    let (content, entry) = normalize_content(content, catalog)?;
    check_expedite(&settings, entry)?;
    let requested = match obj.get("state") {
        None | Some(Value::Null) => None,
        Some(s) => requested_state(s)?,
    };
    let audience_id = match obj.get("audience") {
        None | Some(Value::Null) => None,
        Some(a) => Some(
            object(a, "audience")?
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GraphError::bad_request("'audience.id' is required when 'audience' is given.")
                        .with_target("audience.id")
                })?
                .to_string(),
        ),
    };
    Ok(ValidCreate {
        content,
        settings,
        requested,
        audience_id,
    })
}

/// Validates `PATCH /deployments/{id}`: only `state` and `settings` are writable.
pub fn deployment_patch(body: &Value, current_settings: &Value) -> Result<ValidPatch, GraphError> {
    let obj = object(body, "deployment")?;
    closed(
        obj,
        "deployment",
        &[
            "id",
            "content",
            "settings",
            "state",
            "audience",
            "createdDateTime",
            "lastModifiedDateTime",
        ],
    )?;
    for ro in ["content", "audience", "createdDateTime", "lastModifiedDateTime"] {
        if obj.get(ro).is_some_and(|v| !v.is_null()) {
            return Err(GraphError::bad_request(format!(
                "The property '{ro}' cannot be changed after the deployment is created."
            ))
            .with_target(ro));
        }
    }
    let settings = match obj.get("settings") {
        None | Some(Value::Null) => None,
        Some(s) => {
            let merged = normalize_settings(s, Some(current_settings))?;
            let expedite = merged.get("expedite").cloned().unwrap_or(Value::Null);
            if expedite.get("isReadinessTest") == Some(&Value::Bool(true))
                && expedite.get("isExpedited") != Some(&Value::Bool(true))
            {
                return Err(readiness_without_expedite());
            }
            Some(merged)
        }
    };
    let requested = match obj.get("state") {
        None | Some(Value::Null) => None,
        Some(s) => requested_state(s)?,
    };
    Ok(ValidPatch { settings, requested })
}

fn readiness_without_expedite() -> GraphError {
    GraphError::bad_request(
        "'settings.expedite.isReadinessTest' can only be true when 'settings.expedite.isExpedited' is true.",
    )
    .with_target("settings.expedite.isReadinessTest")
}

fn requested_state(state: &Value) -> Result<Option<String>, GraphError> {
    let s = object(state, "state")?;
    closed(
        s,
        "deploymentState",
        &[
            "requestedValue",
            "effectiveValue",
            "value",
            "reasons",
            "effectiveSinceDate",
        ],
    )?;
    match s.get("requestedValue") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if v == "none" || v == "paused" => Ok(Some(v.clone())),
        Some(other) => Err(GraphError::bad_request(format!(
            "'{other}' is not a valid value for 'state.requestedValue'; use 'none' or 'paused'."
        ))
        .with_target("state.requestedValue")),
    }
}

/// Returns the echoed content and, for catalog content and legacy expedites, the catalog entry it names.
fn normalize_content<'a>(
    content: &Value,
    catalog: &'a [Value],
) -> Result<(Value, Option<&'a Value>), GraphError> {
    let c = object(content, "content")?;
    let ty = odata_type(c).ok_or_else(|| {
        GraphError::bad_request(
            "'content' needs an '@odata.type' (catalogContent or expeditedQualityUpdateReference).",
        )
        .with_target("content")
    })?;
    match ty {
        "catalogContent" => {
            closed(c, "catalogContent", &["catalogEntry"])?;
            let entry = c.get("catalogEntry").and_then(Value::as_object).ok_or_else(|| {
                GraphError::bad_request("'content.catalogEntry' is required for catalogContent.")
                    .with_target("content.catalogEntry")
            })?;
            let id = entry.get("id").and_then(Value::as_str).ok_or_else(|| {
                GraphError::bad_request("'content.catalogEntry.id' is required.")
                    .with_target("content.catalogEntry.id")
            })?;
            let found = catalog.iter().find(|e| e["id"] == id).ok_or_else(|| {
                GraphError::bad_request(format!("The catalog entry '{id}' does not exist."))
                    .with_target("content.catalogEntry.id")
                    .with_detail(
                        "CatalogEntryNotFound",
                        format!("No catalog entry has id '{id}'."),
                        Some("content.catalogEntry.id"),
                    )
            })?;
            let echoed = json!({
                "@odata.type": format!("#{NS}catalogContent"),
                "catalogEntry": {"@odata.type": found["@odata.type"], "id": id},
            });
            Ok((echoed, Some(found)))
        }
        "expeditedQualityUpdateReference" | "qualityUpdateReference" => {
            closed(
                c,
                ty,
                &[
                    "releaseDate",
                    "releaseDateTime",
                    "classification",
                    "equivalentContent",
                ],
            )?;
            let key = if c.contains_key("releaseDateTime") {
                "releaseDateTime"
            } else {
                "releaseDate"
            };
            let date = opt_datetime(c, key, &format!("content.{key}"))?.ok_or_else(|| {
                GraphError::bad_request("'content.releaseDate' (or 'releaseDateTime') is required.")
                    .with_target("content.releaseDate")
            })?;
            let classification = c
                .get("classification")
                .and_then(Value::as_str)
                .unwrap_or("security");
            if !["security", "all", "nonSecurity"].contains(&classification) {
                return Err(GraphError::bad_request(format!(
                    "'{classification}' is not a valid qualityUpdateClassification."
                ))
                .with_target("content.classification"));
            }
            let equivalent = c
                .get("equivalentContent")
                .and_then(Value::as_str)
                .unwrap_or("latestSecurity");
            if !["none", "latestSecurity"].contains(&equivalent) {
                return Err(GraphError::bad_request(format!(
                    "'{equivalent}' is not a valid equivalentContentOption."
                ))
                .with_target("content.equivalentContent"));
            }
            let day = &date[..10];
            let entry = catalog.iter().find(|e| {
                is_of(
                    e["@odata.type"].as_str().unwrap_or(""),
                    "qualityUpdateCatalogEntry",
                ) && e["qualityUpdateClassification"] == "security"
                    && e["releaseDateTime"].as_str().is_some_and(|r| r.starts_with(day))
            });
            let Some(entry) = entry else {
                return Err(
                    GraphError::bad_request(format!("No security update was released on {day}."))
                        .with_target(format!("content.{key}")),
                );
            };
            let mut echoed = json!({
                "@odata.type": format!("#{NS}{ty}"),
                "releaseDate": date,
                "releaseDateTime": date,
                "classification": classification,
            });
            if ty == "expeditedQualityUpdateReference" {
                echoed["equivalentContent"] = json!(equivalent);
            }
            Ok((
                echoed,
                if ty == "expeditedQualityUpdateReference" {
                    Some(entry)
                } else {
                    None
                },
            ))
        }
        "featureUpdateReference" => {
            closed(c, ty, &["version"])?;
            let v = c
                .get("version")
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    GraphError::bad_request("'content.version' is required for featureUpdateReference.")
                        .with_target("content.version")
                })?;
            Ok((
                json!({"@odata.type": format!("#{NS}featureUpdateReference"), "version": v}),
                None,
            ))
        }
        other => Err(
            GraphError::bad_request(format!("'{other}' is not a deployable content type."))
                .with_target("content.@odata.type"),
        ),
    }
}

fn check_expedite(settings: &Value, entry: Option<&Value>) -> Result<(), GraphError> {
    let legacy = settings["@odata.type"]
        .as_str()
        .is_some_and(|t| t.ends_with("windowsDeploymentSettings"));
    let expedite = &settings["expedite"];
    let expedited = expedite["isExpedited"] == true;
    if expedite["isReadinessTest"] == true && !expedited {
        return Err(readiness_without_expedite());
    }
    if expedited {
        let Some(entry) = entry else {
            return Err(
                GraphError::bad_request("Only quality update content can be expedited.")
                    .with_target("settings.expedite.isExpedited"),
            );
        };
        if !is_of(
            entry["@odata.type"].as_str().unwrap_or(""),
            "qualityUpdateCatalogEntry",
        ) || entry["isExpeditable"] != true
        {
            return Err(GraphError::bad_request(format!(
                "The catalog entry '{}' ({}) cannot be expedited: its isExpeditable is false.",
                entry["id"].as_str().unwrap_or(""),
                entry["displayName"].as_str().unwrap_or("")
            ))
            .with_target("settings.expedite.isExpedited")
            .with_detail(
                "ContentNotExpeditable",
                "The content is not expeditable.",
                Some("content"),
            ));
        }
    }
    let _ = legacy;
    Ok(())
}

/// Validates settings and returns them as the service echoes them. With `current`, the given properties
/// replace the current ones (PATCH semantics).
fn normalize_settings(settings: &Value, current: Option<&Value>) -> Result<Value, GraphError> {
    let mut out = match current {
        Some(c) => c.as_object().cloned().unwrap_or_default(),
        None => {
            let mut m = Obj::new();
            for k in [
                "schedule",
                "monitoring",
                "contentApplicability",
                "userExperience",
                "expedite",
            ] {
                m.insert(k.into(), Value::Null);
            }
            m.insert("@odata.type".into(), json!(format!("#{NS}deploymentSettings")));
            m
        }
    };
    if settings.is_null() {
        return Ok(Value::Object(out));
    }
    let s = object(settings, "settings")?;
    let ty = odata_type(s).unwrap_or("deploymentSettings");
    if ty != "deploymentSettings" && ty != "windowsDeploymentSettings" {
        return Err(
            GraphError::bad_request(format!("'{ty}' is not a deploymentSettings type."))
                .with_target("settings.@odata.type"),
        );
    }
    if ty == "windowsDeploymentSettings" {
        out.insert(
            "@odata.type".into(),
            json!(format!("#{NS}windowsDeploymentSettings")),
        );
    }
    closed(
        s,
        ty,
        &[
            "contentApplicability",
            "expedite",
            "monitoring",
            "schedule",
            "userExperience",
            "rollout",
            "safeguard",
        ],
    )?;
    for (k, v) in s {
        if k.starts_with("@odata.") {
            continue;
        }
        let path = format!("settings.{k}");
        let normalized = if v.is_null() {
            Value::Null
        } else {
            match k.as_str() {
                "expedite" => {
                    let e = object(v, &path)?;
                    closed(e, "expediteSettings", &["isExpedited", "isReadinessTest"])?;
                    json!({
                        "isExpedited": opt_bool(e, "isExpedited", "settings.expedite.isExpedited")?.unwrap_or(false),
                        "isReadinessTest": opt_bool(e, "isReadinessTest", "settings.expedite.isReadinessTest")?.unwrap_or(false),
                    })
                }
                "userExperience" => {
                    let u = object(v, &path)?;
                    closed(
                        u,
                        "userExperienceSettings",
                        &["daysUntilForcedReboot", "isHotpatchEnabled", "offerAsOptional"],
                    )?;
                    let mut m = Obj::new();
                    if let Some(d) = u.get("daysUntilForcedReboot").filter(|d| !d.is_null()) {
                        let n = d.as_i64().filter(|n| (0..=i64::from(i32::MAX)).contains(n)).ok_or_else(|| {
                            GraphError::bad_request(format!("'settings.userExperience.daysUntilForcedReboot' must be a non-negative Int32, got {d}."))
                                .with_target("settings.userExperience.daysUntilForcedReboot")
                        })?;
                        m.insert("daysUntilForcedReboot".into(), json!(n));
                    }
                    for b in ["isHotpatchEnabled", "offerAsOptional"] {
                        if let Some(val) = opt_bool(u, b, &format!("settings.userExperience.{b}"))? {
                            m.insert(b.into(), json!(val));
                        }
                    }
                    Value::Object(m)
                }
                "monitoring" => {
                    let m = object(v, &path)?;
                    closed(m, "monitoringSettings", &["monitoringRules"])?;
                    let rules = m
                        .get("monitoringRules")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for (i, r) in rules.iter().enumerate() {
                        let r = object(r, "settings.monitoring.monitoringRules")?;
                        closed(r, "monitoringRule", &["signal", "threshold", "action"])?;
                        let p = format!("settings.monitoring.monitoringRules[{i}]");
                        if !matches!(
                            r.get("signal").and_then(Value::as_str),
                            Some("rollback" | "ineligible")
                        ) {
                            return Err(GraphError::bad_request(format!(
                                "'{p}.signal' must be rollback or ineligible."
                            ))
                            .with_target(format!("{p}.signal")));
                        }
                        if !matches!(
                            r.get("action").and_then(Value::as_str),
                            Some("alertError" | "pauseDeployment" | "offerFallback")
                        ) {
                            return Err(GraphError::bad_request(format!(
                                "'{p}.action' must be alertError, pauseDeployment or offerFallback."
                            ))
                            .with_target(format!("{p}.action")));
                        }
                        if let Some(t) = r.get("threshold").filter(|t| !t.is_null())
                            && !t.as_i64().is_some_and(|t| (1..=100).contains(&t))
                        {
                            return Err(GraphError::bad_request(format!(
                                "'{p}.threshold' must be between 1 and 100, got {t}."
                            ))
                            .with_target(format!("{p}.threshold")));
                        }
                    }
                    json!({"monitoringRules": rules})
                }
                "schedule" => {
                    let sc = object(v, &path)?;
                    closed(sc, "scheduleSettings", &["startDateTime", "gradualRollout"])?;
                    let start = opt_datetime(sc, "startDateTime", "settings.schedule.startDateTime")?;
                    let mut m = Obj::new();
                    m.insert("startDateTime".into(), start.map_or(Value::Null, Value::String));
                    if let Some(g) = sc.get("gradualRollout").filter(|g| !g.is_null()) {
                        let go = object(g, "settings.schedule.gradualRollout")?;
                        closed(
                            go,
                            "gradualRolloutSettings",
                            &[
                                "durationBetweenOffers",
                                "devicesPerOffer",
                                "devicePerOffer",
                                "endDateTime",
                                "durationUntilDeploymentEnd",
                            ],
                        )?;
                        for key in ["durationBetweenOffers", "durationUntilDeploymentEnd"] {
                            if let Some(d) = go.get(key).filter(|d| !d.is_null())
                                && !d.as_str().is_some_and(is_iso_duration)
                            {
                                return Err(GraphError::bad_request(format!("'settings.schedule.gradualRollout.{key}' must be an ISO 8601 duration such as P1D, got {d}.")).with_target(format!("settings.schedule.gradualRollout.{key}")));
                            }
                        }
                        opt_datetime(go, "endDateTime", "settings.schedule.gradualRollout.endDateTime")?;
                        m.insert("gradualRollout".into(), g.clone());
                    }
                    Value::Object(m)
                }
                _ => v.clone(),
            }
        };
        out.insert(k.clone(), normalized);
    }
    Ok(Value::Object(out))
}

/// The four lists of an `updateAudience` or `updateAudienceById` body.
#[derive(Default)]
pub struct AudienceChanges {
    pub add_members: Vec<AssetRef>,
    pub remove_members: Vec<AssetRef>,
    pub add_exclusions: Vec<AssetRef>,
    pub remove_exclusions: Vec<AssetRef>,
}

impl AudienceChanges {
    pub fn fields(&self) -> [(&'static str, &[AssetRef]); 4] {
        [
            ("addMembers", &self.add_members),
            ("removeMembers", &self.remove_members),
            ("addExclusions", &self.add_exclusions),
            ("removeExclusions", &self.remove_exclusions),
        ]
    }

    pub fn all(&self) -> impl Iterator<Item = &AssetRef> {
        self.add_members
            .iter()
            .chain(&self.remove_members)
            .chain(&self.add_exclusions)
            .chain(&self.remove_exclusions)
    }

    pub fn count(&self) -> usize {
        self.all().count()
    }
}

/// Parses a list of typed asset objects (`[{"@odata.type": "#…azureADDevice", "id": "…"}]`).
pub fn asset_objects(v: Option<&Value>, field: &str) -> Result<Vec<AssetRef>, GraphError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let arr = v
        .as_array()
        .ok_or_else(|| GraphError::bad_request(format!("'{field}' must be an array.")).with_target(field))?;
    arr.iter()
        .enumerate()
        .map(|(i, item)| {
            let o = object(item, field)?;
            let ty = odata_type(o).ok_or_else(|| {
                GraphError::bad_request(format!("'{field}[{i}]' needs an '@odata.type'.")).with_target(format!("{field}[{i}]"))
            })?;
            let kind = AssetKind::parse(ty).ok_or_else(|| {
                GraphError::bad_request(format!("'{ty}' in '{field}[{i}]' is not an updatableAsset type (azureADDevice or updatableAssetGroup)."))
                    .with_target(format!("{field}[{i}]"))
            })?;
            let id = id_string(o.get("id"), &format!("{field}[{i}].id"))?;
            Ok(AssetRef { id, kind })
        })
        .collect()
}

fn id_string(v: Option<&Value>, path: &str) -> Result<String, GraphError> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => Ok(s.clone()),
        _ => {
            Err(GraphError::bad_request(format!("'{path}' must be a non-empty string id.")).with_target(path))
        }
    }
}

/// Parses `ids` lists of a ById action, typed by `memberEntityType`.
pub fn asset_ids(v: Option<&Value>, field: &str, kind: AssetKind) -> Result<Vec<AssetRef>, GraphError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let arr = v.as_array().ok_or_else(|| {
        GraphError::bad_request(format!("'{field}' must be an array of ids.")).with_target(field)
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, id)| {
            Ok(AssetRef {
                id: id_string(Some(id), &format!("{field}[{i}]"))?,
                kind,
            })
        })
        .collect()
}

pub fn member_entity_type(obj: &Obj) -> Result<AssetKind, GraphError> {
    let ty = obj.get("memberEntityType").and_then(Value::as_str).ok_or_else(|| {
        GraphError::bad_request("'memberEntityType' is required (#microsoft.graph.windowsUpdates.azureADDevice or updatableAssetGroup).")
            .with_target("memberEntityType")
    })?;
    AssetKind::parse(ty).ok_or_else(|| {
        GraphError::bad_request(format!("'{ty}' is not a valid memberEntityType."))
            .with_target("memberEntityType")
    })
}

/// Parses an `updateAudience` (`by_id == false`) or `updateAudienceById` body.
pub fn audience_changes(body: &Value, by_id: bool) -> Result<AudienceChanges, GraphError> {
    let obj = object(body, "body")?;
    let keys = ["addMembers", "removeMembers", "addExclusions", "removeExclusions"];
    if by_id {
        closed(
            obj,
            "updateAudienceById",
            &[&keys[..], &["memberEntityType"]].concat(),
        )?;
        let kind = member_entity_type(obj)?;
        Ok(AudienceChanges {
            add_members: asset_ids(obj.get(keys[0]), keys[0], kind)?,
            remove_members: asset_ids(obj.get(keys[1]), keys[1], kind)?,
            add_exclusions: asset_ids(obj.get(keys[2]), keys[2], kind)?,
            remove_exclusions: asset_ids(obj.get(keys[3]), keys[3], kind)?,
        })
    } else {
        closed(obj, "updateAudience", &keys)?;
        Ok(AudienceChanges {
            add_members: asset_objects(obj.get(keys[0]), keys[0])?,
            remove_members: asset_objects(obj.get(keys[1]), keys[1])?,
            add_exclusions: asset_objects(obj.get(keys[2]), keys[2])?,
            remove_exclusions: asset_objects(obj.get(keys[3]), keys[3])?,
        })
    }
}

/// Rejects a write carrying more assets than the configured cap.
/// The per-request asset cap, when one is set (`--max-assets-per-request`): 413, since the reference
/// documents no limit and so no error for one; a client may split such a request without blaming an asset.
pub fn check_cap(count: usize, cap: Option<usize>) -> Result<(), GraphError> {
    let Some(cap) = cap else { return Ok(()) };
    if count > cap {
        return Err(GraphError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("The request contains {count} assets; at most {cap} are allowed in one request."),
        )
        .with_detail(
            "TooManyAssets",
            format!("Split the request into requests of at most {cap} assets."),
            Some("assets"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for ok in ["P1D", "PT12H", "P1DT2H30M", "-P2D", "PT0.5S"] {
            assert!(is_iso_duration(ok), "{ok}");
        }
        for bad in ["P", "1D", "PT", "P1H", "PXD", ""] {
            assert!(!is_iso_duration(bad), "{bad}");
        }
    }

    #[test]
    fn dates_accept_both_forms() {
        assert_eq!(parse_date("2026-01-13").as_deref(), Some("2026-01-13T00:00:00Z"));
        assert_eq!(
            parse_date("2026-01-13T00:00:00Z").as_deref(),
            Some("2026-01-13T00:00:00Z")
        );
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
    }
}
