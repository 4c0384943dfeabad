//! Notifications: events written to the outbox in `.dropreel/outbox/` before anyone is told, sent to
//! a webhook (signed, retried until it answers, each event once by id) and to a command (no shell:
//! an odd file name is one argument); a stuck receiver never holds a job up.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;

const SECRET_VAR: &str = "DROPREEL_TEST_HOOK_SECRET";
const SECRET: &str = "s3cret-for-the-hook";

fn notify_yaml(url: &str, extra: &str) -> String {
    format!("notify:\n  webhook: {url}\n  retry_min: 50ms\n  retry_max: 200ms\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_fails_its_first_tries_still_gets_every_event_once_and_signed() {
    let fake = FakeRunway::start(Switches::default()).await;
    let hook = Hook::start(3, false).await;
    let studio = Studio::new(&test_config(
        &fake.url,
        &notify_yaml(&hook.url, &format!("  webhook_secret_env: {SECRET_VAR}\n")),
    ));
    for name in ["a", "b", "c"] {
        studio.put(&format!("inbox/{name}.png"), &png_distinct(12, 8));
    }
    studio.put("inbox/bad.png", b"not an image at all");
    let (code, err) = run_binary(studio.root(), &[(SECRET_VAR, SECRET)]).await;
    assert_eq!(code, Some(1), "one job failed: {err}");

    let got = hook.got();
    assert!(
        got.iter().filter(|h| h.status == 503).count() == 3,
        "the first three tries failed"
    );
    // Every event arrived once (by id) after the failures, each signed with the secret.
    let mut by_id: HashMap<String, serde_json::Value> = HashMap::new();
    for h in got.iter().filter(|h| h.status == 200) {
        let sig = h.headers["x-dropreel-signature"].to_str().unwrap();
        assert_eq!(
            sig,
            dropreel::observe::notify::signature(SECRET.as_bytes(), &h.body)
        );
        let v: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(h.headers["x-dropreel-id"].to_str().unwrap(), v["id"]);
        let first = by_id.insert(v["id"].as_str().unwrap().to_string(), v);
        assert!(first.is_none(), "an event was accepted twice");
    }
    let mut delivered: Vec<&str> = by_id
        .values()
        .filter(|v| v["event"] == "delivered")
        .map(|v| v["file"].as_str().unwrap())
        .collect();
    delivered.sort_unstable();
    assert_eq!(delivered, ["a.png", "b.png", "c.png"]);
    let a = by_id.values().find(|v| v["file"] == "a.png").unwrap();
    assert_eq!(a["outputs"], serde_json::json!(["done/a.mp4"]));
    assert!(a["credits"].as_f64().unwrap() > 0.0);
    let failed: Vec<_> = by_id.values().filter(|v| v["event"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["file"], "bad.png");
    assert_eq!(
        failed[0]["outputs"],
        serde_json::json!(["failed/bad.error.txt"])
    );
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("not an image")
    );
    // Nothing waits in the outbox any more.
    assert!(
        std::fs::read_dir(studio.path(".dropreel/outbox/webhook"))
            .unwrap()
            .flatten()
            .all(|e| e.file_name().to_string_lossy().starts_with('.')),
        "the outbox is empty"
    );
    // The key never appears in an event.
    assert!(
        got.iter()
            .all(|h| !String::from_utf8_lossy(&h.body).contains(KEY))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_receiver_never_holds_a_job_up_and_nothing_is_lost() {
    let fake = FakeRunway::start(Switches::default()).await;
    let hook = Hook::start(0, true).await;
    let studio = Studio::new(&test_config(&fake.url, &notify_yaml(&hook.url, "")));
    for name in ["a", "b", "c", "d"] {
        studio.put(&format!("inbox/{name}.png"), &png_distinct(12, 8));
    }
    let summary = studio.run().await;
    // Every job was delivered while the receiver had answered nothing.
    assert_eq!((summary.succeeded, summary.failed), (4, 0));
    assert!(
        hook.got().iter().all(|h| h.status == 0),
        "the receiver never answered"
    );
    assert_eq!(studio.list("done").len(), 4 * 3);
    // The events wait in the outbox; the next run, with the receiver back, sends them.
    let waiting = || {
        std::fs::read_dir(studio.path(".dropreel/outbox/webhook"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count()
    };
    assert_eq!(waiting(), 4);
    let shown = status(studio.root());
    assert!(
        shown.contains("notifications not delivered yet: 4 for the webhook, the oldest from "),
        "status shows what waits: {shown}"
    );
    hook.heal();
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 0, "nothing new to do");
    let mut files: Vec<String> = hook
        .accepted()
        .iter()
        .map(|v| v["file"].as_str().unwrap().to_string())
        .collect();
    files.sort_unstable();
    files.dedup();
    assert_eq!(files, ["a.png", "b.png", "c.png", "d.png"]);
    assert_eq!(waiting(), 0);
    assert!(!status(studio.root()).contains("notifications not delivered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_gets_an_odd_file_name_as_one_argument_and_the_event_in_its_environment() {
    let Scene {
        fake: _fake,
        studio,
    } = Scenario::new().start().await;
    let log = studio.path("hook.log");
    // sh prints each argument it is given on its own line: dropreel passes `{file}` as one
    // argument ("$@"), which no shell ever splits or runs.
    let script = format!(
        "for a in \"$@\"; do printf '[%s]\\n' \"$a\"; done >> '{}'; printf 'env=%s|%s\\n' \"$DROPREEL_EVENT\" \"$DROPREEL_OUTPUTS\" >> '{}'",
        log.display(),
        log.display()
    );
    let yaml = format!(
        "{}notify:\n  command: [\"/bin/sh\", \"-c\", {}, \"sh\", \"{{event}}\", \"{{file}}\"]\n  events: [delivered]\n",
        std::fs::read_to_string(studio.path("dropreel.yaml")).unwrap(),
        serde_json::to_string(&script).unwrap()
    );
    std::fs::write(studio.path("dropreel.yaml"), yaml).unwrap();
    let odd = "it's a \"test\"; touch pwned $(id).png";
    studio.put(&format!("inbox/{odd}"), &png_distinct(12, 8));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    let text = std::fs::read_to_string(&log).unwrap();
    let stem = odd.trim_end_matches(".png");
    assert_eq!(
        text,
        format!("[delivered]\n[{odd}]\nenv=delivered|done/{stem}.mp4\n")
    );
    assert!(!studio.path("pwned").exists() && !studio.path("inbox/pwned").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_told_as_a_hold_and_its_end_as_resumed() {
    let fake = FakeRunway::start(Switches {
        key: "key_someone_elses".into(),
        ..Switches::default()
    })
    .await;
    let hook = Hook::start(0, false).await;
    let studio = Studio::new(
        &TestConfig::new(&fake.url)
            .runway("retry_min", "50ms")
            .runway("retry_max", "200ms")
            .extra(&notify_yaml(
                &hook.url,
                "  events: [hold, resumed, delivered]\n",
            ))
            .yaml(),
    );
    studio.put("inbox/a.png", &png_distinct(12, 8));
    let watching = Watching::start(&studio);
    until("the hold is told", Duration::from_secs(10), || {
        hook.accepted().iter().any(|v| v["event"] == "hold")
    })
    .await;
    fake.set(|s| s.key = KEY.into());
    until("the delivery is told", Duration::from_secs(10), || {
        hook.accepted().iter().any(|v| v["event"] == "delivered")
    })
    .await;
    watching.stop().await;
    let events = hook.accepted();
    let kinds: Vec<&str> = events
        .iter()
        .map(|v| v["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["hold", "resumed", "delivered"],
        "each once, in order"
    );
    let cause = events[0]["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("key: ") && cause.contains("refused the API key"),
        "{cause}"
    );
    assert_eq!(events[1]["cause"], "key");
    assert!(events[0]["job"].is_null() && events[0]["file"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_notify_waits_for_the_next_start_while_other_edits_apply() {
    let fake = FakeRunway::start(Switches::default()).await;
    let (first, second) = (Hook::start(0, false).await, Hook::start(0, false).await);
    let cfg = |url: &str, prompt: &str| {
        test_config(
            &fake.url,
            &format!(
                "defaults:\n  prompt: {prompt}\n{}",
                notify_yaml(url, "  events: [delivered]\n")
            ),
        )
    };
    let studio = Studio::new(&cfg(&first.url, "one"));
    let watching = Watching::start(&studio);
    studio.put("inbox/a.png", &png_distinct(12, 8));
    until("a is told", Duration::from_secs(10), || {
        first.accepted().len() == 1
    })
    .await;
    studio.put("dropreel.yaml", cfg(&second.url, "two").as_bytes());
    until_instance(&studio, "the edit was not applied", |v| {
        v["settings"]["version"] == 2
    })
    .await;
    // The prompt's edit applies to the next file; the webhook's waits for a restart.
    studio.put("inbox/b.png", &png_distinct(12, 8));
    until("b is told", Duration::from_secs(10), || {
        first.accepted().len() == 2
    })
    .await;
    watching.stop().await;
    assert_eq!(fake.prompts(), ["one", "two"]);
    assert!(
        second.got().is_empty(),
        "the new webhook waits for the next start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_webhook_refuses_for_good_is_set_aside_and_the_next_ones_go_on() {
    let fake = FakeRunway::start(Switches::default()).await;
    let hook = Hook::start(0, false).await;
    hook.refuse("bad.png");
    let studio = Studio::new(&test_config(
        &fake.url,
        &notify_yaml(&hook.url, "  events: [delivered, failed]\n"),
    ));
    let watching = Watching::start(&studio);
    studio.put("inbox/bad.png", b"not an image at all");
    until(
        "the receiver refuses bad.png's event",
        Duration::from_secs(10),
        || hook.got().iter().any(|h| h.status == 422),
    )
    .await;
    studio.put("inbox/a.png", &png_distinct(12, 8));
    until("a.png's delivery is told", Duration::from_secs(10), || {
        hook.accepted().iter().any(|v| v["file"] == "a.png")
    })
    .await;
    watching.stop().await;
    let refused: Vec<_> = hook.got().into_iter().filter(|h| h.status == 422).collect();
    assert_eq!(refused.len(), 1, "a refused event is not sent again");
    let event: serde_json::Value = serde_json::from_slice(&refused[0].body).unwrap();
    // Kept, with why, where the next start does not send it again.
    let aside = studio.path(".dropreel/outbox/webhook/rejected");
    let id = event["id"].as_str().unwrap();
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(aside.join(format!("{id}.json"))).unwrap()).unwrap();
    assert_eq!(kept, event);
    let why = std::fs::read_to_string(aside.join(format!("{id}.txt"))).unwrap();
    assert!(why.contains("HTTP 422"), "{why}");
    let shown = status(studio.root());
    assert!(
        shown.contains("1 notification the webhook refused is set aside")
            && shown.contains("HTTP 422")
            && shown.contains(".dropreel/outbox/webhook/rejected/"),
        "status lists it: {shown}"
    );
    assert!(!shown.contains("not delivered yet"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_gets_neither_secret_and_a_name_starting_with_a_dash_is_no_option() {
    let fake = FakeRunway::start(Switches::default()).await;
    let hook = Hook::start(0, false).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    let log = studio.path("hook.log");
    let script = format!(
        "for a in \"$@\"; do printf '[%s]\\n' \"$a\"; done >> '{log}'; \
         printf 'hook=%s key=%s alias=%s file=%s\\n' \"${{{SECRET_VAR}-unset}}\" \
         \"${{RUNWAYML_API_SECRET-unset}}\" \"${{RUNWAY_API_KEY-unset}}\" \"$DROPREEL_FILE\" >> '{log}'",
        log = log.display(),
    );
    let yaml = format!(
        "{}notify:\n  webhook: {}\n  webhook_secret_env: {SECRET_VAR}\n  command: [\"/bin/sh\", \"-c\", {}, \"sh\", \"{{event}}\", \"{{file}}\", \"--name={{file}}\"]\n  events: [delivered]\n",
        std::fs::read_to_string(studio.path("dropreel.yaml")).unwrap(),
        hook.url,
        serde_json::to_string(&script).unwrap()
    );
    std::fs::write(studio.path("dropreel.yaml"), yaml).unwrap();
    studio.put("inbox/-rf.png", &png_distinct(12, 8));
    let (code, err) = run_binary(
        studio.root(),
        &[
            (SECRET_VAR, SECRET),
            ("RUNWAY_API_KEY", "key_by_its_other_name"),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        "[delivered]\n[./-rf.png]\n[--name=./-rf.png]\nhook=unset key=unset alias=unset file=-rf.png\n",
        "the file as a path that is no option, and no secret in the command's environment"
    );
    // The webhook still signs with the secret.
    let got = hook.accepted();
    assert_eq!(got.len(), 1);
}
