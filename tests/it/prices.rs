//! Prices from the API: what Runway reports (`estimatedCost` on the create answer, `cost` on the
//! finished task) is recorded in `job.json`, is `result.json`'s `credits`, and reconciles the spend
//! log (a refund included), so `status` and the budget follow what Runway charged; the price Runway
//! reported for a model is learnt and priced the next request (and `estimate`) when `budget.rates`
//! names none; a finished task without a usable `cost` keeps the estimate, with one warning.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// Every spend line written so far, as JSON.
fn spend_lines(root: &Path) -> Vec<serde_json::Value> {
    let dir = root.join(".dropreel/spend");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !e.file_name().to_string_lossy().ends_with(".jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(e.path()).unwrap().lines() {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}

/// The sum of the spend log's credits (a reconciling line's are signed).
fn spent(root: &Path) -> i64 {
    spend_lines(root)
        .iter()
        .map(|l| l["credits"].as_i64().unwrap())
        .sum()
}

// See: issue 23, item 3 — gen4_turbo is 5 credits a second in our catalog; the server charges 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_json_the_spend_log_and_the_budget_follow_the_price_runway_charged() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| {
            s.prices.insert("gen4_turbo".into(), 7.0);
        })
        .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\nbudget:\n  daily_credits: 60\n")
        .put("inbox/a.png", png_distinct(16, 9))
        .start()
        .await;
    studio.run().await.outcome(1, 0);
    let result = studio.json("done/a.result.json");
    assert_eq!(result["credits"], 35, "what Runway charged: {result:#}");
    assert_eq!(result["estimated_credits"], 35.0, "{result:#}");
    // Counted at the catalog's 25 before the request, then reconciled by the difference.
    let lines = spend_lines(studio.root());
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["credits"], 25, "{lines:#?}");
    assert_eq!(lines[1]["credits"], 10, "{lines:#?}");
    assert_eq!(lines[1]["settles"], "task-0001", "{lines:#?}");
    assert_eq!(spent(studio.root()), 35);
    let shown = status(studio.root());
    assert!(shown.contains("today 35 of 60 credits"), "{shown}");

    // The next job is priced at what Runway reported (35), learnt: 35 + 35 passes the day's 60,
    // so it waits (counted at the catalog's 25 it would have gone out).
    studio.put("inbox/b.png", &png_distinct(16, 9));
    studio.run().await;
    assert_eq!(
        fake.tasks_created(),
        1,
        "the second job waits for the budget"
    );
    studio.assert_listing("inbox", &["b.png"]);
    assert!(studio.path(".dropreel/prices.json").exists());
}

// See: issue 23, item 3 — a task Runway refunded (cost 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_is_reconciled_in_the_spend_log_and_status() {
    let r = Scenario::new()
        .fake(|s| s.refunds = 1)
        .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\n")
        .put("inbox/a.png", png_distinct(16, 9))
        .run()
        .await;
    r.outcome(1, 0);
    let result = r.studio.json("done/a.result.json");
    assert_eq!(result["credits"], 0, "{result:#}");
    assert_eq!(result["estimated_credits"], 25.0, "{result:#}");
    let lines = spend_lines(r.studio.root());
    assert_eq!(
        lines
            .iter()
            .map(|l| l["credits"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![25, -25],
        "{lines:#?}"
    );
    let shown = status(r.studio.root());
    assert!(shown.contains("today 0 credits"), "{shown}");
    // The job's record kept both prices (job.json is gone with the job; result.json says them).
}

/// `dropreel estimate ROOT` as printed for people.
fn estimate_text(root: &Path) -> String {
    let out = Command::new(dropreel_bin())
        .args(["estimate", root.to_str().unwrap()])
        .env("RUNWAYML_API_SECRET", KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// See: issue 23, item 3 — aleph2 has no price in our catalog: under a budget it waits for
// `budget.rates`, until Runway has priced one of its tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_learnt_from_runway_lets_a_model_of_no_catalog_price_run_under_a_budget() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| {
            s.prices.insert("aleph2".into(), 15.0);
            s.seconds_without_duration = 4;
        })
        .put("inbox/walk.mp4", mp4_of(4))
        .put("inbox/walk.yaml", "model: aleph2\n")
        .start()
        .await;
    // Before: estimate knows no price for it.
    let before = estimate_text(studio.root());
    assert!(before.contains("unknown"), "{before}");
    // The first job, with no budget, is priced by Runway: 15 credits a second, learnt.
    studio.run().await.outcome(1, 0);
    let learnt = studio.json(".dropreel/prices.json");
    assert_eq!(learnt["aleph2"]["credits_per_second"], 15.0, "{learnt:#}");

    // Now under a budget, the next one runs (without the learnt price it would wait).
    let yaml = studio.read("dropreel.yaml");
    std::fs::write(
        studio.path("dropreel.yaml"),
        format!("{yaml}\nbudget:\n  daily_credits: 1000\n"),
    )
    .unwrap();
    studio.put("inbox/run.mp4", &mp4_of(4));
    studio.put("inbox/run.yaml", b"model: aleph2\nprompt: at night\n");
    let text = estimate_text(studio.root());
    let today = jiff::Zoned::now().strftime("%Y-%m-%d").to_string();
    assert!(
        text.contains(&format!("learnt from Runway on {today}")),
        "{text}"
    );
    assert!(text.contains("60"), "4 s at 15 credits: {text}");
    studio.run().await.outcome(1, 0);
    assert_eq!(fake.tasks_created(), 2);
    let lines = spend_lines(studio.root());
    assert_eq!(lines.last().unwrap()["credits"], 60, "{lines:#?}");
}

// See: issue 23, bad input — a finished task whose `cost` is missing or not a number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_odd_cost_keeps_the_estimate_with_one_warning() {
    for field in [CostField::Missing, CostField::NotANumber] {
        let Scene {
            fake: _fake,
            studio,
        } = Scenario::new()
            .fake(|s| {
                s.prices.insert("gen4_turbo".into(), 7.0);
                s.cost_field = field;
            })
            .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\n")
            .put("inbox/a.png", png_distinct(16, 9))
            .start()
            .await;
        let (code, logs) = run_binary(studio.root(), &[]).await;
        assert_eq!(code, Some(0), "{logs}");
        let result = studio.json("done/a.result.json");
        assert_eq!(result["credits"], 35, "{field:?}: the estimate: {result:#}");
        assert_eq!(spent(studio.root()), 35, "{field:?}");
        let warned: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("\"WARN\"") && l.contains("cost"))
            .collect();
        assert_eq!(warned.len(), 1, "{field:?}: {logs}");
    }
}

/// The `job.json` of the one job in `processing/`, and its path.
fn the_job(studio: &Studio) -> Option<(std::path::PathBuf, serde_json::Value)> {
    std::fs::read_dir(studio.path("processing"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("job.json"))
        .find(|p| p.exists())
        .and_then(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).ok()?).ok()?;
            Some((p, v))
        })
}

// See: issue 23, item 3 — the record says a task's end first, then its line is written, then the
// record says so: a crash after the first write (the line missing) or the second (the line there,
// the record not knowing) ends with the line in the log once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciliation_cut_short_is_written_once_when_the_job_resumes() {
    for line_was_written in [false, true] {
        let Scene { fake, studio } = Scenario::new()
            .fake(|s| {
                s.prices.insert("gen4_turbo".into(), 7.0);
                s.download_latency = Duration::from_secs(30);
            })
            .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\n")
            .put("inbox/a.png", png_distinct(16, 9))
            .start()
            .await;
        let watching = Watching::start(&studio);
        // The task ended and was reconciled; its download is held by the fake.
        until("the task's end reconciled", Duration::from_secs(10), || {
            the_job(&studio).is_some_and(|(_, j)| j["tasks"][0]["settled"] == true)
        })
        .await;
        watching.stop().await;
        // As a kill would have left it.
        let (path, mut job) = the_job(&studio).unwrap();
        assert_eq!(job["tasks"][0]["cost_credits"], 35, "{job:#}");
        assert_eq!(job["tasks"][0]["counted_credits"], 25, "{job:#}");
        assert_eq!(job["tasks"][0]["estimated_credits"], 35.0, "{job:#}");
        job["tasks"][0]["settled"] = false.into();
        std::fs::write(&path, serde_json::to_vec(&job).unwrap()).unwrap();
        if !line_was_written {
            let month = std::fs::read_dir(studio.path(".dropreel/spend"))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .unwrap();
            let kept: String = std::fs::read_to_string(&month)
                .unwrap()
                .lines()
                .filter(|l| !l.contains("settles"))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&month, kept).unwrap();
            assert_eq!(spent(studio.root()), 25);
        }
        fake.set(|s| s.download_latency = Duration::ZERO);
        studio.run().await.outcome(1, 0);
        let lines = spend_lines(studio.root());
        let settling = lines.iter().filter(|l| l["settles"].is_string()).count();
        assert_eq!(
            settling, 1,
            "line written before: {line_was_written}: {lines:#?}"
        );
        assert_eq!(spent(studio.root()), 35);
        assert_eq!(studio.json("done/a.result.json")["credits"], 35);
    }
}
