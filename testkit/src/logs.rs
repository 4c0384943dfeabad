//! The library's logs in the test process: shown when `DROPREEL_TEST_LOG` asks for them, and
//! captured while a test watches them ([`LogWatch`]), so a test can wait for the line that proves
//! an attempt happened instead of sleeping.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How many [`LogWatch`]es are alive: the capture costs nothing while none is.
static WATCHERS: AtomicUsize = AtomicUsize::new(0);
/// Every line captured while a watch was alive (all tests of the process: match on names).
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Initialises test logging once (RUST_LOG-style filter in DROPREEL_TEST_LOG), with the capture.
pub fn logs() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("DROPREEL_TEST_LOG").unwrap_or_else(|_| "off".into());
        let shown = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(tracing_subscriber::EnvFilter::new(filter));
        let captured = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| Capture(Vec::new()))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                WATCHERS.load(Ordering::Relaxed) > 0
                    && meta.target().starts_with("dropreel")
                    && *meta.level() <= tracing_subscriber::filter::LevelFilter::DEBUG
            }));
        let _ = tracing_subscriber::registry()
            .with(shown)
            .with(captured)
            .try_init();
    });
}

/// One formatted event, added to [`LINES`] when the formatter is done with it.
struct Capture(Vec<u8>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.0).trim_end().to_string();
        if !line.is_empty() {
            LINES.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }
}

/// The library's log lines (debug and up) from its creation on, while it lives.
pub struct LogWatch {
    from: usize,
}

impl LogWatch {
    pub fn start() -> LogWatch {
        logs();
        WATCHERS.fetch_add(1, Ordering::SeqCst);
        let from = LINES.lock().unwrap_or_else(|e| e.into_inner()).len();
        LogWatch { from }
    }

    /// The lines captured since the start that contain every one of `needles`.
    pub fn lines(&self, needles: &[&str]) -> Vec<String> {
        let lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
        lines[self.from..]
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .cloned()
            .collect()
    }

    /// Completes when `n` lines hold every one of `needles`; fails the test after `limit`.
    #[track_caller]
    pub fn until(&self, needles: &[&str], n: usize, limit: Duration) -> impl Future<Output = ()> {
        let what = format!("{n} log line(s) with {needles:?}");
        crate::until(&what, limit, move || self.lines(needles).len() >= n)
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        WATCHERS.fetch_sub(1, Ordering::SeqCst);
    }
}
