//! The tenant's checks, once for the operator-wide credentials and once per connection the caller may
//! read: sign-in, the service, the permissions in the token against what each feature needs, the
//! catalog, and the service behaviours the operator adapts to, each reported as found.

use std::time::Duration;

use super::{Check, CheckArgs, Found};
use crate::graph::{GraphClient, GraphError, TokenClaims};
use crate::reconcile::reasons::Reason;

/// Runs the tenant's checks for the operator-wide credentials and each readable connection.
pub async fn check_all(
    args: &CheckArgs,
    default: Result<&GraphClient, &anyhow::Error>,
    found: &Found,
    out: &mut Vec<Check>,
) {
    match default {
        Ok(client) => check(client, "tenant", &found.entra_groups, out).await,
        Err(e) => out.push(Check::skipped(
            "tenant",
            "sign-in",
            format!("no operator-wide credentials ({e:#})"),
        )),
    }
    for key in &found.connections {
        let group = format!("tenant {key}");
        match crate::cli::tenants::client_for(key, &[], found.client.as_ref(), Some(&args.namespace)).await {
            Ok(client) => check(&client, &group, &found.entra_groups, out).await,
            Err(e) => out.push(Check::failed(
                &group,
                "sign-in",
                format!("the connection's client could not be built: {e:#}"),
                Reason::SIGN_IN_FAILED,
            )),
        }
    }
}

/// A Graph error's HTTP status, when it has one.
fn status(e: &GraphError) -> Option<u16> {
    e.status()
}

/// The tenant checks for one client; `group` names the credentials.
pub async fn check(client: &GraphClient, group: &str, entra_groups: &[String], out: &mut Vec<Check>) {
    let claims = match client.token_claims().await {
        Ok(Some(c)) => {
            let who = match (&c.tenant, &c.app) {
                (Some(t), Some(a)) => format!("signed in to tenant {t} as app {a}"),
                _ => format!(
                    "signed in to tenant {} (the token does not name the app)",
                    client.tenant_id().unwrap_or("?")
                ),
            };
            out.push(Check::ok(group, "sign-in", who));
            if let Some(at) = client.certificate_expiry() {
                out.push(certificate(at, chrono::Utc::now().timestamp(), group));
            }
            Some(c)
        }
        Ok(None) => {
            out.push(Check::skipped(
                group,
                "sign-in",
                "no credentials are sent (--graph-no-auth)",
            ));
            None
        }
        Err(e) => {
            out.push(Check::failed(
                group,
                "sign-in",
                e.to_string(),
                Reason::SIGN_IN_FAILED,
            ));
            out.push(Check::skipped(group, "service", "sign-in failed"));
            return;
        }
    };
    let graph = client.endpoints().graph_base.to_string();
    match client.expeditable_updates(1).await {
        Ok(entries) => {
            out.push(Check::ok(
                group,
                "service",
                format!("the deployment service answers at {graph}"),
            ));
            match entries.first() {
                Some(e) => out.push(Check::ok(
                    group,
                    "catalog",
                    format!(
                        "newest expeditable quality update: {} (released {})",
                        e.display_name.as_deref().unwrap_or(&e.id),
                        e.release_date().unwrap_or("on an unknown date")
                    ),
                )),
                None => out.push(Check::warning(
                    group,
                    "catalog",
                    "the catalog lists no expeditable quality update",
                    Reason::NO_EXPEDITABLE_CONTENT,
                )),
            }
        }
        Err(e) if status(&e) == Some(403) => {
            out.push(Check::failed(
                group,
                "service",
                format!("the catalog read was refused: {e}"),
                Reason::GRAPH_PERMISSION_MISSING,
            ));
        }
        Err(e) => {
            out.push(Check::failed(
                group,
                "service",
                format!("the deployment service did not answer a catalog read at {graph}: {e}"),
                Reason::SERVICE_UNAVAILABLE,
            ));
            return;
        }
    }
    permissions(claims.as_ref(), group, !entra_groups.is_empty(), out);
    behaviours(client, group, entra_groups, out).await;
}

/// How long before a certificate expires `check` warns (as the chart's WufbCertificateExpiringSoon
/// alert does).
pub const CERTIFICATE_WARNING_DAYS: i64 = 14;

/// The certificate credential's expiry, `not_after`, judged at `now` (Unix seconds).
pub fn certificate(not_after: i64, now: i64, group: &str) -> Check {
    let at = chrono::DateTime::from_timestamp(not_after, 0).map_or_else(
        || not_after.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    let days = (not_after - now).div_euclid(86_400);
    if not_after <= now {
        Check::failed(
            group,
            "certificate",
            format!("the certificate expired at {at}"),
            Reason::CERTIFICATE_EXPIRING,
        )
    } else if days < CERTIFICATE_WARNING_DAYS {
        Check::warning(
            group,
            "certificate",
            format!("the certificate expires at {at}, in {days} day(s)"),
            Reason::CERTIFICATE_EXPIRING,
        )
    } else {
        Check::ok(
            group,
            "certificate",
            format!("the certificate expires at {at}, in {days} days"),
        )
    }
}

const READ_WRITE: &str = "WindowsUpdates.ReadWrite.All";
const READ: &str = "WindowsUpdates.Read.All";

/// Each feature's application permissions, as any-of groups that must all hold.
const FEATURES: &[(&str, &str, &[&[&str]])] = &[
    (
        "permission-deployments",
        "deployments (create, pause, audiences, delete) and the catalog reads plan makes",
        &[&[READ_WRITE]],
    ),
    (
        "permission-reads",
        "status and progress reads (deployments, data/deviceProfiles)",
        &[&[READ, READ_WRITE]],
    ),
    (
        "permission-entra-groups",
        "Entra ID group rings (DeviceGroup spec.entraGroupId)",
        &[
            &["GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"],
            &["Device.Read.All", "Directory.Read.All"],
        ],
    ),
];

/// The roles the token carries against what each feature needs; `rings`: a DeviceGroup uses Entra ID.
pub fn permissions(claims: Option<&TokenClaims>, group: &str, rings: bool, out: &mut Vec<Check>) {
    let Some(claims) = claims.filter(|c| c.readable) else {
        out.push(Check::skipped(
            group,
            "permissions",
            "the access token's roles cannot be read (not a JWT); the reads below show what is allowed",
        ));
        return;
    };
    for (name, feature, needs) in FEATURES {
        let missing: Vec<String> = needs
            .iter()
            .filter(|any| !any.iter().any(|r| claims.roles.iter().any(|have| have == r)))
            .map(|any| any.join(" or "))
            .collect();
        if missing.is_empty() {
            out.push(Check::ok(group, name, format!("granted: {feature}")));
            continue;
        }
        let found = format!(
            "{feature} need {}; the token has {}",
            missing.join(" and "),
            if claims.roles.is_empty() {
                "no application permission".to_string()
            } else {
                claims.roles.join(", ")
            }
        );
        if *name == "permission-entra-groups" && !rings {
            out.push(Check::warning(
                group,
                name,
                format!("{found} (no DeviceGroup uses spec.entraGroupId yet)"),
                Reason::GRAPH_PERMISSION_MISSING,
            ));
        } else {
            out.push(Check::failed(
                group,
                name,
                found,
                Reason::GRAPH_PERMISSION_MISSING,
            ));
        }
    }
}

/// The service behaviours the operator adapts to, found by the same reads the operator makes at start-up
/// and at each connection check ([`GraphClient::service_behaviours`]), with what only a person needs
/// (an unused audience's answer, how many devices report).
async fn behaviours(client: &GraphClient, group: &str, entra_groups: &[String], out: &mut Vec<Check>) {
    use crate::graph::client_behaviours::{AUDIENCE_PAGING, DEPLOYMENT_FILTER, DEVICE_SIGNALS};
    for b in client.service_behaviours().await {
        let line = match (b.name.as_str(), b.value.as_str()) {
            (AUDIENCE_PAGING, "unknown") => Check::skipped(group, "audience-paging", b.found),
            (DEPLOYMENT_FILTER, "unknown") => Check::warning(
                group,
                "deployment-filter",
                b.found,
                Reason::GRAPH_PERMISSION_MISSING,
            ),
            (DEVICE_SIGNALS, "readable") => match client.device_signals_within(Duration::ZERO).await {
                Ok(s) if !s.builds.is_empty() => Check::ok(
                    group,
                    "device-signals",
                    format!(
                        "data/deviceProfiles readable: {} device(s) report",
                        s.builds.len()
                    ),
                ),
                Ok(_) => Check::warning(
                    group,
                    "device-signals",
                    "data/deviceProfiles is readable but no device reports yet: progress figures and health gates will wait",
                    Reason::DEVICE_SIGNALS_UNREADABLE,
                ),
                Err(e) => Check::warning(
                    group,
                    "device-signals",
                    format!("data/deviceProfiles could not be read whole: {e}"),
                    Reason::DEVICE_SIGNALS_UNREADABLE,
                ),
            },
            (DEVICE_SIGNALS, _) => Check::warning(
                group,
                "device-signals",
                b.found,
                Reason::DEVICE_SIGNALS_UNREADABLE,
            ),
            (name, _) => Check::ok(group, name, b.found),
        };
        out.push(line);
    }
    // JSON batching (--graph-batch auto), whose reach to the deployment service is not documented.
    out.push(match client.json_batches().await {
        Ok(true) => Check::ok(
            group,
            "json-batch",
            "the deployment service takes JSON batches ($batch): --graph-batch auto can carry up to 20 requests a round trip",
        ),
        Ok(false) => Check::ok(
            group,
            "json-batch",
            "the deployment service's requests are refused in a JSON batch: --graph-batch auto sends single requests here",
        ),
        Err(e) => Check::skipped(group, "json-batch", format!("could not ask: {e}")),
    });
    // How an audience that never had members answers: 404 (read as empty) or an empty list.
    let first = client
        .probe_get("list deployment audiences", "deploymentAudiences")
        .await
        .ok()
        .and_then(|l| l["value"].as_array()?.first()?["id"].as_str().map(str::to_string));
    match first {
        None => out.push(Check::skipped(
            group,
            "unused-audience",
            "the tenant has no deployment audience to read (--write-check makes one)",
        )),
        Some(id) => match client.probe_audience_members(&id, "").await {
            Err(e) if status(&e) == Some(404) => out.push(Check::ok(
                group,
                "unused-audience",
                "an audience that never had members answers 404 (read as empty)",
            )),
            Ok(v) if v["value"].as_array().is_some_and(Vec::is_empty) => out.push(Check::ok(
                group,
                "unused-audience",
                "an audience without members is listed empty",
            )),
            Ok(_) => out.push(Check::skipped(
                group,
                "unused-audience",
                "the audience asked has members",
            )),
            Err(e) => out.push(Check::warning(
                group,
                "unused-audience",
                format!("an audience's members could not be read: {e}"),
                Reason::GRAPH_PERMISSION_MISSING,
            )),
        },
    }
    // Entra ID groups, when a DeviceGroup uses one.
    if entra_groups.is_empty() {
        out.push(Check::skipped(
            group,
            "entra-groups",
            "no DeviceGroup uses spec.entraGroupId",
        ));
    }
    for id in entra_groups.iter().take(5) {
        match client.entra_group_devices(id, 0).await {
            Ok(Some(devices)) => out.push(Check::ok(
                group,
                "entra-groups",
                format!("Entra ID group {id}: {} device(s)", devices.len()),
            )),
            Ok(None) => out.push(Check::failed(
                group,
                "entra-groups",
                format!("Entra ID group {id} does not exist"),
                Reason::ENTRA_GROUP_UNREADABLE,
            )),
            Err(e) => out.push(Check::failed(
                group,
                "entra-groups",
                format!("Entra ID group {id} could not be read: {e}"),
                Reason::ENTRA_GROUP_UNREADABLE,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(roles: &[&str]) -> TokenClaims {
        TokenClaims {
            tenant: Some("t".into()),
            app: Some("a".into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            readable: true,
        }
    }

    fn statuses(c: Option<&TokenClaims>, rings: bool) -> Vec<(String, super::super::Status)> {
        let mut out = Vec::new();
        permissions(c, "tenant", rings, &mut out);
        out.into_iter().map(|c| (c.name, c.status)).collect()
    }

    #[test]
    fn each_feature_is_judged_by_the_roles_it_needs() {
        use super::super::Status::*;
        let all = claims(&[READ_WRITE, "GroupMember.Read.All", "Device.Read.All"]);
        assert!(statuses(Some(&all), true).iter().all(|(_, s)| *s == Ok));
        let read_only = claims(&[READ]);
        assert_eq!(
            statuses(Some(&read_only), false),
            [
                ("permission-deployments".to_string(), Failed),
                ("permission-reads".to_string(), Ok),
                ("permission-entra-groups".to_string(), Warning),
            ]
        );
        assert_eq!(statuses(Some(&read_only), true)[2].1, Failed);
        let mut out = Vec::new();
        permissions(Some(&read_only), "tenant", false, &mut out);
        assert!(
            out[0]
                .found
                .contains("need WindowsUpdates.ReadWrite.All; the token has WindowsUpdates.Read.All"),
            "{}",
            out[0].found
        );
        assert!(out[2].found.contains("GroupMember.Read.All or Group.Read.All or Directory.Read.All and Device.Read.All or Directory.Read.All"), "{}", out[2].found);
        let opaque = TokenClaims::default();
        assert_eq!(
            statuses(Some(&opaque), false),
            [("permissions".to_string(), Skipped)]
        );
    }

    #[test]
    fn a_certificate_is_judged_by_the_days_it_has_left() {
        use super::super::Status::*;
        let now = 1_800_000_000;
        let day = 86_400;
        for (left, status, says) in [
            (400 * day, Ok, "in 400 days"),
            (14 * day, Ok, "in 14 days"),
            (14 * day - 1, Warning, "in 13 day(s)"),
            (3600, Warning, "in 0 day(s)"),
            (0, Failed, "expired at"),
            (-30 * day, Failed, "expired at"),
        ] {
            let c = certificate(now + left, now, "tenant");
            assert_eq!((c.status, c.name.as_str()), (status, "certificate"), "{left}");
            assert!(c.found.contains(says), "{left}: {}", c.found);
            assert_eq!(
                c.reason.is_some(),
                status != Ok,
                "a finding that needs attention links its reason"
            );
        }
    }
}
