//! dropreel's integration tests, as one test binary (one link, shared support): the real pipeline
//! in process and the real binary, against the fake Runway API, in temp folders.

mod support;

mod budget;
mod catalog;
mod cli;
mod dashboard;
mod dedupe;
mod estimate;
mod faults;
mod folders;
mod fuzz;
mod holds;
mod hostile;
mod inputs;
mod intake;
mod keyframes;
mod local;
mod notify;
mod organization;
mod pipeline;
mod posters;
mod prices;
mod progress;
mod reliability;
mod secrets;
mod text;
mod variants;
mod video;
