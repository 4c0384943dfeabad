//! The local motion renderer as a backend: no key, no network. Each job becomes a real H.264 MP4
//! of a slow camera move over its image ("Ken Burns": push-in, pull-out, pans, tilts), chosen by
//! the prompt's camera words or the sidecar's `motion:`. One render at a time (it uses both cores).

pub mod encode;
pub mod render;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::{Backend, Gate, JobCtx, Slots, Stop, backoff, sleep_or_cancel};
use crate::config::Settings;
use crate::job::{DEFAULT_ZOOM, Motion};
use crate::models;
use crate::spool::{self, Failure, OUTPUT_FILE, OUTPUT_PART, State};
use render::{Plan, RenderError, Renderer};

/// The local backend.
#[derive(Debug)]
pub struct Local {
    fps: u32,
    retry_min: Duration,
    retry_max: Duration,
    slots: Arc<Slots>,
    gate: Gate,
}

impl Local {
    pub fn new(settings: &Settings) -> Local {
        Local {
            fps: settings.config.local.fps,
            retry_min: settings.config.runway.retry_min,
            retry_max: settings.config.runway.retry_max,
            slots: Slots::new(1),
            gate: Gate::new(Duration::from_secs(1), Duration::from_secs(1)),
        }
    }
}

/// Renders on a blocking thread; a stop of the job stops the render between two frames.
async fn render(
    image: PathBuf,
    part: PathBuf,
    plan: Plan,
    token: &tokio_util::sync::CancellationToken,
) -> Result<encode::RenderStats, RenderError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let work = tokio::task::spawn_blocking(move || {
        let renderer = Renderer::open(&image, plan)?;
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

/// The render plan of a job: its ratio's pixel size, duration × fps frames, its move.
pub fn plan_for(spec: &crate::job::JobSpec, fps: u32, name: &str) -> Plan {
    let ratio = spec.ratio.as_deref().unwrap_or("1280:720");
    let (w, h) = models::parse_ratio(ratio).unwrap_or((1280, 720));
    let motion = spec
        .motion
        .as_deref()
        .and_then(Motion::parse)
        .unwrap_or(Motion::PushIn);
    // Without a seed, the file name picks the focus: the same file renders the same way.
    let seed = spec.seed.unwrap_or_else(|| {
        name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    });
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

    fn gate(&self) -> &Gate {
        &self.gate
    }

    async fn produce(&self, job: &mut JobCtx) -> Result<(), Stop> {
        if job.rec.state == State::Downloaded {
            return Ok(());
        }
        let ticket = job.ticket.take().unwrap_or_else(|| self.slots.ticket());
        let _slot = ticket.acquire(&job.cancel).await.ok_or(Stop::Cancelled)?;
        let dir = job.spool.job_dir(&job.rec.id);
        let image: PathBuf = dir.join(&job.rec.image);
        let plan = plan_for(&job.rec.spec, self.fps, &job.rec.image);
        tracing::info!(
            job = %job.rec.id,
            file = %job.rec.image,
            motion = plan.motion.name(),
            size = %format!("{}x{}", plan.width, plan.height),
            frames = plan.frames,
            "rendering"
        );
        let mut disk_errors = 0u32;
        let stats = loop {
            match render(image.clone(), dir.join(OUTPUT_PART), plan, &job.cancel).await {
                Ok(stats) => break stats,
                Err(RenderError::Cancelled) => return Err(Stop::Cancelled),
                Err(RenderError::Input(why)) => {
                    return Err(Stop::Failed(Failure {
                        message: format!("{} cannot be rendered: {why}", job.rec.image),
                        advice: "export it again as a PNG, JPEG or WebP image".into(),
                        api: None,
                    }));
                }
                Err(RenderError::Io(e)) => {
                    // A full or read-only disk is nobody's input error: wait and render again.
                    disk_errors += 1;
                    let delay = backoff(disk_errors.min(12), self.retry_min, self.retry_max);
                    if disk_errors == 1 {
                        tracing::error!(job = %job.rec.id, file = %job.rec.image, error = %e, next_try = ?delay,
                            "cannot write the video into processing/ (disk full or not writable?); the job waits and retries");
                    }
                    let _ = std::fs::remove_file(dir.join(OUTPUT_PART));
                    if !sleep_or_cancel(delay, &job.cancel).await {
                        return Err(Stop::Cancelled);
                    }
                }
                Err(e) => {
                    return Err(Stop::Failed(Failure {
                        message: format!("rendering failed: {e}"),
                        advice: "move the image back into inbox/ to try again; if it happens again, report it with the image".into(),
                        api: None,
                    }));
                }
            }
        };
        let rename = std::fs::rename(dir.join(OUTPUT_PART), dir.join(OUTPUT_FILE))
            .and_then(|()| spool::sync_dir(&dir));
        if let Err(e) = rename {
            return Err(Stop::Failed(Failure {
                message: format!("cannot store the rendered video: {e}"),
                advice: "check that the disk is not full, then move the image back into inbox/"
                    .into(),
                api: None,
            }));
        }
        job.rec.state = State::Downloaded;
        job.rec.output_bytes = Some(stats.bytes);
        job.rec.finished_at = Some(spool::now_rfc3339());
        job.rec.render = Some(spool::RenderInfo {
            motion: plan.motion.name().to_string(),
            zoom: plan.zoom,
            fps: plan.fps,
            frames: stats.frames,
            width: plan.width,
            height: plan.height,
            bitrate: stats.bitrate,
            encode_seconds: (stats.seconds * 1000.0).round() / 1000.0,
        });
        job.save().map_err(|e| {
            Stop::Failed(Failure {
                message: format!("cannot write the job state: {e}"),
                advice: "check that the disk is not full".into(),
                api: None,
            })
        })?;
        tracing::info!(job = %job.rec.id, file = %job.rec.image, bytes = stats.bytes, seconds = stats.seconds, "rendered");
        Ok(())
    }
}
