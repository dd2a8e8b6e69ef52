//! A panic in a pass is contained to its object. kube-runtime unwraps each reconcile task's result
//! inside its own stream, so one panicking pass would stop every controller; here each pass (of every
//! kind, the quarantine's handling and the connection passes) runs inside [`Contained`], which catches
//! the panic where it is raised and turns it into an [`Error::Internal`] for that object: logged once
//! with the object's key, counted in `wufb_reconcile_panics_total{kind}`, a Warning Event and a Stalled
//! condition naming an internal error, and retried with backoff. The process stays up and every other
//! object keeps converging. A deployment whose spec asks for a pause still gets it: the brake runs on
//! its own before the pass is tried again.

use std::sync::Arc;

use kube::Resource;
use serde_json::Value;

use super::decode::Which;
use super::quarantine;
pub use crate::panics::{Contained, Panicked};
use crate::reconcile::metrics::KindLabel;
use crate::reconcile::reasons::Reason;
use crate::reconcile::{Context, Error};

/// Reports a pass over `obj` that panicked and returns the error that sends it to the backoff: the
/// log line, the metric, the brake (a deployment whose spec asks for a pause), a Stalled condition and
/// a Warning Event.
pub async fn panicked<K>(ctx: &Arc<Context>, which: Which, obj: &K, caught: Panicked) -> Error
where
    K: Resource<DynamicType = ()> + crate::connections::UsesConnection + serde::Serialize,
{
    let meta = obj.meta();
    let kind = kind_of(which);
    let key = format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    );
    tracing::error!(kind, object = %key, location = %caught.location, panic = %caught.message, "a pass panicked; the object is retried with backoff and every other object goes on");
    ctx.metrics
        .panics
        .get_or_create(&KindLabel { kind: kind.into() })
        .inc();
    let raw = serde_json::to_value(obj).unwrap_or(Value::Null);
    let mut message = format!(
        "internal error: the operator failed while reconciling this object (at {}; the operator's log has the details, please report it); it is retried with backoff and other objects are not affected",
        caught.location
    );
    if which == Which::Deployment {
        match brake(ctx, obj, &raw).await {
            Ok(Some(note)) => {
                message.push_str("; ");
                message.push_str(&note);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(kind, object = %key, error = %e, "the brake after a panic could not pause the deployment; retrying with the pass");
                message.push_str("; the deployment could not be paused yet (retrying)");
            }
        }
    }
    let old = quarantine::raw_conditions(&raw);
    let stalled = Contained::new(quarantine::stall(
        ctx,
        which,
        meta,
        &old,
        Reason::INTERNAL_ERROR,
        message,
        "Reconcile",
    ))
    .await;
    match stalled {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(kind, object = %key, error = %e, "could not write the status of an object whose pass panicked")
        }
        Err(again) => {
            tracing::error!(kind, object = %key, location = %again.location, panic = %again.message, "reporting a panicked pass panicked too")
        }
    }
    Error::Internal {
        location: caught.location,
    }
}

/// Reports a pass that panicked when there is no object to mark (it is gone from the store) or the kind
/// has no status to stall (connections report through their own pass): the log line and the metric.
pub fn panicked_without_object(ctx: &Context, kind: String, name: &str, caught: Panicked) -> Error {
    tracing::error!(kind, object = %name, location = %caught.location, panic = %caught.message, "a pass panicked; the object is retried with backoff and every other object goes on");
    ctx.metrics.panics.get_or_create(&KindLabel { kind }).inc();
    Error::Internal {
        location: caught.location,
    }
}

/// The pause a panicking deployment's spec asks for, through its own connection, contained too.
async fn brake<K>(ctx: &Arc<Context>, obj: &K, raw: &Value) -> Result<Option<String>, String>
where
    K: Resource<DynamicType = ()> + crate::connections::UsesConnection,
{
    let (facts, unreadable) = quarantine::deployment_facts(obj.meta(), raw);
    let pass = match ctx.for_object(obj) {
        Ok(pass) => pass,
        Err(refusal) => {
            return Ok(facts
                .spec
                .paused
                .then(|| format!("the deployment was not paused: {}", refusal.message())));
        }
    };
    match Contained::new(async { quarantine::brake(&pass, &facts, &unreadable).await }).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(again) => Err(format!("the brake panicked too at {}", again.location)),
    }
}

fn kind_of(which: Which) -> &'static str {
    match which {
        Which::Deployment => crate::reconcile::expedited::KIND,
        Which::Group => crate::reconcile::device_group::KIND,
    }
}
