//! `wufb-operator promote|abort|retry NAME` (also `kubectl wufb promote|abort|retry`): set the rollout
//! annotation the controller acts on, so that nobody has to remember its spelling. `promote` names a
//! wave (`--wave`, else the next wave not sent yet): the waves up to it are sent past their gates, never
//! past a halt, an abort or spec.paused. Each carries the time of the request (`promote`: `WAVE@TIME`):
//! each new value is a new request, decided once. A request the rollout's state refuses is refused here
//! first, with the reason: `promote` on a paused, aborted or halted rollout, `retry` on one that is not
//! halted, `--wave` on `retry` or `abort`.

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
    let recorded = obj.status.as_ref().and_then(|s| s.rollout.as_ref());
    let halted = recorded.is_some_and(|r| r.halt.is_some());
    let aborted = recorded.is_some_and(|r| r.aborted.is_some());
    if request != Request::Promote && wave.is_some() {
        anyhow::bail!(
            "--wave is for promote only: {} acts on the whole rollout",
            request.verb()
        );
    }
    Ok(match request {
        Request::Abort => (ABORT_ANNOTATION, stamp),
        Request::Retry if !halted => {
            anyhow::bail!("{name} is not halted: retry lifts a halt, and there is none")
        }
        Request::Retry => (RETRY_ANNOTATION, stamp),
        Request::Promote if obj.spec.paused => {
            anyhow::bail!(
                "{name} has spec.paused set: nothing is promoted while it is; set paused: false first"
            )
        }
        Request::Promote if aborted => anyhow::bail!(
            "{name} is aborted: no wave is promoted until the spec changes (see status.rollout.aborted)"
        ),
        Request::Promote if halted => {
            anyhow::bail!("{name} is halted: run retry first (status.rollout.halt says why it halted)")
        }
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
            (PROMOTE_ANNOTATION, format!("{wave}@{stamp}"))
        }
    })
}

impl Request {
    fn verb(self) -> &'static str {
        match self {
            Request::Promote => "promote",
            Request::Abort => "abort",
            Request::Retry => "retry",
        }
    }
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
    let obj = api.get(&args.name).await.map_err(|e| {
        super::cluster::object_error(
            e,
            &format!("ExpeditedDeployment {namespace}/{}", args.name),
            &format!("kubectl get expd -n {namespace}"),
        )
    })?;
    let (key, value) = annotation(request, &obj, args.wave.as_deref(), chrono::Utc::now())?;
    let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
    api.patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating ExpeditedDeployment {namespace}/{}", args.name))?;
    let what = match request {
        Request::Promote => format!(
            "promote requested through wave {}",
            crate::crd::annotations::promote_wave(&value)
        ),
        Request::Abort => "abort requested".to_string(),
        Request::Retry => "retry requested".to_string(),
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
        let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert_eq!(
            annotation(Request::Promote, &sent, None, now).unwrap(),
            (PROMOTE_ANNOTATION, format!("broad@{stamp}"))
        );
        assert_eq!(
            annotation(Request::Promote, &obj(serde_json::json!({})), None, now)
                .unwrap()
                .1,
            format!("pilot@{stamp}")
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

    #[test]
    fn requests_the_rollout_cannot_take_are_refused_with_the_reason() {
        let now = chrono::Utc::now();
        let with = |rollout: serde_json::Value| obj(serde_json::json!({"rollout": rollout}));
        let halted = with(
            serde_json::json!({"phase": "Halted", "halt": {"wave": "pilot", "time": "t", "failed": 1, "devices": 2, "limitPercent": 20, "limitField": "f"}}),
        );
        let aborted =
            with(serde_json::json!({"phase": "Aborted", "aborted": {"time": "t", "generation": 1}}));
        let mut paused = with(serde_json::json!({"phase": "Paused"}));
        paused.spec.paused = true;
        let waiting = with(serde_json::json!({"phase": "Waiting"}));
        for (request, o, wave, says) in [
            (Request::Promote, &halted, None, "is halted: run retry first"),
            (Request::Promote, &aborted, None, "is aborted"),
            (Request::Promote, &paused, None, "spec.paused"),
            (Request::Retry, &waiting, None, "is not halted"),
            (
                Request::Retry,
                &halted,
                Some("broad"),
                "--wave is for promote only",
            ),
            (
                Request::Abort,
                &waiting,
                Some("broad"),
                "--wave is for promote only",
            ),
        ] {
            let e = annotation(request, o, wave, now).unwrap_err().to_string();
            assert!(e.contains(says), "{request:?}: {e}");
        }
        assert_eq!(
            annotation(Request::Retry, &halted, None, now).unwrap().0,
            RETRY_ANNOTATION
        );
        assert_eq!(
            annotation(Request::Abort, &halted, None, now).unwrap().0,
            ABORT_ANNOTATION
        );
    }
}
