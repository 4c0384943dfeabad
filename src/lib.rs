//! dropreel watches a studio folder and turns each image dropped into `inbox/` into a short video,
//! moving the results into `done/` and bad inputs into `failed/` with a plain explanation.
//!
//! # Layout
//! One file's journey: [`intake`] (is the file complete? which sidecar?) → [`job`] (what to generate,
//! checked against [`models`]) → [`spool`] (claim into `processing/`, durable state, [`lease`]s
//! between instances) → [`backend`] (Runway: submit, poll, download; or the local renderer) →
//! [`spool`] again (deliver to `done/` or fail to `failed/`, with the
//! files from [`report`]). [`pipeline`] drives it all; [`config`] is `dropreel.yaml` and the
//! environment; [`status`] reads a studio for `dropreel status`, with what each running
//! instance writes in its [`instance`] file; [`demo`] holds the example
//! images of `--examples`.
#![warn(clippy::unwrap_used)]

pub mod admit;
pub mod backend;
pub mod config;
pub mod demo;
pub mod follow;
pub mod instance;
pub mod intake;
pub mod job;
pub mod jobs;
pub mod lease;
pub mod media;
pub mod models;
pub mod pipeline;
pub mod record;
pub mod recover;
pub mod report;
pub mod sidecar;
pub mod source;
pub mod spool;
pub mod status;

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
