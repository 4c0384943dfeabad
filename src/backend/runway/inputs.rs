//! What each kind of job sends: an image inline as a data URI or through the upload endpoint (a
//! format the API does not take converted to PNG first), a pair of keyframes, a prompt image for a
//! text, an uploaded video — each upload reused while Runway keeps it.

use std::path::PathBuf;

use base64::Engine as _;

use super::{ApiError, DATA_URI_MAX, Media, Runway, UPLOAD_MAX, UPLOAD_REUSE_SECS, unix_now};
use crate::backend::{JobCtx, Stop};
use crate::studio::record::Upload;
use crate::studio::spool::Failure;

impl Runway {
    /// The file to send for the job's image `name` (its first or last keyframe) and its type: the
    /// image itself, or — for formats the API does not take (GIF, BMP, TIFF) — a PNG made from it
    /// once and kept in the job folder as `converted`.
    pub(super) async fn image_to_send(
        &self,
        job: &JobCtx,
        name: &str,
        converted: &str,
    ) -> Result<ToSend, Stop> {
        let dir = job.spool.job_dir(&job.rec.id);
        let format = if name == job.rec.source.name {
            job.rec.info.format
        } else {
            match crate::media::format_of(&dir.join(name)) {
                Ok(Some(f)) => f,
                _ => {
                    return Err(Stop::Failed(Failure {
                        message: format!("{name} is no longer a readable image"),
                        advice: "export it again as a PNG or JPEG and move it back into inbox/"
                            .into(),
                        api: None,
                    }));
                }
            }
        };
        if format.sent_as_is() {
            return Ok(ToSend {
                path: dir.join(name),
                name: name.to_string(),
                mime: format.mime(),
                inline: true,
            });
        }
        let png = dir.join(converted);
        let png_name = format!("{}.png", crate::studio::layout::split_name(name).0);
        if !png.exists() {
            let (src, dst) = (dir.join(name), png.clone());
            let done =
                tokio::task::spawn_blocking(move || crate::media::convert::to_png(&src, &dst))
                    .await
                    .unwrap_or_else(|e| Err(format!("the converter crashed: {e}")));
            if let Err(why) = done {
                return Err(Stop::Failed(Failure {
                    message: format!(
                        "{name} ({}) could not be converted to PNG for Runway: {why}",
                        format.name()
                    ),
                    advice: "export it as a PNG or JPEG and move that into inbox/".into(),
                    api: None,
                }));
            }
            tracing::info!(job = %job.rec.id, file = %name, from = format.name(), "converted to PNG for Runway");
        }
        let len = std::fs::metadata(&png).map_or(0, |m| m.len());
        if len > UPLOAD_MAX {
            return Err(Stop::Failed(Failure {
                message: format!(
                    "{name} converted to PNG is {} MB; Runway takes images of at most {} MB",
                    len >> 20,
                    UPLOAD_MAX >> 20
                ),
                advice: "export a smaller JPEG of it and move that into inbox/".into(),
                api: None,
            }));
        }
        Ok(ToSend {
            path: png,
            name: png_name,
            mime: "image/png",
            inline: true,
        })
    }

    /// How an image reaches the create request: a data URI when it fits the inline limit, else an
    /// upload (`earlier`, an upload made before, is reused while valid).
    pub(super) async fn prompt_image(
        &self,
        job: &JobCtx,
        file: &ToSend,
        earlier: Option<&Upload>,
    ) -> Result<PromptImage, ApiError> {
        let len = tokio::fs::metadata(&file.path)
            .await
            .map_err(|e| ApiError::Lost(format!("cannot read the image: {e}")))?
            .len();
        let prefix = format!("data:{};base64,", file.mime);
        let encoded_len = prefix.len() as u64 + len.div_ceil(3) * 4;
        // Videos always go through the upload endpoint, streamed from disk.
        if file.inline && encoded_len < DATA_URI_MAX as u64 {
            let bytes = tokio::fs::read(&file.path)
                .await
                .map_err(|e| ApiError::Lost(format!("cannot read the image: {e}")))?;
            let mut uri = prefix;
            base64::engine::general_purpose::STANDARD.encode_string(&bytes, &mut uri);
            return Ok(PromptImage::Ready(uri));
        }
        if let Some(up) = earlier
            && unix_now().saturating_sub(up.at) < UPLOAD_REUSE_SECS
        {
            return Ok(PromptImage::Ready(up.uri.clone()));
        }
        let uri = self
            .api
            .upload(&file.path, &file.name, file.mime, len)
            .await?;
        tracing::info!(job = %job.rec.id, file = %file.name, bytes = len, "uploaded");
        Ok(PromptImage::Uploaded(uri))
    }

    /// The job's images as the create request names them (uploading where needed, and noting
    /// uploads in `job.json` so a resume reuses them). `Ok(Err)`: an API error to handle.
    pub(super) async fn media(
        &self,
        job: &mut JobCtx,
        files: &[ToSend],
    ) -> Result<Result<Media, ApiError>, Stop> {
        let mut uris = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let earlier = if i == 0 {
                job.rec.upload()
            } else {
                job.rec.last_upload.clone()
            };
            match self.prompt_image(job, file, earlier.as_ref()).await {
                Ok(PromptImage::Ready(uri)) => uris.push(uri),
                Ok(PromptImage::Uploaded(uri)) => {
                    let up = Upload {
                        uri: uri.clone(),
                        at: unix_now(),
                    };
                    if i == 0 {
                        job.rec.upload_uri = Some(up.uri);
                        job.rec.upload_at = Some(up.at);
                    } else {
                        job.rec.last_upload = Some(up);
                    }
                    job.save().await?;
                    uris.push(uri);
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        let mut uris = uris.into_iter();
        Ok(Ok(match (uris.next(), uris.next()) {
            (None, _) => Media::None,
            (Some(first), None) => Media::One(first),
            (Some(first), Some(last)) => Media::Keyframes { first, last },
        }))
    }
}

/// A file as it is sent: its path, the name it is uploaded under, its type, and whether it may go
/// inline as a data URI (small images only).
pub(super) struct ToSend {
    path: PathBuf,
    name: String,
    mime: &'static str,
    inline: bool,
}

/// The video of a video job, always uploaded.
pub(super) fn video_to_send(job: &JobCtx) -> Result<ToSend, Stop> {
    let name = job.rec.source.name.clone();
    let path = job.spool.job_dir(&job.rec.id).join(&name);
    match crate::media::video::container_of(&path) {
        Ok(Some(c)) => Ok(ToSend {
            path,
            name,
            mime: c.mime(),
            inline: false,
        }),
        _ => Err(Stop::Failed(Failure {
            message: format!("{name} is no longer a readable video"),
            advice: "export it again as an MP4 and move it back into inbox/".into(),
            api: None,
        })),
    }
}

/// How the image reaches the create request.
pub(super) enum PromptImage {
    /// Inline as a data URI, or an upload made earlier and still valid.
    Ready(String),
    /// Uploaded just now (to note in `job.json`, so a resume reuses it).
    Uploaded(String),
}
