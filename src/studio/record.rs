//! A job's durable record, `processing/<id>/job.json`: where the job is in its life, what it was
//! made from, what was sent and answered (each task's prices among it), why it failed, and how its
//! delivery is going. Written
//! atomically by the spool at every change; read back to resume after a stop or a crash.

use serde::{Deserialize, Serialize};

use crate::job::{ImageInfo, JobKind, JobSpec};
use crate::studio::clock::now_rfc3339;
use crate::studio::layout::{self, Output, split_name};
use crate::studio::source::Source;

/// Where a job is in its life. Persisted at every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Taken from the inbox; nothing sent yet.
    Claimed,
    /// The create request is (or was, at a crash) on the wire; its outcome may be unknown.
    Submitting,
    /// The server accepted the task; it is polled, never submitted again.
    Submitted,
    /// The task finished; its output is to be downloaded.
    Succeeded,
    /// The MP4 is safely in the job folder.
    Downloaded,
    /// The job ends in `failed/`.
    Failed,
}

/// A move into `done/` or `failed/` in progress: the suffix is chosen once and persisted, so a crash
/// midway finishes with the same names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub folder: String,
    pub stem: String,
}

/// Why a job failed, in a designer's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub advice: String,
    /// The server's own words, when the API refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

/// `processing/<id>/job.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    /// The file the job was made from (its folder under inbox/ and its name).
    #[serde(flatten)]
    pub source: Source,
    /// What the job makes a video from.
    #[serde(default)]
    pub kind: JobKind,
    #[serde(default)]
    pub sidecar: Option<String>,
    pub info: ImageInfo,
    pub spec: JobSpec,
    pub backend: String,
    pub state: State,
    pub claimed_at: String,
    #[serde(default)]
    pub submitted_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub task_status: Option<String>,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub output_urls: Vec<String>,
    #[serde(default)]
    pub output_bytes: Option<u64>,
    /// A `runway://` upload of the image and when it was made (unix seconds); valid 24 h.
    #[serde(default)]
    pub upload_uri: Option<String>,
    #[serde(default)]
    pub upload_at: Option<u64>,
    /// The same for the last keyframe of a keyframe job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upload: Option<Upload>,
    /// Create requests sent for this job (a retried task failure sends another).
    #[serde(default)]
    pub submissions: u32,
    /// Create requests whose outcome was unknown (crash or lost answer): each may have created a task
    /// that was never seen, so the job may have been charged more than once.
    #[serde(default)]
    pub uncertain_submissions: u32,
    /// Transient faults spent from the retry budget.
    #[serde(default)]
    pub transient_faults: u32,
    /// What the spend log counted for the create request going out now (saved with the
    /// `submitting` state, before it is sent); moved into `tasks` when the answer names its task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counting: Option<Counted>,
    /// Every task Runway made for this record (a retried task failure makes another), with its
    /// prices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskCost>,
    #[serde(default)]
    pub failure: Option<Failure>,
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// What the local renderer made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<RenderInfo>,
    /// SHA-256 of the image as the job started working on it (before anything was sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
    /// Set at delivery when the image's bytes differ from `source_sha256`: its writer went on
    /// writing after the claim, so the video was made from other bytes than `done/` holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub source_changed: bool,
    /// SHA-256 of the last keyframe, taken with the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame_sha256: Option<String>,
    /// Which take of a job with `variants:` this record drives (1-based; saved as
    /// `variant-<n>.json` beside `job.json`). `None`: the job itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<u32>,
    /// The takes of a job with `variants:`, as they ended (filled when the last one ends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub takes: Vec<Take>,
    /// The job's key in the dedupe ledger (inputs' bytes and effective settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    /// The earlier job whose videos this one delivered instead of generating (no request, no cost);
    /// for a take of a job with variants, the earlier job whose take it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<ReusedFrom>,
    /// The failure code of a task Runway refused for a reason the same inputs and settings cannot
    /// escape (moderation, an unusable asset): the dedupe ledger remembers the refusal, so an
    /// identical job is not sent (and paid for) again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_for_good: Option<String>,
    /// dropreel's own files in the job folder have dot names (`.out.mp4`, `.error.txt`,
    /// `.result.json`), which no job file can have: a video named `out.mp4` or a text named
    /// `error.txt` is never overwritten. Records of earlier versions keep the plain names.
    #[serde(default)]
    pub dot_names: bool,
    /// The job, never sent, is going back into `inbox/` (the budget holds it): set before its first
    /// file moves, so a return a crash interrupted is finished, never resumed as a job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub returning: bool,
}

/// One take of a job with `variants:`, as it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Take {
    /// 1-based; its video is `<stem>-v<n>.mp4`.
    pub n: u32,
    /// The seed it was made with (`None` for a model that takes none).
    pub seed: Option<u64>,
    #[serde(default)]
    pub task_id: Option<String>,
    /// Set when it made a video.
    #[serde(default)]
    pub output_bytes: Option<u64>,
    #[serde(default)]
    pub submissions: u32,
    #[serde(default)]
    pub uncertain_submissions: u32,
    /// Why it made none.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// Not made, and not failed: the budget held it when the run ended (the hold's detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The local renderer's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<RenderInfo>,
    /// Set when the take was delivered from an earlier job's video (no request, no cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<ReusedFrom>,
    /// The take's tasks, with their prices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskCost>,
}

/// What the spend log counted for one create request: its credits (`None` for a model of unknown
/// price) and the day it counts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub credits: Option<u64>,
    pub day: String,
}

/// One task Runway made, with its prices: what the spend log counted before its create request,
/// what Runway estimated (`estimatedCost.credits`) and what it charged once the task ended
/// (`cost.credits`, 0 when refunded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCost {
    pub task_id: String,
    /// Counted in the spend log before the request (`None`: a model of unknown price).
    #[serde(default)]
    pub counted_credits: Option<u64>,
    /// The day that count is for.
    #[serde(default)]
    pub counted_day: String,
    #[serde(default)]
    pub estimated_credits: Option<f64>,
    /// What Runway charged, once the task ended (`None`: still running, or the answer had no
    /// usable `cost`).
    #[serde(default)]
    pub cost_credits: Option<u64>,
    /// The task ended.
    #[serde(default)]
    pub finished: bool,
    /// The spend log agrees with what the task cost (a reconciling line is written, or none was
    /// needed).
    #[serde(default)]
    pub settled: bool,
}

impl TaskCost {
    /// What the task cost, as far as it is known: Runway's `cost`, else (an answer without one)
    /// its estimate, else what was counted.
    pub fn charged(&self) -> Option<u64> {
        self.cost_credits
            .or_else(|| self.estimated_credits.map(whole_credits))
            .or(self.counted_credits)
    }
}

/// A price in credits as a whole number (rounded up: Runway's estimate is the most it charges).
pub fn whole_credits(c: f64) -> u64 {
    (c - 1e-9).ceil().max(0.0) as u64
}

/// Where a reused job's videos came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReusedFrom {
    pub job: String,
    pub task_ids: Vec<String>,
    /// The earlier videos, relative to the studio root.
    pub files: Vec<String>,
}

impl JobRecord {
    /// A job just claimed (state `claimed`, nothing sent yet).
    pub fn new(
        id: String,
        source: Source,
        sidecar: Option<String>,
        info: ImageInfo,
        spec: JobSpec,
        backend: &str,
    ) -> JobRecord {
        JobRecord {
            id,
            source,
            kind: JobKind::default(),
            sidecar,
            info,
            spec,
            backend: backend.to_string(),
            state: State::Claimed,
            claimed_at: now_rfc3339(),
            submitted_at: None,
            finished_at: None,
            task_id: None,
            task_status: None,
            progress: None,
            output_urls: Vec::new(),
            output_bytes: None,
            upload_uri: None,
            upload_at: None,
            last_upload: None,
            submissions: 0,
            uncertain_submissions: 0,
            transient_faults: 0,
            counting: None,
            tasks: Vec::new(),
            failure: None,
            delivery: None,
            render: None,
            source_sha256: None,
            source_changed: false,
            last_frame_sha256: None,
            variant: None,
            takes: Vec::new(),
            dedupe_key: None,
            reused_from: None,
            refused_for_good: None,
            dot_names: true,
            returning: false,
        }
    }

    /// A bad input, failed before any work (its job task moves it to `failed/`).
    pub fn failed_at_once(
        id: String,
        source: Source,
        sidecar: Option<String>,
        backend: &str,
        failure: Failure,
    ) -> JobRecord {
        let mut rec = JobRecord::new(
            id,
            source,
            sidecar,
            ImageInfo::UNKNOWN,
            JobSpec::default(),
            backend,
        );
        rec.state = State::Failed;
        rec.failure = Some(failure);
        rec
    }
}

/// A `runway://` upload and when it was made (unix seconds); valid 24 h.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub uri: String,
    pub at: u64,
}

/// The local renderer's report of one clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderInfo {
    pub motion: String,
    pub zoom: f64,
    pub fps: u32,
    pub frames: u32,
    pub width: u32,
    pub height: u32,
    /// Average bitrate of the H.264 stream as encoded, bits per second.
    pub bitrate: u32,
    /// The encoder's target bitrate (unknown in records of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_bitrate: Option<u32>,
    /// Wall time of decoding, rendering and encoding.
    pub encode_seconds: f64,
}

impl JobRecord {
    /// Why the job failed, as recorded (or a plain note when a crash lost the reason).
    pub fn failure_or_default(&self) -> Failure {
        self.failure.clone().unwrap_or(Failure {
            message: "the job had failed before dropreel stopped".into(),
            advice: "move the file back into inbox/ to try again".into(),
            api: None,
        })
    }

    /// Whether nothing was ever sent for the job: claimed, no create request (not even one whose
    /// outcome is unknown). Only such a job goes back into `inbox/`: one sent before keeps its
    /// record, which a resubmission depends on.
    pub fn never_sent(&self) -> bool {
        self.state == State::Claimed && self.submissions == 0 && self.uncertain_submissions == 0
    }

    /// The upload of the job's (first) image, if one was made.
    pub fn upload(&self) -> Option<Upload> {
        Some(Upload {
            uri: self.upload_uri.clone()?,
            at: self.upload_at?,
        })
    }

    /// The image's name without its extension.
    pub fn stem(&self) -> &str {
        split_name(&self.source.name).0
    }

    /// The file this record is saved as in the job folder.
    pub fn state_file(&self) -> String {
        match self.variant {
            None => layout::STATE_FILE.to_string(),
            Some(n) => layout::variant_state_file(n),
        }
    }

    /// The extension of the job's videos: `mp4`, or what its output format makes (`mov`).
    pub fn video_ext(&self) -> &'static str {
        layout::video_ext(self.spec.output_ext.as_deref())
    }

    /// The finished video in the job folder (`.out.mp4`, or `.out-v<n>.mp4` for a take).
    pub fn output_file(&self) -> String {
        layout::job_video(self.dot_names, self.variant, self.video_ext())
    }

    /// The video of take `n` of this job, in its folder.
    pub fn take_output(&self, n: u32) -> String {
        layout::job_video(self.dot_names, Some(n), self.video_ext())
    }

    /// The poster of this job's video (of this take's, for a take's record), in its folder.
    pub fn poster_file(&self) -> String {
        layout::job_poster(self.variant)
    }

    /// The poster of take `n`'s video, in the job's folder.
    pub fn take_poster(&self, n: u32) -> String {
        layout::job_poster(Some(n))
    }

    /// The job's `result.json` in its folder, before it is moved into `done/`.
    pub fn result_file(&self) -> String {
        layout::job_result(self.dot_names)
    }

    /// The job's `error.txt` in its folder, before it is moved into `failed/`.
    pub fn error_file(&self) -> String {
        layout::job_error(self.dot_names)
    }

    /// The video while it is written.
    pub fn output_part(&self) -> String {
        layout::job_video_part(self.dot_names, self.variant, self.video_ext())
    }

    /// The PNG made for sending an image (`last`: the last keyframe) in a format the API does not
    /// take.
    pub fn converted_file(&self, last: bool) -> String {
        layout::job_converted(last, self.variant)
    }

    /// Which video the job delivers under its stem: a video job's source is an MP4 itself, so its
    /// result is named apart.
    pub fn output(&self) -> Output {
        match self.kind {
            JobKind::Video => Output::Restyled,
            JobKind::Image { .. } | JobKind::Text => Output::Clip,
        }
    }

    /// Every name the finished job has in `folder` (a path under the studio) as `stem`: its videos
    /// (each take's that made one), their posters, its `result.json` or `error.txt`.
    pub fn delivered(&self, folder: &str, stem: &str) -> layout::Delivered {
        layout::Delivered {
            folder: folder.to_string(),
            stem: stem.to_string(),
            output: self.output(),
            ext: self.video_ext(),
            takes: (!self.takes.is_empty()).then(|| {
                self.takes
                    .iter()
                    .filter(|t| t.output_bytes.is_some())
                    .map(|t| t.n)
                    .collect()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 23, item 3 — a record of a version that kept no prices still loads.
    #[test]
    fn a_record_without_prices_loads_and_one_with_them_reads_back() {
        let source = Source {
            name: "a.png".into(),
            ..Source::default()
        };
        let mut rec = JobRecord::new(
            "j1".into(),
            source,
            None,
            ImageInfo::UNKNOWN,
            JobSpec::default(),
            "runway",
        );
        rec.counting = Some(Counted {
            credits: Some(25),
            day: "2026-12-08".into(),
        });
        rec.tasks.push(TaskCost {
            task_id: "t1".into(),
            counted_credits: Some(25),
            counted_day: "2026-12-08".into(),
            estimated_credits: Some(35.0),
            cost_credits: None,
            finished: true,
            settled: false,
        });
        let mut v = serde_json::to_value(&rec).unwrap();
        let back: JobRecord = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, rec);
        // The estimate stands for a task with no cost.
        assert_eq!(back.tasks[0].charged(), Some(35));
        let old = v.as_object_mut().unwrap();
        old.remove("tasks");
        old.remove("counting");
        let old: JobRecord = serde_json::from_value(v).unwrap();
        assert!(old.tasks.is_empty() && old.counting.is_none());
        let take: Take = serde_json::from_str(r#"{"n": 1, "seed": 7}"#).unwrap();
        assert!(take.tasks.is_empty());
    }
}
