//! The catalog of SDK 5.24.0 end to end: a job per new model family sends exactly the body its
//! model takes; a legacy model and an unknown one fail before any request, naming what to use; a
//! model a studio declares under `models:` is sent and delivered; a bad `models:` entry stops the
//! run at start; `dropreel models --json` lists the shipped catalog and the user guide's table is
//! the one `dropreel models --markdown` prints.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

/// The body with every data URI replaced by `"<data>"`, so a body can be compared whole.
fn plain(body: &Value) -> Value {
    match body {
        Value::String(s) if s.starts_with("data:") => json!("<data>"),
        Value::String(s) if s.starts_with("runway://") => json!("<upload>"),
        Value::Array(items) => Value::Array(items.iter().map(plain).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), plain(v))).collect())
        }
        other => other.clone(),
    }
}

// See: issue 23, item 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_per_new_model_family_sends_exactly_the_body_its_model_takes() {
    let Scene { fake, studio } = Scenario::new()
        // Kling text to video: a ratio, no prompt needed (but a text file is one).
        .put("inbox/kling-t2v.txt", "a lighthouse at dusk")
        .put("inbox/kling-t2v.yaml", "model: kling3.0_pro\n")
        // A tier that follows the image's shape.
        .put("inbox/kling4.png", png_bytes(64, 48))
        .put("inbox/kling4.yaml", "model: kling_4\n")
        .put("inbox/kling4-v2v.mp4", mp4_of(3))
        .put("inbox/kling4-v2v.yaml", "model: kling_4\nprompt: as ink\n")
        // An aspect ratio and a resolution.
        .put("inbox/hailuo.txt", "waves on rocks")
        .put("inbox/hailuo.yaml", "model: hailuo3\nresolution: 2K\n")
        .put("inbox/hailuo-v2v.mp4", mp4_of(2))
        .put("inbox/hailuo-v2v.yaml", "model: hailuo3\nprompt: in snow\n")
        // duration: auto.
        .put("inbox/seed25.png", png_bytes(64, 36))
        .put("inbox/seed25.yaml", "model: seedance2_5\nduration: auto\n")
        // Two keyframes on a tier.
        .put("inbox/wan.png", png_bytes(64, 36))
        .put("inbox/wan.last.png", png_bytes(64, 36))
        .put("inbox/wan.yaml", "model: wan3\nprompt: day to night\n")
        // No ratio: a resolution.
        .put("inbox/grok.png", png_bytes(40, 40))
        .put(
            "inbox/grok.yaml",
            "model: grok_imagine_1_5\nresolution: 720p\nduration: 6\n",
        )
        .put("inbox/h3.txt", "a fox in the snow")
        .put(
            "inbox/h3.yaml",
            "model: h3_max\nresolution: 768p\nseed: 7\n",
        )
        .put("inbox/gemini.png", png_bytes(64, 36))
        .put(
            "inbox/gemini.yaml",
            "model: gemini_omni_flash_1.1\nprompt: the tide comes in\n",
        )
        .start()
        .await;
    studio.run().await.outcome(10, 0);
    let sent: BTreeMap<String, Value> = [
        "/v1/image_to_video",
        "/v1/text_to_video",
        "/v1/video_to_video",
    ]
    .iter()
    .flat_map(|p| fake.created_on(p))
    .collect::<Vec<_>>()
    .iter()
    .map(|b| {
        (
            b["promptText"].as_str().unwrap_or("").to_string() + "|" + b["model"].as_str().unwrap(),
            plain(b),
        )
    })
    .collect();
    let body = |key: &str| {
        sent.get(key)
            .unwrap_or_else(|| panic!("nothing sent for {key}: {:#?}", sent.keys()))
            .clone()
    };
    assert_eq!(
        body("a lighthouse at dusk|kling3.0_pro"),
        json!({"model": "kling3.0_pro", "promptText": "a lighthouse at dusk", "ratio": "1920:1080", "duration": 5})
    );
    assert_eq!(
        body("|kling_4"),
        json!({"model": "kling_4", "promptImage": "<data>", "ratio": "auto_720p", "duration": 5})
    );
    assert_eq!(
        body("as ink|kling_4"),
        json!({"model": "kling_4", "videoUri": "<upload>", "promptText": "as ink"})
    );
    assert_eq!(
        body("waves on rocks|hailuo3"),
        json!({"model": "hailuo3", "promptText": "waves on rocks", "ratio": "16:9", "resolution": "2k", "duration": 5})
    );
    assert_eq!(
        body("in snow|hailuo3"),
        json!({"model": "hailuo3", "promptVideo": "<upload>", "promptText": "in snow"})
    );
    assert_eq!(
        body("|seedance2_5"),
        json!({"model": "seedance2_5", "promptImage": "<data>", "ratio": "1280:720", "duration": "auto"})
    );
    assert_eq!(
        body("day to night|wan3"),
        json!({
            "model": "wan3",
            "promptImage": [{"uri": "<data>", "position": "first"}, {"uri": "<data>", "position": "last"}],
            "promptText": "day to night",
            "ratio": "auto_720p",
            "duration": 5
        })
    );
    assert_eq!(
        body("|grok_imagine_1_5"),
        json!({"model": "grok_imagine_1_5", "promptImage": "<data>", "resolution": "720p", "duration": 6})
    );
    assert_eq!(
        body("a fox in the snow|h3_max"),
        json!({"model": "h3_max", "promptText": "a fox in the snow", "resolution": "768p", "duration": 5, "seed": 7})
    );
    assert_eq!(
        body("the tide comes in|gemini_omni_flash_1.1"),
        json!({"model": "gemini_omni_flash_1.1", "promptImage": "<data>", "promptText": "the tide comes in", "ratio": "1280:720", "duration": 5})
    );
}

// See: issue 23, items 1 and 2 ("Bad input").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_or_unknown_model_fails_before_any_request_naming_what_to_use() {
    let ran = Scenario::new()
        .put("inbox/old.png", png_bytes(32, 18))
        .put("inbox/old.yaml", "model: veo3\n")
        .put("inbox/typo.txt", "a prompt")
        .put("inbox/typo.yaml", "model: kling3_pro\n")
        .run()
        .await;
    ran.outcome(0, 2).sent("POST", "/v1/", 0);
    ran.error_says(
        "old",
        &[
            "veo3 is no longer offered by Runway",
            "SDK 5.14.0",
            "use veo3.1",
        ],
    );
    ran.error_says(
        "typo",
        &[
            "\"kling3_pro\" is unknown",
            "Did you mean kling3.0_pro",
            "`models:`",
        ],
    );
}

// See: issue 23, item 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_studio_declares_is_sent_and_delivered() {
    let ran = Scenario::new()
        .yaml(
            "models:\n  kling9_ultra:\n    credits_per_second: 30\n    endpoints:\n      image_to_video:\n        ratios: [\"1920:1080\", \"1080:1920\"]\n        duration: {values: [5, 10]}\n        prompt_text: {required: true}\n",
        )
        .put("inbox/new.png", png_bytes(36, 64))
        .put("inbox/new.yaml", "model: kling9_ultra\nprompt: a slow turn\nduration: 10\n")
        .run()
        .await;
    ran.outcome(1, 0)
        .done(&["new.mp4", "new.png", "new.result.json", "new.yaml"]);
    let created = ran.fake.created();
    assert_eq!(
        plain(&created[0]),
        json!({"model": "kling9_ultra", "promptImage": "<data>", "promptText": "a slow turn", "ratio": "1080:1920", "duration": 10})
    );
}

// See: issue 23, "Bad input".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_models_entry_stops_the_run_at_start_naming_it() {
    let studio = Studio::new(
        "models:\n  kling9:\n    credits_per_second: 5\n    endpoints:\n      image_to_video:\n        ratioz: [\"1:1\"]\n",
    );
    studio.put("inbox/a.png", &png_bytes(16, 16));
    let (code, logs) = run_binary(studio.root(), &[]).await;
    assert_eq!(code, Some(2), "{logs}");
    assert!(
        logs.contains("models.kling9") && logs.contains("ratioz"),
        "{logs}"
    );
    studio.assert_listing("inbox", &["a.png"]);
}

/// The (model, endpoint) pairs Runway's catalog lists as current, read from the shipped file with
/// a plain YAML reader.
fn runway_pairs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/runway/runway-models.yaml"),
    )
    .unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut pairs = Vec::new();
    for (id, m) in doc["models"].as_mapping().unwrap() {
        if m["legacy"].as_bool() == Some(true) {
            continue;
        }
        for (e, _) in m["endpoints"].as_mapping().unwrap() {
            pairs.push((
                id.as_str().unwrap().to_string(),
                e.as_str().unwrap().to_string(),
            ));
        }
    }
    pairs.sort();
    pairs
}

fn models_cmd(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(dropreel_bin())
        .arg("models")
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// See: issue 23, "Done when".
#[test]
fn models_json_lists_exactly_the_current_pairs_of_runways_catalog() {
    let list: Value = serde_json::from_str(&models_cmd(&["--json"])).unwrap();
    let mut pairs: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["legacy"] == false)
        .flat_map(|m| {
            m["endpoints"].as_array().unwrap().iter().map(move |e| {
                (
                    m["model"].as_str().unwrap().to_string(),
                    e["endpoint"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    pairs.sort();
    assert_eq!(pairs, runway_pairs());
    let veo3 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "veo3")
        .unwrap();
    assert_eq!(
        (&veo3["legacy"], &veo3["replaced_by"]),
        (&json!(true), &json!("veo3.1"))
    );
    let table = models_cmd(&[]);
    assert!(
        table.contains("kling3.0_pro") && table.contains("veo3 (use veo3.1)"),
        "{table}"
    );
}

// See: issue 23, "Done when" (the guide's table comes from the data the binary uses).
#[test]
fn the_guides_model_table_is_the_one_the_binary_prints() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide.md"),
    )
    .unwrap();
    let start = "<!-- models:begin (dropreel models --markdown) -->\n";
    let end = "<!-- models:end -->";
    let from = readme
        .find(start)
        .expect("docs/guide.md has the models table markers")
        + start.len();
    let to = readme[from..].find(end).unwrap() + from;
    assert_eq!(
        &readme[from..to],
        models_cmd(&["--markdown"]),
        "regenerate the table in docs/guide.md with `dropreel models --markdown`"
    );
}

// See: issue 23, item 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prores_is_asked_for_and_delivered_as_a_mov_and_reused_as_one() {
    let Scene { fake, studio } = Scenario::new()
        .put("inbox/still.png", png_bytes(64, 36))
        .put(
            "inbox/still.yaml",
            "model: gen4.5\nprompt: a slow pan\noutput_format: prores\n",
        )
        .put("inbox/clip.mp4", mp4_of(2))
        .put("inbox/clip.yaml", "output_format: ProRes\n")
        .start()
        .await;
    studio.run().await.outcome(2, 0);
    let image = fake.created_on("/v1/image_to_video");
    assert_eq!(image[0]["outputFormat"], "prores", "{:#?}", image[0]);
    let video = fake.created_on("/v1/video_to_video");
    assert_eq!(
        plain(&video[0]),
        json!({"model": "aleph2", "videoUri": "<upload>", "outputFormat": "prores"})
    );
    for name in [
        "still.mov",
        "clip.result.mov",
        "still.result.json",
        "clip.result.json",
    ] {
        assert!(
            studio.path(&format!("done/{name}")).is_file(),
            "done/{name}: {:?}",
            studio.list("done")
        );
    }
    assert!(!studio.path("done/still.mp4").exists());
    let r = studio.json("done/still.result.json");
    assert_eq!(
        (&r["output_format"], &r["video_ext"]),
        (&json!("prores"), &json!("mov"))
    );
    // The same still again: its .mov is reused, not paid again.
    studio.put("inbox/still.png", &png_bytes(64, 36));
    studio.put(
        "inbox/still.yaml",
        b"model: gen4.5\nprompt: a slow pan\noutput_format: prores\n",
    );
    studio.run().await.outcome(1, 0);
    assert_eq!(
        fake.created_on("/v1/image_to_video").len(),
        1,
        "reused, not sent again"
    );
    assert!(
        studio.path("done/still-2.mov").is_file(),
        "{:?}",
        studio.list("done")
    );
}
