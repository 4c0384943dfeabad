//! The dashboard's security from outside a browser: no request path reaches the disk, changes need
//! the page's origin (or a TLS proxy's), a token off loopback, and `/media` serves only regular
//! files under `done/` — never through a link, a crafted `result.json` or name, whatever the range.

use super::*;

/// A studio whose `watch --ui` serves on a free loopback port, with one job delivered.
async fn served(extra: &str) -> (FakeRunway, Studio, SocketAddr, Child, String) {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, extra));
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = spawn_watch_with(studio.root(), &[&format!("--ui=127.0.0.1:{port}")]);
    until_listening(addr, &mut child).await;
    studio.put("inbox/cat.png", &png_distinct(320, 240));
    studio
        .appears("done/cat.result.json", Duration::from_secs(30))
        .await;
    let job = studio.json("done/cat.result.json")["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The dashboard learns of the delivery as it happens.
    let shown = |state: String| {
        let v: serde_json::Value = serde_json::from_str(&state).unwrap();
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["job"] == job.as_str())
    };
    until_async(
        "the state shows the job",
        Duration::from_secs(10),
        || async { shown(get(addr, "/api/state", &[]).await.1) },
    )
    .await;
    (fake, studio, addr, child, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_from_a_request_reaches_the_disk_and_changes_need_the_pages_origin() {
    let (_fake, studio, addr, child, job) = served("ui:\n  max_upload_mb: 1\n").await;
    let request =
        format!("GET /media/{job}/cat.mp4 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (status, body) = raw_http_bytes(addr, &request, b"").await;
    assert_eq!(status, 200, "a delivered video, by job id and name");
    assert_eq!(body, std::fs::read(studio.path("done/cat.mp4")).unwrap());
    studio.put(
        "done/secret.mp4",
        b"not delivered by a job the dashboard shows",
    );
    for path in [
        "/../dropreel.yaml".to_string(),
        "/%2e%2e/%2e%2e/etc/passwd".into(),
        "//etc/passwd".into(),
        "/app.js/..%2f..%2fdropreel.yaml".into(),
        format!("/media/{job}/../../dropreel.yaml"),
        format!("/media/{job}/..%2F..%2Fdropreel.yaml"),
        format!("/media/{job}/%2e%2e%2f%2e%2e%2fdropreel.yaml"),
        format!("/media/{job}/%2Fetc%2Fpasswd"),
        format!("/media/{job}/done%2Fcat.mp4"),
        format!("/media/{job}/secret.mp4"),
        "/media/..%2F..%2Fdone/cat.mp4".into(),
        format!("/media/{job}/{}", studio.path("done/cat.mp4").display()),
        "/media/x/cat.mp4".into(),
    ] {
        let (status, body) = get(addr, &path, &[]).await;
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    let same = format!("Origin: http://{addr}");
    for path in [
        "/api/retry/..%2F..%2Fdropreel.yaml",
        "/api/retry/%2Fetc%2Fpasswd",
        "/api/upload?name=..%2Fescape.png",
        "/api/upload?name=%2Ftmp%2Fescape.png",
        "/api/upload?name=..",
        "/api/../api/upload?name=x.png",
    ] {
        let (status, body) = post(addr, path, &[&same], b"x").await;
        assert_eq!(status, 404, "POST {path}: {body}");
    }
    assert!(!studio.root().parent().unwrap().join("escape.png").exists());

    // A page elsewhere (another origin, or a name that resolves here by DNS rebinding).
    let evil = "Origin: http://evil.example";
    let (status, _) = post(addr, "/api/upload?name=o.yaml", &[evil], b"prompt: x\n").await;
    assert_eq!(status, 403, "a cross-origin upload");
    let (status, _) = post(addr, "/api/upload?name=o.yaml", &[], b"prompt: x\n").await;
    assert_eq!(status, 403, "an upload that names no origin");
    assert!(!studio.path("inbox/o.yaml").exists());
    let rebound = raw_http(
        addr,
        "GET /api/state HTTP/1.1\r\nHost: evil.example:7878\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(rebound.0, 403, "a request for another host name");

    // Same origin: uploaded, never over a file already there, never past the cap.
    let (status, body) = post(addr, "/api/upload?name=o.yaml", &[&same], b"prompt: one\n").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        addr,
        "/api/upload?name=o.yaml",
        &["Sec-Fetch-Site: same-origin"],
        b"prompt: two\n",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(studio.read("inbox/o.yaml"), "prompt: one\n");
    let big = vec![7u8; 1024 * 1024 + 1];
    let (status, body) = post(addr, "/api/upload?name=big.png", &[&same], &big).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = post(addr, "/api/upload?name=notes.pdf", &[&same], b"%PDF").await;
    assert_eq!(status, 400, "a kind dropreel does not read");
    let inbox = studio.list("inbox");
    assert_eq!(inbox, vec!["o.yaml".to_string()], "nothing else in inbox/");

    // The metrics count what happened (the job leaves the in-flight gauge just after delivery).
    let want = [
        "dropreel_jobs_total{outcome=\"delivered\"} 1",
        "dropreel_submits_total 1",
        "dropreel_credits_total{model=\"gen4_turbo\"} 25",
        "dropreel_in_flight 0",
        "dropreel_waiting 0",
    ];
    let what = format!("{want:?} in /metrics");
    until_async(&what, Duration::from_secs(10), || async {
        let (status, metrics) = get(addr, "/metrics", &[]).await;
        assert_eq!(status, 200);
        want.iter().all(|line| metrics.contains(line))
    })
    .await;
    sigterm(&child);
    let (code, _) = wait_exit(child, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_dashboard_needs_a_token_for_every_request() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    let out = std::process::Command::new(dropreel_bin())
        .args(["watch", studio.root().to_str().unwrap(), "--ui=0.0.0.0:0"])
        .env("RUNWAYML_API_SECRET", KEY)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("ui.token"), "{said}");
    // `--ui ADDR` (a space, not `=`) would read the address as the studio: said so.
    let out = std::process::Command::new(dropreel_bin())
        .args(["watch", "--ui", "0.0.0.0:7878"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("write it as --ui=0.0.0.0:7878"), "{said}");

    let port = free_port();
    let studio = Studio::new(&test_config(
        &fake.url,
        &format!("ui:\n  listen: 0.0.0.0:{port}\n  token: {TOKEN}\n"),
    ));
    // ui.listen alone serves the dashboard.
    let mut child = spawn_watch(studio.root());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    until_listening(addr, &mut child).await;
    for path in [
        "/",
        "/app.js",
        "/api/state",
        "/events",
        "/metrics",
        "/media/x/y.mp4",
        "/nowhere",
    ] {
        let (status, _) = get(addr, path, &[]).await;
        assert_eq!(status, 401, "GET {path} without the token");
        let (status, _) = get(addr, path, &["Authorization: Bearer not-the-token-at-all"]).await;
        assert_eq!(status, 401, "GET {path} with a wrong token");
    }
    let (status, _) = post(
        addr,
        "/api/upload?name=a.yaml",
        &[&format!("Origin: http://{addr}")],
        b"x",
    )
    .await;
    assert_eq!(status, 401, "a POST without the token");
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let (status, body) = get(addr, "/api/state", &[&bearer]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(addr, "/metrics", &[&bearer]).await;
    assert_eq!(status, 200);
    // The link to give someone sets a cookie the page's own requests carry.
    let answer = raw_http(
        addr,
        &format!("GET /?token={TOKEN} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        b"",
    )
    .await;
    assert_eq!(answer.0, 303);
    let (status, _) = get(
        addr,
        "/api/state",
        &[&format!("Cookie: dropreel_token={TOKEN}")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(addr, "/?token=wrong-token-of-some-length", &[]).await;
    assert_eq!(status, 401);
    sigterm(&child);
    let (code, _) = wait_exit(child, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
}

/// A `result.json` as an attacker who can write into `done/` would leave one: job `job`, and
/// `variants` naming whatever files it likes (or none: then `<stem>.mp4` is the video).
fn crafted_result(job: &str, variants: Option<serde_json::Value>) -> Vec<u8> {
    let mut v = serde_json::json!({
        "job_id": job, "source": "x.png", "kind": "image", "backend": "runway",
        "model": "gen4_turbo", "credits": 25.0, "delivered_at": "2026-01-01T00:00:00Z",
    });
    if let Some(takes) = variants {
        v["variants"] = takes;
    }
    serde_json::to_vec(&v).unwrap()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_serves_only_regular_files_under_done_never_through_a_link_or_a_crafted_name() {
    use std::os::unix::fs::symlink;
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    // The key in ROOT/.env, as the README recommends; done/ written by someone else (a sync peer).
    let dotenv = "RUNWAYML_API_SECRET=key_that_must_never_leave_the_studio\n";
    studio.put(".env", dotenv.as_bytes());
    let takes = serde_json::json!([
        {"n": 1, "file": "../.env"},
        {"n": 2, "file": "../../../../../../../../etc/passwd"},
        {"n": 3, "file": "../dropreel.yaml"},
    ]);
    studio.put(
        "done/evil.result.json",
        &crafted_result("20260101T000000Z-e0000001", Some(takes)),
    );
    symlink("../.env", studio.path("done/p5.mp4")).unwrap();
    studio.put(
        "done/p5.result.json",
        &crafted_result("20260101T000000Z-e0000002", None),
    );
    symlink("/etc/passwd", studio.path("done/pw.mp4")).unwrap();
    symlink("../.env", studio.path("done/pw.poster.jpg")).unwrap();
    studio.put(
        "done/pw.result.json",
        &crafted_result("20260101T000000Z-e0000003", None),
    );

    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = spawn_watch_with(studio.root(), &[&format!("--ui=127.0.0.1:{port}")]);
    until_listening(addr, &mut child).await;
    std::fs::create_dir_all(studio.path("inbox/clientA")).unwrap();
    studio.put("inbox/clientA/cat.png", &png_distinct(320, 240));
    studio
        .appears("done/clientA/cat.result.json", Duration::from_secs(30))
        .await;
    let job = studio.json("done/clientA/cat.result.json")["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let state = until_found("the state shows cat", Duration::from_secs(10), || async {
        let v: serde_json::Value =
            serde_json::from_str(&get(addr, "/api/state", &[]).await.1).unwrap();
        let shown = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["job"] == job.as_str());
        shown.then_some(v)
    })
    .await;
    // What done/ holds that is no delivered file is not even listed.
    let shown: Vec<&str> = state["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job"].as_str().unwrap())
        .collect();
    assert_eq!(shown, [job.as_str()], "only cat is a result: {state}");

    // Every way to the key or /etc/passwd: 404, and never their bytes.
    for (owner, name) in [
        ("20260101T000000Z-e0000001", ".env"),
        ("20260101T000000Z-e0000001", "passwd"),
        ("20260101T000000Z-e0000001", "dropreel.yaml"),
        ("20260101T000000Z-e0000002", "p5.mp4"),
        ("20260101T000000Z-e0000003", "pw.mp4"),
        ("20260101T000000Z-e0000003", "pw.poster.jpg"),
    ] {
        let (status, body) = get(addr, &format!("/media/{owner}/{name}"), &[]).await;
        assert_eq!(status, 404, "{owner}/{name}: {body}");
        assert!(!body.contains("key_that_must") && !body.contains("root:"));
    }

    // The delivered video: whole, or any range of it (the player seeks), typed.
    let video = std::fs::read(studio.path("done/clientA/cat.mp4")).unwrap();
    let url = format!("/media/{job}/cat.mp4");
    let ask = |range: &str| {
        format!("GET {url} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{range}\r\n")
    };
    let (status, head, body) = raw_http_head(addr, &ask(""), b"").await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, video);
    assert_eq!(header_of(&head, "content-type"), Some("video/mp4"));
    assert_eq!(header_of(&head, "accept-ranges"), Some("bytes"));
    let (status, head, body) = raw_http_head(addr, &ask("Range: bytes=10-109\r\n"), b"").await;
    assert_eq!(status, 206, "{head}");
    assert_eq!(body, video[10..110]);
    let total = video.len();
    assert_eq!(
        header_of(&head, "content-range"),
        Some(format!("bytes 10-109/{total}").as_str())
    );
    let (status, _, body) = raw_http_head(addr, &ask("Range: bytes=-16\r\n"), b"").await;
    assert_eq!((status, body.as_slice()), (206, &video[total - 16..]));
    let (status, _, body) = raw_http_head(addr, &ask("Range: bytes=100-\r\n"), b"").await;
    assert_eq!((status, body.as_slice()), (206, &video[100..]));
    let (status, head, _) =
        raw_http_head(addr, &ask(&format!("Range: bytes={total}-\r\n")), b"").await;
    assert_eq!(status, 416, "{head}");
    assert_eq!(
        header_of(&head, "content-range"),
        Some(format!("bytes */{total}").as_str())
    );
    // The delivered file replaced by a link, or its folder by a link out of done/: 404.
    let outside = tempfile::tempdir().unwrap();
    std::fs::rename(studio.path("done/clientA"), outside.path().join("clientA")).unwrap();
    symlink(outside.path().join("clientA"), studio.path("done/clientA")).unwrap();
    let (status, _) = get(addr, &url, &[]).await;
    assert_eq!(status, 404, "a folder linked out of done/");
    std::fs::remove_file(studio.path("done/clientA")).unwrap();
    std::fs::create_dir(studio.path("done/clientA")).unwrap();
    symlink("../../.env", studio.path("done/clientA/cat.mp4")).unwrap();
    let (status, body) = get(addr, &url, &[]).await;
    assert_eq!(status, 404, "a delivered file replaced by a link: {body}");
    sigterm(&child);
    let (code, _) = wait_exit(child, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tls_proxy_changes_pass_by_sec_fetch_site_or_the_public_origin() {
    let fake = FakeRunway::start(Switches::default()).await;
    // A TLS proxy in front: the browser's Origin is https://…, the Host what the proxy sends.
    let (studio, addr, child) = dashboard_of(&fake, "").await;
    let proxied = "Origin: https://reels.example.com";
    let (status, body) = post(
        addr,
        "/api/upload?name=a.yaml",
        &[proxied, "Sec-Fetch-Site: same-origin"],
        b"prompt: a\n",
    )
    .await;
    assert_eq!(status, 201, "the browser says same-origin: {body}");
    for headers in [
        vec![proxied],
        vec![proxied, "Sec-Fetch-Site: cross-site"],
        vec!["Origin: https://evil.example", "Sec-Fetch-Site: same-site"],
    ] {
        let (status, _) = post(addr, "/api/upload?name=b.yaml", &headers, b"x").await;
        assert_eq!(status, 403, "{headers:?}");
    }
    assert_eq!(studio.list("inbox"), ["a.yaml"]);
    sigterm(&child);
    assert_eq!(wait_exit(child, Duration::from_secs(10)).await.0, Some(0));

    // With ui.public_origin, a browser that sends no Sec-Fetch-Site passes by its Origin, and a
    // proxy that passes the Host on is answered.
    let (studio, addr, child) =
        dashboard_of(&fake, "ui:\n  public_origin: https://Reels.Example.com/\n").await;
    let (status, body) = post(addr, "/api/upload?name=c.yaml", &[proxied], b"prompt: c\n").await;
    assert_eq!(status, 201, "the public origin: {body}");
    for origin in [
        "http://reels.example.com",
        "https://reels.example.com:8443",
        "https://reels.example.com.evil.example",
        "null",
    ] {
        let (status, _) = post(
            addr,
            "/api/upload?name=d.yaml",
            &[&format!("Origin: {origin}")],
            b"x",
        )
        .await;
        assert_eq!(status, 403, "{origin}");
    }
    assert_eq!(studio.list("inbox"), ["c.yaml"]);
    let host = |name: &str| {
        format!("GET /api/state HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n")
    };
    let (status, _) = raw_http(addr, &host("reels.example.com"), b"").await;
    assert_eq!(status, 200, "the public origin's host");
    let (status, _) = raw_http(addr, &host("evil.example"), b"").await;
    assert_eq!(status, 403, "another host");
    sigterm(&child);
    assert_eq!(wait_exit(child, Duration::from_secs(10)).await.0, Some(0));

    // A public origin that is no origin stops watch with the reason.
    let bad = Studio::new(&test_config(
        &fake.url,
        "ui:\n  public_origin: reels.example.com/dashboard\n",
    ));
    let out = std::process::Command::new(dropreel_bin())
        .args(["watch", bad.root().to_str().unwrap(), "--ui=127.0.0.1:0"])
        .env("RUNWAYML_API_SECRET", KEY)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("ui.public_origin") && said.contains("https://"),
        "{said}"
    );
}
