//! The studio's files on disk, and the only code that writes them: [`layout`] (every folder and
//! file name, a leaf), [`durable`] (atomic, fsynced writes), [`clock`] (the one RFC 3339 format),
//! [`spool`] (the folders as a
//! durable queue: `processing/`, `job.json`, the moves into `done/` and `failed/`), [`record`] (what
//! `job.json` holds), [`report`] (`result.json` and `error.txt`), [`lease`] (which instance drives a
//! job), [`instance`] (each running instance's status file), [`source`] (a file's place under
//! `inbox/` and the preset its folder names) and [`ledger`] (what the studio remembers under
//! `.dropreel/`: dedupe and spend).

pub mod clock;
pub mod durable;
pub mod instance;
pub mod layout;
pub mod lease;
pub mod ledger;
pub mod record;
pub mod report;
pub mod source;
pub mod spool;
