//! The chart's alerts (`charts/wufb-operator/files/prometheus-rules.yaml`): checked and unit-tested by
//! the real promtool, one test per alert; each runbook links a registered reason in the documentation;
//! and a real Prometheus server scraping a `run` process has series for every selector they and the
//! dashboard (`files/dashboard.json`) use, and raises the alerts the scenario causes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use wufb_e2e::{Env, root};

fn rules() -> Value {
    serde_yaml::from_str(
        &std::fs::read_to_string(root().join("charts/wufb-operator/files/prometheus-rules.yaml")).unwrap(),
    )
    .unwrap()
}

fn alert_rules() -> Vec<Value> {
    rules()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out =
        std::process::Command::new(std::env::var("WUFB_PROMTOOL").unwrap_or_else(|_| "promtool".into()))
            .args(args)
            .current_dir(root().join("tests/prometheus"))
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool could not run ({e}); `make test` installs Debian's prometheus package")
            });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_alerts_pass_promtool_with_a_unit_test_each() {
    let (ok, out) = promtool(&[
        "check",
        "rules",
        "../../charts/wufb-operator/files/prometheus-rules.yaml",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts-test.yaml"]);
    assert!(ok, "{out}");
    let tests: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("tests/prometheus/alerts-test.yaml")).unwrap(),
    )
    .unwrap();
    let tested: BTreeSet<String> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap().clone())
        .filter(|a| a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()))
        .map(|a| a["alertname"].as_str().unwrap().to_string())
        .collect();
    let alerts: BTreeSet<String> = alert_rules()
        .iter()
        .map(|r| r["alert"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tested, alerts, "every alert has a test where it fires");
}

#[test]
fn every_runbook_links_a_registered_reason() {
    use wufb_operator::reconcile::reasons::{DOCS_BASE, REGISTRY};
    let anchors: BTreeSet<String> = REGISTRY.iter().map(|e| e.reason.anchor()).collect();
    for r in alert_rules() {
        let url = r["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url
            .strip_prefix(&format!("{DOCS_BASE}/reasons.html#"))
            .unwrap_or_else(|| panic!("{url} is not under the docs base"));
        assert!(
            anchors.contains(anchor),
            "{url}: #{anchor} names no registered reason"
        );
        assert!(r["labels"]["severity"].is_string(), "{r}");
    }
}

/// The metric selectors an expression reads (`name` or `name{matchers}`), Grafana's `$namespace`
/// variable read as "all".
fn selectors_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("wufb_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = &rest[at + name.len()..];
        let (selector, used) = match after.strip_prefix('{').and_then(|m| m.find('}')) {
            Some(end) => (format!("{name}{}", &after[..end + 2]), end + 2),
            None => (name.clone(), 0),
        };
        out.insert(selector.replace("$namespace", ".*"));
        rest = &after[used..];
    }
    out
}

/// Every expression of the alerts and the dashboard panels, with what it belongs to.
fn expressions() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = alert_rules()
        .iter()
        .map(|r| {
            (
                format!("alert {}", r["alert"].as_str().unwrap()),
                r["expr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/wufb-operator/files/dashboard.json")).unwrap(),
    )
    .unwrap();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                format!("panel {}", p["title"].as_str().unwrap()),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"].as_str().filter(|q| q.contains("wufb_")) {
            out.push((format!("variable {}", v["name"].as_str().unwrap()), q.to_string()));
        }
    }
    out
}

#[test]
fn selectors_are_read_from_expressions_with_their_matchers() {
    assert_eq!(
        selectors_in(
            r#"sum by (x) (rate(wufb_a_total[5m])) / wufb_b{phase="Halted", namespace=~"$namespace"} > 0"#
        ),
        BTreeSet::from([
            "wufb_a_total".to_string(),
            r#"wufb_b{phase="Halted", namespace=~".*"}"#.to_string()
        ])
    );
    let all: usize = expressions().iter().map(|(_, e)| selectors_in(e).len()).sum();
    assert!(all >= 20, "{all} selectors");
}

/// A Prometheus server on loopback (Debian's `prometheus`), scraping one target every second and
/// evaluating the chart's rules; stopped when dropped.
struct Prometheus {
    child: std::process::Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &std::path::Path, target: &str) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: wufb-operator\n    static_configs:\n      - targets: ['{target}']\n",
                root().join("charts/wufb-operator/files/prometheus-rules.yaml").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = std::process::Command::new(
            std::env::var("WUFB_PROMETHEUS").unwrap_or_else(|_| "prometheus".into()),
        )
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("prometheus could not start ({e}); `make test` installs Debian's prometheus package")
        });
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The `data` of an API answer, `None` while the server is not up.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let answer: Value = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        assert_eq!(answer["status"], "success", "{path} {query:?}: {answer}");
        Some(answer["data"].clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scraping_the_operator_has_series_for_every_selector_of_the_alerts_and_dashboard() {
    use wufb_e2e::fixtures::ring_device;
    use wufb_graph_emulator::config::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
    let credentials = root().join("tests/fixtures/credentials");
    let read = |f: &str| std::fs::read_to_string(credentials.join(f)).unwrap();
    let certificate_app = "77777777-7777-4777-8777-777777777777";
    let mut config = wufb_graph_emulator::EmulatorConfig {
        // A tenant that throttles and fails now and then, so the 429 and retry counters count.
        faults: wufb_graph_emulator::FaultConfig {
            throttle_rate: 0.2,
            retry_after_secs: 0.05,
            error_rate: 0.1,
            seed: 7,
            ..Default::default()
        },
        // A fleet whose installs take days (ten simulated hours a second): failures decide the gate.
        fleet: wufb_graph_emulator::fleet::FleetConfig {
            time_scale: 36_000.0,
            install_hours: 2000.0,
            hotpatch_rate: 0.0,
            failure_rate: 0.0,
            silent_rate: 0.0,
            seed: 5,
        },
        ..Default::default()
    };
    config.apps.push(wufb_graph_emulator::AppRegistration {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: certificate_app.into(),
        client_secret: None,
        certificate_pem: Some(read("client-pub.pem")),
        federated: vec![],
        roles: vec!["WindowsUpdates.ReadWrite.All".into()],
    });
    let mut env = Env::start_with("prometheus", config).await;
    env.spawn_controller_as(
        "observed",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        &["--progress-interval=1s", "--connection-check-interval=1s"],
    );
    let target = env.metrics_url(0).await;
    let prometheus = Prometheus::start(&env.dir, target.trim_start_matches("http://"));

    // A rollout whose pilot fails halts; a connection whose secret is wrong cannot sign in; one with a
    // certificate signs in and exports its expiry.
    let members = |ring: u32| -> String {
        (0..10)
            .map(|i| format!("      - device: {}\n", ring_device(ring, i)))
            .collect()
    };
    env.apply_yaml(&format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: canary\nspec:\n  content:\n    latest: true\n  rollout:\n    waves:\n    - name: pilot\n      members:\n{}    - name: broad\n      members:\n{}      gate:\n        wait: 1h\n        maxFailedPercent: 20\n",
        members(6),
        members(7)
    ))
    .await;
    let connection = |name: &str, app: &str, key: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  {key}: |\n{}\n---\napiVersion: wufb.dev/v1alpha1\nkind: GraphConnection\nmetadata:\n  name: {name}\nspec:\n  tenantId: {DEFAULT_TENANT_ID}\n  clientId: {app}\n  credential:\n    secretRef:\n      name: {name}\n  endpoints:\n    graphUrl: {}\n    authorityHost: {}\n",
            value
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            env.emulator.graph_url(),
            env.emulator.base_url()
        )
    };
    env.apply_yaml(&connection(
        "wrong-secret",
        DEFAULT_CLIENT_ID,
        "clientSecret",
        "not-the-secret",
    ))
    .await;
    env.apply_yaml(&connection(
        "by-certificate",
        certificate_app,
        "clientCertificate",
        &format!("{}{}", read("client-cert.pem"), read("client-key.pem")),
    ))
    .await;
    env.wait_ready(&["graphconnection/by-certificate"]).await;
    let expiry = env.get("graphconnection/by-certificate").await["status"]["certificateExpiryTime"].clone();
    assert_eq!(expiry, "2126-11-04T13:19:40Z", "the fixture's notAfter");
    // Flux's health expressions (examples/gitops/flux) on the live connections.
    let wrong = env
        .eventually(
            "the wrong secret to be refused",
            Duration::from_secs(30),
            async || {
                let o = env.get("graphconnection/wrong-secret").await;
                o["status"]["conditions"].is_array().then_some(o)
            },
        )
        .await;
    assert_eq!(
        wufb_e2e::flux_health(&[wrong, env.get("graphconnection/by-certificate").await]),
        ["Failed", "Current"]
    );
    env.eventually("the pilot is sent", Duration::from_secs(60), async || {
        env.status_of("canary").await["rollout"]["waves"][0]["progress"]
            .is_object()
            .then_some(())
    })
    .await;
    for i in 0..3 {
        env.emulator
            .set_device(&ring_device(6, i), None, Some(Some("invalidAzureADJoin".into())));
    }

    // Prometheus evaluates the chart's rules on what it scraped: the halt and the failed sign-in are
    // alerts (pending until their `for:`), by name.
    let alerts = env
        .eventually(
            "Prometheus to see the halted rollout and the connection that cannot sign in",
            Duration::from_secs(90),
            async || {
                let alerts = prometheus.api("/api/v1/query", &[("query", "ALERTS")]).await?;
                let firing = |name: &str, label: (&str, &str)| {
                    alerts["result"].as_array().is_some_and(|r| {
                        r.iter()
                            .any(|a| a["metric"]["alertname"] == name && a["metric"][label.0] == label.1)
                    })
                };
                (firing("WufbRolloutHalted", ("name", "canary"))
                    && firing("WufbConnectionCannotSignIn", ("name", "wrong-secret")))
                .then_some(alerts)
            },
        )
        .await;
    assert!(
        alerts["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["metric"]["alertname"] != "WufbCertificateExpiringSoon"),
        "a certificate valid for a century is not expiring: {alerts}"
    );

    // Every selector of every alert and panel has series in Prometheus: a renamed metric or label
    // value fails here.
    let expressions = expressions();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut missing = Vec::new();
        for (owner, expr) in &expressions {
            for selector in selectors_in(expr) {
                let series = prometheus
                    .api("/api/v1/series", &[("match[]", &selector)])
                    .await
                    .unwrap();
                if series.as_array().is_none_or(Vec::is_empty) {
                    missing.push(format!("{owner}: {selector}"));
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no series in Prometheus for:\n{}\ncontroller log:\n{}",
            missing.join("\n"),
            env.tail_logs()
        );
        // pace: Prometheus scrapes every second
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Every family the running operator serves has its entry in the book's metrics reference.
    let scraped = reqwest::get(format!("{target}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reference = std::fs::read_to_string(root().join("docs/src/reference/metrics.md")).unwrap();
    for line in scraped.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            let name = match kind {
                "counter" => format!("{name}_total"),
                "info" => format!("{name}_info"),
                _ => name.to_string(),
            };
            assert!(
                reference.contains(&format!("| `{name}` |")),
                "{name} is served but not in docs/src/reference/metrics.md (run `wufb-operator docgen`)"
            );
        }
    }
    let cert = prometheus
        .api(
            "/api/v1/query",
            &[(
                "query",
                "wufb_connection_certificate_expiration_timestamp_seconds{name=\"by-certificate\"}",
            )],
        )
        .await
        .unwrap();
    assert_eq!(
        cert["result"][0]["value"][1], "4949471980",
        "the certificate's notAfter as Unix seconds: {cert}"
    );
}
