//! Tests of [`super`].

use super::*;
use crate::job::{ImageInfo, JobSpec};
use std::time::Duration;

// See: issue 10 — a job task that panicked never reported, so `run` waited forever.
#[tokio::test]
async fn a_job_task_that_panics_ends_as_that_jobs_failure() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap();
    std::fs::write(spool.inbox().join("x.png"), b"image").unwrap();
    let source = crate::studio::source::Source::in_inbox("x.png");
    let id = spool.claim(&source, None, None, false).unwrap().unwrap().id;
    let rec = JobRecord::new(
        id.clone(),
        source,
        None,
        ImageInfo::UNKNOWN,
        JobSpec::default(),
        "local",
    );
    spool.save(&rec).unwrap();
    let mut jobs = Jobs::new(
        RetryPolicy {
            retries: 0,
            min: Duration::from_millis(10),
            max: Duration::from_millis(10),
        },
        Ledger::new(d.path()),
        None,
        Live::default(),
    );
    jobs.spawn(id.clone(), async { panic!("boom") });
    let ended = jobs.next(&spool).await.unwrap();
    assert_eq!(ended.id, id);
    assert!(matches!(ended.end, End::Failed));
    let text = std::fs::read_to_string(d.path().join("failed/x.error.txt")).unwrap();
    assert!(
        text.contains("internal error") && text.contains("(boom)"),
        "{text}"
    );
    assert!(d.path().join("failed/x.png").exists());
    assert!(jobs.next(&spool).await.is_none(), "nothing else runs");
}
