//! How a command stops early, and the checks every command on a studio makes first: [`fatal`] says
//! why in the chosen log format and gives exit code 2; [`check_root`] (there is a studio at ROOT, or
//! an empty folder made into one) and [`load_settings`] (its settings pass the check) say what to do
//! when not; [`invoked_as`] is the command as the user runs it, for that advice.

use std::path::{Path, PathBuf};

use crate::cli::args::{Cli, LogFormat};
use crate::config::{Env, Settings};
use crate::studio::spool;

/// Reports an error that stops dropreel before or outside the pipeline, in the chosen log format
/// (one JSON object with `--log-format json`, so log collectors see it), and returns exit code 2.
pub fn fatal(cli: &Cli, message: &str) -> u8 {
    match cli.log_format {
        LogFormat::Json => tracing::error!(target: "dropreel", "{message}"),
        LogFormat::Text => eprintln!("dropreel: {}", crate::shown(message)),
    }
    2
}

/// Checks that `root` is a studio (or an empty folder, made into one); else says why and what to
/// do, and gives exit code 2.
pub fn check_root(cli: &Cli, root: &Path) -> Result<(), u8> {
    spool::check_root(root)
        .map(drop)
        .map_err(|e| fatal(cli, &e.explain(&invoked_as())))
}

/// The studio's settings for a command that works on it; the exit code (said) when there is no
/// studio at `root` or its settings do not pass the check.
pub fn load_settings(cli: &Cli, root: &Path) -> Result<Settings, u8> {
    check_root(cli, root)?;
    Env::from_process(root)
        .and_then(|env| Settings::load(root, cli.config.as_deref(), &env))
        .map_err(|e| fatal(cli, &e.to_string()))
}

/// The command as the user runs it, for advice: `dropreel`, or from a checkout through
/// `cargo run` (which sets `CARGO_PKG_NAME` for the program it runs) the same through cargo.
/// Both are read from the running process's environment, so this says the same from the library.
pub fn invoked_as() -> String {
    if std::env::var_os("CARGO").is_none()
        || std::env::var("CARGO_PKG_NAME").as_deref() != Ok("dropreel")
    {
        return "dropreel".into();
    }
    let release = std::env::current_exe()
        .ok()
        .is_some_and(|exe| exe.components().any(|c| c.as_os_str() == "release"));
    if release {
        "cargo run --release --".into()
    } else {
        "cargo run --".into()
    }
}

/// The studio folder given, or the current folder.
pub fn root_or_cwd(root: &Option<PathBuf>) -> PathBuf {
    root.clone().unwrap_or_else(|| PathBuf::from("."))
}
