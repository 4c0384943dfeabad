//! Text to video, end to end: a `.txt` in `inbox/` becomes a task on `/v1/text_to_video` (its text,
//! trimmed, the prompt), checked against the text model's rules before any request; on the local
//! backend it becomes a title card.

use std::time::Duration;

use crate::support::*;

const TEXT: &str = "/v1/text_to_video";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_becomes_a_text_to_video_task_with_and_without_a_sidecar() {
    let Scene { fake, studio } = Scenario::new().start().await;
    studio.put(
        "inbox/mood.txt",
        "\u{feff}  Fog rolls over a quiet harbour at dawn.\n\n".as_bytes(),
    );
    studio.put("inbox/title.txt", b"Neon rain on an empty street");
    studio.put(
        "inbox/title.yaml",
        b"model: veo3.1\nratio: \"720:1280\"\nduration: 6\n",
    );
    studio.run().await.outcome(2, 0);
    let bodies = fake.created_on(TEXT);
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert!(fake.created().is_empty(), "nothing on image_to_video");
    let mood = body_for(&bodies, "Fog rolls over a quiet harbour at dawn.");
    assert_eq!(
        mood,
        &serde_json::json!({
            "model": "gen4.5",
            "promptText": "Fog rolls over a quiet harbour at dawn.",
            "ratio": "1280:720",
            "duration": 5
        }),
        "defaults.text_model, the model's first ratio, 5 s; no promptImage"
    );
    let title = body_for(&bodies, "Neon rain on an empty street");
    assert_eq!(
        (
            title["model"].as_str(),
            title["ratio"].as_str(),
            title["duration"].as_u64()
        ),
        (Some("veo3.1"), Some("720:1280"), Some(6))
    );
    studio.assert_listing(
        "done",
        &[
            "mood.mp4",
            "mood.result.json",
            "mood.txt",
            "title.mp4",
            "title.result.json",
            "title.txt",
            "title.yaml",
        ],
    );
    let r = studio.json("done/mood.result.json");
    assert_eq!(r["kind"], "text");
    assert_eq!(r["endpoint"], TEXT);
    assert_eq!(r["inputs"][0]["name"], "mood.txt");
    assert_eq!(r["inputs"][0]["sha256"].as_str().map(str::len), Some(64));
    assert!(r["image"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_job_that_cannot_work_fails_before_any_request() {
    let Scene { fake, studio } = Scenario::new()
        .yaml("defaults:\n  ratio: \"1104:832\"\n")
        .start()
        .await;
    let long = "word ".repeat(250);
    let cases: &[(&str, &[u8], Option<&str>, &str)] = &[
        ("empty", b"  \n\t\n", None, "the text file is empty"),
        ("latin1", b"caf\xe9 au lait", None, "not UTF-8"),
        (
            "doubled",
            b"a prompt",
            Some("prompt: another prompt\n"),
            "the text file is the prompt",
        ),
        (
            "imageonly",
            b"a prompt",
            Some("model: gen4_turbo\n"),
            "does not make videos from text",
        ),
        ("long", long.as_bytes(), None, "gen4.5 takes at most 1000"),
        (
            "badratio",
            b"a prompt",
            Some("ratio: \"1104:832\"\n"),
            "ratio 1104:832 is not offered by gen4.5",
        ),
        (
            "aleph",
            b"a prompt",
            Some("model: aleph2\n"),
            "models that do: gemini_omni_flash, gemini_omni_flash_1.1, gen4.5",
        ),
    ];
    for (stem, text, sidecar, _) in cases {
        studio.put(&format!("inbox/{stem}.txt"), text);
        if let Some(sc) = sidecar {
            studio.put(&format!("inbox/{stem}.yaml"), sc.as_bytes());
        }
    }
    // The default ratio 1104:832 is an image ratio: a text job takes the nearest text ratio.
    studio.put("inbox/fine.txt", b"A slow zoom into a forest");
    let summary = studio.run().await;
    assert_eq!(
        (summary.succeeded, summary.failed),
        (1, cases.len()),
        "{:?}",
        studio.list("failed")
    );
    for (stem, _, _, why) in cases {
        let t = studio.read(&format!("failed/{stem}.error.txt"));
        assert!(t.contains(why), "{stem}: {t}");
        assert!(studio.path(&format!("failed/{stem}.txt")).exists());
    }
    let sent = fake.created_on(TEXT);
    assert_eq!(sent.len(), 1, "only the good one was sent: {sent:#?}");
    assert_eq!(sent[0]["ratio"], "1280:720");
    assert_eq!(fake.count("POST", TEXT), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_text_job_is_polled_after_the_restart_not_submitted_again() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.task_time = Duration::from_millis(1200))
        .start()
        .await;
    studio.put("inbox/storm.txt", b"Lightning over a wheat field");
    let mut child = spawn_watch(studio.root());
    // Killed once the task is known to the job (a kill while the create is on the wire is an
    // uncertain submission: resubmitted and recorded, tested elsewhere).
    until("the job submitted", Duration::from_secs(10), || {
        studio.job_states() == ["submitted"]
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let child = spawn_watch(studio.root());
    studio
        .appears("done/storm.mp4", Duration::from_secs(20))
        .await;
    sigterm(&child);
    let (code, _) = wait_exit(child, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
    assert_eq!(fake.count("POST", TEXT), 1, "submitted once");
    assert_eq!(studio.json("done/storm.result.json")["kind"], "text");
}
