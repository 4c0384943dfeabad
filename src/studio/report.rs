//! What a finished job leaves beside its files: `done/<stem>.result.json` and
//! `failed/<stem>.error.txt` (what went wrong, why, and what to do, in a designer's words).

use serde_json::{Value, json};

use crate::job::JobKind;
use crate::studio::layout;
use crate::studio::record::{Failure, JobRecord};

/// The `result.json` of a delivered job, whose files in `done/` are named `stem`.
pub fn result_json(rec: &JobRecord, backend: &str, stem: &str) -> Vec<u8> {
    let s = &rec.spec;
    let mut v = json!({
        "source": rec.source.name,
        "folder": rec.source.folder,
        "preset": rec.source.preset,
        "kind": rec.kind.name(),
        "endpoint": rec.kind.endpoint().path(),
        "inputs": inputs(rec),
        "sidecar": rec.sidecar,
        "job_id": rec.id,
        "backend": backend,
        "model": s.model,
        "prompt": s.prompt,
        "ratio": s.ratio,
        "duration": s.duration,
        "seed": s.seed,
        "task_id": rec.task_id,
        "image": match rec.kind {
            JobKind::Image { .. } => json!({ "format": rec.info.format, "width": rec.info.width, "height": rec.info.height }),
            JobKind::Text | JobKind::Video => Value::Null,
        },
        "claimed_at": rec.claimed_at,
        "submitted_at": rec.submitted_at,
        "finished_at": rec.finished_at,
        "delivered_at": crate::studio::clock::now_rfc3339(),
        "output_bytes": rec.output_bytes,
        "credits": credits(rec),
        "submissions": rec.submissions,
        "retries": rec.transient_faults,
        "source_sha256": rec.source_sha256,
    });
    if rec.source_changed {
        v["source_changed"] = json!(true);
        v["warning"] = json!(
            "the image changed after dropreel took it (its writer kept writing): the video was made \
             from different bytes than the file beside it"
        );
    }
    if let Some(r) = &rec.render {
        v["motion"] = json!(r.motion);
        v["zoom"] = json!(r.zoom);
        v["fps"] = json!(r.fps);
        v["frames"] = json!(r.frames);
        v["size"] = json!(format!("{}x{}", r.width, r.height));
        v["bitrate"] = json!(r.bitrate);
        v["target_bitrate"] = json!(r.target_bitrate);
        // A local render calls no API.
        v["endpoint"] = Value::Null;
        v["encode_seconds"] = json!(r.encode_seconds);
        v["task_id"] = Value::Null;
        v["submitted_at"] = Value::Null;
    }
    if !s.extra.is_empty() {
        v["extra"] = Value::Object(s.extra.clone());
    }
    if !rec.takes.is_empty() {
        let names = rec.delivered("", stem);
        v["variants"] = json!(
            rec.takes
                .iter()
                .map(|t| json!({
                    "n": t.n,
                    "file": t.output_bytes.map(|_| names.video_name(Some(t.n))),
                    "seed": t.seed,
                    "task_id": t.task_id,
                    "output_bytes": t.output_bytes,
                    "motion": t.render.as_ref().map(|r| r.motion.clone()),
                    "failed": t.failure.as_ref().map(|f| json!({"reason": f.message, "advice": f.advice, "api": f.api})),
                    "held": t.held.as_ref().map(|why| json!({
                        "reason": format!("the budget held it when the run ended: {why}"),
                        "advice": "it was not sent and costs nothing; to make it, drop the file again with this take's seed and variants: 1",
                    })),
                    "reused_from": t.reused_from.as_ref().map(|r| json!({ "job": r.job, "task_ids": r.task_ids, "files": r.files })),
                }))
                .collect::<Vec<_>>()
        );
        v["seed"] = Value::Null;
        v["task_id"] = Value::Null;
    }
    if let Some(r) = &rec.reused_from {
        v["reused_from"] = json!({ "job": r.job, "task_ids": r.task_ids, "files": r.files });
        v["task_id"] = Value::Null;
        v["submitted_at"] = Value::Null;
    }
    if rec.uncertain_submissions > 0 {
        v["possible_double_charge"] = json!(rec.uncertain_submissions);
        v["note"] = json!(
            "a create request's outcome was unknown (dropreel stopped, the answer was lost, or a server \
             error came back that may have followed the task's creation) and the job was submitted \
             again; Runway may have charged for an extra task. Check the usage page."
        );
    }
    let mut out = serde_json::to_vec_pretty(&v).expect("a JSON value serialises");
    out.push(b'\n');
    out
}

/// What the job cost: the model's price for each video made (0 when reused, and for each take
/// reused; `None` when the price is not known).
pub fn credits(rec: &JobRecord) -> Option<u64> {
    if rec.reused_from.is_some() {
        return Some(0);
    }
    // The catalog's price (`budget.rates` is the spend log's, which knows the config).
    let one = crate::studio::ledger::spend::cost(&rec.spec, &Default::default())?;
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

/// Every file the job was made from, with its SHA-256 and its role.
fn inputs(rec: &JobRecord) -> Value {
    let mut v = vec![json!({
        "name": rec.source.name,
        "role": match rec.kind {
            JobKind::Image { .. } => "image",
            JobKind::Text => "prompt",
            JobKind::Video => "video",
        },
        "sha256": rec.source_sha256,
    })];
    if let Some(last) = rec.kind.last_frame() {
        v.push(json!({ "name": last, "role": "last_frame", "sha256": rec.last_frame_sha256 }));
    }
    Value::Array(v)
}

/// The `error.txt` of a failed job whose files in `failed/` are named `stem`: what it was made
/// from (the file, and its last keyframe if any), what went wrong, what to do, and how to try
/// again (`dropreel retry`, or moving the files back by hand).
pub fn error_text(rec: &JobRecord, failure: &Failure, stem: &str) -> String {
    let made_from = match rec.kind.last_frame() {
        Some(last) => format!("{} and {last}", rec.source.name),
        None => rec.source.name.clone(),
    };
    let mut t = format!(
        "dropreel could not turn {made_from} into a video.\n\n\
         What went wrong: {}.\n\n\
         What to do: {}.\n",
        failure.message.trim_end_matches('.'),
        failure.advice.trim_end_matches('.')
    );
    // The job's files as failed/ names them (a taken name gets a `-2`).
    let mut files = vec![layout::input_name(stem, &rec.source.name)];
    files.extend(rec.sidecar.as_deref().map(|s| layout::input_name(stem, s)));
    if let Some(last) = rec.kind.last_frame() {
        files.push(layout::last_frame_name(stem, last));
    }
    let folder = &rec.source.folder;
    let (name, inbox) = match folder.as_str() {
        "" => (stem.to_string(), "inbox/".to_string()),
        f => (format!("{f}/{stem}"), format!("inbox/{f}/")),
    };
    t.push_str(&format!(
        "\nTo try again once it is fixed, run `dropreel retry {name}` in the studio folder: it moves \
         {} back into {inbox} (or move them there yourself).\n",
        files.join(", ")
    ));
    if let Some(api) = &failure.api {
        t.push_str(&format!("\nThe server said: {api}\n"));
    }
    t.push_str(&format!(
        "\nJob {}, {}\n",
        rec.id,
        crate::studio::clock::now_rfc3339()
    ));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_says_what_and_what_to_do() {
        let f = Failure {
            message: "ratio 1280:768 is not offered by gen4_turbo".into(),
            advice: "fix the sidecar".into(),
            api: Some("HTTP 400: bad".into()),
        };
        let mut rec = JobRecord::new(
            "j1".into(),
            crate::studio::source::Source::at("clientB/cat.png"),
            Some("cat.yaml".into()),
            crate::job::ImageInfo::UNKNOWN,
            crate::job::JobSpec::default(),
            "runway",
        );
        rec.kind = JobKind::Image {
            last_frame: Some("cat.last.jpg".into()),
        };
        let t = error_text(&rec, &f, "cat-2");
        assert!(t.contains("What went wrong: ratio 1280:768"));
        assert!(t.contains("What to do: fix the sidecar."));
        // See: issue 21, item 5 — error.txt never mentioned `dropreel retry`.
        assert!(
            t.contains(
                "run `dropreel retry clientB/cat-2` in the studio folder: it moves cat-2.png, \
                 cat-2.yaml, cat-2.last.jpg back into inbox/clientB/"
            ),
            "{t}"
        );
        assert!(t.contains("HTTP 400: bad"));
        // See: issue 21, item 2 — a keyframe job's error.txt named only its first still.
        assert!(
            t.contains("could not turn cat.png and cat.last.jpg into a video"),
            "{t}"
        );
    }
}
