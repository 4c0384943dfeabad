//! dropreel watches a studio folder and turns each image, text or video dropped into `inbox/` into a
//! short video, moving the results into `done/` and bad inputs into `failed/` with a plain
//! explanation. What it does for its users is in `README.md` and `docs/`; how it is built, in
//! `docs/architecture.md`.
//!
//! # Source map
//!
//! Every module, in the order one file travels. The links are checked (CI builds these docs with
//! `-D warnings`), so a module renamed or moved without this map breaks the build. A private
//! submodule (`names`, `gate`, `board` …) is named here and linked from its parent's page, where the
//! link is checked the same way (`cargo doc --no-deps --document-private-items` shows them all).
//!
//! ## From `inbox/` to a claimed job
//!
//! - [`intake`]: the inbox → ready files: the stability check, the pairing with a sidecar and a last
//!   keyframe; `names` (the ignore rules and what kind a name is), `watcher` (OS events, or
//!   polling). Each ready file is a [`source`]: its folder under `inbox/`, the preset that folder
//!   names, its name.
//! - [`admit`]: the checks that need no slot, then the claim — [`media`] for an image's format,
//!   wholeness, size against the backend's limits and decoding; [`video`] (with `webm`) for a
//!   video's container, wholeness and length; [`job`] for the kind and spec, [`sidecar`] for the YAML
//!   beside the file, [`models`] for the catalog keyed by model and endpoint.
//! - [`spool`]: the studio's folders as a durable queue — `processing/`, `job.json` written
//!   atomically, the moves into `done/` and `failed/`; [`record`] is what `job.json` holds, [`lease`]
//!   which instance drives a job.
//!
//! ## Making the video
//!
//! - [`jobs`]: one task per job — hash the inputs, look them up in the dedupe ledger, let the backend
//!   produce, deliver, or fail by the one route to `failed/` (a task that panics fails its job);
//!   [`variants`] drives the takes of a job.
//! - [`backend`]: the [`Backend`](backend::Backend) trait, the shared [`Fault`](backend::Fault)
//!   policy, `slots` (how many jobs at once) and `gate` (the pause of submission on a systemic
//!   fault).
//!   - [`backend::runway`]: the steps (submit, poll, download); [`backend::runway::api`] (HTTP and
//!     typed tasks), `faults` (what each error means), `queue` (task times and Runway's queue order),
//!     [`backend::runway::schedule`] (when to poll). [`convert`] turns a GIF, BMP or TIFF into the
//!     PNG sent.
//!   - [`backend::local`]: the local renderer; [`backend::local::render`] (decode, frame, move),
//!     [`backend::local::title`] (a text's title card), [`backend::local::encode`] (YUV, H.264, MP4).
//! - [`ledger`]: what the studio remembers under `.dropreel/` — [`ledger::dedupe`] (reuse an earlier
//!   video, remember a refusal) and [`ledger::spend`] (the budget's log).
//! - [`preview`] makes the posters and [`report`] writes `result.json` and `error.txt`; then
//!   [`spool`] delivers.
//!
//! ## Telling what happens
//!
//! - [`events`] (delivered, failed, hold, resumed) → [`notify`] (the outbox and its webhook and
//!   command senders).
//! - [`live`] (what goes on now) → [`progress`] (the live view on a terminal) and [`dashboard`]
//!   (`watch --ui`: the server and its security; `board`: the state sent to the page; `actions`:
//!   media, Retry, uploads; `src/dashboard/assets/`: the page), with [`metrics`] (the counters of
//!   `/metrics`).
//! - [`instance`]: each running instance's status file, read by [`status`].
//!
//! ## Driving it all
//!
//! - [`pipeline`]: the event loop, one method per event; [`recover`]: the jobs a stop, a crash or a
//!   dead instance left; [`follow`]: edits of `dropreel.yaml` while `watch` runs; [`config`]: the
//!   settings and the environment, checked at start.
//! - The other commands: [`status`], [`estimate`], [`retry`], [`service`]; [`demo`] holds the
//!   `--examples` files. `src/main.rs` parses the arguments, sets up logging and gives the exit codes;
//!   [`shown`] escapes a file name for a log line.
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
