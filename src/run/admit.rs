//! Admission: what turns a ready inbox file into a job. The checks that need no slot (the job's
//! kind; an image's format, size and wholeness against the backend's [`Limits`], a keyframe's
//! decoding, a text's encoding, a video's structure and length; the sidecar; the spec against the
//! catalog; a price beyond a whole budget limit) and the claim into `processing/` — and its
//! reverse, a job never sent going back into `inbox/` when the budget holds it. Bad input becomes a
//! job failed from the start, so it reaches `failed/` by the same route as every other failure; a
//! file not whole yet waits.

use std::time::Duration;

use crate::backend::Limits;
use crate::config::Settings;
use crate::intake::{self, Ready};
use crate::job::{self, ImageInfo, JobKind, JobSpec, Sidecar};
use crate::media::video::Probe;
use crate::studio::spool::{Failure, JobRecord, Spool};

/// A ready file that passed every check that needs no slot.
pub struct Checked {
    pub ready: Ready,
    pub admitted: Admitted,
}

/// What the checks found a job to be.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub kind: JobKind,
    /// The image's format and size (unknown for a text job).
    pub info: ImageInfo,
    pub spec: JobSpec,
    /// The preset the file's folder names, if any.
    pub preset: Option<String>,
}

/// The largest text file taken as a prompt (a prompt is a paragraph, not a document).
pub const MAX_TEXT_BYTES: u64 = 64 * 1024;

/// Why a ready image is not checked out.
pub enum NotYet {
    /// Bad input: it goes to `failed/`.
    Fail(Failure),
    /// Not whole yet (still being written): it waits in `inbox/`. Says where it stops.
    Wait(String),
}

impl From<Failure> for NotYet {
    fn from(f: Failure) -> NotYet {
        NotYet::Fail(f)
    }
}

/// A file that stayed not whole and unchanged for `unchanged` (at least `watch.truncated_after`,
/// counted from its mtime): a copy that broke off, or a recording or an export that never
/// finished.
pub fn truncated(r: &Ready, why: &str, unchanged: Duration) -> Failure {
    let advice = if intake::kind_of(&r.source.name) == intake::Kind::Video {
        "the copy broke off, or the recording or export stopped before the end: let the recording \
         or export finish (or re-export the video), then copy the video into inbox/ again"
    } else {
        "the copy probably broke off: copy the image into inbox/ again (or re-export it)"
    };
    Failure {
        message: format!(
            "{} is truncated: {why}, and it has not changed for {}",
            r.source,
            humantime::format_duration(Duration::from_secs(unchanged.as_secs()))
        ),
        advice: format!("{advice}. A slow share may need a longer watch.truncated_after"),
        api: None,
    }
}

/// The checks that need no slot: image content, sidecar, spec against the catalog.
pub fn check(
    spool: &Spool,
    settings: &Settings,
    limits: &Limits,
    r: &Ready,
) -> Result<Checked, NotYet> {
    let admitted = check_files(
        &spool.inbox(),
        settings,
        limits,
        &r.source.rel(),
        r.sidecar.as_deref(),
        r.last_frame.as_deref(),
    )?;
    Ok(Checked {
        ready: r.clone(),
        admitted,
    })
}

/// Checks a job file in `dir` by its kind (an image's content, a text's encoding), reads its
/// sidecar and builds the spec.
pub fn check_files(
    dir: &std::path::Path,
    settings: &Settings,
    limits: &Limits,
    name: &str,
    sidecar: Option<&str>,
    last_frame: Option<&str>,
) -> Result<Admitted, NotYet> {
    // defaults < the preset its top folder names < its sidecar.
    let folder = name.rsplit_once('/').map_or("", |(f, _)| f);
    let (defaults, preset) = settings.config.defaults_for(folder);
    let defaults = &defaults;
    // The file itself first: one still being written waits, whatever its sidecar says.
    let file_kind = intake::kind_of(name);
    let text = if file_kind == intake::Kind::Text {
        Some(read_text(&dir.join(name), name)?)
    } else {
        None
    };
    if file_kind == intake::Kind::Video {
        let (bytes, seconds) = check_video(&dir.join(name), name)?;
        let (sc, problems) = read_sidecar(dir, sidecar)?;
        let input = job::Input::Video { bytes, seconds };
        let built = JobSpec::build_all(defaults, &sc, input, &limits.catalog);
        let spec = settle_spec(built, problems, sidecar)?;
        within_budget(&spec, &JobKind::Video, settings, limits)?;
        return Ok(Admitted {
            kind: JobKind::Video,
            info: ImageInfo::UNKNOWN,
            spec,
            preset,
        });
    }
    let info = match text {
        Some(_) => ImageInfo::UNKNOWN,
        None => check_image(dir, limits, name)?,
    };
    // The last keyframe is checked like the first (whole, decodable, within the limits).
    let last_frame = match (&text, last_frame) {
        (None, Some(last)) => {
            check_image(dir, limits, last).map_err(|e| match e {
                NotYet::Wait(why) => NotYet::Wait(format!("its last keyframe {last}: {why}")),
                fail => fail,
            })?;
            Some(last.to_string())
        }
        _ => None,
    };
    let (sc, problems) = read_sidecar(dir, sidecar)?;
    let (kind, input) = match (&text, &last_frame) {
        (Some(text), _) => (JobKind::Text, job::Input::Text(text)),
        (None, Some(_)) => (
            JobKind::Image {
                last_frame: last_frame.clone(),
            },
            job::Input::Keyframes(&info),
        ),
        (None, None) => (
            JobKind::Image { last_frame: None },
            job::Input::Image(&info),
        ),
    };
    let built = JobSpec::build_all(defaults, &sc, input, &limits.catalog);
    let spec = settle_spec(built, problems, sidecar)?;
    within_budget(&spec, &kind, settings, limits)?;
    // Keyframes are decoded before they are sent (the API takes PNG, JPEG and WebP as they are):
    // a damaged one fails here, naming itself. Last, so a job that fails anyway decodes nothing.
    if let Some(last) = &last_frame {
        for still in [name, last.as_str()] {
            check_decodes(dir, still)?;
        }
    }
    Ok(Admitted {
        kind,
        info,
        spec,
        preset,
    })
}

/// A job one task of which costs more than a whole budget limit could never be sent: it fails
/// here, before it is claimed for a slot, rather than hold submission for ever.
fn within_budget(
    spec: &JobSpec,
    kind: &JobKind,
    settings: &Settings,
    limits: &Limits,
) -> Result<(), Failure> {
    if limits.catalog.renders_locally() {
        return Ok(());
    }
    let learnt = || crate::studio::ledger::prices::Prices::read(&settings.root);
    let budget = &settings.config.budget;
    match crate::studio::ledger::spend::beyond_limit(
        spec,
        kind.endpoint(),
        budget,
        &settings.models,
        learnt,
    ) {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// Decodes a keyframe ([`crate::media::decodes`]); a failure names that file and what to do with
/// it.
fn check_decodes(dir: &std::path::Path, still: &str) -> Result<(), Failure> {
    let path = dir.join(still);
    let damaged = |why: String| Failure {
        message: format!("{still} cannot be decoded: {why}"),
        advice: format!(
            "{still} is damaged: open the original in an image editor and export it again as PNG \
             or JPEG, and put it in inbox/ under the same name"
        ),
        api: None,
    };
    match crate::media::format_of(&path) {
        Ok(Some(format)) => crate::media::decodes(&path, format).map_err(damaged),
        // Checked a moment ago; it changed since.
        Ok(None) => Err(damaged("it is no longer an image".into())),
        Err(e) => Err(damaged(format!("it cannot be read ({e})"))),
    }
}

/// The sidecar's settings and the problems found in it (a sidecar that cannot be read at all is
/// a failure of its own).
fn read_sidecar(
    dir: &std::path::Path,
    sidecar: Option<&str>,
) -> Result<(Sidecar, Vec<String>), Failure> {
    match sidecar {
        Some(sc) => job::read_sidecar(&dir.join(sc)).map_err(|why| Failure {
            message: format!("the sidecar {sc} cannot be used: {why}"),
            advice: format!("fix {sc} (or delete it to use the defaults)"),
            api: None,
        }),
        None => Ok((Sidecar::default(), Vec::new())),
    }
}

/// The spec, or one failure listing every problem of the sidecar and the spec.
fn settle_spec(
    built: Result<JobSpec, Vec<String>>,
    mut problems: Vec<String>,
    sidecar: Option<&str>,
) -> Result<JobSpec, Failure> {
    match built {
        Ok(spec) if problems.is_empty() => return Ok(spec),
        Ok(_) => {}
        Err(more) => problems.extend(more),
    }
    Err(Failure {
        message: job::join_problems(&problems),
        advice: match sidecar {
            Some(sc) => format!("change {sc} (or the defaults in dropreel.yaml)"),
            None => {
                "add a sidecar YAML beside the file, or change the defaults in dropreel.yaml".into()
            }
        },
        api: None,
    })
}

/// A text job's prompt: the file's text, which must be UTF-8 and at most [`MAX_TEXT_BYTES`].
fn read_text(path: &std::path::Path, name: &str) -> Result<String, NotYet> {
    let bytes = match std::fs::File::open(path).and_then(|f| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_TEXT_BYTES + 1), &mut bytes)
            .map(|_| bytes)
    }) {
        Ok(bytes) => bytes,
        Err(e) => return Err(unreadable(name, &e)),
    };
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(bad(
            format!(
                "{name} is over {} KB; a text job's file is its prompt, a paragraph at most",
                MAX_TEXT_BYTES >> 10
            ),
            "keep only the prompt in the text file",
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        bad(
            format!("{name} is not UTF-8 text"),
            "save it as UTF-8 (in most editors: Save As, encoding UTF-8) and move it back into inbox/",
        )
    })?;
    Ok(text.trim_start_matches('\u{feff}').to_string())
}

/// A bad input: it goes to `failed/` with this explanation.
fn bad(message: String, advice: &str) -> NotYet {
    NotYet::Fail(Failure {
        message,
        advice: advice.into(),
        api: None,
    })
}

/// A file that cannot be read: still held open by its writer (Windows, SMB: not ready yet), or
/// unreadable for good.
fn unreadable(name: &str, e: &std::io::Error) -> NotYet {
    if intake::held_by_writer(e) {
        NotYet::Wait("another program still has it open".into())
    } else {
        bad(
            format!("{name} cannot be read: {e}"),
            "check the file's permissions, or copy it into inbox/ again",
        )
    }
}

/// Probes a video: its container by content, whether it is whole and finished; its size and
/// length. A video not whole yet waits (like an image); one that cannot be read fails.
fn check_video(path: &std::path::Path, name: &str) -> Result<(u64, f64), NotYet> {
    let container = match crate::media::video::container_of(path) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(bad(
                format!(
                    "{name} is not a video dropreel knows (its content is neither MP4, MOV nor WebM)"
                ),
                "export it as an MP4 (H.264) and move that into inbox/",
            ));
        }
        Err(e) => return Err(unreadable(name, &e)),
    };
    let seconds = match crate::media::video::probe(path, container) {
        Ok(Probe::Whole { seconds }) => seconds,
        Ok(Probe::NotYet(why)) => return Err(NotYet::Wait(why)),
        Ok(Probe::Broken(why)) => {
            return Err(bad(
                format!("{name} cannot be read as {}: {why}", container.a_name()),
                "re-export it from your editor (an MP4 with H.264 is the safest) and move that into inbox/",
            ));
        }
        Err(e) => return Err(unreadable(name, &e)),
    };
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    Ok((bytes, seconds))
}

/// Probes an image (format, size, wholeness) against the backend's limits.
fn check_image(dir: &std::path::Path, limits: &Limits, image: &str) -> Result<ImageInfo, NotYet> {
    let path = dir.join(image);
    let len = std::fs::metadata(&path).map_or(0, |m| m.len());
    let unusable = |why: String| Failure {
        message: format!("{image} cannot be used: {why}"),
        advice: "export it as a PNG, JPEG or WebP image".into(),
        api: None,
    };
    let format = match crate::media::format_of(&path) {
        Ok(format) => format,
        // Still held open by its writer (a sharing violation on Windows or SMB): not ready yet.
        Err(e) if intake::held_by_writer(&e) => {
            return Err(NotYet::Wait("another program still has it open".into()));
        }
        Err(e) => return Err(unusable(format!("the file cannot be read: {e}")).into()),
    };
    // What is sent is the file itself, or (other formats) a PNG made of it, checked when made.
    if let Some(max) = limits.max_bytes
        && format.is_none_or(|f| f.sent_as_is())
        && len > max
    {
        return Err(Failure {
            message: format!(
                "{image} is {} MB; Runway takes images of at most {} MB",
                len >> 20,
                max >> 20
            ),
            advice: "export a smaller version (a 4K JPEG is a few MB)".into(),
            api: None,
        }
        .into());
    }
    let format = format.ok_or_else(|| unusable(crate::media::not_an_image(len)))?;
    let whole = crate::media::wholeness(&path, format);
    if !format.decodable() {
        if let Ok(crate::media::Whole::No(stop)) = whole {
            return Err(NotYet::Wait(stop));
        }
        return Err(Failure {
            message: format!(
                "{image} is a {} image, which this build of dropreel cannot decode",
                format.name()
            ),
            advice: crate::media::undecodable_advice(format),
            api: None,
        }
        .into());
    }
    let info = match crate::media::dimensions(&path, format) {
        Ok(info) => info,
        // A partial copy may not even hold its size yet (camera JPEGs carry it after the
        // thumbnail): wait for the rest before judging.
        Err(why) => match whole {
            Ok(crate::media::Whole::No(stop)) => return Err(NotYet::Wait(stop)),
            _ => return Err(unusable(why).into()),
        },
    };
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > limits.max_pixels {
        return Err(Failure {
            message: format!(
                "{image} claims to be {}×{} pixels; dropreel takes images of at most {} megapixels \
                 (a small file claiming that much is usually a decompression bomb)",
                info.width,
                info.height,
                limits.max_pixels / 1_000_000
            ),
            advice: "use a smaller image".into(),
            api: None,
        }
        .into());
    }
    match whole {
        Ok(crate::media::Whole::Yes) => {}
        Ok(crate::media::Whole::No(why)) => return Err(NotYet::Wait(why)),
        // Still held open by its writer (Windows, SMB): not ready yet.
        Err(e) if intake::held_by_writer(&e) => {
            return Err(NotYet::Wait("another program still has it open".into()));
        }
        Err(e) => {
            return Err(Failure {
                message: format!("{image} cannot be read: {e}"),
                advice: "check the file's permissions, or copy it into inbox/ again".into(),
                api: None,
            }
            .into());
        }
    }
    Ok(info)
}

/// Claims a checked image (copying its sidecar when other images of its stem still wait:
/// `share`). `Ok(None)`: it was gone (another instance, or the user).
pub fn claim(
    spool: &Spool,
    c: &Checked,
    share: bool,
    backend: &str,
) -> std::io::Result<Option<JobRecord>> {
    let r = &c.ready;
    let Some(claimed) = spool.claim(
        &r.source,
        r.sidecar.as_deref(),
        r.last_frame.as_deref(),
        share,
    )?
    else {
        return Ok(None);
    };
    let a = &c.admitted;
    let mut source = r.source.clone();
    source.preset = a.preset.clone();
    let mut rec = JobRecord::new(
        claimed.id,
        source,
        claimed.sidecar,
        a.info,
        a.spec.clone(),
        backend,
    );
    rec.kind = match &a.kind {
        // As claimed: a last keyframe pulled back meanwhile is not part of the job.
        JobKind::Image { .. } => JobKind::Image {
            last_frame: claimed.last_frame,
        },
        other => other.clone(),
    };
    spool.save(&rec)?;
    tracing::info!(
        job = %rec.id,
        file = %rec.source.name,
        kind = rec.kind.name(),
        preset = rec.source.preset.as_deref().unwrap_or("-"),
        sidecar = rec.sidecar.as_deref().unwrap_or("-"),
        last_frame = rec.kind.last_frame().unwrap_or("-"),
        model = %rec.spec.model,
        ratio = rec.spec.ratio.as_deref().unwrap_or("-"),
        duration = rec.spec.duration,
        "claimed"
    );
    Ok(Some(rec))
}

/// Puts a job the budget holds, never sent, back into `inbox/` (see [`Spool::unclaim`]), giving up
/// its key in the dedupe ledger so an identical file is not kept waiting for it. The files as
/// named in `inbox/`, or why the job stays in `processing/`.
pub fn unclaim(
    spool: &Spool,
    ledger: &crate::studio::ledger::dedupe::Ledger,
    rec: &mut JobRecord,
) -> std::io::Result<Vec<String>> {
    if let Some(key) = rec.dedupe_key.take()
        && let Err(e) = ledger.release(&key, &rec.id)
    {
        tracing::warn!(job = %rec.id, error = %e, "cannot update the dedupe ledger");
    }
    spool.unclaim(rec)
}

/// Claims a bad input as a job failed from the start (its task moves it to `failed/` with its
/// explanation, by the one route every failure takes). `None` when it was not ours (gone, or
/// inbox/ refused the move).
pub fn claim_to_fail(
    spool: &Spool,
    r: &Ready,
    failure: Failure,
    backend: &str,
) -> Option<JobRecord> {
    let claimed = match spool.claim(
        &r.source,
        r.sidecar.as_deref(),
        r.last_frame.as_deref(),
        false,
    ) {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(file = %r.source, error = %e, "cannot move a bad input out of inbox/");
            return None;
        }
    };
    let mut rec = JobRecord::failed_at_once(
        claimed.id,
        r.source.clone(),
        claimed.sidecar,
        backend,
        failure,
    );
    // Its last keyframe goes to failed/ with it.
    rec.kind = match intake::kind_of(&r.source.name) {
        intake::Kind::Text => JobKind::Text,
        intake::Kind::Video => JobKind::Video,
        _ => JobKind::Image {
            last_frame: claimed.last_frame,
        },
    };
    Some(rec)
}
