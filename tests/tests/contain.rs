//! A panic is contained to its object: the controllers run in this process with the reconcilers
//! wrapped so that one named object's passes panic (as a bug would), and every other object keeps
//! converging, the panicking one is Stalled with InternalError and a Warning Event, its spec's pause
//! still reaches Graph, the panics are counted, and once the bug is gone it converges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::events::Reporter;
use wufb_e2e::fixtures::{dev, rollout};
use wufb_e2e::{Env, condition};
use wufb_operator::graph::{
    Credential, CredentialKind, Endpoints, GraphClient, GraphConfig, GraphMetrics, SecretString,
    TransportConfig,
};
use wufb_operator::reconcile::{ReconcileMetrics, Settings};
use wufb_operator::runtime::{Pass, Passes, Scope};

/// The object whose passes panic while [`BUG`] is set.
const BOMB: &str = "bomb";
static BUG: AtomicBool = AtomicBool::new(false);

fn panicking(
    obj: Arc<wufb_operator::crd::ExpeditedDeployment>,
    ctx: Arc<wufb_operator::reconcile::Context>,
) -> Pass {
    if obj.name_any() == BOMB && BUG.load(Ordering::SeqCst) {
        return Box::pin(async {
            tokio::task::yield_now().await;
            let empty: Vec<u8> = Vec::new();
            #[allow(clippy::indexing_slicing)]
            let _ = empty[usize::from(BUG.load(Ordering::SeqCst))];
            unreachable!()
        });
    }
    (Passes::default().deployment)(obj, ctx)
}

/// A rollout of device `device`, paused or not.
fn paused_or_not(name: &str, device: u32, paused: bool) -> String {
    rollout(name, &[dev(device)], &format!("  paused: {paused}\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_pass_is_its_objects_alone() {
    let env = Env::start("contain").await;
    let graph = Arc::new(
        GraphClient::new(
            GraphConfig {
                endpoints: Endpoints::custom(&env.emulator.base_url(), &env.emulator.graph_url()).unwrap(),
                credential: Some(Credential {
                    tenant_id: wufb_graph_emulator::config::DEFAULT_TENANT_ID.into(),
                    client_id: wufb_graph_emulator::config::DEFAULT_CLIENT_ID.into(),
                    kind: CredentialKind::ClientSecret(SecretString::new(
                        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
                    )),
                }),
                transport: TransportConfig::default(),
                batch_size: wufb_operator::graph::DEFAULT_BATCH_SIZE,
            },
            GraphMetrics::default(),
        )
        .unwrap(),
    );
    let metrics = ReconcileMetrics::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controllers = tokio::spawn(wufb_operator::runtime::run_with(
        env.client.clone(),
        graph,
        Settings {
            progress_interval: Duration::from_secs(3600),
            ..Default::default()
        },
        metrics.clone(),
        Reporter {
            controller: "wufb-operator".into(),
            instance: Some("contain".into()),
        },
        Scope {
            namespaces: vec![env.namespace.clone()],
        },
        async move {
            let _ = stopped.await;
        },
        Passes {
            deployment: panicking,
            ..Passes::default()
        },
    ));

    // The bomb gets its deployment while it still works.
    env.apply_yaml(&paused_or_not(BOMB, 1, false)).await;
    env.wait_ready(&[&format!("expd/{BOMB}")]).await;
    let id = env.status_of(BOMB).await["deploymentId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.graph_state(&id), "offering");

    // From now on every pass over it panics; its spec asks for a pause, and two more objects arrive.
    BUG.store(true, Ordering::SeqCst);
    env.apply_yaml(&paused_or_not(BOMB, 1, true)).await;
    env.apply_yaml(&paused_or_not("neighbour-a", 2, false)).await;
    env.apply_yaml(&paused_or_not("neighbour-b", 3, false)).await;

    let stalled = env
        .eventually(
            "the bomb stalled with InternalError",
            Duration::from_secs(60),
            async || {
                let s = env.status_of(BOMB).await;
                let c = condition(&s, "Stalled");
                (c["status"] == "True" && c["reason"] == "InternalError").then_some(c)
            },
        )
        .await;
    let message = stalled["message"].as_str().unwrap();
    assert!(message.contains("internal error"), "{message}");
    assert!(
        message.contains("contain.rs"),
        "the message names where: {message}"
    );
    assert!(
        !message.contains("index out of bounds"),
        "the panic's text stays in the log: {message}"
    );
    // The status it had is kept (only its conditions were written).
    assert_eq!(env.status_of(BOMB).await["deploymentId"], id.as_str());

    // The brake ran on its own: Graph holds the bomb's deployment paused.
    env.eventually(
        "the bomb's deployment paused",
        Duration::from_secs(30),
        async || (env.graph_state(&id) == "paused").then_some(()),
    )
    .await;
    assert!(message.contains("is paused, as spec.paused asks") || env.graph_state(&id) == "paused");

    // Every other object converges; the process (this one) is still running the controllers.
    env.wait_ready(&["expd/neighbour-a", "expd/neighbour-b"]).await;
    assert!(!controllers.is_finished(), "the controllers still run");
    env.events_with(&["InternalError"]).await;
    let panics = metrics
        .panics
        .get_or_create(&wufb_operator::reconcile::metrics::KindLabel {
            kind: "ExpeditedDeployment".into(),
        })
        .get();
    assert!(panics >= 1, "panics are counted: {panics}");

    // Retried with backoff: once the bug is gone, the next try converges (paused, as asked).
    BUG.store(false, Ordering::SeqCst);
    env.wait_ready_within(&[&format!("expd/{BOMB}")], 120).await;
    let s = env.status_of(BOMB).await;
    assert_eq!(s["graphState"], "paused");
    assert_eq!(condition(&s, "Stalled")["status"], "False");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), controllers)
        .await
        .expect("the controllers stop")
        .expect("the controllers never panicked out of their task");
}
