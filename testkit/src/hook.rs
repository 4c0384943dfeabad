//! A webhook receiver on 127.0.0.1 for the notification tests: records every POST (headers and
//! body), answers 503 to the first `fail_first` of them, 422 to a body that holds a string it was
//! told to [`Hook::refuse`], or never answers while `stuck`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hooked {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// What it answered (0: it never did).
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    got: Vec<Hooked>,
    fail_first: usize,
    stuck: bool,
    /// A body holding one of these is answered 422 (a receiver that rejects that event for good).
    refused: Vec<String>,
}

/// The receiver; clones share it.
#[derive(Clone)]
pub struct Hook {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl Hook {
    /// Starts a receiver that answers 503 to its first `fail_first` requests, 200 after; when
    /// `stuck`, it never answers at all.
    pub async fn start(fail_first: usize, stuck: bool) -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hook = Hook {
            inner: Arc::new(Mutex::new(Inner {
                fail_first,
                stuck,
                ..Inner::default()
            })),
            url,
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        hook
    }

    /// Every request so far, in order.
    pub fn got(&self) -> Vec<Hooked> {
        self.inner.lock().unwrap().got.clone()
    }

    /// The bodies it answered 200 to, as JSON.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.got()
            .iter()
            .filter(|h| h.status == 200)
            .map(|h| serde_json::from_slice(&h.body).unwrap())
            .collect()
    }

    /// Answers 422 Unprocessable Entity to every body that holds `text`.
    pub fn refuse(&self, text: &str) {
        self.inner.lock().unwrap().refused.push(text.to_string());
    }

    /// Answers from now on (no longer stuck, no more failures).
    pub fn heal(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.stuck = false;
        inner.fail_first = 0;
    }
}

async fn receive(State(h): State<Hook>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let (stuck, status) = {
        let mut inner = h.inner.lock().unwrap();
        let refused = inner
            .refused
            .iter()
            .any(|r| String::from_utf8_lossy(&body).contains(r.as_str()));
        let status = if inner.stuck {
            0
        } else if refused {
            422
        } else if inner.got.iter().filter(|g| g.status != 0).count() < inner.fail_first {
            503
        } else {
            200
        };
        inner.got.push(Hooked {
            headers,
            body: body.to_vec(),
            status,
        });
        (inner.stuck, status)
    };
    if stuck {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(status).unwrap()
}
