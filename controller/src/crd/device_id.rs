//! [`DeviceId`]: an Entra device id as the controller holds it. Audiences run to hundreds of thousands
//! of ids, held in the object stores and in the groups deployments share, so an id in the usual
//! spelling (a lower-case hyphenated GUID) is kept as its 16 bytes; anything else (upper case, or not a
//! GUID, which validation reports) is kept as the text it was given. Either way it reads back as
//! exactly the text it was given, serializes as a JSON string, and orders as that text does.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// An Entra device id (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceId(Repr);

/// One spelling has one representation: a string is a `Guid` exactly when it is the canonical
/// lower-case hyphenated form, so the derived `Eq` and `Hash` agree with the text's.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Guid(Uuid),
    Text(Box<str>),
}

/// A device id's text, on the stack for a GUID: derefs to `str`.
pub struct DeviceIdStr<'a>(StrRepr<'a>);

enum StrRepr<'a> {
    Guid([u8; 36]),
    Text(&'a str),
}

impl std::ops::Deref for DeviceIdStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            // Always ASCII: written by `Uuid::hyphenated().encode_lower`.
            StrRepr::Guid(b) => std::str::from_utf8(b).unwrap_or_default(),
            StrRepr::Text(s) => s,
        }
    }
}

impl DeviceId {
    pub fn new(s: &str) -> DeviceId {
        let canonical = s.len() == 36 && !s.bytes().any(|b| b.is_ascii_uppercase());
        match Uuid::try_parse(s) {
            Ok(u) if canonical => DeviceId(Repr::Guid(u)),
            _ => DeviceId(Repr::Text(s.into())),
        }
    }

    /// The id's text, exactly as it was given.
    pub fn as_str(&self) -> DeviceIdStr<'_> {
        DeviceIdStr(match &self.0 {
            Repr::Guid(u) => {
                let mut b = [0u8; 36];
                u.hyphenated().encode_lower(&mut b);
                StrRepr::Guid(b)
            }
            Repr::Text(s) => StrRepr::Text(s),
        })
    }

    /// The same id in lower case (how Graph compares device ids).
    pub fn to_lowercase(&self) -> DeviceId {
        match &self.0 {
            Repr::Guid(_) => self.clone(),
            Repr::Text(s) => DeviceId::new(&s.to_lowercase()),
        }
    }

    /// The GUID's 16 bytes, when the id is held so (a lower-case GUID).
    pub fn guid_bytes(&self) -> Option<[u8; 16]> {
        match &self.0 {
            Repr::Guid(u) => Some(*u.as_bytes()),
            Repr::Text(_) => None,
        }
    }

    /// Held as 16 bytes (the id is a lower-case GUID).
    pub fn is_compact(&self) -> bool {
        matches!(self.0, Repr::Guid(_))
    }
}

impl From<&str> for DeviceId {
    fn from(s: &str) -> Self {
        DeviceId::new(s)
    }
}

impl From<String> for DeviceId {
    fn from(s: String) -> Self {
        DeviceId::new(&s)
    }
}

impl From<&String> for DeviceId {
    fn from(s: &String) -> Self {
        DeviceId::new(s)
    }
}

impl From<&DeviceId> for String {
    fn from(d: &DeviceId) -> Self {
        d.to_string()
    }
}

impl PartialEq<str> for DeviceId {
    fn eq(&self, other: &str) -> bool {
        *self.as_str() == *other
    }
}

impl PartialEq<&str> for DeviceId {
    fn eq(&self, other: &&str) -> bool {
        *self.as_str() == **other
    }
}

impl Ord for DeviceId {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            // The canonical text orders as the bytes do: fixed hyphen positions, and lower-case hex
            // digits sort in their value's order.
            (Repr::Guid(a), Repr::Guid(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => (*self.as_str()).cmp(&*other.as_str()),
        }
    }
}

impl PartialOrd for DeviceId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.as_str(), f)
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DeviceId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a device id (string)")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DeviceId, E> {
                Ok(DeviceId::new(v))
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl schemars::JsonSchema for DeviceId {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DeviceId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_case_guid_is_held_as_16_bytes_and_reads_back_as_given() {
        let s = "3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01";
        let d = DeviceId::new(s);
        assert!(d.is_compact());
        assert_eq!(&*d.as_str(), s);
        assert_eq!(d.to_string(), s);
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<DeviceId>(&format!("\"{s}\"")).unwrap(), d);
        assert!(std::mem::size_of::<Option<DeviceId>>() <= 24);
    }

    #[test]
    fn other_spellings_are_kept_as_text_exactly() {
        for s in [
            "3D0A0C8E-1C5E-4C53-9B3F-2A1D6E0C9A01",
            "3d0a0c8e1c5e4c539b3f2a1d6e0c9a01",
            "{3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01}",
            "not-a-guid",
            "",
        ] {
            let d = DeviceId::new(s);
            assert!(!d.is_compact(), "{s}");
            assert_eq!(&*d.as_str(), s);
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
        let upper = DeviceId::new("3D0A0C8E-1C5E-4C53-9B3F-2A1D6E0C9A01");
        assert_ne!(upper, DeviceId::new("3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01"));
        assert!(upper.to_lowercase().is_compact());
        assert_eq!(
            upper.to_lowercase(),
            DeviceId::new("3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01")
        );
    }

    #[test]
    fn ids_order_as_their_text_does() {
        let texts = [
            "00000000-0000-4000-8000-00000000000a",
            "00000000-0000-4000-8000-000000000009",
            "0000000A-0000-4000-8000-000000000000",
            "ffffffff-ffff-4fff-8fff-ffffffffffff",
            "zz",
            "0",
            "a0000000-0000-4000-8000-000000000000",
            "9fffffff-ffff-4fff-8fff-ffffffffffff",
        ];
        let mut by_text: Vec<&str> = texts.to_vec();
        by_text.sort();
        let mut ids: Vec<DeviceId> = texts.iter().map(|s| DeviceId::new(s)).collect();
        ids.sort();
        let back: Vec<String> = ids.iter().map(|d| d.to_string()).collect();
        assert_eq!(back, by_text);
    }

    proptest::proptest! {
        /// Any text a user writes as a device id reads back, serializes and orders exactly as written.
        #[test]
        fn any_text_round_trips_and_orders_as_text(
            a in proptest::prop_oneof!["[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "\\PC{0,40}"],
            b in proptest::prop_oneof!["[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "\\PC{0,40}"],
        ) {
            let (x, y) = (DeviceId::new(&a), DeviceId::new(&b));
            proptest::prop_assert_eq!(&*x.as_str(), a.as_str());
            let json = serde_json::to_string(&x).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<DeviceId>(&json).unwrap(), x.clone());
            proptest::prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }
    }
}
