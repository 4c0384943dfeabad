//! What to generate: the job's [`JobKind`] and its [`JobSpec`], built from the config defaults plus
//! the sidecar ([`crate::job::sidecar`]), checked against the model catalog before anything is sent.
//! (What an image file is — format, size, wholeness — is [`crate::media`]'s.)
//!
//! One builder holds the rules every kind shares — model, prompt, ratio, duration, seed, a setting
//! from defaults adapted or a sidecar's refused — so that no kind gets them subtly different.
//! [`motion`] holds the local renderer's camera moves.

pub mod models;
mod motion;
pub mod sidecar;

use motion::validate_motion;
pub use motion::{DEFAULT_ZOOM, Motion};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Defaults;
use models::{Catalog, Endpoint, SEED_MAX};

pub use crate::job::sidecar::{
    MAX_SIDECAR_BYTES, Sidecar, join_problems, parse_sidecar, parse_sidecar_parts, read_sidecar,
};
pub use crate::media::{ImageFormat, ImageInfo};

/// What a job makes a video from. Each kind is sent to its own endpoint, with its own request body.
/// (Today every job is an image's; text and video jobs build on this.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    /// A still animated (image to video); `last_frame` names a last keyframe beside it.
    Image {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_frame: Option<String>,
    },
    /// A prompt from a text file (text to video).
    Text,
    /// A video restyled (video to video).
    Video,
}

impl Default for JobKind {
    /// A job record written before kinds existed was an image's.
    fn default() -> JobKind {
        JobKind::Image { last_frame: None }
    }
}

impl JobKind {
    /// The endpoint that makes this kind of job.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            JobKind::Image { .. } => Endpoint::ImageToVideo,
            JobKind::Text => Endpoint::TextToVideo,
            JobKind::Video => Endpoint::VideoToVideo,
        }
    }

    /// The last keyframe's file name, for an image job that has one.
    pub fn last_frame(&self) -> Option<&str> {
        match self {
            JobKind::Image { last_frame } => last_frame.as_deref(),
            _ => None,
        }
    }

    /// One word, for logs and `status`.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Image { .. } => "image",
            JobKind::Text => "text",
            JobKind::Video => "video",
        }
    }
}

/// What to generate, fully resolved and validated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub model: String,
    /// Empty = not sent.
    pub prompt: String,
    /// `None` when the model takes no ratio.
    pub ratio: Option<String>,
    pub duration: u32,
    /// The request leaves `duration` out (a video keeps its own length).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_duration: bool,
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom: Option<f64>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
    /// Takes of the input, each its own task (1 when unset; 0 in a record is read as 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub variants: u32,
    /// Generate afresh even when the same job was delivered before (`dedupe: false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh: bool,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// What a job is made from, as the spec needs to know it.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A still, by its shown size (`ratio: auto` follows its shape).
    Image(&'a ImageInfo),
    /// A first keyframe (its size) with a last one beside it: the model must take a last frame.
    Keyframes(&'a ImageInfo),
    /// A text file's text: the prompt.
    Text(&'a str),
    /// A video: its size in bytes and its length in seconds (read from its container).
    Video { bytes: u64, seconds: f64 },
}

impl Input<'_> {
    fn endpoint(self) -> Endpoint {
        match self {
            Input::Image(_) | Input::Keyframes(_) => Endpoint::ImageToVideo,
            Input::Text(_) => Endpoint::TextToVideo,
            Input::Video { .. } => Endpoint::VideoToVideo,
        }
    }

    fn is_video(self) -> bool {
        matches!(self, Input::Video { .. })
    }
}

impl JobSpec {
    /// Defaults, overridden by the sidecar, resolved against the input and checked against the
    /// catalog. The error says what is wrong and which values would work.
    pub fn build(
        defaults: &Defaults,
        sidecar: &Sidecar,
        input: Input<'_>,
        catalog: Catalog,
    ) -> Result<JobSpec, String> {
        JobSpec::build_all(defaults, sidecar, input, catalog).map_err(|p| join_problems(&p))
    }

    /// [`JobSpec::build`], with every problem found as its own sentence (so one `error.txt`
    /// lists all there is to fix).
    ///
    /// A setting from `defaults` that the job's (model, endpoint) offers differently is adapted
    /// (the nearest offered ratio or duration; left out where the endpoint takes none); the same
    /// setting in the job's own sidecar is an error naming what the model offers.
    pub fn build_all(
        defaults: &Defaults,
        sidecar: &Sidecar,
        input: Input<'_>,
        catalog: Catalog,
    ) -> Result<JobSpec, Vec<String>> {
        let mut problems: Vec<String> = Vec::new();
        let motion = validate_motion(sidecar).unwrap_or_else(|e| {
            problems.push(e);
            None
        });
        let endpoint = input.endpoint();
        if input.is_video() && catalog.renders_locally() {
            problems.push(
                "video to video needs the Runway backend: the local renderer animates stills and text. \
                 Set RUNWAYML_API_SECRET to your Runway API key (in the environment or in ROOT/.env) and \
                 move the video back into inbox/"
                    .into(),
            );
            return Err(problems);
        }
        let default_model = match input {
            Input::Image(_) | Input::Keyframes(_) => &defaults.model,
            Input::Text(_) => &defaults.text_model,
            Input::Video { .. } => &defaults.video_model,
        };
        let model_id = sidecar
            .model
            .clone()
            .unwrap_or_else(|| default_model.clone());
        let Some(model) = catalog.find(&model_id) else {
            let makes = match input {
                Input::Image(_) | Input::Keyframes(_) => "animate images",
                Input::Text(_) => "make videos from text",
                Input::Video { .. } => "restyle videos",
            };
            problems.push(format!(
                "model {model_id:?} is unknown; models that {makes}: {}",
                models::models_for(endpoint).join(", ")
            ));
            return Err(problems);
        };
        let Some(rules) = model.rules(endpoint) else {
            let (verb, others) = match input {
                Input::Image(_) | Input::Keyframes(_) => {
                    ("animate images", "models that animate images")
                }
                Input::Text(_) => ("make videos from text", "models that do"),
                Input::Video { .. } => ("restyle videos", "models that do"),
            };
            problems.push(format!(
                "model {} does not {verb} (it serves {} only); {others}: {}",
                model.id,
                model.serves(),
                models::models_for(endpoint).join(", ")
            ));
            return Err(problems);
        };
        if matches!(input, Input::Keyframes(_)) && !rules.last_frame {
            let takes: Vec<&str> = models::models_for(endpoint)
                .into_iter()
                .filter(|id| {
                    catalog
                        .find(id)
                        .and_then(|m| m.rules(endpoint))
                        .is_some_and(|r| r.last_frame)
                })
                .collect();
            problems.push(format!(
                "model {} takes no last keyframe, so it cannot run from one still to the other; \
                 models that do: {} (set `model:` in the sidecar), or remove the .last file",
                model.id,
                takes.join(", ")
            ));
        }
        let prompt = match input {
            Input::Image(_) | Input::Keyframes(_) => sidecar
                .prompt
                .clone()
                .unwrap_or_else(|| defaults.prompt.clone()),
            Input::Video { .. } => sidecar
                .prompt
                .clone()
                .unwrap_or_else(|| defaults.prompt.clone()),
            Input::Text(text) => {
                if sidecar.prompt.is_some() {
                    problems.push(
                        "the sidecar sets `prompt:`, but the text file is the prompt; remove `prompt:` from the sidecar"
                            .into(),
                    );
                }
                text.to_string()
            }
        };
        let prompt = prompt.trim().to_string();
        if rules.prompt_required && prompt.is_empty() {
            problems.push(match input {
                Input::Text(_) => "the text file is empty; write the prompt into it".into(),
                Input::Video { .. } => format!(
                    "model {} needs a prompt to restyle a video; add one to the sidecar (e.g. `prompt: as a watercolour`)",
                    model.id
                ),
                Input::Image(_) | Input::Keyframes(_) => format!(
                    "model {} needs a prompt; add one to the sidecar (e.g. `prompt: slow push-in, soft light`)",
                    model.id
                ),
            });
        }
        if let Some(max) = rules.prompt_max {
            let units = prompt.encode_utf16().count();
            if units > max {
                problems.push(format!(
                    "the prompt is {units} characters long (counted as the API counts, in UTF-16 units); \
                     {} takes at most {max}. Shorten it",
                    model.id
                ));
            }
        }
        let ratio_setting = sidecar
            .ratio
            .clone()
            .unwrap_or_else(|| defaults.ratio.clone());
        let ratio = match rules.ratios {
            None if sidecar.ratio.is_some() && input.is_video() => {
                problems.push(format!(
                    "model {} takes no ratio for video-to-video (the output follows the input video); remove `ratio:`",
                    model.id
                ));
                None
            }
            None => None,
            Some(offered) if ratio_setting.trim() == "auto" => match input {
                Input::Image(image) | Input::Keyframes(image) => {
                    Some(models::nearest_ratio(offered, image.width, image.height).to_string())
                }
                // No picture to follow: the model's first (landscape) ratio.
                Input::Text(_) => Some(offered[0].to_string()),
                // Not sent: the output follows the input video.
                Input::Video { .. } => None,
            },
            Some(offered) => {
                let r = ratio_setting.trim().replace(' ', "");
                match models::parse_ratio(&r) {
                    Some(_) if offered.contains(&r.as_str()) => Some(r),
                    // A default the text model does not offer: the nearest shape it does.
                    Some((w, h)) if sidecar.ratio.is_none() && matches!(input, Input::Text(_)) => {
                        Some(models::nearest_ratio(offered, w, h).to_string())
                    }
                    // A default for a video model that offers other ratios: left out.
                    Some(_) if sidecar.ratio.is_none() && input.is_video() => None,
                    parsed => {
                        let hint = if parsed.is_none_or(|(w, h)| w < 100 && h < 100) {
                            " (ratios are pixel sizes like \"1280:720\", not \"16:9\")"
                        } else {
                            ""
                        };
                        problems.push(format!(
                            "ratio {ratio_setting} is not offered by {}{hint}; use auto or one of {}",
                            model.id,
                            offered.join(", ")
                        ));
                        Some(r)
                    }
                }
            }
        };
        let duration = match (rules.durations, sidecar.duration, defaults.duration) {
            (None, Some(d), _) => {
                problems.push(format!(
                    "model {} takes no duration for {} (the output follows the input); remove `duration: {d}`",
                    model.id,
                    endpoint.words()
                ));
                d
            }
            // Left out of the request (see `request_body`).
            (None, None, d) => d.unwrap_or(5),
            (Some(ds), Some(d), _) | (Some(ds), None, Some(d)) if ds.allows(d) => d,
            (Some(ds), Some(d), _) => {
                problems.push(format!(
                    "duration {d} s is not offered by {}; it takes {}",
                    model.id,
                    ds.describe()
                ));
                d
            }
            (Some(ds), None, Some(d)) => match input {
                // A default the text model does not offer: the nearest it does.
                Input::Text(_) => ds.nearest(d),
                Input::Video { .. } => d,
                Input::Image(_) | Input::Keyframes(_) => {
                    problems.push(format!(
                        "duration {d} s is not offered by {}; it takes {}",
                        model.id,
                        ds.describe()
                    ));
                    d
                }
            },
            (Some(ds), None, None) => ds.nearest(5),
        };
        // A video keeps its own length unless its sidecar sets one (and is priced by it).
        let no_duration = input.is_video() && sidecar.duration.is_none();
        let duration = match input {
            Input::Video { seconds, .. } if no_duration => (seconds.ceil() as u32).max(1),
            _ => duration,
        };
        if let Input::Video { bytes, seconds } = input
            && let Some(v) = rules.video
        {
            if bytes > v.max_bytes {
                problems.push(format!(
                    "the video is {} MB; {} takes videos of at most {} MB",
                    bytes.div_ceil(1 << 20),
                    model.id,
                    v.max_bytes >> 20
                ));
            }
            if let Some(max) = v.max_seconds
                && seconds > f64::from(max)
            {
                problems.push(format!(
                    "the video is {seconds:.1} s long; {} takes videos of at most {max} s. \
                     Trim it to {max} s or less and move it back into inbox/",
                    model.id
                ));
            }
        }
        let seed = match sidecar.seed {
            Some(s) if !rules.seed => {
                problems.push(format!(
                    "model {} does not take a seed (seed {s}); remove `seed:` or use gen4.5 or gen4_turbo",
                    model.id
                ));
                None
            }
            Some(s) if s > SEED_MAX => {
                problems.push(format!(
                    "seed {s} is out of range; use a whole number from 0 to {SEED_MAX}"
                ));
                None
            }
            s => s,
        };
        let variants = sidecar.variants.unwrap_or(defaults.variants);
        if !(1..=crate::config::MAX_VARIANTS).contains(&variants) {
            problems.push(format!(
                "variants: {variants} is out of range; use a whole number from 1 to {}",
                crate::config::MAX_VARIANTS
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let (motion, zoom) = if catalog.renders_locally() {
            let m = match input {
                Input::Image(_) | Input::Keyframes(_) => {
                    motion.unwrap_or_else(|| Motion::from_prompt(&prompt))
                }
                // A title card pushes in slowly unless the sidecar says otherwise.
                Input::Text(_) | Input::Video { .. } => motion.unwrap_or(Motion::PushIn),
            };
            (
                Some(m.name().to_string()),
                Some(sidecar.zoom.unwrap_or(DEFAULT_ZOOM)),
            )
        } else {
            (sidecar.motion.clone(), sidecar.zoom)
        };
        Ok(JobSpec {
            model: model.id.to_string(),
            prompt,
            ratio,
            duration,
            no_duration,
            seed,
            motion,
            zoom,
            extra: sidecar.extra.clone().unwrap_or_default(),
            variants,
            fresh: !sidecar.dedupe.unwrap_or(defaults.dedupe),
        })
    }

    /// Takes of the input (at least 1).
    pub fn takes(&self) -> u32 {
        self.variants.max(1)
    }
}

#[cfg(test)]
mod tests;
