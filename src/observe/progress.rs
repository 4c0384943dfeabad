//! The live view on a terminal: while `run` or `watch` works, one line per job in flight (its file,
//! kind, step, Runway's progress as a bar, time since it was taken up) under a total line (done,
//! failed, in flight, waiting, ETA), redrawn ten times a second from [`Live`] (once a second when
//! idle); log lines print above it. Only on a terminal, without `NO_COLOR` and with text logs: anywhere else the output is
//! plain log lines with no escape codes.

use std::collections::HashMap;
use std::io::{self, IsTerminal as _, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::observe::live::{JobView, Live, Snapshot};

/// How often the view is redrawn while jobs are in flight.
const TICK: Duration = Duration::from_millis(100);
/// How often it looks while none is.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// The widest a file name is shown.
const NAME_WIDTH: usize = 32;

/// Whether escape codes may go to stderr — colour in text logs, and the live view: stderr is a
/// terminal and colour is not turned off (`NO_COLOR`, `TERM=dumb`).
pub fn escapes_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
        || std::env::var("TERM").is_ok_and(|t| t == "dumb");
    io::stderr().is_terminal() && !no_color
}

/// A log writer that prints above the live view when there is one (else straight to stderr):
/// each log line is written whole, with the view cleared and redrawn around it.
#[derive(Clone)]
pub struct AboveView(pub Option<MultiProgress>);

/// One log line on its way (see [`AboveView`]).
pub struct Line {
    view: Option<MultiProgress>,
    buf: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let write = || {
            let _ = io::stderr().lock().write_all(&self.buf);
        };
        match &self.view {
            Some(view) => view.suspend(write),
            None => write(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AboveView {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            view: self.0.clone(),
            buf: Vec::new(),
        }
    }
}

/// The running view; [`View::stop`] clears it.
pub struct View {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl View {
    /// Draws `live` into `bars` until stopped, on a thread of its own.
    pub fn start(live: Live, bars: MultiProgress) -> View {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || draw(&live, &bars, &flag))
            .ok();
        View { stop, thread }
    }

    /// Stops drawing and clears the view.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn draw(live: &Live, bars: &MultiProgress, stop: &AtomicBool) {
    let total = bars.add(ProgressBar::new_spinner());
    total.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
    let mut shown: HashMap<String, (ProgressBar, bool)> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let snap = live.snapshot();
        for (id, job) in &snap.jobs {
            let (bar, with_bar) = shown.entry(id.clone()).or_insert_with(|| {
                let bar = bars.insert_before(&total, ProgressBar::new(100));
                bar.set_style(style(false));
                (bar, false)
            });
            show_job(bar, with_bar, job);
        }
        shown.retain(|id, (bar, _)| {
            let gone = !snap.jobs.iter().any(|(j, _)| j == id);
            if gone {
                bar.finish_and_clear();
                bars.remove(bar);
            }
            !gone
        });
        total.set_message(totals(&snap));
        if snap.jobs.is_empty() {
            // Nothing moves: no spinner, and a look once a second (an idle `watch` stays idle).
            std::thread::sleep(IDLE_TICK);
        } else {
            total.tick();
            std::thread::sleep(TICK);
        }
    }
    for (bar, _) in shown.values() {
        bar.finish_and_clear();
    }
    total.finish_and_clear();
    let _ = bars.clear();
}

/// A job's line: name, kind and step; a bar while Runway reports progress; time since taken up.
fn style(with_bar: bool) -> ProgressStyle {
    let template = if with_bar {
        "  {prefix} {msg} [{bar:24.cyan/blue}] {percent:>3}% {elapsed:>4}"
    } else {
        "  {prefix} {msg} {elapsed:>4}"
    };
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}

fn show_job(bar: &ProgressBar, with_bar: &mut bool, job: &JobView) {
    let wants_bar = job.progress.is_some();
    if wants_bar != *with_bar {
        bar.set_style(style(wants_bar));
        *with_bar = wants_bar;
    }
    bar.set_prefix(format!("{:<NAME_WIDTH$}", fit(&job.name, NAME_WIDTH)));
    bar.set_message(format!("{:<5} {:<18}", job.kind, job.step));
    if let Some(p) = job.progress {
        bar.set_position((p * 100.0).round().clamp(0.0, 100.0) as u64);
    }
}

/// The total line.
fn totals(s: &Snapshot) -> String {
    let eta = s.eta.map_or(String::new(), |d| {
        format!(" · about {} left", humantime::format_duration(round_s(d)))
    });
    format!(
        "done {} · failed {} · in flight {} · waiting {}{eta}",
        s.done,
        s.failed,
        s.jobs.len(),
        s.waiting
    )
}

fn round_s(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
}

/// `name` cut to `width` characters, with `…` in the middle when cut (the end of a file name
/// tells it apart more often than its start).
fn fit(name: &str, width: usize) -> String {
    let shown = crate::shown(name);
    let chars: Vec<char> = shown.chars().collect();
    if chars.len() <= width {
        return shown.into_owned();
    }
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_keep_their_start_and_end() {
        assert_eq!(fit("cat.png", 10), "cat.png");
        let cut = fit("clientA/shoot 1/a very long file name.png", 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(
            cut.starts_with("clientA/") && cut.ends_with("name.png"),
            "{cut}"
        );
    }

    #[test]
    fn the_total_line_says_what_is_left() {
        let s = Snapshot {
            done: 3,
            failed: 1,
            waiting: 7,
            eta: Some(Duration::from_millis(61_600)),
            ..Snapshot::default()
        };
        assert_eq!(
            totals(&s),
            "done 3 · failed 1 · in flight 0 · waiting 7 · about 1m 2s left"
        );
    }
}
