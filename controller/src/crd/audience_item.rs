//! [`AudienceItem`]: one entry of an audience (a device, a DeviceGroup or an updatableAssetGroup), held
//! as the one form that is set. A rollout's members are copied into every version of the object the
//! reflector store and the passes hold, so the entry's size is what the stores' size follows.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::device_id::DeviceId;

/// One audience entry: exactly one of device, deviceGroup or assetGroupId.
// The schema and wire form of `AudienceItem`, which holds it compactly.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AudienceItem")]
// CEL cost: 13
#[x_kube(validation = Rule::new("(has(self.device) ? 1 : 0) + (has(self.deviceGroup) ? 1 : 0) + (has(self.assetGroupId) ? 1 : 0) == 1").message("set exactly one of device, deviceGroup or assetGroupId"))]
pub struct AudienceItemFields {
    /// An Entra (Azure AD) device id, a GUID such as 3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 36),
        regex(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
    )]
    pub device: Option<DeviceId>,

    /// The name of a DeviceGroup in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub device_group: Option<Box<str>>,

    /// The id of an existing Graph updatableAssetGroup managed outside this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub asset_group_id: Option<Box<str>>,
}

/// One audience entry, as the stores hold it: the one form that is set (24 bytes, against 56 for the
/// three optional fields; a rollout's members are copied into every version of the object the
/// reflector and the passes hold). An entry with no form or several (which validation reports) keeps
/// its fields as given. Reads, writes, compares and orders exactly as [`AudienceItemFields`] does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "AudienceItemFields")]
pub struct AudienceItem(Entry);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Entry {
    Device(DeviceId),
    DeviceGroup(Box<str>),
    AssetGroup(Box<str>),
    Malformed(Box<AudienceItemFields>),
}

impl AudienceItem {
    pub fn of_device(id: DeviceId) -> Self {
        AudienceItem(Entry::Device(id))
    }

    pub fn of_device_group(name: &str) -> Self {
        AudienceItem(Entry::DeviceGroup(name.into()))
    }

    pub fn of_asset_group(id: &str) -> Self {
        AudienceItem(Entry::AssetGroup(id.into()))
    }

    /// The Entra device id, when this entry is (only) a device.
    pub fn device(&self) -> Option<&DeviceId> {
        match &self.0 {
            Entry::Device(d) => Some(d),
            Entry::Malformed(f) => f.device.as_ref(),
            _ => None,
        }
    }

    /// The DeviceGroup's name.
    pub fn device_group(&self) -> Option<&str> {
        match &self.0 {
            Entry::DeviceGroup(g) => Some(g),
            Entry::Malformed(f) => f.device_group.as_deref(),
            _ => None,
        }
    }

    /// The updatableAssetGroup id.
    pub fn asset_group_id(&self) -> Option<&str> {
        match &self.0 {
            Entry::AssetGroup(a) => Some(a),
            Entry::Malformed(f) => f.asset_group_id.as_deref(),
            _ => None,
        }
    }

    /// How many of the three forms are set (1 but for a malformed entry).
    pub fn forms(&self) -> usize {
        match &self.0 {
            Entry::Malformed(f) => {
                usize::from(f.device.is_some())
                    + usize::from(f.device_group.is_some())
                    + usize::from(f.asset_group_id.is_some())
            }
            _ => 1,
        }
    }

    fn key(&self) -> (Option<&DeviceId>, Option<&str>, Option<&str>) {
        (self.device(), self.device_group(), self.asset_group_id())
    }
}

impl Default for AudienceItem {
    fn default() -> Self {
        AudienceItem(Entry::Malformed(Box::default()))
    }
}

impl From<AudienceItemFields> for AudienceItem {
    fn from(f: AudienceItemFields) -> Self {
        AudienceItem(match f {
            AudienceItemFields {
                device: Some(d),
                device_group: None,
                asset_group_id: None,
            } => Entry::Device(d),
            AudienceItemFields {
                device: None,
                device_group: Some(g),
                asset_group_id: None,
            } => Entry::DeviceGroup(g),
            AudienceItemFields {
                device: None,
                device_group: None,
                asset_group_id: Some(a),
            } => Entry::AssetGroup(a),
            f => Entry::Malformed(Box::new(f)),
        })
    }
}

impl From<AudienceItem> for AudienceItemFields {
    fn from(i: AudienceItem) -> Self {
        match i.0 {
            Entry::Device(d) => AudienceItemFields {
                device: Some(d),
                ..Default::default()
            },
            Entry::DeviceGroup(g) => AudienceItemFields {
                device_group: Some(g),
                ..Default::default()
            },
            Entry::AssetGroup(a) => AudienceItemFields {
                asset_group_id: Some(a),
                ..Default::default()
            },
            Entry::Malformed(f) => *f,
        }
    }
}

/// Written as its fields, borrowed (no copy of the entry).
impl Serialize for AudienceItem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            device: Option<&'a DeviceId>,
            #[serde(skip_serializing_if = "Option::is_none")]
            device_group: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            asset_group_id: Option<&'a str>,
        }
        let (device, device_group, asset_group_id) = self.key();
        Fields {
            device,
            device_group,
            asset_group_id,
        }
        .serialize(s)
    }
}

impl PartialOrd for AudienceItem {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// As the fields order: device first, then deviceGroup, then assetGroupId, an unset one first.
impl Ord for AudienceItem {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl schemars::JsonSchema for AudienceItem {
    fn inline_schema() -> bool {
        AudienceItemFields::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        AudienceItemFields::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        AudienceItemFields::schema_id()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        AudienceItemFields::json_schema(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01";

    fn parse(json: &str) -> AudienceItem {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_entry_is_held_in_24_bytes() {
        assert!(
            std::mem::size_of::<AudienceItem>() <= 24,
            "{}",
            std::mem::size_of::<AudienceItem>()
        );
        assert!(std::mem::size_of::<AudienceItemFields>() > 48);
    }

    #[test]
    fn each_form_reads_and_writes_back_exactly() {
        for json in [
            format!(r#"{{"device":"{D}"}}"#),
            r#"{"device":"LAPTOP-42"}"#.to_string(),
            r#"{"deviceGroup":"ring-1"}"#.to_string(),
            r#"{"assetGroupId":"a1"}"#.to_string(),
            r#"{}"#.to_string(),
            format!(r#"{{"device":"{D}","deviceGroup":"ring-1"}}"#),
            r#"{"deviceGroup":"ring-1","assetGroupId":"a1"}"#.to_string(),
        ] {
            let item = parse(&json);
            assert_eq!(serde_json::to_string(&item).unwrap(), json);
            let fields: AudienceItemFields = serde_json::from_str(&json).unwrap();
            assert_eq!(AudienceItem::from(fields.clone()), item);
            assert_eq!(AudienceItemFields::from(item.clone()), fields);
            let set = usize::from(fields.device.is_some())
                + usize::from(fields.device_group.is_some())
                + usize::from(fields.asset_group_id.is_some());
            assert_eq!(item.forms(), set, "{json}");
            assert_eq!(item.device(), fields.device.as_ref());
            assert_eq!(item.device_group(), fields.device_group.as_deref());
            assert_eq!(item.asset_group_id(), fields.asset_group_id.as_deref());
        }
    }

    #[test]
    fn constructors_match_the_parsed_forms() {
        assert_eq!(
            AudienceItem::of_device(D.into()),
            parse(&format!(r#"{{"device":"{D}"}}"#))
        );
        assert_eq!(
            AudienceItem::of_device_group("g"),
            parse(r#"{"deviceGroup":"g"}"#)
        );
        assert_eq!(
            AudienceItem::of_asset_group("a"),
            parse(r#"{"assetGroupId":"a"}"#)
        );
        assert_eq!(AudienceItem::default(), parse("{}"));
    }

    #[test]
    fn entries_order_as_their_fields_do() {
        let jsons = [
            r#"{}"#.to_string(),
            r#"{"assetGroupId":"a"}"#.to_string(),
            r#"{"assetGroupId":"b"}"#.to_string(),
            r#"{"deviceGroup":"a"}"#.to_string(),
            r#"{"deviceGroup":"a","assetGroupId":"a"}"#.to_string(),
            r#"{"deviceGroup":"b"}"#.to_string(),
            format!(r#"{{"device":"{D}"}}"#),
            format!(r#"{{"device":"{D}","deviceGroup":"a"}}"#),
            r#"{"device":"LAPTOP"}"#.to_string(),
        ];
        for x in &jsons {
            for y in &jsons {
                let (fx, fy): (AudienceItemFields, AudienceItemFields) =
                    (serde_json::from_str(x).unwrap(), serde_json::from_str(y).unwrap());
                let key = |f: &AudienceItemFields| {
                    (f.device.clone(), f.device_group.clone(), f.asset_group_id.clone())
                };
                assert_eq!(parse(x).cmp(&parse(y)), key(&fx).cmp(&key(&fy)), "{x} vs {y}");
                assert_eq!(parse(x) == parse(y), fx == fy, "{x} vs {y}");
            }
        }
    }
}
