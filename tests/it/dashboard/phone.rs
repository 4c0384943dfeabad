//! The page on a phone's width in a real browser: long names fit, the next try shows its zone,
//! the keyboard reaches everything, and a refusal reads as plain text.

use super::*;

/// A file name of exactly 130 characters, one long word (no place to break a line), ending `ext`.
fn long_name(word: &str, ext: &str) -> String {
    let stem: String = word.chars().cycle().take(130 - ext.len()).collect();
    format!("{stem}{ext}")
}

/// What makes the page wider than its viewport, if anything: the widest elements.
const TOO_WIDE: &str = "const w = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth <= w) return null;
    return [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > w + 0.5)
        .slice(0, 6)
        .map(e => e.tagName + '.' + e.className + ' right ' + Math.round(e.getBoundingClientRect().right))
        .join('; ') + ' (scrollWidth ' + document.documentElement.scrollWidth + ')'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_long_names_fit_the_next_try_has_a_zone_the_keyboard_reaches_all_and_errors_read()
 {
    let Some(b) = browser("the dashboard on a phone, by keyboard").await else {
        return;
    };
    let fake = FakeRunway::start(Switches {
        video: Some(Arc::new(real_clip().await)),
        ..Switches::default()
    })
    .await;
    let (studio, addr, child) = dashboard_of(&fake, &format!("ui:\n  token: {TOKEN}\n")).await;
    let good = long_name("Sunset_over_the_harbour_from_the_lighthouse_", ".png");
    let bad = long_name("Scan_of_the_old_map_of_the_bay_", ".png");
    assert_eq!((good.chars().count(), bad.chars().count()), (130, 130));
    studio.put(&format!("inbox/{good}"), &scene(320, 240));
    studio.put(&format!("inbox/{bad}"), b"not an image at all");
    let minute = Duration::from_secs(60);
    b.phone(390, 844).await;
    b.client
        .goto(&format!("http://{addr}/?token={TOKEN}"))
        .await
        .unwrap();
    b.until(
        "the long-named result with its poster",
        minute,
        &on_item(
            "results",
            &good,
            "const i = e.querySelector('img.poster'); return !!i && i.complete && i.naturalWidth > 0",
        ),
    )
    .await;
    b.until(
        "the long-named failure",
        minute,
        &on_item("failed", &bad, "return true"),
    )
    .await;
    // An upload's line with a long name too (a sidecar: it waits in inbox/, nothing is made).
    let files = tempfile::tempdir().unwrap();
    let sidecar = files
        .path()
        .join(long_name("Notes_for_the_harbour_clip_", ".yaml"));
    std::fs::write(&sidecar, b"prompt: waves\n").unwrap();
    b.client
        .find(Locator::Id("upload-input"))
        .await
        .unwrap()
        .send_keys(sidecar.to_str().unwrap())
        .await
        .unwrap();
    b.until(
        "the upload's line",
        minute,
        "return document.querySelector('#uploads li.ok') !== null",
    )
    .await;
    let width = b.js("return document.documentElement.clientWidth").await;
    assert_eq!(width, 390, "the phone's viewport");
    let wide = b.js(TOO_WIDE).await;
    assert!(wide.is_null(), "the page is wider than the phone: {wide}");

    // By keyboard alone: Tab reaches the drop zone (Space and Enter open the file chooser) and
    // the result's poster (Enter plays it).
    b.js("window.chosen = 0;
          document.getElementById('upload-input').addEventListener('click', (e) => { e.preventDefault(); window.chosen++; });
          document.activeElement.blur(); window.scrollTo(0, 0); return true")
        .await;
    let focused = "const a = document.activeElement;
        if (!a || a === document.body) return 'body';
        if (a.id === 'drop') return 'drop';
        if (a.closest('#results .frame')) return 'play';
        return a.tagName + '.' + a.className";
    let mut seen = Vec::new();
    let mut at_play = false;
    for _ in 0..30 {
        b.press(fantoccini::key::Key::Tab).await;
        let now = b.js(focused).await.as_str().unwrap().to_string();
        if now == "drop" {
            b.press(fantoccini::key::Key::Space).await;
            b.press(fantoccini::key::Key::Enter).await;
            let chosen = b.js("return window.chosen").await;
            assert_eq!(
                chosen, 2,
                "Space and Enter on the drop zone open the file chooser"
            );
        }
        seen.push(now.clone());
        if now == "play" {
            at_play = true;
            break;
        }
    }
    assert!(
        seen.contains(&"drop".to_string()) && at_play,
        "Tab reaches the drop zone and the poster's play button: {seen:?}"
    );
    b.press(fantoccini::key::Key::Enter).await;
    b.until(
        "the long-named video playing, after Enter",
        minute,
        &on_item(
            "results",
            &good,
            "const v = e.querySelector('video'); return !!v && !v.error && v.readyState >= 2 && (v.currentTime > 0 || v.ended) && document.activeElement === v",
        ),
    )
    .await;

    // A hold: its next try says in which time zone.
    fake.set(|s| s.key = "a key that changed".into());
    studio.put("inbox/held.png", &png_distinct(320, 240));
    let next = b
        .until(
            "the hold",
            minute,
            "const h = document.getElementById('hold'); return h.hidden ? null : document.getElementById('hold-next').textContent",
        )
        .await;
    let next = next.as_str().unwrap();
    let zoned = regex_like_offset(next) || next.contains("UTC");
    assert!(zoned, "the next try names its zone or offset: {next:?}");
    let wide = b.js(TOO_WIDE).await;
    assert!(wide.is_null(), "with the hold shown: {wide}");
    let shot = b.client.screenshot().await.unwrap();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-phone.png");
    std::fs::write(&path, &shot).unwrap();
    eprintln!("dashboard on a phone: {}", path.display());

    // A refusal in plain text (the token's cookie is gone): Retry shows its words.
    b.client.delete_cookie("dropreel_token").await.unwrap();
    let failed_job = b.js(&on_item("failed", &bad, "return e.dataset.job")).await;
    b.client
        .find(Locator::Css(&format!(
            "#failed [data-job='{}'] button.retry",
            failed_job.as_str().unwrap()
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let note = b
        .until(
            "Retry's answer",
            minute,
            &on_item(
                "failed",
                &bad,
                "return e.querySelector('.note').textContent",
            ),
        )
        .await;
    let note = note.as_str().unwrap();
    assert!(
        note.contains("this dashboard needs its token") && !note.contains("JSON"),
        "the answer's own words: {note:?}"
    );
    assert!(
        studio.path(&format!("failed/{bad}")).exists(),
        "not retried"
    );
    b.close().await;
    sigterm(&child);
    assert_eq!(wait_exit(child, Duration::from_secs(10)).await.0, Some(0));
}

/// Whether `text` holds a UTC offset such as `+01:00` or `-0500`.
fn regex_like_offset(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len()).any(|i| {
        matches!(b[i], b'+' | b'-')
            && b.get(i + 1..i + 3)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            && b.get(i + 3..i + 5).is_some_and(|d| {
                d.iter().all(u8::is_ascii_digit)
                    || (d[0] == b':'
                        && b.get(i + 4..i + 6)
                            .is_some_and(|d| d.iter().all(u8::is_ascii_digit)))
            })
    })
}
