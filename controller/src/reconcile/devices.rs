//! The devices of DeviceGroups as deployments resolve them: from the store, and, for a group backed by
//! an Entra ID group, from what its own pass last read (shared, so that many deployments hold one copy).

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::{DeviceGroup, DeviceId};

/// A DeviceGroup's devices, shared: many deployments may reference one group.
pub type Devices = std::sync::Arc<BTreeSet<DeviceId>>;

/// The devices each Entra-backed DeviceGroup read from its Entra group at its last pass, by (namespace,
/// name): what deployments that reference it resolve against.
#[derive(Debug, Default)]
pub struct EntraDevices(std::sync::Mutex<std::collections::HashMap<(String, String), Devices>>);

impl EntraDevices {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, String), Devices>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<Devices> {
        self.lock().get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// Records what the group read and returns the set to use: the one already held when the read
    /// found the same devices, so that every deployment holding it keeps sharing one copy.
    pub fn set(&self, ns: &str, name: &str, devices: Devices) -> Devices {
        let mut map = self.lock();
        match map.get(&(ns.to_string(), name.to_string())) {
            Some(held) if **held == *devices => held.clone(),
            _ => {
                map.insert((ns.to_string(), name.to_string()), devices.clone());
                devices
            }
        }
    }

    pub fn forget(&self, ns: &str, name: &str) {
        self.lock().remove(&(ns.to_string(), name.to_string()));
    }
}

/// A DeviceGroup from the controller's store, as [`Objects::group`] needs it.
pub fn group_from_store(
    store: &Store<DeviceGroup>,
    entra: &EntraDevices,
    ns: &str,
    name: &str,
    exclusion: bool,
) -> Result<(String, Devices), String> {
    let group = store
        .get(&ObjectRef::<DeviceGroup>::new(name).within(ns))
        .ok_or_else(|| format!("DeviceGroup {name} does not exist in namespace {ns}"))?;
    group_facts(&group, exclusion, |g| entra.get(ns, &g.name_any()))
}

/// The group id and devices of a DeviceGroup, or why it cannot be used yet. The devices of one that
/// takes them from an Entra group come from `entra` (what its own pass read).
pub fn group_facts(
    group: &DeviceGroup,
    exclusion: bool,
    entra: impl Fn(&DeviceGroup) -> Option<Devices>,
) -> Result<(String, Devices), String> {
    let name = group.name_any();
    let status = group.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == super::reasons::READY && c.status == "True")
        && status.observed_generation == group.metadata.generation;
    match status.group_id {
        Some(id) if (ready || !exclusion) && group.metadata.deletion_timestamp.is_none() => {
            let devices = if group.spec.entra_group_id.is_some() {
                entra(group).ok_or_else(|| format!("DeviceGroup {name} has not read its Entra group yet"))?
            } else {
                std::sync::Arc::new(group.spec.devices.iter().map(|d| d.to_lowercase()).collect())
            };
            Ok((id, devices))
        }
        _ => Err(format!("DeviceGroup {name} is not Ready yet")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entra_read_that_finds_the_same_devices_keeps_sharing_the_set_already_held() {
        let entra = EntraDevices::default();
        let set =
            |ids: &[&str]| -> Devices { std::sync::Arc::new(ids.iter().map(|d| DeviceId::new(d)).collect()) };
        let first = entra.set("n", "ring", set(&["a", "b"]));
        let again = entra.set("n", "ring", set(&["a", "b"]));
        assert!(
            std::sync::Arc::ptr_eq(&first, &again),
            "the same devices: one copy"
        );
        assert!(std::sync::Arc::ptr_eq(&entra.get("n", "ring").unwrap(), &first));
        let changed = entra.set("n", "ring", set(&["a"]));
        assert_eq!(changed.len(), 1);
        assert!(
            std::sync::Arc::ptr_eq(&entra.get("n", "ring").unwrap(), &changed),
            "a change replaces it"
        );
    }
}
