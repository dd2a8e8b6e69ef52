//! State metrics, read from the controllers' object stores at each scrape (as kube-state-metrics reads
//! its informers): objects by kind, condition, status and reason; one info series per rollout with its
//! phase and wave, and its devices by state; each connection's sign-in state.
//!
//! `wufb_rollout_*` and `wufb_connection_ready` carry object names in their labels, a deliberate
//! exception to the rule that metrics name no object: an alert must say which rollout halted and which
//! tenant cannot sign in. They are bounded by the objects: a cluster of 1,000 rollouts exports 1,000
//! `wufb_rollout_info` and 4,000 `wufb_rollout_progress_devices` series, plus one per connection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::crd::{ClusterGraphConnection, DeviceGroup, ExpeditedDeployment, GraphConnection};

/// The stores the state metrics read (empty until the controllers run), and the certificate expiry of
/// the operator-wide credential (from the environment or `--credentials-secret`), when it is one.
#[derive(Clone, Default)]
pub struct StateSource(Arc<Mutex<Option<Stores>>>, Arc<Mutex<Option<i64>>>);

impl std::fmt::Debug for StateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateSource")
    }
}

/// The controllers' stores.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<ExpeditedDeployment>,
    pub groups: Store<DeviceGroup>,
    pub connections: Store<GraphConnection>,
    pub cluster_connections: Store<ClusterGraphConnection>,
}

impl StateSource {
    /// Serves these stores from now on.
    pub fn set(&self, stores: Stores) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(stores);
    }

    fn get(&self) -> Option<Stores> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Exports the operator-wide credential's certificate expiry (seconds since the Unix epoch).
    pub fn set_default_certificate_expiry(&self, not_after: Option<i64>) {
        *self.1.lock().unwrap_or_else(|e| e.into_inner()) = not_after;
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ObjectLabels {
    kind: String,
    condition: String,
    status: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct RolloutLabels {
    namespace: String,
    name: String,
    phase: String,
    wave: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct DeviceLabels {
    namespace: String,
    name: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct CertificateLabels {
    kind: String,
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ConnectionLabels {
    kind: String,
    namespace: String,
    name: String,
    reason: String,
}

/// The collector registered as `wufb_*` state metrics.
#[derive(Debug)]
pub struct StateCollector(pub StateSource);

fn count_conditions(kind: &str, conditions: &[Condition], into: &mut BTreeMap<ObjectLabels, i64>) {
    for c in conditions {
        *into
            .entry(ObjectLabels {
                kind: kind.into(),
                condition: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
            })
            .or_default() += 1;
    }
}

fn ready(conditions: &[Condition]) -> (i64, String) {
    conditions
        .iter()
        .find(|c| c.type_ == crate::reconcile::reasons::READY)
        .map_or((0, "Unknown".into()), |c| {
            (i64::from(c.status == "True"), c.reason.clone())
        })
}

/// A connection's conditions counted, and its sign-in state as a series.
fn connection(
    kind: &str,
    namespace: String,
    name: String,
    conditions: &[Condition],
    objects: &mut BTreeMap<ObjectLabels, i64>,
    series: &mut Vec<(ConnectionLabels, i64)>,
) {
    count_conditions(kind, conditions, objects);
    let (value, reason) = ready(conditions);
    series.push((
        ConnectionLabels {
            kind: kind.into(),
            namespace,
            name,
            reason,
        },
        value,
    ));
}

fn family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A connection's certificate expiry from its status, as a series.
fn expiry(
    kind: &str,
    namespace: String,
    name: String,
    status: Option<&crate::crd::GraphConnectionStatus>,
) -> Option<(CertificateLabels, i64)> {
    let at = status?.certificate_expiry_time.as_deref()?;
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?.timestamp();
    Some((
        CertificateLabels {
            kind: kind.into(),
            namespace,
            name,
        },
        at,
    ))
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let default_expiry = *self.0.1.lock().unwrap_or_else(|e| e.into_inner());
        let mut certificates: Vec<(CertificateLabels, i64)> = default_expiry
            .map(|at| {
                (
                    CertificateLabels {
                        kind: "default".into(),
                        namespace: String::new(),
                        name: String::new(),
                    },
                    at,
                )
            })
            .into_iter()
            .collect();
        let Some(stores) = self.0.get() else {
            return certificate_family(&mut encoder, certificates);
        };
        let mut objects = BTreeMap::new();
        let mut info = Vec::new();
        let mut devices = Vec::new();
        for d in stores.deployments.state() {
            let status = d.status.as_ref();
            count_conditions(
                "ExpeditedDeployment",
                status.map(|s| s.conditions.as_slice()).unwrap_or_default(),
                &mut objects,
            );
            let Some(r) = status.and_then(|s| s.rollout.as_ref()) else {
                continue;
            };
            let (namespace, name) = (d.namespace().unwrap_or_default(), d.name_any());
            info.push((
                RolloutLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    phase: format!("{:?}", r.phase),
                    wave: r.current_wave.clone().unwrap_or_default(),
                },
                1,
            ));
            let p = status.and_then(|s| s.progress.as_ref());
            for (state, n) in [
                ("upToDate", p.map(|p| p.up_to_date)),
                ("pending", p.map(|p| p.pending)),
                ("failed", p.map(|p| p.failed)),
                ("notReporting", p.map(|p| p.not_reporting)),
            ] {
                devices.push((
                    DeviceLabels {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        state: state.into(),
                    },
                    i64::try_from(n.unwrap_or_default()).unwrap_or(i64::MAX),
                ));
            }
        }
        for g in stores.groups.state() {
            let conditions = g
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            count_conditions("DeviceGroup", conditions, &mut objects);
        }
        let mut connections = Vec::new();
        let no_conditions: &[Condition] = &[];
        for c in stores.connections.state() {
            let conditions = c
                .status
                .as_ref()
                .map_or(no_conditions, |s| s.conditions.as_slice());
            let (ns, name) = (c.namespace().unwrap_or_default(), c.name_any());
            certificates.extend(expiry(
                "GraphConnection",
                ns.clone(),
                name.clone(),
                c.status.as_ref(),
            ));
            connection(
                "GraphConnection",
                ns,
                name,
                conditions,
                &mut objects,
                &mut connections,
            );
        }
        for c in stores.cluster_connections.state() {
            let conditions = c
                .status
                .as_ref()
                .map_or(no_conditions, |s| s.conditions.as_slice());
            let name = c.name_any();
            certificates.extend(expiry(
                "ClusterGraphConnection",
                String::new(),
                name.clone(),
                c.status.as_ref(),
            ));
            connection(
                "ClusterGraphConnection",
                String::new(),
                name,
                conditions,
                &mut objects,
                &mut connections,
            );
        }
        family(
            &mut encoder,
            "wufb_objects",
            "Objects by kind and by each condition's status and reason (no object names)",
            objects,
        )?;
        family(
            &mut encoder,
            "wufb_rollout_info",
            "One series per ExpeditedDeployment with spec.rollout: its phase and the last wave sent",
            info,
        )?;
        family(
            &mut encoder,
            "wufb_rollout_progress_devices",
            "An ExpeditedDeployment's targeted devices by state (upToDate, pending, failed, notReporting), as last polled",
            devices,
        )?;
        family(
            &mut encoder,
            "wufb_connection_ready",
            "Whether a connection signed in and read Graph at its last check (1), with its Ready reason",
            connections,
        )?;
        certificate_family(&mut encoder, certificates)
    }
}

fn certificate_family(
    encoder: &mut DescriptorEncoder,
    series: Vec<(CertificateLabels, i64)>,
) -> Result<(), std::fmt::Error> {
    family(
        encoder,
        "wufb_connection_certificate_expiration_timestamp_seconds",
        "When a certificate credential's certificate expires (Unix seconds): each connection's, and kind=\"default\" for the operator-wide credential",
        series,
    )
}
