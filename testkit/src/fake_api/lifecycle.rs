//! The fake's lifecycle: started on a free port of 127.0.0.1, stopped (the host becomes
//! unreachable), restarted on the same port, its switches changed while it runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use super::handlers::{
    create_image, create_text, create_video, delete_task, fallback, file, task, upload_target,
    uploads,
};
use super::organization::organization;
use super::{FakeRunway, Inner, Switches};

impl FakeRunway {
    /// Starts the fake on 127.0.0.1 with these switches.
    pub async fn start(sw: Switches) -> FakeRunway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            sw,
            ..Inner::default()
        }));
        let fake = FakeRunway {
            inner,
            url,
            server: Arc::new(Mutex::new(None)),
        };
        fake.serve(listener);
        fake
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/v1/image_to_video", post(create_image))
            .route("/v1/text_to_video", post(create_text))
            .route("/v1/video_to_video", post(create_video))
            .route("/v1/tasks/{id}", get(task).delete(delete_task))
            .route("/v1/organization", get(organization))
            .route("/v1/uploads", post(uploads))
            .route("/upload-target/{n}", post(upload_target))
            .route("/files/{id}", get(file))
            .fallback(fallback)
            .layer(axum::extract::DefaultBodyLimit::max(210 * 1024 * 1024))
            .with_state(self.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        *self.server.lock().unwrap() = Some((tx, handle));
    }

    /// Stops serving: connections are closed and new ones refused (the host is unreachable).
    pub async fn stop(&self) {
        let Some((tx, handle)) = self.server.lock().unwrap().take() else {
            return;
        };
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
    }

    /// Serves again on the same port, with the same tasks and switches.
    pub async fn restart(&self) {
        let addr = self.url.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        self.serve(listener);
    }

    /// Changes the switches.
    pub fn set(&self, f: impl FnOnce(&mut Switches)) {
        f(&mut self.inner.lock().unwrap().sw);
    }
}
