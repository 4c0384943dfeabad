//! The command line as clap reads it: the global flags ([`Cli`]), the commands ([`Command`]) and
//! their arguments. The help texts are the doc comments here.

// The doc comments are clap's help, written for a terminal (`<name>.png` is no HTML tag).
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Turn images, text and videos dropped into a folder into short AI videos.
///
/// Drop an image, a .txt (its text is the prompt), a video (.mp4 .mov .webm), or two stills
/// (<name>.png and <name>.last.png) into ROOT/inbox/ or a folder in it, optionally with a
/// <name>.yaml holding the settings; dropreel makes a video of it and moves everything into
/// ROOT/done/, or into ROOT/failed/ with a <name>.error.txt that says what to fix.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Settings file (default: ROOT/dropreel.yaml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Say more (-v: details, -vv: everything).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Say only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log as plain text lines or as one JSON object per line (for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a studio: inbox/, processing/, done/, failed/ and a commented dropreel.yaml.
    Init {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
        /// Also put a few example images of ours (one with a sidecar) into inbox/.
        #[arg(long)]
        examples: bool,
    },
    /// Keep watching inbox/ and process every file that arrives, until stopped (Ctrl-C).
    Watch {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
        /// Also serve the dashboard, a live web page of the studio: on ADDR when given
        /// (`--ui=0.0.0.0:7878`; any address but loopback needs ui.token), else on ui.listen of
        /// dropreel.yaml, else on 127.0.0.1:7878. Set ui.listen to serve it without this flag.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, require_equals = true, default_missing_value = "")]
        ui: Option<String>,
    },
    /// Process what is in inbox/ now, wait until all of it is done, then exit.
    ///
    /// Exit codes: 0 all succeeded, 1 some ended in failed/ or could not be delivered, 2 cannot
    /// work (bad settings, no studio at ROOT, folders on different file systems), 3 the API refused
    /// the key (nothing is moved to failed/), 4 the budget holds submission and nothing else is in
    /// flight (the rest waits for the next run), 128 + the signal when stopped (130 Ctrl-C, 143
    /// SIGTERM).
    Run {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
        /// First put a few example images of ours (one with a sidecar) and a text into inbox/;
        /// a ROOT that does not exist yet (or an empty folder) is made a studio first, as by init.
        #[arg(long)]
        examples: bool,
    },
    /// Show how many files each folder holds and the jobs in flight.
    Status {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
    },
    /// Price what inbox/ holds now, without sending anything: per kind and model the jobs,
    /// videos, seconds, credits and US$; what would be reused (0) or fail, and why; the budget left.
    ///
    /// Exit codes: 0, or 2 for a bad config or no studio at ROOT.
    Estimate {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// List the models jobs can name: each with its endpoints, ratios, durations, last-keyframe
    /// support and price; the studio's own (`models:` in dropreel.yaml) and the legacy ones marked.
    ///
    /// Reads ROOT's dropreel.yaml (or --config) when given or when the current folder is a studio;
    /// else lists the catalog as shipped. Exit codes: 0, or 2 for a bad config.
    Models {
        /// The studio folder (default: the current folder, when it is one).
        root: Option<PathBuf>,
        /// Every field of every model, as JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// The Markdown table the README carries.
        #[arg(long)]
        markdown: bool,
    },
    /// Run `dropreel watch ROOT` as a user service (systemd on Linux, launchd on macOS), or remove it.
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Put failed jobs back into inbox/ (with their sidecar and last keyframe), removing their
    /// error.txt. Never overwrites a file in inbox/.
    ///
    /// Exit codes: 0 every job named (or, without names, every failed job) is back in inbox/,
    /// 1 some were skipped or a name matched no failed job, 2 no studio at ROOT.
    Retry {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
        /// Failed jobs to put back, by stem (`cat`) or by any of their file names (`cat.png`);
        /// all of failed/ when none is given.
        names: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ServiceAction {
    /// Write the service (absolute paths, restart on failure), start it, and say where its logs are.
    Install {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
    },
    /// Stop and remove the service of this studio.
    Uninstall {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
