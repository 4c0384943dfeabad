//! The API key never leaves the process: not in logs (text or JSON, at debug level), not in
//! `result.json`, `error.txt` or `job.json` — including on the paths that handle refusals. Nor does
//! an image's data URI appear in a log.

use std::process::Command;

use crate::support::*;

fn run(root: &std::path::Path, key: &str, format: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dropreel"))
        .args(["run", root.to_str().unwrap(), "-v", "--log-format", format])
        .env("RUNWAYML_API_SECRET", key)
        .env_remove("RUNWAY_API_KEY")
        .env_remove("RUNWAYML_BASE_URL")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Every file in the studio, read as bytes.
fn studio_bytes(studio: &Studio) -> Vec<(String, Vec<u8>)> {
    all_files(studio.root())
        .into_iter()
        .filter(|f| !f.ends_with(".png") && !f.ends_with(".mp4"))
        .map(|f| {
            let bytes = std::fs::read(studio.root().join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

fn assert_absent(needle: &str, logs: &str, studio: &Studio) {
    assert!(!logs.contains(needle), "the key is in the logs");
    for (name, bytes) in studio_bytes(studio) {
        let hit = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!hit, "the key is in {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_appears_in_no_log_and_no_file() {
    let fake = FakeRunway::start(Switches {
        failure_codes: ["SAFETY.INPUT.IMAGE".to_string()].into(),
        concurrency: 1,
        ..Switches::default()
    })
    .await;
    let studio =
        Studio::new(&test_config(&fake.url, "").replace("max_in_flight: 2", "max_in_flight: 1"));
    let root = studio.root().to_path_buf();
    for format in ["text", "json"] {
        // Three jobs: the first task fails on the server (error.txt); one image goes through the
        // upload endpoint, the others inline.
        studio.put(&format!("inbox/refused-{format}.png"), &png_distinct(8, 8));
        studio.put(
            &format!("inbox/big-{format}.png"),
            &png_distinct(1200, 1200),
        );
        studio.put(&format!("inbox/small-{format}.png"), &png_distinct(9, 9));
        let r = root.clone();
        let (code, logs) = tokio::task::spawn_blocking(move || run(&r, KEY, format))
            .await
            .unwrap();
        assert_eq!(code, Some(1), "{logs}");
        assert!(
            logs.contains("submitted"),
            "debug logs were written: {logs}"
        );
        assert_absent(KEY, &logs, &studio);
        assert!(!logs.contains("base64,"), "no data URI in the logs");
        fake.set(|s| s.failure_codes = ["SAFETY.INPUT.IMAGE".to_string()].into());
    }
    let errors = studio
        .list("failed")
        .iter()
        .filter(|n| n.ends_with(".error.txt"))
        .count();
    assert_eq!(errors, 2, "one refused job per run wrote its error.txt");
    assert_eq!(fake.uploads().len(), 2);

    // A wrong key: refused (exit 3), the job waits in processing/ with its job.json.
    let wrong = "key_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    studio.put("inbox/later.png", &png_bytes(10, 10));
    for format in ["text", "json"] {
        let r = root.clone();
        let (code, logs) = tokio::task::spawn_blocking(move || run(&r, wrong, format))
            .await
            .unwrap();
        assert_eq!(code, Some(3), "{logs}");
        assert_absent(wrong, &logs, &studio);
    }
    assert_eq!(
        studio
            .list("processing")
            .iter()
            .filter(|n| !n.starts_with('.'))
            .count(),
        1
    );
}
