//! The organisation's own limits (`GET /v1/organization`, issue 23 item 4): `max_in_flight: auto`
//! follows each model's concurrency; a model whose daily generations are used up holds before any
//! create Runway would refuse, and goes on when a later answer allows; a balance too small for the
//! next job holds like the budget (a `run` ends with exit 4), shown by `status`; a failed, refused
//! or malformed answer changes nothing.

use std::time::Duration;

use dropreel::run::pipeline::Mode;

use crate::support::*;

const ORG_FILE: &str = ".dropreel/organization.json";

/// The videos in done/.
fn videos(studio: &Studio) -> usize {
    studio
        .list("done")
        .iter()
        .filter(|n| n.ends_with(".mp4"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_auto_follows_each_models_concurrency_at_runway() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| {
            s.concurrency = 8;
            s.task_time = Duration::from_millis(600);
            s.organization.limit("gen4_turbo", Some(4), None);
            // Another model without a limit: the bound of gen4_turbo is its own, not the largest.
            s.organization.limit("gen4.5", None, None);
        })
        .runway("max_in_flight", "auto")
        .runway("organization_every", "200ms")
        .start()
        .await;
    let w = Watching::start(&studio);
    studio.appears(ORG_FILE, Duration::from_secs(10)).await;
    for i in 0..8 {
        studio.put(&format!("inbox/c{i}.png"), &png_bytes(8 + i, 8));
    }
    until("eight videos", Duration::from_secs(30), || {
        videos(&studio) == 8
    })
    .await;
    w.stop().await.outcome(8, 0);
    assert_eq!(
        fake.max_in_flight(),
        4,
        "tasks in flight at Runway at once, with gen4_turbo's concurrency at 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_daily_quota_holds_its_model_before_any_429_and_resumes() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| {
            s.organization.limit("gen4_turbo", None, Some(3));
            s.organization.used.insert("gen4_turbo".into(), 1);
        })
        .runway("max_in_flight", "auto")
        .runway("organization_every", "100ms")
        .start()
        .await;
    let logs = LogWatch::start();
    let w = Watching::start(&studio);
    studio.appears(ORG_FILE, Duration::from_secs(10)).await;
    for i in 0..4 {
        studio.put(&format!("inbox/d{i}.png"), &png_bytes(8 + i, 8));
    }
    // Another model goes on meanwhile (a text: gen4.5).
    studio.put("inbox/t.txt", b"Neon rain on an empty street");
    let held = "daily limit for gen4_turbo is used up";
    logs.until(&[held], 1, Duration::from_secs(20)).await;
    until("two images and the text", Duration::from_secs(20), || {
        videos(&studio) == 3
    })
    .await;
    assert_eq!(
        fake.created().len(),
        2,
        "two gen4_turbo creates fit 3 a day with 1 used"
    );
    assert_eq!(fake.quota_refusals(), 0, "held before Runway refused");
    assert_eq!(fake.created_on("/v1/text_to_video").len(), 1);
    assert!(
        logs.lines(&[held])[0].contains("3 of 3"),
        "{:?}",
        logs.lines(&[held])
    );
    // Runway allows more: the rest goes on by itself.
    fake.set(|s| s.organization.limit("gen4_turbo", None, Some(10)));
    until("all five", Duration::from_secs(20), || videos(&studio) == 5).await;
    w.stop().await.outcome(5, 0);
    assert_eq!(fake.quota_refusals(), 0);
    assert_eq!(logs.lines(&[held]).len(), 1, "one line for the hold");
    assert_eq!(logs.lines(&["allows more gen4_turbo"]).len(), 1);
    assert!(studio.list("failed").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_too_small_for_the_next_job_holds_it_and_a_run_ends_like_the_budget() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.organization.balance = Some(10))
        .runway("max_in_flight", "auto")
        // The file is taken after the first answer (the answer is on loopback, in milliseconds).
        .watch("settle", "300ms")
        .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\n")
        .put("inbox/a.png", png_bytes(8, 8))
        .start()
        .await;
    let summary = studio.run().await;
    let why = summary.budget_held.clone().unwrap_or_default();
    assert!(
        why.contains(
            "credit balance at Runway (10 credits) is too small for the next job (25 credits"
        ),
        "{summary:?}"
    );
    assert!(why.contains("buy credits"), "says what to do: {why}");
    assert_eq!(summary.exit_code(Mode::Run, None), 4);
    assert_eq!(
        fake.count("POST", "/v1/image_to_video"),
        0,
        "no create that fails"
    );
    assert!(studio.list("failed").is_empty());
    assert_eq!(studio.list("inbox"), vec!["a.png"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_the_dashboard_show_the_balance_and_limits_and_a_low_balance_is_waited_out() {
    let fake = FakeRunway::start(Switches::default()).await;
    fake.set(|s| {
        s.organization.balance = Some(10);
        s.organization.limit("gen4_turbo", Some(3), Some(50));
    });
    let studio = Studio::new(
        &TestConfig::new(&fake.url)
            .runway("max_in_flight", "auto")
            .runway("organization_every", "100ms")
            .extra("defaults:\n  model: gen4_turbo\n  duration: 5\n")
            .yaml(),
    );
    let port = free_port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let child = Tailed::new(spawn_watch_with(
        studio.root(),
        &[&format!("--ui=127.0.0.1:{port}")],
    ));
    studio.appears(ORG_FILE, Duration::from_secs(10)).await;
    // The dashboard (listening once the instance is up) shows the same.
    wait_started(studio.root(), child.child()).await;
    let (code, body) = get(addr, "/api/state", &[]).await;
    assert_eq!(code, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let org = &state["organization"];
    assert_eq!(org["balance"], 10, "{state}");
    assert_eq!(
        org["models"],
        serde_json::json!([{"model": "gen4_turbo", "at_once": 3, "daily": 50, "used": 0}]),
        "{state}"
    );
    studio.put("inbox/a.png", &png_bytes(8, 8));
    until("the pause in status", Duration::from_secs(20), || {
        status(studio.root()).contains("SUBMISSION PAUSED")
    })
    .await;
    let shown = status(studio.root());
    assert!(shown.contains("too small for the next job"), "{shown}");
    assert!(shown.contains("balance 10 credits"), "{shown}");
    assert!(
        shown.contains("gen4_turbo: 3 at once; 0 of 50 generations in the last 24 h"),
        "{shown}"
    );
    assert_eq!(fake.count("POST", "/v1/image_to_video"), 0);
    fake.set(|s| s.organization.balance = Some(1000));
    studio.appears("done/a.mp4", Duration::from_secs(20)).await;
    sigterm(child.child());
    let (code, logs) = child.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(fake.created().len(), 1);
}

/// A switch of the fake's organisation answer.
type Answer = fn(&mut Organization);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refused_or_malformed_organization_answer_changes_nothing() {
    let answers: [(&str, Answer); 5] = [
        ("500", |o| o.status = Some(500)),
        ("403", |o| o.status = Some(403)),
        ("401", |o| o.status = Some(401)),
        ("partial", |o| {
            o.body = Some(serde_json::json!({
                "creditBalance": null,
                "tier": {"models": {"gen4_turbo": {}}},
            }));
        }),
        ("not an organisation", |o| {
            o.body = Some(serde_json::json!(["not", "an", "organisation"]));
        }),
    ];
    for (what, answer) in answers {
        let r = Scenario::new()
            .fake(|s| {
                s.concurrency = 8;
                s.task_time = Duration::from_millis(200);
                answer(&mut s.organization);
            })
            .runway("max_in_flight", "auto")
            .runway("organization_every", "50ms")
            .put("inbox/a.png", png_bytes(8, 8))
            .put("inbox/b.png", png_bytes(9, 8))
            .put("inbox/c.png", png_bytes(10, 8))
            .run()
            .await;
        r.outcome(3, 0);
        assert!(r.fake.organization_requests() >= 1, "{what}: asked");
        assert!(
            r.fake.max_in_flight() <= 2,
            "{what}: today's default of 2 in flight"
        );
        assert_eq!(r.fake.created().len(), 3, "{what}");
        assert!(r.summary.budget_held.is_none(), "{what}: no hold");
    }
}
