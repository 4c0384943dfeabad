//! The counters `/metrics` serves (Prometheus text format): jobs by outcome, create requests sent
//! and those whose outcome was unknown, transient faults retried, holds by cause, credits by model;
//! and, read at each scrape from the live state, the jobs in flight and waiting. One set per
//! process, counted from its start.

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cause {
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Model {
    model: String,
}

/// The process's counters.
pub struct Metrics {
    registry: Registry,
    jobs: Family<Outcome, Counter>,
    submits: Counter,
    uncertain: Counter,
    retries: Counter,
    holds: Family<Cause, Counter>,
    credits: Family<Model, Counter<f64, AtomicU64>>,
    in_flight: Gauge,
    waiting: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let m = Metrics {
        jobs: Family::default(),
        submits: Counter::default(),
        uncertain: Counter::default(),
        retries: Counter::default(),
        holds: Family::default(),
        credits: Family::default(),
        in_flight: Gauge::default(),
        waiting: Gauge::default(),
        registry: Registry::default(),
    };
    registry.register(
        "dropreel_jobs",
        "Jobs ended, by outcome (delivered, partly_delivered, failed, undelivered)",
        m.jobs.clone(),
    );
    registry.register(
        "dropreel_submits",
        "Create requests sent to the API",
        m.submits.clone(),
    );
    registry.register(
        "dropreel_uncertain_submits",
        "Create requests whose outcome was unknown (each may have made a task that was never seen)",
        m.uncertain.clone(),
    );
    registry.register(
        "dropreel_retries",
        "Transient faults retried",
        m.retries.clone(),
    );
    registry.register(
        "dropreel_holds",
        "Pauses of submission begun, by cause (key, quota, outage, unreachable, budget)",
        m.holds.clone(),
    );
    registry.register(
        "dropreel_credits",
        "Credits of the videos delivered, by model (catalog price; 0 when reused)",
        m.credits.clone(),
    );
    registry.register(
        "dropreel_in_flight",
        "Jobs this instance drives now",
        m.in_flight.clone(),
    );
    registry.register(
        "dropreel_waiting",
        "Files checked and waiting for a claim",
        m.waiting.clone(),
    );
    Metrics { registry, ..m }
});

/// The process's counters.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// A job ended: `outcome` is `delivered`, `partly_delivered`, `failed` or `undelivered`.
    pub fn job_ended(&self, outcome: &str) {
        self.jobs
            .get_or_create(&Outcome {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn submitted(&self) {
        self.submits.inc();
    }

    pub fn uncertain_submit(&self) {
        self.uncertain.inc();
    }

    pub fn retried(&self) {
        self.retries.inc();
    }

    /// A pause of submission began for `cause`.
    pub fn hold(&self, cause: &str) {
        self.holds
            .get_or_create(&Cause {
                cause: cause.to_string(),
            })
            .inc();
    }

    /// A delivered job's videos cost `credits` on `model`.
    pub fn credits(&self, model: &str, credits: f64) {
        self.credits
            .get_or_create(&Model {
                model: model.to_string(),
            })
            .inc_by(credits);
    }

    /// The whole set in Prometheus text format, with the gauges as `live` shows them now.
    pub fn text(&self, live: &crate::observe::live::Live) -> String {
        let s = live.snapshot();
        self.in_flight.set(s.jobs.len() as i64);
        self.waiting.set(s.waiting as i64);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot write the metrics");
        }
        out
    }
}
