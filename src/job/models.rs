//! The Runway model catalog, keyed by (model, endpoint): for every model, each endpoint that serves
//! it (image, text or video to video) with the ratios, resolutions and durations it offers there,
//! its prompt rules, seed, last-keyframe and output-format support, the field its input video goes
//! in; and each model's price.
//!
//! The catalog is data. `assets/runway/runway-models.yaml` is Runway's own catalog, copied unchanged
//! from the SDK edition it names; `assets/runway/dropreel.yaml` adds what Runway's docs say only in
//! prose (seedance's 15 s, the model that replaced a legacy one); a studio's `models:` adds models or
//! overrides them the same way. [`load`] reads and merges the three; here are the types and lookups.
//! Every job is checked against the catalog before any request is sent, so a typo costs nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

mod load;
mod local;

pub use load::{CatalogError, RUNWAY_EDITION};
pub use local::{LOCAL, LOCAL_TITLE_MAX};

/// Durations a model accepts, in whole seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durations {
    /// Any whole number in `min..=max`.
    Range(u32, u32),
    /// Exactly one of these values (never empty).
    Values(Vec<u32>),
    /// Any whole number of seconds: the API publishes no range (it refuses what the model cannot
    /// make, with a message that `error.txt` carries).
    Any,
}

impl Durations {
    pub fn allows(&self, d: u32) -> bool {
        match self {
            Durations::Range(lo, hi) => (*lo..=*hi).contains(&d),
            Durations::Values(v) => v.contains(&d),
            Durations::Any => d >= 1,
        }
    }

    /// The offered duration nearest to `d` (ties go to the shorter, cheaper clip).
    pub fn nearest(&self, d: u32) -> u32 {
        match self {
            Durations::Range(lo, hi) => d.clamp(*lo, *hi),
            Durations::Values(v) => *v
                .iter()
                .min_by_key(|&&x| (x.abs_diff(d), x))
                .expect("a Values list is never empty"),
            Durations::Any => d.max(1),
        }
    }

    /// The longest duration offered, when there is one (what `duration: auto` is billed at).
    pub fn max(&self) -> Option<u32> {
        match self {
            Durations::Range(_, hi) => Some(*hi),
            Durations::Values(v) => v.iter().copied().max(),
            Durations::Any => None,
        }
    }

    /// Human wording: "any whole number from 2 to 10 seconds" or "4, 6 or 8 seconds".
    pub fn describe(&self) -> String {
        match self {
            Durations::Range(lo, hi) => format!("any whole number from {lo} to {hi} seconds"),
            Durations::Values(v) => {
                let list: Vec<String> = v.iter().map(u32::to_string).collect();
                format!("{} seconds", join_or(&list))
            }
            Durations::Any => "any whole number of seconds".into(),
        }
    }

    /// Short form for tables: "2–10", "4/6/8", "any".
    pub fn short(&self) -> String {
        match self {
            Durations::Range(lo, hi) => format!("{lo}–{hi}"),
            Durations::Values(v) => v.iter().map(u32::to_string).collect::<Vec<_>>().join("/"),
            Durations::Any => "any".into(),
        }
    }
}

/// As `dropreel models --json` writes it: `{"min", "max"}`, `{"values"}` or `"any"`.
impl Serialize for Durations {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        match self {
            Durations::Range(min, max) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("min", min)?;
                m.serialize_entry("max", max)?;
                m.end()
            }
            Durations::Values(v) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("values", v)?;
                m.end()
            }
            Durations::Any => s.serialize_str("any"),
        }
    }
}

/// A Runway endpoint that creates a video task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    ImageToVideo,
    TextToVideo,
    VideoToVideo,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [
        Endpoint::ImageToVideo,
        Endpoint::TextToVideo,
        Endpoint::VideoToVideo,
    ];

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ImageToVideo => "/v1/image_to_video",
            Endpoint::TextToVideo => "/v1/text_to_video",
            Endpoint::VideoToVideo => "/v1/video_to_video",
        }
    }

    /// The key in the catalog's YAML: `image_to_video`.
    pub fn key(self) -> &'static str {
        match self {
            Endpoint::ImageToVideo => "image_to_video",
            Endpoint::TextToVideo => "text_to_video",
            Endpoint::VideoToVideo => "video_to_video",
        }
    }

    /// What the endpoint makes videos from, for messages: "image", "text", "video".
    pub fn input(self) -> &'static str {
        match self {
            Endpoint::ImageToVideo => "image",
            Endpoint::TextToVideo => "text",
            Endpoint::VideoToVideo => "video",
        }
    }

    /// Plain words, for messages: "image-to-video".
    pub fn words(self) -> &'static str {
        match self {
            Endpoint::ImageToVideo => "image-to-video",
            Endpoint::TextToVideo => "text-to-video",
            Endpoint::VideoToVideo => "video-to-video",
        }
    }
}

/// What one model accepts on one endpoint (serialized as `dropreel models --json` lists it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rules {
    /// Offered `ratio` values: pixel sizes (`"1280:720"`), aspects (`"16:9"`, `"adaptive"`) or
    /// quality tiers that follow the input's shape (`"auto_720p"`); `None` when the endpoint takes
    /// no ratio for this model (the output follows the input).
    pub ratios: Option<Vec<String>>,
    /// The request must carry a `ratio`.
    pub ratio_required: bool,
    /// Offered values of a separate `resolution` field; `None` when the model has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolutions: Option<Vec<String>>,
    /// Offered durations; `None` when the endpoint takes no `duration` (the output follows the
    /// input video).
    pub durations: Option<Durations>,
    /// `duration: auto` is taken (the model picks; billed at the longest up front).
    pub duration_auto: bool,
    /// The prompt must be present and non-empty.
    pub prompt_required: bool,
    /// Prompt limit in UTF-16 code units, as the API counts; `None` = not published.
    pub prompt_max: Option<usize>,
    /// The endpoint takes a `seed` for this model.
    pub seed: bool,
    /// `promptImage` may carry a last keyframe (the array form with positions first and last).
    pub last_frame: bool,
    /// The endpoint takes `outputFormat` for this model.
    pub output_format: bool,
    /// For video to video: how the input video is sent and what the model takes (listed as the
    /// field that carries it).
    #[serde(
        rename = "video_field",
        skip_serializing_if = "Option::is_none",
        serialize_with = "video_field"
    )]
    pub video: Option<VideoInput>,
}

fn video_field<S: serde::Serializer>(v: &Option<VideoInput>, s: S) -> Result<S::Ok, S::Error> {
    v.as_ref().map(|v| &v.field).serialize(s)
}

impl Rules {
    /// Whether `r` is a ratio that follows the input's own shape (`auto_720p`, `adaptive`).
    pub fn follows_input(r: &str) -> bool {
        r.starts_with("auto_") || r == "adaptive"
    }
}

/// The input video of a video-to-video model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInput {
    /// The request field that carries it: `videoUri` or `promptVideo`.
    pub field: String,
    /// The largest file taken (the upload endpoint's 200 MB unless the model's docs say less).
    pub max_bytes: u64,
    /// The longest video taken, when the model's docs say.
    pub max_seconds: Option<u32>,
}

/// The upload endpoint's limit, which bounds every video input.
pub const VIDEO_UPLOAD_MAX: u64 = 200 * 1024 * 1024;

/// Where a catalog entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Runway's catalog as shipped.
    Runway,
    /// Runway's, with the studio's `models:` changing some of it.
    Overridden,
    /// Declared by the studio's `models:`.
    User,
    /// dropreel's own local renderer.
    Local,
}

/// One entry of the catalog: a model and the rules of every endpoint that serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub id: String,
    /// No longer offered by Runway: a job naming it fails before any request.
    pub legacy: bool,
    /// For a legacy model, the SDK release that dropped it.
    pub removed_in: Option<String>,
    /// For a legacy model, the current model closest to it.
    pub replaced_by: Option<String>,
    /// Credits per output second (1 credit = US$0.01), without audio where audio costs more; `None`
    /// when Runway has not published it.
    pub credits_per_second: Option<u32>,
    /// Credits per second with `audio: true`, for models that price it apart.
    pub credits_with_audio: Option<u32>,
    /// Extra credits per second by `outputFormat` (`prores: 5`), as Runway's docstrings give them.
    pub surcharges: BTreeMap<String, u32>,
    /// The output formats the model offers (`outputFormat`), each with its file extension.
    pub output_formats: BTreeMap<String, String>,
    pub endpoints: Vec<(Endpoint, Rules)>,
    pub origin: Origin,
}

impl Model {
    /// The model's rules on `endpoint`; `None` when the endpoint does not serve it.
    pub fn rules(&self, endpoint: Endpoint) -> Option<&Rules> {
        self.endpoints
            .iter()
            .find(|(e, _)| *e == endpoint)
            .map(|(_, r)| r)
    }

    /// The endpoints that serve the model, in words ("text-to-video and video-to-video").
    pub fn serves(&self) -> String {
        let words: Vec<&str> = self.endpoints.iter().map(|(e, _)| e.words()).collect();
        words.join(" and ")
    }

    /// Credits per second of a clip with or without audio in `format` (`None` = the default
    /// format): the base rate plus the format's surcharge. `None` when the base rate is unknown.
    pub fn rate(&self, audio: bool, format: Option<&str>) -> Option<u32> {
        let base = match (audio, self.credits_with_audio) {
            (true, Some(r)) => r,
            _ => self.credits_per_second?,
        };
        Some(base + format.map_or(0, |f| self.surcharge(f)))
    }

    /// Extra credits per second for `format`: its own surcharge, or the one Runway gives for every
    /// 10-bit-and-deeper format (gen4.5's HDR family); 0 when none is published.
    pub fn surcharge(&self, format: &str) -> u32 {
        if let Some(s) = self.surcharges.get(format) {
            return *s;
        }
        let deep = format.starts_with("hdr") || format == "hlg" || format.contains("10bit");
        match self.surcharges.get("ten_bit_and_deeper") {
            Some(s) if deep => *s,
            _ => 0,
        }
    }

    /// The file extension (with its dot) of a result in `format`: `.mp4` by default.
    pub fn extension(&self, format: Option<&str>) -> String {
        format
            .and_then(|f| self.output_formats.get(f))
            .cloned()
            .unwrap_or_else(|| ".mp4".into())
    }
}

/// Seed range the API documents (the SDK types a bare int).
pub const SEED_MAX: u64 = 4_294_967_295;

/// Every model a run knows: Runway's catalog, dropreel's additions and the studio's `models:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Models {
    list: Vec<Model>,
}

static BUILT_IN: LazyLock<Arc<Models>> = LazyLock::new(|| {
    Arc::new(load::build(&BTreeMap::new()).expect("the shipped catalog is checked by its tests"))
});

impl Models {
    /// The catalog as shipped (no studio's `models:`).
    pub fn built_in() -> Arc<Models> {
        BUILT_IN.clone()
    }

    /// The catalog with a studio's `models:` entries merged in (each a model id mapped to the keys
    /// it adds or changes, in the catalog's own form). The error names the entry and the key.
    pub fn with(
        user: &BTreeMap<String, serde_yaml_ng::Value>,
    ) -> Result<Arc<Models>, CatalogError> {
        if user.is_empty() {
            return Ok(Models::built_in());
        }
        load::build(user).map(Arc::new)
    }

    /// Looks a model up by its API id (exact, as the API is case-sensitive).
    pub fn find(&self, id: &str) -> Option<&Model> {
        self.list.iter().find(|m| m.id == id)
    }

    /// Every model, Runway's in catalog order, then the studio's own.
    pub fn iter(&self) -> impl Iterator<Item = &Model> {
        self.list.iter()
    }

    /// The ids of every current model `endpoint` serves (legacy ones are not offered).
    pub fn models_for(&self, endpoint: Endpoint) -> Vec<&str> {
        self.list
            .iter()
            .filter(|m| !m.legacy && m.rules(endpoint).is_some())
            .map(|m| m.id.as_str())
            .collect()
    }

    /// The current model ids nearest in spelling to `id` (a typo's likely meaning), best first.
    pub fn nearest(&self, id: &str, n: usize) -> Vec<&str> {
        let want = id.to_lowercase();
        let mut scored: Vec<(f64, &str)> = self
            .list
            .iter()
            .filter(|m| !m.legacy)
            .map(|m| {
                let have = m.id.to_lowercase();
                let mut score = strsim::jaro_winkler(&want, &have);
                // "kling3_pro" for "kling3.0_pro": the same letters and digits.
                let bare = |s: &str| s.replace(['.', '_', '-'], "");
                if bare(&want) == bare(&have) {
                    score += 1.0;
                }
                (score, m.id.as_str())
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take_while(|(s, _)| *s > 0.7)
            .take(n)
            .map(|(_, id)| id)
            .collect()
    }
}

/// Which catalog a backend's jobs are checked against.
#[derive(Debug, Clone, PartialEq)]
pub enum Catalog {
    /// Runway's models (with the studio's own), by the id a job names.
    Runway(Arc<Models>),
    /// The local renderer: every job renders with [`LOCAL`], whatever model it names (so a
    /// sidecar written for Runway still renders locally), and picks its camera move.
    Local,
}

impl Catalog {
    /// The model a job naming `id` runs on.
    pub fn find(&self, id: &str) -> Option<&Model> {
        match self {
            Catalog::Runway(models) => models.find(id),
            Catalog::Local => Some(&LOCAL),
        }
    }

    /// Whether jobs render locally (their spec carries a camera move and zoom).
    pub fn renders_locally(&self) -> bool {
        matches!(self, Catalog::Local)
    }

    /// The models of the catalog (for the local renderer: Runway's as shipped, which its
    /// messages name).
    pub fn models(&self) -> Arc<Models> {
        match self {
            Catalog::Runway(models) => models.clone(),
            Catalog::Local => Models::built_in(),
        }
    }
}

/// Parses `"W:H"` into positive integers (pixels or an aspect like `16:9`).
pub fn parse_ratio(r: &str) -> Option<(u32, u32)> {
    let (w, h) = r.split_once(':')?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// The offered `W:H` ratio whose aspect is nearest to `width × height` (compared on a log scale, so
/// 2:1 and 1:2 are equally far from 1:1); among sizes of the same aspect, the one nearest 720p in
/// pixels. `None` when no offered ratio is a `W:H`.
pub fn nearest_ratio(offered: &[String], width: u32, height: u32) -> Option<&str> {
    let want = (f64::from(width.max(1)) / f64::from(height.max(1))).ln();
    let hd = (1280.0f64 * 720.0).ln();
    let scored: Vec<(f64, f64, &str)> = offered
        .iter()
        .filter_map(|r| {
            let (w, h) = parse_ratio(r)?;
            let (w, h) = (f64::from(w), f64::from(h));
            Some((
                ((w / h).ln() - want).abs(),
                ((w * h).ln() - hd).abs(),
                r.as_str(),
            ))
        })
        .collect();
    let best = scored.iter().map(|s| s.0).min_by(f64::total_cmp)?;
    scored
        .iter()
        .filter(|s| s.0 - best < 1e-9)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|s| s.2)
}

/// "a, b or c".
pub fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests;
