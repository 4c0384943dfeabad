//! `dropreel estimate`: what `inbox/` would cost if it were run now, without sending anything. Each
//! file is paired and checked exactly as a run would (presets, sidecars and variants applied, the
//! same checks against the same catalog), priced at its model's credits per second as the budget
//! prices it (`budget.rates`, else the price Runway reported lately, else the catalog; each line
//! says which), and looked up in the dedupe ledger (a file that would be reused costs 0, as does
//! a second copy of the same file in the inbox). It lists the files that would fail and why, and
//! the budget left today and this month. The total is what is known: groups of a model with no
//! known price are listed apart. Runway is priced without a key (nothing is sent); when the local
//! renderer is used only for want of a key, what Runway would cost is given beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::backend::{Chosen, Limits};
use crate::config::{BackendChoice, Settings};
use crate::intake::{self, Inbox};
use crate::run::admit::{self, NotYet};
use crate::studio::ledger::dedupe::{self, Ledger};
use crate::studio::ledger::prices::Prices;
use crate::studio::ledger::spend::{self, PriceSource, SpendLog};
use crate::studio::record::JobRecord;
use crate::studio::spool::Spool;

/// Jobs of one kind on one model.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Group {
    pub kind: String,
    pub model: String,
    pub jobs: u32,
    /// Tasks (a job with variants makes several).
    pub videos: u32,
    /// Output seconds of all its videos.
    pub seconds: u64,
    /// `None` when the model's price is not known.
    pub credits: Option<u64>,
    pub usd: Option<f64>,
    /// Where its price came from (`None` for the total).
    pub price_from: Option<PriceSource>,
}

/// A file that would be delivered from an earlier job, or from a copy of it in this inbox.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reuse {
    pub file: String,
    /// The videos it would be given (`done/…`), or the inbox file it duplicates.
    pub from: Vec<String>,
}

/// A file that would go to `failed/`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failing {
    pub file: String,
    pub reason: String,
    pub advice: String,
}

/// The budget as it stands.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BudgetLeft {
    pub spent_today: u64,
    pub spent_month: u64,
    /// 0 = no limit.
    pub daily_credits: u64,
    pub monthly_credits: u64,
    /// `None` when there is no limit.
    pub left_today: Option<u64>,
    pub left_month: Option<u64>,
}

/// Jobs of a model with no known price: not in the total.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Unpriced {
    pub kind: String,
    pub model: String,
    pub jobs: u32,
    pub videos: u32,
    pub seconds: u64,
}

/// The whole estimate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Estimate {
    pub backend: String,
    pub groups: Vec<Group>,
    /// The sum of what has a known price (see `unpriced`).
    pub total: Group,
    /// What the total leaves out: the groups whose model has no known price (`budget.rates`).
    pub unpriced: Vec<Unpriced>,
    pub reused: Vec<Reuse>,
    pub failing: Vec<Failing>,
    /// Files not whole yet (still being written): priced when they are.
    pub incomplete: Vec<String>,
    pub budget: BudgetLeft,
    /// With `backend: auto` and no API key (the local renderer, at 0): the total on Runway.
    pub on_runway: Option<OnRunway>,
}

/// What the inbox would cost on Runway (known prices; what has none is listed).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OnRunway {
    pub credits: u64,
    pub usd: f64,
    pub videos: u32,
    pub unpriced: Vec<Unpriced>,
}

/// Prices what `settings.root/inbox` holds now, on the backend the settings choose (Runway needs
/// no key for it).
pub fn estimate(settings: &Settings) -> anyhow::Result<Estimate> {
    let (name, limits) = Chosen::planned(settings);
    let mut e = price(settings, name, &limits)?;
    if settings.config.backend == BackendChoice::Auto && name == "local" {
        let runway = price(
            settings,
            "runway",
            &crate::backend::runway::limits(settings.models.clone()),
        )?;
        let credits = runway.total.credits.unwrap_or(0);
        e.on_runway = Some(OnRunway {
            credits,
            usd: usd(credits),
            videos: runway.total.videos,
            unpriced: runway.unpriced,
        });
    }
    Ok(e)
}

/// The estimate on backend `name` with its `limits`.
fn price(settings: &Settings, name: &str, limits: &Limits) -> anyhow::Result<Estimate> {
    let spool = Spool::open(&settings.root)?;
    let rates = &settings.config.budget.rates;
    let learnt = Prices::read(&settings.root);
    // Every file is looked at as settled: the estimate is of what is there now.
    let mut inbox = Inbox::new(
        &spool.inbox(),
        std::time::Duration::ZERO,
        std::time::Duration::ZERO,
    );
    inbox.scan(None)?;
    let mut ready = inbox.take_ready();
    ready.sort_by_key(|r| r.source.rel());
    let ledger = Ledger::new(&settings.root);
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut reused = Vec::new();
    let mut failing = Vec::new();
    let mut incomplete = Vec::new();
    let mut keys_here: BTreeMap<String, String> = BTreeMap::new();
    for r in &ready {
        let rel = r.source.rel();
        let admitted = match admit::check_files(
            &spool.inbox(),
            settings,
            limits,
            &rel,
            r.sidecar.as_deref(),
            r.last_frame.as_deref(),
        ) {
            Ok(a) => a,
            Err(NotYet::Wait(_)) => {
                incomplete.push(rel);
                continue;
            }
            Err(NotYet::Fail(f)) => {
                failing.push(Failing {
                    file: rel,
                    reason: f.message,
                    advice: f.advice,
                });
                continue;
            }
        };
        let spec = &admitted.spec;
        if !spec.fresh
            && let Some(key) = key_of(&spool, r, &admitted, name)
        {
            if let Some(entry) = ledger.peek(&key) {
                reused.push(Reuse {
                    file: rel,
                    from: entry.files,
                });
                continue;
            }
            if let Some(first) = keys_here.get(&key) {
                reused.push(Reuse {
                    file: rel,
                    from: vec![format!("inbox/{first}")],
                });
                continue;
            }
            keys_here.insert(key, rel.clone());
        }
        let takes = spec.takes();
        // (A video kept at its own length carries that length as its duration.)
        let seconds = u64::from(spec.duration);
        let (price, from) = if limits.catalog.renders_locally() {
            (Some(0), PriceSource::Local)
        } else {
            spend::priced(spec, rates, &learnt)
        };
        let g = groups
            .entry((admitted.kind.name().to_string(), spec.model.clone()))
            .or_insert_with(|| Group {
                kind: admitted.kind.name().to_string(),
                model: spec.model.clone(),
                credits: Some(0),
                price_from: Some(from),
                ..Group::default()
            });
        g.jobs += 1;
        g.videos += takes;
        g.seconds += seconds * u64::from(takes);
        g.credits = match (g.credits, price) {
            (Some(sum), Some(p)) => Some(sum + p * u64::from(takes)),
            _ => None,
        };
    }
    let mut groups: Vec<Group> = groups.into_values().collect();
    for g in &mut groups {
        g.usd = g.credits.map(usd);
    }
    let unpriced = groups
        .iter()
        .filter(|g| g.credits.is_none())
        .map(|g| Unpriced {
            kind: g.kind.clone(),
            model: g.model.clone(),
            jobs: g.jobs,
            videos: g.videos,
            seconds: g.seconds,
        })
        .collect();
    let mut total = Group {
        kind: "total".into(),
        model: String::new(),
        credits: Some(0),
        ..Group::default()
    };
    for g in &groups {
        total.jobs += g.jobs;
        total.videos += g.videos;
        total.seconds += g.seconds;
        total.credits = total.credits.map(|sum| sum + g.credits.unwrap_or(0));
    }
    total.usd = total.credits.map(usd);
    let b = &settings.config.budget;
    let spent = SpendLog::new(&settings.root).totals(&jiff::Zoned::now())?;
    let left = |limit: u64, spent: u64| (limit > 0).then(|| limit.saturating_sub(spent));
    Ok(Estimate {
        backend: name.to_string(),
        groups,
        total,
        unpriced,
        reused,
        failing,
        incomplete,
        budget: BudgetLeft {
            spent_today: spent.today,
            spent_month: spent.month,
            daily_credits: b.daily_credits,
            monthly_credits: b.monthly_credits,
            left_today: left(b.daily_credits, spent.today),
            left_month: left(b.monthly_credits, spent.month),
        },
        on_runway: None,
    })
}

/// The dedupe key the file would get (its bytes hashed, as the job would).
fn key_of(spool: &Spool, r: &intake::Ready, a: &admit::Admitted, backend: &str) -> Option<String> {
    let dir = spool
        .inbox()
        .join(r.source.rel_path())
        .parent()?
        .to_path_buf();
    let mut rec = JobRecord::new(
        String::new(),
        r.source.clone(),
        None,
        a.info,
        a.spec.clone(),
        backend,
    );
    rec.kind = a.kind.clone();
    rec.source_sha256 = crate::media::sha256_file(&dir.join(&r.source.name)).ok();
    if let Some(last) = &r.last_frame {
        let name = last.rsplit('/').next().unwrap_or(last);
        rec.last_frame_sha256 = crate::media::sha256_file(&dir.join(name)).ok();
    }
    dedupe::key(&rec, backend)
}

fn usd(credits: u64) -> f64 {
    credits as f64 / 100.0
}

/// The estimate as a table for people.
pub fn text(e: &Estimate, root: &std::path::Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "estimate for {} (backend {}; 1 credit = US$0.01; nothing was sent)",
        root.display(),
        e.backend
    );
    if e.groups.is_empty() {
        let _ = writeln!(out, "nothing to make in inbox/");
    } else {
        let _ = writeln!(
            out,
            "{:<7}{:<20}{:>6}{:>8}{:>9}{:>9}{:>10}  price from",
            "kind", "model", "jobs", "videos", "seconds", "credits", "US$"
        );
        // The total is what is known; `+?` when some of it has no known price.
        let more = if e.unpriced.is_empty() { "" } else { "+?" };
        let row = |g: &Group| {
            let more = if g.kind == "total" { more } else { "" };
            let (c, u) = match (g.credits, g.usd) {
                (Some(c), Some(u)) => (format!("{c}{more}"), format!("{u:.2}{more}")),
                _ => ("?".into(), "?".into()),
            };
            let from = g
                .price_from
                .as_ref()
                .map_or_else(String::new, |f| format!("  {f}"));
            format!(
                "{:<7}{:<20}{:>6}{:>8}{:>9}{:>9}{:>10}{from}",
                g.kind, g.model, g.jobs, g.videos, g.seconds, c, u
            )
        };
        for g in &e.groups {
            let _ = writeln!(out, "{}", row(g));
        }
        let _ = writeln!(out, "{}", row(&e.total));
        if !e.unpriced.is_empty() {
            let unknown: Vec<String> = e
                .unpriced
                .iter()
                .map(|u| {
                    let videos = if u.videos == 1 { "video" } else { "videos" };
                    format!("{} {videos} on {} ({} s)", u.videos, u.model, u.seconds)
                })
                .collect();
            let _ = writeln!(
                out,
                "+? not in the total, no known price: {}. Set the model's credits per second under budget.rates to include it",
                unknown.join(", ")
            );
        }
    }
    if !e.reused.is_empty() {
        let _ = writeln!(out, "reused, 0 credits ({}):", e.reused.len());
        for r in &e.reused {
            let _ = writeln!(
                out,
                "  {}  (same as {})",
                crate::shown(&r.file),
                r.from.join(", ")
            );
        }
    }
    if !e.failing.is_empty() {
        let _ = writeln!(out, "would fail ({}):", e.failing.len());
        for f in &e.failing {
            let _ = writeln!(out, "  {}: {}", crate::shown(&f.file), f.reason);
        }
    }
    if !e.incomplete.is_empty() {
        let _ = writeln!(
            out,
            "not whole yet, priced when they are ({}): {}",
            e.incomplete.len(),
            e.incomplete.join(", ")
        );
    }
    let b = &e.budget;
    let part = |spent: u64, limit: u64, left: Option<u64>, when: &str| match left {
        Some(l) => format!("{when} {spent} of {limit} spent, {l} left"),
        None => format!("{when} {spent} spent, no limit"),
    };
    let _ = writeln!(
        out,
        "budget: {}; {}",
        part(b.spent_today, b.daily_credits, b.left_today, "today"),
        part(b.spent_month, b.monthly_credits, b.left_month, "this month")
    );
    if let (Some(need), Some(left)) = (
        e.total.credits,
        [b.left_today, b.left_month].into_iter().flatten().min(),
    ) && need > left
    {
        let at_least = if e.unpriced.is_empty() {
            ""
        } else {
            "at least "
        };
        let _ = writeln!(
            out,
            "this inbox needs {at_least}{need} credits, more than the {left} left: submission will pause at the limit (see docs/guide.md, Budget)"
        );
    }
    if let Some(r) = &e.on_runway {
        let _ = writeln!(
            out,
            "on Runway (no API key is set, so the local renderer would make these): {}{more} credits, \
             US${:.2}{more}; set RUNWAYML_API_SECRET (or backend: runway) to generate there",
            r.credits,
            r.usd,
            more = if r.unpriced.is_empty() { "" } else { "+?" },
        );
    }
    out
}
