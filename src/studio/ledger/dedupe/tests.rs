//! Tests of [`super`].

use super::*;

/// `rel` (under the studio `root`) written with `bytes`, as a recorded video of take `take`.
fn video_at(root: &Path, rel: &str, bytes: &[u8], take: u32) -> Video {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    let seen = identify(&path).unwrap();
    Video {
        take,
        task_id: Some(format!("task-{take}")),
        seed: None,
        bytes: seen.bytes,
        sha256: seen.sha256,
        copies: vec![Placed {
            file: rel.into(),
            id: seen.id,
        }],
    }
}

fn generates(look: Look) -> Vec<Found> {
    match look {
        Look::Generate(found) => found,
        other => panic!("expected Generate, got {other:?}"),
    }
}

fn reuses(look: Look) -> Vec<Found> {
    match look {
        Look::Reuse(found) => found,
        other => panic!("expected Reuse, got {other:?}"),
    }
}

#[test]
fn an_unreadable_entry_is_waited_for_while_young_and_set_aside_once_old() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    fs::create_dir_all(&l.dir).unwrap();
    // Created but not yet written (a claim in progress where hard links fail).
    let path = l.path("k");
    fs::write(&path, b"").unwrap();
    assert!(matches!(
        l.look("k", "b", 1, |_| true).unwrap(),
        Look::Wait(_)
    ));
    assert!(path.exists(), "a young entry is left to its writer");
    // Still unreadable long after: damaged, so it is set aside and this job claims the key.
    let old = SystemTime::now() - 2 * BEING_WRITTEN;
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(generates(l.look("k", "b", 1, |_| true).unwrap()).is_empty());
    let e: Entry = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(e.job, "b");
}

#[test]
fn one_job_claims_a_key_the_other_waits_then_reuses() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    generates(l.look("k", "a", 1, |_| true).unwrap());
    assert!(
        generates(l.look("k", "a", 1, |_| true).unwrap()).is_empty(),
        "a resumed owner"
    );
    assert_eq!(
        l.look("k", "b", 1, |_| true).unwrap(),
        Look::Wait("a".into())
    );
    let v = video_at(d.path(), "done/cat.mp4", b"video", 1);
    l.record_done("k", &Entry::done("a", 1, vec![v.clone()]))
        .unwrap();
    let found = reuses(l.look("k", "b", 1, |_| true).unwrap());
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].job.as_str(), &found[0].video), ("a", &v));
    assert_eq!(found[0].copy.file, "done/cat.mp4");
    // The videos moved away: made again, by the one who looks first.
    fs::remove_file(d.path().join("done/cat.mp4")).unwrap();
    assert!(generates(l.look("k", "b", 1, |_| true).unwrap()).is_empty());
    assert_eq!(
        l.look("k", "c", 1, |_| true).unwrap(),
        Look::Wait("b".into())
    );
}

#[test]
fn a_failed_or_vanished_owner_gives_the_key_up() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    generates(l.look("k", "a", 1, |_| true).unwrap());
    l.release("k", "b").unwrap();
    assert_eq!(
        l.look("k", "b", 1, |_| true).unwrap(),
        Look::Wait("a".into())
    );
    l.release("k", "a").unwrap();
    generates(l.look("k", "b", 1, |_| true).unwrap());
    // b's job folder is gone without a delivery (a crash midway): c takes over.
    generates(l.look("k", "c", 1, |j| j != "b").unwrap());
}

#[test]
fn of_many_threads_claiming_one_key_exactly_one_generates() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    let winners: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16)
            .map(|i| {
                let l = l.clone();
                s.spawn(move || l.look("k", &format!("j{i}"), 1, |_| true).unwrap())
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .filter(|l| matches!(l, Look::Generate(_)))
            .count()
    });
    assert_eq!(winners, 1);
}

// See: issue 21, item 1 — a path is not a video: what is there now must be what was recorded.
#[test]
fn only_a_copy_that_is_still_the_recorded_video_is_reused() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    let v = video_at(d.path(), "done/cat.mp4", b"the first video", 1);
    l.record_done("k", &Entry::done("a", 1, vec![v])).unwrap();
    let cat = d.path().join("done/cat.mp4");

    // Another video of the same size in its place: not it.
    fs::remove_file(&cat).unwrap();
    fs::write(&cat, b"the other video").unwrap();
    assert!(l.peek("k").is_none());
    // The same bytes written anew (another inode, another mtime): it, by its hash.
    fs::remove_file(&cat).unwrap();
    fs::write(&cat, b"the first video").unwrap();
    assert_eq!(l.peek("k").unwrap().files, ["done/cat.mp4"]);
    // A symlink to the same bytes: not a delivered file.
    #[cfg(unix)]
    {
        let elsewhere = d.path().join("elsewhere.mp4");
        fs::rename(&cat, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &cat).unwrap();
        assert!(l.peek("k").is_none());
        assert!(generates(l.look("k", "b", 1, |_| true).unwrap()).is_empty());
    }
}

// See: issue 21, item 1 — an entry of an earlier version names paths only: trusted while the
// result.json beside the path names the entry's job.
#[test]
fn an_entry_of_an_earlier_version_is_trusted_only_while_its_result_json_names_its_job() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    fs::create_dir_all(d.path().join("done")).unwrap();
    fs::create_dir_all(&l.dir).unwrap();
    let old = json!({"state": "done", "job": "a", "at": "t", "task_ids": ["task-a"],
            "files": ["done/cat.mp4"]});
    fs::write(l.path("k"), old.to_string()).unwrap();
    fs::write(d.path().join("done/cat.mp4"), b"a video").unwrap();
    let result = |job: &str| json!({"job_id": job, "kind": "image", "seed": 7}).to_string();
    fs::write(d.path().join("done/cat.result.json"), result("b")).unwrap();
    assert!(l.peek("k").is_none(), "another job's delivery");
    fs::write(d.path().join("done/cat.result.json"), result("a")).unwrap();
    let found = reuses(l.look("k", "c", 1, |_| true).unwrap());
    assert_eq!(found[0].video.task_id.as_deref(), Some("task-a"));
    assert_eq!(found[0].video.seed, Some(7));
    assert_eq!(found[0].video.bytes, 7);
}

// See: issue 21, item 2 — a kill after the move into done/ and before the entry's last write.
#[test]
fn a_pending_entry_whose_job_delivered_is_completed_from_its_result_json() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    generates(l.look("k", "a", 2, |_| true).unwrap());
    fs::create_dir_all(d.path().join("done/client")).unwrap();
    for n in [1, 2] {
        fs::write(d.path().join(format!("done/client/cat-v{n}.mp4")), [n; 9]).unwrap();
    }
    let result = json!({"job_id": "a", "kind": "image", "variants": [
            {"n": 1, "file": "cat-v1.mp4", "seed": 5, "task_id": "t1"},
            {"n": 2, "file": "cat-v2.mp4", "seed": 6, "task_id": "t2"}]});
    fs::write(
        d.path().join("done/client/cat.result.json"),
        result.to_string(),
    )
    .unwrap();
    // While a's folder holds a job, it is in flight; once it holds none, it delivered.
    assert_eq!(
        l.look("k", "b", 2, |_| true).unwrap(),
        Look::Wait("a".into())
    );
    let found = reuses(l.look("k", "b", 2, |_| false).unwrap());
    let files: Vec<&str> = found.iter().map(|f| f.copy.file.as_str()).collect();
    assert_eq!(files, ["done/client/cat-v1.mp4", "done/client/cat-v2.mp4"]);
    assert_eq!(found[1].video.seed, Some(6));
    assert_eq!(l.read_entry("k").unwrap().state, EntryState::Done);
    // A job that delivered nothing: taken over.
    fs::remove_file(l.path("k")).unwrap();
    generates(l.look("k", "z", 1, |_| true).unwrap());
    generates(l.look("k", "y", 1, |_| false).unwrap());
}

// See: issue 21, item 3.
#[test]
fn a_refusal_is_remembered_for_a_day_then_forgotten() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    generates(l.look("k", "a", 1, |_| true).unwrap());
    let why = Failure {
        message: "moderation".into(),
        advice: "change it".into(),
        api: Some("failureCode SAFETY.INPUT.IMAGE: no".into()),
    };
    let error_file = Some("failed/cat.error.txt".to_string());
    fs::create_dir_all(d.path().join("failed")).unwrap();
    fs::write(d.path().join("failed/cat.error.txt"), "refused").unwrap();
    l.record_refused("k", "b", &why).unwrap();
    assert_eq!(
        l.read_entry("k").unwrap().state,
        EntryState::Pending,
        "not b's"
    );
    l.record_refused("k", "a", &why).unwrap();
    l.refusal_kept_by("k", "a", error_file.as_deref().unwrap())
        .unwrap();
    let Look::Refused(e) = l.look("k", "b", 1, |_| true).unwrap() else {
        panic!("refused");
    };
    assert_eq!(e.refusal, Some(why));
    assert!(l.peek("k").is_none());
    // A day later: sent again.
    let mut e = l.read_entry("k").unwrap();
    let fresh = e.clone();
    e.at = humantime::format_rfc3339_seconds(SystemTime::now() - REFUSAL_MEMORY).to_string();
    l.write("k", &e).unwrap();
    generates(l.look("k", "c", 1, |_| true).unwrap());
    // Or at once, once the refused job left failed/ (`dropreel retry`, the dashboard's Retry):
    // someone chose to try it again.
    l.write("k", &fresh).unwrap();
    assert!(matches!(
        l.look("k", "d", 1, |_| true).unwrap(),
        Look::Refused(_)
    ));
    fs::remove_file(d.path().join("failed/cat.error.txt")).unwrap();
    generates(l.look("k", "d", 1, |_| true).unwrap());
}

// See: issue 21, items 4 and 5 — takes still there are reused, from any copy recorded.
#[test]
fn the_takes_still_there_are_found_from_any_copy() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    let v1 = video_at(d.path(), "done/cat-v1.mp4", b"one", 1);
    let v2 = video_at(d.path(), "done/cat-v2.mp4", b"two", 2);
    l.record_done("k", &Entry::done("a", 2, vec![v1, v2]))
        .unwrap();
    // A reuse delivers a copy of each take; recorded, they serve when the first is gone.
    let found = reuses(l.look("k", "b", 2, |_| true).unwrap());
    let mut copies = Vec::new();
    for f in &found {
        let dst = d.path().join(format!("done/b-v{}.mp4", f.video.take));
        assert!(l.copy_video(f, &dst).unwrap());
        copies.push((
            f.video.take,
            identify(&dst).unwrap(),
            format!("done/b-v{}.mp4", f.video.take),
        ));
    }
    l.add_copies("k", "a", &found, &copies).unwrap();
    fs::remove_file(d.path().join("done/cat-v1.mp4")).unwrap();
    let found = reuses(l.look("k", "c", 2, |_| true).unwrap());
    assert_eq!(found[0].copy.file, "done/b-v1.mp4");
    assert_eq!(found[1].copy.file, "done/cat-v2.mp4");
    // Take 2 gone in every copy: take 1 is found, and c makes take 2.
    fs::remove_file(d.path().join("done/cat-v2.mp4")).unwrap();
    fs::write(d.path().join("done/b-v2.mp4"), b"owt").unwrap();
    let found = generates(l.look("k", "c", 2, |_| true).unwrap());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].video.take, 1);
    assert_eq!(l.read_entry("k").unwrap().job, "c", "claimed by c");
}

// See: issue 21, item 5 — twins delivered at once each record their copy; none is lost.
#[test]
fn copies_recorded_by_many_jobs_at_once_are_all_kept() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    let v = video_at(d.path(), "done/x.mp4", b"video", 1);
    l.record_done("k", &Entry::done("a", 1, vec![v])).unwrap();
    let found = reuses(l.look("k", "b", 1, |_| true).unwrap());
    let root = d.path();
    std::thread::scope(|s| {
        for i in 0..12 {
            let (l, found) = (l.clone(), found.clone());
            s.spawn(move || {
                let rel = format!("done/copy{i}.mp4");
                assert!(l.copy_video(&found[0], &root.join(&rel)).unwrap());
                let seen = identify(&root.join(&rel)).unwrap();
                l.add_copies("k", "a", &found, &[(1, seen, rel)]).unwrap();
            });
        }
    });
    let copies = &l.read_entry("k").unwrap().videos[0].copies;
    assert_eq!(copies.len(), 13, "{copies:?}");
}

#[test]
fn a_copy_that_changed_after_it_was_found_is_not_delivered() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::new(d.path());
    let v = video_at(d.path(), "done/cat.mp4", b"video", 1);
    l.record_done("k", &Entry::done("a", 1, vec![v])).unwrap();
    let found = reuses(l.look("k", "b", 1, |_| true).unwrap());
    fs::remove_file(d.path().join("done/cat.mp4")).unwrap();
    fs::write(d.path().join("done/cat.mp4"), b"VIDEO").unwrap();
    let dst = d.path().join("out.mp4");
    assert!(!l.copy_video(&found[0], &dst).unwrap());
    assert!(!dst.exists());
}
