//! The emulator over real HTTP on loopback: the seed walkthrough request by request, every endpoint and
//! status code of graph-api.md, validation errors, the state machine, audiences, assets, paging, auth,
//! faults and concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use wufb_graph_emulator::config::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, READONLY_CLIENT_ID, READONLY_CLIENT_SECRET,
};
use wufb_graph_emulator::{Emulator, EmulatorConfig, FaultConfig, RetryAfterForm};

const U: &str = "/beta/admin/windows/updates";
const DEV1: &str = "3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01";
const DEV2: &str = "3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a02";
const DEV3: &str = "3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a03";

struct Ctx {
    emu: Emulator,
    http: reqwest::Client,
    token: Option<String>,
}

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

impl Ctx {
    async fn start(config: EmulatorConfig) -> Ctx {
        let emu = Emulator::start(config, "127.0.0.1:0")
            .await
            .expect("emulator starts");
        Ctx {
            emu,
            http: http_client(),
            token: None,
        }
    }

    async fn no_auth() -> Ctx {
        Ctx::start(EmulatorConfig {
            auth: false,
            ..Default::default()
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.emu.base_url(), path)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self.http.request(method.parse().expect("method"), self.url(path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value, headers)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.call("GET", path, None).await;
        (s, v)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.call("POST", path, Some(body)).await;
        (s, v)
    }

    async fn token(&self, client_id: &str, secret: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(&format!("/{DEFAULT_TENANT_ID}/oauth2/v2.0/token")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .expect("token request");
        (resp.status().as_u16(), resp.json().await.expect("token json"))
    }

    async fn latest_b(&self) -> Value {
        let (_, cat) = self
            .get(&format!(
                "{U}/catalog/entries?$filter=isof('microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry') and \
                 microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry/isExpeditable eq true&$orderby=releaseDateTime desc&$top=1"
            ))
            .await;
        cat["value"][0].clone()
    }

    async fn create_catalog_deployment(&self) -> String {
        let entry = self.latest_b().await;
        let (s, d) = self
            .post(
                &format!("{U}/deployments"),
                catalog_body(entry["id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(s, 201, "{d}");
        d["id"].as_str().unwrap().to_string()
    }
}

fn dev(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.windowsUpdates.azureADDevice", "id": id})
}

fn catalog_body(entry_id: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.windowsUpdates.deployment",
        "content": {"@odata.type": "#microsoft.graph.windowsUpdates.catalogContent",
                    "catalogEntry": {"@odata.type": "#microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry", "id": entry_id}},
        "settings": {"@odata.type": "microsoft.graph.windowsUpdates.deploymentSettings",
                     "expedite": {"isExpedited": true, "isReadinessTest": false},
                     "userExperience": {"daysUntilForcedReboot": 2}}
    })
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn seed_walkthrough_step_by_step() {
    let c = Ctx::no_auth().await;
    // Step 1: the seed's catalog query, verbatim (ordered by releaseDate).
    let (s, cat) = c
        .get(&format!(
            "{U}/catalog/entries?$top=3&$filter=isof('microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry') and \
             microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry/isExpeditable eq true&$orderby=releaseDate desc"
        ))
        .await;
    assert_eq!(s, 200);
    let entries = cat["value"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for e in entries {
        assert_eq!(
            e["@odata.type"],
            "#microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry"
        );
        assert_eq!(e["isExpeditable"], true);
        assert!(e.get("productRevisions").is_none(), "not expanded");
    }
    let release = entries[0]["releaseDateTime"].as_str().unwrap()[..10].to_string();

    // Step 2: the legacy create, verbatim but for the date.
    let (s, d) = c
        .post(
            &format!("{U}/deployments"),
            json!({
                "@odata.type": "#microsoft.graph.windowsUpdates.deployment",
                "content": {"@odata.type": "microsoft.graph.windowsUpdates.expeditedQualityUpdateReference", "releaseDate": release},
                "settings": {"@odata.type": "microsoft.graph.windowsUpdates.windowsDeploymentSettings",
                             "userExperience": {"daysUntilForcedReboot": 2}}
            }),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["state"]["value"], "offering");
    assert_eq!(d["state"]["effectiveValue"], "offering");
    assert_eq!(d["state"]["requestedValue"], "none");
    assert_eq!(d["state"]["reasons"][0]["value"], "offeringByRequest");
    assert_eq!(
        d["content"]["@odata.type"],
        "#microsoft.graph.windowsUpdates.expeditedQualityUpdateReference"
    );
    assert_eq!(d["content"]["releaseDate"], format!("{release}T00:00:00Z"));
    assert_eq!(d["content"]["classification"], "security");
    assert_eq!(d["content"]["equivalentContent"], "latestSecurity");
    assert_eq!(
        d["settings"]["@odata.type"],
        "#microsoft.graph.windowsUpdates.windowsDeploymentSettings"
    );
    assert_eq!(d["settings"]["userExperience"]["daysUntilForcedReboot"], 2);
    let id = d["id"].as_str().unwrap();

    // Step 3: groups and devices as members, one device excluded.
    let (s, g) = c
        .post(
            &format!("{U}/updatableAssets"),
            json!({"@odata.type": "#microsoft.graph.windowsUpdates.updatableAssetGroup"}),
        )
        .await;
    assert_eq!(s, 201);
    let gid = g["id"].as_str().unwrap();
    let (s, body) = c
        .post(
            &format!("{U}/deployments/{id}/audience/updateAudience"),
            json!({
                "addMembers": [{"@odata.type": "#microsoft.graph.windowsUpdates.updatableAssetGroup", "id": gid}, dev(DEV1), dev(DEV2)],
                "addExclusions": [dev(DEV3)]
            }),
        )
        .await;
    assert_eq!((s, body), (202, Value::Null));
    let (_, members) = c.get(&format!("{U}/deployments/{id}/audience/members")).await;
    let mut want = vec![gid.to_string(), DEV1.to_string(), DEV2.to_string()];
    want.sort();
    assert_eq!(ids(&members), want);
    let (_, excl) = c.get(&format!("{U}/deployments/{id}/audience/exclusions")).await;
    assert_eq!(ids(&excl), vec![DEV3.to_string()]);

    // During the deployment: pause it and edit its audience.
    let (s, p, _) = c
        .call("PATCH", &format!("{U}/deployments/{id}"), Some(json!({"@odata.type": "#microsoft.graph.windowsUpdates.deployment", "state": {"requestedValue": "paused"}})))
        .await;
    assert_eq!(s, 202);
    assert_eq!(p["state"]["effectiveValue"], "paused");
    assert_eq!(p["state"]["reasons"][0]["value"], "pausedByRequest");
    let (s, _) = c
        .post(
            &format!("{U}/deployments/{id}/audience/updateAudience"),
            json!({"removeMembers": [dev(DEV2)]}),
        )
        .await;
    assert_eq!(s, 202);
    let (_, members) = c.get(&format!("{U}/deployments/{id}/audience/members")).await;
    assert_eq!(ids(&members).len(), 2);
    // After the deployment: it keeps existing (and offering) until deleted.
    let (s, _, _) = c
        .call(
            "PATCH",
            &format!("{U}/deployments/{id}"),
            Some(json!({"state": {"requestedValue": "none"}})),
        )
        .await;
    assert_eq!(s, 202);
    let (s, d) = c.get(&format!("{U}/deployments/{id}")).await;
    assert_eq!(
        (s, d["state"]["effectiveValue"].as_str()),
        (200, Some("offering"))
    );
}

#[tokio::test]
async fn sdk_shaped_requests_are_accepted() {
    let c = Ctx::start(EmulatorConfig {
        auth: false,
        page_size: 2,
        ..Default::default()
    })
    .await;
    // Percent-encoded query exactly as the Python SDK sends it.
    let (s, cat) = c
        .get(&format!(
            "{U}/catalog/entries?$filter=isof%28%27microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry%27%29%20and%20microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry%2FisExpeditable%20eq%20true&$orderby=releaseDateTime%20desc&$top=3"
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(cat["value"].as_array().unwrap().len(), 2, "page size 2");
    let next = cat["@odata.nextLink"]
        .as_str()
        .expect("next link for the third entry");
    let (s, page2) = c.get(next.trim_start_matches(&c.emu.base_url())).await;
    assert_eq!(s, 200);
    assert_eq!(page2["value"].as_array().unwrap().len(), 1);
    assert!(page2.get("@odata.nextLink").is_none());

    let id = c.create_catalog_deployment().await;
    let body = json!({"addMembers": (0..5).map(|i| dev(&format!("00000000-0000-4000-8000-00000000000{i}"))).collect::<Vec<_>>()});
    let (s, _) = c
        .post(
            &format!("{U}/deployments/{id}/audience/microsoft.graph.windowsUpdates.updateAudience"),
            body,
        )
        .await;
    assert_eq!(s, 202);
    // Follow nextLink through the members.
    let mut url = format!("{U}/deployments/{id}/audience/members");
    let mut seen = Vec::new();
    loop {
        let (s, page) = c.get(&url).await;
        assert_eq!(s, 200);
        seen.extend(ids(&page));
        match page["@odata.nextLink"].as_str() {
            Some(n) => url = n.trim_start_matches(&c.emu.base_url()).to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    // ById under the deploymentAudiences parent.
    let (_, aud) = c.get(&format!("{U}/deployments/{id}/audience")).await;
    let aid = aud["id"].as_str().unwrap();
    let (s, _) = c
        .post(
            &format!("{U}/deploymentAudiences/{aid}/microsoft.graph.windowsUpdates.updateAudienceById"),
            json!({"memberEntityType": "#microsoft.graph.windowsUpdates.azureADDevice", "addExclusions": [DEV1]}),
        )
        .await;
    assert_eq!(s, 202);
    let (_, ex) = c.get(&format!("{U}/deploymentAudiences/{aid}/exclusions")).await;
    assert_eq!(ids(&ex), vec![DEV1.to_string()]);
}

#[tokio::test]
async fn the_create_answer_embeds_the_audience_and_a_skeleton_catalog_entry() {
    let c = Ctx::start(EmulatorConfig {
        auth: false,
        ..Default::default()
    })
    .await;
    let entry = c.latest_b().await;
    assert_eq!(entry["isExpeditable"], true);
    let eid = entry["id"].as_str().unwrap();
    let (s, d) = c.post(&format!("{U}/deployments"), catalog_body(eid)).await;
    assert_eq!(s, 201, "{d}");
    let echoed = &d["content"]["catalogEntry"];
    assert_eq!(echoed["id"], eid, "the echo names the entry");
    assert_eq!(echoed["isExpeditable"], false, "the echo is a skeleton: {echoed}");
    assert!(echoed["displayName"].is_null());
    let aid = d["audience"]["id"].as_str().expect("the audience is embedded");
    assert!(!aid.ends_with("_Readiness"));
    // A later read names the entry by reference, as the reference's samples do.
    let (_, read) = c
        .get(&format!("{U}/deployments/{}", d["id"].as_str().unwrap()))
        .await;
    assert!(read["content"]["catalogEntry"]["@odata.id"].is_string(), "{read}");

    // A readiness test's own audience id ends in `_Readiness`, and is addressable.
    let mut readiness = catalog_body(eid);
    readiness["settings"]["expedite"] = json!({"isExpedited": true, "isReadinessTest": true});
    let (s, d) = c.post(&format!("{U}/deployments"), readiness).await;
    assert_eq!(s, 201, "{d}");
    let aid = d["audience"]["id"].as_str().unwrap();
    assert!(aid.ends_with("_Readiness"), "{aid}");
    let (s, members) = c.get(&format!("{U}/deploymentAudiences/{aid}/members")).await;
    assert!(s == 200 || s == 404, "{s} {members}");
    let (s, _) = c
        .post(
            &format!("{U}/deploymentAudiences/{aid}/microsoft.graph.windowsUpdates.updateAudience"),
            json!({"addMembers": [dev(DEV1)]}),
        )
        .await;
    assert_eq!(s, 202);
    let (_, members) = c.get(&format!("{U}/deploymentAudiences/{aid}/members")).await;
    assert_eq!(ids(&members), vec![DEV1.to_string()]);
}

#[tokio::test]
async fn documented_status_codes() {
    let c = Ctx::no_auth().await;
    let id = c.create_catalog_deployment().await;
    let (s, body, _) = c.call("DELETE", &format!("{U}/deployments/{id}"), None).await;
    assert_eq!((s, body), (202, Value::Null));
    assert_eq!(c.get(&format!("{U}/deployments/{id}")).await.0, 404);

    let (s, a) = c.post(&format!("{U}/deploymentAudiences"), json!({})).await;
    assert_eq!(s, 201);
    assert_eq!(
        a["@odata.type"],
        "#microsoft.graph.windowsUpdates.deploymentAudience"
    );
    let aid = a["id"].as_str().unwrap();
    // A deployment created on an existing audience.
    let entry = c.latest_b().await;
    let mut body = catalog_body(entry["id"].as_str().unwrap());
    body["audience"] = json!({"id": aid});
    let (s, d) = c.post(&format!("{U}/deployments"), body).await;
    assert_eq!(s, 201);
    assert_eq!(
        c.call("DELETE", &format!("{U}/deploymentAudiences/{aid}"), None)
            .await
            .0,
        409,
        "still used"
    );
    c.call(
        "DELETE",
        &format!("{U}/deployments/{}", d["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        c.call("DELETE", &format!("{U}/deploymentAudiences/{aid}"), None)
            .await
            .0,
        204
    );

    let (_, g) = c
        .post(
            &format!("{U}/updatableAssets"),
            json!({"@odata.type": "microsoft.graph.windowsUpdates.updatableAssetGroup"}),
        )
        .await;
    let gid = g["id"].as_str().unwrap();
    for (action, body) in [
        ("addMembers", json!({"assets": [dev(DEV1), dev(DEV2)]})),
        ("removeMembers", json!({"assets": [dev(DEV2)]})),
        (
            "addMembersById",
            json!({"ids": [DEV3], "memberEntityType": "#microsoft.graph.windowsUpdates.azureADDevice"}),
        ),
        (
            "removeMembersById",
            json!({"ids": [DEV3], "memberEntityType": "#microsoft.graph.windowsUpdates.azureADDevice"}),
        ),
    ] {
        let (s, b) = c.post(&format!("{U}/updatableAssets/{gid}/{action}"), body).await;
        assert_eq!((s, b), (202, Value::Null), "{action}");
    }
    let (_, m) = c
        .get(&format!(
            "{U}/updatableAssets/{gid}/microsoft.graph.windowsUpdates.updatableAssetGroup/members"
        ))
        .await;
    assert_eq!(ids(&m), vec![DEV1.to_string()]);
    let (s, _) = c.post(&format!("{U}/updatableAssets/{gid}/addMembers"), json!({"assets": [{"@odata.type": "#microsoft.graph.windowsUpdates.updatableAssetGroup", "id": gid}]})).await;
    assert_eq!(s, 400, "a group cannot be a group member");
    for (action, body) in [
        (
            "enrollAssets",
            json!({"updateCategory": "feature", "assets": [dev(DEV2)]}),
        ),
        (
            "enrollAssetsById",
            json!({"updateCategory": "quality", "memberEntityType": "#microsoft.graph.windowsUpdates.azureADDevice", "ids": [DEV2]}),
        ),
        (
            "unenrollAssets",
            json!({"updateCategory": "feature", "assets": [dev(DEV2)]}),
        ),
    ] {
        assert_eq!(
            c.post(&format!("{U}/updatableAssets/{action}"), body).await.0,
            202,
            "{action}"
        );
    }
    let (_, d2) = c.get(&format!("{U}/updatableAssets/{DEV2}")).await;
    assert_eq!(
        d2["enrollments"],
        json!([{"@odata.type": "#microsoft.graph.windowsUpdates.updateManagementEnrollment", "updateCategory": "quality"}])
    );
    let (_, devices) = c
        .get(&format!(
            "{U}/updatableAssets/microsoft.graph.windowsUpdates.azureADDevice"
        ))
        .await;
    assert_eq!(devices["value"].as_array().unwrap().len(), 3);
    let (_, groups) = c
        .get(&format!(
            "{U}/updatableAssets?$filter=isof('microsoft.graph.windowsUpdates.updatableAssetGroup')"
        ))
        .await;
    assert_eq!(ids(&groups), vec![gid.to_string()]);
    let (s, b, _) = c
        .call("DELETE", &format!("{U}/updatableAssets/{gid}"), None)
        .await;
    assert_eq!((s, b), (202, Value::Null));
    assert_eq!(
        c.get(&format!("{U}/updatableAssets/{DEV1}")).await.0,
        200,
        "members outlive their group"
    );
    let (s, n, _) = c.call("GET", &format!("{U}/catalog/entries/$count"), None).await;
    assert_eq!(s, 200);
    assert!(n.as_u64().unwrap() > 24);
    assert_eq!(
        c.call("PUT", &format!("{U}/deployments/x"), Some(json!({})))
            .await
            .0,
        405
    );
}

#[tokio::test]
async fn validation_errors_name_the_problem() {
    let c = Ctx::no_auth().await;
    let cat = c.get(&format!("{U}/catalog/entries?$filter=microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry/isExpeditable eq false&$top=1")).await.1;
    let not_expeditable = cat["value"][0]["id"].as_str().unwrap().to_string();
    let good = c.latest_b().await["id"].as_str().unwrap().to_string();
    let mut readiness = catalog_body(&good);
    readiness["settings"]["expedite"] = json!({"isExpedited": false, "isReadinessTest": true});
    let mut unknown = catalog_body(&good);
    unknown["displayName"] = json!("Emergency");
    let mut unknown_nested = catalog_body(&good);
    unknown_nested["settings"]["userExperience"]["daysUntilReboot"] = json!(3);
    let mut negative = catalog_body(&good);
    negative["settings"]["userExperience"]["daysUntilForcedReboot"] = json!(-1);
    let cases = [
        (
            "unknown entry",
            catalog_body("does-not-exist"),
            "content.catalogEntry.id",
        ),
        (
            "not expeditable",
            catalog_body(&not_expeditable),
            "settings.expedite.isExpedited",
        ),
        (
            "readiness without expedite",
            readiness,
            "settings.expedite.isReadinessTest",
        ),
        ("unknown property", unknown, "displayName"),
        ("unknown nested property", unknown_nested, "daysUntilReboot"),
        (
            "negative reboot days",
            negative,
            "settings.userExperience.daysUntilForcedReboot",
        ),
        (
            "malformed date",
            json!({"content": {"@odata.type": "microsoft.graph.windowsUpdates.expeditedQualityUpdateReference", "releaseDate": "2026-02-30"}}),
            "content.releaseDate",
        ),
        (
            "date without a release",
            json!({"content": {"@odata.type": "microsoft.graph.windowsUpdates.expeditedQualityUpdateReference", "releaseDateTime": "2020-01-01T00:00:00Z"}}),
            "content.releaseDateTime",
        ),
        ("missing content", json!({"settings": {}}), "content"),
    ];
    for (name, body, target) in cases {
        let (s, err) = c.post(&format!("{U}/deployments"), body).await;
        assert_eq!(s, 400, "{name}: {err}");
        assert_eq!(err["error"]["code"], "BadRequest", "{name}");
        assert_eq!(err["error"]["target"], target, "{name}: {err}");
        assert!(err["error"]["message"].as_str().unwrap().len() > 10, "{name}");
    }
    assert_eq!(
        c.get(&format!("{U}/deployments")).await.1["value"],
        json!([]),
        "nothing was created"
    );
    let id = c.create_catalog_deployment().await;
    let (s, err, _) = c
        .call(
            "PATCH",
            &format!("{U}/deployments/{id}"),
            Some(json!({"content": catalog_body(&good)["content"]})),
        )
        .await;
    assert_eq!(
        (s, err["error"]["target"].as_str()),
        (400, Some("content")),
        "content is immutable"
    );
    let (s, _, _) = c
        .call(
            "PATCH",
            &format!("{U}/deployments/{id}"),
            Some(json!({"state": {"requestedValue": "sleeping"}})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = c.get(&format!("{U}/catalog/entries?$filter=isof(")).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn state_machine_and_settings_updates() {
    let c = Ctx::no_auth().await;
    let good = c.latest_b().await["id"].as_str().unwrap().to_string();
    let mut scheduled = catalog_body(&good);
    let later = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    scheduled["settings"]["schedule"] = json!({"startDateTime": later});
    let (s, d) = c.post(&format!("{U}/deployments"), scheduled).await;
    assert_eq!(s, 201);
    assert_eq!(d["state"]["effectiveValue"], "scheduled");
    assert_eq!(d["state"]["reasons"][0]["value"], "scheduledByOfferWindow");
    let id = d["id"].as_str().unwrap();
    let (s, d, _) = c.call("PATCH", &format!("{U}/deployments/{id}"), Some(json!({"settings": {"schedule": null, "userExperience": {"daysUntilForcedReboot": 5, "offerAsOptional": true}}}))).await;
    assert_eq!(s, 202);
    assert_eq!(d["state"]["effectiveValue"], "offering");
    assert_eq!(
        d["settings"]["userExperience"],
        json!({"daysUntilForcedReboot": 5, "offerAsOptional": true})
    );
    assert_eq!(
        d["settings"]["expedite"]["isExpedited"], true,
        "untouched settings stay"
    );
    let (_, d) = c.get(&format!("{U}/deployments/{id}")).await;
    assert_eq!(d["settings"]["userExperience"]["daysUntilForcedReboot"], 5);
    // The entry is named by reference, as in the reference's update sample.
    assert_eq!(
        d["content"]["catalogEntry"],
        json!({"@odata.id": format!("catalog/entries/{good}")})
    );
    // $filter on deployments, as adoption after a crash uses it.
    let since = (chrono::Utc::now() - chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let (_, list) = c
        .get(&format!("{U}/deployments?$filter=createdDateTime ge {since}"))
        .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (_, list) = c
        .get(&format!(
            "{U}/deployments?$filter=createdDateTime ge 2999-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(list["value"], json!([]));
}

#[tokio::test]
async fn audience_set_semantics_registration_errors_and_cap() {
    let mut config = EmulatorConfig {
        auth: false,
        max_assets_per_request: Some(3),
        ..Default::default()
    };
    config
        .device_errors
        .insert(DEV3.into(), "missingTrustType".into());
    let c = Ctx::start(config).await;
    let id = c.create_catalog_deployment().await;
    let path = format!("{U}/deployments/{id}/audience/updateAudience");
    assert_eq!(c.post(&path, json!({"addMembers": [dev(DEV1)]})).await.0, 202);
    assert_eq!(
        c.post(
            &path,
            json!({"addMembers": [dev(DEV1)], "addExclusions": [dev(DEV1)]})
        )
        .await
        .0,
        202
    );
    let (_, m) = c.get(&format!("{U}/deployments/{id}/audience/members")).await;
    assert_eq!(ids(&m), vec![DEV1.to_string()], "re-adding is a no-op");
    let (_, e) = c.get(&format!("{U}/deployments/{id}/audience/exclusions")).await;
    assert_eq!(
        ids(&e),
        vec![DEV1.to_string()],
        "member and exclusion: listed in both, excluded"
    );
    // Above the cap (set here; none is documented, so none by default): 413, and nothing of it applied.
    let four: Vec<Value> = ["a", "b", "c", "d"].iter().map(|s| dev(s)).collect();
    let (s, err) = c.post(&path, json!({"addMembers": four})).await;
    assert_eq!(s, 413);
    assert_eq!(err["error"]["details"][0]["code"], "TooManyAssets");
    assert_eq!(
        ids(&c.get(&format!("{U}/deployments/{id}/audience/members")).await.1).len(),
        1
    );
    // Registration errors: malformed ids and configured unknown ids.
    assert_eq!(
        c.post(&path, json!({"addMembers": [dev("not-a-device"), dev(DEV3)]}))
            .await
            .0,
        202
    );
    let (_, m) = c.get(&format!("{U}/deployments/{id}/audience/members")).await;
    let errors = |id: &str| {
        m["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()["errors"][0]["reason"]
            .clone()
    };
    assert_eq!(errors("not-a-device"), "invalidAzureADDeviceId");
    assert_eq!(errors(DEV3), "missingTrustType");
    let bad = m["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "not-a-device")
        .unwrap();
    assert_eq!(
        bad["errors"][0]["@odata.type"],
        "#microsoft.graph.windowsUpdates.azureADDeviceRegistrationError"
    );
    // Unknown group and unknown keys are rejected.
    let (s, _) = c.post(&path, json!({"addMembers": [{"@odata.type": "#microsoft.graph.windowsUpdates.updatableAssetGroup", "id": "nope"}]})).await;
    assert_eq!(s, 400);
    let (s, err) = c.post(&path, json!({"addMember": [dev(DEV2)]})).await;
    assert_eq!((s, err["error"]["target"].as_str()), (400, Some("addMember")));
}

#[tokio::test]
async fn strict_defaults_unknown_segments_no_cap_and_the_empty_audience_switch() {
    let c = Ctx::start(EmulatorConfig {
        auth: false,
        ..Default::default()
    })
    .await;
    // An unknown segment is a 400 with an OData error, as Graph answers it.
    for path in [
        "deploymentz",
        "deployments/x/audience/memberz",
        "updatableAssets/g/frobnicate",
    ] {
        let (s, err) = c.get(&format!("{U}/{path}")).await;
        assert_eq!(s, 400, "{path}");
        assert_eq!(err["error"]["code"], "BadRequest", "{path}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Resource not found for the segment"),
            "{path}: {err}"
        );
    }
    // No invented asset cap: 2,500 devices in one request are accepted.
    let id = c.create_catalog_deployment().await;
    let many: Vec<Value> = (0..2500)
        .map(|i| dev(&format!("{i:08x}-0000-4000-8000-000000000000")))
        .collect();
    let (s, _) = c
        .post(
            &format!("{U}/deployments/{id}/audience/updateAudience"),
            json!({"addMembers": many}),
        )
        .await;
    assert_eq!(s, 202);
    // The older behaviour on request: an audience that never had members lists as empty.
    let old = Ctx::start(EmulatorConfig {
        auth: false,
        audience_404_when_empty: false,
        ..Default::default()
    })
    .await;
    let id = old.create_catalog_deployment().await;
    let (s, body) = old.get(&format!("{U}/deployments/{id}/audience/members")).await;
    assert_eq!((s, body["value"].clone()), (200, json!([])));
}

#[tokio::test]
async fn reads_lag_writes_when_a_read_lag_is_set() {
    let c = Ctx::start(EmulatorConfig {
        auth: false,
        read_lag_ms: 400,
        ..Default::default()
    })
    .await;
    let id = c.create_catalog_deployment().await;
    // Written, not yet readable: the deployment is not found and not listed.
    assert_eq!(c.get(&format!("{U}/deployments/{id}")).await.0, 404);
    assert_eq!(c.get(&format!("{U}/deployments")).await.1["value"], json!([]));
    // A write acts on the live tenant at once.
    let (s, _) = c
        .post(
            &format!("{U}/deployments/{id}/audience/updateAudience"),
            json!({"addMembers": [dev(DEV1)]}),
        )
        .await;
    assert_eq!(s, 202);
    c.emu.advance(std::time::Duration::from_millis(450));
    let (s, d) = c.get(&format!("{U}/deployments/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(d["id"], id.as_str());
    // The pause is answered 202 but a read still shows the deployment offering.
    let (s, _, _) = c
        .call(
            "PATCH",
            &format!("{U}/deployments/{id}"),
            Some(json!({"@odata.type": "#microsoft.graph.windowsUpdates.deployment", "state": {"requestedValue": "paused"}})),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(
        c.get(&format!("{U}/deployments/{id}")).await.1["state"]["requestedValue"],
        "none"
    );
    c.emu.advance(std::time::Duration::from_millis(450));
    assert_eq!(
        c.get(&format!("{U}/deployments/{id}")).await.1["state"]["requestedValue"],
        "paused"
    );
    assert_eq!(
        ids(&c.get(&format!("{U}/deployments/{id}/audience/members")).await.1),
        vec![DEV1.to_string()]
    );
}

#[tokio::test]
async fn empty_audience_404_switch_and_intune_deployments() {
    let c = Ctx::start(EmulatorConfig {
        auth: false,
        audience_404_when_empty: true,
        ..Default::default()
    })
    .await;
    let id = c.create_catalog_deployment().await;
    let (s, err) = c.get(&format!("{U}/deployments/{id}/audience/members")).await;
    assert_eq!(s, 404);
    assert_eq!(
        err["error"]["message"],
        "Requested resource 'deployment audience' not found."
    );
    c.post(
        &format!("{U}/deployments/{id}/audience/updateAudience"),
        json!({"addExclusions": [dev(DEV1)]}),
    )
    .await;
    assert_eq!(
        c.get(&format!("{U}/deployments/{id}/audience/members")).await.0,
        200
    );

    let other = c.create_catalog_deployment().await;
    let r = c
        .http
        .post(c.url(&format!("/_emulator/deployments/{other}/intune")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        c.post(
            &format!("{U}/deployments/{other}/audience/updateAudience"),
            json!({"addMembers": [dev(DEV2)]})
        )
        .await
        .0,
        202
    );
    assert_eq!(
        c.get(&format!("{U}/deployments/{other}/audience/members"))
            .await
            .0,
        404,
        "Intune-owned audiences cannot be read"
    );
    let state: Value = c
        .http
        .get(c.url("/_emulator/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["intuneManaged"], json!([other]));
}

#[tokio::test]
async fn auth_token_endpoint_and_permissions() {
    let mut c = Ctx::start(EmulatorConfig {
        token_lifetime: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let (s, err) = c.get(&format!("{U}/deployments")).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );
    let (s, err) = c.token(DEFAULT_CLIENT_ID, "wrong").await;
    assert_eq!((s, err["error"].as_str()), (401, Some("invalid_client")));
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    assert!(!err.to_string().contains("wrong"), "the secret is not echoed");
    let (s, err) = c.token("44444444-4444-4444-8444-444444444444", "x").await;
    assert_eq!((s, err["error"].as_str()), (400, Some("unauthorized_client")));

    let (s, tok) = c.token(READONLY_CLIENT_ID, READONLY_CLIENT_SECRET).await;
    assert_eq!(s, 200);
    assert_eq!(tok["token_type"], "Bearer");
    c.token = Some(tok["access_token"].as_str().unwrap().to_string());
    assert_eq!(
        c.get(&format!("{U}/deployments")).await.0,
        200,
        "reads need Read.All"
    );
    let (s, err) = c.post(&format!("{U}/deploymentAudiences"), json!({})).await;
    assert_eq!((s, err["error"]["code"].as_str()), (403, Some("Forbidden")));

    let (_, tok) = c.token(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    assert_eq!(tok["expires_in"], 1);
    c.token = Some(tok["access_token"].as_str().unwrap().to_string());
    assert_eq!(
        c.post(&format!("{U}/deploymentAudiences"), json!({})).await.0,
        201
    );
    c.emu.advance(Duration::from_millis(1100));
    let (s, err) = c.get(&format!("{U}/deployments")).await;
    assert_eq!(s, 401);
    assert!(err["error"]["message"].as_str().unwrap().contains("expired"));
    let bad_scope = c
        .http
        .post(c.url(&format!("/{DEFAULT_TENANT_ID}/oauth2/v2.0/token")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", "a b"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_scope.status().as_u16(), 400);
}

#[tokio::test]
async fn client_assertions_are_verified_against_the_registered_key() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/credentials");
    let public = std::fs::read_to_string(format!("{fixtures}/client-pub.pem")).unwrap();
    let mut config = EmulatorConfig::default();
    config.apps.push(wufb_graph_emulator::AppRegistration {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: "55555555-5555-4555-8555-555555555555".into(),
        client_secret: None,
        certificate_pem: Some(public),
        federated: vec![wufb_graph_emulator::config::FederatedCredential {
            issuer: "https://oidc.example/cluster".into(),
            subject: "system:serviceaccount:wufb:wufb-operator".into(),
        }],
        roles: vec!["WindowsUpdates.ReadWrite.All".into()],
    });
    let c = Ctx::start(config).await;
    let token_url = c.url(&format!("/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"));
    let now = chrono::Utc::now().timestamp();
    let sign = |key_file: &str, iss: &str, sub: &str, aud: &str| {
        let key = std::fs::read(format!("{fixtures}/{key_file}")).unwrap();
        let claims =
            json!({"iss": iss, "sub": sub, "aud": aud, "jti": "1", "nbf": now, "iat": now, "exp": now + 600});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(&key).unwrap(),
        )
        .unwrap()
    };
    let app = "55555555-5555-4555-8555-555555555555";
    let ask = |assertion: String| {
        let http = c.http.clone();
        let url = token_url.clone();
        async move {
            http.post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", app),
                    ("scope", "https://graph.microsoft.com/.default"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(ask(sign("client-key.pem", app, app, &token_url)).await, 200);
    assert_eq!(
        ask(sign("other-key.pem", app, app, &token_url)).await,
        401,
        "wrong key"
    );
    assert_eq!(
        ask(sign("client-key.pem", app, app, "https://elsewhere/token")).await,
        401,
        "wrong audience"
    );
    let fed = |sub: &str| {
        sign(
            "other-key.pem",
            "https://oidc.example/cluster",
            sub,
            "api://AzureADTokenExchange",
        )
    };
    assert_eq!(
        ask(fed("system:serviceaccount:wufb:wufb-operator")).await,
        200,
        "federated"
    );
    assert_eq!(
        ask(fed("system:serviceaccount:other:sa")).await,
        401,
        "unknown subject"
    );
}

#[tokio::test]
async fn throttling_with_each_retry_after_form() {
    let c = Ctx::no_auth().await;
    for (form, check) in [
        (RetryAfterForm::Seconds, "2"),
        (RetryAfterForm::Fractional, "1.500"),
        (RetryAfterForm::HttpDate, "GMT"),
    ] {
        c.emu.set_faults(FaultConfig {
            throttle_rate: 1.0,
            retry_after_secs: 1.5,
            retry_after_form: form,
            ..Default::default()
        });
        let (s, err, headers) = c.call("GET", &format!("{U}/deployments"), None).await;
        assert_eq!(s, 429);
        assert_eq!(err["error"]["code"], "TooManyRequests");
        let ra = headers.get("retry-after").unwrap().to_str().unwrap();
        assert!(ra.contains(check), "{form:?}: {ra}");
    }
    c.emu.set_faults(FaultConfig {
        throttle_rate: 1.0,
        retry_after_form: RetryAfterForm::None,
        ..Default::default()
    });
    let (s, _, headers) = c.call("GET", &format!("{U}/deployments"), None).await;
    assert_eq!(s, 429);
    assert!(headers.get("retry-after").is_none());
    // A throttled write applies nothing.
    c.emu.set_faults(FaultConfig::default());
    let id = c.create_catalog_deployment().await;
    c.emu.set_faults(FaultConfig {
        throttle_rate: 1.0,
        ..Default::default()
    });
    assert_eq!(
        c.post(
            &format!("{U}/deployments/{id}/audience/updateAudience"),
            json!({"addMembers": [dev(DEV1)]})
        )
        .await
        .0,
        429
    );
    c.emu.set_faults(FaultConfig::default());
    // Nothing was applied: the audience still never had members (404 by default).
    assert_eq!(
        c.get(&format!("{U}/deployments/{id}/audience/members")).await.0,
        404
    );
    let log = c.emu.requests();
    let throttled: Vec<_> = log.iter().filter(|e| e.status == 429).collect();
    assert_eq!(throttled.len(), 5);
    assert!(
        throttled[..3]
            .iter()
            .all(|e| e.retry_not_before_ms.is_some_and(|t| t > e.at_ms))
    );
}

#[tokio::test]
async fn server_errors_drops_outage_and_latency() {
    let c = Ctx::no_auth().await;
    c.emu.set_faults(FaultConfig {
        error_rate: 1.0,
        seed: 3,
        ..Default::default()
    });
    let mut statuses = std::collections::BTreeSet::new();
    for _ in 0..12 {
        statuses.insert(c.get(&format!("{U}/deployments")).await.0);
    }
    assert_eq!(statuses.into_iter().collect::<Vec<_>>(), vec![500, 503]);
    c.emu.set_faults(FaultConfig {
        drop_rate: 1.0,
        ..Default::default()
    });
    let err = c
        .http
        .get(c.url(&format!("{U}/deployments")))
        .send()
        .await
        .expect_err("connection dropped");
    assert!(
        err.is_request() || err.is_connect() || err.to_string().contains("connection"),
        "{err}"
    );
    // A lost answer: the write is carried out, the connection drops before the answer.
    c.emu.set_faults(FaultConfig {
        lost_answer_rate: 1.0,
        ..Default::default()
    });
    let err = c
        .http
        .post(c.url(&format!("{U}/deploymentAudiences")))
        .json(&json!({}))
        .send()
        .await
        .expect_err("answer lost");
    assert!(!err.is_connect(), "the request was sent: {err}");
    assert_eq!(
        c.emu.shared.store.lock().unwrap().audiences.len(),
        1,
        "yet the audience exists"
    );
    c.emu.set_faults(FaultConfig {
        outage: true,
        ..Default::default()
    });
    assert_eq!(c.get(&format!("{U}/deployments")).await.0, 503);
    c.emu.set_faults(FaultConfig {
        latency_ms: 150,
        ..Default::default()
    });
    let t = std::time::Instant::now();
    assert_eq!(c.get(&format!("{U}/deployments")).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    let counts: Value = c
        .http
        .get(c.url("/_emulator/counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        counts["operations"]["deployments.list"]["0"], 1,
        "the dropped request is counted as status 0: {counts}"
    );
}

#[tokio::test]
async fn parallel_audience_writes_lose_nothing() {
    let c = Ctx::no_auth().await;
    let id = c.create_catalog_deployment().await;
    let path = format!("{U}/deployments/{id}/audience/updateAudience");
    let writes = (0..40).map(|i| {
        let http = c.http.clone();
        let url = c.url(&path);
        async move {
            let body = json!({"addMembers": (0..25).map(|j| dev(&format!("00000000-0000-4000-8000-{:012}", i * 100 + j))).collect::<Vec<_>>()});
            http.post(url).json(&body).send().await.unwrap().status().as_u16()
        }
    });
    let statuses = futures::future::join_all(writes).await;
    assert!(statuses.iter().all(|s| *s == 202));
    // Counted the only way the list pages: by following nextLink.
    let mut url = format!("{U}/deployments/{id}/audience/members");
    let mut seen = 0;
    loop {
        let (_, m) = c.get(&url).await;
        seen += m["value"].as_array().unwrap().len();
        match m["@odata.nextLink"].as_str() {
            Some(next) => url = next.split("/beta").nth(1).map(|p| format!("/beta{p}")).unwrap(),
            None => break,
        }
    }
    assert_eq!(seen, 1000);
    // Client-driven paging is refused there, as the newest page says.
    let (status, e) = c
        .get(&format!(
            "{U}/deployments/{id}/audience/members?$count=true&$top=1"
        ))
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("$skiptoken"),
        "{e}"
    );
}

#[tokio::test]
async fn admin_api_counts_state_and_reset() {
    let c = Ctx::no_auth().await;
    c.create_catalog_deployment().await;
    let counts: Value = c
        .http
        .get(c.url("/_emulator/counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["operations"]["deployments.create"]["201"], 1);
    assert_eq!(counts["operations"]["catalog.entries.list"]["200"], 1);
    let log: Value = c
        .http
        .get(c.url("/_emulator/requests?since=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["requests"].as_array().unwrap().len(), 1);
    assert_eq!(log["requests"][0]["operation"], "deployments.create");
    let r = c
        .http
        .put(c.url("/_emulator/faults"))
        .json(&json!({"throttleRate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "rates are probabilities");
    let r = c
        .http
        .put(c.url("/_emulator/faults"))
        .json(&json!({"latencyMs": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(c.emu.shared.faults.lock().unwrap().config.latency_ms, 1);
    c.http.post(c.url("/_emulator/reset")).send().await.unwrap();
    let state: Value = c
        .http
        .get(c.url("/_emulator/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["deployments"], json!([]));
    assert_eq!(c.emu.requests().len(), 0);
}

#[tokio::test]
async fn state_file_persists_across_restarts() {
    let dir = std::env::temp_dir().join(format!("wufb-emu-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let config = EmulatorConfig {
        auth: false,
        state_file: Some(file.clone()),
        ..Default::default()
    };
    let c = Ctx::start(config.clone()).await;
    let id = c.create_catalog_deployment().await;
    c.emu.shutdown().await;
    let c2 = Ctx::start(config).await;
    assert_eq!(c2.get(&format!("{U}/deployments/{id}")).await.0, 200);
    let other = c2.create_catalog_deployment().await;
    assert_ne!(id, other, "ids stay unique after a reload");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn orderby_an_unknown_property_is_400_and_answers_carry_odata_context() {
    let c = Ctx::no_auth().await;
    let (s, v) = c
        .get(&format!("{U}/catalog/entries?$orderby=shoeSize desc"))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("shoeSize"),
        "{v}"
    );
    // The seed's own spelling stays accepted.
    let (s, _) = c
        .get(&format!("{U}/catalog/entries?$orderby=releaseDate desc"))
        .await;
    assert_eq!(s, 200);
    let (_, list) = c.get(&format!("{U}/catalog/entries?$top=1")).await;
    assert!(
        list["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/beta/$metadata#admin/windows/updates/catalog/entries"),
        "{list}"
    );
    let id = c.create_catalog_deployment().await;
    let (_, one) = c.get(&format!("{U}/deployments/{id}")).await;
    assert!(
        one["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#admin/windows/updates/deployments/$entity"),
        "{one}"
    );
}

#[tokio::test]
async fn the_admin_api_never_returns_app_secrets() {
    let c = Ctx::start(EmulatorConfig::default()).await;
    let text = c
        .http
        .get(c.url("/_emulator/settings"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(DEFAULT_CLIENT_SECRET), "{text}");
    assert!(!text.contains(READONLY_CLIENT_SECRET), "{text}");
    let state = c
        .http
        .get(c.url("/_emulator/state"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!state.contains(DEFAULT_CLIENT_SECRET));
    // A GET, an edit and a PUT keep the secrets working.
    let mut settings: Value = serde_json::from_str(&text).unwrap();
    settings["pageSize"] = json!(7);
    let r = c
        .http
        .put(c.url("/_emulator/settings"))
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (s, _) = c.token(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    assert_eq!(s, 200, "the secret still works after the round trip");
}

#[tokio::test]
async fn entra_groups_list_their_transitive_devices_in_pages_with_permissions() {
    let mut c = Ctx::start(EmulatorConfig::default()).await;
    let put = |id: &str, body: Value| {
        let (http, url) = (c.http.clone(), c.url(&format!("/_emulator/entraGroups/{id}")));
        async move { http.put(url).json(&body).send().await.unwrap().status().as_u16() }
    };
    let ring: Vec<String> = (0..250)
        .map(|i| format!("3d0a0c8e-1c5e-4c53-9b3f-{i:012}"))
        .collect();
    assert_eq!(
        put("g-nested", json!({"devices": ring[200..].to_vec()})).await,
        204
    );
    assert_eq!(
        put(
            "g-ring",
            json!({"devices": ring[..200].to_vec(), "groups": ["g-nested", "g-ring"]})
        )
        .await,
        204
    );
    let (_, t) = c.token(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    c.token = t["access_token"].as_str().map(str::to_string);
    let mut seen = Vec::new();
    let mut path =
        "/beta/groups/g-ring/transitiveMembers/microsoft.graph.device?$select=deviceId&$top=100".to_string();
    loop {
        let (s, page) = c.get(&path).await;
        assert_eq!(s, 200, "{page}");
        assert!(page["value"].as_array().unwrap().len() <= 100);
        seen.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["deviceId"].as_str().unwrap().to_string()),
        );
        match page["@odata.nextLink"].as_str() {
            Some(next) => path = next.trim_start_matches(&c.emu.base_url()).to_string(),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(
        seen, ring,
        "nested groups included, each device once, cycles followed once"
    );
    let (s, e) = c
        .get("/beta/groups/nope/transitiveMembers/microsoft.graph.device")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("Request_ResourceNotFound"))
    );
    // Without the directory permissions: 403.
    let mut config = EmulatorConfig::default();
    config.apps[0].roles = vec!["WindowsUpdates.ReadWrite.All".into()];
    let mut bare = Ctx::start(config).await;
    let (_, t) = bare.token(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    bare.token = t["access_token"].as_str().map(str::to_string);
    let (s, e) = bare
        .get("/beta/groups/g/transitiveMembers/microsoft.graph.device")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );
}

#[tokio::test]
async fn the_simulated_fleet_installs_while_offered_and_stops_when_paused() {
    let devices: Vec<String> = (0..40)
        .map(|i| format!("3d0a0c8e-1c5e-4c53-9b3f-{i:012}"))
        .collect();
    let c = Ctx::start(EmulatorConfig {
        auth: false,
        fleet: wufb_graph_emulator::fleet::FleetConfig {
            // An hour of simulated time per real millisecond: every delay passes within a second.
            time_scale: 3_600_000.0,
            install_hours: 4.0,
            hotpatch_rate: 0.5,
            failure_rate: 0.1,
            silent_rate: 0.1,
            seed: 3,
        },
        ..Default::default()
    })
    .await;
    let entry = c.latest_b().await;
    let d = c.create_catalog_deployment().await;
    // Paused first: the fleet reports its old builds and installs nothing.
    let (s, _, _) = c
        .call(
            "PATCH",
            &format!("{U}/deployments/{d}"),
            Some(json!({"@odata.type": "#microsoft.graph.windowsUpdates.deployment",
                        "state": {"@odata.type": "microsoft.graph.windowsUpdates.deploymentState", "requestedValue": "paused"}})),
        )
        .await;
    assert_eq!(s, 202);
    let members: Vec<Value> = devices.iter().map(|d| dev(d)).collect();
    let (s, _) = c
        .post(
            &format!("{U}/deployments/{d}/audience/updateAudience"),
            json!({"addMembers": members}),
        )
        .await;
    assert_eq!(s, 202);
    let (s, first) = c.get(&format!("{U}/data/deviceProfiles")).await;
    assert_eq!(s, 200, "{first}");
    c.emu.advance(Duration::from_millis(400));
    let truth = c.emu.fleet();
    assert!(
        truth
            .values()
            .all(|d| d.installed_entry.is_none() && d.error.is_none()),
        "paused: nothing installs"
    );
    let reporting = truth.values().filter(|d| d.reporting).count();
    assert!(
        reporting < devices.len() && reporting > devices.len() / 2,
        "{reporting}"
    );
    // Offering: within simulated hours every device reaches its outcome.
    c.call(
        "PATCH",
        &format!("{U}/deployments/{d}"),
        Some(json!({"@odata.type": "#microsoft.graph.windowsUpdates.deployment",
                    "state": {"@odata.type": "microsoft.graph.windowsUpdates.deploymentState", "requestedValue": "none"}})),
    )
    .await;
    for _ in 0..4 {
        c.get(&format!("{U}/data/deviceProfiles?$top=5")).await;
        c.emu.advance(Duration::from_millis(300));
    }
    let truth = c.emu.fleet();
    let eid = entry["id"].as_str().unwrap();
    let installed = truth
        .values()
        .filter(|d| d.installed_entry.as_deref() == Some(eid))
        .count();
    let failed = truth.values().filter(|d| d.error.is_some()).count();
    assert_eq!(
        installed + failed,
        devices.len(),
        "every device reached its outcome"
    );
    assert!(failed > 0 && installed > 0);
    // A reporting device shows the entry's revision for its build; a hotpatch one a lower revision.
    let (_, expanded) = c
        .get(&format!("{U}/catalog/entries/{eid}?$expand=productRevisions"))
        .await;
    let revisions = expanded["productRevisions"].as_array().unwrap();
    let (s, page) = c.get(&format!("{U}/data/deviceProfiles?$top=100")).await;
    assert_eq!(s, 200);
    let profiles = page["value"].as_array().unwrap();
    assert_eq!(profiles.len(), reporting, "silent devices never report");
    let mut hotpatched = 0;
    for p in profiles {
        let id = p["azureAdDeviceId"].as_str().unwrap();
        let t = &truth[id];
        if t.installed_entry.is_none() {
            continue;
        }
        let build = p["osBuild"].as_str().unwrap();
        let r = revisions
            .iter()
            .find(|r| {
                let b = &r["osBuild"];
                format!(
                    "{}.{}.{}.{}",
                    b["majorVersion"], b["minorVersion"], b["buildNumber"], b["updateBuildRevision"]
                ) == build
            })
            .unwrap_or_else(|| panic!("{build} is one of the entry's revisions"));
        if r["isHotpatchUpdate"] == true {
            hotpatched += 1;
        }
    }
    assert!(hotpatched > 0, "some devices took the hotpatch revision");
    // A failed device carries a registration error on its asset.
    let failed_id = truth.iter().find(|(_, d)| d.error.is_some()).unwrap().0.clone();
    let (s, asset) = c.get(&format!("{U}/updatableAssets/{failed_id}")).await;
    assert_eq!(s, 200);
    assert!(!asset["errors"].as_array().unwrap().is_empty(), "{asset}");
    // The admin can set a device's build.
    c.emu.set_device(
        &devices[0],
        Some(wufb_graph_emulator::fleet::Build {
            major_version: 10,
            minor_version: 0,
            build_number: 26100,
            update_build_revision: 1,
        }),
        Some(None),
    );
    let (_, one) = c.get(&format!("{U}/data/deviceProfiles/{}", devices[0])).await;
    assert_eq!(one["osBuild"], "10.0.26100.1");
}

/// `$batch` as Graph documents it: each request answered with its own status, headers and body, served
/// as on its own (logged as carried by the batch); a throttled request answers 429 with Retry-After
/// inside a 200 batch; `dependsOn` runs in order and a failed dependency answers 424; more than 20
/// requests, a repeated id or a dependency on a later request is a 400; with `refuse_batch` the
/// deployment service's requests answer 400 inside the batch.
#[tokio::test]
async fn json_batches_answer_each_request_as_on_its_own() {
    let c = Ctx::start(EmulatorConfig {
        auth: false,
        faults: FaultConfig {
            throttle_rate: 1.0,
            operations: vec!["deploymentAudiences.create".into()],
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let id = c.create_catalog_deployment().await;
    let get = |rid: &str, url: String| json!({"id": rid, "method": "GET", "url": url});
    let (s, b) = c
        .post(
            "/beta/$batch",
            json!({"requests": [
                get("1", format!("/admin/windows/updates/deployments/{id}")),
                get("2", "/admin/windows/updates/deployments/00000000-0000-4000-8000-000000000000".into()),
                {"id": "3", "method": "POST", "url": "/admin/windows/updates/deploymentAudiences",
                 "headers": {"Content-Type": "application/json"}, "body": {}},
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let by_id = |rid: &str| {
        b["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == rid)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["id"], id.as_str());
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(by_id("2")["body"]["error"]["code"], "NotFound");
    assert_eq!(by_id("3")["status"], 429);
    assert!(by_id("3")["headers"]["retry-after"].is_string(), "{b}");
    let log = c.emu.requests();
    let batch = log.iter().filter(|r| r.operation == "$batch").count();
    let carried: Vec<&str> = log
        .iter()
        .filter(|r| r.in_batch)
        .map(|r| r.operation.as_str())
        .collect();
    assert_eq!(batch, 1);
    assert_eq!(carried.len(), 3, "{carried:?}");
    assert!(carried.contains(&"deployments.get") && carried.contains(&"deploymentAudiences.create"));

    // dependsOn: in order, and a failed dependency answers 424.
    let (s, b) = c
        .post(
            "/beta/$batch",
            json!({"requests": [
                get("a", "/admin/windows/updates/deployments/00000000-0000-4000-8000-000000000000".into()),
                {"id": "b", "method": "GET", "url": format!("/admin/windows/updates/deployments/{id}"), "dependsOn": ["a"]},
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let statuses: Vec<(String, u64)> = b["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, vec![("a".into(), 404), ("b".into(), 424)]);

    // The batch's own limits.
    let many: Vec<Value> = (0..21)
        .map(|i| get(&i.to_string(), "/admin/windows/updates/deployments".into()))
        .collect();
    let (s, b) = c.post("/beta/$batch", json!({ "requests": many })).await;
    assert_eq!(s, 400);
    assert!(b["error"]["message"].as_str().unwrap().contains("1 to 20"), "{b}");
    let twice = vec![
        get("x", format!("/admin/windows/updates/deployments/{id}")),
        get("X", "/admin/windows/updates/deployments".into()),
    ];
    assert_eq!(c.post("/beta/$batch", json!({ "requests": twice })).await.0, 400);
    let later = json!({"requests": [{"id": "1", "method": "GET", "url": "/admin/windows/updates/deployments", "dependsOn": ["2"]},
                                    get("2", "/admin/windows/updates/deployments".into())]});
    assert_eq!(c.post("/beta/$batch", later).await.0, 400);

    // A service that does not take the deployment service's paths in a batch.
    let refusing = Ctx::start(EmulatorConfig {
        auth: false,
        refuse_batch: true,
        ..Default::default()
    })
    .await;
    let (s, b) = refusing
        .post(
            "/beta/$batch",
            json!({"requests": [get("1", "/admin/windows/updates/deployments".into())]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["responses"][0]["status"], 400, "{b}");
}
