//! The `dropreel` command: argument parsing, logging setup, dispatch and exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use clap::{Parser, Subcommand, ValueEnum};
use dropreel::backend::{self, Backend as _};
use dropreel::cli::{demo, status};
use dropreel::config::{self, Env, Settings};
use dropreel::run::pipeline::{self, Mode};
use dropreel::studio::spool;

/// Turn images, text and videos dropped into a folder into short AI videos.
///
/// Drop an image, a .txt (its text is the prompt), a video (.mp4 .mov .webm), or two stills
/// (<name>.png and <name>.last.png) into ROOT/inbox/ or a folder in it, optionally with a
/// <name>.yaml holding the settings; dropreel makes a video of it and moves everything into
/// ROOT/done/, or into ROOT/failed/ with a <name>.error.txt that says what to fix.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Settings file (default: ROOT/dropreel.yaml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Say more (-v: details, -vv: everything).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Say only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log as plain text lines or as one JSON object per line (for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
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
enum ServiceAction {
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
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The live view: `run` and `watch` with text logs on a terminal (colour not turned off).
    let view = (matches!(cli.command, Command::Run { .. } | Command::Watch { .. })
        && matches!(cli.log_format, LogFormat::Text)
        && dropreel::observe::progress::escapes_wanted())
    .then(indicatif::MultiProgress::new);
    init_logging(&cli, view.clone());
    let code = match &cli.command {
        Command::Init { root, examples } => init(&cli, &root_or_cwd(root), *examples),
        Command::Status { root } => match check_root(&cli, &root_or_cwd(root)).and_then(|()| {
            status::report(&root_or_cwd(root))
                .map_err(|e| fatal(&cli, &format!("cannot read the studio: {e}")))
        }) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(code) => code,
        },
        Command::Retry { root, names } => retry(&cli, root, names),
        Command::Estimate { root, json } => estimate(&cli, &root_or_cwd(root), *json),
        Command::Service { action } => service(&cli, action),
        // `--ui 0.0.0.0:7878` reads the address as the studio: say how to write it.
        Command::Watch {
            root: Some(r),
            ui: Some(u),
        } if u.is_empty() && !r.exists() && r.to_str().and_then(config::parse_listen).is_some() => {
            fatal(
                &cli,
                &format!(
                    "{} looks like an address, not a studio: write it as --ui={}",
                    r.display(),
                    r.display()
                ),
            )
        }
        Command::Watch { root, ui } => serve(
            &cli,
            &root_or_cwd(root),
            Mode::Watch,
            false,
            ui.as_deref(),
            view,
        ),
        Command::Run { root, examples } => {
            serve(&cli, &root_or_cwd(root), Mode::Run, *examples, None, view)
        }
    };
    ExitCode::from(code)
}

/// The studio's settings for a command that works on it; the exit code (said) when there is no
/// studio at `root` or its settings do not pass the check.
fn load_settings(cli: &Cli, root: &Path) -> Result<Settings, u8> {
    check_root(cli, root)?;
    Env::from_process(root)
        .and_then(|env| Settings::load(root, cli.config.as_deref(), &env))
        .map_err(|e| fatal(cli, &e.to_string()))
}

fn estimate(cli: &Cli, root: &Path, json: bool) -> u8 {
    let settings = match load_settings(cli, root) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match dropreel::cli::estimate::estimate(&settings) {
        Ok(e) if json => match serde_json::to_string_pretty(&e) {
            Ok(text) => {
                println!("{text}");
                0
            }
            Err(err) => fatal(cli, &err.to_string()),
        },
        Ok(e) => {
            print!("{}", dropreel::cli::estimate::text(&e, root));
            0
        }
        Err(e) => fatal(cli, &format!("cannot estimate: {e:#}")),
    }
}

fn service(cli: &Cli, action: &ServiceAction) -> u8 {
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
            Ok(exe) => dropreel::cli::service::install(&root, &exe),
            Err(e) => return fatal(cli, &format!("cannot find dropreel's own path: {e}")),
        },
        ServiceAction::Uninstall { .. } => dropreel::cli::service::uninstall(&root),
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

fn retry(cli: &Cli, root: &Option<PathBuf>, names: &[String]) -> u8 {
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
    let out = match dropreel::cli::retry::retry(root, names) {
        Ok(out) => out,
        Err(e) => return fatal(cli, &format!("cannot put failed jobs back: {e}")),
    };
    for files in &out.moved {
        let shown: Vec<String> = files
            .iter()
            .map(|f| dropreel::shown(f).into_owned())
            .collect();
        println!("back in inbox/: {}", shown.join(", "));
    }
    for (stem, why) in &out.skipped {
        println!(
            "skipped {}: {}",
            dropreel::shown(stem),
            dropreel::shown(why)
        );
    }
    for name in &out.unknown {
        println!("no failed job named {}", dropreel::shown(name));
    }
    if out.moved.is_empty() && out.skipped.is_empty() && out.unknown.is_empty() {
        println!("failed/ holds no failed job");
    }
    u8::from(!out.skipped.is_empty() || !out.unknown.is_empty())
}

/// Reports an error that stops dropreel before or outside the pipeline, in the chosen log format
/// (one JSON object with `--log-format json`, so log collectors see it), and returns exit code 2.
fn fatal(cli: &Cli, message: &str) -> u8 {
    match cli.log_format {
        LogFormat::Json => tracing::error!("{message}"),
        LogFormat::Text => eprintln!("dropreel: {}", dropreel::shown(message)),
    }
    2
}

/// Checks that `root` is a studio (or an empty folder, made into one); else says why and what to
/// do, and gives exit code 2.
fn check_root(cli: &Cli, root: &Path) -> Result<(), u8> {
    spool::check_root(root)
        .map(drop)
        .map_err(|e| fatal(cli, &e.explain(&invoked_as())))
}

/// The command as the user runs it, for advice: `dropreel`, or from a checkout through
/// `cargo run` (which sets `CARGO_PKG_NAME` for the program it runs) the same through cargo.
fn invoked_as() -> String {
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

fn root_or_cwd(root: &Option<PathBuf>) -> PathBuf {
    root.clone().unwrap_or_else(|| PathBuf::from("."))
}

/// Logging: `-q`/`-v`/`-vv` when given (flags win), else `DROPREEL_LOG` (a filter such as
/// `debug`), else info. Colour only on a terminal, never with `NO_COLOR` or `TERM=dumb`.
fn init_logging(cli: &Cli, view: Option<indicatif::MultiProgress>) {
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
    let ansi = dropreel::observe::progress::escapes_wanted();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(dropreel::observe::progress::AboveView(view));
    // Text lines escape control characters in every field (a file name with a newline cannot forge
    // a line); JSON escapes them by itself.
    let escaped = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = dropreel::shown(&text);
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

fn init(cli: &Cli, root: &Path, examples: bool) -> u8 {
    if let Err(code) = create_studio(cli, root) {
        return code;
    }
    if examples && let Err(e) = copy_examples(root, None) {
        return fatal(cli, &e);
    }
    println!(
        "studio ready at {0}\n  drop images into {0}/inbox/ and run: {1} watch {0}",
        root.display(),
        invoked_as()
    );
    0
}

/// Makes `root` a studio: its four folders, a commented `dropreel.yaml` (an existing one is left as
/// it is) and a folder in `inbox/` for each preset of the settings.
fn create_studio(cli: &Cli, root: &Path) -> Result<(), u8> {
    if let Err(e) = spool::Spool::create(root) {
        return Err(fatal(
            cli,
            &format!(
                "cannot create the studio folders in {}: {e}",
                root.display()
            ),
        ));
    }
    let path = root.join(config::FILE_NAME);
    if path.exists() {
        println!("{} already exists; left as it is", path.display());
    } else if let Err(e) = std::fs::write(&path, config::TEMPLATE) {
        return Err(fatal(cli, &format!("cannot write {}: {e}", path.display())));
    } else {
        println!("wrote {}", path.display());
    }
    // A folder in inbox/ for each preset of the settings (when they can be read).
    if let Ok(c) = config::parse_file(&path) {
        for name in c.presets.keys() {
            let dir = root.join(dropreel::studio::layout::INBOX).join(name);
            match std::fs::create_dir_all(&dir) {
                Ok(()) => println!("preset folder {}", dir.display()),
                Err(e) => return Err(fatal(cli, &format!("cannot create {}: {e}", dir.display()))),
            }
        }
    }
    Ok(())
}

/// Puts the example files into `inbox/`. With `quiet_for`, they are dated that far back: they
/// are whole the moment they are written, so `run --examples` need not wait for them to settle.
fn copy_examples(root: &Path, quiet_for: Option<std::time::Duration>) -> Result<(), String> {
    let copied = spool::Spool::open(root).and_then(|s| demo::copy_into(&s.inbox(), quiet_for));
    match copied {
        Ok(n) => {
            println!(
                "put {n} example files into {}",
                root.join(dropreel::studio::layout::INBOX).display()
            );
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot copy the example images into {}: {e}",
            root.display()
        )),
    }
}

fn serve(
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
    let config = settings
        .config_path
        .as_ref()
        .map_or("built-in defaults".into(), |p| p.display().to_string());
    let command = match mode {
        Mode::Watch => "watch",
        Mode::Run => "run",
    };
    let backend = match backend::Chosen::build(&settings) {
        Ok(b) => b,
        Err(e) => return fatal(cli, &e.to_string()),
    };
    tracing::info!(
        root = %root.display(),
        backend = backend.name(),
        setup = %backend.setup(&settings),
        config = %config,
        "dropreel {command} started"
    );
    let live = dropreel::observe::live::Live::default();
    // The dashboard: `watch --ui`, or `ui.listen` set.
    let dashboard = if mode == Mode::Watch && (ui.is_some() || settings.config.ui.listen.is_some())
    {
        let started = rt.block_on(dropreel::observe::dashboard::Dashboard::start(
            &settings,
            ui,
            live.clone(),
            backend.name(),
        ));
        match started {
            Ok(d) => Some(d),
            Err(e) => return fatal(cli, &e.to_string()),
        }
    } else {
        None
    };
    let view = view.map(|bars| dropreel::observe::progress::View::start(live.clone(), bars));
    let result = rt.block_on(pipeline::run_shown(&settings, backend, mode, stop, live));
    if let Some(v) = view {
        v.stop();
    }
    if let Some(d) = dashboard {
        rt.block_on(d.stop());
    }
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
                succeeded = summary.succeeded,
                failed = summary.failed,
                undelivered = summary.undelivered,
                exit_code = code,
                "dropreel stopped"
            );
            code
        }
        Err(e) => fatal(cli, &format!("{e:#}")),
    }
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// The stop signal, registered at once — not when first awaited — so a stop that arrives while
/// dropreel starts up is not lost. The signal's number is stored in `which` (for the exit code).
/// Unix: SIGTERM or SIGINT (Ctrl-C). Windows: Ctrl-C or Ctrl-Break (as SIGINT), closing the
/// console window, logging off or shutting down (as SIGTERM).
fn shutdown_signal(
    rt: &tokio::runtime::Runtime,
    which: Arc<AtomicI32>,
) -> impl Future<Output = ()> + use<> {
    let _entered = rt.enter();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            let got = match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => SIGTERM,
                        _ = int.recv() => SIGINT,
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                    SIGINT
                }
            };
            which.store(got, Ordering::SeqCst);
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows;
        let c = windows::ctrl_c();
        let brk = windows::ctrl_break();
        let close = windows::ctrl_close();
        let logoff = windows::ctrl_logoff();
        let shutdown = windows::ctrl_shutdown();
        async move {
            let got = match (c, brk, close, logoff, shutdown) {
                (Ok(mut c), Ok(mut brk), Ok(mut close), Ok(mut logoff), Ok(mut shutdown)) => {
                    tokio::select! {
                        _ = c.recv() => SIGINT,
                        _ = brk.recv() => SIGINT,
                        _ = close.recv() => SIGTERM,
                        _ = logoff.recv() => SIGTERM,
                        _ = shutdown.recv() => SIGTERM,
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                    SIGINT
                }
            };
            which.store(got, Ordering::SeqCst);
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        async move {
            let _ = tokio::signal::ctrl_c().await;
            which.store(SIGINT, Ordering::SeqCst);
        }
    }
}
