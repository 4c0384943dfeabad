//! The command line. [`run`] takes the parsed [`args::Cli`], sets up [`logging`] and runs the
//! command: `run` and `watch` through [`serve`] (the studio composed by [`crate::run::serve()`],
//! with the stop [`signal`]s), `init` through [`init`], the others through [`commands`], which print
//! for a person at a terminal what [`status`] (what runs, what waits, what failed), [`estimate`]
//! (what a folder would cost), [`retry`] (a failed job back into the inbox) and [`service`] (install
//! dropreel as a user service) return; [`demo`] holds the files `--examples` drops; [`exit`] says
//! why a command cannot work, with exit code 2.

pub mod args;
pub mod commands;
pub mod demo;
pub mod estimate;
pub mod exit;
pub mod init;
pub mod logging;
pub mod models;
pub mod retry;
pub mod serve;
pub mod service;
pub mod signal;
pub mod status;

use std::process::ExitCode;

use crate::cli::args::{Cli, Command};
use crate::cli::exit::{fatal, root_or_cwd};
use crate::config;
use crate::run::pipeline::Mode;

/// Runs the command `cli` holds; its exit code.
pub fn run(cli: &Cli) -> ExitCode {
    let view = logging::live_view(cli);
    logging::init(cli, view.clone());
    let code = match &cli.command {
        Command::Init { root, examples } => init::init(cli, &root_or_cwd(root), *examples),
        Command::Status { root } => commands::status(cli, &root_or_cwd(root)),
        Command::Retry { root, names } => commands::retry(cli, root, names),
        Command::Estimate { root, json } => commands::estimate(cli, &root_or_cwd(root), *json),
        Command::Service { action } => commands::service(cli, action),
        Command::Models {
            root,
            json,
            markdown,
        } => commands::models(cli, root.as_deref(), *json, *markdown),
        // `--ui 0.0.0.0:7878` reads the address as the studio: say how to write it.
        Command::Watch {
            root: Some(r),
            ui: Some(u),
        } if u.is_empty() && !r.exists() && r.to_str().and_then(config::parse_listen).is_some() => {
            fatal(
                cli,
                &format!(
                    "{} looks like an address, not a studio: write it as --ui={}",
                    r.display(),
                    r.display()
                ),
            )
        }
        Command::Watch { root, ui } => serve::serve(
            cli,
            &root_or_cwd(root),
            Mode::Watch,
            false,
            ui.as_deref(),
            view,
        ),
        Command::Run { root, examples } => {
            serve::serve(cli, &root_or_cwd(root), Mode::Run, *examples, None, view)
        }
    };
    ExitCode::from(code)
}
