//! Logging and the live view: [`live_view`] decides whether `run` and `watch` draw their progress
//! lines on the terminal, [`init`] sets up `tracing` (the level from `-q`/`-v`/`-vv` or
//! `DROPREEL_LOG`, text or JSON lines, printed above the live view when there is one).

use crate::cli::args::{Cli, Command, LogFormat};
use crate::observe::progress;

/// The live view's bars: for `run` and `watch` with text logs on a terminal (colour not turned
/// off); `None` otherwise.
pub fn live_view(cli: &Cli) -> Option<indicatif::MultiProgress> {
    (matches!(cli.command, Command::Run { .. } | Command::Watch { .. })
        && matches!(cli.log_format, LogFormat::Text)
        && progress::escapes_wanted())
    .then(indicatif::MultiProgress::new)
}

/// Logging: `-q`/`-v`/`-vv` when given (flags win), else `DROPREEL_LOG` (a filter such as
/// `debug`), else info. Colour only on a terminal, never with `NO_COLOR` or `TERM=dumb`.
pub fn init(cli: &Cli, view: Option<indicatif::MultiProgress>) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::field::MakeExt as _;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => Some("warn"),
        (false, 0) => None,
        (false, 1) => Some("debug"),
        _ => Some("trace"),
    };
    // Other crates stay at warn: their debug output may carry request details.
    let filter = match level {
        Some(level) => EnvFilter::new(format!("warn,dropreel={level}")),
        None => EnvFilter::try_from_env("DROPREEL_LOG")
            .unwrap_or_else(|_| EnvFilter::new("warn,dropreel=info")),
    };
    let ansi = progress::escapes_wanted();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::AboveView(view));
    // Text lines escape control characters in every field (a file name with a newline cannot forge
    // a line); JSON escapes them by itself.
    let escaped = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = crate::shown(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ");
    match cli.log_format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(ansi)
            .fmt_fields(escaped)
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
