//! The commands besides `run` and `watch`, each printing for a person at a terminal: [`status`]
//! (what runs, what waits, what failed), [`estimate`] (what a folder would cost), [`retry`] (a
//! failed job back into the inbox), [`service`] (install dropreel as a user service), and [`demo`]
//! (the files `run --examples` drops).

pub mod demo;
pub mod estimate;
pub mod retry;
pub mod service;
pub mod status;
