//! Tests of [`super`].

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
        ImageInfo::UNKNOWN,
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

use serde_json::{Value, json};

/// The untyped writer this file had before `ResultFile` (issue 22), kept to check the typed
/// one writes the same bytes.
fn old_result_json(rec: &JobRecord, backend: &str, stem: &str) -> Vec<u8> {
    let s = &rec.spec;
    let mut v = json!({
        "source": rec.source.name,
        "folder": rec.source.folder,
        "preset": rec.source.preset,
        "kind": rec.kind.name(),
        "endpoint": rec.kind.endpoint().path(),
        "inputs": old_inputs(rec),
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
        "delivered_at": "2026-12-07T00:00:00Z",
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
        v["variants"] = json!(
                rec.takes
                    .iter()
                    .map(|t| json!({
                        "n": t.n,
                        "file": t.output_bytes.map(|_| format!("{stem}-v{}.mp4", t.n)),
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
    let mut out = serde_json::to_vec_pretty(&v).unwrap();
    out.push(b'\n');
    out
}
fn old_inputs(rec: &JobRecord) -> Value {
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

/// A record that sets every optional part of `result.json`.
fn rich(takes: bool, render: bool) -> JobRecord {
    let mut rec = JobRecord::new(
        "j1".into(),
        crate::studio::source::Source::at("clientB/cat.png"),
        Some("cat.yaml".into()),
        ImageInfo::UNKNOWN,
        crate::job::JobSpec {
            model: "gen4_turbo".into(),
            prompt: "a cat".into(),
            ratio: Some("1280:720".into()),
            duration: 5,
            seed: Some(7),
            ..Default::default()
        },
        "runway",
    );
    rec.kind = JobKind::Image {
        last_frame: Some("cat.last.jpg".into()),
    };
    rec.spec.extra.insert("x".into(), json!({"y": [1, 2.5]}));
    rec.task_id = Some("t1".into());
    rec.source_changed = true;
    rec.uncertain_submissions = 2;
    rec.source_sha256 = Some("abc".into());
    rec.reused_from = takes.then(|| ReusedFrom {
        job: "j0".into(),
        task_ids: vec!["t0".into()],
        files: vec!["done/cat-v1.mp4".into()],
    });
    if render {
        rec.render = Some(crate::studio::record::RenderInfo {
            motion: "pan".into(),
            zoom: 1.25,
            fps: 24,
            frames: 120,
            width: 1280,
            height: 720,
            bitrate: 900_000,
            target_bitrate: None,
            encode_seconds: 0.5,
        });
    }
    if takes {
        let take = |n: u32| crate::studio::record::Take {
            n,
            seed: Some(u64::from(n)),
            task_id: Some(format!("t{n}")),
            output_bytes: (n != 2).then_some(10),
            submissions: 1,
            uncertain_submissions: 0,
            failure: (n == 2).then(|| Failure {
                message: "no".into(),
                advice: "try".into(),
                api: None,
            }),
            held: (n == 3).then(|| "over budget".into()),
            render: None,
            reused_from: None,
            tasks: Vec::new(),
        };
        rec.takes = vec![take(1), take(2), take(3)];
    }
    rec
}

// See: issue 22, item 2 — result.json became a typed struct; its bytes must not change.
#[test]
fn the_typed_result_json_writes_what_the_untyped_one_did_and_reads_back() {
    for (takes, render) in [(false, false), (true, false), (false, true), (true, true)] {
        let rec = rich(takes, render);
        let mut typed = ResultFile::of(&rec, "runway", "cat-2");
        typed.delivered_at = Some("2026-12-07T00:00:00Z".into());
        let bytes = typed.to_bytes();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            String::from_utf8(old_result_json(&rec, "runway", "cat-2")).unwrap()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cat-2.result.json");
        std::fs::write(&path, &bytes).unwrap();
        let back = ResultFile::read(&path).unwrap();
        assert_eq!(back.job_id, "j1");
        assert_eq!(back.to_bytes(), bytes, "what is read writes the same");
    }
}

#[test]
fn a_result_json_of_another_shape_still_reads_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.result.json");
    let odd = json!({"job_id": "j", "credits": 2.5, "seed": "x", "kind": 3,
            "variants": [{"n": 1, "file": "a-v1.mp4"}, 5, {"file": 2}]});
    std::fs::write(&path, odd.to_string()).unwrap();
    let r = ResultFile::read(&path).unwrap();
    assert_eq!(r.credits.and_then(|c| c.as_f64()), Some(2.5));
    assert_eq!(r.seed, None);
    let takes = r.variants.unwrap();
    assert_eq!(takes.len(), 2);
    assert_eq!(takes[0].file.as_deref(), Some("a-v1.mp4"));
    assert_eq!(takes[1].file, None);
    std::fs::write(&path, "{}").unwrap();
    assert!(
        ResultFile::read(&path).is_none(),
        "a file that names no job"
    );
}

#[test]
fn error_text_reads_back_what_it_says() {
    let f = Failure {
        message: "it broke.".into(),
        advice: "fix it".into(),
        api: None,
    };
    let rec = rich(false, false);
    let said = ErrorText::read(&error_text(&rec, &f, "cat"));
    assert_eq!(said.summary(), "it broke — fix it");
    assert_eq!(said.job.as_deref(), Some("j1"));
    assert_eq!(ErrorText::read("  just this \n").summary(), "just this");
}
