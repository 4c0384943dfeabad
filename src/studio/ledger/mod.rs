//! What the studio remembers across jobs and instances, under `ROOT/.dropreel/`: the spend of each
//! create request against the budget, reconciled with what Runway charged ([`spend`]), the prices
//! Runway reported ([`prices`]) and the dedupe ledger that keeps one input with one
//! set of settings from being paid for twice ([`dedupe`]). All are plain files on the studio's own
//! filesystem, so every instance that watches the root sees the same figures.

pub mod dedupe;
pub mod prices;
pub mod spend;

/// `ROOT/.dropreel`: dropreel's own memory of a studio (see [`crate::studio::layout::OWN_DIR`]).
pub const DIR: &str = crate::studio::layout::OWN_DIR;
