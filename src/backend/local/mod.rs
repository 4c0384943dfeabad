//! The local motion renderer as a backend: no key, no network. Each job becomes a real H.264 MP4
//! of a slow camera move over its image ("Ken Burns": push-in, pull-out, pans, tilts), chosen by
//! the prompt's camera words or the sidecar's `motion:`. One render at a time (it uses both cores).

pub mod encode;
pub mod render;
pub mod title;
pub mod yuv;

use super::{Backend, Fault, Gate, JobCtx, Limits, Slots, Stop};
use crate::config::Settings;
use crate::job::models;
use crate::job::models::Catalog;
use crate::job::{DEFAULT_ZOOM, JobKind, Motion};
use crate::studio::spool::{self, Failure, State};
use render::{Plan, RenderError, Renderer};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// What the local renderer takes: any file size, images up to the decode limit.
pub const LIMITS: Limits = Limits {
    catalog: Catalog::Local,
    max_bytes: None,
    max_pixels: render::MAX_SOURCE_PIXELS,
};

/// The local backend.
#[derive(Debug)]
pub struct Local {
    fps: u32,
    slots: Arc<Slots>,
}

impl Local {
    pub fn new(settings: &Settings) -> Local {
        Local {
            fps: settings.config.local.fps,
            slots: Slots::new(1),
        }
    }
}

/// What a render starts from.
#[derive(Debug, Clone)]
pub enum Still {
    /// An image file.
    Image(PathBuf),
    /// A first and a last keyframe: the move dissolves from one into the other.
    Keyframes(PathBuf, PathBuf),
    /// A title card of this text (`seed` picks its colours); `name` is the text file's, for logs.
    Title {
        text: String,
        seed: u64,
        name: String,
    },
}

impl Still {
    /// The renderer for `plan`, on the calling (blocking) thread.
    fn renderer(self, plan: Plan) -> Result<Renderer, RenderError> {
        match self {
            Still::Image(path) => Renderer::open(&path, plan),
            Still::Keyframes(first, last) => {
                Ok(Renderer::open(&first, plan)?.dissolving_into(Renderer::open(&last, plan)?))
            }
            Still::Title { text, seed, name } => {
                let (w, h) = plan.working_size();
                let card = title::draw(&text, w, h, seed);
                if !card.missing.is_empty() {
                    let chars: String = card.missing.iter().collect();
                    tracing::warn!(file = %name, missing = %chars, "the title card's font has no glyph for some characters; they show as a square");
                }
                Renderer::from_rgb(card.width, card.height, card.rgb, plan)
            }
        }
    }
}

/// Renders on a blocking thread; a stop of the job stops the render between two frames.
async fn render(
    still: Still,
    part: PathBuf,
    plan: Plan,
    token: &tokio_util::sync::CancellationToken,
) -> Result<encode::RenderStats, RenderError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let work = tokio::task::spawn_blocking(move || {
        let renderer = still.renderer(plan)?;
        encode::write_mp4(renderer, &part, &flag)
    });
    let token = token.clone();
    let watcher = tokio::spawn(async move {
        token.cancelled().await;
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let result = work.await;
    watcher.abort();
    result.unwrap_or_else(|join| {
        Err(RenderError::Encoder(format!(
            "the renderer crashed: {join}"
        )))
    })
}

/// The job's seed, or — without one — a hash of the file name: the same file renders the same way.
pub fn seed_of(spec: &crate::job::JobSpec, name: &str) -> u64 {
    spec.seed.unwrap_or_else(|| {
        name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    })
}

/// The render plan of a job: its ratio's pixel size, duration × fps frames, its move.
pub fn plan_for(spec: &crate::job::JobSpec, fps: u32, name: &str) -> Plan {
    let ratio = spec.ratio.as_deref().unwrap_or("1280:720");
    let (w, h) = models::parse_ratio(ratio).unwrap_or((1280, 720));
    let motion = spec
        .motion
        .as_deref()
        .and_then(Motion::parse)
        .unwrap_or(Motion::PushIn);
    let seed = seed_of(spec, name);
    Plan::new(
        w,
        h,
        fps,
        spec.duration,
        motion,
        spec.zoom.unwrap_or(DEFAULT_ZOOM),
        seed,
    )
}

impl Backend for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn slots(&self) -> &Arc<Slots> {
        &self.slots
    }

    /// No service, so no systemic fault to hold for.
    fn gate(&self) -> Option<&Gate> {
        None
    }

    fn limits(&self) -> Limits {
        LIMITS
    }

    async fn produce(&self, job: &mut JobCtx) -> Result<(), Stop> {
        if job.rec.state == State::Downloaded {
            return Ok(());
        }
        let dir = job.spool.job_dir(&job.rec.id);
        let name = &job.rec.source.name;
        let still = match &job.rec.kind {
            JobKind::Image { last_frame: None } => Still::Image(dir.join(name)),
            JobKind::Image {
                last_frame: Some(last),
            } => Still::Keyframes(dir.join(name), dir.join(last)),
            // The prompt, as admitted (the text file's text, trimmed).
            JobKind::Text => Still::Title {
                text: job.rec.spec.prompt.clone(),
                seed: seed_of(&job.rec.spec, name),
                name: name.clone(),
            },
            JobKind::Video => {
                return Err(Stop::Failed(Failure {
                    message: format!(
                        "{name} is a video: video to video needs the Runway backend; the local renderer animates stills and text"
                    ),
                    advice: "set RUNWAYML_API_SECRET (in the environment or ROOT/.env) to your Runway API key and \
                             move the video back into inbox/"
                        .into(),
                    api: None,
                }));
            }
        };
        let ticket = job.ticket.take().unwrap_or_else(|| self.slots.ticket());
        let _slot = ticket.acquire(&job.cancel).await.ok_or(Stop::Cancelled)?;
        let plan = plan_for(&job.rec.spec, self.fps, &job.rec.source.name);
        tracing::info!(
            job = %job.rec.id,
            file = %job.rec.source.name,
            motion = plan.motion.name(),
            size = %format!("{}x{}", plan.width, plan.height),
            frames = plan.frames,
            "rendering"
        );
        job.show_step("rendering");
        let stats = loop {
            match render(
                still.clone(),
                dir.join(job.rec.output_part()),
                plan,
                &job.cancel,
            )
            .await
            {
                Ok(stats) => break stats,
                Err(RenderError::Cancelled) => return Err(Stop::Cancelled),
                Err(RenderError::Input(why)) => {
                    return Err(Stop::Failed(Failure {
                        message: format!("{} cannot be rendered: {why}", job.rec.source.name),
                        advice: "export it again as a PNG, JPEG or WebP image".into(),
                        api: None,
                    }));
                }
                Err(RenderError::Io(e)) => {
                    // A full or read-only disk is nobody's input error: wait and render again.
                    let _ = std::fs::remove_file(dir.join(job.rec.output_part()));
                    let delay = job.on_fault(Fault::Disk(e), "rendering the video", None)?;
                    job.pause(delay).await?;
                }
                Err(e) => {
                    return Err(Stop::Failed(Failure {
                        message: format!("rendering failed: {e}"),
                        advice: "move the file back into inbox/ to try again; if it happens again, report it with the image".into(),
                        api: None,
                    }));
                }
            }
        };
        job.on_disk("storing the rendered video", |job| {
            let dir = job.spool.job_dir(&job.rec.id);
            // (A retry after the rename went through and only the sync failed: sync again.)
            let (file, part) = (job.rec.output_file(), job.rec.output_part());
            if !dir.join(&file).exists() || dir.join(&part).exists() {
                std::fs::rename(dir.join(part), dir.join(file))?;
            }
            crate::studio::durable::sync_dir(&dir)
        })
        .await?;
        if let Some(jpeg) = &stats.poster {
            let dir = job.spool.job_dir(&job.rec.id);
            if let Err(e) = crate::studio::durable::write_atomic(&dir, &job.rec.poster_file(), jpeg)
            {
                tracing::debug!(job = %job.rec.id, error = %e, "no poster: it cannot be written");
            }
        }
        job.rec.state = State::Downloaded;
        job.rec.output_bytes = Some(stats.bytes);
        job.rec.finished_at = Some(crate::studio::clock::now_rfc3339());
        job.rec.render = Some(spool::RenderInfo {
            motion: plan.motion.name().to_string(),
            zoom: plan.zoom,
            fps: plan.fps,
            frames: stats.frames,
            width: plan.width,
            height: plan.height,
            bitrate: stats.bitrate,
            target_bitrate: Some(stats.target_bitrate),
            encode_seconds: (stats.seconds * 1000.0).round() / 1000.0,
        });
        job.save().await?;
        tracing::info!(job = %job.rec.id, file = %job.rec.source.name, bytes = stats.bytes, seconds = stats.seconds, "rendered");
        Ok(())
    }
}
