//! The dashboard of `watch --ui`: one page, served by the binary itself (its assets are compiled
//! in: no build step, no CDN, works offline), kept live by server-sent events from the [`Live`]
//! state; `/metrics` in Prometheus text. This file owns the server and its security; what the page
//! is sent is in [`board`], what it can do (play a result, retry a failure, upload) in [`actions`].
//!
//! Security: on a loopback address no login, but only requests naming a loopback host are answered
//! (a web page elsewhere cannot reach it by DNS rebinding). On any other address `ui.token` is
//! required — the server refuses to start without it — and every request must carry it (a bearer
//! header, or the cookie the page gets from `/?token=…`). Every POST must come from the page's own
//! origin: the browser says `Sec-Fetch-Site: same-origin`, or its `Origin` is the dashboard's or
//! `ui.public_origin` (the page behind a TLS proxy, whose host is then answered on loopback too).
//! Files are served only from `done/`, by job id and a name the job delivered: no path from a
//! request ever reaches the file system, and a file is opened without following links and served
//! only if it is a regular file under `done/` ([`actions`]).

mod actions;
mod board;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, UiSection};
use crate::observe::live::Live;
use crate::studio::ledger::spend::SpendLog;

/// The cookie that carries the token for the page's own requests (images, video, events).
const TOKEN_COOKIE: &str = "dropreel_token";
/// How long a stop waits for the server's connections to close.
const STOP_GRACE: Duration = Duration::from_millis(300);

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const ICON_SVG: &str = include_str!("assets/icon.svg");

/// Why the dashboard cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "ui: {0:?} is not an address to listen on; write it as 127.0.0.1:7878, 0.0.0.0:7878 or [::1]:7878"
    )]
    BadAddress(String),
    #[error(
        "the dashboard would listen on {0}, which other machines can reach, and ui.token is not set: set ui.token in dropreel.yaml (e.g. the output of `openssl rand -hex 16`), or listen on 127.0.0.1"
    )]
    NoToken(SocketAddr),
    #[error(
        "cannot listen on {addr} for the dashboard ({error}); is another program using that port? Pick another with --ui=ADDRESS:PORT"
    )]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// What every request handler shares.
struct App {
    root: PathBuf,
    live: Live,
    /// Set: every request must carry it.
    token: Option<String>,
    /// Listening on loopback: requests must name a loopback host (or the public origin's).
    loopback: bool,
    /// `ui.public_origin`, as a browser sends it in `Origin` (`https://reels.example.com`).
    public_origin: Option<String>,
    max_upload: u64,
    budget: crate::config::BudgetSection,
    /// The models the settings name: their limits at Runway are shown.
    models: Vec<String>,
    spend: SpendLog,
    backend: &'static str,
    /// Cancelled at a stop: ends the event streams, so the server can close.
    stop: CancellationToken,
}

type Shared = Arc<App>;

/// A running dashboard.
pub struct Dashboard {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Dashboard {
    /// Starts serving on `listen` (or `ui.listen`, or [`crate::config::UI_DEFAULT_LISTEN`]): the
    /// studio of `settings`, as `live` shows it. Must run inside the Tokio runtime.
    pub async fn start(
        settings: &Settings,
        listen: Option<&str>,
        live: Live,
        backend: &'static str,
    ) -> Result<Dashboard, StartError> {
        let ui: &UiSection = &settings.config.ui;
        let text = listen
            .filter(|l| !l.is_empty())
            .or(ui.listen.as_deref())
            .unwrap_or(crate::config::UI_DEFAULT_LISTEN);
        let addr = crate::config::parse_listen(text)
            .ok_or_else(|| StartError::BadAddress(text.to_string()))?;
        let loopback = addr.ip().is_loopback();
        if !loopback && ui.token.is_none() {
            return Err(StartError::NoToken(addr));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|error| StartError::Bind { addr, error })?;
        let addr = listener.local_addr().unwrap_or(addr);
        live.watch_board();
        // What done/ and failed/ hold is read beside the pipeline's start, not before it (a big
        // done/ takes a while to walk); what is delivered meanwhile stays above it.
        let (root, shown) = (settings.root.clone(), live.clone());
        tokio::task::spawn_blocking(move || {
            let (results, failed) = board::found_on_disk(&root);
            shown.preload(results, failed);
            actions::clear_stale_uploads(&root);
        });
        let stop = CancellationToken::new();
        let app = Arc::new(App {
            root: settings.root.clone(),
            live,
            token: ui.token.clone(),
            loopback,
            public_origin: ui
                .public_origin
                .as_deref()
                .and_then(crate::config::web_origin),
            max_upload: ui.max_upload_mb.saturating_mul(1024 * 1024),
            budget: settings.config.budget.clone(),
            models: crate::backend::runway::organization::models_named(&settings.config),
            spend: SpendLog::new(&settings.root),
            backend,
            stop: stop.clone(),
        });
        let router = router(app);
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the dashboard stopped serving");
            }
        });
        tracing::info!(url = %format!("http://{addr}/"), "dashboard listening");
        Ok(Dashboard { stop, task })
    }

    /// Stops serving: open pages lose their connection (and say so).
    pub async fn stop(self) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route("/icon.svg", get(|| asset("image/svg+xml", ICON_SVG)))
        .route("/favicon.ico", get(|| asset("image/svg+xml", ICON_SVG)))
        .route("/events", get(board::events))
        .route("/api/state", get(board::state))
        .route("/metrics", get(metrics))
        .route("/media/{job}/{name}", get(actions::media))
        .route("/api/retry/{job}", post(actions::retry))
        .route("/api/upload", post(actions::upload))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The page; `/?token=…` (the link to give someone) sets the token's cookie and drops it from the
/// address bar.
async fn index(State(app): State<Shared>, request: Request) -> Response {
    if let Some(token) = query_token(&request)
        && app.token.as_deref().is_some_and(|t| same(t, &token))
    {
        let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
        return (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/".to_string()),
                (header::SET_COOKIE, cookie),
            ],
        )
            .into_response();
    }
    asset("text/html; charset=utf-8", INDEX_HTML).await
}

async fn metrics(State(app): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::observe::metrics::get().text(&app.live),
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Every request passes here: the host check (loopback), the token, the origin of a POST; and
/// every answer gets headers that keep the page to its own content.
async fn guard(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let public = app.public_origin.as_deref();
    if app.loopback && app.token.is_none() && !loopback_host(&host) && !public_host(public, &host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this dashboard answers only requests for a loopback address (127.0.0.1, localhost, [::1]) or the host of ui.public_origin",
        );
    }
    if let Some(token) = &app.token {
        let carried = bearer(headers).or_else(|| cookie(headers)).or_else(|| {
            (request.uri().path() == "/")
                .then(|| query_token(&request))
                .flatten()
        });
        if !carried.is_some_and(|c| same(token, &c)) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this dashboard needs its token: open it as http://HOST:PORT/?token=… (ui.token in dropreel.yaml), or send Authorization: Bearer …",
            );
        }
    }
    if request.method() == Method::POST && !same_origin(headers, &host, public) {
        return refuse(
            StatusCode::FORBIDDEN,
            "a change must come from the dashboard's own page (its Origin does not match; behind a proxy, set ui.public_origin to the address the page is opened at)",
        );
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{why}\n"),
    )
        .into_response()
}

/// `Host: 127.0.0.1:7878`, `localhost:7878`, `[::1]:7878`.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `host` (a `Host` header) names the public origin's host and port (a proxy in front
/// that passes the browser's `Host` on).
fn public_host(public: Option<&str>, host: &str) -> bool {
    public
        .and_then(|p| p.split_once("://"))
        .is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host))
}

/// A POST's origin is the page's: the browser says so (`Sec-Fetch-Site: same-origin`, which no
/// script in a browser can set, whatever the `Origin` — a TLS proxy makes it `https://…`), or
/// its `Origin` is `http://<Host>` or `ui.public_origin`. A request with neither (a script) is
/// refused: it can send one.
fn same_origin(headers: &HeaderMap, host: &str, public: Option<&str>) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|s| s.as_bytes() == b"same-origin")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    (!host.is_empty() && origin == format!("http://{host}"))
        || public.is_some_and(|p| crate::config::web_origin(origin).as_deref() == Some(p))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_string)
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == TOKEN_COOKIE).then(|| v.to_string())
        })
}

fn query_token(request: &Request) -> Option<String> {
    request.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "token").then(|| v.to_string())
    })
}

/// Compares a secret in time that does not depend on where it differs.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_and_origins() {
        for h in [
            "127.0.0.1:7878",
            "localhost:1",
            "LOCALHOST",
            "[::1]:7878",
            "127.0.0.2:80",
        ] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "evil.example:7878",
            "192.168.1.2:7878",
            "",
            "[::2]:1",
            "localhost.evil.example:7878",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
        let mut headers = HeaderMap::new();
        let here = "127.0.0.1:7878";
        assert!(!same_origin(&headers, here, None), "neither header");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7878"),
        );
        assert!(same_origin(&headers, here, None));
        assert!(!same_origin(&headers, "127.0.0.1:7879", None));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers, here, None));
        // Behind a TLS proxy.
        let public = Some("https://reels.example.com");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://REELS.example.com:443"),
        );
        assert!(!same_origin(&headers, here, None));
        assert!(same_origin(&headers, here, public));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://reels.example.com.evil.example"),
        );
        assert!(!same_origin(&headers, here, public));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers, here, public));
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&headers, here, None), "the browser's word");
        assert!(public_host(public, "Reels.Example.com"));
        assert!(!public_host(public, "reels.example.com:8443"));
        assert!(!public_host(None, "reels.example.com"));
        assert!(!public_host(public, ""));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
