//! Admission of passes (controller wiring, not reconcile logic): at most N of a kind do work at once, and a pass that acts on a spec nobody
//! has acted on yet goes before a pass that only verifies or resyncs.
//!
//! kube-runtime's own concurrency limit hands free slots to pending objects in no particular order, so
//! under load a new object (an emergency patch waiting for its first Graph write) queued behind
//! hundreds of routine verification passes. With this gate the controller runs every scheduled pass as
//! a cheap waiting future (it holds only the shared object) and admits them here: urgent first, then
//! routine, each in arrival order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use kube::Resource;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::oneshot;

/// How soon a pass should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A new object, a spec change not yet acted on, or a deletion.
    Urgent,
    /// Verification of writes already sent, a periodic resync, a retry of a converged object.
    Routine,
}

impl Class {
    /// The class of a pass over `obj`, from its generation and the generation its status reports.
    pub fn of<K: Resource>(obj: &K, observed_generation: Option<i64>) -> Class {
        let m = obj.meta();
        if m.deletion_timestamp.is_some()
            || observed_generation.is_none()
            || m.generation != observed_generation
        {
            Class::Urgent
        } else {
            Class::Routine
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// Set on shutdown: nobody else is admitted.
    closed: bool,
    free: usize,
    urgent: VecDeque<oneshot::Sender<()>>,
    routine: VecDeque<oneshot::Sender<()>>,
}

/// A counting gate with two queues, whose lengths it reports in two gauges.
#[derive(Debug)]
pub struct Gate {
    inner: Mutex<Inner>,
    depth: (Gauge, Gauge),
}

/// Held while a pass works; dropping it admits the next waiter.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// A waiter; dropped before admission (the pass was cancelled), it gives back a permit it was handed.
struct Waiting {
    gate: Arc<Gate>,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.release();
            }
        }
    }
}

impl Gate {
    /// A gate admitting `permits` passes at once (at least one).
    pub fn new(permits: usize) -> Arc<Gate> {
        Self::with_depth(permits, (Gauge::default(), Gauge::default()))
    }

    /// A gate that keeps `(urgent, routine)` at the number of passes waiting in each queue.
    pub fn with_depth(permits: usize, depth: (Gauge, Gauge)) -> Arc<Gate> {
        Arc::new(Gate {
            depth,
            inner: Mutex::new(Inner {
                closed: false,
                free: permits.max(1),
                urgent: VecDeque::new(),
                routine: VecDeque::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for admission; `None` once the gate is closed (the process is stopping).
    pub async fn enter(self: &Arc<Self>, class: Class) -> Option<Permit> {
        loop {
            let rx = {
                let mut g = self.lock();
                if g.closed {
                    return None;
                }
                if g.free > 0 {
                    g.free -= 1;
                    return Some(Permit { gate: self.clone() });
                }
                let (tx, rx) = oneshot::channel();
                match class {
                    Class::Urgent => g.urgent.push_back(tx),
                    Class::Routine => g.routine.push_back(tx),
                }
                self.report(&g);
                rx
            };
            let mut waiting = Waiting {
                gate: self.clone(),
                rx: Some(rx),
            };
            let handed = match waiting.rx.as_mut() {
                Some(rx) => rx.await.is_ok(),
                None => false,
            };
            waiting.rx = None;
            if handed {
                return Some(Permit { gate: self.clone() });
            }
        }
    }

    /// Closes the gate on shutdown: passes waiting for admission give up at once (they would otherwise
    /// all run before the process could stop), and no new pass is admitted. Admitted passes finish.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.urgent.clear();
        g.routine.clear();
        self.report(&g);
    }

    fn report(&self, g: &Inner) {
        self.depth.0.set(g.urgent.len() as i64);
        self.depth.1.set(g.routine.len() as i64);
    }

    /// Passes currently waiting (urgent, routine).
    pub fn waiting(&self) -> (usize, usize) {
        let g = self.lock();
        (g.urgent.len(), g.routine.len())
    }

    fn release(&self) {
        let mut g = self.lock();
        loop {
            let Some(next) = g.urgent.pop_front().or_else(|| g.routine.pop_front()) else {
                g.free += 1;
                self.report(&g);
                return;
            };
            // A waiter that has gone away refuses the hand-off; try the next one.
            if next.send(()).is_ok() {
                self.report(&g);
                return;
            }
        }
    }
}

/// Admits a pass over `obj` through `gate` and returns the permit with the newest copy of the object:
/// the store's, or, when this process has written the object since the store's copy, a fresh read from
/// the API server. `Ok(None)` if the object is gone. A waiting pass holds only the key: a thousand
/// passes queued at the gate must not each pin a (soon stale) copy of their object.
pub async fn admit<K>(
    gate: &Arc<Gate>,
    store: &kube::runtime::reflector::Store<K>,
    api: &kube::Api<K>,
    writes: &crate::reconcile::writes::LastWrites,
    obj: Arc<K>,
    observed_generation: Option<i64>,
) -> Result<Option<(Permit, Arc<K>)>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + 'static,
{
    let class = Class::of(obj.as_ref(), observed_generation);
    let key = kube::runtime::reflector::ObjectRef::from_obj(obj.as_ref());
    drop(obj);
    let Some(permit) = gate.enter(class).await else {
        return Ok(None);
    };
    let Some(newest) = store.get(&key) else {
        if let Some(uid) = &key.extra.uid {
            writes.forget(uid);
        }
        return Ok(None);
    };
    if writes.is_current(newest.meta()) {
        return Ok(Some((permit, newest)));
    }
    // The store has not caught up with this process's own write: read the object itself.
    match api.get_opt(&key.name).await? {
        Some(fresh) => {
            writes.record(fresh.meta());
            Ok(Some((permit, Arc::new(fresh))))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn admits_up_to_the_limit_then_urgent_before_routine_in_arrival_order() {
        let gate = Gate::new(2);
        let a = gate.enter(Class::Routine).await.unwrap();
        let b = gate.enter(Class::Routine).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, class) in [
            ("r1", Class::Routine),
            ("u1", Class::Urgent),
            ("r2", Class::Routine),
            ("u2", Class::Urgent),
        ] {
            let (g, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let p = g.enter(class).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(p);
            }));
            // Queue them in a known order.
            while gate.waiting().0 + gate.waiting().1 < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(gate.waiting(), (2, 2));
        assert_eq!(
            (gate.depth.0.get(), gate.depth.1.get()),
            (2, 2),
            "the gauges follow the queues"
        );
        drop(a);
        drop(b);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec!["u1", "u2", "r1", "r2"]);
        assert_eq!((gate.depth.0.get(), gate.depth.1.get()), (0, 0));
        assert_eq!(gate.lock().free, 2, "every permit came back");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_does_not_keep_a_permit() {
        let gate = Gate::new(1);
        let held = gate.enter(Class::Urgent).await.unwrap();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(Class::Routine).await })
        };
        while gate.waiting().1 == 0 {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        // The next pass is admitted at once: the aborted waiter did not swallow the permit.
        let again = tokio::time::timeout(Duration::from_secs(1), gate.enter(Class::Routine)).await;
        assert!(matches!(again, Ok(Some(_))));
        drop(again);
        assert_eq!(gate.lock().free, 1);
        assert_eq!(gate.waiting(), (0, 0));
    }

    #[tokio::test]
    async fn closing_turns_waiters_away_and_admits_nobody_new() {
        let gate = Gate::new(1);
        let held = gate.enter(Class::Urgent).await.unwrap();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(Class::Urgent).await.is_some() })
        };
        while gate.waiting().0 == 0 {
            tokio::task::yield_now().await;
        }
        gate.close();
        assert!(!waiter.await.unwrap(), "a waiting pass gives up");
        assert!(gate.enter(Class::Urgent).await.is_none(), "nobody new");
        drop(held);
    }

    #[test]
    fn class_follows_generation_and_deletion() {
        use crate::crd::ExpeditedDeployment;
        let mut obj: ExpeditedDeployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
            "metadata": {"name": "a", "namespace": "n", "generation": 2},
            "spec": {"content": {"releaseDate": "2026-11-11"}}
        }))
        .unwrap();
        assert_eq!(Class::of(&obj, None), Class::Urgent, "never acted on");
        assert_eq!(Class::of(&obj, Some(1)), Class::Urgent, "a newer spec");
        assert_eq!(Class::of(&obj, Some(2)), Class::Routine, "verify or resync");
        obj.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(Class::of(&obj, Some(2)), Class::Urgent, "deleting");
    }
}
