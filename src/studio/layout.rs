//! The studio's layout on disk, and the only place its names are spelled: the folders (`inbox/`,
//! `processing/`, `done/`, `failed/`, `.dropreel/`), the files of a job folder (`job.json`,
//! `variant-<n>.json`, `.out.mp4`, `.poster.jpg`, …), how a file name splits into stem and
//! extension, and every name a finished job has in `done/` or `failed/` ([`Delivered`]: its videos,
//! their posters, its `result.json` and `error.txt`, its inputs renamed to its stem). A leaf: it
//! imports nothing of the crate, so whatever reads or writes the studio can use it.

pub const INBOX: &str = "inbox";
pub const PROCESSING: &str = "processing";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";
/// `ROOT/.dropreel`: dropreel's own memory of a studio (a dot folder: never mistaken for work).
pub const OWN_DIR: &str = ".dropreel";
/// In `.dropreel/`: the last answer Runway gave about the organisation (balance and limits).
pub const ORGANIZATION_FILE: &str = "organization.json";
/// A job's state file in its folder.
pub const STATE_FILE: &str = "job.json";

/// After the stem of a delivered job's `result.json`.
const RESULT_SUFFIX: &str = ".result.json";
/// After the stem of a failed job's `error.txt`.
const ERROR_SUFFIX: &str = ".error.txt";
/// The extensions of the videos dropreel delivers: MP4, and QuickTime for the formats Runway
/// delivers as `.mov` (ProRes). The first is every job's unless its output format says otherwise.
pub const VIDEO_EXTS: [&str; 2] = ["mp4", "mov"];

/// `ext` when videos are delivered with it, else `mp4` (an extension read from a file is not
/// trusted to name anything else).
pub fn video_ext(ext: Option<&str>) -> &'static str {
    VIDEO_EXTS
        .into_iter()
        .find(|e| Some(*e) == ext)
        .unwrap_or(VIDEO_EXTS[0])
}
/// After the stem of a poster.
const POSTER_SUFFIX: &str = ".poster.jpg";

/// `cat.png` → (`cat`, `png`); `a.b.png` → (`a.b`, `png`); `README` → (`README`, ``).
pub fn split_name(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    }
}

/// `stem` with `ext` (none when `ext` is empty).
pub fn join_ext(stem: &str, ext: &str) -> String {
    if ext.is_empty() {
        stem.to_string()
    } else {
        format!("{stem}.{ext}")
    }
}

/// `stem` cut to at most `max` bytes on a character boundary.
pub fn fit_stem(stem: &str, max: usize) -> &str {
    if stem.len() <= max {
        return stem;
    }
    let mut end = max;
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    &stem[..end]
}

// ---- A job folder's own files ----------------------------------------------------------------

/// `-v<n>` for take `n`, nothing for a job without takes.
fn take_suffix(take: Option<u32>) -> String {
    take.map_or(String::new(), |n| format!("-v{n}"))
}

/// `.` before dropreel's own names in a job folder when the job uses dot names (records of
/// earlier versions kept plain names).
fn own(dot_names: bool) -> &'static str {
    if dot_names { "." } else { "" }
}

/// The state file of take `n` of a job with variants.
pub fn variant_state_file(n: u32) -> String {
    format!("variant-{n}.json")
}

/// The finished video in a job folder (`.out.mp4`, or `.out-v<n>.mp4` for take `n`; `.out.mov`
/// for a `.mov` output).
pub fn job_video(dot_names: bool, take: Option<u32>, ext: &str) -> String {
    format!("{}out{}.{ext}", own(dot_names), take_suffix(take))
}

/// A video while it is written (`.out.mp4.part`).
pub fn job_video_part(dot_names: bool, take: Option<u32>, ext: &str) -> String {
    format!("{}.part", job_video(dot_names, take, ext))
}

/// The poster of the job's video (of take `n`'s), in its folder: always a dot name (posters came
/// after the dot names).
pub fn job_poster(take: Option<u32>) -> String {
    format!(".poster{}.jpg", take_suffix(take))
}

/// The job's `result.json` in its folder, before it is moved into `done/`.
pub fn job_result(dot_names: bool) -> String {
    format!("{}result.json", own(dot_names))
}

/// The job's `error.txt` in its folder, before it is moved into `failed/`.
pub fn job_error(dot_names: bool) -> String {
    format!("{}error.txt", own(dot_names))
}

/// The PNG made for sending an image (`last`: the last keyframe) in a format the API does not
/// take (a dot name: never mistaken for the job's own files).
pub fn job_converted(last: bool, take: Option<u32>) -> String {
    let which = if last { "-last" } else { "" };
    format!(".send{which}{}.png", take_suffix(take))
}

/// Whether `name` in a job folder is one of dropreel's own job files (state, reports, videos made
/// or being made, converted images, temp files) — what is removed with a finished job's folder.
pub fn is_own_job_file(name: &str) -> bool {
    [
        "result.json",
        "error.txt",
        ".result.json",
        ".error.txt",
        STATE_FILE,
    ]
    .contains(&name)
        || (name.trim_start_matches('.').starts_with("out")
            && VIDEO_EXTS.iter().any(|e| {
                let name = name.strip_suffix(".part").unwrap_or(name);
                name.strip_suffix(e).is_some_and(|n| n.ends_with('.'))
            }))
        || (name.starts_with(".send") && name.ends_with(".png"))
        || (name.starts_with("variant-") && name.contains(".json"))
        || name.starts_with("job.json.")
        || name.ends_with(".tmp")
}

// ---- What a finished job is named in done/ and failed/ ----------------------------------------

/// Which video a job delivers under its stem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `<stem>.mp4`: a clip made from an image or a text.
    Clip,
    /// `<stem>.result.mp4`: a video job's source is an MP4 itself, so its result is named apart.
    Restyled,
}

/// The suffix after the stem of a delivered video with extension `ext`: `.mp4` /
/// `.result.mp4`, or `-v<n>.mp4` for take `n`.
pub fn video_suffix(output: Output, take: Option<u32>, ext: &str) -> String {
    match (take, output) {
        (None, Output::Clip) => format!(".{ext}"),
        (None, Output::Restyled) => format!(".result.{ext}"),
        (Some(n), _) => format!("-v{n}.{ext}"),
    }
}

/// The suffix after the stem of a delivered video's poster: `.poster.jpg`, or `-v<n>.poster.jpg`.
pub fn poster_suffix(take: Option<u32>) -> String {
    format!("{}{POSTER_SUFFIX}", take_suffix(take))
}

/// The suffix after the stem of a delivered job's `result.json`.
pub fn result_suffix() -> &'static str {
    RESULT_SUFFIX
}

/// The suffix after the stem of a failed job's `error.txt`.
pub fn error_suffix() -> &'static str {
    ERROR_SUFFIX
}

/// `cat` of `cat.result.json`; `None` for any other name.
pub fn result_stem(name: &str) -> Option<&str> {
    name.strip_suffix(RESULT_SUFFIX)
}

/// `cat` of `cat.error.txt`; `None` for any other name.
pub fn error_stem(name: &str) -> Option<&str> {
    name.strip_suffix(ERROR_SUFFIX)
}

/// The `error.txt` of a failed job named `stem`.
pub fn error_name(stem: &str) -> String {
    format!("{stem}{ERROR_SUFFIX}")
}

/// The `result.json` of a delivered job named `stem`.
pub fn result_name(stem: &str) -> String {
    format!("{stem}{RESULT_SUFFIX}")
}

/// Whether `name` is named as a delivered video is (`.mp4`, `.mov`).
pub fn is_video_name(name: &str) -> bool {
    split_video(name).is_some()
}

/// `cat.result` and `mov` of `cat.result.mov`: a delivered video's name without its extension.
fn split_video(name: &str) -> Option<(&str, &str)> {
    VIDEO_EXTS.iter().find_map(|e| {
        let base = name.strip_suffix(e)?.strip_suffix('.')?;
        Some((base, *e))
    })
}

/// Whether `name` is named as a delivered video or poster is (what the dashboard serves).
pub fn is_media_name(name: &str) -> bool {
    is_video_name(name) || name.ends_with(POSTER_SUFFIX)
}

/// The stems a delivered video's name (`cat.mp4`, `cat.result.mp4`, `cat-v2.mp4`) may belong to:
/// its job's `result.json` is `<stem>.result.json` for one of them.
pub fn video_stems(name: &str) -> Vec<&str> {
    let Some((base, _)) = split_video(name) else {
        return Vec::new();
    };
    let mut stems = vec![base.strip_suffix(".result").unwrap_or(base)];
    if let Some((stem, n)) = base.rsplit_once("-v")
        && n.parse::<u32>().is_ok()
    {
        stems.push(stem);
    }
    stems
}

/// An input of a job (its file, its sidecar) as named beside its results: its extension after the
/// job's stem (`cat-2.png`).
pub fn input_name(stem: &str, name: &str) -> String {
    join_ext(stem, split_name(name).1)
}

/// A job's last keyframe as named beside its results (`cat-2.last.jpg`).
pub fn last_frame_name(stem: &str, name: &str) -> String {
    format!("{stem}.last.{}", split_name(name).1)
}

/// Every name a finished job has in its folder under `done/` or `failed/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The folder, as a path under the studio (`done`, `done/clientA`).
    pub folder: String,
    /// The collision-free stem chosen there.
    pub stem: String,
    pub output: Output,
    /// The videos' extension (one of [`VIDEO_EXTS`]).
    pub ext: &'static str,
    /// For a job with variants, the takes that made a video; `None` for a job without.
    pub takes: Option<Vec<u32>>,
}

impl Delivered {
    /// The takes that have a video (`None` for the one video of a job without takes).
    fn each(&self) -> Vec<Option<u32>> {
        match &self.takes {
            None => vec![None],
            Some(takes) => takes.iter().copied().map(Some).collect(),
        }
    }

    fn path(&self, name: String) -> String {
        format!("{}/{name}", self.folder)
    }

    /// The name of take `take`'s video (`cat-v2.mp4`), or of the job's one video (`cat.mp4`).
    pub fn video_name(&self, take: Option<u32>) -> String {
        format!("{}{}", self.stem, video_suffix(self.output, take, self.ext))
    }

    /// The name of the poster of that video.
    pub fn poster_name(&self, take: Option<u32>) -> String {
        format!("{}{}", self.stem, poster_suffix(take))
    }

    /// The job's videos, as paths under the studio (`done/cat.mp4`, …).
    pub fn videos(&self) -> Vec<String> {
        self.each()
            .into_iter()
            .map(|t| self.path(self.video_name(t)))
            .collect()
    }

    /// The posters its videos may have, in the same order.
    pub fn posters(&self) -> Vec<String> {
        self.each()
            .into_iter()
            .map(|t| self.path(self.poster_name(t)))
            .collect()
    }

    /// Its `result.json`, as a path under the studio.
    pub fn result_json(&self) -> String {
        self.path(result_name(&self.stem))
    }

    /// Its `error.txt`, as a path under the studio.
    pub fn error_txt(&self) -> String {
        self.path(error_name(&self.stem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        assert_eq!(split_name("a.b.png"), ("a.b", "png"));
        assert_eq!(split_name("cat.PNG"), ("cat", "PNG"));
        assert_eq!(split_name(".x"), (".x", ""));
    }

    #[test]
    fn delivered_names() {
        let one = Delivered {
            folder: "done/a".into(),
            stem: "cat-2".into(),
            output: Output::Restyled,
            ext: "mp4",
            takes: None,
        };
        assert_eq!(one.videos(), ["done/a/cat-2.result.mp4"]);
        assert_eq!(one.posters(), ["done/a/cat-2.poster.jpg"]);
        assert_eq!(one.result_json(), "done/a/cat-2.result.json");
        assert_eq!(one.error_txt(), "done/a/cat-2.error.txt");
        let takes = Delivered {
            takes: Some(vec![1, 3]),
            ..one
        };
        assert_eq!(
            takes.videos(),
            ["done/a/cat-2-v1.mp4", "done/a/cat-2-v3.mp4"]
        );
        assert_eq!(
            takes.posters(),
            ["done/a/cat-2-v1.poster.jpg", "done/a/cat-2-v3.poster.jpg"]
        );
        assert_eq!(video_stems("cat-v2.mp4"), ["cat-v2", "cat"]);
        assert_eq!(video_stems("cat.result.mp4"), ["cat"]);
        assert_eq!(input_name("cat-2", "x.yaml"), "cat-2.yaml");
        assert_eq!(last_frame_name("cat-2", "x.last.jpg"), "cat-2.last.jpg");
        assert_eq!(job_video(true, Some(2), "mp4"), ".out-v2.mp4");
        assert_eq!(job_video_part(false, None, "mp4"), "out.mp4.part");
        // A ProRes result is a .mov, named the same way.
        let prores = Delivered {
            output: Output::Clip,
            ext: "mov",
            takes: None,
            ..takes
        };
        assert_eq!(prores.videos(), ["done/a/cat-2.mov"]);
        assert_eq!(video_stems("cat-v2.mov"), ["cat-v2", "cat"]);
        assert!(is_video_name("cat.mov") && !is_video_name("cat.zip") && !is_video_name("mov"));
        assert!(is_own_job_file(".out.mov.part") && is_own_job_file("out-v2.mov"));
        assert_eq!(video_ext(Some("mov")), "mov");
        assert_eq!(video_ext(Some("../x")), "mp4");
        assert_eq!(job_converted(true, Some(1)), ".send-last-v1.png");
    }
}
