//! The stop signals of `run` and `watch`: SIGTERM or SIGINT (Ctrl-C) on Unix; Ctrl-C, Ctrl-Break,
//! closing the console, logging off or shutting down on Windows. Which one came decides the exit
//! code (128 + its number).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

/// The stop signal, registered at once — not when first awaited — so a stop that arrives while
/// dropreel starts up is not lost. The signal's number is stored in `which` (for the exit code).
/// Unix: SIGTERM or SIGINT (Ctrl-C). Windows: Ctrl-C or Ctrl-Break (as SIGINT), closing the
/// console window, logging off or shutting down (as SIGTERM).
pub fn shutdown_signal(
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
