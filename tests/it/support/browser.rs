//! A real browser for the dashboard's tests: Debian's headless Chromium, driven over WebDriver by
//! its ChromeDriver (`fantoccini`), with a fresh profile and no network but loopback; a phone's
//! viewport through DevTools, and keys pressed as a keyboard does. And a raw
//! HTTP client for the requests a browser would never send (traversal, forged origins and hosts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dropreel_testkit::free_port;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn find(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A headless Chromium session; the driver is killed when it drops.
pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Killing ChromeDriver leaves its Chromium running: end every process of this profile too
    /// (also when a test panicked before [`Browser::close`]).
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(format!("user-data-dir={}", self._profile.path().display()))
            .status();
    }
}

/// Starts Chromium, or — when it is not installed — says so loudly and returns `None`, except
/// under `CI=true`, where a missing browser fails the test (`.ci/run` installs it).
pub async fn browser(test: &str) -> Option<Browser> {
    let chromium = find(
        "DROPREEL_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = find("DROPREEL_CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        let why = "no Chromium and ChromeDriver found (Debian: apt-get install chromium chromium-driver; or set DROPREEL_CHROMIUM and DROPREEL_CHROMEDRIVER)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {why}; under CI=true the browser tests must run");
        }
        eprintln!("\n=== SKIPPED {test}: {why} ===\n");
        return None;
    };
    let port = free_port();
    let mut child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
    let driver_url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    loop {
        if reqwest::get(format!("{driver_url}/status"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("ChromeDriver did not answer on {driver_url} within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--autoplay-policy=no-user-gesture-required".into(),
        "--window-size=1280,1500".into(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let caps = caps.as_object().unwrap().clone();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"));
    Some(Browser {
        client,
        driver: child,
        driver_url,
        _profile: profile,
    })
}

impl Browser {
    /// Ends the session: Chromium quits.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` returns something truthy (within `limit`); its value.
    pub async fn until(&self, what: &str, limit: Duration, script: &str) -> Value {
        {
            let t0 = Instant::now();
            loop {
                let v = self.js(script).await;
                let truthy = match &v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::String(s) => !s.is_empty(),
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    _ => true,
                };
                if truthy {
                    return v;
                }
                if t0.elapsed() > limit {
                    let body = self
                        .js("return document.body.innerText")
                        .await
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    panic!("the page did not show {what} within {limit:?}; it shows:\n{body}");
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
    }

    /// Runs the Chrome DevTools command `cmd` with `params` (through ChromeDriver); its result.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let id = self.client.session_id().await.unwrap().unwrap();
        let url = format!("{}/session/{id}/goog/cdp/execute", self.driver_url);
        let v: Value = reqwest::Client::new()
            .post(url)
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(v["value"].get("error").is_none(), "{cmd}: {v}");
        v["value"].clone()
    }

    /// Lays the page out as a phone's of `width` × `height` CSS pixels shows it.
    pub async fn phone(&self, width: u32, height: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 2, "mobile": true}),
        )
        .await;
    }

    /// Presses and releases `key` on whatever has the focus, as a keyboard does.
    pub async fn press(&self, key: fantoccini::key::Key) {
        use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
        let value = char::from(key);
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        self.client.perform_actions(keys).await.unwrap();
    }

    /// The browser's console messages at level SEVERE since the last call (errors, failed loads).
    pub async fn console_errors(&self) -> Vec<String> {
        let id = self.client.session_id().await.unwrap().unwrap();
        let url = format!("{}/session/{id}/se/log", self.driver_url);
        let v: Value = reqwest::Client::new()
            .post(url)
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// One HTTP/1.1 request written by hand (so nothing normalises its path or headers): the status
/// and the body.
pub async fn raw_http(addr: SocketAddr, request: &str, body: &[u8]) -> (u16, String) {
    let (status, body) = raw_http_bytes(addr, request, body).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// [`raw_http`], the body as bytes.
pub async fn raw_http_bytes(addr: SocketAddr, request: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let (status, _, body) = raw_http_head(addr, request, body).await;
    (status, body)
}

/// [`raw_http`]: the status, the head (status line and headers, as sent) and the body as bytes.
pub async fn raw_http_head(addr: SocketAddr, request: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    // A server that answers before the body (a refusal) may close while it is being sent.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no HTTP answer to {request:?}: {:?}",
                String::from_utf8_lossy(&out)
            )
        });
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    (status, head, out[split + 4..].to_vec())
}

/// The value of header `name` in `head` (as [`raw_http_head`] returns it), if sent.
pub fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A GET of `path` on the dashboard at `addr`, with `headers` (each `Name: value`).
pub async fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String) {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw_http(addr, &req, b"").await
}

/// A POST of `body` to `path`, with `headers`.
pub async fn post(addr: SocketAddr, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw_http(addr, &req, body).await
}
