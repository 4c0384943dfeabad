//! `dropreel retry`: failed jobs back into `inbox/` — into the folder they came from — with their
//! sidecar and last keyframe, their `error.txt` removed. A failed job is found by its `<stem>.error.txt`; its files are the ones of
//! that stem beside it. Nothing in `inbox/` is ever overwritten: a job one of whose names is taken
//! there is skipped, saying so.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::intake::{self, Kind};
use crate::studio::durable;
use crate::studio::layout::{self, FAILED, INBOX, split_name};

/// What `retry` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Jobs put back: their files, as named in `inbox/` (the job file last).
    pub moved: Vec<Vec<String>>,
    /// Jobs left in `failed/`, with why.
    pub skipped: Vec<(String, String)>,
    /// Names asked for that match no failed job.
    pub unknown: Vec<String>,
}

/// A failed job in `failed/`: its folder under `failed/` and its files (the error text not among
/// them).
struct Failed {
    folder: String,
    files: Vec<String>,
    /// The file the job was made from (image, text or video).
    job_file: Option<String>,
}

/// Puts the failed jobs named by `names` (stems, or any of their file names; all when empty) back
/// into `inbox/`.
pub fn retry(root: &Path, names: &[String]) -> io::Result<Outcome> {
    let failed_root = root.join(FAILED);
    let inbox_root = root.join(INBOX);
    let mut jobs = BTreeMap::new();
    for folder in folders(&failed_root)? {
        jobs.extend(failed_jobs(&failed_root, &folder)?);
    }
    let mut out = Outcome::default();
    let chosen: Vec<&String> = if names.is_empty() {
        jobs.keys().collect()
    } else {
        let mut chosen = Vec::new();
        for name in names {
            // By the stem or a file name, with or without its folder.
            let hit = jobs.iter().find(|(key, job)| {
                let stem = key.rsplit('/').next().unwrap_or(key);
                [key.as_str(), stem].iter().any(|s| {
                    *s == name
                        || name == &layout::error_name(s)
                        || job
                            .files
                            .iter()
                            .any(|f| name == f || name == &format!("{}/{f}", job.folder))
                })
            });
            match hit {
                Some((stem, _)) if !chosen.contains(&stem) => chosen.push(stem),
                Some(_) => {}
                None => out.unknown.push(name.clone()),
            }
        }
        chosen
    };
    for stem in chosen {
        let job = &jobs[stem];
        let failed = failed_root.join(&job.folder);
        let inbox = inbox_root.join(&job.folder);
        let error_txt = layout::error_name(stem.rsplit('/').next().unwrap_or(stem));
        let Some(job_file) = &job.job_file else {
            out.skipped.push((
                stem.clone(),
                format!(
                    "{FAILED}/{} has no image, text or video beside it",
                    layout::error_name(stem)
                ),
            ));
            continue;
        };
        if let Some(taken) = job.files.iter().find(|f| inbox.join(f).exists()) {
            let shown = Path::new(INBOX).join(&job.folder).join(taken);
            out.skipped.push((
                stem.clone(),
                format!("{} exists; move or rename it, then retry", shown.display()),
            ));
            continue;
        }
        if let Err(e) = fs::create_dir_all(&inbox) {
            out.skipped.push((
                stem.clone(),
                format!("cannot make its folder in inbox/: {e}"),
            ));
            continue;
        }
        // Companions first, the job file last: the sidecar is there before the image is seen.
        let mut order: Vec<&String> = job.files.iter().filter(|f| *f != job_file).collect();
        order.push(job_file);
        let mut moved = Vec::new();
        for f in order {
            match durable::move_no_clobber(&failed.join(f), &inbox.join(f)) {
                Ok(()) => moved.push(f.clone()),
                Err(e) => {
                    out.skipped
                        .push((stem.clone(), format!("cannot move {f}: {e}")));
                    break;
                }
            }
        }
        if moved.len() == job.files.len() {
            fs::remove_file(failed.join(&error_txt))?;
            durable::sync_dir(&inbox)?;
            durable::sync_dir(&failed)?;
            let shown = |f: &String| match job.folder.as_str() {
                "" => f.clone(),
                folder => format!("{folder}/{f}"),
            };
            out.moved.push(moved.iter().map(shown).collect());
        }
    }
    Ok(out)
}

/// `failed/` and every folder in it (relative, `/`-separated; dot folders skipped, links not
/// followed).
fn folders(failed: &Path) -> io::Result<Vec<String>> {
    fs::read_dir(failed)?;
    let mut out = vec![String::new()];
    for entry in walkdir::WalkDir::new(failed)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
    {
        if let Some(rel) = entry
            .path()
            .strip_prefix(failed)
            .ok()
            .and_then(Path::to_str)
        {
            out.push(rel.replace(std::path::MAIN_SEPARATOR, "/"));
        }
    }
    Ok(out)
}

/// The failed jobs in `failed/<folder>`, by their stem's path (`folder/stem`): every
/// `<stem>.error.txt` with the files of its stem.
fn failed_jobs(failed_root: &Path, folder: &str) -> io::Result<BTreeMap<String, Failed>> {
    let names: Vec<String> = fs::read_dir(failed_root.join(folder))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let mut jobs = BTreeMap::new();
    for (errors, stem) in names
        .iter()
        .filter_map(|n| Some((n, layout::error_stem(n)?)))
    {
        let files: Vec<String> = names
            .iter()
            .filter(|n| *n != errors && !intake::is_ignored(n))
            .filter(|n| {
                split_name(n).0 == stem
                    || (intake::kind_of(n) == Kind::LastFrame
                        && split_name(split_name(n).0).0 == stem)
            })
            .cloned()
            .collect();
        let job_file = files.iter().find(|n| intake::kind_of(n).is_job()).cloned();
        let key = match folder {
            "" => stem.to_string(),
            f => format!("{f}/{stem}"),
        };
        jobs.insert(
            key,
            Failed {
                folder: folder.to_string(),
                files,
                job_file,
            },
        );
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_jobs_go_back_with_their_companions_and_nothing_is_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let (failed, inbox) = (d.path().join(FAILED), d.path().join(INBOX));
        fs::create_dir_all(&failed).unwrap();
        fs::create_dir_all(&inbox).unwrap();
        for f in [
            "a.png",
            "a.yaml",
            "a.error.txt",
            "b.txt",
            "b.error.txt",
            "c.png",
            "c.last.jpg",
            "c.error.txt",
            "d.png",
            "d.error.txt",
            "cat.png",
            "cat-2.png",
            "cat-2.error.txt",
        ] {
            fs::write(failed.join(f), f).unwrap();
        }
        fs::write(inbox.join("d.png"), "mine").unwrap();
        let out = retry(d.path(), &["c.last.jpg".into(), "b".into(), "nope".into()]).unwrap();
        assert_eq!(
            out.moved,
            [
                vec!["c.last.jpg".to_string(), "c.png".into()],
                vec!["b.txt".into()]
            ],
            "in the order asked, the job file last"
        );
        assert_eq!(out.unknown, ["nope"]);
        let out = retry(d.path(), &[]).unwrap();
        assert_eq!(
            out.moved,
            [
                vec!["a.yaml".to_string(), "a.png".into()],
                vec!["cat-2.png".into()]
            ]
        );
        assert_eq!(out.skipped.len(), 1);
        assert!(
            out.skipped[0].1.contains("inbox/d.png exists"),
            "{:?}",
            out.skipped
        );
        assert_eq!(fs::read_to_string(inbox.join("d.png")).unwrap(), "mine");
        let mut left: Vec<String> = fs::read_dir(&failed)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["cat.png", "d.error.txt", "d.png"]);
        assert_eq!(
            fs::read_to_string(inbox.join("c.last.jpg")).unwrap(),
            "c.last.jpg"
        );
    }
}
