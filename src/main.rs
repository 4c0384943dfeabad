//! The `dropreel` command: parses the arguments and runs them with the library's
//! [`dropreel::cli::run`], which sets up logging, runs the command and gives the exit code.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    dropreel::cli::run(&dropreel::cli::args::Cli::parse())
}
