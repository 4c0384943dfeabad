//! Test support for dropreel, shared by its integration tests and its benchmarks (a dev-only crate,
//! never shipped): the fake Runway API, a webhook receiver, image makers and studios in temp folders.

pub mod fake_api;
pub mod hook;
pub mod images;
pub mod studio;

pub use fake_api::*;
pub use hook::*;
pub use images::*;
pub use studio::*;
