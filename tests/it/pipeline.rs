//! End-to-end tests of the pipeline against the fake Runway API: real folders, real HTTP on
//! 127.0.0.1, the real pipeline code.

use std::time::{Duration, Instant};

use crate::support::*;
use base64::Engine as _;
use serde_json::Value;

fn decode_data_uri(uri: &str) -> Vec<u8> {
    let (_, data) = uri.split_once(";base64,").expect("a data URI");
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap()
}

fn body_for<'a>(bodies: &'a [Value], prompt: &str) -> &'a Value {
    bodies
        .iter()
        .find(|b| b["promptText"] == prompt)
        .unwrap_or_else(|| panic!("no request with prompt {prompt:?} in {bodies:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_with_and_without_sidecars() {
    logs();
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(
        &fake.url,
        "defaults:\n  prompt: default prompt\n",
    ));
    let landscape = png_bytes(64, 36);
    studio.put("inbox/plain.png", &landscape);
    studio.put("inbox/cat.png", &png_bytes(40, 40));
    studio.put("inbox/cat.yaml", b"a cat yawns, slow push-in\n");
    studio.put("inbox/full.jpg", &jpeg_bytes(300, 200));
    studio.put(
        "inbox/full.yml",
        b"prompt: full control\nmodel: gen4.5\nduration: 7\nratio: \"1584:672\"\nseed: 42\nextra:\n  contentModeration:\n    publicFigureThreshold: low\n",
    );

    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (3, 0));

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
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
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
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
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
            "unknown field `promt`",
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
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
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
        "notes.txt",
        "lonely.yaml",
    ];
    for n in ignored {
        studio.put(&format!("inbox/{n}"), &img);
    }
    std::fs::create_dir(studio.path("inbox/folder.png")).unwrap();
    studio.put("inbox/real.png", &img);
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
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
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
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
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
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
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
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
    let fake = FakeRunway::start(Switches {
        concurrency: 5,
        task_time: Duration::from_millis(150),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    for i in 0..7 {
        studio.put(&format!("inbox/img{i}.png"), &png_bytes(8, 8));
    }
    let root = studio.root().to_path_buf();
    let watcher = tokio::spawn(async move {
        let mut max_processing = 0;
        let mut inbox_waited = false;
        for _ in 0..400 {
            // Jobs that still need or hold a slot (downloads and deliveries do not).
            let mut p = 0;
            for e in std::fs::read_dir(root.join("processing")).unwrap() {
                let Ok(text) = std::fs::read_to_string(e.unwrap().path().join("job.json")) else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if ["claimed", "submitting", "submitted"]
                    .contains(&v["state"].as_str().unwrap_or(""))
                {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_retry_after_is_honoured() {
    let fake = FakeRunway::start(Switches {
        rate_limited: 1,
        retry_after: Some("1".into()),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    let creates: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path == "/v1/image_to_video")
        .collect();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0].status, 429);
    let gap = creates[1].at - creates[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?}, before Retry-After"
    );
    assert!(studio.list("failed").is_empty());
}

// See: issue 9, item 1 — the success of a create sent before a 429 lifted the pause at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_even_when_creates_sent_before_it_succeed() {
    let fake = FakeRunway::start(Switches {
        rate_limit_nth: Some(3),
        retry_after: Some("2".into()),
        concurrency: 4,
        create_latency: Duration::from_millis(50),
        ..Switches::default()
    })
    .await;
    let studio =
        Studio::new(&test_config(&fake.url, "").replace("max_in_flight: 2", "max_in_flight: 4"));
    for i in 0..8 {
        studio.put(&format!("inbox/r{i}.png"), &png_bytes(8 + i, 8));
    }
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (8, 0));
    let creates: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path == "/v1/image_to_video")
        .collect();
    let refused = creates.iter().find(|s| s.status == 429).expect("a 429");
    let t = refused.at;
    let image = refused.body.as_ref().unwrap()["promptImage"].clone();
    let again = creates
        .iter()
        .find(|s| s.at > t && s.body.as_ref().unwrap()["promptImage"] == image)
        .expect("the refused image is submitted again");
    assert!(
        again.at - t >= Duration::from_secs(2),
        "the refused image was resubmitted {:?} after its 429 (Retry-After: 2)",
        again.at - t
    );
    // Creates already on the wire when the 429 came may land just after it; nothing else may
    // arrive before the server's time.
    let early: Vec<Duration> = creates
        .iter()
        .filter(|s| s.at > t + Duration::from_millis(300) && s.at < t + Duration::from_secs(2))
        .map(|s| s.at - t)
        .collect();
    assert!(early.is_empty(), "creates sent during the pause: {early:?}");
    assert_eq!(fake.created().len(), 8, "one task per image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_server_errors_ends_in_done_with_one_task_per_image() {
    let fake = FakeRunway::start(Switches {
        server_errors: 12,
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(
        &test_config(&fake.url, "").replace("max_in_flight: 2", "max_in_flight: 2\n  retries: 2"),
    );
    for i in 0..3 {
        studio.put(&format!("inbox/s{i}.png"), &png_bytes(8, 8));
    }
    let summary = studio.run().await;
    assert_eq!(
        (summary.succeeded, summary.failed),
        (3, 0),
        "a run of 5xx is systemic: nothing fails"
    );
    assert_eq!(fake.created().len(), 3, "one successful submit per image");
    assert_eq!(fake.count("POST", "/v1/image_to_video"), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_failure_codes_are_sorted() {
    let fake = FakeRunway::start(Switches {
        concurrency: 1,
        failure_codes: [
            "SAFETY.INPUT.IMAGE",
            "INTERNAL.BAD_OUTPUT.CODE01",
            "CANCELLED",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        ..Switches::default()
    })
    .await;
    let mut cfg = test_config(&fake.url, "");
    cfg = cfg.replace("max_in_flight: 2", "max_in_flight: 1");
    let studio = Studio::new(&cfg);
    studio.put("inbox/a1.png", &png_bytes(8, 8));
    studio.put("inbox/a1.yaml", b"unsafe\n");
    studio.put("inbox/a2.png", &png_bytes(8, 8));
    studio.put("inbox/a2.yaml", b"bad output once\n");
    let summary = studio.run().await;
    // a1: SAFETY → failed. a2: BAD_OUTPUT → retried; the retry is CANCELLED → failed with that reason.
    assert_eq!(summary.failed, 2);
    let t = studio.read("failed/a1.error.txt");
    assert!(
        t.contains("moderation rejected the input") && t.contains("SAFETY.INPUT.IMAGE"),
        "{t}"
    );
    let t = studio.read("failed/a2.error.txt");
    assert!(t.contains("was cancelled on Runway's side"), "{t}");
    assert_eq!(
        fake.created().len(),
        3,
        "a1 once, a2 twice (BAD_OUTPUT is retried)"
    );

    // A clean retry of BAD_OUTPUT ends in done/.
    fake.set(|s| s.failure_codes = ["INTERNAL.BAD_OUTPUT.CODE01".to_string()].into());
    studio.put("inbox/b.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    assert_eq!(studio.json("done/b.result.json")["submissions"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_urls_and_cut_downloads_are_retried() {
    let fake = FakeRunway::start(Switches {
        expired_downloads: 1,
        cut_downloads: 1,
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(
        std::fs::read(studio.path("done/a.mp4")).unwrap(),
        mp4_bytes(),
        "only the complete file"
    );
    assert_eq!(fake.count("GET", "/files/"), 3);
    assert_eq!(fake.created().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_in_watch_pauses_then_resumes_when_fixed() {
    let fake = FakeRunway::start(Switches {
        key: "key_other".into(),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    studio.put("inbox/a.png", &png_bytes(8, 8));
    studio.put("inbox/b.png", &png_bytes(8, 8));
    let watching = Watching::start(&studio);
    // Refused, paused, probed again after the pause and refused again (the backoff's pacing is
    // tested on a paused clock in the gate's own tests).
    let t0 = Instant::now();
    while fake.count("POST", "/v1/image_to_video") < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "it did not try again"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        studio.list("failed").is_empty(),
        "a bad key never fails a job"
    );
    assert!(fake.created().is_empty());
    // The key is fixed (on the server side here): work resumes by itself.
    fake.set(|s| s.key = KEY.into());
    let t0 = Instant::now();
    while studio.list("done").len() < 6 && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = watching.stop().await;
    assert_eq!(summary.succeeded, 2);
    assert_eq!(fake.created().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_in_run_stops_at_once_and_leaves_jobs_in_place() {
    let fake = FakeRunway::start(Switches {
        key: "key_other".into(),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert!(summary.key_refused.is_some());
    assert!(studio.list("failed").is_empty());
    assert!(studio.list("done").is_empty());
    // Fixed key: the next run resumes the job and finishes it.
    fake.set(|s| s.key = KEY.into());
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(studio.list("done").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_job_is_polled_after_a_restart_not_resubmitted() {
    let fake = FakeRunway::start(Switches {
        task_time: Duration::from_millis(800),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let watching = Watching::start(&studio);
    // Wait until the job is submitted, then stop.
    let t0 = Instant::now();
    while fake.created().is_empty() && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let summary = watching.stop().await;
    assert_eq!(summary.succeeded, 0);
    let jobs = studio.list("processing");
    assert_eq!(jobs.len(), 1);
    let state = studio.json(&format!("processing/{}/job.json", jobs[0]));
    assert_eq!(state["state"], "submitted");

    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(
        fake.created().len(),
        1,
        "resumed by polling, never submitted again"
    );
    assert!(fake.count("GET", "/v1/tasks/") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_answer_is_resubmitted_and_recorded() {
    let fake = FakeRunway::start(Switches {
        drop_create_answers: 1,
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(
        fake.tasks_created(),
        2,
        "the lost answer had created a task"
    );
    let r = studio.json("done/a.result.json");
    assert_eq!(r["possible_double_charge"], 1);
    assert!(r["note"].as_str().unwrap().contains("charged"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_refuses_the_download_makes_the_job_wait_not_fail() {
    let fake = FakeRunway::start(Switches {
        download_latency: Duration::from_millis(300),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(
        &test_config(&fake.url, "").replace("max_in_flight: 2", "max_in_flight: 2\n  retries: 1"),
    );
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let watching = Watching::start(&studio);
    // Once the task succeeded, the download's file cannot be created (a folder holds its name):
    // an injected write error, as a full disk gives.
    let t0 = Instant::now();
    let job = loop {
        let jobs = studio.list("processing");
        if let Some(id) = jobs.iter().find(|id| {
            std::fs::read_to_string(studio.path(&format!("processing/{id}/job.json")))
                .is_ok_and(|t| t.contains("\"state\": \"succeeded\""))
        }) {
            break id.clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let blocker = studio.path(&format!("processing/{job}/out.mp4.part"));
    std::fs::create_dir(&blocker).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        studio.list("failed").is_empty(),
        "a disk problem never fails the job"
    );
    assert!(fake.count("GET", "/files/") >= 2, "it kept trying");
    std::fs::remove_dir(&blocker).unwrap();
    let t0 = Instant::now();
    while !studio.path("done/a.mp4").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "resumed after the disk recovered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watching.stop().await;
    assert_eq!(
        std::fs::read(studio.path("done/a.mp4")).unwrap(),
        mp4_bytes()
    );
    assert_eq!(
        studio.json("done/a.result.json")["retries"],
        0,
        "disk trouble spends no retry budget"
    );
    assert_eq!(fake.created().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_job_state_is_moved_aside_and_the_image_is_never_lost() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    // A job whose state file was torn (truncated), and one full of garbage around an unusable file.
    std::fs::create_dir_all(studio.path("processing/20260101T000000Z-00000001")).unwrap();
    studio.put(
        "processing/20260101T000000Z-00000001/torn.png",
        &png_bytes(12, 12),
    );
    studio.put(
        "processing/20260101T000000Z-00000001/job.json",
        b"{\"id\": \"20260101T000000Z-0000",
    );
    std::fs::create_dir_all(studio.path("processing/20260101T000000Z-00000002")).unwrap();
    studio.put(
        "processing/20260101T000000Z-00000002/junk.png",
        b"not an image at all",
    );
    studio.put(
        "processing/20260101T000000Z-00000002/job.json",
        &[0xff, 0x00, 0x13, 0x37],
    );
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 1));
    assert!(studio.path("done/torn.png").exists() && studio.path("done/torn.mp4").exists());
    assert!(
        studio.path("failed/junk.png").exists(),
        "kept, never deleted"
    );
    assert!(
        studio
            .read("failed/junk.error.txt")
            .contains("not an image dropreel knows")
    );
    assert!(
        studio.list("processing").iter().all(|n| n.starts_with('.')),
        "{:?}",
        studio.list("processing")
    );
    assert_eq!(fake.created().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_park_a_lost_create_answer_is_never_resubmitted() {
    let fake = FakeRunway::start(Switches {
        drop_create_answers: 1,
        ..Switches::default()
    })
    .await;
    let cfg = test_config(&fake.url, "").replace(
        "max_in_flight: 2",
        "max_in_flight: 2\n  uncertain_submit: park",
    );
    let studio = Studio::new(&cfg);
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (0, 1));
    assert_eq!(fake.tasks_created(), 1, "never paid twice");
    let t = studio.read("failed/a.error.txt");
    assert!(
        t.contains("may already be running") && t.contains("dashboard"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_refused_by_processing_is_retried_and_nothing_is_lost() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    let watching = Watching::start(&studio);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // processing/ becomes unusable (a file where the folder was): no claim can succeed.
    std::fs::remove_dir_all(studio.path("processing")).unwrap();
    std::fs::write(studio.path("processing"), b"not a folder").unwrap();
    studio.put("inbox/a.png", &png_bytes(8, 8));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        studio.list("inbox"),
        ["a.png"],
        "the file waits where it was"
    );
    assert!(fake.created().is_empty());
    // The folder is back: the claim goes through at the next try.
    std::fs::remove_file(studio.path("processing")).unwrap();
    std::fs::create_dir(studio.path("processing")).unwrap();
    let t0 = Instant::now();
    while !studio.path("done/a.mp4").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "claimed after the folder came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = watching.stop().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
}

/// An image of `w × h` in `format`, made with the `image` crate.
fn encoded(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

// See: issue 9, item 2 — HEIC, TIFF, GIF, BMP, JFIF stayed in inbox/ forever, silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_image_format_designers_drop_is_sent_or_explained() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    let formats = [
        ("scan.TIFF", image::ImageFormat::Tiff, "scan"),
        ("anim.gif", image::ImageFormat::Gif, "anim"),
        ("paint.bmp", image::ImageFormat::Bmp, "paint"),
        ("old.jfif", image::ImageFormat::Jpeg, "old"),
        ("older.jpe", image::ImageFormat::Jpeg, "older"),
    ];
    for (name, format, prompt) in formats {
        studio.put(&format!("inbox/{name}"), &encoded(96, 54, format));
        let stem = name.split('.').next().unwrap();
        studio.put(&format!("inbox/{stem}.yaml"), prompt.as_bytes());
    }
    // An iPhone photo's container (the HEVC payload does not matter: no decoder looks at it).
    let mut heic = Vec::new();
    heic.extend_from_slice(&24u32.to_be_bytes());
    heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    heic.extend_from_slice(&16u32.to_be_bytes());
    heic.extend_from_slice(b"mdat01234567");
    studio.put("inbox/IMG_0001.HEIC", &heic);

    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (5, 1));
    let bodies = fake.created();
    for (name, format, prompt) in formats {
        let uri = body_for(&bodies, prompt)["promptImage"].as_str().unwrap();
        let want = if format == image::ImageFormat::Jpeg {
            "data:image/jpeg;base64,"
        } else {
            "data:image/png;base64,"
        };
        assert!(uri.starts_with(want), "{name}: {}", &uri[..30]);
        let img = image::load_from_memory(&decode_data_uri(uri)).unwrap();
        assert_eq!((img.width(), img.height()), (96, 54), "{name}");
        assert!(
            studio.path(&format!("done/{name}")).exists(),
            "{name} keeps its name in done/"
        );
    }
    let t = studio.read("failed/IMG_0001.error.txt");
    assert!(
        t.contains("HEIC") && t.contains("JPEG") && t.contains("Most Compatible"),
        "{t}"
    );
    assert!(
        studio.list("inbox").is_empty(),
        "nothing stays behind: {:?}",
        studio.list("inbox")
    );
    assert!(studio.list("processing").is_empty());
}

// See: issue 9, item 4 — a decomposed (macOS) name did not pair with a composed sidecar, and
// `cat.jpg` silently lost the sidecar that `cat.png` took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stems_pair_after_normalization_and_a_sidecar_applies_to_every_image_of_its_stem() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(
        &fake.url,
        "defaults:\n  prompt: the default\n",
    ));
    studio.put("inbox/Cafe\u{301}.png", &png_bytes(16, 9)); // NFD, as macOS writes it
    studio.put("inbox/Caf\u{e9}.yaml", b"prompt: the cafe at dusk\n"); // NFC, typed elsewhere
    studio.put("inbox/cat.png", &png_bytes(8, 8));
    studio.put("inbox/cat.jpg", &encoded(32, 32, image::ImageFormat::Jpeg));
    studio.put("inbox/cat.yaml", b"prompt: a cat yawns\n");
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (3, 0));
    let prompts = fake.prompts();
    assert_eq!(
        prompts.iter().filter(|p| **p == "a cat yawns").count(),
        2,
        "{prompts:?}"
    );
    assert!(
        prompts.iter().any(|p| p == "the cafe at dusk"),
        "{prompts:?}"
    );
    assert!(!prompts.iter().any(|p| p == "the default"), "{prompts:?}");
    assert!(
        studio.list("inbox").is_empty(),
        "{:?}",
        studio.list("inbox")
    );
    let done = studio.list("done");
    for want in ["cat.yaml", "cat-2.yaml", "Cafe\u{301}.yaml"] {
        assert!(done.contains(&want.to_string()), "{want} in {done:?}");
    }
}

// See: issue 9, item 3 — a copy that stalled for longer than settle + sidecar_wait was sent half
// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_stalls_is_sent_only_once_whole_and_one_that_never_finishes_fails_as_truncated()
{
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, "  truncated_after: 3s\n"));
    let whole = png_bytes(120, 80);
    let (head, rest) = whole.split_at(whole.len() / 2);
    studio.put("inbox/stalled.png", head);
    // A copy that broke off for good: it waits, then fails as truncated.
    let broken = png_bytes(64, 64);
    studio.put("inbox/broken.png", &broken[..broken.len() / 3]);
    let run = tokio::spawn({
        let settings = studio.settings(KEY);
        async move {
            let backend = dropreel::backend::Chosen::build(&settings).unwrap();
            dropreel::pipeline::run(
                &settings,
                backend,
                dropreel::pipeline::Mode::Run,
                std::future::pending(),
            )
            .await
            .unwrap()
        }
    });
    // Far longer than settle (60 ms) + sidecar_wait (40 ms): the stall a sync client makes.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        fake.count("POST", "/v1/image_to_video"),
        0,
        "half a file was sent"
    );
    assert!(
        studio.path("inbox/stalled.png").exists(),
        "still waiting in inbox/"
    );
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(studio.path("inbox/stalled.png"))
        .unwrap();
    f.write_all(rest).unwrap();
    drop(f);
    let summary = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("run finished")
        .unwrap();
    assert_eq!((summary.succeeded, summary.failed), (1, 1));
    assert_eq!(fake.created().len(), 1);
    assert_eq!(
        decode_data_uri(fake.created()[0]["promptImage"].as_str().unwrap()),
        whole
    );
    let t = studio.read("failed/broken.error.txt");
    assert!(
        t.contains("is truncated") && t.contains("copy the image into inbox/ again"),
        "{t}"
    );
    let r = studio.json("done/stalled.result.json");
    assert_eq!(r["source_sha256"].as_str().unwrap().len(), 64);
    assert!(r.get("source_changed").is_none());
}

// See: issue 9, item 3 — the writer kept writing into the claimed file; done/ showed other bytes
// than the ones that were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_changes_after_it_was_taken_is_reported_at_delivery() {
    let fake = FakeRunway::start(Switches {
        task_time: Duration::from_millis(800),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    studio.put("inbox/growing.png", &png_bytes(32, 32));
    let w = Watching::start(&studio);
    // Wait until it is submitted, then append to the claimed file (a writer holding it open).
    let t0 = Instant::now();
    let claimed = loop {
        let found = all_files(studio.root())
            .into_iter()
            .find(|f| f.starts_with("processing/") && f.ends_with("/growing.png"));
        if let Some(f) = found
            && fake.tasks_created() == 1
        {
            break f;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not submitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(studio.path(&claimed))
        .unwrap()
        .write_all(b"more bytes from a slow writer")
        .unwrap();
    while !studio.path("done/growing.result.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.stop().await;
    let r = studio.json("done/growing.result.json");
    assert_eq!(r["source_changed"], true, "{r:#}");
    assert!(r["warning"].as_str().unwrap().contains("different bytes"));
}

// See: issue 10 — a job.json saying `submitted` without a task id made the job's task panic, and
// `run` then waited for it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_job_without_a_task_id_fails_clearly_and_run_ends() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
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
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 1));
    let t = studio.read("failed/edited.error.txt");
    assert!(
        t.contains("names no task") && t.contains("Runway's dashboard"),
        "{t}"
    );
    assert_eq!(fake.created().len(), 1, "only fine.png was sent");
}
