//! The `dropreel` command: argument parsing, logging setup, dispatch and exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use dropreel::config::{self, BackendChoice, Env, Settings};
use dropreel::pipeline::{self, Mode};
use dropreel::{backend, demo, spool, status};

/// Turn images dropped into a folder into short AI videos.
///
/// Drop a PNG, JPEG or WebP into ROOT/inbox/ (optionally with a <name>.yaml holding the prompt);
/// dropreel makes a video of it and moves everything into ROOT/done/, or into ROOT/failed/ with a
/// <name>.error.txt that says what to fix.
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
    /// Keep watching inbox/ and process every image that arrives, until stopped (Ctrl-C).
    Watch {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
    },
    /// Process what is in inbox/ now, wait until all of it is done, then exit.
    ///
    /// Exit codes: 0 all succeeded, 1 some ended in failed/, 2 cannot work (bad settings or
    /// folders), 3 the API refused the key (nothing is moved to failed/).
    Run {
        /// The studio folder (default: the current folder).
        root: Option<PathBuf>,
        /// First put a few example images of ours (one with a sidecar) into inbox/.
        #[arg(long)]
        examples: bool,
    },
    /// Show how many files each folder holds and the jobs in flight.
    Status {
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
    init_logging(&cli);
    let code = match &cli.command {
        Command::Init { root, examples } => init(&root_or_cwd(root), *examples),
        Command::Status { root } => match status::report(&root_or_cwd(root)) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("dropreel: cannot read the studio: {e}");
                2
            }
        },
        Command::Watch { root } => serve(&cli, &root_or_cwd(root), Mode::Watch, false),
        Command::Run { root, examples } => serve(&cli, &root_or_cwd(root), Mode::Run, *examples),
    };
    ExitCode::from(code)
}

fn root_or_cwd(root: &Option<PathBuf>) -> PathBuf {
    root.clone().unwrap_or_else(|| PathBuf::from("."))
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    // Other crates stay at warn: their debug output may carry request details.
    let filter = EnvFilter::try_from_env("DROPREEL_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,dropreel={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn init(root: &Path, examples: bool) -> u8 {
    if let Err(e) = spool::Spool::open(root) {
        eprintln!(
            "dropreel: cannot create the studio folders in {}: {e}",
            root.display()
        );
        return 2;
    }
    let path = root.join(config::FILE_NAME);
    if path.exists() {
        println!("{} already exists; left as it is", path.display());
    } else if let Err(e) = std::fs::write(&path, config::TEMPLATE) {
        eprintln!("dropreel: cannot write {}: {e}", path.display());
        return 2;
    } else {
        println!("wrote {}", path.display());
    }
    if examples && let Err(code) = copy_examples(root) {
        return code;
    }
    println!(
        "studio ready at {0}\n  drop images into {0}/inbox/ and run: dropreel watch {0}",
        root.display()
    );
    0
}

fn copy_examples(root: &Path) -> Result<(), u8> {
    match spool::Spool::open(root).and_then(|s| demo::copy_into(&s.inbox())) {
        Ok(n) => {
            println!(
                "put {n} example files into {}",
                root.join(spool::INBOX).display()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "dropreel: cannot copy the example images into {}: {e}",
                root.display()
            );
            Err(2)
        }
    }
}

fn serve(cli: &Cli, root: &Path, mode: Mode, examples: bool) -> u8 {
    let settings = match Env::from_process(root)
        .and_then(|env| Settings::load(root, cli.config.as_deref(), &env))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dropreel: {e}");
            return 2;
        }
    };
    if examples && let Err(code) = copy_examples(root) {
        return code;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dropreel: cannot start: {e}");
            return 2;
        }
    };
    let stop = shutdown_signal(&rt);
    let config = settings
        .config_path
        .as_ref()
        .map_or("built-in defaults".into(), |p| p.display().to_string());
    let command = match mode {
        Mode::Watch => "watch",
        Mode::Run => "run",
    };
    let result = match settings.backend() {
        BackendChoice::Runway => {
            let backend = match backend::build(&settings, mode == Mode::Run) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("dropreel: {e}");
                    return 2;
                }
            };
            tracing::info!(
                root = %root.display(),
                backend = "runway",
                model = %settings.config.defaults.model,
                max_in_flight = settings.config.runway.max_in_flight,
                config = %config,
                "dropreel {command} started"
            );
            rt.block_on(pipeline::run(&settings, backend, mode, stop))
        }
        choice => {
            if choice != settings.config.backend {
                tracing::warn!(
                    "No Runway API key is set (RUNWAYML_API_SECRET): using the LOCAL motion renderer, which animates \
                     each image with a camera move, without AI. Set the key to generate with Runway."
                );
            }
            tracing::info!(
                root = %root.display(),
                backend = "local",
                fps = settings.config.local.fps,
                config = %config,
                "dropreel {command} started"
            );
            let backend = backend::local::Local::new(&settings);
            rt.block_on(pipeline::run(&settings, backend, mode, stop))
        }
    };
    // Jobs still finishing a step are abandoned here; their state is on disk.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(summary) => {
            tracing::info!(
                succeeded = summary.succeeded,
                failed = summary.failed,
                "dropreel stopped"
            );
            if summary.key_refused.is_some() {
                3
            } else if mode == Mode::Run && summary.failed > 0 {
                1
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("dropreel: {e:#}");
            2
        }
    }
}

/// The stop signal (SIGTERM or Ctrl-C), registered at once — not when first awaited — so a stop
/// that arrives while dropreel starts up is not lost.
fn shutdown_signal(rt: &tokio::runtime::Runtime) -> impl std::future::Future<Output = ()> + use<> {
    let _entered = rt.enter();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
