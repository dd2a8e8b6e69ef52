//! Updatable asset groups and Entra ID groups: a DeviceGroup's Graph group (create, delete, its
//! members read page by page into compact ids and changed in batches) and the devices of the Entra
//! group it may take them from.

use std::collections::BTreeMap;

use reqwest::Method;

use super::client::{GraphClient, absent, enc, lower_id};
use super::error::GraphError;
use super::models::{AssetKind, NS, UpdatableAsset};
use super::transport::Idempotency;
use crate::crd::DeviceId;

/// The devices of an updatable asset group as read, held compactly: a group can hold 100,000 devices.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupDevices {
    /// Every device member's id, in lower case, sorted and each once (a sorted list, not a set: a third
    /// of the memory, and the diff walks it in order).
    pub devices: Vec<DeviceId>,
    /// The registration errors of the members that have any, by lower-case device id.
    pub errors: BTreeMap<DeviceId, Vec<String>>,
}

/// A group's members as pages bring them: every id (for the check that parallel pages add up), the
/// ids of members that are not devices, and the errors.
#[derive(Default)]
struct GroupRead {
    ids: Vec<DeviceId>,
    not_devices: Vec<DeviceId>,
    errors: BTreeMap<DeviceId, Vec<String>>,
}

impl GroupRead {
    /// Sized for the members the service counted, when it did.
    fn sized(count: Option<u64>) -> Self {
        GroupRead {
            ids: Vec::with_capacity(count.unwrap_or_default().min(1 << 24) as usize),
            ..Default::default()
        }
    }

    fn add(&mut self, page: Vec<UpdatableAsset>) {
        for a in page {
            let (kind, errors) = (a.kind(), (!a.errors.is_empty()).then(|| a.error_reasons()));
            let id = lower_id(a.id);
            if kind != AssetKind::Device {
                self.not_devices.push(id.clone());
            } else if let Some(reasons) = errors {
                self.errors.insert(id.clone(), reasons);
            }
            self.ids.push(id);
        }
    }

    /// Sorts and deduplicates the ids; their number.
    fn distinct(&mut self) -> usize {
        self.ids.sort_unstable();
        self.ids.dedup();
        self.ids.len()
    }

    fn devices(mut self) -> GroupDevices {
        self.distinct();
        if !self.not_devices.is_empty() {
            self.not_devices.sort_unstable();
            self.ids.retain(|id| self.not_devices.binary_search(id).is_err());
        }
        GroupDevices {
            devices: self.ids,
            errors: self.errors,
        }
    }
}

impl GraphClient {
    // ----- Entra ID groups ----------------------------------------------------------------------------

    /// The Entra device ids of an Entra ID group's devices, nested groups included
    /// (`/groups/{id}/transitiveMembers/microsoft.graph.device`, every page); `None` when the group does
    /// not exist. Needs GroupMember.Read.All and Device.Read.All, which the operation name says, so that a
    /// 403 names them.
    /// `expected` is how many devices the caller last saw there: the list is sized for it.
    pub async fn entra_group_devices(
        &self,
        group_id: &str,
        expected: usize,
    ) -> Result<Option<Vec<DeviceId>>, GraphError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Device {
            #[serde(default)]
            device_id: Option<String>,
        }
        let base = self.transport.endpoints.graph_base.as_str().trim_end_matches('/');
        let url = format!(
            "{base}/groups/{}/transitiveMembers/microsoft.graph.device?$select=deviceId&$top=999",
            enc(group_id)
        );
        // Folded page by page into 16-byte ids (a group of 100,000 devices is never held as text),
        // sorted, each once: the caller compares them with what it holds before it builds a set.
        let mut devices = Vec::with_capacity(expected + expected / 64);
        let read = self
            .transport
            .for_each_page(
                "list the Entra group's devices (needs GroupMember.Read.All and Device.Read.All)",
                url,
                |page: Vec<Device>| {
                    devices.extend(page.into_iter().filter_map(|d| d.device_id).map(lower_id))
                },
            )
            .await;
        Ok(absent(read)?.map(|()| {
            devices.sort_unstable();
            devices.dedup();
            devices
        }))
    }

    // ----- updatable asset groups --------------------------------------------------------------------

    /// Creates an empty `updatableAssetGroup` and returns its id.
    pub async fn create_group(&self) -> Result<String, GraphError> {
        self.create_empty("create device group", "updatableAssets", "updatableAssetGroup")
            .await
    }

    /// Deletes a group (its devices stay registered). `Ok(false)` when it was already gone.
    pub async fn delete_group(&self, id: &str) -> Result<bool, GraphError> {
        self.delete("delete device group", &format!("updatableAssets/{}", enc(id)))
            .await
    }

    /// Whether the group itself exists (`GET /updatableAssets/{id}`): a member list answered 404 is
    /// not proof, as an empty collection has been seen answered 404.
    pub async fn group_exists(&self, id: &str) -> Result<bool, GraphError> {
        let url = self.url(&format!("updatableAssets/{}", enc(id)));
        let got: Option<UpdatableAsset> = absent(
            self.transport
                .json("get device group", Method::GET, &url, None, Idempotency::Safe)
                .await,
        )?;
        Ok(got.is_some())
    }

    /// The devices of a group, folded page by page into [`GroupDevices`]; `None` when the group does not
    /// exist.
    pub async fn group_devices(&self, id: &str) -> Result<Option<GroupDevices>, GraphError> {
        let url = self.url(&format!(
            "updatableAssets/{}/{NS}updatableAssetGroup/members",
            enc(id)
        ));
        let read = self
            .transport
            .fold_sized(
                "list device group members",
                &url,
                GroupRead::sized,
                GroupRead::add,
                GroupRead::distinct,
            )
            .await;
        Ok(absent(read)?.map(GroupRead::devices))
    }

    /// Adds (`addMembersById`) or removes (`removeMembersById`) these devices in one request, split on a
    /// 400 until the refused id is named. Returns the number of calls made.
    pub async fn change_group_members(
        &self,
        id: &str,
        add: bool,
        ids: &[DeviceId],
    ) -> Result<usize, GraphError> {
        let (action, op) = if add {
            ("addMembersById", "add device group members")
        } else {
            ("removeMembersById", "remove device group members")
        };
        let url = self.url(&format!("updatableAssets/{}/{action}", enc(id)));
        self.send_split(op, &url, ids, |items| {
            #[derive(serde::Serialize)]
            #[serde(rename_all = "camelCase")]
            struct ById<'a> {
                ids: &'a [DeviceId],
                member_entity_type: &'static str,
            }
            serde_json::to_vec(&ById {
                ids: items,
                member_entity_type: AssetKind::Device.odata_type(),
            })
        })
        .await
    }
}
