//! dropreel watches a studio folder and turns each image, text or video dropped into `inbox/` into a
//! short video, moving the results into `done/` and bad inputs into `failed/` with a plain
//! explanation. What it does for its users is in `README.md` and `docs/`; how it is built, in
//! `docs/architecture.md`.
//!
//! # Source map
//!
//! The folders are the layers; a module uses the ones above it in this list's order of
//! dependence (`cli` and `run` at the top, the studio's files and media at the bottom). The links
//! are checked (CI builds these docs with `-D warnings`), so a module renamed or moved without this
//! map breaks the build. A private submodule (`names`, `gate`, `board` …) is named here and linked
//! from its parent's page (`cargo doc --no-deps --document-private-items` shows them all).
//!
//! - [`cli`]: the command line, which `src/main.rs` parses and hands to [`cli::run`] —
//!   [`cli::args`] (the flags and commands), [`cli::logging`] (and the live view), [`cli::exit`]
//!   (exit code 2 and the checks of ROOT), [`cli::init`], [`cli::serve`] (`run` and `watch`, with
//!   [`cli::signal`]), [`cli::commands`] printing the others: [`cli::status`], [`cli::estimate`],
//!   [`cli::retry`], [`cli::service`], [`cli::models`]; [`cli::demo`] holds the `--examples` files.
//! - [`config`]: the settings and the environment, checked at start.
//! - [`run`]: running the studio. [`run::pipeline`]: the event loop, one method per event;
//!   `take` (admission in batches, the lazy claim) and `react` (each event) are its parts;
//!   [`run::admit`]: the checks that need no slot, then the claim; [`run::jobs`]: one task per job —
//!   hash the inputs, look them up in the dedupe ledger, let the backend produce, deliver, or fail by
//!   the one route to `failed/` (a task that panics fails its job); [`run::variants`] drives a job's
//!   takes; [`run::recover`]: the jobs a stop, a crash or a dead instance left; [`run::follow`]:
//!   edits of `dropreel.yaml` while `watch` runs; [`run::serve`](mod@run::serve) composes a
//!   running service (settings → backend → pipeline, with the dashboard) for the command line and
//!   the in-process tests.
//! - [`intake`]: the inbox → ready files: the stability check; `scan` (the full look, one file's
//!   event), `pairing` (with a sidecar and a last keyframe), `whole` (files not whole yet), `names`
//!   (the ignore rules and what kind a name is), `watcher` (OS events, or polling).
//! - [`backend`]: the [`Backend`](backend::Backend) trait, the shared [`Fault`](backend::Fault)
//!   policy, `slots` (how many jobs at once, in all and per model) and `gate` (the pause of
//!   submission on a systemic fault); `scripted` (tests only) is a backend whose jobs follow a test's script, for the
//!   pipeline's paused-clock tests.
//!   - [`backend::runway`]: the steps (submit here; `poll` polls and downloads; `inputs` is what
//!     each kind of job sends); [`backend::runway::api`] (HTTP and typed tasks), `faults` (what each error means), `queue` (task times and Runway's queue order),
//!     [`backend::runway::schedule`] (when to poll), [`backend::runway::organization`] (the
//!     organisation's balance and limits: each model's slots, the daily and balance holds).
//!   - [`backend::local`]: the local renderer; [`backend::local::render`] (decode, frame, move),
//!     [`backend::local::title`] (a text's title card), [`backend::local::yuv`] (RGB → I420),
//!     [`backend::local::encode`] (H.264, MP4).
//! - [`job`]: what to generate — the kind and spec; [`job::sidecar`] (the YAML beside a file),
//!   [`job::models`] (the catalog keyed by model and endpoint, read from `assets/runway/` and a
//!   studio's `models:`).
//! - [`media`]: what a file is, from its bytes — an image's format, wholeness, size and decoding;
//!   [`media::video`] (with `webm`) a video's container, wholeness and length;
//!   [`media::convert`] turns a GIF, BMP or TIFF into the PNG sent; [`media::preview`] makes the
//!   posters; [`media::frames`] decodes an H.264 MP4's frames (posters, tests, the bench).
//! - [`studio`]: the studio's files, and the only code that writes them — [`studio::layout`]
//!   (every folder and file name, the names a finished job has in `done/` and `failed/`; a leaf),
//!   [`studio::durable`] (atomic, fsynced writes), [`studio::clock`] (the one RFC 3339 format),
//!   [`studio::spool`] (the
//!   folders as a durable queue: `processing/`, `job.json`, the moves into `done/` and `failed/`),
//!   [`studio::record`] (what `job.json` holds), [`studio::report`] (`result.json`, `error.txt`),
//!   [`studio::lease`] (which instance drives a job), [`studio::instance`] (each instance's status
//!   file), [`studio::source`] (a file's folder under `inbox/` and its preset), [`studio::ledger`]
//!   (what the studio remembers under `.dropreel/`: [`studio::ledger::dedupe`],
//!   [`studio::ledger::spend`], [`studio::ledger::prices`]).
//! - [`observe`]: telling what happens — [`observe::events`] → [`observe::notify`] (the outbox and
//!   its senders); [`observe::live`] → [`observe::progress`] (the terminal) and
//!   [`observe::dashboard`] (`watch --ui`: the server and its security; `board`: the state sent to
//!   the page; `actions`: media, Retry, uploads; `assets/`: the page), with [`observe::metrics`].
//!   [`shown`] escapes a file name for a log line.
// Library code handles its errors; tests and examples may unwrap (the shared lint rules are in
// Cargo.toml).
#![warn(clippy::unwrap_used)]

pub mod backend;
pub mod cli;
pub mod config;
pub mod intake;
pub mod job;
pub mod media;
pub mod observe;
pub mod run;
pub mod studio;

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
