//! Running the studio: [`pipeline`] (the event loop, one method per event), [`admit`] (the checks
//! before a claim, then the claim), [`jobs`] (one task per job: dedupe, produce, deliver or fail),
//! [`variants`] (a job's several takes), [`recover`] (what a stop, a crash or a dead instance left)
//! and [`follow`] (edits of `dropreel.yaml` while `watch` runs); [`serve`](mod@serve) composes a
//! running service of them (settings → backend → pipeline, with the dashboard).

pub mod admit;
pub mod follow;
pub mod jobs;
pub mod pipeline;
pub mod recover;
pub mod serve;
pub mod variants;

pub use serve::serve;
