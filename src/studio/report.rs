//! What a finished job leaves beside its files: `done/<stem>.result.json` ([`ResultFile`]) and
//! `failed/<stem>.error.txt` ([`ErrorText`]: what went wrong, why, and what to do, in a designer's
//! words). Each has one writer and one reader here: the job tasks write them, the dashboard and
//! the dedupe ledger read them back through the same types. The keys and values of `result.json`
//! are a public format (`docs/guide.md`; users' scripts read it): a field is only ever added, and
//! files of earlier versions still read (a field missing or of another type reads as unset).

use std::path::Path;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::job::{ImageInfo, JobKind};
use crate::studio::layout;
use crate::studio::record::{Failure, JobRecord, ReusedFrom, TaskCost};

/// A field as written, or its default when a file of another version has it missing or of another
/// type (so one odd field never hides the whole file).
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(T::deserialize(v).unwrap_or_default())
}

/// A field that is written whenever it applies, `null` included: present in the file (of any
/// value) is `Some`.
fn present<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(Some(T::deserialize(v).ok()))
}

/// The takes of a `result.json`, each one that reads (an entry of another shape is left out).
fn lenient_takes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<TakeResult>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => Some(
            items
                .into_iter()
                .filter(Value::is_object)
                .filter_map(|t| TakeResult::deserialize(t).ok())
                .collect(),
        ),
        _ => None,
    })
}

/// `done/<stem>.result.json`: what a delivered job was made from and with, what it cost and how it
/// went. Written with its keys in alphabetical order, `null` for what does not apply; the keys
/// below the render's and after `source_sha256` are present only when they apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResultFile {
    /// The job's file name (under `inbox/<folder>/`).
    #[serde(deserialize_with = "lenient")]
    pub source: String,
    #[serde(deserialize_with = "lenient")]
    pub folder: String,
    #[serde(deserialize_with = "lenient")]
    pub preset: Option<String>,
    /// `image`, `text` or `video`.
    #[serde(deserialize_with = "lenient")]
    pub kind: String,
    /// The API path (none for a local render).
    #[serde(deserialize_with = "lenient")]
    pub endpoint: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub inputs: Vec<InputResult>,
    #[serde(deserialize_with = "lenient")]
    pub sidecar: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub job_id: String,
    #[serde(deserialize_with = "lenient")]
    pub backend: String,
    #[serde(deserialize_with = "lenient")]
    pub model: String,
    #[serde(deserialize_with = "lenient")]
    pub prompt: String,
    #[serde(deserialize_with = "lenient")]
    pub ratio: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub duration: u32,
    #[serde(deserialize_with = "lenient")]
    pub seed: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub task_id: Option<String>,
    /// The image's header (an image job's only).
    #[serde(deserialize_with = "lenient")]
    pub image: Option<ImageInfo>,
    #[serde(deserialize_with = "lenient")]
    pub claimed_at: String,
    #[serde(deserialize_with = "lenient")]
    pub submitted_at: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub finished_at: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub delivered_at: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub output_bytes: Option<u64>,
    /// Credits Runway charged: the sum of its tasks' `cost.credits` (a task whose answer had none:
    /// its estimate); 0 when reused; unknown: `null`. Records of versions that kept no prices:
    /// the catalog's price.
    #[serde(deserialize_with = "lenient")]
    pub credits: Option<Number>,
    #[serde(deserialize_with = "lenient")]
    pub submissions: u32,
    #[serde(deserialize_with = "lenient")]
    pub retries: u32,
    #[serde(deserialize_with = "lenient")]
    pub source_sha256: Option<String>,
    // Present only when they apply.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub source_changed: Option<bool>,
    /// The sum of Runway's estimates (`estimatedCost.credits`) of its tasks, when it sent them.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub estimated_credits: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub warning: Option<String>,
    /// The model's `resolution`, when the job set one.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub resolution: Option<String>,
    /// The model's `outputFormat` (`prores`), when the job set one other than MP4.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub output_format: Option<String>,
    /// The extension of the videos delivered (`mov`) when not `mp4`.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub video_ext: Option<String>,
    // A local render's report.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub motion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub zoom: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub fps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub frames: Option<u32>,
    /// `<width>x<height>`.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub bitrate: Option<u32>,
    /// Present (maybe `null`) with a local render's report.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub target_bitrate: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub encode_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub extra: Option<Map<String, Value>>,
    /// The takes of a job with `variants:`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_takes"
    )]
    pub variants: Option<Vec<TakeResult>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub reused_from: Option<ReusedFrom>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub possible_double_charge: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub note: Option<String>,
}

/// A file the job was made from, with its role and SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InputResult {
    #[serde(deserialize_with = "lenient")]
    pub name: String,
    /// `image`, `prompt`, `video` or `last_frame`.
    #[serde(deserialize_with = "lenient")]
    pub role: String,
    #[serde(deserialize_with = "lenient")]
    pub sha256: Option<String>,
}

/// One take of a job with `variants:`, as `result.json` lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TakeResult {
    /// 1-based (0: missing in the file).
    #[serde(deserialize_with = "lenient")]
    pub n: u32,
    /// Its video beside the `result.json` (a plain name), when it made one.
    #[serde(deserialize_with = "lenient")]
    pub file: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub seed: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub task_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub output_bytes: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub motion: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub failed: Option<TakeFailed>,
    #[serde(deserialize_with = "lenient")]
    pub held: Option<TakeHeld>,
    #[serde(deserialize_with = "lenient")]
    pub reused_from: Option<ReusedFrom>,
}

/// Why a take made no video.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TakeFailed {
    #[serde(deserialize_with = "lenient")]
    pub reason: String,
    #[serde(deserialize_with = "lenient")]
    pub advice: String,
    #[serde(deserialize_with = "lenient")]
    pub api: Option<String>,
}

/// A take the budget held when the run ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TakeHeld {
    #[serde(deserialize_with = "lenient")]
    pub reason: String,
    #[serde(deserialize_with = "lenient")]
    pub advice: String,
}

impl ResultFile {
    /// The `result.json` of a delivered job, whose files in `done/` are named `stem`.
    pub fn of(rec: &JobRecord, backend: &str, stem: &str) -> ResultFile {
        let s = &rec.spec;
        let mut r = ResultFile {
            source: rec.source.name.clone(),
            folder: rec.source.folder.clone(),
            preset: rec.source.preset.clone(),
            kind: rec.kind.name().to_string(),
            endpoint: Some(rec.kind.endpoint().path().to_string()),
            inputs: inputs(rec),
            sidecar: rec.sidecar.clone(),
            job_id: rec.id.clone(),
            backend: backend.to_string(),
            model: s.model.clone(),
            prompt: s.prompt.clone(),
            ratio: s.ratio.clone(),
            duration: s.duration,
            seed: s.seed,
            task_id: rec.task_id.clone(),
            image: match rec.kind {
                JobKind::Image { .. } => Some(rec.info),
                JobKind::Text | JobKind::Video => None,
            },
            claimed_at: rec.claimed_at.clone(),
            submitted_at: rec.submitted_at.clone(),
            finished_at: rec.finished_at.clone(),
            delivered_at: Some(crate::studio::clock::now_rfc3339()),
            output_bytes: rec.output_bytes,
            credits: credits(rec).map(Number::from),
            estimated_credits: estimated_credits(rec),
            submissions: rec.submissions,
            retries: rec.transient_faults,
            source_sha256: rec.source_sha256.clone(),
            resolution: s.resolution.clone(),
            output_format: s.output_format.clone(),
            video_ext: s.output_ext.clone(),
            ..ResultFile::default()
        };
        if rec.source_changed {
            r.source_changed = Some(true);
            r.warning = Some(
                "the image changed after dropreel took it (its writer kept writing): the video was \
                 made from different bytes than the file beside it"
                    .into(),
            );
        }
        if let Some(x) = &rec.render {
            r.motion = Some(x.motion.clone());
            r.zoom = Some(x.zoom);
            r.fps = Some(x.fps);
            r.frames = Some(x.frames);
            r.size = Some(format!("{}x{}", x.width, x.height));
            r.bitrate = Some(x.bitrate);
            r.target_bitrate = Some(x.target_bitrate);
            // A local render calls no API.
            r.endpoint = None;
            r.encode_seconds = Some(x.encode_seconds);
            r.task_id = None;
            r.submitted_at = None;
        }
        if !s.extra.is_empty() {
            r.extra = Some(s.extra.clone());
        }
        if !rec.takes.is_empty() {
            let names = rec.delivered("", stem);
            r.variants = Some(
                rec.takes
                    .iter()
                    .map(|t| TakeResult {
                        n: t.n,
                        file: t.output_bytes.map(|_| names.video_name(Some(t.n))),
                        seed: t.seed,
                        task_id: t.task_id.clone(),
                        output_bytes: t.output_bytes,
                        motion: t.render.as_ref().map(|x| x.motion.clone()),
                        failed: t.failure.as_ref().map(|f| TakeFailed {
                            reason: f.message.clone(),
                            advice: f.advice.clone(),
                            api: f.api.clone(),
                        }),
                        held: t.held.as_ref().map(|why| TakeHeld {
                            reason: format!("the budget held it when the run ended: {why}"),
                            advice: "it was not sent and costs nothing; to make it, drop the file \
                                     again with this take's seed and variants: 1"
                                .into(),
                        }),
                        reused_from: t.reused_from.clone(),
                    })
                    .collect(),
            );
            r.seed = None;
            r.task_id = None;
        }
        if let Some(from) = &rec.reused_from {
            r.reused_from = Some(from.clone());
            r.task_id = None;
            r.submitted_at = None;
        }
        if rec.uncertain_submissions > 0 {
            r.possible_double_charge = Some(rec.uncertain_submissions);
            r.note = Some(
                "a create request's outcome was unknown (dropreel stopped, the answer was lost, or \
                 a server error came back that may have followed the task's creation) and the job \
                 was submitted again; Runway may have charged for an extra task. Check the usage \
                 page."
                    .into(),
            );
        }
        r
    }

    /// The file's bytes: pretty JSON, keys in alphabetical order, a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Through a `Value`, whose map keeps keys sorted: the order files have always had.
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut out = serde_json::to_vec_pretty(&value).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The `result.json` at `path`; `None` when it cannot be read, is not JSON or names no job.
    pub fn read(path: &Path) -> Option<ResultFile> {
        let file: ResultFile = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        (!file.job_id.is_empty()).then_some(file)
    }

    /// The extension of its videos (`mp4` unless it names another that videos are delivered
    /// with: the file is not trusted to name anything else).
    pub fn video_ext(&self) -> &'static str {
        layout::video_ext(self.video_ext.as_deref())
    }

    /// Which video its job delivered under its stem.
    pub fn output(&self) -> layout::Output {
        if self.kind == JobKind::Video.name() {
            layout::Output::Restyled
        } else {
            layout::Output::Clip
        }
    }
}

/// The `result.json` of a delivered job, whose files in `done/` are named `stem`.
pub fn result_json(rec: &JobRecord, backend: &str, stem: &str) -> Vec<u8> {
    ResultFile::of(rec, backend, stem).to_bytes()
}

/// Every task Runway made for the job (each take's, for a job with variants).
fn tasks(rec: &JobRecord) -> impl Iterator<Item = &TaskCost> {
    rec.tasks
        .iter()
        .chain(rec.takes.iter().flat_map(|t| t.tasks.iter()))
}

/// What the job cost: what Runway charged for its tasks ([`TaskCost::charged`]), 0 when reused
/// (and for each take reused); `None` when a price is not known. A record of a version that kept
/// no prices: the catalog's price for each video made.
pub fn credits(rec: &JobRecord) -> Option<u64> {
    if rec.reused_from.is_some() {
        return Some(0);
    }
    if tasks(rec).next().is_some() {
        return tasks(rec).map(TaskCost::charged).sum();
    }
    // The catalog's price (`budget.rates` is the spend log's, which knows the config).
    let no_rates = Default::default();
    let learnt = Default::default();
    let one = crate::studio::ledger::spend::cost(&rec.spec, &no_rates, &learnt)?;
    if rec.takes.is_empty() {
        return Some(one);
    }
    Some(
        one * rec
            .takes
            .iter()
            .filter(|t| t.output_bytes.is_some() && t.reused_from.is_none())
            .count() as u64,
    )
}

/// The sum of Runway's estimates of the job's tasks; `None` when it sent none.
pub fn estimated_credits(rec: &JobRecord) -> Option<f64> {
    tasks(rec)
        .filter_map(|t| t.estimated_credits)
        .fold(None, |sum, e| Some(sum.unwrap_or(0.0) + e))
}

/// Every file the job was made from, with its SHA-256 and its role.
fn inputs(rec: &JobRecord) -> Vec<InputResult> {
    let mut v = vec![InputResult {
        name: rec.source.name.clone(),
        role: match rec.kind {
            JobKind::Image { .. } => "image",
            JobKind::Text => "prompt",
            JobKind::Video => "video",
        }
        .into(),
        sha256: rec.source_sha256.clone(),
    }];
    if let Some(last) = rec.kind.last_frame() {
        v.push(InputResult {
            name: last.to_string(),
            role: "last_frame".into(),
            sha256: rec.last_frame_sha256.clone(),
        });
    }
    v
}

/// How `error.txt` says what went wrong, what to do, and which job it was: the writer's words and
/// the reader's marks.
const WHAT: &str = "What went wrong:";
const TODO: &str = "What to do:";
const JOB: &str = "Job ";

/// `failed/<stem>.error.txt`: what a failed job was made from, what went wrong, what to do, how to
/// try again (`dropreel retry`, or moving the files back by hand), the server's words, and the job.
/// Written as plain text for a designer; [`ErrorText::read`] reads back what the dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorText {
    /// The job's file (and its last keyframe, if any).
    pub made_from: String,
    /// What went wrong (no final full stop).
    pub what: Option<String>,
    /// What to do (no final full stop).
    pub todo: Option<String>,
    /// The name `dropreel retry` takes, the files it moves back and the folder they go to.
    pub retry: Option<(String, Vec<String>, String)>,
    /// The server's own words.
    pub api: Option<String>,
    /// The job's id.
    pub job: Option<String>,
    /// When it failed (RFC 3339).
    pub at: Option<String>,
    /// The whole text, as read (empty for one being written).
    pub text: String,
}

impl ErrorText {
    /// The `error.txt` of a failed job whose files in `failed/` are named `stem`.
    pub fn of(rec: &JobRecord, failure: &Failure, stem: &str) -> ErrorText {
        let made_from = match rec.kind.last_frame() {
            Some(last) => format!("{} and {last}", rec.source.name),
            None => rec.source.name.clone(),
        };
        // The job's files as failed/ names them (a taken name gets a `-2`).
        let mut files = vec![layout::input_name(stem, &rec.source.name)];
        files.extend(rec.sidecar.as_deref().map(|s| layout::input_name(stem, s)));
        if let Some(last) = rec.kind.last_frame() {
            files.push(layout::last_frame_name(stem, last));
        }
        let (name, inbox) = match rec.source.folder.as_str() {
            "" => (stem.to_string(), "inbox/".to_string()),
            f => (format!("{f}/{stem}"), format!("inbox/{f}/")),
        };
        ErrorText {
            made_from,
            what: Some(failure.message.trim_end_matches('.').to_string()),
            todo: Some(failure.advice.trim_end_matches('.').to_string()),
            retry: Some((name, files, inbox)),
            api: failure.api.clone(),
            job: Some(rec.id.clone()),
            at: Some(crate::studio::clock::now_rfc3339()),
            text: String::new(),
        }
    }

    /// The text written.
    pub fn render(&self) -> String {
        let mut t = format!(
            "dropreel could not turn {} into a video.\n\n\
             {WHAT} {}.\n\n\
             {TODO} {}.\n",
            self.made_from,
            self.what.as_deref().unwrap_or_default(),
            self.todo.as_deref().unwrap_or_default()
        );
        if let Some((name, files, inbox)) = &self.retry {
            t.push_str(&format!(
                "\nTo try again once it is fixed, run `dropreel retry {name}` in the studio folder: it \
                 moves {} back into {inbox} (or move them there yourself).\n",
                files.join(", ")
            ));
        }
        if let Some(api) = &self.api {
            t.push_str(&format!("\nThe server said: {api}\n"));
        }
        t.push_str(&format!(
            "\n{JOB}{}, {}\n",
            self.job.as_deref().unwrap_or_default(),
            self.at.as_deref().unwrap_or_default()
        ));
        t
    }

    /// What an `error.txt` says, as far as it says it (a file of another version, or one edited by
    /// hand, may lack a part): what went wrong, what to do, the job.
    pub fn read(text: &str) -> ErrorText {
        let line = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(|l| l.trim().trim_end_matches('.').to_string())
        };
        ErrorText {
            made_from: String::new(),
            what: line(WHAT),
            todo: line(TODO),
            retry: None,
            api: None,
            job: text
                .lines()
                .find_map(|l| l.strip_prefix(JOB)?.split(',').next())
                .map(str::to_string),
            at: None,
            text: text.to_string(),
        }
    }

    /// What went wrong and what to do, in one line (the whole text when it says neither).
    pub fn summary(&self) -> String {
        match (&self.what, &self.todo) {
            (Some(what), Some(todo)) => format!("{what} — {todo}"),
            (Some(what), None) => what.clone(),
            _ => self.text.trim().to_string(),
        }
    }
}

/// The `error.txt` of a failed job whose files in `failed/` are named `stem` (see [`ErrorText`]).
pub fn error_text(rec: &JobRecord, failure: &Failure, stem: &str) -> String {
    ErrorText::of(rec, failure, stem).render()
}

#[cfg(test)]
mod tests;
