//! One pass shape for the kinds that reach Graph through a tenant (ExpeditedDeployment, DeviceGroup),
//! written once: the pass is counted and timed, its tenant comes first (a pass that cannot use its
//! connection stops before anything reaches Graph), the finalizer goes on before the first Graph write,
//! then the kind's apply or cleanup runs. Each kind gives those two and decides nothing here.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use tracing::Instrument;

use super::context::Context;
use super::error::Error;
use super::finalizer::with_finalizer;
use super::metrics::KindLabel;
use super::tenancy::{self, Stop, Tenanted};
use crate::crd::FINALIZER;

/// A kind the pass shape drives.
pub trait Kind: Tenanted + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> {
    /// Its name in metrics and logs.
    const KIND: &'static str;

    /// What the kind checks once its tenant is known (a deployment's groups must share its connection).
    fn check(&self, _pass: &Context) -> Result<(), Stop> {
        Ok(())
    }

    /// A pass over a live object: observe, plan, act, report.
    fn apply(&self, ctx: &Context, api: &Api<Self>) -> impl Future<Output = Result<Action, Error>> + Send;

    /// A pass over an object being deleted: its Graph cleanup.
    fn cleanup(&self, ctx: &Context, api: &Api<Self>) -> impl Future<Output = Result<Action, Error>> + Send;
}

/// One pass over an admitted object (see `runtime` for admission).
pub async fn reconcile<K: Kind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        kind = K::KIND,
        name = %obj.name_any(),
        namespace = obj.namespace().unwrap_or_default()
    );
    async move {
        let started = Instant::now();
        let label = KindLabel { kind: K::KIND.into() };
        ctx.metrics.reconciles.get_or_create(&label).inc();
        let api: Api<K> = ctx.api(obj.as_ref());
        let ctx = match tenancy::enter(&ctx, &obj, &api, |pass| obj.check(pass)).await? {
            Ok(pass) => pass,
            Err(stopped) => return Ok(stopped),
        };
        // The finalizer goes on first; the pass then goes on with the object as written.
        let obj = with_finalizer(&api, &ctx.writes, obj).await?;
        let result = finalizer(&api, FINALIZER, obj, |event| async {
            match event {
                Finalizer::Apply(o) => o.apply(&ctx, &api).await,
                Finalizer::Cleanup(o) => o.cleanup(&ctx, &api).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)));
        ctx.metrics
            .duration
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        result
    }
    .instrument(span)
    .await
}
