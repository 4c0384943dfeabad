//! Telling what happens, never deciding it: [`events`] (delivered, failed, hold, resumed) →
//! [`notify`] (the outbox, its webhook and command senders); [`live`] (what goes on now) →
//! [`progress`] (the terminal's live view) and [`dashboard`] (`watch --ui`), with [`metrics`] (the
//! counters of `/metrics`).

pub mod dashboard;
pub mod events;
pub mod live;
pub mod metrics;
pub mod notify;
pub mod progress;
