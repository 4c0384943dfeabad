//! Reading the catalog: Runway's `runway-models.yaml` (compiled in), dropreel's additions, and a
//! studio's `models:`, merged key by key in that order, then read into [`Model`]s.
//!
//! The YAML's form is typed here ([`ModelDoc`], [`EndpointDoc`]) with every key Runway's file uses,
//! so an unknown key in a studio's `models:` is an error naming it, and a new key in a newer edition
//! of Runway's file fails this module's tests before it ships.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_yaml_ng::{Mapping, Value};

use super::{Durations, Endpoint, Model, Models, Origin, Rules, VIDEO_UPLOAD_MAX, VideoInput};

/// Runway's catalog, unchanged from the SDK edition it names.
const RUNWAY_YAML: &str = include_str!("../../../assets/runway/runway-models.yaml");
/// What dropreel adds to it (facts Runway gives only in prose).
const ADDITIONS_YAML: &str = include_str!("../../../assets/runway/dropreel.yaml");
/// The SDK release Runway's catalog was read from.
pub const RUNWAY_EDITION: &str = "5.24.0";

/// A `models:` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The entry does not read as a catalog entry (an unknown key, a wrong type).
    #[error("models.{id}: {message}")]
    Entry { id: String, message: String },
    /// The entry reads, but a model cannot be used as it stands.
    #[error("models.{id}: {message}")]
    Rule { id: String, message: String },
}

/// One model as the catalog's YAML writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelDoc {
    #[serde(default)]
    legacy: bool,
    #[serde(default)]
    credits_per_second: Option<Credits>,
    #[serde(default)]
    surcharge_per_second: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    output_formats: Option<BTreeMap<String, String>>,
    #[serde(default)]
    endpoints: BTreeMap<String, EndpointDoc>,
    /// dropreel's: the current model closest to a legacy one.
    #[serde(default)]
    replaced_by: Option<String>,
    #[serde(default)]
    removed_from_sdk: Option<Value>,
    // Read by people, not by dropreel.
    #[serde(default, rename = "added_in_sdk")]
    _added_in_sdk: Option<IgnoredAny>,
    #[serde(default, rename = "note")]
    _note: Option<IgnoredAny>,
    #[serde(default, rename = "ratios_all")]
    _ratios_all: Option<IgnoredAny>,
    #[serde(default, rename = "limits")]
    _limits: Option<IgnoredAny>,
    #[serde(default, rename = "draft")]
    _draft: Option<IgnoredAny>,
}

/// A price: a number, or one without and one with audio.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Credits {
    Flat(u32),
    Audio { without_audio: u32, with_audio: u32 },
}

/// One (model, endpoint) as the YAML writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointDoc {
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    optional: Vec<String>,
    #[serde(default)]
    ratios: Option<Vec<String>>,
    #[serde(default)]
    ratio_required: bool,
    #[serde(default)]
    resolution: Option<Vec<String>>,
    #[serde(default)]
    duration: Option<DurationDoc>,
    #[serde(default)]
    prompt_text: Option<PromptDoc>,
    #[serde(default)]
    prompt_image: Option<PromptImageDoc>,
    #[serde(default)]
    input_field: Option<String>,
    /// dropreel's: the video a video-to-video model takes.
    #[serde(default)]
    input_video: Option<InputVideoDoc>,
    // Fields dropreel passes through `extra:` as they are; described for people.
    #[serde(default, rename = "ratio")]
    _ratio: Option<IgnoredAny>,
    #[serde(default, rename = "ratio_rule")]
    _ratio_rule: Option<IgnoredAny>,
    #[serde(default, rename = "defaults")]
    _defaults: Option<IgnoredAny>,
    #[serde(default, rename = "mode")]
    _mode: Option<IgnoredAny>,
    #[serde(default, rename = "references")]
    _references: Option<IgnoredAny>,
    #[serde(default, rename = "reference_videos")]
    _reference_videos: Option<IgnoredAny>,
    #[serde(default, rename = "target_aspect_ratio")]
    _target_aspect_ratio: Option<IgnoredAny>,
    #[serde(default, rename = "keyframes")]
    _keyframes: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DurationDoc {
    #[serde(default)]
    min: Option<u32>,
    #[serde(default)]
    max: Option<u32>,
    #[serde(default)]
    values: Option<Vec<u32>>,
    #[serde(default)]
    auto: bool,
    #[serde(default, rename = "required")]
    _required: Option<IgnoredAny>,
    #[serde(default, rename = "default")]
    _default: Option<IgnoredAny>,
    #[serde(default, rename = "sdk")]
    _sdk: Option<IgnoredAny>,
    #[serde(default, rename = "note")]
    _note: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptDoc {
    #[serde(default)]
    required: bool,
    #[serde(default)]
    max: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptImageDoc {
    #[serde(default)]
    last_frame: bool,
    #[serde(default)]
    positions: Vec<String>,
    #[serde(default, rename = "required")]
    _required: Option<IgnoredAny>,
    #[serde(default, rename = "array")]
    _array: Option<IgnoredAny>,
    #[serde(default, rename = "last_only_allowed")]
    _last_only_allowed: Option<IgnoredAny>,
    #[serde(default, rename = "item_schema")]
    _item_schema: Option<IgnoredAny>,
    #[serde(default, rename = "middle_frames")]
    _middle_frames: Option<IgnoredAny>,
    #[serde(default, rename = "reference_mode")]
    _reference_mode: Option<IgnoredAny>,
    #[serde(default, rename = "min_side_px")]
    _min_side_px: Option<IgnoredAny>,
    #[serde(default, rename = "forms")]
    _forms: Option<IgnoredAny>,
    #[serde(default, rename = "note")]
    _note: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputVideoDoc {
    #[serde(default)]
    max_mb: Option<u64>,
    #[serde(default)]
    max_seconds: Option<u32>,
}

/// The `models:` mapping of a YAML text.
fn models_of(text: &str, what: &str) -> Mapping {
    let doc: Value = serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    match doc.get("models") {
        Some(Value::Mapping(m)) => m.clone(),
        _ => panic!("{what} has no models: mapping"),
    }
}

/// Merges `over` into `base`: mappings key by key, anything else replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Runway's catalog, dropreel's additions, then `user`: every model, checked.
pub(super) fn build(user: &BTreeMap<String, Value>) -> Result<Models, CatalogError> {
    let mut all = models_of(RUNWAY_YAML, "runway-models.yaml");
    let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
    for (id, extra) in models_of(ADDITIONS_YAML, "dropreel.yaml") {
        let slot = all
            .get_mut(&id)
            .unwrap_or_else(|| panic!("dropreel.yaml adds to unknown model {id:?}"));
        merge(slot, extra);
    }
    for (id, entry) in user {
        let key = Value::String(id.clone());
        let entry = match entry {
            // `models: {x: ~}` adds nothing.
            Value::Null => Value::Mapping(Mapping::new()),
            e => e.clone(),
        };
        if !entry.is_mapping() {
            return Err(CatalogError::Entry {
                id: id.clone(),
                message:
                    "must be a mapping of the catalog's keys (endpoints, credits_per_second, …)"
                        .into(),
            });
        }
        match all.get_mut(&key) {
            Some(slot) => {
                merge(slot, entry);
                origins.insert(id.clone(), Origin::Overridden);
            }
            None => {
                all.insert(key, entry);
                origins.insert(id.clone(), Origin::User);
            }
        }
    }
    let mut list = Vec::new();
    for (id, entry) in all {
        let Value::String(id) = id else {
            panic!("a model id is not a string")
        };
        let origin = origins.get(&id).copied().unwrap_or(Origin::Runway);
        let doc: ModelDoc = serde_yaml_ng::from_value(entry).map_err(|e| CatalogError::Entry {
            id: id.clone(),
            message: e.to_string(),
        })?;
        list.push(model(id, doc, origin)?);
    }
    // Runway's in its own order is not kept by a mapping read; current first, then by id, so lists
    // read the same every time.
    list.sort_by(|a, b| (a.legacy, &a.id).cmp(&(b.legacy, &b.id)));
    let models = Models { list };
    for m in models.iter() {
        if let Some(r) = &m.replaced_by
            && models.find(r).is_none_or(|n| n.legacy)
        {
            return Err(CatalogError::Rule {
                id: m.id.clone(),
                message: format!("replaced_by: {r} is not a current model"),
            });
        }
    }
    Ok(models)
}

fn model(id: String, doc: ModelDoc, origin: Origin) -> Result<Model, CatalogError> {
    let rule = |message: String| CatalogError::Rule {
        id: id.clone(),
        message,
    };
    if id.trim().is_empty() || id.chars().any(char::is_whitespace) {
        return Err(rule("a model id has no spaces".into()));
    }
    if doc.endpoints.is_empty() {
        return Err(rule(
            "no endpoints: name at least one of image_to_video, text_to_video, video_to_video \
             (e.g. `endpoints: {image_to_video: {ratios: [\"1280:720\"], duration: {min: 2, max: 10}}}`)"
                .into(),
        ));
    }
    let mut endpoints = Vec::new();
    for (key, e) in doc.endpoints {
        let Some(endpoint) = Endpoint::ALL.into_iter().find(|x| x.key() == key) else {
            return Err(rule(format!(
                "endpoints.{key} is not a video endpoint; use image_to_video, text_to_video or video_to_video"
            )));
        };
        endpoints.push((
            endpoint,
            rules(endpoint, e).map_err(|m| rule(format!("endpoints.{key}.{m}")))?,
        ));
    }
    endpoints.sort_by_key(|(e, _)| *e);
    let (credits_per_second, credits_with_audio) = match doc.credits_per_second {
        None => (None, None),
        Some(Credits::Flat(c)) => (Some(c), None),
        Some(Credits::Audio {
            without_audio,
            with_audio,
        }) => (Some(without_audio), Some(with_audio)),
    };
    let surcharges = doc
        .surcharge_per_second
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| Some((k, u32::try_from(v.as_u64()?).ok()?)))
        .collect();
    let output_formats = doc
        .output_formats
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            // ".mov (ProRes; …)" → ".mov"; a description without one is the API's own file.
            let ext = v
                .split_whitespace()
                .next()
                .filter(|w| w.starts_with('.') && w.len() > 1)
                .unwrap_or(".mp4")
                .to_string();
            (k, ext)
        })
        .collect();
    let removed_in = doc.removed_from_sdk.map(|v| match v {
        Value::String(s) => s.split_whitespace().next().unwrap_or_default().to_string(),
        other => serde_yaml_ng::to_string(&other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    });
    Ok(Model {
        id,
        legacy: doc.legacy,
        removed_in,
        replaced_by: doc.replaced_by,
        credits_per_second,
        credits_with_audio,
        surcharges,
        output_formats,
        endpoints,
        origin,
    })
}

/// The rules of one endpoint; the error names the key under the endpoint.
fn rules(endpoint: Endpoint, e: EndpointDoc) -> Result<Rules, String> {
    let takes = |field: &str| e.required.iter().chain(&e.optional).any(|f| f == field);
    if let Some(r) = &e.ratios {
        if r.is_empty() {
            return Err(
                "ratios: an empty list; leave `ratios` out when the model takes none".into(),
            );
        }
        if let Some(bad) = r
            .iter()
            .find(|r| super::parse_ratio(r).is_none() && !Rules::follows_input(r))
        {
            return Err(format!(
                "ratios: {bad:?} is not a ratio (write \"W:H\" like \"1280:720\" or \"16:9\", or auto_720p, adaptive)"
            ));
        }
    }
    let duration_auto = e.duration.as_ref().is_some_and(|d| d.auto);
    let durations = match e.duration {
        None => None,
        Some(d) => Some(match (d.values, d.min, d.max) {
            (Some(v), None, None) if !v.is_empty() && !v.contains(&0) => Durations::Values(v),
            (Some(_), None, None) => {
                return Err("duration.values: list whole seconds, at least one, none 0".into());
            }
            (None, Some(lo), Some(hi)) if 1 <= lo && lo <= hi => Durations::Range(lo, hi),
            (None, None, None) => Durations::Any,
            (None, lo, hi) => {
                return Err(format!(
                    "duration: min {} and max {} must both be set, from 1 up",
                    lo.map_or("unset".into(), |v| v.to_string()),
                    hi.map_or("unset".into(), |v| v.to_string())
                ));
            }
            (Some(_), _, _) => {
                return Err("duration: give either values or min and max, not both".into());
            }
        }),
    };
    let (prompt_required, prompt_max) = match &e.prompt_text {
        Some(p) => (
            p.required || e.required.iter().any(|f| f == "promptText"),
            p.max,
        ),
        None => (e.required.iter().any(|f| f == "promptText"), None),
    };
    let last_frame = e
        .prompt_image
        .as_ref()
        .is_some_and(|p| p.last_frame || p.positions.iter().any(|x| x == "last"));
    let video = match (endpoint, &e.input_field) {
        (Endpoint::VideoToVideo, Some(field)) => Some(VideoInput {
            field: field.clone(),
            max_bytes: e
                .input_video
                .as_ref()
                .and_then(|v| v.max_mb)
                .map_or(VIDEO_UPLOAD_MAX, |mb| mb * 1024 * 1024),
            max_seconds: e.input_video.as_ref().and_then(|v| v.max_seconds),
        }),
        (Endpoint::VideoToVideo, None) => {
            return Err(
                "input_field: say which field carries the video (videoUri or promptVideo)".into(),
            );
        }
        (_, _) => None,
    };
    Ok(Rules {
        ratio_required: e.ratio_required && e.ratios.is_some(),
        ratios: e.ratios,
        resolutions: e.resolution,
        durations,
        duration_auto,
        prompt_required,
        prompt_max,
        seed: takes("seed"),
        last_frame,
        output_format: takes("outputFormat"),
        video,
    })
}
