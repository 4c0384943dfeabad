//! A running service composed: the settings → the backend they choose → the pipeline, with the
//! dashboard (`watch --ui`, or `ui.listen` set) and the terminal's live view around it, until the
//! inbox is drained (`run`) or `stop` completes. The command line ([`crate::cli`]) and the
//! in-process tests call [`serve`]; how a stop is asked for (signals, a test's channel) is theirs.

use std::future::Future;

use crate::backend::{self, Backend as _};
use crate::config::Settings;
use crate::observe::dashboard::{Dashboard, StartError};
use crate::observe::live::Live;
use crate::observe::progress::View;
use crate::run::pipeline::{self, Mode, Summary};

/// Why the service could not run. The messages are the ones `dropreel` prints.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The backend the settings choose cannot be set up.
    #[error("{0}")]
    Backend(anyhow::Error),
    /// The dashboard cannot listen.
    #[error(transparent)]
    Dashboard(#[from] StartError),
    /// The pipeline could not start or stopped on an error (the whole chain is said).
    #[error("{0:#}")]
    Pipeline(anyhow::Error),
}

/// Runs the studio of `settings` in `mode` until done (`run`) or `stop` completes. The dashboard
/// starts for a `watch` given `ui` (an address, or `""` for the settings' or the default one) or
/// with `ui.listen` set; `bars`, when given, get the live view drawn into them.
pub async fn serve(
    settings: &Settings,
    mode: Mode,
    ui: Option<&str>,
    bars: Option<indicatif::MultiProgress>,
    stop: impl Future<Output = ()>,
) -> Result<Summary, ServeError> {
    let config = settings
        .config_path
        .as_ref()
        .map_or("built-in defaults".into(), |p| p.display().to_string());
    let command = match mode {
        Mode::Watch => "watch",
        Mode::Run => "run",
    };
    let backend = backend::Chosen::build(settings).map_err(ServeError::Backend)?;
    tracing::info!(
        target: "dropreel",
        root = %settings.root.display(),
        backend = backend.name(),
        setup = %backend.setup(settings),
        config = %config,
        "dropreel {command} started"
    );
    let live = Live::default();
    let dashboard = if mode == Mode::Watch && (ui.is_some() || settings.config.ui.listen.is_some())
    {
        Some(Dashboard::start(settings, ui, live.clone(), backend.name()).await?)
    } else {
        None
    };
    let view = bars.map(|bars| View::start(live.clone(), bars));
    let result = pipeline::run_shown(settings, backend, mode, stop, live).await;
    if let Some(v) = view {
        // Its thread may sleep a second before it sees the stop: not on the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || v.stop()).await;
    }
    if let Some(d) = dashboard {
        d.stop().await;
    }
    result.map_err(ServeError::Pipeline)
}
