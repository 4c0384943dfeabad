//! Test support for dropreel, shared by its integration tests and its benchmarks (a dev-only crate,
//! never shipped): the fake Runway API, a webhook receiver, image and video makers, studios in
//! temp folders, waiting for what a test expects and the library's logs.

pub mod fake_api;
pub mod hook;
pub mod images;
pub mod logs;
pub mod studio;
pub mod videos;
pub mod wait;

pub use fake_api::*;
pub use hook::*;
pub use images::*;
pub use logs::*;
pub use studio::*;
pub use videos::*;
pub use wait::*;

/// A port free on 127.0.0.1 now (for a server the test starts in another process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
