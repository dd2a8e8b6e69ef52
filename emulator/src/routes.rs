//! Maps a Graph path under `/beta/admin/windows/updates` to an operation. Actions are accepted under both
//! spellings: plain (`updateAudience`) and namespace-qualified (`microsoft.graph.windowsUpdates.updateAudience`).

use http::{Method, StatusCode};

use crate::error::GraphError;
use crate::odata::NS;
use crate::store::AssetKind;

/// The base path of the API.
pub const BASE: &str = "/beta/admin/windows/updates";

/// Where an audience lives: under a deployment or in the `deploymentAudiences` collection.
#[derive(Debug, Clone, PartialEq)]
pub enum AudienceOf {
    Deployment(String),
    Audience(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    CatalogEntries,
    CatalogCount,
    CatalogEntry(String),
    Deployments,
    DeploymentsCount,
    Deployment(String),
    AudienceGet(AudienceOf),
    AudienceList(AudienceOf, bool),
    AudienceUpdate(AudienceOf, bool),
    ApplicableContent(AudienceOf),
    Audiences,
    AudienceDelete(String),
    Assets(Option<AssetKind>),
    Enroll { enroll: bool, by_id: bool },
    Asset(String),
    GroupMembers(String),
    GroupChange { id: String, add: bool, by_id: bool },
    DeviceProfiles,
    DeviceProfile(String),
}

fn action(seg: &str) -> &str {
    seg.strip_prefix(NS).unwrap_or(seg)
}

pub fn method_not_allowed(method: &Method) -> GraphError {
    GraphError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("The method {method} is not allowed on this resource."),
    )
}

/// Graph answers a path it has no segment for with 400 `BadRequest`, not 404.
fn no_route(path: &str) -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Resource not found for the segment '{path}'."),
    )
}

impl Route {
    /// Parses the decoded path segments after [`BASE`].
    pub fn parse(segs: &[String]) -> Result<Route, GraphError> {
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let audience_sub = |of: AudienceOf, rest: &[&str]| -> Result<Route, GraphError> {
            match rest {
                [] => Ok(Route::AudienceGet(of)),
                ["members"] => Ok(Route::AudienceList(of, false)),
                ["exclusions"] => Ok(Route::AudienceList(of, true)),
                [a] if action(a) == "updateAudience" => Ok(Route::AudienceUpdate(of, false)),
                [a] if action(a) == "updateAudienceById" => Ok(Route::AudienceUpdate(of, true)),
                ["applicableContent", ..] => Ok(Route::ApplicableContent(of)),
                _ => Err(no_route(&rest.join("/"))),
            }
        };
        match s.as_slice() {
            ["catalog", "entries"] => Ok(Route::CatalogEntries),
            ["catalog", "entries", "$count"] => Ok(Route::CatalogCount),
            ["catalog", "entries", id] => Ok(Route::CatalogEntry(id.to_string())),
            ["deployments"] => Ok(Route::Deployments),
            ["deployments", "$count"] => Ok(Route::DeploymentsCount),
            ["deployments", id] => Ok(Route::Deployment(id.to_string())),
            ["deployments", id, "audience", rest @ ..] => {
                audience_sub(AudienceOf::Deployment(id.to_string()), rest)
            }
            ["deploymentAudiences"] => Ok(Route::Audiences),
            ["deploymentAudiences", id] => Ok(Route::AudienceDelete(id.to_string())),
            ["deploymentAudiences", id, rest @ ..] => {
                audience_sub(AudienceOf::Audience(id.to_string()), rest)
            }
            ["data", "deviceProfiles"] => Ok(Route::DeviceProfiles),
            ["data", "deviceProfiles", id] => Ok(Route::DeviceProfile(id.to_string())),
            ["updatableAssets"] => Ok(Route::Assets(None)),
            ["updatableAssets", seg] => match action(seg) {
                "azureADDevice" => Ok(Route::Assets(Some(AssetKind::Device))),
                "updatableAssetGroup" => Ok(Route::Assets(Some(AssetKind::Group))),
                "enrollAssets" => Ok(Route::Enroll {
                    enroll: true,
                    by_id: false,
                }),
                "enrollAssetsById" => Ok(Route::Enroll {
                    enroll: true,
                    by_id: true,
                }),
                "unenrollAssets" => Ok(Route::Enroll {
                    enroll: false,
                    by_id: false,
                }),
                "unenrollAssetsById" => Ok(Route::Enroll {
                    enroll: false,
                    by_id: true,
                }),
                _ => Ok(Route::Asset(seg.to_string())),
            },
            ["updatableAssets", id, "members"] => Ok(Route::GroupMembers(id.to_string())),
            ["updatableAssets", id, cast, "members"] if action(cast) == "updatableAssetGroup" => {
                Ok(Route::GroupMembers(id.to_string()))
            }
            ["updatableAssets", id, a] => {
                let id = id.to_string();
                match action(a) {
                    "addMembers" => Ok(Route::GroupChange {
                        id,
                        add: true,
                        by_id: false,
                    }),
                    "addMembersById" => Ok(Route::GroupChange {
                        id,
                        add: true,
                        by_id: true,
                    }),
                    "removeMembers" => Ok(Route::GroupChange {
                        id,
                        add: false,
                        by_id: false,
                    }),
                    "removeMembersById" => Ok(Route::GroupChange {
                        id,
                        add: false,
                        by_id: true,
                    }),
                    _ => Err(no_route(a)),
                }
            }
            _ => Err(no_route(&s.join("/"))),
        }
    }

    /// The operation name used in the request log and counts. Errors on a method the route does not serve.
    pub fn operation(&self, m: &Method) -> Result<&'static str, GraphError> {
        let get = *m == Method::GET;
        let post = *m == Method::POST;
        let name = match self {
            Route::CatalogEntries if get => "catalog.entries.list",
            Route::CatalogCount if get => "catalog.entries.count",
            Route::CatalogEntry(_) if get => "catalog.entries.get",
            Route::Deployments if get => "deployments.list",
            Route::Deployments if post => "deployments.create",
            Route::DeploymentsCount if get => "deployments.count",
            Route::Deployment(_) if get => "deployments.get",
            Route::Deployment(_) if *m == Method::PATCH => "deployments.update",
            Route::Deployment(_) if *m == Method::DELETE => "deployments.delete",
            Route::AudienceGet(_) if get => "audience.get",
            Route::AudienceList(_, false) if get => "audience.members.list",
            Route::AudienceList(_, true) if get => "audience.exclusions.list",
            Route::AudienceUpdate(_, false) if post => "audience.updateAudience",
            Route::AudienceUpdate(_, true) if post => "audience.updateAudienceById",
            Route::ApplicableContent(_) if get => "audience.applicableContent.list",
            Route::Audiences if get => "deploymentAudiences.list",
            Route::Audiences if post => "deploymentAudiences.create",
            Route::AudienceDelete(_) if get => "audience.get",
            Route::AudienceDelete(_) if *m == Method::DELETE => "deploymentAudiences.delete",
            Route::Assets(_) if get => "updatableAssets.list",
            Route::Assets(None) if post => "updatableAssets.createGroup",
            Route::Enroll {
                enroll: true,
                by_id: false,
            } if post => "updatableAssets.enrollAssets",
            Route::Enroll {
                enroll: true,
                by_id: true,
            } if post => "updatableAssets.enrollAssetsById",
            Route::Enroll {
                enroll: false,
                by_id: false,
            } if post => "updatableAssets.unenrollAssets",
            Route::Enroll {
                enroll: false,
                by_id: true,
            } if post => "updatableAssets.unenrollAssetsById",
            Route::DeviceProfiles if get => "deviceProfiles.list",
            Route::DeviceProfile(_) if get => "deviceProfiles.get",
            Route::Asset(_) if get => "updatableAssets.get",
            Route::Asset(_) if *m == Method::DELETE => "updatableAssets.delete",
            Route::GroupMembers(_) if get => "group.members.list",
            Route::GroupChange {
                add: true,
                by_id: false,
                ..
            } if post => "group.addMembers",
            Route::GroupChange {
                add: true,
                by_id: true,
                ..
            } if post => "group.addMembersById",
            Route::GroupChange {
                add: false,
                by_id: false,
                ..
            } if post => "group.removeMembers",
            Route::GroupChange {
                add: false,
                by_id: true,
                ..
            } if post => "group.removeMembersById",
            _ => return Err(method_not_allowed(m)),
        };
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> Route {
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Route::parse(&segs).unwrap()
    }

    #[test]
    fn both_action_spellings_under_both_parents() {
        let d = AudienceOf::Deployment("d".into());
        let a = AudienceOf::Audience("a".into());
        assert_eq!(
            p("deployments/d/audience/updateAudience"),
            Route::AudienceUpdate(d.clone(), false)
        );
        assert_eq!(
            p("deployments/d/audience/microsoft.graph.windowsUpdates.updateAudienceById"),
            Route::AudienceUpdate(d, true)
        );
        assert_eq!(
            p("deploymentAudiences/a/updateAudience"),
            Route::AudienceUpdate(a.clone(), false)
        );
        assert_eq!(
            p("deploymentAudiences/a/microsoft.graph.windowsUpdates.updateAudience"),
            Route::AudienceUpdate(a, false)
        );
        assert_eq!(
            p("updatableAssets/g/microsoft.graph.windowsUpdates.addMembersById"),
            Route::GroupChange {
                id: "g".into(),
                add: true,
                by_id: true
            }
        );
        assert_eq!(
            p("updatableAssets/g/microsoft.graph.windowsUpdates.updatableAssetGroup/members"),
            Route::GroupMembers("g".into())
        );
    }

    #[test]
    fn wrong_method_is_405() {
        let err = p("deployments/x").operation(&Method::PUT).unwrap_err();
        assert_eq!(err.status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
