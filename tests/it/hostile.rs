//! Hostile and odd input in one inbox: strange names, links, a folder and a FIFO named like images,
//! empty and huge files, a decompression bomb, oversized and alias-bomb sidecars. The good files are
//! done, each bad one fails with its reason or is left alone — and nothing stops or panics.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_names_links_and_bombs_neither_stop_nor_crash_anything() {
    let fake = FakeRunway::start(Switches {
        concurrency: 4,
        ..Switches::default()
    })
    .await;
    let studio =
        Studio::new(&test_config(&fake.url, "").replace("max_in_flight: 2", "max_in_flight: 4"));
    let long_name = format!("{}.png", "l".repeat(251));
    assert_eq!(long_name.len(), 255);
    let good_names = [
        "with space.png",
        "ünïcødé 🎬 clip.png",
        "quote\"s 'n' back\\slash.png",
        "semi;colon && $(rm -rf).png",
        "-leading-dash.png",
        long_name.as_str(),
    ];
    for (i, name) in good_names.iter().enumerate() {
        studio.put(&format!("inbox/{name}"), &png_bytes(10 + i as u32, 10));
    }
    studio.put(
        "inbox/with space.yaml",
        b"a prompt with spaces in the file name\n",
    );

    // Links are never followed: one pointing out of the studio, one to an image inside it.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.png"), png_bytes(9, 9)).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.png"),
        studio.path("inbox/link-out.png"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        studio.path("inbox/with space.png"),
        studio.path("inbox/link-in.png"),
    )
    .unwrap();
    std::fs::create_dir(studio.path("inbox/folder.png")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(studio.path("inbox/pipe.png"))
        .status()
        .unwrap();
    assert!(fifo.success());

    studio.put("inbox/zero.png", b"");
    // 200 MB of nothing: refused by its content, without reading it all.
    let huge = std::fs::File::create(studio.path("inbox/huge.png")).unwrap();
    huge.set_len(200 * 1024 * 1024).unwrap();
    drop(huge);
    studio.put("inbox/bomb.png", &png_header_claiming(100_000, 100_000));
    studio.put("inbox/fat.png", &png_bytes(8, 8));
    studio.put("inbox/fat.yaml", &vec![b'#'; 10 * 1024 * 1024]);
    studio.put("inbox/laughs.png", &png_bytes(8, 8));
    let mut laughs = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, c) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        laughs.push_str(&format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    studio.put("inbox/laughs.yaml", laughs.as_bytes());

    let summary = studio.run_with_key(KEY, Duration::from_secs(60)).await;
    assert_eq!((summary.succeeded, summary.failed), (good_names.len(), 5));

    for name in good_names {
        // A 255-byte name leaves no room for `.result.json`: every file of that job gets the
        // same shortened stem.
        let stem = name.trim_end_matches(".png");
        let stem = &stem[..stem.len().min(255 - ".result.json".len() - 4)];
        for ext in ["png", "result.json"] {
            assert!(
                studio.path(&format!("done/{stem}.{ext}")).exists(),
                "{name}: {ext} delivered"
            );
        }
        assert_eq!(
            std::fs::read(studio.path(&format!("done/{stem}.mp4"))).unwrap(),
            mp4_bytes(),
            "{name}"
        );
    }
    assert_eq!(
        studio.json("done/with space.result.json")["prompt"],
        "a prompt with spaces in the file name"
    );
    for (stem, why) in [
        ("zero", "the file is empty"),
        ("huge", "not an image dropreel knows"),
        ("bomb", "decompression bomb"),
        ("fat", "at most 256 KiB"),
        ("laughs", "alias bomb"),
    ] {
        let text = studio.read(&format!("failed/{stem}.error.txt"));
        assert!(text.contains(why), "{stem}: {text}");
    }
    // Left alone, untouched: links, the folder, the FIFO; the link's target is intact.
    let mut inbox = studio.list("inbox");
    inbox.sort();
    assert_eq!(
        inbox,
        ["folder.png", "link-in.png", "link-out.png", "pipe.png"]
    );
    assert_eq!(
        std::fs::read(outside.path().join("secret.png")).unwrap(),
        png_bytes(9, 9)
    );
    assert_eq!(
        fake.created().len(),
        good_names.len(),
        "nothing bad was sent"
    );
    assert!(studio.list("processing").is_empty());
}
