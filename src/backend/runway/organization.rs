//! The organisation's own limits at Runway (`GET /v1/organization`): its credit balance, and per
//! model how many tasks run at once and how many may be made in a rolling 24 h. Asked at start and
//! every `runway.organization_every`, off the job path (a slow or failed answer delays nothing).
//!
//! What the answer decides: under `max_in_flight: auto` each model's bound in the [`Slots`]; a
//! model whose daily generations are used up holds its jobs before any create (one line; other
//! models go on); a balance too small for the next job holds submission like the budget does. The
//! creates of this studio that an answer may not count yet (not answered before it was asked for)
//! are counted on top of it, so a burst cannot pass a limit. A failed, refused or malformed answer changes nothing: a debug line, and dropreel works
//! as if it had never asked. The last answer is kept in `.dropreel/organization.json` for `status`
//! and the dashboard.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::api::Api;
use crate::backend::Slots;
use crate::config::{IN_FLIGHT_FALLBACK, InFlight};
use crate::studio::layout;

/// The in-flight bound of a model whose concurrency Runway reports as unlimited (`null`): the
/// concurrency of Runway's highest published tier.
pub const UNLIMITED_IN_FLIGHT: usize = 20;
/// The highest bound a number from the API is taken up to (as `max_in_flight` allows).
const MOST_IN_FLIGHT: usize = 100;

/// One limit as the API states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The member is missing or not a number: nothing is known.
    Unknown,
    /// `null`: no limit.
    Unlimited,
    At(u64),
}

impl Limit {
    fn of(v: &Value, key: &str) -> Limit {
        match v.get(key) {
            Some(Value::Null) => Limit::Unlimited,
            Some(n) => n.as_u64().map_or(Limit::Unknown, Limit::At),
            None => Limit::Unknown,
        }
    }

    fn shown(self) -> String {
        match self {
            Limit::Unknown => "?".into(),
            Limit::Unlimited => "no limit".into(),
            Limit::At(n) => n.to_string(),
        }
    }
}

/// One model's limits and today's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    pub concurrent: Limit,
    pub daily: Limit,
    /// Generations in the rolling 24 h window, when the answer says.
    pub used: Option<u64>,
}

/// What one answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Credits left, when the answer says.
    pub balance: Option<u64>,
    pub models: BTreeMap<String, ModelLimits>,
}

impl Snapshot {
    /// Reads an answer leniently: a missing or `null` member is "not known" or "no limit", never
    /// an error. `None` when it is not an answer at all (not an object, or with neither a balance
    /// nor a tier).
    pub fn from_api(v: &Value) -> Option<Snapshot> {
        let obj = v.as_object()?;
        if !obj.contains_key("creditBalance") && !obj.contains_key("tier") {
            return None;
        }
        let tier = v["tier"]["models"].as_object();
        let usage = v["usage"]["models"].as_object();
        let mut models = BTreeMap::new();
        for (id, l) in tier.into_iter().flatten() {
            models.insert(
                id.clone(),
                ModelLimits {
                    concurrent: Limit::of(l, "maxConcurrentGenerations"),
                    daily: Limit::of(l, "maxDailyGenerations"),
                    used: None,
                },
            );
        }
        for (id, u) in usage.into_iter().flatten() {
            let used = u["dailyGenerations"].as_u64();
            models
                .entry(id.clone())
                .or_insert(ModelLimits {
                    concurrent: Limit::Unknown,
                    daily: Limit::Unknown,
                    used: None,
                })
                .used = used;
        }
        Some(Snapshot {
            balance: v["creditBalance"].as_u64(),
            models,
        })
    }

    /// The last answer kept in `root/.dropreel/`, and when it was asked for (RFC 3339); `None`
    /// when there is none (never asked, or the last request failed).
    pub fn read(root: &Path) -> Option<(Snapshot, String)> {
        let path = root.join(layout::OWN_DIR).join(layout::ORGANIZATION_FILE);
        let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let snap = Snapshot::from_api(&v["answer"])?;
        Some((snap, v["asked_at"].as_str().unwrap_or_default().to_string()))
    }

    /// The models worth showing: those named in `wanted` that the answer knows, and those used
    /// today.
    fn shown_models<'a>(&'a self, wanted: &[String]) -> Vec<(&'a String, &'a ModelLimits)> {
        self.models
            .iter()
            .filter(|(id, l)| wanted.contains(id) || l.used.is_some_and(|u| u > 0))
            .collect()
    }

    /// One line per model in use: how many at once, how many today of how many a day.
    pub fn model_lines(&self, wanted: &[String]) -> Vec<String> {
        self.shown_models(wanted)
            .into_iter()
            .map(|(id, l)| {
                let used = l.used.map_or("?".to_string(), |u| u.to_string());
                format!(
                    "{id}: {} at once; {used} of {} generations in the last 24 h",
                    l.concurrent.shown(),
                    l.daily.shown()
                )
            })
            .collect()
    }

    /// The dashboard's view: the balance and the models in use.
    pub fn to_board(&self, asked_at: &str, wanted: &[String]) -> Value {
        let limit = |l: Limit| match l {
            Limit::At(n) => json!(n),
            Limit::Unlimited => json!("unlimited"),
            Limit::Unknown => Value::Null,
        };
        let models: Vec<Value> = self
            .shown_models(wanted)
            .into_iter()
            .map(|(id, l)| {
                json!({
                    "model": id, "at_once": limit(l.concurrent), "daily": limit(l.daily),
                    "used": l.used,
                })
            })
            .collect();
        json!({ "balance": self.balance, "asked_at": asked_at, "models": models })
    }
}

/// The models `dropreel.yaml` names (defaults and presets): the ones `status` and the dashboard
/// show the limits of (with any used today).
pub fn models_named(c: &crate::config::Config) -> Vec<String> {
    let mut out = Vec::new();
    let all =
        std::iter::once(c.defaults.clone()).chain(c.presets.values().map(|p| p.over(&c.defaults)));
    for d in all {
        for m in [d.model, d.text_model, d.video_model] {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// What `status` shows of the organisation: the balance and the limits of the models in use, as
/// Runway last said; `None` when it has not answered (or its last answer failed).
pub fn status_lines(root: &Path, c: &crate::config::Config) -> Option<Vec<String>> {
    let (snap, asked_at) = Snapshot::read(root)?;
    let at = humantime::parse_rfc3339(&asked_at).map_or(asked_at, crate::studio::clock::local_text);
    let balance = snap.balance.map_or("not said".to_string(), |b| {
        format!("{b} credits (US${:.2})", b as f64 / 100.0)
    });
    let mut lines = vec![format!(
        "runway organisation (as of {at}): balance {balance}"
    )];
    lines.extend(
        snap.model_lines(&models_named(c))
            .into_iter()
            .map(|l| format!("  {l}")),
    );
    Some(lines)
}

/// A create let through by [`Organization::admit`], until its answer: dropping it says the
/// answer came (or the request will not be sent).
pub struct Admitted<'a> {
    org: &'a Organization,
    model: String,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.org.answered(&self.model);
    }
}

/// Why the organisation holds a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgHold {
    /// The model's daily generations are used up: its jobs wait (the detail says so).
    Daily(String),
    /// The balance is too small for the next job.
    Balance(String),
}

/// A create let through, counted until an answer surely counts it.
#[derive(Debug)]
struct Sent {
    model: String,
    credits: u64,
    /// When its answer came (the server has counted it by then).
    answered: Option<Instant>,
}

/// The last answer, and this studio's creates it may not count yet.
#[derive(Debug, Default)]
struct State {
    snap: Option<Snapshot>,
    /// Creates let through and not yet known to be in an answer: counted on top of it.
    sent: Vec<Sent>,
    /// Models held for their daily limit and said so (one line each, until allowed again).
    told: HashSet<String>,
}

/// What dropreel knows of the organisation, shared by the backend, its jobs and the asking task.
#[derive(Debug, Default)]
pub struct Organization {
    state: Mutex<State>,
    /// Signalled when an answer (or a failure) changes what is known.
    pub changed: Notify,
}

impl Organization {
    /// The model's daily generations are used up (the answer's count plus this studio's creates
    /// since): why, said once per hold at info. `None` while it may create, or when nothing is
    /// known.
    pub fn daily_hold(&self, model: &str) -> Option<String> {
        let mut st = self.state.lock().expect("organization lock");
        let detail = daily(&st, model);
        if let Some(d) = &detail
            && st.told.insert(model.to_string())
        {
            tracing::info!(model, "{d}");
        }
        detail
    }

    /// Whether a create of `model` costing `price` credits (when known) may go out now; when it
    /// may, it is counted at once (so a burst cannot pass the limit before the next answer).
    pub fn admit(&self, model: &str, price: Option<u64>) -> Result<Admitted<'_>, OrgHold> {
        let mut st = self.state.lock().expect("organization lock");
        if let Some(d) = daily(&st, model) {
            if st.told.insert(model.to_string()) {
                tracing::info!(model, "{d}");
            }
            return Err(OrgHold::Daily(d));
        }
        if let (Some(balance), Some(price)) = (st.snap.as_ref().and_then(|s| s.balance), price) {
            let spent: u64 = st.sent.iter().map(|s| s.credits).sum();
            let left = balance.saturating_sub(spent);
            if left < price {
                return Err(OrgHold::Balance(format!(
                    "the organisation's credit balance at Runway ({left} credits) is too small for the next job \
                     ({price} credits, {model}): buy credits at dev.runwayml.com; files wait and go on by \
                     themselves once Runway reports enough"
                )));
            }
        }
        st.sent.push(Sent {
            model: model.to_string(),
            credits: price.unwrap_or(0),
            answered: None,
        });
        Ok(Admitted {
            org: self,
            model: model.to_string(),
        })
    }

    /// The create of `model` let through by [`Organization::admit`] was answered, or will not be
    /// sent (the budget refused it, a stop came first): an answer to a request sent after now
    /// counts it if it was made.
    pub fn answered(&self, model: &str) {
        let mut st = self.state.lock().expect("organization lock");
        if let Some(s) = st
            .sent
            .iter_mut()
            .find(|s| s.model == model && s.answered.is_none())
        {
            s.answered = Some(Instant::now());
        }
    }

    /// An answer to a request sent at `asked`: it replaces what was known; creates not answered
    /// before `asked` (which it may not count yet) stay counted on top of it.
    fn store(&self, snap: Snapshot, asked: Instant) {
        let mut st = self.state.lock().expect("organization lock");
        st.sent.retain(|s| s.answered.is_none_or(|a| a > asked));
        st.snap = Some(snap);
        let allowed: Vec<String> = st
            .told
            .iter()
            .filter(|m| daily(&st, m).is_none())
            .cloned()
            .collect();
        for m in allowed {
            st.told.remove(&m);
            tracing::info!(model = %m, "Runway allows more {m} generations again; its files go on");
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// The request failed or the answer was not one: nothing is known any more (dropreel works
    /// as if it had never asked).
    fn forget(&self) {
        let mut st = self.state.lock().expect("organization lock");
        st.snap = None;
        st.sent.clear();
        st.told.clear();
        drop(st);
        self.changed.notify_waiters();
    }

    /// The in-flight bounds under `auto`: each model's own, and the largest of them in all (the
    /// fallback while nothing is known).
    fn bounds(&self) -> (usize, HashMap<String, usize>) {
        let st = self.state.lock().expect("organization lock");
        let Some(snap) = &st.snap else {
            return (IN_FLIGHT_FALLBACK, HashMap::new());
        };
        let caps: HashMap<String, usize> = snap
            .models
            .iter()
            .map(|(id, l)| {
                let cap = match l.concurrent {
                    Limit::Unknown => IN_FLIGHT_FALLBACK,
                    Limit::Unlimited => UNLIMITED_IN_FLIGHT,
                    Limit::At(n) => usize::try_from(n).unwrap_or(MOST_IN_FLIGHT),
                };
                (id.clone(), cap.clamp(1, MOST_IN_FLIGHT))
            })
            .collect();
        let max = caps.values().copied().max().unwrap_or(IN_FLIGHT_FALLBACK);
        (max, caps)
    }
}

/// The daily hold of `model` under `st`, if any.
fn daily(st: &State, model: &str) -> Option<String> {
    let l = st.snap.as_ref()?.models.get(model)?;
    let (Limit::At(max), Some(used)) = (l.daily, l.used) else {
        return None;
    };
    let ours = st.sent.iter().filter(|s| s.model == model).count() as u64;
    (used + ours >= max).then(|| {
        format!(
            "Runway's daily limit for {model} is used up ({} of {max} generations in the last 24 h): \
             its files wait and go on by themselves when Runway allows more; other models go on",
            used + ours
        )
    })
}

/// Asks Runway about the organisation at start and every `every`, until dropped.
pub struct Asking {
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Asking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Asking")
    }
}

impl Drop for Asking {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts asking (when a runtime runs; else never: nothing changes).
pub fn start(
    api: Arc<Api>,
    org: Arc<Organization>,
    slots: Arc<Slots>,
    in_flight: InFlight,
    every: Duration,
    root: PathBuf,
) -> Option<Asking> {
    let rt = tokio::runtime::Handle::try_current().ok()?;
    let task = rt.spawn(async move {
        loop {
            ask(&api, &org, &slots, in_flight, &root).await;
            tokio::time::sleep(every).await;
        }
    });
    Some(Asking { task })
}

/// One request, and what its answer changes: the knowledge, the slots' bounds (under `auto`),
/// then the file `status` reads.
async fn ask(api: &Api, org: &Organization, slots: &Slots, in_flight: InFlight, root: &Path) {
    let asked = Instant::now();
    let asked_at = crate::studio::clock::now_rfc3339();
    let answer = api.organization().await;
    let kept = match answer.as_ref().map(|v| (v, Snapshot::from_api(v))) {
        Ok((v, Some(snap))) => {
            tracing::debug!(balance = ?snap.balance, models = snap.models.len(), "Runway told the organisation's limits");
            org.store(snap, asked);
            Some(json!({ "asked_at": asked_at, "answer": v }))
        }
        failed => {
            let why = match failed {
                Err(e) => e.to_string(),
                Ok(_) => "the answer is not an organisation".to_string(),
            };
            tracing::debug!(error = %why, "cannot read the organisation's limits from Runway; going on without them");
            org.forget();
            None
        }
    };
    match in_flight {
        InFlight::Auto => {
            let (max, caps) = org.bounds();
            slots.set_limits(max, caps);
        }
        // The bound is the number written; the pipeline still looks again (a hold may be over).
        InFlight::Fixed(_) => slots.changed.notify_one(),
    }
    let dir = root.join(layout::OWN_DIR);
    let written = tokio::task::spawn_blocking(move || match kept {
        Some(file) => {
            std::fs::create_dir_all(&dir)?;
            crate::studio::durable::write_atomic(
                &dir,
                layout::ORGANIZATION_FILE,
                file.to_string().as_bytes(),
            )
        }
        None => match std::fs::remove_file(dir.join(layout::ORGANIZATION_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    })
    .await;
    if let Ok(Err(e)) = written {
        tracing::debug!(error = %e, "cannot keep the organisation's limits in .dropreel/");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_read_leniently() {
        let v = json!({
            "creditBalance": 500,
            "tier": {"models": {
                "gen4_turbo": {"maxConcurrentGenerations": 3, "maxDailyGenerations": 10},
                "gen4.5": {"maxConcurrentGenerations": null, "maxDailyGenerations": null},
                "veo3.1": {},
            }},
            "usage": {"models": {"gen4_turbo": {"dailyGenerations": 9}}},
        });
        let s = Snapshot::from_api(&v).unwrap();
        assert_eq!(s.balance, Some(500));
        assert_eq!(s.models["gen4_turbo"].concurrent, Limit::At(3));
        assert_eq!(s.models["gen4_turbo"].used, Some(9));
        assert_eq!(s.models["gen4.5"].concurrent, Limit::Unlimited);
        assert_eq!(s.models["veo3.1"].daily, Limit::Unknown);
        assert!(Snapshot::from_api(&json!("nope")).is_none());
        assert!(Snapshot::from_api(&json!({"other": 1})).is_none());
        let partial = Snapshot::from_api(&json!({"creditBalance": null})).unwrap();
        assert_eq!(partial.balance, None);
        assert!(partial.models.is_empty());
    }

    #[tokio::test]
    async fn own_creates_count_on_top_of_the_answer() {
        let org = Organization::default();
        let v = json!({
            "creditBalance": 100,
            "tier": {"models": {"gen4_turbo": {"maxDailyGenerations": 3}}},
            "usage": {"models": {"gen4_turbo": {"dailyGenerations": 1}}},
        });
        org.store(Snapshot::from_api(&v).unwrap(), Instant::now());
        // (Short gaps only order the instants.)
        let gap = || tokio::time::sleep(Duration::from_millis(2));
        let asked = Instant::now();
        gap().await;
        let first = org.admit("gen4_turbo", Some(25)).unwrap();
        drop(first);
        let second = org.admit("gen4_turbo", Some(25)).unwrap();
        assert!(matches!(
            org.admit("gen4_turbo", Some(25)),
            Err(OrgHold::Daily(_))
        ));
        assert!(org.daily_hold("gen4_turbo").is_some());
        // Another model: only the balance (100 − 50 spent) bounds it.
        let other = org.admit("gen4.5", Some(50)).unwrap();
        assert!(matches!(
            org.admit("gen4.5", Some(1)),
            Err(OrgHold::Balance(_))
        ));
        // An answer to a request sent before the first create's answer came may not count it
        // yet; nor the creates still on the wire: all three stay counted on top of it.
        org.store(Snapshot::from_api(&v).unwrap(), asked);
        assert!(org.daily_hold("gen4_turbo").is_some());
        // Asked after every answer came: the answer counts them (here it says 3 were made).
        drop((second, other));
        gap().await;
        let counted = json!({
            "creditBalance": 100,
            "tier": {"models": {"gen4_turbo": {"maxDailyGenerations": 4}}},
            "usage": {"models": {"gen4_turbo": {"dailyGenerations": 3}}},
        });
        org.store(Snapshot::from_api(&counted).unwrap(), Instant::now());
        assert!(org.daily_hold("gen4_turbo").is_none());
        assert!(org.admit("gen4_turbo", Some(25)).is_ok());
        org.forget();
        assert!(org.admit("gen4_turbo", Some(1000)).is_ok());
    }
}
