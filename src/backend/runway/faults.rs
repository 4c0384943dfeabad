//! How the Runway backend sorts what goes wrong into the contract's classes: a per-job refusal (the
//! job goes to `failed/`), a transient fault (retried within `runway.retries`), a systemic fault
//! (the gate holds every job and spends nothing), and an uncertain create (resubmit or park, as
//! `runway.uncertain_submit` says) — a lost answer, or a server error that may have come after the
//! task was made. The decisions are here; the steps in [`super`] act on them.

use std::time::Duration;

use super::Runway;
use super::api::{ApiError, Task};
use crate::backend::{Fault, HoldCause, JobCtx, Stop, backoff};
use crate::config::UncertainSubmit;
use crate::studio::spool::Failure;

/// What a FAILED task's failure code calls for.
#[derive(Debug, PartialEq)]
pub enum TaskFailure {
    /// The job fails with this explanation.
    PerJob(Failure),
    /// Runway's own trouble: submitting again may pass (spends one retry). Says what failed.
    Retry(String),
}

/// Sorts a FAILED task by its failure code. `submissions`: how often the job was submitted so far
/// (a bad output that recurs is the input's fault).
pub fn task_failure(task: &Task, submissions: u32) -> TaskFailure {
    let code = task.failure_code.as_str();
    let api = Some(format!(
        "failureCode {}: {}",
        if code.is_empty() { "(none)" } else { code },
        task.failure
    ));
    let per_job = |message: String, advice: &str| {
        TaskFailure::PerJob(Failure {
            message,
            advice: advice.to_string(),
            api: api.clone(),
        })
    };
    if code.starts_with("SAFETY.INPUT") || code == "INPUT_PREPROCESSING.SAFETY.TEXT" {
        return per_job(
            "Runway's moderation rejected the input (the image or the prompt)".into(),
            "change the image or the prompt; resubmitting it unchanged will be rejected again (and credits are not refunded)",
        );
    }
    if code.starts_with("SAFETY.OUTPUT") {
        return per_job(
            "Runway's moderation rejected the generated video".into(),
            "change the prompt or set a different seed in the sidecar, then move the file back into inbox/",
        );
    }
    if code == "ASSET.INVALID" {
        return per_job(
            "Runway could not use the image (format, dimensions or a corrupt file)".into(),
            "re-export the image as a standard PNG or JPEG and move it back into inbox/",
        );
    }
    let bad_output = code.starts_with("INTERNAL.BAD_OUTPUT");
    let retryable =
        code.starts_with("INTERNAL") || code == "INPUT_PREPROCESSING.INTERNAL" || code.is_empty();
    if !retryable || (bad_output && submissions >= 2) {
        let advice = if bad_output {
            "the output failed Runway's quality checks twice; this often happens when the image has overlaid text or graphics. Try a cleaner image"
        } else {
            "check the message above, fix the input, and move the file back into inbox/"
        };
        return per_job(
            format!(
                "the task failed ({})",
                if code.is_empty() { "no code" } else { code }
            ),
            advice,
        );
    }
    TaskFailure::Retry(format!(
        "the task failed on the server ({})",
        if code.is_empty() {
            "no failure code"
        } else {
            code
        }
    ))
}

/// Whether a FAILED task's code is one the same inputs and settings cannot escape: Runway's
/// moderation (`SAFETY.*`, `INPUT_PREPROCESSING.SAFETY.*`) or an asset it cannot use
/// (`ASSET.INVALID`). The dedupe ledger remembers such a refusal, so an identical job is not sent
/// (and paid for) again.
pub fn refused_for_good(code: &str) -> bool {
    code.starts_with("SAFETY.")
        || code.starts_with("INPUT_PREPROCESSING.SAFETY.")
        || code == "ASSET.INVALID"
}

impl Runway {
    /// What to do after a failed API call sent with the gate's `stamp`: `Ok(delay)` to retry after
    /// it, `Err` to stop (see [`JobCtx::on_fault`]).
    pub(super) fn on_error(
        &self,
        job: &mut JobCtx,
        err: &ApiError,
        step: &str,
        stamp: u64,
    ) -> Result<Duration, Stop> {
        let fault = self.classify(err, step, stamp);
        job.on_fault(fault, step, Some(&self.gate))
    }

    /// Sorts a failed call: the key, the quota, an outage or an unreachable API are systemic; a
    /// lost answer or a lone server error is transient; any other refusal is the job's own.
    fn classify(&self, err: &ApiError, step: &str, stamp: u64) -> Fault {
        let systemic = |cause, detail: &str, retry_after| Fault::Systemic {
            cause,
            detail: detail.to_string(),
            retry_after,
        };
        match err {
            ApiError::Http {
                status: 401 | 403,
                message,
                ..
            } => systemic(HoldCause::Key, message, None),
            ApiError::Http {
                status: 429,
                message,
                retry_after,
            } => systemic(HoldCause::Quota, message, *retry_after),
            ApiError::Http {
                status,
                retry_after,
                ..
            } if *status >= 500 || matches!(status, 408 | 409) => {
                if self.gate.server_error() {
                    return systemic(HoldCause::Outage, &err.to_string(), *retry_after);
                }
                self.gate.release_probe();
                Fault::Transient {
                    error: err.to_string(),
                    retry_after: *retry_after,
                }
            }
            ApiError::Http { .. } => {
                // The API answered and judged the request itself: key and service are fine.
                self.gate.ok(stamp);
                Fault::Job(refusal(step, err))
            }
            ApiError::Unreachable(detail) => systemic(HoldCause::Unreachable, detail, None),
            ApiError::Lost(_) => {
                self.gate.release_probe();
                Fault::Transient {
                    error: err.to_string(),
                    retry_after: None,
                }
            }
        }
    }

    /// A poll failed: the wait before asking again. Polls never spend the retry budget (the task
    /// is paid for: keep asking); a refused key holds the gate like any other request's.
    pub(super) fn on_poll_error(&self, err: &ApiError, errors: u32) -> Duration {
        if let ApiError::Http {
            status: 401 | 403,
            message,
            ..
        } = err
        {
            self.gate.trip(HoldCause::Key, message, None);
        }
        err.retry_after()
            .unwrap_or_else(|| backoff(errors.min(12), self.cfg.retry_min, self.cfg.retry_max))
    }

    /// A create request's outcome is unknown: say so loudly, then resubmit (`Ok`) or park the
    /// job in `failed/` (`Err`), as `runway.uncertain_submit` says.
    pub(super) fn uncertain(&self, job: &JobCtx, what: &str) -> Result<(), Stop> {
        match self.cfg.uncertain_submit {
            UncertainSubmit::Resubmit => {
                tracing::warn!(
                    job = %job.rec.id,
                    file = %job.rec.source.name,
                    "{what}: Runway may have created a task that dropreel never heard of. Submitting again \
                     (a possible double charge, recorded in result.json)"
                );
                Ok(())
            }
            UncertainSubmit::Park => {
                tracing::warn!(job = %job.rec.id, file = %job.rec.source.name, "{what}: parked in failed/ (runway.uncertain_submit: park)");
                Err(Stop::Failed(Failure {
                    message: format!(
                        "{what}, so this job may already be running at Runway; dropreel did not submit it \
                         again, to never pay twice (runway.uncertain_submit: park)"
                    ),
                    advice: "look for the video in Runway's dashboard (Tasks / usage); if it is not there, move the \
                             image back into inbox/ to submit it again"
                        .into(),
                    api: None,
                }))
            }
        }
    }
}

/// Whether a failed create request may still have made a task, and if so how to say what
/// happened: its answer was lost, or a server error came back that may have been raised after the
/// task was made (a gateway that gave up waiting, 502/504; an internal error, 500). Only 503 says
/// the request was not handled at all (load shed before it reached the service, RFC 9110); 408,
/// 409 and 429 refuse it before any work.
pub fn unknown_outcome(err: &ApiError) -> Option<String> {
    match err {
        ApiError::Lost(_) => Some(format!("the create request's answer was lost ({err})")),
        ApiError::Http { status, .. } if *status >= 500 && *status != 503 => Some(format!(
            "the create request was answered with a server error ({err}), which may have come after \
             the task was made"
        )),
        _ => None,
    }
}

/// A per-job failure from an API refusal.
fn refusal(step: &str, err: &ApiError) -> Failure {
    let (status, msg) = match err {
        ApiError::Http {
            status, message, ..
        } => (*status, message.clone()),
        other => (0, other.to_string()),
    };
    Failure {
        message: format!("Runway refused the request while {step} (HTTP {status}): {msg}"),
        advice: "fix what the message names (in the sidecar or the image) and move the file back into inbox/".into(),
        api: Some(format!("HTTP {status}: {msg}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::runway::api::TaskStatus;

    fn failed(code: &str) -> Task {
        Task {
            status: TaskStatus::Failed,
            progress: None,
            output: Vec::new(),
            failure_code: code.into(),
            failure: "text".into(),
            estimated: None,
            cost: None,
        }
    }

    #[test]
    fn a_create_answered_by_a_gateway_or_internal_error_may_have_made_its_task() {
        let http = |status| ApiError::Http {
            status,
            message: "m".into(),
            retry_after: None,
        };
        for status in [500, 502, 504] {
            assert!(unknown_outcome(&http(status)).is_some(), "{status}");
        }
        for status in [503, 429, 408, 409, 400] {
            assert!(unknown_outcome(&http(status)).is_none(), "{status}");
        }
        assert!(unknown_outcome(&ApiError::Lost("timed out".into())).is_some());
    }

    #[test]
    fn failure_codes_sort_into_per_job_and_retry() {
        for code in [
            "SAFETY.INPUT.IMAGE",
            "INPUT_PREPROCESSING.SAFETY.TEXT",
            "SAFETY.OUTPUT.VIDEO",
            "ASSET.INVALID",
            "SOMETHING.NEW",
        ] {
            assert!(
                matches!(task_failure(&failed(code), 1), TaskFailure::PerJob(_)),
                "{code}"
            );
        }
        for code in [
            "INTERNAL",
            "INTERNAL.BAD_OUTPUT.CODE01",
            "INPUT_PREPROCESSING.INTERNAL",
            "",
        ] {
            assert!(
                matches!(task_failure(&failed(code), 1), TaskFailure::Retry(_)),
                "{code}"
            );
        }
        for (code, for_good) in [
            ("SAFETY.INPUT.IMAGE", true),
            ("SAFETY.OUTPUT.VIDEO", true),
            ("INPUT_PREPROCESSING.SAFETY.TEXT", true),
            ("ASSET.INVALID", true),
            ("INTERNAL.BAD_OUTPUT.CODE01", false),
            ("SOMETHING.NEW", false),
            ("", false),
        ] {
            assert_eq!(refused_for_good(code), for_good, "{code}");
        }
        let TaskFailure::PerJob(f) = task_failure(&failed("INTERNAL.BAD_OUTPUT.CODE01"), 2) else {
            panic!("a bad output twice is the input's fault");
        };
        assert!(f.advice.contains("twice"), "{}", f.advice);
        assert_eq!(
            f.api.as_deref(),
            Some("failureCode INTERNAL.BAD_OUTPUT.CODE01: text")
        );
    }
}
