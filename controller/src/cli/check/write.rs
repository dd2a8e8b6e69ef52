//! `check --write-check`: one deployment audience and one paused deployment of the newest expeditable
//! entry with no devices (nothing is offered to any device), how long reads take to show each write and
//! each deletion, then both deleted and confirmed gone.
//!
//! Nothing is left behind on any failure path the check can see: what it creates is recorded in a state
//! file before the next step, a create whose answer was lost is found among the deployments created
//! since the check started that carry its audience (as adoption finds a lost create), and a later run
//! first removes whatever an interrupted earlier run recorded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Check, CheckArgs};
use crate::graph::{ContentRequest, GraphClient, GraphError, SettingsRequest};
use crate::reconcile::reasons::Reason;

const GROUP: &str = "write";

/// The longest a read is waited for to show a write.
const VISIBLE_WITHIN: Duration = Duration::from_secs(120);

/// What a run created, recorded before each next step.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub tenant: String,
    pub started: String,
    #[serde(default)]
    pub audience_id: Option<String>,
    #[serde(default)]
    pub deployment_id: Option<String>,
}

/// Where records are kept: `$WUFB_WRITE_CHECK_STATE`, else `$XDG_STATE_HOME/wufb-operator`, else
/// `~/.local/state/wufb-operator`, else the temporary directory.
pub fn state_dir() -> PathBuf {
    std::env::var_os("WUFB_WRITE_CHECK_STATE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("wufb-operator")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/wufb-operator")))
        .unwrap_or_else(|| std::env::temp_dir().join("wufb-operator"))
}

/// The record of tenant `tenant` in `dir`.
pub fn state_file(dir: &Path, tenant: &str) -> PathBuf {
    let safe: String = tenant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("write-check-{safe}.json"))
}

fn save(path: &PathBuf, r: &Record) {
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let _ = std::fs::write(path, serde_json::to_vec_pretty(r).unwrap_or_default());
}

fn load(path: &PathBuf) -> Option<Record> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() < 64 * 1024).then_some(())?;
    serde_json::from_slice(&bytes).ok()
}

/// How long until `probe` answers `true`, polled; `None` past [`VISIBLE_WITHIN`].
async fn until<F, Fut>(mut probe: F) -> Result<Option<Duration>, GraphError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, GraphError>>,
{
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        if probe().await? {
            return Ok(Some(start.elapsed()));
        }
        if start.elapsed() > VISIBLE_WITHIN {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Removes what a record names (and, for a create whose answer was lost, the deployment created since
/// the record's start with its audience); returns what was removed, or the error.
pub async fn clean_up(client: &GraphClient, r: &Record) -> Result<Vec<String>, GraphError> {
    let mut removed = Vec::new();
    let mut deployments: Vec<String> = r.deployment_id.iter().cloned().collect();
    if r.deployment_id.is_none()
        && let (Some(aid), Ok(since)) = (&r.audience_id, chrono::DateTime::parse_from_rfc3339(&r.started))
    {
        deployments.extend(created_with(client, since.to_utc(), aid).await?);
    }
    for id in deployments {
        if client.delete_deployment(&id).await? {
            removed.push(format!("deployment {id}"));
        }
    }
    if let Some(aid) = &r.audience_id
        && client.delete_audience(aid).await?
    {
        removed.push(format!("audience {aid}"));
    }
    Ok(removed)
}

/// Runs the write check with the operator-wide credentials.
pub async fn check(args: &CheckArgs, default: Result<&GraphClient, &anyhow::Error>, out: &mut Vec<Check>) {
    let client = match default {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::skipped(
                GROUP,
                "write-check",
                format!("no operator-wide credentials ({e:#})"),
            ));
            return;
        }
    };
    let budget = args.planner.read_lag_budget;
    let absence = args.planner.absence_confirm;
    run(client, budget, absence, &state_dir(), out).await;
}

/// The write check against `client`, judged against the operator's read-lag budget and absence
/// confirmation; its record kept in `state`.
pub async fn run(
    client: &GraphClient,
    budget: Duration,
    absence: Duration,
    state: &Path,
    out: &mut Vec<Check>,
) {
    let tenant = client.tenant_id().unwrap_or("no-tenant").to_string();
    let path = state_file(state, &tenant);
    if let Some(old) = load(&path) {
        match clean_up(client, &old).await {
            Ok(removed) => {
                let _ = std::fs::remove_file(&path);
                out.push(Check::ok(
                    GROUP,
                    "earlier-run",
                    if removed.is_empty() {
                        format!(
                            "an earlier run's record ({}) named nothing left in Graph",
                            path.display()
                        )
                    } else {
                        format!(
                            "removed what an interrupted earlier run left: {}",
                            removed.join(", ")
                        )
                    },
                ));
            }
            Err(e) => {
                out.push(Check::failed(
                    GROUP,
                    "earlier-run",
                    format!(
                        "what an earlier run left ({}) could not be removed: {e}",
                        path.display()
                    ),
                    Reason::WRITE_CHECK_FAILED,
                ));
                return;
            }
        }
    }
    let entry = match client.expeditable_updates(1).await {
        Ok(e) if !e.is_empty() => e[0].id.clone(),
        Ok(_) => {
            out.push(Check::skipped(
                GROUP,
                "write-check",
                "the catalog lists no expeditable entry to deploy",
            ));
            return;
        }
        Err(e) => {
            out.push(Check::failed(
                GROUP,
                "write-check",
                format!("the catalog could not be read: {e}"),
                Reason::WRITE_CHECK_FAILED,
            ));
            return;
        }
    };
    eprintln!(
        "write check: creating one deployment audience and one paused deployment of catalog entry {entry} with no devices in tenant {tenant} (nothing is offered to any device); both are deleted at the end"
    );
    let mut record = Record {
        tenant,
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ..Default::default()
    };
    save(&path, &record);
    let result = steps(client, &path, &mut record).await;
    // Whatever failed, what was made goes; steps that all succeeded deleted both themselves (and saw
    // the deletion), so nothing is deleted twice.
    let cleaned = match &result {
        Ok(_) => Ok(Vec::new()),
        Err(_) => clean_up(client, &record).await,
    };
    match (&result, &cleaned) {
        (_, Ok(_)) => {
            let _ = std::fs::remove_file(&path);
        }
        (_, Err(e)) => out.push(Check::failed(
            GROUP,
            "clean-up",
            format!(
                "could not delete what the check made ({e}); the next `check --write-check` removes it (recorded in {})",
                path.display()
            ),
            Reason::WRITE_CHECK_FAILED,
        )),
    }
    match result {
        Err((step, e)) => out.push(Check::failed(
            GROUP,
            "write-check",
            format!("{step} failed: {e}"),
            Reason::WRITE_CHECK_FAILED,
        )),
        Ok(lag) => {
            out.push(Check::ok(
                GROUP,
                "write-check",
                format!(
                    "created, paused, read back and deleted: the audience showed after {}, the deployment after {}, its deletion after {}",
                    ms(lag.audience),
                    ms(lag.deployment),
                    ms(lag.deletion)
                ),
            ));
            judge(&lag, budget, absence, out);
            if cleaned.is_ok() {
                out.push(Check::ok(
                    GROUP,
                    "clean-up",
                    "the tenant is as the check found it",
                ));
            }
        }
    }
}

/// The read lag measured after each kind of write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    pub audience: Duration,
    pub deployment: Duration,
    pub deletion: Duration,
}

/// The measured lag against the operator's settings: a write shown later than --read-lag-budget may be
/// sent twice, and a create shown later than --absence-confirm may be created twice.
pub fn judge(lag: &Lag, budget: Duration, absence: Duration, out: &mut Vec<Check>) {
    let worst = lag.audience.max(lag.deployment).max(lag.deletion);
    let recommend = |d: Duration| Duration::from_secs((d.as_secs_f64() * 2.0).ceil() as u64 + 1);
    let settings = format!(
        "--read-lag-budget {}s, --absence-confirm {}s",
        budget.as_secs(),
        absence.as_secs()
    );
    if lag.deployment >= absence {
        out.push(Check::failed(
            GROUP,
            "read-lag",
            format!(
                "a new deployment showed after {}, past --absence-confirm {}s: a pass could create it twice; set --absence-confirm {}s",
                ms(lag.deployment),
                absence.as_secs(),
                recommend(lag.deployment).as_secs()
            ),
            Reason::READ_LAG_OVER_BUDGET,
        ));
    } else if worst > budget {
        out.push(Check::warning(
            GROUP,
            "read-lag",
            format!(
                "writes showed after up to {} ({settings}): a pass may send a write again before Graph shows it; set --read-lag-budget {}s",
                ms(worst),
                recommend(worst).as_secs()
            ),
            Reason::READ_LAG_OVER_BUDGET,
        ));
    } else {
        out.push(Check::ok(
            GROUP,
            "read-lag",
            format!("writes showed after up to {} ({settings})", ms(worst)),
        ));
    }
}

type StepError = (&'static str, GraphError);

async fn steps(client: &GraphClient, path: &PathBuf, record: &mut Record) -> Result<Lag, StepError> {
    let aid = client
        .create_audience()
        .await
        .map_err(|e| ("creating the deployment audience", e))?;
    record.audience_id = Some(aid.clone());
    save(path, record);
    let aid_ref = aid.as_str();
    let audience = until(|| async move {
        Ok(client.probe_audience_members(aid_ref, "").await.is_ok()
            || client
                .probe_get(
                    "get deployment audience",
                    &format!("deploymentAudiences/{aid_ref}"),
                )
                .await
                .is_ok())
    })
    .await
    .map_err(|e| ("reading the audience back", e))?
    .ok_or_else(|| ("reading the audience back", not_shown("the audience")))?;
    let entry = client
        .expeditable_updates(1)
        .await
        .map_err(|e| ("reading the catalog", e))?
        .into_iter()
        .next()
        .map(|e| e.id)
        .ok_or_else(|| ("reading the catalog", not_shown("an expeditable entry")))?;
    let settings = SettingsRequest {
        days_until_forced_reboot: None,
        offer_as_optional: None,
        readiness_test: false,
    };
    let created = client
        .create_deployment(&ContentRequest::CatalogEntry(entry), &settings, Some(&aid))
        .await;
    let id = match created {
        Ok(d) => d.id,
        // A lost answer: found by its audience among what was created since the start, as soon as
        // reads show it.
        Err(e @ GraphError::AmbiguousCreate { .. }) => {
            let since = chrono::DateTime::parse_from_rfc3339(&record.started)
                .map(|t| t.to_utc())
                .unwrap_or_else(|_| chrono::Utc::now());
            // Looked for as long as reads lagged the audience's create, four times over (at least
            // 5 s): what is not found by then is found by the clean-up's list, or the next run's.
            let within = (audience * 4).clamp(Duration::from_secs(5), VISIBLE_WITHIN);
            match find_created(client, since, &aid, within).await {
                Ok(Some(id)) => id,
                _ => return Err(("creating the paused deployment", e)),
            }
        }
        Err(e) => return Err(("creating the paused deployment", e)),
    };
    record.deployment_id = Some(id.clone());
    save(path, record);
    client
        .set_paused(&id, true)
        .await
        .map_err(|e| ("pausing the deployment", e))?;
    let id_ref = id.as_str();
    let deployment = until(|| async move { Ok(client.get_deployment(id_ref).await?.is_some()) })
        .await
        .map_err(|e| ("reading the deployment back", e))?
        .ok_or_else(|| ("reading the deployment back", not_shown("the deployment")))?;
    client
        .delete_deployment(&id)
        .await
        .map_err(|e| ("deleting the deployment", e))?;
    let deletion = until(|| async move { Ok(client.get_deployment(id_ref).await?.is_none()) })
        .await
        .map_err(|e| ("confirming the deletion", e))?
        .ok_or_else(|| ("confirming the deletion", not_shown("the deletion")))?;
    client
        .delete_audience(&aid)
        .await
        .map_err(|e| ("deleting the audience", e))?;
    Ok(Lag {
        audience,
        deployment,
        deletion,
    })
}

/// The deployments created since `since` with audience `aid` (asked of each when the list does not
/// name its audience).
async fn created_with(
    client: &GraphClient,
    since: chrono::DateTime<chrono::Utc>,
    aid: &str,
) -> Result<Vec<String>, GraphError> {
    let mut out = Vec::new();
    for d in client.deployments_created_since(since).await? {
        let audience = match d.audience_id() {
            Some(a) => Some(a.to_string()),
            None => client.deployment_audience_id(&d.id).await?,
        };
        if audience.as_deref() == Some(aid) {
            out.push(d.id.clone());
        }
    }
    Ok(out)
}

/// The deployment created since `since` with audience `aid`, polled until reads show it (at most
/// `within`).
async fn find_created(
    client: &GraphClient,
    since: chrono::DateTime<chrono::Utc>,
    aid: &str,
    within: Duration,
) -> Result<Option<String>, GraphError> {
    let start = tokio::time::Instant::now();
    loop {
        if let Some(id) = created_with(client, since, aid).await?.into_iter().next() {
            return Ok(Some(id));
        }
        if start.elapsed() > within {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn not_shown(what: &str) -> GraphError {
    GraphError::Protocol {
        operation: "write check",
        detail: format!("{what} did not show within {}s", VISIBLE_WITHIN.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::check::Status;

    #[test]
    fn measured_lag_is_judged_against_the_budget_and_the_absence_confirmation() {
        let lag = |a, d, x| Lag {
            audience: Duration::from_millis(a),
            deployment: Duration::from_millis(d),
            deletion: Duration::from_millis(x),
        };
        let judged = |l: Lag, budget: u64, absence: u64| {
            let mut out = Vec::new();
            judge(
                &l,
                Duration::from_secs(budget),
                Duration::from_secs(absence),
                &mut out,
            );
            (out[0].status, out[0].found.clone())
        };
        assert_eq!(judged(lag(10, 20, 30), 60, 120).0, Status::Ok);
        let (s, found) = judged(lag(10, 20, 3_500), 2, 120);
        assert_eq!(s, Status::Warning);
        assert!(found.contains("set --read-lag-budget 8s"), "{found}");
        let (s, found) = judged(lag(10, 130_000, 30), 60, 120);
        assert_eq!(s, Status::Failed);
        assert!(found.contains("set --absence-confirm 261s"), "{found}");
    }

    #[test]
    fn the_state_file_is_per_tenant_and_safe_to_name() {
        let p = state_file(Path::new("/tmp"), "../etc/x y");
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, "write-check-___etc_x_y.json");
    }
}
