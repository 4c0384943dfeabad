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
use models::{Catalog, Endpoint, Rules, SEED_MAX};

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

/// A duration as a sidecar writes it: whole seconds, or `auto` (the model picks; only for the
/// models that offer it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Seconds {
    Whole(u32),
    Auto(AutoWord),
}

/// The word `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoWord {
    Auto,
}

/// What to generate, fully resolved and validated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub model: String,
    /// Empty = not sent.
    pub prompt: String,
    /// `None` when the model takes no ratio.
    pub ratio: Option<String>,
    /// The model's `resolution`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// The model's `outputFormat`, when set (`None` = MP4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// The extension of the file that format makes (`mov`), when it is not `mp4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_ext: Option<String>,
    /// Seconds of video: what is sent, and what the job is priced by. With `duration_auto`, the
    /// longest the model makes (what Runway bills up front), or 0 when that is not published.
    pub duration: u32,
    /// The request says `duration: "auto"` (the model picks the length).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duration_auto: bool,
    /// Credits per second the catalog gave this job when it was checked (its model's rate, with
    /// audio and the output format's surcharge); `None` when the catalog has no price for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_rate: Option<u32>,
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
        catalog: &Catalog,
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
        catalog: &Catalog,
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
        let models = catalog.models();
        let makes = match input {
            Input::Image(_) | Input::Keyframes(_) => "animate images",
            Input::Text(_) => "make videos from text",
            Input::Video { .. } => "restyle videos",
        };
        let Some(model) = catalog.find(&model_id) else {
            let near = models.nearest(&model_id, 3);
            let near = if near.is_empty() {
                String::new()
            } else {
                let near: Vec<String> = near.iter().map(|id| id.to_string()).collect();
                format!(" Did you mean {}?", models::join_or(&near))
            };
            problems.push(format!(
                "model {model_id:?} is unknown.{near} Models that {makes}: {}. \
                 A model Runway offers that dropreel does not list yet can be declared under `models:` \
                 in dropreel.yaml (see `dropreel models` and the README)",
                models.models_for(endpoint).join(", ")
            ));
            return Err(problems);
        };
        if model.legacy {
            let removed = model.removed_in.as_deref().map_or(String::new(), |r| {
                format!(" (it left Runway's API in SDK {r})")
            });
            let instead = model.replaced_by.as_deref().map_or_else(
                || {
                    format!(
                        "use a current model: {}",
                        models.models_for(endpoint).join(", ")
                    )
                },
                |r| format!("use {r}, the current model closest to it (`model: {r}`)"),
            );
            problems.push(format!(
                "model {} is no longer offered by Runway{removed}; {instead}, and move the file back into inbox/",
                model.id
            ));
            return Err(problems);
        }
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
                models.models_for(endpoint).join(", ")
            ));
            return Err(problems);
        };
        if matches!(input, Input::Keyframes(_)) && !rules.last_frame {
            let takes: Vec<&str> = models
                .models_for(endpoint)
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
            Input::Image(_) | Input::Keyframes(_) | Input::Video { .. } => sidecar
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
        let ratio = ratio_for(&model.id, rules, sidecar, defaults, input, &mut problems);
        // The local renderer makes an MP4 at the ratio's size: a sidecar written for a Runway
        // model's resolution or format still renders.
        let (own_resolution, own_format) = if catalog.renders_locally() {
            (None, None)
        } else {
            (sidecar.resolution.as_ref(), sidecar.output_format.as_ref())
        };
        let (default_resolution, default_format) = if catalog.renders_locally() {
            (None, None)
        } else {
            (
                defaults.resolution.as_ref(),
                defaults.output_format.as_ref(),
            )
        };
        let resolution = one_of(
            "resolution",
            own_resolution,
            default_resolution,
            rules.resolutions.as_deref(),
            &model.id,
            &mut problems,
        );
        let formats: Option<Vec<String>> = (rules.output_format
            && !model.output_formats.is_empty())
        .then(|| model.output_formats.keys().cloned().collect());
        let output_format = one_of(
            "output_format",
            own_format,
            default_format,
            formats.as_deref(),
            &model.id,
            &mut problems,
        )
        // MP4 is what every model makes unless asked otherwise: not sent.
        .filter(|f| f != "mp4");
        // A format delivered as an MP4 or a QuickTime file is saved under its own extension; a
        // sequence of frames (a `.zip`) is not delivered yet: refused before any request.
        let ext = model
            .extension(output_format.as_deref())
            .trim_start_matches('.')
            .to_string();
        let output_ext = match &output_format {
            Some(f) if !crate::studio::layout::VIDEO_EXTS.contains(&ext.as_str()) => {
                let movies: Vec<String> = model
                    .output_formats
                    .iter()
                    .filter(|(_, e)| {
                        crate::studio::layout::VIDEO_EXTS.contains(&e.trim_start_matches('.'))
                    })
                    .map(|(f, _)| f.clone())
                    .collect();
                problems.push(format!(
                    "output_format {f} makes a .{ext} of frames, which dropreel does not deliver yet; \
                     use {}",
                    models::join_or(&movies)
                ));
                None
            }
            Some(_) if ext != "mp4" => Some(ext),
            _ => None,
        };
        let duration_auto = matches!(sidecar.duration, Some(Seconds::Auto(_)));
        if duration_auto && !rules.duration_auto {
            problems.push(format!(
                "model {} does not take `duration: auto`{}; set a number of seconds",
                model.id,
                rules
                    .durations
                    .as_ref()
                    .map_or(String::new(), |ds| format!(" (it takes {})", ds.describe()))
            ));
        }
        let duration = match (&rules.durations, sidecar.duration, defaults.duration) {
            (None, Some(d), _) => {
                problems.push(format!(
                    "model {} takes no duration for {} (the output follows the input); remove `duration: {}`",
                    model.id,
                    endpoint.words(),
                    match d {
                        Seconds::Whole(n) => n.to_string(),
                        Seconds::Auto(_) => "auto".into(),
                    }
                ));
                0
            }
            // Left out of the request (see `request_body`).
            (None, None, d) => d.unwrap_or(5),
            // Billed at the longest up front (unknown when no range is published).
            (Some(ds), Some(Seconds::Auto(_)), _) => ds.max().unwrap_or(0),
            (Some(ds), Some(Seconds::Whole(d)), _) | (Some(ds), None, Some(d)) if ds.allows(d) => d,
            (Some(ds), Some(Seconds::Whole(d)), _) => {
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
            && let Some(v) = &rules.video
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
                let takes: Vec<&str> = models
                    .models_for(endpoint)
                    .into_iter()
                    .filter(|id| {
                        models
                            .find(id)
                            .and_then(|m| m.rules(endpoint))
                            .is_some_and(|r| r.seed)
                    })
                    .collect();
                problems.push(format!(
                    "model {} does not take a seed (seed {s}); remove `seed:` or use a model that does: {}",
                    model.id,
                    takes.join(", ")
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
        let audio = sidecar
            .extra
            .as_ref()
            .and_then(|e| e.get("audio"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // `duration: auto` with no published longest clip cannot be priced before the request.
        let catalog_rate = model
            .rate(audio, output_format.as_deref())
            .filter(|_| !(duration_auto && duration == 0));
        Ok(JobSpec {
            model: model.id.to_string(),
            catalog_rate,
            prompt,
            ratio,
            resolution,
            output_format,
            output_ext,
            duration,
            duration_auto,
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

/// The `ratio` sent for a job: the sidecar's or the default's, checked against what the model
/// offers on the endpoint. `auto` follows the image (a tier like `auto_720p` where the model has
/// one, else the nearest offered shape); a text job's `auto` is the offered shape nearest 16:9; a
/// video's is left out (the output follows the input) unless the model needs one.
fn ratio_for(
    model: &str,
    rules: &Rules,
    sidecar: &Sidecar,
    defaults: &Defaults,
    input: Input<'_>,
    problems: &mut Vec<String>,
) -> Option<String> {
    let setting = sidecar
        .ratio
        .clone()
        .unwrap_or_else(|| defaults.ratio.clone());
    let setting = setting.trim().replace(' ', "");
    let own = sidecar.ratio.is_some();
    let Some(offered) = &rules.ratios else {
        if own && setting != "auto" {
            let follows = if input.is_video() { "video" } else { "image" };
            problems.push(format!(
                "model {model} takes no ratio for {} (the output follows the input {follows}); remove `ratio:`",
                input.endpoint().words()
            ));
        }
        return None;
    };
    // A tier that follows the input's shape, the 720p one where there are several.
    let tier = || {
        let tiers: Vec<&String> = offered.iter().filter(|r| Rules::follows_input(r)).collect();
        tiers
            .iter()
            .find(|r| r.as_str() == "auto_720p")
            .or(tiers.first())
            .map(|r| r.to_string())
    };
    let needed = || {
        rules
            .ratio_required
            .then(|| tier().unwrap_or_else(|| offered[0].clone()))
    };
    if setting == "auto" {
        return match input {
            Input::Image(image) | Input::Keyframes(image) => tier()
                .or_else(|| {
                    models::nearest_ratio(offered, image.width, image.height).map(String::from)
                })
                .or_else(needed),
            Input::Text(_) => models::nearest_ratio(offered, 16, 9)
                .map(String::from)
                .or_else(needed),
            Input::Video { .. } => needed(),
        };
    }
    if offered.contains(&setting) {
        return Some(setting);
    }
    let parsed = models::parse_ratio(&setting);
    match parsed {
        // A default the text model does not offer: the nearest shape it does.
        Some((w, h)) if !own && matches!(input, Input::Text(_)) => {
            models::nearest_ratio(offered, w, h)
                .map(String::from)
                .or_else(needed)
        }
        // A default for a video model that offers other ratios: left out.
        Some(_) if !own && input.is_video() => needed(),
        _ => {
            let pixels = offered
                .iter()
                .filter_map(|r| models::parse_ratio(r))
                .all(|(w, h)| w >= 100 && h >= 100);
            let hint = if pixels && parsed.is_none_or(|(w, h)| w < 100 && h < 100) {
                " (ratios are pixel sizes like \"1280:720\", not \"16:9\")"
            } else {
                ""
            };
            problems.push(format!(
                "ratio {setting} is not offered by {model}{hint}; use auto or one of {}",
                offered.join(", ")
            ));
            Some(setting)
        }
    }
}

/// A setting with a fixed set of values (`resolution`, `output_format`): the sidecar's, else the
/// default's, as the model spells it (letter case aside). The sidecar's is an error when the model
/// does not offer it; a default the model does not offer is left out.
fn one_of(
    key: &str,
    own: Option<&String>,
    default: Option<&String>,
    offered: Option<&[String]>,
    model: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    let (value, is_own) = match (own, default) {
        (Some(v), _) => (v.trim(), true),
        (None, Some(v)) => (v.trim(), false),
        (None, None) => return None,
    };
    // Letter case aside, the lower-case spelling first (Runway deprecated `2K` for `2k`).
    let found = offered.and_then(|o| {
        let same: Vec<&String> = o.iter().filter(|x| x.eq_ignore_ascii_case(value)).collect();
        same.iter()
            .find(|x| !x.chars().any(|c| c.is_ascii_uppercase()))
            .or(same.first())
            .copied()
    });
    match (found, offered) {
        (Some(v), _) => Some(v.clone()),
        // MP4 is every model's own format.
        (None, _) if key == "output_format" && value.eq_ignore_ascii_case("mp4") => None,
        (None, _) if !is_own => None,
        (None, None) => {
            problems.push(format!(
                "model {model} takes no `{key}`; remove `{key}: {value}`"
            ));
            None
        }
        (None, Some(o)) => {
            // Upper-case spellings Runway deprecated are not offered twice.
            let mut shown: Vec<String> = Vec::new();
            for x in o {
                if !shown.iter().any(|s| s.eq_ignore_ascii_case(x)) {
                    shown.push(x.clone());
                }
            }
            problems.push(format!(
                "{key} {value} is not offered by {model}; use {}",
                models::join_or(&shown)
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests;
