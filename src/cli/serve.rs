//! `dropreel run` and `dropreel watch` on the command line: the studio `run --examples` makes and
//! fills, the settings, the runtime and its stop signals ([`crate::cli::signal`]), the composed
//! service ([`crate::run::serve()`]) and the exit code it ends with.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::cli::args::Cli;
use crate::cli::exit::{fatal, invoked_as, load_settings};
use crate::cli::init::{copy_examples, create_studio};
use crate::cli::signal::shutdown_signal;
use crate::run::pipeline::Mode;
use crate::studio::spool;

/// Runs the studio at `root` in `mode` until done or stopped; the exit code.
pub fn serve(
    cli: &Cli,
    root: &Path,
    mode: Mode,
    examples: bool,
    ui: Option<&str>,
    view: Option<indicatif::MultiProgress>,
) -> u8 {
    // `run --examples` is the README's first command: it makes its studio when the folder does not
    // exist yet (or is empty), as `init` would.
    if examples {
        match spool::check_root(root) {
            Ok(spool::RootKind::Studio) => {}
            Ok(spool::RootKind::Empty) | Err(spool::RootError::Missing(_)) => {
                if let Err(code) = create_studio(cli, root) {
                    return code;
                }
            }
            Err(e) => return fatal(cli, &e.explain(&invoked_as())),
        }
    }
    let settings = match load_settings(cli, root) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if examples {
        let w = &settings.config.watch;
        if let Err(e) = copy_examples(root, Some(w.settle + w.sidecar_wait)) {
            return fatal(cli, &e);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fatal(cli, &format!("cannot start: {e}")),
    };
    let signal = Arc::new(AtomicI32::new(0));
    let stop = shutdown_signal(&rt, signal.clone());
    let result = rt.block_on(crate::run::serve(&settings, mode, ui, view, stop));
    // Jobs still finishing a step are abandoned here; their state is on disk.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(summary) => {
            let signal = match signal.load(Ordering::SeqCst) {
                0 => None,
                s => Some(s),
            };
            let code = summary.exit_code(mode, signal);
            tracing::info!(
                target: "dropreel",
                succeeded = summary.succeeded,
                failed = summary.failed,
                undelivered = summary.undelivered,
                exit_code = code,
                "dropreel stopped"
            );
            code
        }
        Err(e) => fatal(cli, &e.to_string()),
    }
}
