//! Request bodies: what the operator sends to Graph.

use serde::Serialize;
use serde_json::Value;

use super::*;

/// Which content a new deployment carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentRequest {
    /// `catalogContent` with an entry id (the current form).
    CatalogEntry(String),
    /// The legacy `expeditedQualityUpdateReference`: minimum compliance with the release of that date.
    ReleaseDate {
        date: String,
        equivalent_content: String,
    },
}

/// What a settings PATCH sends: only the parts the operator owns that differ, so that settings made
/// outside it (`schedule`, `monitoring`, `contentApplicability`, other `userExperience` fields) are not
/// overwritten, whether the service merges the `settings` value or replaces each part it is sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SettingsPatch {
    /// `userExperience` to send: the owned fields over the unowned ones Graph holds.
    pub user_experience: Option<serde_json::Map<String, Value>>,
    /// `expedite` to send, when `isReadinessTest` differs.
    pub expedite: Option<Expedite>,
}

/// The settings the operator manages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SettingsRequest {
    pub days_until_forced_reboot: Option<i32>,
    pub offer_as_optional: Option<bool>,
    pub readiness_test: bool,
}

/// One `updateAudience` request: assets to add and remove, as members and as exclusions. It borrows the
/// assets: a request is written straight from the planned diff, with no copy of a device id.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudienceUpdate<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_exclusions: Vec<&'a AssetRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove_members: Vec<&'a AssetRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_members: Vec<&'a AssetRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove_exclusions: Vec<&'a AssetRef>,
}

impl<'a> AudienceUpdate<'a> {
    /// Assets in the request.
    pub fn len(&self) -> usize {
        self.add_exclusions.len()
            + self.remove_members.len()
            + self.add_members.len()
            + self.remove_exclusions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The request's assets, each with the list it is in, in request order.
    pub fn items(&self) -> impl Iterator<Item = (&'static str, &'a AssetRef)> + '_ {
        self.add_exclusions
            .iter()
            .map(|a| ("addExclusions", *a))
            .chain(self.remove_members.iter().map(|a| ("removeMembers", *a)))
            .chain(self.add_members.iter().map(|a| ("addMembers", *a)))
            .chain(self.remove_exclusions.iter().map(|a| ("removeExclusions", *a)))
    }

    /// The request made of `items` (list name and asset).
    pub fn of(items: impl IntoIterator<Item = (&'static str, &'a AssetRef)>) -> Self {
        let mut u = AudienceUpdate::default();
        for (list, asset) in items {
            match list {
                "addExclusions" => u.add_exclusions.push(asset),
                "removeMembers" => u.remove_members.push(asset),
                "addMembers" => u.add_members.push(asset),
                _ => u.remove_exclusions.push(asset),
            }
        }
        u
    }
}
