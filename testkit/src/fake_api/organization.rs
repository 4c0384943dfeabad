//! The fake's `GET /v1/organization`: the organisation's balance, its tier's limits per model and
//! today's generations (those it was told of, plus the tasks the fake made of each model), with
//! switches to refuse the request or answer with any body; and the daily limit enforced on create
//! (429), as the real API does. Its requests are counted apart from [`super::FakeRunway::seen`],
//! so a test about the job path sees only the job path.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::handlers::err;
use super::{FakeRunway, Inner};

/// What `GET /v1/organization` answers.
#[derive(Debug, Clone)]
pub struct Organization {
    /// `creditBalance`; `None` answers `null`.
    pub balance: Option<u64>,
    /// Per model: (`maxConcurrentGenerations`, `maxDailyGenerations`); `None` answers `null`.
    /// A model not listed is not in the answer.
    pub limits: BTreeMap<String, (Option<u64>, Option<u64>)>,
    /// Per model: generations in the last 24 h before the fake's own tasks (which are added).
    pub used: BTreeMap<String, u64>,
    /// Answer this error status instead (401, 403, 500 …).
    pub status: Option<u16>,
    /// Answer exactly this body instead (a partial or malformed answer).
    pub body: Option<Value>,
}

impl Default for Organization {
    fn default() -> Self {
        Organization {
            balance: Some(1_000_000),
            limits: BTreeMap::new(),
            used: BTreeMap::new(),
            status: None,
            body: None,
        }
    }
}

impl Organization {
    /// Sets `model`'s limits.
    pub fn limit(&mut self, model: &str, concurrent: Option<u64>, daily: Option<u64>) {
        self.limits.insert(model.to_string(), (concurrent, daily));
    }
}

impl Inner {
    /// Generations of `model` in the window: those the switches say, plus the fake's own tasks.
    fn daily_used(&self, model: &str) -> u64 {
        let own = self.made.get(model).copied().unwrap_or(0);
        self.sw.organization.used.get(model).copied().unwrap_or(0) + own
    }

    /// Whether a create of `model` passes the daily limit (it is then refused with 429).
    pub(super) fn over_daily(&mut self, model: &str) -> bool {
        let max = self.sw.organization.limits.get(model).and_then(|(_, d)| *d);
        let over = max.is_some_and(|m| self.daily_used(model) >= m);
        if over {
            self.quota_refusals += 1;
        }
        over
    }

    /// A task of `model` was made: counted in its daily generations, and the tasks unfinished at
    /// this moment are counted for [`FakeRunway::max_in_flight`].
    pub(super) fn made_one(&mut self, model: &str) {
        *self.made.entry(model.to_string()).or_default() += 1;
        let now = std::time::Instant::now();
        let unfinished = self
            .tasks
            .values()
            .filter(|t| !t.cancelled && t.finish.is_none_or(|f| f > now))
            .count();
        self.max_in_flight = self.max_in_flight.max(unfinished);
    }

    fn organization(&self) -> Value {
        let o = &self.sw.organization;
        let n = |v: Option<u64>| v.map_or(Value::Null, Value::from);
        let mut tier = Map::new();
        for (model, (c, d)) in &o.limits {
            tier.insert(
                model.clone(),
                json!({"maxConcurrentGenerations": n(*c), "maxDailyGenerations": n(*d)}),
            );
        }
        let mut usage = Map::new();
        for model in o.limits.keys().chain(o.used.keys()).chain(self.made.keys()) {
            usage.insert(
                model.clone(),
                json!({"dailyGenerations": self.daily_used(model)}),
            );
        }
        json!({
            "creditBalance": n(o.balance),
            "tier": {"maxMonthlyCreditSpend": 100_000, "models": tier},
            "usage": {"models": usage},
        })
    }
}

impl FakeRunway {
    /// `GET /v1/organization` requests received.
    pub fn organization_requests(&self) -> usize {
        self.inner.lock().unwrap().organization_requests
    }

    /// Create requests refused with 429 for the daily limit of `Switches::organization`.
    pub fn quota_refusals(&self) -> usize {
        self.inner.lock().unwrap().quota_refusals
    }

    /// The most tasks made and not finished at once, as seen when each task was made.
    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().unwrap().max_in_flight
    }
}

pub(super) async fn organization(State(f): State<FakeRunway>, headers: HeaderMap) -> Response {
    f.latency().await;
    f.inner.lock().unwrap().organization_requests += 1;
    if let Err(r) = f.check_auth(&headers) {
        return r;
    }
    let inner = f.inner.lock().unwrap();
    let o = &inner.sw.organization;
    if let Some(s) = o.status {
        let status = StatusCode::from_u16(s).unwrap();
        return err(status, "organization refused (a switch of the fake)");
    }
    if let Some(b) = &o.body {
        return axum::Json(b.clone()).into_response();
    }
    axum::Json(inner.organization()).into_response()
}
