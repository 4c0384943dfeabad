//! The Runway model catalog as data, keyed by (model, endpoint): for every model, each endpoint
//! that serves it (image, text or video to video) with the ratios and durations it offers there,
//! its prompt rules, seed and last-keyframe support; and each model's price.
//!
//! Source: the official SDK's request schema (runwayml/sdk-python 5.13.0) and Runway's docs. Every job
//! is validated against this table before any request is sent, so a typo costs nothing.
//!
//! The types and lookups are here; the table itself (thirteen models, each endpoint's rules) is
//! `table`.

use serde::{Deserialize, Serialize};

mod table;

pub use table::{LOCAL, MODELS};

/// Durations a model accepts, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durations {
    /// Any whole number in `min..=max`.
    Range(u32, u32),
    /// Exactly one of these values.
    Values(&'static [u32]),
}

impl Durations {
    pub fn allows(self, d: u32) -> bool {
        match self {
            Durations::Range(lo, hi) => (lo..=hi).contains(&d),
            Durations::Values(v) => v.contains(&d),
        }
    }

    /// The offered duration nearest to `d` (ties go to the shorter, cheaper clip).
    pub fn nearest(self, d: u32) -> u32 {
        match self {
            Durations::Range(lo, hi) => d.clamp(lo, hi),
            Durations::Values(v) => *v
                .iter()
                .min_by_key(|&&x| (x.abs_diff(d), x))
                .expect("a Values list is never empty"),
        }
    }

    /// Human wording: "2 to 10 seconds" or "4, 6 or 8 seconds".
    pub fn describe(self) -> String {
        match self {
            Durations::Range(lo, hi) => format!("any whole number from {lo} to {hi} seconds"),
            Durations::Values(v) => {
                let list: Vec<String> = v.iter().map(u32::to_string).collect();
                format!("{} seconds", join_or(&list))
            }
        }
    }
}

/// A Runway endpoint that creates a video task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    ImageToVideo,
    TextToVideo,
    VideoToVideo,
}

impl Endpoint {
    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ImageToVideo => "/v1/image_to_video",
            Endpoint::TextToVideo => "/v1/text_to_video",
            Endpoint::VideoToVideo => "/v1/video_to_video",
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

/// What one model accepts on one endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Offered output ratios (`"W:H"` in pixels); `None` when the endpoint takes no ratio for this
    /// model (the output follows the input).
    pub ratios: Option<&'static [&'static str]>,
    /// Offered durations; `None` when the endpoint takes no `duration` (the output follows the
    /// input video).
    pub durations: Option<Durations>,
    /// The prompt must be present and non-empty.
    pub prompt_required: bool,
    /// Prompt limit in UTF-16 code units, as the API counts; `None` = not published.
    pub prompt_max: Option<usize>,
    /// The endpoint takes a `seed` for this model.
    pub seed: bool,
    /// `promptImage` may carry a last keyframe (the array form with positions first and last).
    pub last_frame: bool,
    /// For video to video: how the input video is sent and what the model takes.
    pub video: Option<VideoInput>,
}

/// The input video of a video-to-video model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoInput {
    /// The request field that carries it: `videoUri` or `promptVideo`.
    pub field: &'static str,
    /// The largest file taken (the upload endpoint's 200 MB unless the model's docs say less).
    pub max_bytes: u64,
    /// The longest video taken, when the model's docs say.
    pub max_seconds: Option<u32>,
}

/// The upload endpoint's limit, which bounds every video input.
pub const VIDEO_UPLOAD_MAX: u64 = 200 * 1024 * 1024;

/// One entry of the catalog: a model and the rules of every endpoint that serves it.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub id: &'static str,
    /// No longer in the current API schema; still accepted by dropreel, the server may refuse it.
    pub legacy: bool,
    /// Credits per output second (1 credit = US$0.01); `None` when Runway has not published it.
    pub credits_per_second: Option<u32>,
    pub endpoints: &'static [(Endpoint, Rules)],
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
}

/// Seed range the API documents (the SDK types a bare int).
pub const SEED_MAX: u64 = 4_294_967_295;

/// The longest text the local title card sets (UTF-16 units, as prompts are counted).
pub const LOCAL_TITLE_MAX: usize = 280;

/// Which catalog a backend's jobs are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalog {
    /// Runway's models, by the id a job names.
    Runway,
    /// The local renderer: every job renders with [`LOCAL`], whatever model it names (so a
    /// sidecar written for Runway still renders locally), and picks its camera move.
    Local,
}

impl Catalog {
    /// The model a job naming `id` runs on.
    pub fn find(self, id: &str) -> Option<&'static Model> {
        match self {
            Catalog::Runway => find(id),
            Catalog::Local => Some(&LOCAL),
        }
    }

    /// Whether jobs render locally (their spec carries a camera move and zoom).
    pub fn renders_locally(self) -> bool {
        self == Catalog::Local
    }
}

/// Looks a model up by its API id (exact, as the API is case-sensitive).
pub fn find(id: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.id == id)
}

/// The ids of every model `endpoint` serves, current ones first.
pub fn models_for(endpoint: Endpoint) -> Vec<&'static str> {
    let mut v: Vec<&Model> = MODELS
        .iter()
        .filter(|m| m.rules(endpoint).is_some())
        .collect();
    v.sort_by_key(|m| m.legacy);
    v.into_iter().map(|m| m.id).collect()
}

/// The ids of every model that animates an image, current ones first.
pub fn image_models() -> Vec<&'static str> {
    models_for(Endpoint::ImageToVideo)
}

/// Parses `"W:H"` into positive integers.
pub fn parse_ratio(r: &str) -> Option<(u32, u32)> {
    let (w, h) = r.split_once(':')?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// The offered ratio whose aspect is nearest to `width × height` (compared on a log scale, so 2:1 and
/// 1:2 are equally far from 1:1).
pub fn nearest_ratio(offered: &[&'static str], width: u32, height: u32) -> &'static str {
    let want = (f64::from(width.max(1)) / f64::from(height.max(1))).ln();
    offered
        .iter()
        .copied()
        .min_by(|a, b| {
            let da = distance(a, want);
            let db = distance(b, want);
            da.total_cmp(&db)
        })
        .expect("ratio lists are never empty")
}

fn distance(r: &str, want: f64) -> f64 {
    let (w, h) = parse_ratio(r).expect("catalog ratios are well-formed");
    ((f64::from(w) / f64::from(h)).ln() - want).abs()
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
mod tests {
    use super::table::GEN4_RATIOS;
    use super::*;

    #[test]
    fn every_ratio_in_the_catalog_parses() {
        for m in MODELS.iter().chain([&LOCAL]) {
            for (e, rules) in m.endpoints {
                for r in rules.ratios.unwrap_or(&[]) {
                    assert!(
                        parse_ratio(r).is_some(),
                        "{} ({e:?}) has bad ratio {r}",
                        m.id
                    );
                }
            }
        }
    }

    #[test]
    fn the_catalog_holds_every_endpoint_of_every_model() {
        assert_eq!(MODELS.len(), 13);
        let count = |e| MODELS.iter().filter(|m| m.rules(e).is_some()).count();
        assert_eq!(count(Endpoint::ImageToVideo), 11);
        assert_eq!(count(Endpoint::TextToVideo), 9);
        assert_eq!(count(Endpoint::VideoToVideo), 6);
        let aleph2 = find("aleph2").unwrap();
        let v2v = aleph2.rules(Endpoint::VideoToVideo).unwrap();
        assert!(v2v.durations.is_none(), "aleph2 takes no duration");
        assert!(aleph2.rules(Endpoint::ImageToVideo).is_none());
        assert_eq!(aleph2.serves(), "video-to-video");
        let last: Vec<&str> = MODELS
            .iter()
            .filter(|m| {
                m.rules(Endpoint::ImageToVideo)
                    .is_some_and(|r| r.last_frame)
            })
            .map(|m| m.id)
            .collect();
        assert_eq!(
            last,
            [
                "veo3.1",
                "veo3.1_fast",
                "seedance2",
                "seedance2_fast",
                "seedance2_mini",
                "gen3a_turbo"
            ]
        );
        assert!(
            Catalog::Local
                .find("gen4.5")
                .is_some_and(|m| m.id == "local")
        );
    }

    #[test]
    fn nearest_ratio_follows_the_image() {
        assert_eq!(nearest_ratio(GEN4_RATIOS, 1080, 1920), "720:1280");
        assert_eq!(nearest_ratio(GEN4_RATIOS, 3000, 2000), "1104:832");
        assert_eq!(nearest_ratio(GEN4_RATIOS, 1920, 1080), "1280:720");
        assert_eq!(nearest_ratio(GEN4_RATIOS, 500, 500), "960:960");
        assert_eq!(nearest_ratio(GEN4_RATIOS, 3000, 1200), "1584:672");
    }

    #[test]
    fn durations() {
        assert!(Durations::Range(2, 10).allows(5));
        assert!(!Durations::Values(&[8]).allows(5));
        assert_eq!(Durations::Values(&[4, 6, 8]).nearest(5), 4);
        assert_eq!(Durations::Values(&[8]).nearest(5), 8);
        assert_eq!(
            Durations::Values(&[4, 6, 8]).describe(),
            "4, 6 or 8 seconds"
        );
    }

    #[test]
    fn only_image_models_are_listed() {
        let ids = image_models();
        assert!(ids.contains(&"gen4_turbo"));
        assert!(!ids.contains(&"aleph2"));
        assert_eq!(ids.last(), Some(&"gen3a_turbo"));
    }
}
