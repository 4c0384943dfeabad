//! dropreel watches a studio folder and turns each image dropped into `inbox/` into a short video,
//! moving the results into `done/` and bad inputs into `failed/` with a plain explanation.
//!
//! # Layout
//! One file's journey: [`intake`] (is the file complete? which sidecar?) hands out a [`source`] →
//! [`admit`] checks it with no slot taken ([`media`] for the bytes, [`job`] and [`sidecar`] for what
//! to generate, checked against [`models`]) and claims it into `processing/` ([`spool`], durable
//! [`record`]s, [`lease`]s between instances) → [`jobs`] runs one task per job: the [`backend`]
//! produces the MP4 (Runway: submit, poll, download; or the local renderer), then the job is
//! delivered to `done/` or failed to `failed/`, with the files from [`report`]. [`pipeline`] is the
//! event loop that drives it all, [`recover`] takes over jobs a stop or a crash left, [`follow`]
//! applies edits of `dropreel.yaml` ([`config`]); [`status`] reads a studio for `dropreel status`,
//! with what each running instance writes in its [`instance`] file; [`demo`] holds the example
//! images of `--examples`.
// Library code handles its errors; tests and examples may unwrap (the shared lint rules are in
// Cargo.toml).
#![warn(clippy::unwrap_used)]

pub mod admit;
pub mod backend;
pub mod config;
pub mod convert;
pub mod dashboard;
pub mod demo;
pub mod estimate;
pub mod events;
pub mod follow;
pub mod instance;
pub mod intake;
pub mod job;
pub mod jobs;
pub mod lease;
pub mod ledger;
pub mod live;
pub mod media;
pub mod metrics;
pub mod models;
pub mod notify;
pub mod pipeline;
pub mod preview;
pub mod progress;
pub mod record;
pub mod recover;
pub mod report;
pub mod retry;
pub mod service;
pub mod sidecar;
pub mod source;
pub mod spool;
pub mod status;
pub mod variants;
pub mod video;

use std::borrow::Cow;

/// `name` as it may appear in a text log line: control characters (a newline, an escape
/// sequence) are written as escapes, so a file name can neither forge a log line nor drive the
/// terminal.
pub fn shown(name: &str) -> Cow<'_, str> {
    if !name.chars().any(char::is_control) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}
