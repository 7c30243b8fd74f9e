//! Alerts from the first-party rule plugins on arriving records: an HL7
//! potassium of 6.2 opens a critical alert citing its record, a newer normal
//! value resolves it, and clinicians acknowledge, snooze and override alerts
//! (with reasons, audited); on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use medmemory_tests::{TestServer, start_on_postgres};
use reqwest::Method;
use serde_json::{Value, json};

const ORU: &str = "MSH|^~\\&|LAB|CITYHOSP|MEDMEMORY|CLINIC|20240501101500||ORU^R01^ORU_R01|MSG7|P|2.5.1\r\
PID|1||MRN7^^^CITYHOSP^MR||EXAMPLE^ADA||19610412|F\r\
OBR|1|ORD1|FIL1|24320-4^Basic metabolic panel^LN|||20240501083000\r\
OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||6.2|mmol/L^mmol/L^UCUM|3.5-5.1|HH|||F|||20240501083000\r\
OBX|2|NM|2951-2^Sodium [Moles/volume] in Serum or Plasma^LN||139|mmol/L^mmol/L^UCUM|136-145|N|||F|||20240501083000\r";

fn potassium(when: &str, value: f64) -> Value {
    json!({ "kind": "observation", "display": "Potassium",
        "codes": [{ "system": "http://loinc.org", "code": "2823-3" }],
        "status": "final", "effective": when, "value": { "value": value, "unit": "mmol/L" } })
}

async fn alerts(server: &TestServer, token: &str, base: &str, query: &str) -> Vec<Value> {
    let (status, body) = server
        .call(
            Method::GET,
            &format!("{base}/alerts{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Polls the patient's alerts until `done` holds for them.
async fn until(
    server: &TestServer,
    token: &str,
    base: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let items = alerts(server, token, base, "").await;
        if done(&items) {
            return items;
        }
        assert!(Instant::now() < deadline, "alerts never settled: {items:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn act(
    server: &TestServer,
    token: &str,
    base: &str,
    alert: &str,
    action: &str,
    body: Value,
) -> (u16, Value) {
    server
        .call(
            Method::POST,
            &format!("{base}/alerts/{alert}/{action}"),
            Some(token),
            Some(body),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_raise_and_resolve_alerts_on_sqlite() {
    let server = TestServer::start().await;
    lifecycle(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_raise_and_resolve_alerts_on_postgres() {
    let Some((server, db)) = start_on_postgres(Vec::new()).await else {
        return;
    };
    lifecycle(&server).await;
    drop(server);
    db.drop_db().await;
}

async fn lifecycle(server: &TestServer) {
    let clinic = server.create_clinic("Alerts").await;
    let token = server.clinic_token(&clinic, "clinician").await;
    let patient = server.create_patient(&token, &clinic, "Kay", "Lemia").await;
    let base = format!("/clinics/{clinic}/patients/{patient}");

    // A lab message with a critical potassium: one open critical alert that
    // cites the potassium record; the normal sodium raises nothing.
    server.ingest_text(&token, &clinic, &patient, ORU).await;
    let items = until(server, &token, &base, |a| !a.is_empty()).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let alert = &items[0];
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["indicator"], "critical");
    assert_eq!(alert["rule"], "critical-labs");
    assert_eq!(alert["summary"], "Potassium 6.2 mmol/L is critically high");
    let (_, records) = server
        .call(
            Method::GET,
            &format!("{base}/records?code=2823-3"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        alert["evidence"],
        json!([records["items"][0]["id"]]),
        "{records}"
    );
    let first = alert["id"].as_str().unwrap().to_owned();
    let clinic_wide = alerts(
        server,
        &token,
        &format!("/clinics/{clinic}"),
        "?status=open",
    )
    .await;
    assert_eq!(clinic_wide[0]["id"], first.as_str());

    // Acknowledged by a clinician, then resolved by the host when a newer,
    // normal potassium arrives.
    let (status, body) = act(server, &token, &base, &first, "ack", json!({})).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("acknowledged")),
        "{body}"
    );
    let (status, _) = server
        .call(
            Method::POST,
            &format!("{base}/records"),
            Some(&token),
            Some(json!({ "records": [potassium("2024-06-01", 4.4)] })),
        )
        .await;
    assert_eq!(status, 201);
    let items = until(server, &token, &base, |a| {
        a.iter().all(|x| x["status"] == "resolved")
    })
    .await;
    assert_eq!(items[0]["changed_by"], "system");

    // A new critical low value is a new alert; overriding needs a reason; a
    // resolved or overridden alert cannot be snoozed.
    server
        .call(
            Method::POST,
            &format!("{base}/records"),
            Some(&token),
            Some(json!({ "records": [potassium("2024-07-01", 2.5)] })),
        )
        .await;
    let items = until(server, &token, &base, |a| {
        a.iter().any(|x| x["status"] == "open")
    })
    .await;
    let low = items.iter().find(|x| x["status"] == "open").unwrap();
    assert!(
        low["summary"].as_str().unwrap().contains("critically low"),
        "{low}"
    );
    let low = low["id"].as_str().unwrap().to_owned();
    let (status, _) = act(
        server,
        &token,
        &base,
        &low,
        "snooze",
        json!({ "minutes": 60 }),
    )
    .await;
    assert_eq!(status, 200);
    let worklist = alerts(
        server,
        &token,
        &format!("/clinics/{clinic}"),
        "?status=open",
    )
    .await;
    assert!(
        worklist.iter().all(|a| a["id"] != low.as_str()),
        "a snoozed alert leaves the clinic's worklist: {worklist:?}"
    );
    let cases = [
        (
            &low,
            "snooze",
            json!({ "minutes": 0 }),
            422,
            "invalid_snooze",
        ),
        (&low, "override", json!({}), 422, "invalid_reason"),
        (
            &low,
            "override",
            json!({ "reason": "haemolysed sample, repeat ordered" }),
            200,
            "overridden",
        ),
        (
            &first,
            "snooze",
            json!({ "minutes": 5 }),
            409,
            "alert_not_open",
        ),
        (&low, "explode", json!({}), 404, "unknown_action"),
    ];
    for (alert, action, body, status, expected) in cases {
        let (got, reply) = act(server, &token, &base, alert, action, body).await;
        let what = if got == 200 {
            &reply["status"]
        } else {
            &reply["code"]
        };
        assert_eq!(
            (got, what.as_str()),
            (status, Some(expected)),
            "{action}: {reply}"
        );
    }
    let items = alerts(server, &token, &base, "?status=overridden").await;
    assert!(
        items[0]["snoozed_until"].is_null(),
        "an override ends the snooze"
    );
    assert_eq!(items[0]["reason"], "haemolysed sample, repeat ordered");
    let (status, body) = server
        .call(
            Method::GET,
            &format!("{base}/alerts?status=maybe"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_filter")),
        "{body}"
    );

    // Every change is audited with who and why.
    let (status, audit) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/audit?action=update&limit=100"),
            Some(&server.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let changes: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"] == "alert" && e["outcome"] == "succeeded")
        .collect();
    assert_eq!(
        changes.len(),
        3,
        "ack, snooze, override; refused ones change nothing: {audit}"
    );
    assert!(
        changes
            .iter()
            .any(|e| e["detail"].to_string().contains("haemolysed sample")),
        "{audit}"
    );
}

/// A rule that loops, traps or returns cards that break the contract fails
/// alone: the lab message's job succeeds, the first-party rule still raises
/// its alert, the bad rule raises none, and its failed calls are on record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_rule_fails_alone() {
    let server = TestServer::start_with(medmemory_tests::Options {
        env: vec![("MEDMEMORY_PLUGIN_DEADLINE_MS".into(), "2000".into())],
        ..Default::default()
    })
    .await;
    let clinic = server.create_clinic("Bad rules").await;
    let plugin = server.install_for("bad-rule", &clinic).await;
    let token = server.clinic_token(&clinic, "clinician").await;
    for (n, mode) in ["loop", "trap", "garbage"].into_iter().enumerate() {
        let (status, body) = server
            .call(
                Method::PUT,
                &format!("/clinics/{clinic}/plugins/{plugin}/config"),
                Some(&server.admin),
                Some(json!({ "settings": { "mode": mode } })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let patient = server.create_patient(&token, &clinic, "Bad", mode).await;
        let base = format!("/clinics/{clinic}/patients/{patient}");
        // `ingest_text` asserts that the job succeeded.
        server.ingest_text(&token, &clinic, &patient, ORU).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, stats) = server
                .call(
                    Method::GET,
                    &format!("/plugins/{plugin}/stats"),
                    Some(&server.admin),
                    None,
                )
                .await;
            if stats["calls"].as_i64().unwrap_or(0) > n as i64 {
                if mode != "garbage" {
                    assert!(
                        stats["failures"].as_i64().unwrap_or(0) > n as i64,
                        "{mode}: {stats}"
                    );
                }
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{mode}: the bad rule never ran: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        until(&server, &token, &base, |a| !a.is_empty()).await;
        // The bad rule's run is stored right after its audited call: give it
        // time to land before looking for what it must not have raised.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let items = alerts(&server, &token, &base, "").await;
        assert!(
            items.iter().all(|a| a["rule"] == "critical-labs"),
            "{mode}: only the good rule's alert: {items:?}"
        );
    }
}
