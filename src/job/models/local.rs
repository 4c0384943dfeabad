//! The local motion renderer as a catalog entry: the ratios of gen4_turbo, rendered at their pixel
//! size, any whole duration from 1 to 20 s; for images no prompt limit (the prompt only picks the
//! camera move), for text a title card of at most [`LOCAL_TITLE_MAX`] characters.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::{Durations, Endpoint, Model, Origin, Rules};

/// The longest text the local title card sets (UTF-16 units, as prompts are counted).
pub const LOCAL_TITLE_MAX: usize = 280;

const RATIOS: [&str; 6] = [
    "1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672",
];

fn rules(prompt_required: bool, prompt_max: Option<usize>, last_frame: bool) -> Rules {
    Rules {
        ratios: Some(RATIOS.iter().map(|r| r.to_string()).collect()),
        ratio_required: false,
        resolutions: None,
        durations: Some(Durations::Range(1, 20)),
        duration_auto: false,
        prompt_required,
        prompt_max,
        seed: true,
        last_frame,
        output_format: false,
        video: None,
    }
}

/// The local renderer's entry.
pub static LOCAL: LazyLock<Model> = LazyLock::new(|| Model {
    id: "local".into(),
    legacy: false,
    removed_in: None,
    replaced_by: None,
    credits_per_second: None,
    credits_with_audio: None,
    surcharges: BTreeMap::new(),
    output_formats: BTreeMap::new(),
    endpoints: vec![
        // A cross-dissolving move from the first still to the last.
        (Endpoint::ImageToVideo, rules(false, None, true)),
        // A title card: the text typeset over a gradient. Longer text would not stay readable.
        (
            Endpoint::TextToVideo,
            rules(true, Some(LOCAL_TITLE_MAX), false),
        ),
    ],
    origin: Origin::Local,
});
