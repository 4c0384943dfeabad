//! How many jobs each folder of the studio holds, for `dropreel status`: files waiting in
//! `inbox/`, job folders in `processing/`, results in `done/` and errors in `failed/`, in all and
//! per folder inside them.

use std::fs;
use std::io;

use super::Spool;
use crate::studio::layout::{self, DONE, FAILED, INBOX, PROCESSING};

impl Spool {
    /// Jobs per folder, for `status`: images and texts waiting in `inbox/`, job folders that hold a
    /// job in `processing/`,
    /// delivered jobs (`result.json`) in `done/`, failed jobs (`error.txt`) in `failed/`.
    pub fn counts(&self) -> io::Result<[(&'static str, usize); 4]> {
        // Folders included (dot folders skipped, links not followed).
        let count = |d: &str, is_job: &dyn Fn(&str) -> bool| -> io::Result<usize> {
            fs::read_dir(self.root.join(d))?;
            Ok(walkdir::WalkDir::new(self.root.join(d))
                .follow_links(false)
                .min_depth(1)
                .into_iter()
                .filter_entry(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file() && is_job(&e.file_name().to_string_lossy()))
                .count())
        };
        let waiting = |n: &str| !crate::intake::is_ignored(n) && crate::intake::kind_of(n).is_job();
        Ok([
            (INBOX, count(INBOX, &waiting)?),
            (
                PROCESSING,
                self.job_ids()?
                    .iter()
                    .filter(|id| self.holds_job(id))
                    .count(),
            ),
            (DONE, count(DONE, &|n| layout::result_stem(n).is_some())?),
            (FAILED, count(FAILED, &|n| layout::error_stem(n).is_some())?),
        ])
    }
}

impl Spool {
    /// Jobs per folder inside `inbox/`, `done/` and `failed/` (`[waiting, delivered, failed]`),
    /// for `status`; only folders below the top level, which [`Spool::counts`] covers.
    pub fn folder_counts(&self) -> io::Result<std::collections::BTreeMap<String, [usize; 3]>> {
        let mut out: std::collections::BTreeMap<String, [usize; 3]> = Default::default();
        let is_job = |top: &str, n: &str| match top {
            INBOX => !crate::intake::is_ignored(n) && crate::intake::kind_of(n).is_job(),
            DONE => layout::result_stem(n).is_some(),
            _ => layout::error_stem(n).is_some(),
        };
        for (i, top) in [INBOX, DONE, FAILED].into_iter().enumerate() {
            let base = self.root.join(top);
            let files = walkdir::WalkDir::new(&base)
                .follow_links(false)
                .min_depth(2)
                .into_iter()
                .filter_entry(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file());
            for e in files {
                if !is_job(top, &e.file_name().to_string_lossy()) {
                    continue;
                }
                let Some(folder) = e
                    .path()
                    .parent()
                    .and_then(|p| p.strip_prefix(&base).ok())
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                else {
                    continue;
                };
                out.entry(folder).or_default()[i] += 1;
            }
        }
        Ok(out)
    }
}
