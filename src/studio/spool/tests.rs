//! Tests of [`super`].

use super::*;

#[test]
fn stems_follow_the_suffix_rule() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap();
    let done = d.path().join(DONE);
    assert_eq!(spool.reserve_stem(DONE, "cat").unwrap(), "cat");
    assert_eq!(
        spool.reserve_stem(DONE, "cat").unwrap(),
        "cat-2",
        "a reserved stem is taken"
    );
    // Files that appear behind our back count too (the folder's mtime moved).
    std::thread::sleep(Duration::from_millis(20));
    fs::write(done.join("dog.yaml"), "").unwrap();
    assert_eq!(spool.reserve_stem(DONE, "dog").unwrap(), "dog-2");
    std::thread::sleep(Duration::from_millis(20));
    fs::write(done.join("dog-2.mp4"), "").unwrap();
    assert_eq!(spool.reserve_stem(DONE, "dog").unwrap(), "dog-3");
    // `cat-2` is just a stem; `catalog.png` is not `cat.*`; `a.b.result.json` is an `a.b.*`.
    fs::write(done.join("catalog.png"), "").unwrap();
    fs::write(done.join("a.b.result.json"), "").unwrap();
    assert_eq!(spool.reserve_stem(DONE, "catalog-2").unwrap(), "catalog-2");
    assert_eq!(spool.reserve_stem(DONE, "a.b").unwrap(), "a.b-2");
    assert_eq!(spool.reserve_stem(DONE, "a").unwrap(), "a-2");
}

/// A job claimed from `inbox/<folder>` with a sidecar and a last keyframe, as `claim` leaves it.
fn claimed(spool: &Spool, folder: &str, copy_shared: bool) -> JobRecord {
    let inbox = spool.inbox().join(folder);
    fs::create_dir_all(&inbox).unwrap();
    for (name, bytes) in [
        ("cat.png", "image"),
        ("cat.yaml", "prompt: p"),
        ("cat.last.png", "last"),
    ] {
        fs::write(inbox.join(name), bytes).unwrap();
    }
    let rel = |n: &str| match folder {
        "" => n.to_string(),
        f => format!("{f}/{n}"),
    };
    let source = Source::at(&rel("cat.png"));
    let c = spool
        .claim(
            &source,
            Some(&rel("cat.yaml")),
            Some(&rel("cat.last.png")),
            copy_shared,
        )
        .unwrap()
        .unwrap();
    let mut rec = JobRecord::new(
        c.id,
        source,
        c.sidecar,
        crate::job::ImageInfo::UNKNOWN,
        crate::job::JobSpec::default(),
        "runway",
    );
    rec.kind = crate::job::JobKind::Image {
        last_frame: c.last_frame,
    };
    spool.save(&rec).unwrap();
    rec
}

#[test]
fn unclaim_puts_every_file_back_under_its_own_name_in_its_own_folder() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap();
    let mut rec = claimed(&spool, "client/shoot 1", false);
    let back = spool.unclaim(&mut rec).unwrap();
    assert_eq!(
        back,
        [
            "client/shoot 1/cat.yaml",
            "client/shoot 1/cat.last.png",
            "client/shoot 1/cat.png"
        ]
    );
    let inbox = spool.inbox().join("client/shoot 1");
    assert_eq!(fs::read_to_string(inbox.join("cat.png")).unwrap(), "image");
    assert_eq!(
        fs::read_to_string(inbox.join("cat.yaml")).unwrap(),
        "prompt: p"
    );
    assert_eq!(
        fs::read_to_string(inbox.join("cat.last.png")).unwrap(),
        "last"
    );
    assert!(spool.job_ids().unwrap().is_empty());
}

#[test]
fn unclaim_finishes_a_return_a_crash_cut_and_drops_a_shared_sidecar_copy() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap();
    // The sidecar was copied (other files of its stem kept it); the last keyframe went back
    // before the crash, the image half way (linked, not yet removed).
    let mut rec = claimed(&spool, "", true);
    rec.returning = true;
    spool.save(&rec).unwrap();
    let dir = spool.job_dir(&rec.id);
    fs::rename(dir.join("cat.last.png"), spool.inbox().join("cat.last.png")).unwrap();
    fs::hard_link(dir.join("cat.png"), spool.inbox().join("cat.png")).unwrap();
    spool.unclaim(&mut rec).unwrap();
    for name in ["cat.png", "cat.yaml", "cat.last.png"] {
        assert!(spool.inbox().join(name).is_file(), "{name}");
    }
    assert!(spool.job_ids().unwrap().is_empty());
}

#[test]
fn unclaim_never_overwrites_a_file_dropped_since_and_leaves_the_job_whole() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap();
    let mut rec = claimed(&spool, "", false);
    fs::write(spool.inbox().join("cat.png"), "a new cat").unwrap();
    let e = spool.unclaim(&mut rec).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert!(e.to_string().contains("inbox/cat.png"), "{e}");
    assert_eq!(
        fs::read_to_string(spool.inbox().join("cat.png")).unwrap(),
        "a new cat"
    );
    // Nothing moved, and the job is still a job (not one on its way back).
    let dir = spool.job_dir(&rec.id);
    for name in ["cat.png", "cat.yaml", "cat.last.png"] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    assert!(!spool.load(&rec.id).unwrap().returning);
}

// See: issue 21, item 2 — what is told of a delivery (the dedupe ledger's record) is told
// while the job folder still says where its files went, so a kill before it is delivered again.
#[test]
fn a_delivery_is_told_with_its_files_in_done_before_its_folder_goes() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap();
    fs::write(spool.inbox().join("cat.png"), b"image").unwrap();
    let source = Source::in_inbox("cat.png");
    let id = spool.claim(&source, None, None, false).unwrap().unwrap().id;
    let mut rec = JobRecord::new(
        id.clone(),
        source,
        None,
        crate::job::ImageInfo::UNKNOWN,
        crate::job::JobSpec::default(),
        "local",
    );
    rec.state = State::Downloaded;
    spool.save(&rec).unwrap();
    fs::write(spool.job_dir(&id).join(rec.output_file()), b"video").unwrap();
    let mut told = None;
    let stem = spool
        .deliver(
            &mut rec,
            |_, _| b"{}".to_vec(),
            |rec, stem| {
                let state = spool.load(&rec.id).unwrap();
                told = Some((
                    stem.to_string(),
                    state.delivery.is_some(),
                    d.path().join("done/cat.mp4").exists(),
                ));
            },
        )
        .unwrap();
    assert_eq!(told, Some((stem, true, true)));
    assert!(!spool.job_dir(&id).exists());
    assert!(!spool.holds_job(&id));
}

#[test]
fn a_job_folder_with_only_a_lease_or_os_files_holds_no_job() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap();
    let dir = spool.job_dir("j");
    fs::create_dir_all(&dir).unwrap();
    assert!(!spool.holds_job("j"));
    for name in [LEASE_FILE, ".DS_Store", "Thumbs.db"] {
        fs::write(dir.join(name), b"x").unwrap();
    }
    assert!(!spool.holds_job("j"));
    fs::write(dir.join("cat.png"), b"x").unwrap();
    assert!(spool.holds_job("j"), "a claim being rebuilt");
    fs::remove_file(dir.join("cat.png")).unwrap();
    fs::write(dir.join(STATE_FILE), b"{}").unwrap();
    assert!(spool.holds_job("j"));
}
