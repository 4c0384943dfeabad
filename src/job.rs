//! What to generate for one image: the [`JobSpec`], built from the config defaults plus the image's
//! sidecar, checked against the model catalog before anything is sent. Also sidecar parsing. (What
//! an image file is — format, size, wholeness — is [`crate::media`]'s.)

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Defaults;
use crate::models::{self, SEED_MAX};

/// A sidecar larger than this is refused unread (a prompt is text, not a file dump).
pub const MAX_SIDECAR_BYTES: u64 = 256 * 1024;

pub use crate::media::{ImageFormat, ImageInfo};

/// The keys a sidecar may hold. Unknown keys are an error naming the key.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    #[serde(alias = "promptText")]
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub duration: Option<u32>,
    pub ratio: Option<String>,
    pub seed: Option<u64>,
    /// Camera move for the local renderer.
    pub motion: Option<String>,
    /// Zoom factor for the local renderer.
    pub zoom: Option<f64>,
    /// Merged verbatim into the API request body.
    pub extra: Option<Map<String, Value>>,
}

/// Request fields dropreel sets itself; `extra:` may not replace them.
const OWN_FIELDS: &[(&str, &str)] = &[
    ("model", "model:"),
    ("promptImage", "the image itself"),
    ("promptText", "prompt:"),
    ("ratio", "ratio:"),
    ("duration", "duration:"),
    ("seed", "seed:"),
];

/// Parses sidecar text. A bare string is the prompt; an empty file is no settings. Every problem
/// is reported, not only the first (see [`parse_sidecar_parts`]).
pub fn parse_sidecar(text: &str) -> Result<Sidecar, String> {
    let (sidecar, problems) = parse_sidecar_parts(text)?;
    if problems.is_empty() {
        Ok(sidecar)
    } else {
        Err(join_problems(&problems))
    }
}

/// Parses sidecar text key by key: the keys that are fine, and a sentence for each that is not
/// (so one look at `error.txt` shows everything to fix). `Err` when the text is not YAML at all.
pub fn parse_sidecar_parts(text: &str) -> Result<(Sidecar, Vec<String>), String> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("repetition limit") {
            "it uses YAML aliases that expand far beyond its size (an alias bomb); write the values out"
                .to_string()
        } else if msg.contains("mapping values are not allowed") {
            format!(
                "it is not valid YAML: {msg}. A value that contains \": \" must be put in quotes, \
                 e.g. `prompt: \"close-up: a cat yawns\"`"
            )
        } else {
            format!("it is not valid YAML: {msg}")
        }
    })?;
    let map = match value {
        serde_yaml_ng::Value::Null => return Ok((Sidecar::default(), Vec::new())),
        serde_yaml_ng::Value::String(s) => {
            let sidecar = Sidecar {
                prompt: Some(s),
                ..Sidecar::default()
            };
            return Ok((sidecar, Vec::new()));
        }
        serde_yaml_ng::Value::Mapping(map) => map,
        _ => {
            return Err(
                "it must be either a prompt (plain text) or keys like `prompt: ...`; \
                        it holds a list or a number"
                    .into(),
            );
        }
    };
    let mut problems = Vec::new();
    let mut good = serde_yaml_ng::Mapping::new();
    for (k, v) in map {
        let key = match &k {
            serde_yaml_ng::Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        };
        let mut one = serde_yaml_ng::Mapping::new();
        one.insert(k.clone(), v.clone());
        match serde_yaml_ng::from_value::<Sidecar>(serde_yaml_ng::Value::Mapping(one)) {
            Ok(_) => {
                good.insert(k, v);
            }
            Err(e) => {
                let msg = e.to_string();
                let msg = if msg.starts_with(&key) || msg.contains("unknown field") {
                    msg
                } else {
                    format!("{key}: {msg}")
                };
                let at = line_of_key(text, &key).map_or(String::new(), |n| format!(" (line {n})"));
                problems.push(explain_sidecar_error(&format!("{msg}{at}")));
            }
        }
    }
    let sidecar: Sidecar = serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(good))
        .map_err(|e| explain_sidecar_error(&e.to_string()))?;
    if let Some(extra) = &sidecar.extra {
        for (field, instead) in OWN_FIELDS {
            if extra.contains_key(*field) {
                problems.push(format!(
                    "`extra:` may not set `{field}`; dropreel sets it from {instead}"
                ));
            }
        }
    }
    Ok((sidecar, problems))
}

/// The 1-based line where `key:` is written at the start of a line, if it is.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

/// One problem as it is; several as a numbered list in one sentence.
pub fn join_problems(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        many => format!(
            "{} problems: {}",
            many.len(),
            many.iter()
                .enumerate()
                .map(|(i, p)| format!("({}) {}", i + 1, p.trim_end_matches('.')))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

fn explain_sidecar_error(msg: &str) -> String {
    let hint = if msg.contains("unknown field") {
        "the known keys are prompt, model, duration, ratio, seed, motion, zoom and extra"
    } else if msg.starts_with("duration") {
        "write a whole number of seconds, e.g. `duration: 5`"
    } else if msg.starts_with("seed") {
        "write a whole number from 0 to 4294967295, e.g. `seed: 42`"
    } else if msg.starts_with("ratio") || msg.starts_with("model") || msg.starts_with("prompt") {
        "put the value in quotes, e.g. `ratio: \"1280:720\"`"
    } else if msg.starts_with("extra") {
        "`extra:` must be a map of API field names to values"
    } else if msg.starts_with("zoom") {
        "write a number from 1.0 to 2.0, e.g. `zoom: 1.3`"
    } else {
        "see the sidecar examples in the README"
    };
    format!("{msg}; {hint}")
}

/// Reads and parses the sidecar at `path` key by key ([`parse_sidecar_parts`]), refusing
/// oversized files before reading them.
pub fn read_sidecar(path: &Path) -> Result<(Sidecar, Vec<String>), String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("it cannot be read: {e}"))?
        .len();
    if len > MAX_SIDECAR_BYTES {
        return Err(format!(
            "it is {len} bytes; a sidecar holds a prompt and a few settings and may be at most {} KiB",
            MAX_SIDECAR_BYTES / 1024
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("it cannot be read: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    parse_sidecar_parts(&text)
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
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom: Option<f64>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl JobSpec {
    /// Defaults, overridden by the sidecar, resolved against the image and checked against the
    /// catalog. The error says what is wrong and which values would work.
    pub fn build(
        defaults: &Defaults,
        sidecar: &Sidecar,
        image: &ImageInfo,
        local: bool,
    ) -> Result<JobSpec, String> {
        JobSpec::build_all(defaults, sidecar, image, local).map_err(|p| join_problems(&p))
    }

    /// [`JobSpec::build`], with every problem found as its own sentence (so one `error.txt`
    /// lists all there is to fix).
    pub fn build_all(
        defaults: &Defaults,
        sidecar: &Sidecar,
        image: &ImageInfo,
        local: bool,
    ) -> Result<JobSpec, Vec<String>> {
        let mut problems: Vec<String> = Vec::new();
        let motion = validate_motion(sidecar).unwrap_or_else(|e| {
            problems.push(e);
            None
        });
        let model_id = sidecar
            .model
            .clone()
            .unwrap_or_else(|| defaults.model.clone());
        let found = if local {
            Some(&models::LOCAL)
        } else {
            models::find(&model_id)
        };
        let Some(model) = found else {
            problems.push(format!(
                "model {model_id:?} is unknown; models that animate images: {}",
                models::image_models().join(", ")
            ));
            return Err(problems);
        };
        let Some(i2v) = model.image_to_video else {
            problems.push(format!(
                "model {} does not animate images (it serves {} only); models that animate images: {}",
                model.id,
                model.other_endpoints.join(" and ").replace('_', "-"),
                models::image_models().join(", ")
            ));
            return Err(problems);
        };
        let prompt = sidecar
            .prompt
            .clone()
            .unwrap_or_else(|| defaults.prompt.clone());
        let prompt = prompt.trim().to_string();
        if i2v.prompt_required && prompt.is_empty() {
            problems.push(format!(
                "model {} needs a prompt; add one to the sidecar (e.g. `prompt: slow push-in, soft light`)",
                model.id
            ));
        }
        if let Some(max) = i2v.prompt_max {
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
        let ratio = match i2v.ratios {
            None => None,
            Some(offered) if ratio_setting.trim() == "auto" => {
                Some(models::nearest_ratio(offered, image.width, image.height).to_string())
            }
            Some(offered) => {
                let r = ratio_setting.trim().replace(' ', "");
                if !offered.contains(&r.as_str()) {
                    let hint = if models::parse_ratio(&r).is_none_or(|(w, h)| w < 100 && h < 100) {
                        " (ratios are pixel sizes like \"1280:720\", not \"16:9\")"
                    } else {
                        ""
                    };
                    problems.push(format!(
                        "ratio {ratio_setting} is not offered by {}{hint}; use auto or one of {}",
                        model.id,
                        offered.join(", ")
                    ));
                }
                Some(r)
            }
        };
        let duration = match sidecar.duration.or(defaults.duration) {
            Some(d) if i2v.durations.allows(d) => d,
            Some(d) => {
                problems.push(format!(
                    "duration {d} s is not offered by {}; it takes {}",
                    model.id,
                    i2v.durations.describe()
                ));
                d
            }
            None => i2v.durations.nearest(5),
        };
        let seed = match sidecar.seed {
            Some(s) if !i2v.seed => {
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
        if !problems.is_empty() {
            return Err(problems);
        }
        let (motion, zoom) = if local {
            let m = motion.unwrap_or_else(|| Motion::from_prompt(&prompt));
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
            seed,
            motion,
            zoom,
            extra: sidecar.extra.clone().unwrap_or_default(),
        })
    }

    /// Credits this job costs when it succeeds, when the model's price is published.
    pub fn credits(&self) -> Option<u64> {
        let m = models::find(&self.model)?;
        Some(u64::from(m.credits_per_second?) * u64::from(self.duration))
    }
}

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

fn validate_motion(sidecar: &Sidecar) -> Result<Option<Motion>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32) -> ImageInfo {
        ImageInfo {
            format: ImageFormat::Png,
            width: w,
            height: h,
        }
    }

    fn build(yaml: &str, w: u32, h: u32) -> Result<JobSpec, String> {
        let sc = parse_sidecar(yaml)?;
        JobSpec::build(&Defaults::default(), &sc, &img(w, h), false)
    }

    #[test]
    fn bare_string_is_the_prompt() {
        let s = build("a cat walks slowly", 1920, 1080).unwrap();
        assert_eq!(s.prompt, "a cat walks slowly");
        assert_eq!(s.ratio.as_deref(), Some("1280:720"));
        assert_eq!(s.duration, 5);
        assert_eq!(s.model, "gen4_turbo");
    }

    #[test]
    fn portrait_gets_portrait_ratio() {
        let s = build("", 1080, 1920).unwrap();
        assert_eq!(s.ratio.as_deref(), Some("720:1280"));
    }

    #[test]
    fn errors_name_offered_values() {
        let e = build("ratio: \"1280:768\"", 100, 100).unwrap_err();
        assert!(e.contains("1280:768") && e.contains("960:960"), "{e}");
        let e = build("ratio: \"16:9\"", 100, 100).unwrap_err();
        assert!(e.contains("pixel sizes"), "{e}");
        let e = build("model: veo3\nduration: 5", 100, 100).unwrap_err();
        assert!(e.contains("8 seconds"), "{e}");
        let e = build("model: aleph2", 100, 100).unwrap_err();
        assert!(
            e.contains("does not animate images") && e.contains("gen4_turbo"),
            "{e}"
        );
        let e = build("model: gen4.5", 100, 100).unwrap_err();
        assert!(e.contains("needs a prompt"), "{e}");
        let e = build("seed: 4294967296", 100, 100).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = build("model: veo3\nseed: 3", 100, 100).unwrap_err();
        assert!(e.contains("does not take a seed"), "{e}");
    }

    #[test]
    fn local_jobs_take_their_move_from_the_prompt_or_the_sidecar() {
        let local = |yaml: &str| {
            JobSpec::build(
                &Defaults::default(),
                &parse_sidecar(yaml).unwrap(),
                &img(300, 200),
                true,
            )
        };
        let s = local("a slow pan-left across the harbour").unwrap();
        assert_eq!(
            (s.model.as_str(), s.motion.as_deref(), s.zoom),
            ("local", Some("pan_left"), Some(1.25))
        );
        assert_eq!(local("").unwrap().motion.as_deref(), Some("push_in"));
        assert_eq!(
            local("zoom out, then tilt up").unwrap().motion.as_deref(),
            Some("pull_out")
        );
        assert_eq!(
            local("Locked-off shot").unwrap().motion.as_deref(),
            Some("static")
        );
        assert_eq!(
            local("prompt: zoom in\nmotion: tilt-down\nzoom: 1.6")
                .unwrap()
                .zoom,
            Some(1.6)
        );
        assert_eq!(
            local("motion: tilt_down").unwrap().motion.as_deref(),
            Some("tilt_down")
        );
        let e = local("motion: orbit").unwrap_err();
        assert!(
            e.contains("orbit") && e.contains("push_in, pull_out"),
            "{e}"
        );
        assert!(local("zoom: 3").unwrap_err().contains("1.0 to 2.0"));
        assert_eq!(local("duration: 20").unwrap().duration, 20);
        assert!(local("duration: 21").unwrap_err().contains("1 to 20"));
        assert_eq!(local("").unwrap().ratio.as_deref(), Some("1104:832"));
        assert!(
            local("model: veo3\nratio: \"1080:1920\"")
                .unwrap_err()
                .contains("not offered by local")
        );
    }

    #[test]
    fn default_duration_follows_the_model() {
        assert_eq!(build("model: veo3", 10, 10).unwrap().duration, 8);
        assert_eq!(build("model: veo3.1", 10, 10).unwrap().duration, 4);
    }

    #[test]
    fn prompt_length_counts_utf16_units() {
        // 500 emoji = 1000 UTF-16 units: fits; 501 does not (while only 501 chars).
        let ok = format!("prompt: \"{}\"", "😀".repeat(500));
        assert!(build(&ok, 10, 10).is_ok());
        let long = format!("prompt: \"{}\"", "😀".repeat(501));
        let e = build(&long, 10, 10).unwrap_err();
        assert!(e.contains("1002"), "{e}");
    }

    #[test]
    fn the_example_sidecars_are_valid() {
        let full = build(include_str!("../examples/sidecars/full.yaml"), 1920, 1080).unwrap();
        assert_eq!(
            (full.model.as_str(), full.duration, full.seed),
            ("gen4.5", 8, Some(1234))
        );
        assert!(full.extra.contains_key("contentModeration"));
        let short = build(
            include_str!("../examples/sidecars/prompt-only.yaml"),
            10,
            10,
        )
        .unwrap();
        assert!(short.prompt.starts_with("slow push-in"));
    }

    // See: issue 9, item 10 — a bare parser error for `prompt: close-up: a cat`, and only the
    // first of several problems reported.
    #[test]
    fn every_problem_of_a_sidecar_is_reported_and_colons_get_a_hint() {
        let e = parse_sidecar("prompt: close-up: a cat yawns\n").unwrap_err();
        assert!(e.contains("put in quotes") && e.contains("\": \""), "{e}");
        let e = parse_sidecar("promt: hi\nduration: 5s\nseed: lots\n").unwrap_err();
        assert!(e.starts_with("3 problems"), "{e}");
        assert!(
            e.contains("promt") && e.contains("line 2") && e.contains("whole number of seconds"),
            "{e}"
        );
        assert!(e.contains("seed") && e.contains("line 3"), "{e}");
        let e = build(
            "model: gen4_turbo\nratio: \"16:9\"\nduration: 42\nzoom: 9\n",
            100,
            100,
        )
        .unwrap_err();
        assert!(
            e.starts_with("3 problems")
                && e.contains("16:9")
                && e.contains("duration 42")
                && e.contains("zoom 9"),
            "{e}"
        );
    }

    #[test]
    fn sidecar_errors_say_what_to_write() {
        let e = parse_sidecar("promt: hi").unwrap_err();
        assert!(e.contains("promt") && e.contains("known keys"), "{e}");
        let e = parse_sidecar("duration: 5s").unwrap_err();
        assert!(
            e.contains("whole number of seconds") && e.contains("line 1"),
            "{e}"
        );
        let e = parse_sidecar("prompt: [unclosed").unwrap_err();
        assert!(e.contains("not valid YAML"), "{e}");
        let e = parse_sidecar("extra:\n  model: gen4.5").unwrap_err();
        assert!(e.contains("may not set `model`"), "{e}");
        assert_eq!(parse_sidecar("").unwrap(), Sidecar::default());
        let s = parse_sidecar(
            "promptText: hi\nextra:\n  contentModeration:\n    publicFigureThreshold: low",
        )
        .unwrap();
        assert_eq!(s.prompt.as_deref(), Some("hi"));
        assert!(s.extra.unwrap().contains_key("contentModeration"));
    }
}
