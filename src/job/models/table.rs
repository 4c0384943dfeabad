//! The catalog's data: every model with the rules of each endpoint that serves it, and the local
//! renderer as an entry. What the rules mean, and the lookups, are in [`super`].

use super::{Durations, Endpoint, LOCAL_TITLE_MAX, Model, Rules, VIDEO_UPLOAD_MAX, VideoInput};

pub(super) const VIDEO_URI: VideoInput = VideoInput {
    field: "videoUri",
    max_bytes: VIDEO_UPLOAD_MAX,
    max_seconds: None,
};

/// Seedance's input video: at most 15 s and 32 MB (its docs).
pub(super) const SEEDANCE_VIDEO: VideoInput = VideoInput {
    field: "promptVideo",
    max_bytes: 32 * 1024 * 1024,
    max_seconds: Some(15),
};

pub(super) const GEN4_RATIOS: &[&str] = &[
    "1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672",
];
pub(super) const VEO_RATIOS: &[&str] = &["1280:720", "720:1280", "1080:1920", "1920:1080"];
pub(super) const HAPPYHORSE_TEXT_RATIOS: &[&str] = &[
    "1280:720",
    "720:1280",
    "960:960",
    "1108:832",
    "832:1108",
    "1920:1080",
    "1080:1920",
    "1440:1440",
    "1662:1248",
    "1248:1662",
];
pub(super) const SEEDANCE_FULL: &[&str] = &[
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
pub(super) const SEEDANCE_720: &[&str] = &[
    "992:432", "864:496", "752:560", "640:640", "560:752", "496:864", "1470:630", "1280:720",
    "1112:834", "960:960", "834:1112", "720:1280",
];

/// seedance2_fast and seedance2_mini: the fields of seedance2, at 480p/720p ratios only.
pub(super) const SEEDANCE_720_ENDPOINTS: &[(Endpoint, Rules)] = &[
    (
        Endpoint::ImageToVideo,
        Rules {
            ratios: Some(SEEDANCE_720),
            durations: Some(Durations::Range(1, 15)),
            prompt_required: false,
            prompt_max: Some(3500),
            seed: false,
            last_frame: true,
            video: None,
        },
    ),
    (
        Endpoint::TextToVideo,
        Rules {
            ratios: Some(SEEDANCE_720),
            durations: Some(Durations::Range(1, 15)),
            prompt_required: true,
            prompt_max: Some(3500),
            seed: false,
            last_frame: false,
            video: None,
        },
    ),
    (
        Endpoint::VideoToVideo,
        Rules {
            ratios: Some(SEEDANCE_720),
            durations: Some(Durations::Range(1, 15)),
            prompt_required: false,
            prompt_max: Some(3500),
            seed: false,
            last_frame: false,
            video: Some(SEEDANCE_VIDEO),
        },
    ),
];

/// The catalog: every model of `runway-models.yaml` (the official SDK's request schemas, release
/// 5.13.0) with every endpoint that serves it. Durations the SDK types as a bare int use the range
/// the docs give (seedance: up to 15 s) or a conservative 1–20 s when nothing is published.
pub static MODELS: &[Model] = &[
    Model {
        id: "gen4.5",
        legacy: false,
        credits_per_second: Some(12),
        endpoints: &[
            (
                Endpoint::ImageToVideo,
                Rules {
                    ratios: Some(GEN4_RATIOS),
                    durations: Some(Durations::Range(2, 10)),
                    prompt_required: true,
                    prompt_max: Some(1000),
                    seed: true,
                    last_frame: false,
                    video: None,
                },
            ),
            (
                Endpoint::TextToVideo,
                Rules {
                    ratios: Some(&["1280:720", "720:1280"]),
                    durations: Some(Durations::Range(2, 10)),
                    prompt_required: true,
                    prompt_max: Some(1000),
                    seed: true,
                    last_frame: false,
                    video: None,
                },
            ),
        ],
    },
    Model {
        id: "gen4_turbo",
        legacy: false,
        credits_per_second: Some(5),
        endpoints: &[(
            Endpoint::ImageToVideo,
            Rules {
                ratios: Some(GEN4_RATIOS),
                durations: Some(Durations::Range(2, 10)),
                prompt_required: false,
                prompt_max: Some(1000),
                seed: true,
                last_frame: false,
                video: None,
            },
        )],
    },
    Model {
        id: "veo3",
        legacy: false,
        credits_per_second: Some(40),
        endpoints: &[
            (
                Endpoint::ImageToVideo,
                Rules {
                    ratios: Some(VEO_RATIOS),
                    durations: Some(Durations::Values(&[8])),
                    prompt_required: false,
                    prompt_max: Some(1000),
                    seed: false,
                    last_frame: false,
                    video: None,
                },
            ),
            (
                Endpoint::TextToVideo,
                Rules {
                    ratios: Some(VEO_RATIOS),
                    durations: Some(Durations::Values(&[8])),
                    prompt_required: true,
                    prompt_max: Some(1000),
                    seed: false,
                    last_frame: false,
                    video: None,
                },
            ),
        ],
    },
    Model {
        id: "veo3.1",
        legacy: false,
        // Without audio; with `audio: true` (via `extra:`) the rate doubles to 40.
        credits_per_second: Some(20),
        endpoints: &[
            (
                Endpoint::ImageToVideo,
                Rules {
                    ratios: Some(VEO_RATIOS),
                    durations: Some(Durations::Values(&[4, 6, 8])),
                    prompt_required: false,
                    prompt_max: Some(1000),
                    seed: false,
                    last_frame: true,
                    video: None,
                },
            ),
            (
                Endpoint::TextToVideo,
                Rules {
                    ratios: Some(VEO_RATIOS),
                    durations: Some(Durations::Values(&[4, 6, 8])),
                    prompt_required: true,
                    prompt_max: Some(1000),
                    seed: false,
                    last_frame: false,
                    video: None,
                },
            ),
        ],
    },
    Model {
        id: "veo3.1_fast",
        legacy: false,
        // Without audio; 15 with audio.
        credits_per_second: Some(10),
        endpoints: &[
            (
                Endpoint::ImageToVideo,
                Rules {
                    ratios: Some(VEO_RATIOS),
                    durations: Some(Durations::Values(&[4, 6, 8])),
                    prompt_required: false,
                    prompt_max: Some(1000),
                    seed: false,
                    last_frame: true,
                    video: None,
                },
            ),
            (
                Endpoint::TextToVideo,
                Rules {
                    ratios: Some(VEO_RATIOS),
                    durations: Some(Durations::Values(&[4, 6, 8])),
                    prompt_required: true,
                    prompt_max: Some(1000),
                    seed: false,
                    last_frame: false,
                    video: None,
                },
            ),
        ],
    },
    Model {
        id: "seedance2",
        legacy: false,
        credits_per_second: Some(36),
        endpoints: &[
            (
                Endpoint::ImageToVideo,
                Rules {
                    ratios: Some(SEEDANCE_FULL),
                    durations: Some(Durations::Range(1, 15)),
                    prompt_required: false,
                    prompt_max: Some(3500),
                    seed: false,
                    last_frame: true,
                    video: None,
                },
            ),
            (
                Endpoint::TextToVideo,
                Rules {
                    ratios: Some(SEEDANCE_FULL),
                    durations: Some(Durations::Range(1, 15)),
                    prompt_required: true,
                    prompt_max: Some(3500),
                    seed: false,
                    last_frame: false,
                    video: None,
                },
            ),
            (
                Endpoint::VideoToVideo,
                Rules {
                    ratios: Some(SEEDANCE_FULL),
                    durations: Some(Durations::Range(1, 15)),
                    prompt_required: false,
                    prompt_max: Some(3500),
                    seed: false,
                    last_frame: false,
                    video: Some(SEEDANCE_VIDEO),
                },
            ),
        ],
    },
    Model {
        id: "seedance2_fast",
        legacy: false,
        credits_per_second: None,
        endpoints: SEEDANCE_720_ENDPOINTS,
    },
    Model {
        id: "seedance2_mini",
        legacy: false,
        credits_per_second: None,
        endpoints: SEEDANCE_720_ENDPOINTS,
    },
    Model {
        id: "happyhorse_1_0",
        legacy: false,
        credits_per_second: None,
        endpoints: &[
            (
                Endpoint::ImageToVideo,
                Rules {
                    ratios: None,
                    durations: Some(Durations::Range(1, 20)),
                    prompt_required: false,
                    prompt_max: Some(2500),
                    seed: false,
                    last_frame: false,
                    video: None,
                },
            ),
            (
                Endpoint::TextToVideo,
                Rules {
                    ratios: Some(HAPPYHORSE_TEXT_RATIOS),
                    durations: Some(Durations::Range(1, 20)),
                    prompt_required: true,
                    prompt_max: Some(2500),
                    seed: false,
                    last_frame: false,
                    video: None,
                },
            ),
        ],
    },
    Model {
        id: "gemini_omni_flash",
        legacy: false,
        credits_per_second: None,
        endpoints: &[
            (
                Endpoint::ImageToVideo,
                Rules {
                    ratios: Some(&["1280:720", "720:1280"]),
                    durations: Some(Durations::Range(3, 10)),
                    prompt_required: false,
                    prompt_max: None,
                    seed: false,
                    last_frame: false,
                    video: None,
                },
            ),
            (
                Endpoint::TextToVideo,
                Rules {
                    ratios: Some(&["1280:720", "720:1280"]),
                    durations: Some(Durations::Range(3, 10)),
                    prompt_required: true,
                    prompt_max: None,
                    seed: false,
                    last_frame: false,
                    video: None,
                },
            ),
            (
                Endpoint::VideoToVideo,
                Rules {
                    ratios: None,
                    durations: None,
                    prompt_required: true,
                    prompt_max: None,
                    seed: false,
                    last_frame: false,
                    video: Some(VIDEO_URI),
                },
            ),
        ],
    },
    Model {
        id: "aleph2",
        legacy: false,
        credits_per_second: None,
        endpoints: &[(
            Endpoint::VideoToVideo,
            Rules {
                ratios: None,
                durations: None,
                prompt_required: false,
                prompt_max: None,
                seed: true,
                last_frame: false,
                video: Some(VIDEO_URI),
            },
        )],
    },
    Model {
        id: "gen3a_turbo",
        legacy: true,
        credits_per_second: Some(5),
        endpoints: &[(
            Endpoint::ImageToVideo,
            Rules {
                ratios: Some(&["1280:768", "768:1280"]),
                durations: Some(Durations::Values(&[5, 10])),
                prompt_required: true,
                prompt_max: Some(1000),
                seed: true,
                last_frame: true,
                video: None,
            },
        )],
    },
    Model {
        id: "gen4_aleph",
        legacy: true,
        credits_per_second: Some(15),
        endpoints: &[(
            Endpoint::VideoToVideo,
            Rules {
                ratios: None,
                durations: None,
                prompt_required: true,
                prompt_max: Some(1000),
                seed: true,
                last_frame: false,
                video: Some(VIDEO_URI),
            },
        )],
    },
];

/// The local motion renderer as a catalog entry: the ratios of gen4_turbo, rendered at their pixel
/// size, any whole duration from 1 to 20 s; for images no prompt limit (the prompt only picks the
/// camera move), for text a title card of at most [`LOCAL_TITLE_MAX`] characters.
pub static LOCAL: Model = Model {
    id: "local",
    legacy: false,
    credits_per_second: None,
    endpoints: &[
        (
            Endpoint::ImageToVideo,
            Rules {
                ratios: Some(GEN4_RATIOS),
                durations: Some(Durations::Range(1, 20)),
                prompt_required: false,
                prompt_max: None,
                seed: true,
                // A cross-dissolving move from the first still to the last.
                last_frame: true,
                video: None,
            },
        ),
        // A title card: the text typeset over a gradient. Longer text would not stay readable.
        (
            Endpoint::TextToVideo,
            Rules {
                ratios: Some(GEN4_RATIOS),
                durations: Some(Durations::Range(1, 20)),
                prompt_required: true,
                prompt_max: Some(LOCAL_TITLE_MAX),
                seed: true,
                last_frame: false,
                video: None,
            },
        ),
    ],
};
