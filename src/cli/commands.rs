//! The short commands as the command line runs them: each checks the studio, calls its module
//! ([`crate::cli::status`], [`crate::cli::estimate`], [`crate::cli::service`], [`crate::cli::retry`]),
//! prints what it did and gives the exit code.

use std::path::{Path, PathBuf};

use crate::cli::args::{Cli, ServiceAction};
use crate::cli::exit::{check_root, fatal, load_settings, root_or_cwd};
use crate::shown;
use crate::studio::spool;

/// `dropreel status`: the folders' counts and the jobs in flight.
pub fn status(cli: &Cli, root: &Path) -> u8 {
    match check_root(cli, root).and_then(|()| {
        crate::cli::status::report(root)
            .map_err(|e| fatal(cli, &format!("cannot read the studio: {e}")))
    }) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(code) => code,
    }
}

/// `dropreel models`: the catalog of the studio at `root` (or of the current folder when it is a
/// studio, or as shipped), as a table, JSON or Markdown.
pub fn models(cli: &Cli, root: Option<&Path>, json: bool, markdown: bool) -> u8 {
    let here = Path::new(".");
    let studio = match root {
        Some(r) => Some(r),
        None if cli.config.is_some() || here.join(crate::config::FILE_NAME).is_file() => Some(here),
        None => None,
    };
    let models = match studio {
        Some(r) => match load_settings(cli, r) {
            Ok(s) => s.models,
            Err(code) => return code,
        },
        None => crate::job::models::Models::built_in(),
    };
    if json {
        match serde_json::to_string_pretty(&crate::cli::models::entries(&models)) {
            Ok(text) => println!("{text}"),
            Err(e) => return fatal(cli, &e.to_string()),
        }
    } else if markdown {
        print!("{}", crate::cli::models::markdown(&models));
    } else {
        print!("{}", crate::cli::models::table(&models));
    }
    0
}

/// `dropreel estimate`: the table, or one JSON object with `--json`.
pub fn estimate(cli: &Cli, root: &Path, json: bool) -> u8 {
    let settings = match load_settings(cli, root) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match crate::cli::estimate::estimate(&settings) {
        Ok(e) if json => match serde_json::to_string_pretty(&e) {
            Ok(text) => {
                println!("{text}");
                0
            }
            Err(err) => fatal(cli, &err.to_string()),
        },
        Ok(e) => {
            print!("{}", crate::cli::estimate::text(&e, root));
            0
        }
        Err(e) => fatal(cli, &format!("cannot estimate: {e:#}")),
    }
}

/// `dropreel service install|uninstall`.
pub fn service(cli: &Cli, action: &ServiceAction) -> u8 {
    let (ServiceAction::Install { root } | ServiceAction::Uninstall { root }) = action;
    let root = root_or_cwd(root);
    if let Err(code) = check_root(cli, &root) {
        return code;
    }
    let root = match std::path::absolute(&root).and_then(|r| r.canonicalize()) {
        Ok(r) => r,
        Err(e) => return fatal(cli, &format!("cannot resolve {}: {e}", root.display())),
    };
    let report = match action {
        ServiceAction::Install { .. } => match std::env::current_exe() {
            Ok(exe) => crate::cli::service::install(&root, &exe),
            Err(e) => return fatal(cli, &format!("cannot find dropreel's own path: {e}")),
        },
        ServiceAction::Uninstall { .. } => crate::cli::service::uninstall(&root),
    };
    match report {
        Ok(report) => {
            for line in report.lines {
                println!("{line}");
            }
            0
        }
        Err(e) => fatal(cli, &e.to_string()),
    }
}

/// `dropreel retry [ROOT] [NAMES]`: 0 when every job named is back in `inbox/`, 1 when some were
/// skipped or unknown.
pub fn retry(cli: &Cli, root: &Option<PathBuf>, names: &[String]) -> u8 {
    // `cd studio; dropreel retry notes`: the first name is taken for the studio by the parser.
    let (root, names) = match root {
        Some(first)
            if !matches!(spool::check_root(first), Ok(spool::RootKind::Studio))
                && matches!(
                    spool::check_root(Path::new(".")),
                    Ok(spool::RootKind::Studio)
                ) =>
        {
            let mut all = vec![first.to_string_lossy().into_owned()];
            all.extend(names.iter().cloned());
            (PathBuf::from("."), all)
        }
        _ => (root_or_cwd(root), names.to_vec()),
    };
    let (root, names) = (root.as_path(), names.as_slice());
    if let Err(code) = check_root(cli, root) {
        return code;
    }
    let out = match crate::cli::retry::retry(root, names) {
        Ok(out) => out,
        Err(e) => return fatal(cli, &format!("cannot put failed jobs back: {e}")),
    };
    for files in &out.moved {
        let shown: Vec<String> = files.iter().map(|f| shown(f).into_owned()).collect();
        println!("back in inbox/: {}", shown.join(", "));
    }
    for (stem, why) in &out.skipped {
        println!("skipped {}: {}", shown(stem), shown(why));
    }
    for name in &out.unknown {
        println!("no failed job named {}", shown(name));
    }
    if out.moved.is_empty() && out.skipped.is_empty() && out.unknown.is_empty() {
        println!("failed/ holds no failed job");
    }
    u8::from(!out.skipped.is_empty() || !out.unknown.is_empty())
}
