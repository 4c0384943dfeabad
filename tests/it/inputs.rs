//! What designers drop, end to end: every image format, names that pair only after Unicode
//! normalisation, copies that stall or break off, and sources that change after they were taken.

use std::time::Duration;

use crate::support::*;

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
    let Scene { fake, studio } = Scenario::new().start().await;
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

    studio.run().await.outcome(5, 1);
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
    studio.error_says("IMG_0001", &["HEIC", "JPEG", "Most Compatible"]);
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
    let Scene { fake, studio } = Scenario::new()
        .yaml("defaults:\n  prompt: the default\n")
        .start()
        .await;
    studio.put("inbox/Cafe\u{301}.png", &png_bytes(16, 9)); // NFD, as macOS writes it
    studio.put("inbox/Caf\u{e9}.yaml", b"prompt: the cafe at dusk\n"); // NFC, typed elsewhere
    studio.put("inbox/cat.png", &png_bytes(8, 8));
    studio.put("inbox/cat.jpg", &encoded(32, 32, image::ImageFormat::Jpeg));
    studio.put("inbox/cat.yaml", b"prompt: a cat yawns\n");
    studio.run().await.outcome(3, 0);
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
    let Scene { fake, studio } = Scenario::new()
        .yaml("  truncated_after: 3s\n")
        .start()
        .await;
    let whole = png_bytes(120, 80);
    let (head, rest) = whole.split_at(whole.len() / 2);
    studio.put("inbox/stalled.png", head);
    // A copy that broke off for good: it waits, then fails as truncated.
    let broken = png_bytes(64, 64);
    studio.put("inbox/broken.png", &broken[..broken.len() / 3]);
    let logs = LogWatch::start();
    let run = tokio::spawn({
        let settings = studio.settings(KEY);
        async move {
            let backend = dropreel::backend::Chosen::build(&settings).unwrap();
            dropreel::run::pipeline::run(
                &settings,
                backend,
                dropreel::run::pipeline::Mode::Run,
                std::future::pending(),
            )
            .await
            .unwrap()
        }
    });
    // Longer than settle (60 ms) + sidecar_wait (40 ms), the stall a sync client makes: found not
    // whole, then looked at twice more.
    logs.until(
        &["still not whole", "stalled.png"],
        2,
        Duration::from_secs(10),
    )
    .await;
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
    studio.error_says(
        "broken",
        &["is truncated", "copy the image into inbox/ again"],
    );
    let r = studio.json("done/stalled.result.json");
    assert_eq!(r["source_sha256"].as_str().unwrap().len(), 64);
    assert!(r.get("source_changed").is_none());
}

// See: issue 9, item 3 — the writer kept writing into the claimed file; done/ showed other bytes
// than the ones that were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_changes_after_it_was_taken_is_reported_at_delivery() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.task_time = Duration::from_millis(800))
        .start()
        .await;
    studio.put("inbox/growing.png", &png_bytes(32, 32));
    let w = Watching::start(&studio);
    // Wait until it is submitted, then append to the claimed file (a writer holding it open).
    let claimed = until_found("the submission", Duration::from_secs(10), || async {
        all_files(studio.root())
            .into_iter()
            .find(|f| f.starts_with("processing/") && f.ends_with("/growing.png"))
            .filter(|_| fake.tasks_created() == 1)
    })
    .await;
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(studio.path(&claimed))
        .unwrap()
        .write_all(b"more bytes from a slow writer")
        .unwrap();
    studio
        .appears("done/growing.result.json", Duration::from_secs(20))
        .await;
    w.stop().await;
    let r = studio.json("done/growing.result.json");
    assert_eq!(r["source_changed"], true, "{r:#}");
    assert!(r["warning"].as_str().unwrap().contains("different bytes"));
}

// See: issue 21, item 3 — sidecar errors listed the known keys twice, spoke serde's words
// (`expected u32`) and gave no "did you mean" or tab hint; the formats named as known included
// HEIC and AVIF, which this build cannot read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_errors_say_what_is_wrong_in_a_designers_words() {
    let Scene { fake, studio } = Scenario::new().start().await;
    studio.put("inbox/typo.png", &png_bytes(16, 9));
    studio.put("inbox/typo.yaml", b"promt: a cat yawns\nduration: 5s\n");
    studio.put("inbox/tabs.png", &png_bytes(16, 9));
    studio.put("inbox/tabs.yaml", b"prompt: a cat yawns\n\tmodel: gen4.5\n");
    studio.put("inbox/notes.png", b"this is text, not a picture");
    studio.run().await.outcome(0, 3);
    assert_eq!(fake.tasks_created(), 0, "nothing sent");
    let t = studio.error_says(
        "typo",
        &[
            "did you mean `prompt`?",
            "must be a whole number of seconds",
        ],
    );
    assert_eq!(
        t.matches("variants").count(),
        1,
        "the keys listed once: {t}"
    );
    assert!(!t.contains("u32") && !t.contains("expected"), "{t}");
    studio.error_says(
        "tabs",
        &["YAML does not allow tabs for indentation: use spaces (line 2)"],
    );
    let t = studio.read("failed/notes.error.txt");
    assert!(
        t.contains("(PNG, JPEG, WebP, TIFF, BMP or GIF)")
            && !t.contains("HEIC")
            && !t.contains("AVIF"),
        "{t}"
    );
}
