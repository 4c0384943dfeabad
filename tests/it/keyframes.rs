//! First and last keyframes, end to end: `<stem>.last.<ext>` beside an image is paired like a
//! sidecar, sent as the `promptImage` array with positions, and delivered or failed with its job;
//! a model without a last frame fails before any request; a lone `.last` file stays in `inbox/`.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_of_stills_is_sent_as_first_and_last_keyframes() {
    let r = Scenario::new()
        .put("inbox/dusk.png", png_bytes(64, 36))
        .put("inbox/dusk.last.png", png_bytes(64, 37))
        .put(
            "inbox/dusk.yaml",
            "model: veo3.1\nprompt: the sun sets over the bay\nduration: 4\n",
        )
        .run()
        .await;
    r.outcome(1, 0).done(&[
        "dusk.last.png",
        "dusk.mp4",
        "dusk.png",
        "dusk.result.json",
        "dusk.yaml",
    ]);
    let (fake, studio) = (&r.fake, &r.studio);
    let sent = fake.created();
    assert_eq!(sent.len(), 1);
    let frames = sent[0]["promptImage"].as_array().expect("the array form");
    assert_eq!(frames.len(), 2);
    assert_eq!(
        (
            frames[0]["position"].as_str(),
            frames[1]["position"].as_str()
        ),
        (Some("first"), Some("last"))
    );
    let first = decode_data_uri(frames[0]["uri"].as_str().unwrap());
    let last = decode_data_uri(frames[1]["uri"].as_str().unwrap());
    assert_eq!(first, png_bytes(64, 36), "the image is the first frame");
    assert_eq!(last, png_bytes(64, 37), "the .last file is the last frame");
    let r = studio.json("done/dusk.result.json");
    assert_eq!(r["inputs"][1]["name"], "dusk.last.png");
    assert_eq!(r["inputs"][1]["role"], "last_frame");
    assert_eq!(r["inputs"][1]["sha256"].as_str().map(str::len), Some(64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_a_last_frame_fails_before_any_request_and_a_lone_last_stays() {
    let r = Scenario::new()
        // The default model, gen4_turbo, takes no last frame.
        .put("inbox/pier.jpg", jpeg_bytes(64, 36))
        .put("inbox/pier.last.png", png_bytes(64, 36))
        // A last frame whose image never comes.
        .put("inbox/alone.last.png", png_bytes(16, 16))
        .run()
        .await;
    r.outcome(0, 1)
        .sent("POST", "/v1/image_to_video", 0)
        .failed(&["pier.error.txt", "pier.jpg", "pier.last.png"])
        .inbox(&["alone.last.png"])
        .error_says("pier", &["gen4_turbo takes no last keyframe", "veo3.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_frame_that_arrives_within_the_sidecar_wait_is_paired() {
    let Scene { fake, studio } = Scenario::new()
        .watch("settle", "80ms")
        .watch("sidecar_wait", "600ms")
        .yaml("defaults:\n  model: veo3.1\n")
        .start()
        .await;
    let watching = Watching::start(&studio);
    studio.put("inbox/late.png", &png_bytes(32, 18));
    tokio::time::sleep(Duration::from_millis(200)).await;
    studio.put("inbox/late.last.png", &png_bytes(32, 19));
    studio
        .appears("done/late.mp4", Duration::from_secs(10))
        .await;
    watching.stop().await;
    let sent = fake.created();
    assert_eq!(sent.len(), 1);
    assert!(sent[0]["promptImage"].is_array(), "{:?}", sent[0]);
    assert!(studio.path("done/late.last.png").exists());
}

// See: issue 21, item 2 — a PNG with a broken zlib stream was sent to veo3.1 as the last keyframe
// (the README says keyframes are checked decodable), and its error.txt named the other file and
// left the .last.png out of the advice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyframe_that_cannot_be_decoded_fails_before_any_request_naming_that_file() {
    let Scene { fake, studio } = Scenario::new()
        .yaml("defaults:\n  model: veo3.1\n")
        .start()
        .await;
    studio.put("inbox/kf.png", &png_bytes(64, 36));
    studio.put("inbox/kf.last.png", &png_with_broken_data(64, 36));
    studio.put("inbox/kf.yaml", b"prompt: the tide comes in\n");
    // The first keyframe broken, the last fine.
    studio.put("inbox/sea.png", &png_with_broken_data(64, 36));
    studio.put("inbox/sea.last.png", &png_bytes(64, 36));
    studio.run().await.outcome(0, 2);
    assert_eq!(fake.count("POST", "/v1/image_to_video"), 0, "nothing sent");
    assert_eq!(fake.count("POST", "/v1/uploads"), 0, "nothing uploaded");
    let t = studio.error_says("kf", &["What went wrong: kf.last.png cannot be decoded"]);
    assert!(
        t.contains("What to do: kf.last.png is damaged") && t.contains("export it again"),
        "says what to do with it: {t}"
    );
    assert!(
        t.contains("could not turn kf.png and kf.last.png into a video")
            && t.contains("it moves kf.png, kf.yaml, kf.last.png back into inbox/"),
        "error.txt names the last keyframe: {t}"
    );
    let t = studio.read("failed/sea.error.txt");
    assert!(
        t.contains("sea.png cannot be decoded") && !t.contains("sea.last.png cannot"),
        "{t}"
    );
    studio.assert_listing(
        "failed",
        &[
            "kf.error.txt",
            "kf.last.png",
            "kf.png",
            "kf.yaml",
            "sea.error.txt",
            "sea.last.png",
            "sea.png",
        ],
    );
}
