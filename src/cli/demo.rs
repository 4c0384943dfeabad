//! The examples of `--examples`: a few small pictures of ours (one with a sidecar) and a text file,
//! built into the binary so a fresh studio can show what dropreel does without any file at hand.

use std::fs::FileTimes;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Name and bytes of each example file.
pub const FILES: &[(&str, &[u8])] = &[
    (
        "harbour.jpg",
        include_bytes!("../../examples/demo/harbour.jpg"),
    ),
    (
        "harbour.yaml",
        include_bytes!("../../examples/demo/harbour.yaml"),
    ),
    (
        "mountains.jpg",
        include_bytes!("../../examples/demo/mountains.jpg"),
    ),
    ("tiles.png", include_bytes!("../../examples/demo/tiles.png")),
    // A text job: the text is the prompt (a title card on the local renderer).
    ("title.txt", include_bytes!("../../examples/demo/title.txt")),
];

/// Copies the examples into `inbox`, never replacing a file; returns how many were written.
/// Sidecars are written before their images so an image is never taken without its sidecar.
/// With `quiet_for`, the files written are dated that far back: they are whole the moment they
/// exist, so nothing needs to wait for them to settle.
pub fn copy_into(inbox: &Path, quiet_for: Option<Duration>) -> std::io::Result<usize> {
    let mut n = 0;
    let mut files: Vec<&(&str, &[u8])> = FILES.iter().collect();
    files.sort_by_key(|(name, _)| !name.ends_with(".yaml"));
    for (name, bytes) in files {
        let path = inbox.join(name);
        if path.exists() {
            continue;
        }
        crate::studio::durable::write_atomic(inbox, name, bytes)?;
        if let Some(age) = quiet_for {
            // A second more: the file system's clock ticks coarser than ours, so "now" there
            // may be a little behind.
            let then = SystemTime::now() - age - Duration::from_secs(1);
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_times(FileTimes::new().set_modified(then).set_accessed(then))?;
        }
        n += 1;
    }
    Ok(n)
}
