//! `wufb-operator promote|abort|retry NAME` (also `kubectl wufb promote|abort|retry`): set the rollout
//! annotation the controller acts on, so that nobody has to remember its spelling. `promote` names a
//! wave (`--wave`, else the next wave not sent yet): the waves up to it are sent past their gates, never
//! past a halt, an abort or spec.paused. `abort` and `retry` carry the time of the request: each new
//! value is a new request, acted on once.

use anyhow::Context as _;
use kube::api::{Api, Patch, PatchParams};

use crate::crd::{ABORT_ANNOTATION, ExpeditedDeployment, PROMOTE_ANNOTATION, RETRY_ANNOTATION};

/// Which request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Promote,
    Abort,
    Retry,
}

/// Flags of `promote`, `abort` and `retry`.
#[derive(clap::Args, Debug, Clone)]
pub struct RolloutArgs {
    /// The ExpeditedDeployment.
    pub name: String,
    /// Namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// promote: the wave to promote up to (default: the next wave not sent yet).
    #[arg(long)]
    pub wave: Option<String>,
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
}

/// The annotation and value a request sets on `obj`, or why it cannot be made.
pub fn annotation(
    request: Request,
    obj: &ExpeditedDeployment,
    wave: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<(&'static str, String)> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let rollout =
        obj.spec.rollout.as_ref().with_context(|| {
            format!("{name} has no spec.rollout: there is no wave to promote, halt or abort")
        })?;
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(match request {
        Request::Abort => (ABORT_ANNOTATION, stamp),
        Request::Retry => (RETRY_ANNOTATION, stamp),
        Request::Promote => {
            let names: Vec<&str> = rollout.waves.iter().map(|w| w.name.as_str()).collect();
            let wave = match wave {
                Some(w) if names.contains(&w) => w.to_string(),
                Some(w) => anyhow::bail!("{name} has no wave '{w}' (its waves: {})", names.join(", ")),
                None => {
                    let sent = obj.status.as_ref().and_then(|s| s.rollout.as_ref());
                    let is_sent = |n: &str| {
                        sent.is_some_and(|r| r.waves.iter().any(|w| w.name == n && w.promoted_time.is_some()))
                    };
                    names
                        .iter()
                        .find(|n| !is_sent(n))
                        .with_context(|| format!("every wave of {name} is sent already"))?
                        .to_string()
                }
            };
            (PROMOTE_ANNOTATION, wave)
        }
    })
}

/// Runs one request; exit code 0, 1 on an error.
pub async fn run(request: Request, args: &RolloutArgs) -> anyhow::Result<()> {
    let (client, namespace) = super::cluster::live(
        &args.cluster,
        args.namespace.as_deref(),
        "this command writes to the cluster",
    )
    .await?;
    let api: Api<ExpeditedDeployment> = Api::namespaced(client, &namespace);
    let obj = api
        .get(&args.name)
        .await
        .with_context(|| format!("ExpeditedDeployment {namespace}/{}", args.name))?;
    let (key, value) = annotation(request, &obj, args.wave.as_deref(), chrono::Utc::now())?;
    let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
    api.patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating ExpeditedDeployment {namespace}/{}", args.name))?;
    let what = match request {
        Request::Promote => format!("promote requested through wave {value}"),
        Request::Abort => "abort requested".to_string(),
        Request::Retry => {
            let halted = obj
                .status
                .as_ref()
                .and_then(|s| s.rollout.as_ref())
                .is_some_and(|r| r.halt.is_some());
            if halted {
                "retry requested".to_string()
            } else {
                "retry requested (the rollout is not halted: nothing to lift)".to_string()
            }
        }
    };
    println!(
        "expediteddeployment.wufb.dev/{}: {what} ({key}={value})",
        args.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(status: serde_json::Value) -> ExpeditedDeployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
            "metadata": {"name": "r", "namespace": "n"},
            "spec": {"content": {"latest": true}, "rollout": {"waves": [
                {"name": "pilot", "members": [{"deviceGroup": "a"}]},
                {"name": "broad", "members": [{"deviceGroup": "b"}], "gate": {"manual": true}}]}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn promote_names_the_next_wave_not_sent_and_refuses_a_wave_that_is_not_there() {
        let now = chrono::Utc::now();
        let sent = obj(serde_json::json!({"rollout": {"phase": "Waiting", "waves": [
            {"name": "pilot", "devices": 1, "promotedTime": "2026-12-01T00:00:00Z"}, {"name": "broad", "devices": 1}]}}));
        assert_eq!(
            annotation(Request::Promote, &sent, None, now).unwrap(),
            (PROMOTE_ANNOTATION, "broad".to_string())
        );
        assert_eq!(
            annotation(Request::Promote, &obj(serde_json::json!({})), None, now)
                .unwrap()
                .1,
            "pilot"
        );
        let e = annotation(Request::Promote, &sent, Some("borad"), now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no wave 'borad'") && e.contains("pilot, broad"), "{e}");
        let (k, v) = annotation(Request::Abort, &sent, None, now).unwrap();
        assert_eq!(k, ABORT_ANNOTATION);
        assert!(v.starts_with(&now.format("%Y-%m-%dT").to_string()), "{v}");
        let mut plain = sent.clone();
        plain.spec.rollout = None;
        assert!(
            annotation(Request::Retry, &plain, None, now)
                .unwrap_err()
                .to_string()
                .contains("no spec.rollout")
        );
    }
}
