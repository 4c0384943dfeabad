//! End-to-end tests of the pipeline against the fake Runway API: real folders, real HTTP on
//! 127.0.0.1, the real pipeline code.

use std::time::Duration;

use crate::support::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_with_and_without_sidecars() {
    logs();
    let Scene { fake, studio } = Scenario::new()
        .yaml("defaults:\n  prompt: default prompt\n")
        .start()
        .await;
    let landscape = png_bytes(64, 36);
    studio.put("inbox/plain.png", &landscape);
    studio.put("inbox/cat.png", &png_bytes(40, 40));
    studio.put("inbox/cat.yaml", b"a cat yawns, slow push-in\n");
    studio.put("inbox/full.jpg", &jpeg_bytes(300, 200));
    studio.put(
        "inbox/full.yml",
        b"prompt: full control\nmodel: gen4.5\nduration: 7\nratio: \"1584:672\"\nseed: 42\nextra:\n  contentModeration:\n    publicFigureThreshold: low\n",
    );

    studio.run().await.outcome(3, 0);

    let bodies = fake.created();
    assert_eq!(bodies.len(), 3, "one create per image");
    let plain = body_for(&bodies, "default prompt");
    assert_eq!(plain["model"], "gen4_turbo");
    assert_eq!(plain["ratio"], "1280:720");
    assert_eq!(plain["duration"], 5);
    assert!(plain.get("seed").is_none());
    let uri = plain["promptImage"].as_str().unwrap();
    assert!(uri.starts_with("data:image/png;base64,"));
    assert_eq!(decode_data_uri(uri), landscape, "the image is sent intact");

    let cat = body_for(&bodies, "a cat yawns, slow push-in");
    assert_eq!(cat["ratio"], "960:960");

    let full = body_for(&bodies, "full control");
    assert_eq!(full["model"], "gen4.5");
    assert_eq!(full["duration"], 7);
    assert_eq!(full["ratio"], "1584:672");
    assert_eq!(full["seed"], 42);
    assert_eq!(full["contentModeration"]["publicFigureThreshold"], "low");
    assert!(
        full["promptImage"]
            .as_str()
            .unwrap()
            .starts_with("data:image/jpeg;base64,")
    );

    // Every request carried the key and the version header (the fake refuses otherwise).
    assert!(
        fake.seen()
            .iter()
            .filter(|s| s.path.starts_with("/v1/"))
            .all(|s| s.status != 401)
    );
    assert_eq!(
        studio.list("done"),
        vec![
            "cat.mp4",
            "cat.png",
            "cat.result.json",
            "cat.yaml",
            "full.jpg",
            "full.mp4",
            "full.result.json",
            "full.yml",
            "plain.mp4",
            "plain.png",
            "plain.result.json"
        ]
    );
    assert!(studio.list("inbox").is_empty());
    assert!(studio.list("processing").is_empty());
    assert!(studio.list("failed").is_empty());
    assert_eq!(
        std::fs::read(studio.path("done/cat.mp4")).unwrap(),
        mp4_bytes()
    );

    let r = studio.json("done/full.result.json");
    assert_eq!(r["backend"], "runway");
    assert_eq!(r["model"], "gen4.5");
    assert_eq!(r["prompt"], "full control");
    assert_eq!(r["ratio"], "1584:672");
    assert_eq!(r["duration"], 7);
    assert_eq!(r["seed"], 42);
    assert_eq!(r["credits"], 84, "gen4.5 costs 12 credits per second");
    assert_eq!(r["output_bytes"], mp4_bytes().len());
    assert!(r["task_id"].as_str().unwrap().starts_with("task-"));
    assert!(r["submitted_at"].is_string() && r["finished_at"].is_string());
    assert!(r.get("possible_double_charge").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratio_auto_keeps_a_portrait_portrait() {
    let Scene { fake, studio } = Scenario::new().start().await;
    studio.put("inbox/portrait.png", &png_bytes(36, 64));
    studio.put("inbox/portrait.yaml", b"model: veo3.1\n");
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    let b = &fake.created()[0];
    assert_eq!(b["ratio"], "720:1280");
    assert_eq!(
        b["duration"], 4,
        "veo3.1 does not offer 5 s; the nearest offered default is used"
    );
    assert!(b.get("promptText").is_none(), "an empty prompt is left out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_with_specific_messages_and_send_nothing() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let ok = png_bytes(20, 20);
    let cases: &[(&str, &[u8], Option<&str>, &str)] = &[
        (
            "text.png",
            b"hello, I am not an image",
            None,
            "not an image dropreel knows",
        ),
        ("empty.png", b"", None, "the file is empty"),
        (
            "photo.avif",
            b"\0\0\0\x18ftypavif\0\0\0\0mif1avif\0\0\0\x0cmdat1234",
            None,
            "cannot decode AVIF",
        ),
        (
            "badyaml.png",
            &ok,
            Some("prompt: [unclosed\n"),
            "not valid YAML",
        ),
        (
            "typo.png",
            &ok,
            Some("promt: hello\n"),
            "unknown key `promt` (line 1); did you mean `prompt`?",
        ),
        (
            "ratio.png",
            &ok,
            Some("ratio: \"1280:768\"\n"),
            "1280:768 is not offered by gen4_turbo; use auto or one of 1280:720",
        ),
        (
            "model.png",
            &ok,
            Some("model: gen9\n"),
            "model \"gen9\" is unknown",
        ),
        (
            "aleph.png",
            &ok,
            Some("model: aleph2\n"),
            "does not animate images",
        ),
        (
            "dur.png",
            &ok,
            Some("duration: 11\n"),
            "duration 11 s is not offered by gen4_turbo",
        ),
        (
            "long.png",
            &ok,
            Some(&*format!("prompt: {}\n", "x".repeat(1001))),
            "1001 characters",
        ),
        ("seed.png", &ok, Some("seed: -1\n"), "seed"),
        (
            "extra.png",
            &ok,
            Some("extra:\n  promptImage: https://example.com/x.png\n"),
            "may not set `promptImage`",
        ),
    ];
    for (name, bytes, sidecar, _) in cases {
        studio.put(&format!("inbox/{name}"), bytes);
        if let Some(sc) = sidecar {
            studio.put(
                &format!("inbox/{}.yaml", name.rsplit_once('.').unwrap().0),
                sc.as_bytes(),
            );
        }
    }
    studio.put("inbox/good.png", &ok);
    // Over the API's 200 MB upload limit (sparse: no disk is used for it).
    let huge = std::fs::File::create(studio.path("inbox/huge.png")).unwrap();
    huge.set_len(201 * 1024 * 1024).unwrap();
    drop(huge);
    let summary = studio.run().await;
    assert!(
        studio
            .read("failed/huge.error.txt")
            .contains("is 201 MB; Runway takes images of at most 200 MB")
    );
    assert_eq!((summary.succeeded, summary.failed), (1, cases.len() + 1));
    assert_eq!(fake.created().len(), 1, "only the good image was sent");
    assert_eq!(fake.count("POST", "/v1/image_to_video"), 1);
    for (name, _, sidecar, expect) in cases {
        let stem = name.rsplit_once('.').unwrap().0;
        let text = studio.read(&format!("failed/{stem}.error.txt"));
        assert!(text.contains(expect), "{name}: {text}");
        assert!(text.contains("What to do:"), "{name}: {text}");
        assert!(
            studio.path(&format!("failed/{name}")).exists(),
            "{name} moved to failed/"
        );
        if sidecar.is_some() {
            assert!(
                studio.path(&format!("failed/{stem}.yaml")).exists(),
                "{name}'s sidecar moved too"
            );
        }
    }
    assert!(
        studio.read("failed/badyaml.error.txt").contains("line 1"),
        "YAML errors name the line"
    );
    assert!(studio.list("inbox").is_empty());
    assert!(studio.list("processing").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_names_and_lone_sidecars_stay_untouched() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let img = png_bytes(16, 16);
    let ignored = [
        ".DS_Store",
        "._a.png",
        ".syncthing.b.png.tmp",
        ".c.png.Ab12Cd",
        "Thumbs.db",
        "desktop.ini",
        "~$d.png",
        "e.png.tmp",
        "f.PNG.PART",
        "g.png.partial",
        "h.png.crdownload",
        "i.png.download",
        "j.png.!sync",
        "notes.pdf",
        "lonely.yaml",
    ];
    for n in ignored {
        studio.put(&format!("inbox/{n}"), &img);
    }
    std::fs::create_dir(studio.path("inbox/folder.png")).unwrap();
    studio.put("inbox/real.png", &img);
    studio.run().await.outcome(1, 0);
    let mut expect: Vec<String> = ignored.iter().map(|s| s.to_string()).collect();
    expect.push("folder.png".into());
    expect.sort();
    assert_eq!(
        studio.list("inbox"),
        expect,
        "nothing of other programs is touched"
    );
    for n in ignored {
        assert_eq!(
            std::fs::read(studio.path(&format!("inbox/{n}"))).unwrap(),
            img,
            "{n} unchanged"
        );
    }
    assert_eq!(fake.created().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magic_bytes_win_over_the_name() {
    let Scene { fake, studio } = Scenario::new().start().await;
    studio.put("inbox/really-jpeg.png", &jpeg_bytes(100, 100));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert!(
        fake.created()[0]["promptImage"]
            .as_str()
            .unwrap()
            .starts_with("data:image/jpeg;base64,")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collisions_in_done_get_one_suffix_for_every_file() {
    let Scene {
        fake: _fake,
        studio,
    } = Scenario::new().start().await;
    studio.put("done/cat.txt", b"someone else's");
    studio.put("done/cat-2.mp4", b"older");
    studio.put("inbox/cat.png", &png_bytes(16, 16));
    studio.put("inbox/cat.yaml", b"prompt: hi\n");
    studio.run().await;
    for n in ["cat-3.png", "cat-3.yaml", "cat-3.mp4", "cat-3.result.json"] {
        assert!(
            studio.path(&format!("done/{n}")).exists(),
            "{n} in {:?}",
            studio.list("done")
        );
    }
    assert_eq!(
        studio.read("done/cat-2.mp4"),
        "older",
        "nothing is overwritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_images_go_through_uploads() {
    let Scene { fake, studio } = Scenario::new().start().await;
    // Incompressible pixels: ~4.3 MB, over the ~3.75 MB that fits a 5 MiB data URI.
    let big = png_bytes(1200, 1200);
    assert!(big.len() > 4_000_000, "{}", big.len());
    studio.put("inbox/big.png", &big);
    studio.put("inbox/small.png", &png_bytes(10, 10));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 2);
    let uploads = fake.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        *uploads.values().next().unwrap(),
        big.len(),
        "the whole file was uploaded"
    );
    let uris: Vec<String> = fake
        .created()
        .iter()
        .map(|b| b["promptImage"].as_str().unwrap().to_string())
        .collect();
    assert!(uris.iter().any(|u| u.starts_with("runway://")));
    assert!(uris.iter().any(|u| u.starts_with("data:image/png")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_and_claims_are_lazy() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.concurrency = 5)
        .fake(|s| s.task_time = Duration::from_millis(150))
        .start()
        .await;
    for i in 0..7 {
        studio.put(&format!("inbox/img{i}.png"), &png_distinct(8, 8));
    }
    let root = studio.root().to_path_buf();
    let server = fake.clone();
    let watcher = tokio::spawn(async move {
        let mut max_processing = 0;
        let mut inbox_waited = false;
        for _ in 0..400 {
            // Jobs that still need or hold a slot (downloads and deliveries do not; a job whose
            // task finished may still say `submitted` on disk until it is delivered).
            let mut p = 0;
            for e in std::fs::read_dir(root.join("processing")).unwrap() {
                let Ok(text) = std::fs::read_to_string(e.unwrap().path().join("job.json")) else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let waiting = match v["state"].as_str().unwrap_or("") {
                    "claimed" | "submitting" => true,
                    "submitted" => !server.task_done(v["task_id"].as_str().unwrap_or("")),
                    _ => false,
                };
                if waiting {
                    p += 1;
                }
            }
            let i = std::fs::read_dir(root.join("inbox"))
                .map(|d| d.count())
                .unwrap_or(0);
            max_processing = max_processing.max(p);
            if p > 0 && i > 0 {
                inbox_waited = true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (max_processing, inbox_waited)
    });
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 7);
    let (max_processing, inbox_waited) = watcher.await.unwrap();
    assert!(
        fake.max_running() <= 2,
        "max_in_flight 2, saw {}",
        fake.max_running()
    );
    assert_eq!(fake.max_running(), 2, "both slots were used");
    assert!(
        max_processing <= 3,
        "claims are lazy: at most max_in_flight + 1 jobs, saw {max_processing}"
    );
    assert!(
        inbox_waited,
        "waiting files stayed in inbox/ while others were processed"
    );
}

// See: issue 10 — a job.json saying `submitted` without a task id made the job's task panic, and
// `run` then waited for it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_job_without_a_task_id_fails_clearly_and_run_ends() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let id = "20260101T000000Z-0000000a";
    std::fs::create_dir_all(studio.path(&format!("processing/{id}"))).unwrap();
    studio.put(&format!("processing/{id}/edited.png"), &png_bytes(12, 12));
    let rec = serde_json::json!({
        "id": id,
        "image": "edited.png",
        "info": {"format": "png", "width": 12, "height": 12},
        "spec": {"model": "gen4_turbo", "prompt": "", "ratio": "960:960", "duration": 5, "seed": null},
        "backend": "runway",
        "state": "submitted",
        "claimed_at": "2026-01-01T00:00:00Z",
    });
    studio.put(
        &format!("processing/{id}/job.json"),
        serde_json::to_string(&rec).unwrap().as_bytes(),
    );
    studio.put("inbox/fine.png", &png_bytes(8, 8));
    studio.run().await.outcome(1, 1);
    studio.error_says("edited", &["names no task", "Runway's dashboard"]);
    assert_eq!(fake.created().len(), 1, "only fine.png was sent");
}
