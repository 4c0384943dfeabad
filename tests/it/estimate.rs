//! `dropreel estimate`: a mixed inbox priced from the catalog (presets, sidecars and variants
//! applied), reuses at 0, the files that would fail and why, and the budget left — with no request.

use std::process::Command;

use crate::support::*;

fn price(model: &str) -> u64 {
    u64::from(
        dropreel::job::models::Models::built_in()
            .find(model)
            .and_then(|m| m.credits_per_second)
            .unwrap(),
    )
}

// See: issue 12, item 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimate_prices_a_mixed_inbox_from_the_catalog_without_a_request() {
    let Scene { fake, studio } = Scenario::new()
        .yaml("budget:\n  daily_credits: 400\npresets:\n  tall:\n    model: gen4.5\n    ratio: \"720:1280\"\n    prompt: a tall reveal\n")
        .start()
        .await;
    // Delivered before: dropping it again is a reuse.
    let seen = png_distinct(16, 9);
    studio.put("inbox/seen.png", &seen);
    studio.run().await;
    let requests = fake.seen().len();

    let a = png_distinct(16, 9);
    studio.put("inbox/a.png", &a);
    studio.put("inbox/copy of a.png", &a);
    studio.put("inbox/b.png", &png_distinct(16, 9));
    studio.put("inbox/b.yaml", b"duration: 10\nvariants: 2\n");
    studio.put("inbox/title.txt", b"a lighthouse at dusk, waves rolling in");
    std::fs::create_dir_all(studio.path("inbox/tall")).unwrap();
    studio.put("inbox/tall/c.png", &png_distinct(9, 16));
    studio.put("inbox/seen.png", &seen);
    studio.put("inbox/bad.png", b"not an image at all");
    studio.put("inbox/wrong.png", &png_distinct(16, 9));
    studio.put("inbox/wrong.yaml", b"duration: 12\n");

    let out = Command::new(dropreel_bin())
        .args(["estimate", studio.root().to_str().unwrap(), "--json"])
        .env("RUNWAYML_API_SECRET", KEY)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fake.seen().len(), requests, "estimate sends nothing");
    let group = |kind: &str, model: &str| {
        e["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["kind"] == kind && g["model"] == model)
            .unwrap_or_else(|| panic!("no {kind} {model} in {e}"))
            .clone()
    };
    // a.png (5 s) and b.png (2 takes of 10 s) on gen4_turbo.
    let turbo = group("image", "gen4_turbo");
    assert_eq!(
        (turbo["jobs"].as_u64(), turbo["videos"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(turbo["seconds"], 25);
    assert_eq!(turbo["credits"], price("gen4_turbo") * 25);
    // The preset folder's model; the text's model.
    let tall = group("image", "gen4.5");
    assert_eq!(tall["credits"], price("gen4.5") * 5);
    let text = group("text", "gen4.5");
    assert_eq!(text["credits"], price("gen4.5") * 5);
    let total = price("gen4_turbo") * 25 + price("gen4.5") * 10;
    assert_eq!(e["total"]["credits"], total);
    assert_eq!(e["total"]["usd"], total as f64 / 100.0);
    let reused: Vec<&str> = e["reused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    assert_eq!(reused, ["copy of a.png", "seen.png"], "{e}");
    assert_eq!(e["reused"][1]["from"][0], "done/seen.mp4");
    let failing: Vec<&str> = e["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["bad.png", "wrong.png"], "{e}");
    assert!(
        e["failing"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("duration 12"),
        "{e}"
    );
    let spent = price("gen4_turbo") * 5;
    assert_eq!(e["budget"]["spent_today"], spent);
    assert_eq!(e["budget"]["left_today"], 400 - spent);
    // Nothing moved.
    assert_eq!(
        studio.list("inbox").len(),
        10,
        "nine files and the preset folder"
    );
    assert!(studio.path("inbox/tall/c.png").exists());

    let out = Command::new(dropreel_bin())
        .args(["estimate", studio.root().to_str().unwrap()])
        .env("RUNWAYML_API_SECRET", KEY)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&format!("{total}")) && table.contains("would fail (2)"),
        "{table}"
    );
}

// See: issue 21, item 6 — one group of unknown price made total.credits null: the total is the
// known sum, and what is unpriced is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpriced_group_leaves_the_known_total_and_is_listed() {
    let Scene {
        fake: _fake,
        studio,
    } = Scenario::new().start().await;
    studio.put("inbox/a.png", &png_distinct(16, 9));
    studio.put("inbox/b.png", &png_distinct(16, 9));
    studio.put("inbox/b.yaml", b"model: seedance2_fast\nvariants: 2\n");
    let out = Command::new(dropreel_bin())
        .args(["estimate", studio.root().to_str().unwrap(), "--json"])
        .env("RUNWAYML_API_SECRET", KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["total"]["credits"], price("gen4_turbo") * 5, "{e}");
    assert_eq!(e["total"]["videos"], 3, "{e}");
    let unpriced = e["unpriced"].as_array().unwrap_or_else(|| panic!("{e}"));
    assert_eq!(unpriced.len(), 1, "{e}");
    assert_eq!(unpriced[0]["model"], "seedance2_fast");
    assert_eq!(unpriced[0]["videos"], 2);

    let out = Command::new(dropreel_bin())
        .args(["estimate", studio.root().to_str().unwrap()])
        .env("RUNWAYML_API_SECRET", KEY)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let total = table.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(
        total.contains(&(price("gen4_turbo") * 5).to_string()),
        "{table}"
    );
    assert!(
        table.contains("seedance2_fast") && table.contains("budget.rates"),
        "{table}"
    );
}

// See: issue 21, item 7 — `estimate` with `backend: runway` and no key exited 2: it sends nothing,
// so it prices Runway without a key; with `auto` and no key it prices the local renderer and says
// what Runway would cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimate_prices_runway_without_a_key() {
    let Scene { fake, studio } = Scenario::new().yaml("backend: runway\n").start().await;
    studio.put("inbox/a.png", &png_distinct(16, 9));
    let estimate = |args: &[&str]| {
        Command::new(dropreel_bin())
            .arg("estimate")
            .arg(studio.root())
            .args(args)
            .env_remove("RUNWAYML_API_SECRET")
            .env_remove("RUNWAY_API_KEY")
            .output()
            .unwrap()
    };
    let out = estimate(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["backend"], "runway");
    assert_eq!(e["total"]["credits"], price("gen4_turbo") * 5);
    assert!(fake.seen().is_empty(), "nothing sent");

    studio.put(
        "dropreel.yaml",
        test_config(&fake.url, "backend: auto\n").as_bytes(),
    );
    let out = estimate(&["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["backend"], "local");
    assert_eq!(e["total"]["credits"], 0);
    assert_eq!(e["on_runway"]["credits"], price("gen4_turbo") * 5, "{e}");
    let out = estimate(&[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("on Runway") && table.contains(&(price("gen4_turbo") * 5).to_string()),
        "{table}"
    );
}
