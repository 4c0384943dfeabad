//! The Runway model catalog as data: which models animate an image, the ratios and durations each
//! offers on `POST /v1/image_to_video`, prompt limits, seed support and price.
//!
//! Source: the official SDK's request schema (runwayml/sdk-python 5.13.0) and Runway's docs. Every job
//! is validated against this table before any request is sent, so a typo costs nothing.

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

/// What one model accepts on the image-to-video endpoint.
#[derive(Debug, Clone, Copy)]
pub struct ImageToVideo {
    /// Offered output ratios (`"W:H"` in pixels); `None` when the model takes no ratio (the output
    /// follows the image).
    pub ratios: Option<&'static [&'static str]>,
    pub durations: Durations,
    /// The prompt must be present and non-empty.
    pub prompt_required: bool,
    /// Prompt limit in UTF-16 code units, as the API counts; `None` = not published.
    pub prompt_max: Option<usize>,
    /// The model takes a `seed`.
    pub seed: bool,
}

/// One entry of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub id: &'static str,
    /// No longer in the current API schema; still accepted by dropreel, the server may refuse it.
    pub legacy: bool,
    /// Credits per output second (1 credit = US$0.01); `None` when Runway has not published it.
    pub credits_per_second: Option<u32>,
    /// `None` for models that do not animate images (text- or video-to-video only).
    pub image_to_video: Option<ImageToVideo>,
    /// Other endpoints the model serves, for error messages.
    pub other_endpoints: &'static [&'static str],
}

const GEN4_RATIOS: &[&str] = &[
    "1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672",
];
const VEO_RATIOS: &[&str] = &["1280:720", "720:1280", "1080:1920", "1920:1080"];
const SEEDANCE_FULL: &[&str] = &[
    "992:432",
    "864:496",
    "752:560",
    "640:640",
    "560:752",
    "496:864",
    "1470:630",
    "1280:720",
    "1112:834",
    "960:960",
    "834:1112",
    "720:1280",
    "2206:946",
    "1920:1080",
    "1664:1248",
    "1440:1440",
    "1248:1664",
    "1080:1920",
    "3840:1646",
    "3840:2160",
    "3840:2880",
    "3840:3840",
    "2880:3840",
    "2160:3840",
];
const SEEDANCE_720: &[&str] = &[
    "992:432", "864:496", "752:560", "640:640", "560:752", "496:864", "1470:630", "1280:720",
    "1112:834", "960:960", "834:1112", "720:1280",
];

/// Seed range the API documents (the SDK types a bare int).
pub const SEED_MAX: u64 = 4_294_967_295;

/// The catalog. Durations the SDK types as a bare int use the range the docs give (seedance: up to
/// 15 s) or a conservative 1–20 s when nothing is published.
pub static MODELS: &[Model] = &[
    Model {
        id: "gen4.5",
        legacy: false,
        credits_per_second: Some(12),
        image_to_video: Some(ImageToVideo {
            ratios: Some(GEN4_RATIOS),
            durations: Durations::Range(2, 10),
            prompt_required: true,
            prompt_max: Some(1000),
            seed: true,
        }),
        other_endpoints: &["text_to_video"],
    },
    Model {
        id: "gen4_turbo",
        legacy: false,
        credits_per_second: Some(5),
        image_to_video: Some(ImageToVideo {
            ratios: Some(GEN4_RATIOS),
            durations: Durations::Range(2, 10),
            prompt_required: false,
            prompt_max: Some(1000),
            seed: true,
        }),
        other_endpoints: &[],
    },
    Model {
        id: "veo3",
        legacy: false,
        credits_per_second: Some(40),
        image_to_video: Some(ImageToVideo {
            ratios: Some(VEO_RATIOS),
            durations: Durations::Values(&[8]),
            prompt_required: false,
            prompt_max: Some(1000),
            seed: false,
        }),
        other_endpoints: &["text_to_video"],
    },
    Model {
        id: "veo3.1",
        legacy: false,
        // Without audio; with `audio: true` (via `extra:`) the rate doubles to 40.
        credits_per_second: Some(20),
        image_to_video: Some(ImageToVideo {
            ratios: Some(VEO_RATIOS),
            durations: Durations::Values(&[4, 6, 8]),
            prompt_required: false,
            prompt_max: Some(1000),
            seed: false,
        }),
        other_endpoints: &["text_to_video"],
    },
    Model {
        id: "veo3.1_fast",
        legacy: false,
        // Without audio; 15 with audio.
        credits_per_second: Some(10),
        image_to_video: Some(ImageToVideo {
            ratios: Some(VEO_RATIOS),
            durations: Durations::Values(&[4, 6, 8]),
            prompt_required: false,
            prompt_max: Some(1000),
            seed: false,
        }),
        other_endpoints: &["text_to_video"],
    },
    Model {
        id: "seedance2",
        legacy: false,
        credits_per_second: Some(36),
        image_to_video: Some(ImageToVideo {
            ratios: Some(SEEDANCE_FULL),
            durations: Durations::Range(1, 15),
            prompt_required: false,
            prompt_max: Some(3500),
            seed: false,
        }),
        other_endpoints: &["text_to_video", "video_to_video"],
    },
    Model {
        id: "seedance2_fast",
        legacy: false,
        credits_per_second: None,
        image_to_video: Some(ImageToVideo {
            ratios: Some(SEEDANCE_720),
            durations: Durations::Range(1, 15),
            prompt_required: false,
            prompt_max: Some(3500),
            seed: false,
        }),
        other_endpoints: &["text_to_video", "video_to_video"],
    },
    Model {
        id: "seedance2_mini",
        legacy: false,
        credits_per_second: None,
        image_to_video: Some(ImageToVideo {
            ratios: Some(SEEDANCE_720),
            durations: Durations::Range(1, 15),
            prompt_required: false,
            prompt_max: Some(3500),
            seed: false,
        }),
        other_endpoints: &["text_to_video", "video_to_video"],
    },
    Model {
        id: "happyhorse_1_0",
        legacy: false,
        credits_per_second: None,
        image_to_video: Some(ImageToVideo {
            ratios: None,
            durations: Durations::Range(1, 20),
            prompt_required: false,
            prompt_max: Some(2500),
            seed: false,
        }),
        other_endpoints: &["text_to_video"],
    },
    Model {
        id: "gemini_omni_flash",
        legacy: false,
        credits_per_second: None,
        image_to_video: Some(ImageToVideo {
            ratios: Some(&["1280:720", "720:1280"]),
            durations: Durations::Range(3, 10),
            prompt_required: false,
            prompt_max: None,
            seed: false,
        }),
        other_endpoints: &["text_to_video", "video_to_video"],
    },
    Model {
        id: "aleph2",
        legacy: false,
        credits_per_second: None,
        image_to_video: None,
        other_endpoints: &["video_to_video"],
    },
    Model {
        id: "gen3a_turbo",
        legacy: true,
        credits_per_second: Some(5),
        image_to_video: Some(ImageToVideo {
            ratios: Some(&["1280:768", "768:1280"]),
            durations: Durations::Values(&[5, 10]),
            prompt_required: true,
            prompt_max: Some(1000),
            seed: true,
        }),
        other_endpoints: &[],
    },
    Model {
        id: "gen4_aleph",
        legacy: true,
        credits_per_second: Some(15),
        image_to_video: None,
        other_endpoints: &["video_to_video"],
    },
];

/// The local motion renderer as a catalog entry: the ratios of gen4_turbo, rendered at their pixel
/// size, any whole duration from 1 to 20 s, no prompt limit (the prompt only picks the camera move).
pub static LOCAL: Model = Model {
    id: "local",
    legacy: false,
    credits_per_second: None,
    image_to_video: Some(ImageToVideo {
        ratios: Some(GEN4_RATIOS),
        durations: Durations::Range(1, 20),
        prompt_required: false,
        prompt_max: None,
        seed: true,
    }),
    other_endpoints: &[],
};

/// Looks a model up by its API id (exact, as the API is case-sensitive).
pub fn find(id: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.id == id)
}

/// The ids of every model that animates an image, current ones first.
pub fn image_models() -> Vec<&'static str> {
    let mut v: Vec<&Model> = MODELS
        .iter()
        .filter(|m| m.image_to_video.is_some())
        .collect();
    v.sort_by_key(|m| m.legacy);
    v.into_iter().map(|m| m.id).collect()
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
    use super::*;

    #[test]
    fn every_ratio_in_the_catalog_parses() {
        for m in MODELS {
            if let Some(i2v) = m.image_to_video {
                for r in i2v.ratios.unwrap_or(&[]) {
                    assert!(parse_ratio(r).is_some(), "{} has bad ratio {r}", m.id);
                }
            }
        }
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
