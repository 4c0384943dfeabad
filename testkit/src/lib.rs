//! Test support for dropreel, shared by its integration tests and its benchmarks (a dev-only crate,
//! never shipped): the fake Runway API, a webhook receiver, image and video makers and studios in
//! temp folders.

pub mod fake_api;
pub mod hook;
pub mod images;
pub mod studio;
pub mod videos;

pub use fake_api::*;
pub use hook::*;
pub use images::*;
pub use studio::*;
pub use videos::*;

/// A port free on 127.0.0.1 now (for a server the test starts in another process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
