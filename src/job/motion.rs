//! The local renderer's camera moves: their names in a sidecar (`motion:`), the one a prompt's
//! words suggest when none is named, and the default zoom.

use super::sidecar::Sidecar;

/// Zoom of the local renderer's moves when the sidecar sets none.
pub const DEFAULT_ZOOM: f64 = 1.25;

/// A camera move of the local renderer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    PushIn,
    PullOut,
    PanLeft,
    PanRight,
    TiltUp,
    TiltDown,
    Static,
}

impl Motion {
    pub const ALL: [Motion; 7] = [
        Motion::PushIn,
        Motion::PullOut,
        Motion::PanLeft,
        Motion::PanRight,
        Motion::TiltUp,
        Motion::TiltDown,
        Motion::Static,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Motion::PushIn => "push_in",
            Motion::PullOut => "pull_out",
            Motion::PanLeft => "pan_left",
            Motion::PanRight => "pan_right",
            Motion::TiltUp => "tilt_up",
            Motion::TiltDown => "tilt_down",
            Motion::Static => "static",
        }
    }

    /// `push_in`, `push-in` and `Push In` are the same move.
    pub fn parse(s: &str) -> Option<Motion> {
        let s = s.trim().to_lowercase().replace(['-', ' '], "_");
        Motion::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The camera move a prompt asks for ("slow push-in", "pan left across the bay", "locked off"),
    /// or a slow push-in when it names none. The earliest camera phrase in the prompt wins.
    pub fn from_prompt(prompt: &str) -> Motion {
        const PHRASES: &[(&str, Motion)] = &[
            ("zoom in", Motion::PushIn),
            ("push in", Motion::PushIn),
            ("dolly in", Motion::PushIn),
            ("zoom out", Motion::PullOut),
            ("pull back", Motion::PullOut),
            ("pull out", Motion::PullOut),
            ("dolly out", Motion::PullOut),
            ("pan left", Motion::PanLeft),
            ("pan right", Motion::PanRight),
            ("tilt up", Motion::TiltUp),
            ("tilt down", Motion::TiltDown),
            ("static", Motion::Static),
            ("locked off", Motion::Static),
            ("still camera", Motion::Static),
        ];
        let words: String = prompt
            .to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        let text = format!(
            " {} ",
            words.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        PHRASES
            .iter()
            .filter_map(|(p, m)| text.find(&format!(" {p} ")).map(|i| (i, *m)))
            .min_by_key(|(i, _)| *i)
            .map_or(Motion::PushIn, |(_, m)| m)
    }
}

pub(super) fn validate_motion(sidecar: &Sidecar) -> Result<Option<Motion>, String> {
    if let Some(z) = sidecar.zoom
        && !(1.0..=2.0).contains(&z)
    {
        return Err(format!(
            "zoom {z} is out of range; use a number from 1.0 to 2.0 (e.g. `zoom: 1.3`)"
        ));
    }
    match &sidecar.motion {
        None => Ok(None),
        Some(m) => Motion::parse(m).map(Some).ok_or_else(|| {
            let names: Vec<&str> = Motion::ALL.iter().map(|m| m.name()).collect();
            format!("motion {m:?} is unknown; use one of {}", names.join(", "))
        }),
    }
}
