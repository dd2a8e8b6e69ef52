//! Devices and updatable assets: a device registered on first use, groups and their members,
//! enrollment, and the devices an audience offers an update to (what the simulated fleet exposes).

use std::collections::{BTreeMap, BTreeSet};

use http::StatusCode;
use serde_json::{Value, json};

use super::{Asset, AssetKind, AssetRef, EntraGroup, Reply, Store, is_guid};
use crate::error::GraphError;
use crate::odata::NS;

impl Store {
    /// The devices an audience offers an update to (lower case): member devices and the devices of
    /// member groups, less exclusions (devices, and the devices of excluded groups).
    pub fn offered_devices(&self, audience_id: &str) -> BTreeSet<String> {
        let Some(a) = self.audiences.get(audience_id) else {
            return BTreeSet::new();
        };
        let expand = |refs: &BTreeMap<String, AssetKind>| -> BTreeSet<String> {
            let mut out = BTreeSet::new();
            for (id, kind) in refs {
                match kind {
                    AssetKind::Device => {
                        out.insert(id.to_lowercase());
                    }
                    AssetKind::Group => {
                        if let Ok(g) = self.group(id) {
                            out.extend(g.members.iter().map(|m| m.to_lowercase()));
                        }
                    }
                }
            }
            out
        };
        let excluded = expand(&a.exclusions);
        expand(&a.members)
            .into_iter()
            .filter(|d| !excluded.contains(d))
            .collect()
    }

    /// The distinct devices of an Entra group and every group nested in it (cycles are followed once).
    pub fn transitive_devices(&self, id: &str) -> Option<Vec<String>> {
        let root = self.entra_groups.get(id)?;
        let mut seen_groups = std::collections::BTreeSet::from([id.to_string()]);
        let mut devices = std::collections::BTreeSet::new();
        let mut todo: Vec<&EntraGroup> = vec![root];
        while let Some(g) = todo.pop() {
            devices.extend(g.devices.iter().cloned());
            for nested in &g.groups {
                if seen_groups.insert(nested.clone())
                    && let Some(n) = self.entra_groups.get(nested)
                {
                    todo.push(n);
                }
            }
        }
        Some(devices.into_iter().collect())
    }

    pub fn render_asset_ref(&self, id: &str, kind: AssetKind) -> Value {
        match (kind, self.assets.get(id)) {
            (AssetKind::Device, Some(a)) => self.render_asset(a),
            _ => json!({"@odata.type": format!("#{NS}{}", kind.type_name()), "id": id}),
        }
    }

    pub fn render_asset(&self, a: &Asset) -> Value {
        match a.kind {
            AssetKind::Device => json!({
                "@odata.type": format!("#{NS}azureADDevice"),
                "id": a.id,
                "errors": a.errors.iter().map(|r| json!({
                    "@odata.type": format!("#{NS}azureADDeviceRegistrationError"),
                    "reason": r,
                })).collect::<Vec<_>>(),
                "enrollments": a.enrollments.iter().map(|c| json!({
                    "@odata.type": format!("#{NS}updateManagementEnrollment"),
                    "updateCategory": c,
                })).collect::<Vec<_>>(),
            }),
            AssetKind::Group => json!({"@odata.type": format!("#{NS}updatableAssetGroup"), "id": a.id}),
        }
    }

    /// Lists members (or exclusions) of an audience.
    /// Registers a device on first use, recording registration errors for ids the service rejects.
    pub fn register_device(&mut self, id: &str, device_errors: &BTreeMap<String, String>) {
        if self.assets.contains_key(id) {
            return;
        }
        self.touch();
        self.registered.push(id.to_string());
        let mut errors = Vec::new();
        if let Some(reason) = device_errors.get(id) {
            errors.push(reason.clone());
        } else if !is_guid(id) {
            errors.push("invalidAzureADDeviceId".to_string());
        }
        self.assets.insert(
            id.to_string(),
            Asset {
                id: id.to_string(),
                kind: AssetKind::Device,
                errors,
                enrollments: BTreeSet::new(),
                members: BTreeSet::new(),
            },
        );
    }

    pub(super) fn check_refs(&self, refs: &[AssetRef], field: &str) -> Result<(), GraphError> {
        for r in refs {
            if r.kind == AssetKind::Group && self.assets.get(&r.id).is_none_or(|a| a.kind != AssetKind::Group)
            {
                return Err(GraphError::bad_request(format!(
                    "updatableAssetGroup '{}' does not exist.",
                    r.id
                ))
                .with_target(field));
            }
            if r.kind == AssetKind::Device
                && self.assets.get(&r.id).is_some_and(|a| a.kind == AssetKind::Group)
            {
                return Err(GraphError::bad_request(format!(
                    "'{}' is an updatableAssetGroup, not an azureADDevice.",
                    r.id
                ))
                .with_target(field));
            }
        }
        Ok(())
    }

    pub fn create_group(&mut self) -> Reply {
        self.touch();
        let id = self.new_id();
        let asset = Asset {
            id: id.clone(),
            kind: AssetKind::Group,
            errors: Vec::new(),
            enrollments: BTreeSet::new(),
            members: BTreeSet::new(),
        };
        let body = self.render_asset(&asset);
        self.assets.insert(id, asset);
        Reply::Json(StatusCode::CREATED, body)
    }

    pub fn asset(&self, id: &str) -> Result<&Asset, GraphError> {
        self.assets
            .get(id)
            .ok_or_else(|| GraphError::not_found("updatableAsset", id))
    }

    pub fn group(&self, id: &str) -> Result<&Asset, GraphError> {
        self.assets
            .get(id)
            .filter(|a| a.kind == AssetKind::Group)
            .ok_or_else(|| GraphError::not_found("updatableAssetGroup", id))
    }

    /// Deletes an asset. Deleting a group leaves its member devices in place, and drops the group from
    /// every audience that referenced it.
    pub fn delete_asset(&mut self, id: &str) -> Result<Reply, GraphError> {
        self.touch();
        let asset = self
            .assets
            .remove(id)
            .ok_or_else(|| GraphError::not_found("updatableAsset", id))?;
        for a in self.audiences.values_mut() {
            a.members.remove(id);
            a.exclusions.remove(id);
        }
        if asset.kind == AssetKind::Device {
            for g in self.assets.values_mut() {
                g.members.remove(id);
            }
        }
        Ok(Reply::Empty(StatusCode::ACCEPTED))
    }

    /// Ids of a group's devices (render them with [`Store::render_asset_ref`]).
    pub fn group_members(
        &self,
        id: &str,
    ) -> Result<Box<dyn Iterator<Item = (&str, AssetKind)> + '_>, GraphError> {
        let g = self.group(id)?;
        Ok(Box::new(
            g.members.iter().map(|m| (m.as_str(), AssetKind::Device)),
        ))
    }

    pub fn change_group_members(
        &mut self,
        group_id: &str,
        refs: &[AssetRef],
        add: bool,
        device_errors: &BTreeMap<String, String>,
    ) -> Result<Reply, GraphError> {
        self.touch();
        self.group(group_id)?;
        if let Some(r) = refs.iter().find(|r| r.kind != AssetKind::Device) {
            return Err(GraphError::bad_request(format!(
                "Only azureADDevice assets can be group members; '{}' is a {}.",
                r.id,
                r.kind.type_name()
            )));
        }
        self.check_refs(refs, if add { "assets" } else { "ids" })?;
        if add {
            for r in refs {
                self.register_device(&r.id, device_errors);
            }
        }
        let g = self
            .assets
            .get_mut(group_id)
            .ok_or_else(|| GraphError::not_found("updatableAssetGroup", group_id))?;
        for r in refs {
            if add {
                g.members.insert(r.id.clone());
            } else {
                g.members.remove(&r.id);
            }
        }
        Ok(Reply::Empty(StatusCode::ACCEPTED))
    }

    pub fn enroll(
        &mut self,
        category: &str,
        refs: &[AssetRef],
        enroll: bool,
        device_errors: &BTreeMap<String, String>,
    ) -> Result<Reply, GraphError> {
        if let Some(r) = refs.iter().find(|r| r.kind != AssetKind::Device) {
            return Err(GraphError::bad_request(format!(
                "Only azureADDevice assets can be enrolled; '{}' is a group.",
                r.id
            )));
        }
        self.check_refs(refs, "assets")?;
        for r in refs {
            self.register_device(&r.id, device_errors);
            if let Some(a) = self.assets.get_mut(&r.id) {
                if enroll {
                    a.enrollments.insert(category.to_string());
                } else {
                    a.enrollments.remove(category);
                }
            }
        }
        Ok(Reply::Empty(StatusCode::ACCEPTED))
    }
}
