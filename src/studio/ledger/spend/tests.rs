//! Tests of [`super`].

use super::*;

fn at(s: &str) -> Zoned {
    s.parse().unwrap()
}

fn budget(daily: u64, monthly: u64) -> BudgetSection {
    BudgetSection {
        daily_credits: daily,
        monthly_credits: monthly,
        rates: BTreeMap::new(),
    }
}

#[test]
fn a_request_that_would_pass_the_daily_limit_waits_for_local_midnight() {
    let d = tempfile::tempdir().unwrap();
    let log = SpendLog::new(d.path());
    let now = at("2026-11-26T15:00:00+01:00[Europe/Paris]");
    let b = budget(60, 0);
    for job in ["a", "b"] {
        let e = entry(job, "gen4_turbo", Some(25), false, &now);
        assert!(log.charge(e, &b, &now).unwrap().is_ok());
    }
    let e = entry("c", "gen4_turbo", Some(25), false, &now);
    let Err(Refusal::Over {
        period,
        spent,
        resumes,
        ..
    }) = log.charge(e, &b, &now).unwrap()
    else {
        panic!("the third job passed the limit");
    };
    assert_eq!((period, spent), (Period::Day, 50));
    let midnight: Zoned = at("2026-11-27T00:00:00+01:00[Europe/Paris]");
    assert_eq!(resumes, SystemTime::from(midnight));
    // The next day starts from zero; the month keeps counting.
    let tomorrow = at("2026-11-27T09:00:00+01:00[Europe/Paris]");
    let e = entry("c", "gen4_turbo", Some(25), false, &tomorrow);
    let t = log.charge(e, &b, &tomorrow).unwrap().unwrap();
    assert_eq!((t.today, t.month), (25, 75));
}

#[test]
fn the_monthly_limit_resumes_on_the_first_of_the_next_month() {
    let d = tempfile::tempdir().unwrap();
    let log = SpendLog::new(d.path());
    let now = at("2026-12-31T23:00:00+00:00[UTC]");
    let e = entry("a", "gen4.5", Some(60), false, &now);
    assert!(log.charge(e, &budget(0, 100), &now).unwrap().is_ok());
    let e = entry("b", "gen4.5", Some(60), false, &now);
    let Err(r @ Refusal::Over { .. }) = log.charge(e, &budget(0, 100), &now).unwrap() else {
        panic!("over the monthly limit");
    };
    let Refusal::Over { resumes, .. } = &r else {
        unreachable!()
    };
    assert_eq!(
        *resumes,
        SystemTime::from(at("2027-01-01T00:00:00+00:00[UTC]"))
    );
    assert!(
        r.detail().contains("budget.monthly_credits"),
        "{}",
        r.detail()
    );
}

#[test]
fn two_instances_see_each_others_spend_and_a_torn_line_is_read_once_whole() {
    let d = tempfile::tempdir().unwrap();
    let (one, two) = (SpendLog::new(d.path()), SpendLog::new(d.path()));
    let now = at("2026-11-26T10:00:00+00:00[UTC]");
    let b = budget(0, 0);
    one.charge(entry("a", "m", Some(25), false, &now), &b, &now)
        .unwrap()
        .unwrap();
    let t = two
        .charge(entry("b", "m", Some(10), true, &now), &b, &now)
        .unwrap()
        .unwrap();
    assert_eq!(t.today, 35);
    // A line being appended (no newline yet) is not counted until it is whole.
    let file = d.path().join(".dropreel/spend/2026-11.jsonl");
    let line = serde_json::to_string(&entry("c", "m", Some(5), false, &now)).unwrap();
    let (head, tail) = line.split_at(10);
    OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(head.as_bytes())
        .unwrap();
    assert_eq!(one.totals(&now).unwrap().today, 35);
    OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(format!("{tail}\n").as_bytes())
        .unwrap();
    assert_eq!(one.totals(&now).unwrap().today, 40);
    assert_eq!(two.totals(&now).unwrap().month, 40);
}

#[test]
fn a_task_dearer_than_a_whole_limit_never_fits_and_says_what_would() {
    let spec = JobSpec {
        model: "veo3.1_fast".into(),
        duration: 8,
        ..JobSpec::default()
    };
    let f = beyond_limit(
        &spec,
        Endpoint::ImageToVideo,
        &budget(60, 0),
        &Models::built_in(),
        Prices::default,
    )
    .unwrap();
    assert!(f.message.contains("80 credits"), "{}", f.message);
    assert!(f.message.contains("daily budget of 60"), "{}", f.message);
    assert!(f.advice.contains("at least 80"), "{}", f.advice);
    assert!(f.advice.contains("at most 6 s fit"), "{}", f.advice);
    assert!(f.advice.contains("gen4_turbo"), "{}", f.advice);
    assert!(
        beyond_limit(
            &spec,
            Endpoint::ImageToVideo,
            &budget(80, 0),
            &Models::built_in(),
            Prices::default,
        )
        .is_none()
    );
    // Counted against the log, it is refused as never fitting, not held.
    let d = tempfile::tempdir().unwrap();
    let log = SpendLog::new(d.path());
    let now = Zoned::now();
    let e = entry("a", "veo3.1_fast", Some(80), false, &now);
    assert_eq!(
        log.charge(e, &budget(0, 60), &now).unwrap(),
        Err(Refusal::NeverFits {
            period: Period::Month,
            limit: 60,
            cost: 80
        })
    );
}

#[test]
fn under_a_budget_a_model_of_unknown_price_is_refused_naming_budget_rates() {
    let d = tempfile::tempdir().unwrap();
    let log = SpendLog::new(d.path());
    let now = Zoned::now();
    let r = log
        .charge(entry("a", "veo3", None, false, &now), &budget(100, 0), &now)
        .unwrap()
        .unwrap_err();
    assert!(r.detail().contains("budget.rates"), "{}", r.detail());
    // Without a budget it is counted apart.
    let t = log
        .charge(entry("a", "veo3", None, false, &now), &budget(0, 0), &now)
        .unwrap()
        .unwrap();
    assert_eq!((t.month, t.unpriced), (0, 1));
}

// See: issue 23, item 3 — the reconciling line is written once per task, whatever crashed
// between it and the job's record; a refund can bring a day below what was counted.
#[test]
fn a_task_is_settled_once_by_its_difference_and_a_priced_unknown_leaves_the_unpriced_count() {
    let d = tempfile::tempdir().unwrap();
    let log = SpendLog::new(d.path());
    let now = at("2026-11-26T10:00:00+00:00[UTC]");
    let b = budget(100, 0);
    log.charge(entry("a", "gen4_turbo", Some(25), false, &now), &b, &now)
        .unwrap()
        .unwrap();
    let s = Settle {
        job: "a",
        model: "gen4_turbo",
        task: "task-1",
        counted: Some(25),
        day: "2026-11-26",
        charged: 35,
    };
    assert!(log.settle(&s, &b, &now).unwrap());
    assert_eq!(log.totals(&now).unwrap().today, 35);
    // Again (a resume after a crash before the record said so): not written twice, also as
    // another instance reading the file sees it.
    assert!(!log.settle(&s, &b, &now).unwrap());
    assert!(!SpendLog::new(d.path()).settle(&s, &b, &now).unwrap());
    assert_eq!(SpendLog::new(d.path()).totals(&now).unwrap().today, 35);
    // A refund.
    let refund = Settle {
        task: "task-2",
        charged: 0,
        ..s.clone()
    };
    log.charge(entry("b", "gen4_turbo", Some(25), false, &now), &b, &now)
        .unwrap()
        .unwrap();
    assert!(log.settle(&refund, &b, &now).unwrap());
    assert_eq!(log.totals(&now).unwrap().today, 35);
    // Nothing to reconcile: no line.
    let same = Settle {
        task: "task-3",
        charged: 25,
        ..s.clone()
    };
    assert!(!log.settle(&same, &b, &now).unwrap());
    // A request of unknown price (no budget), priced by Runway: counted now, no longer apart.
    let free = budget(0, 0);
    log.charge(entry("c", "aleph2", None, false, &now), &free, &now)
        .unwrap()
        .unwrap();
    assert_eq!(log.totals(&now).unwrap().unpriced, 1);
    let priced = Settle {
        model: "aleph2",
        task: "task-4",
        counted: None,
        charged: 60,
        ..s.clone()
    };
    assert!(log.settle(&priced, &free, &now).unwrap());
    let t = SpendLog::new(d.path()).totals(&now).unwrap();
    assert_eq!((t.today, t.unpriced), (95, 0));
    // A task of last month settles in last month's file, once.
    let old = Settle {
        task: "task-0",
        day: "2026-10-31",
        charged: 0,
        ..s.clone()
    };
    assert!(log.settle(&old, &b, &now).unwrap());
    assert!(!log.settle(&old, &b, &now).unwrap());
    assert!(d.path().join(".dropreel/spend/2026-10.jsonl").exists());
    assert_eq!(log.totals(&now).unwrap().month, 95);
}

// See: issue 23, item 3 — budget.rates, then the price Runway reported, then the catalog.
#[test]
fn a_price_comes_from_the_rates_then_runway_then_the_catalog() {
    let mut learnt = Prices::default();
    learnt.0.insert(
        "gen4_turbo".into(),
        crate::studio::ledger::prices::Learnt {
            credits_per_second: 7.5,
            on: "2026-12-08".into(),
        },
    );
    let spec = JobSpec {
        model: "gen4_turbo".into(),
        duration: 5,
        ..JobSpec::default()
    };
    let rates: BTreeMap<String, u32> = [("gen4_turbo".to_string(), 6)].into();
    assert_eq!(
        priced(&spec, &rates, &learnt),
        (Some(30), PriceSource::Rates)
    );
    assert_eq!(
        priced(&spec, &BTreeMap::new(), &learnt),
        (
            Some(38),
            PriceSource::Learnt {
                on: "2026-12-08".into()
            }
        )
    );
    assert_eq!(
        priced(&spec, &BTreeMap::new(), &Prices::default()),
        (Some(25), PriceSource::Catalog)
    );
    let aleph = JobSpec {
        model: "aleph2".into(),
        ..spec
    };
    assert_eq!(
        priced(&aleph, &BTreeMap::new(), &Prices::default()),
        (None, PriceSource::Unknown)
    );
}
