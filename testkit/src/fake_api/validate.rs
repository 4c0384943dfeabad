//! The fake's model table and its checks of a create body, as strict as the real API's: the
//! fields each endpoint takes, each model's ratios and durations, images as data URIs or uploads,
//! videos in the field their model names.

use std::collections::HashMap;

use serde_json::Value;

pub(super) const MODELS: &[(&str, &[&str], &[u32], bool)] = &[
    (
        "gen4_turbo",
        &[
            "1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672",
        ],
        &[2, 3, 4, 5, 6, 7, 8, 9, 10],
        false,
    ),
    (
        "gen4.5",
        &[
            "1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672",
        ],
        &[2, 3, 4, 5, 6, 7, 8, 9, 10],
        true,
    ),
    (
        "veo3",
        &["1280:720", "720:1280", "1080:1920", "1920:1080"],
        &[8],
        false,
    ),
    (
        "veo3.1",
        &["1280:720", "720:1280", "1080:1920", "1920:1080"],
        &[4, 6, 8],
        false,
    ),
];

/// Image-to-video models that take a last frame (`promptImage` positions first and last).
pub(super) const LAST_FRAME_MODELS: &[&str] = &["veo3.1"];

/// A `promptImage` URI: a data URI of a PNG, JPEG or WebP under 5 MB, or a known upload.
pub(super) fn check_image_uri(img: &str, uploads: &HashMap<String, usize>) -> Result<(), String> {
    if let Some(rest) = img.strip_prefix("data:") {
        if img.len() >= 5 * 1024 * 1024 {
            return Err("promptImage: data URI exceeds 5MB".into());
        }
        let (mime, data) = rest
            .split_once(";base64,")
            .ok_or("promptImage: malformed data URI")?;
        if !["image/png", "image/jpeg", "image/webp"].contains(&mime) {
            return Err(format!("promptImage: unsupported type {mime}"));
        }
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| "promptImage: invalid base64")?;
        Ok(())
    } else if let Some(id) = img.strip_prefix("runway://") {
        if uploads.contains_key(id) {
            Ok(())
        } else {
            Err("promptImage: unknown upload".into())
        }
    } else {
        Err("promptImage must be an https URL, a runway:// URI or a data URI".into())
    }
}

/// Text to video: (model, ratios, durations); the prompt is always required.
pub(super) const TEXT_MODELS: &[(&str, &[&str], &[u32])] = &[
    (
        "gen4.5",
        &["1280:720", "720:1280"],
        &[2, 3, 4, 5, 6, 7, 8, 9, 10],
    ),
    (
        "veo3",
        &["1280:720", "720:1280", "1080:1920", "1920:1080"],
        &[8],
    ),
    (
        "veo3.1",
        &["1280:720", "720:1280", "1080:1920", "1920:1080"],
        &[4, 6, 8],
    ),
];

/// Video to video: (model, the field that carries the video, the fields it takes).
pub(super) const VIDEO_MODELS: &[(&str, &str, &[&str])] = &[
    (
        "aleph2",
        "videoUri",
        &[
            "model",
            "videoUri",
            "promptText",
            "ratio",
            "seed",
            "contentModeration",
        ],
    ),
    (
        "seedance2",
        "promptVideo",
        &["model", "promptVideo", "promptText", "ratio", "duration"],
    ),
];

/// Models of SDK 5.24.0 on one endpoint each: (model, path, the fields it requires, every field it
/// takes, its ratio values or none). Transcribed by hand from Runway's catalog, apart from
/// dropreel's, so a body dropreel builds wrongly is refused here as the real API would.
/// (model, path, required fields, every field taken, ratios).
type Current = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

pub(super) const CURRENT: &[Current] = &[
    (
        "kling3.0_pro",
        "/v1/image_to_video",
        &["model", "promptImage"],
        &[
            "model",
            "promptImage",
            "promptText",
            "ratio",
            "duration",
            "audio",
            "cfgScale",
            "providerSettings",
        ],
        &["1920:1080", "1080:1920", "1440:1440"],
    ),
    (
        "kling3.0_pro",
        "/v1/text_to_video",
        &["model", "ratio"],
        &[
            "model",
            "ratio",
            "promptText",
            "duration",
            "audio",
            "cfgScale",
            "providerSettings",
        ],
        &["1920:1080", "1080:1920", "1440:1440"],
    ),
    (
        "kling_4",
        "/v1/image_to_video",
        &["model", "promptImage"],
        &[
            "model",
            "promptImage",
            "promptText",
            "ratio",
            "duration",
            "references",
            "referenceVideos",
        ],
        &["auto_720p", "auto_1080p"],
    ),
    (
        "kling_4",
        "/v1/video_to_video",
        &["model", "promptText", "videoUri"],
        &["model", "promptText", "videoUri", "ratio", "references"],
        &["auto_720p", "auto_1080p"],
    ),
    (
        "hailuo3",
        "/v1/text_to_video",
        &["model", "promptText"],
        &[
            "model",
            "promptText",
            "ratio",
            "duration",
            "resolution",
            "referenceAudio",
            "references",
            "referenceVideos",
        ],
        &["adaptive", "21:9", "16:9", "4:3", "1:1", "3:4", "9:16"],
    ),
    (
        "hailuo3",
        "/v1/video_to_video",
        &["model", "promptText", "promptVideo"],
        &[
            "model",
            "promptText",
            "promptVideo",
            "ratio",
            "duration",
            "resolution",
            "referenceAudio",
            "references",
            "referenceVideos",
        ],
        &["adaptive", "21:9", "16:9", "4:3", "1:1", "3:4", "9:16"],
    ),
    (
        "seedance2_5",
        "/v1/image_to_video",
        &["model", "promptImage"],
        &[
            "model",
            "promptImage",
            "promptText",
            "ratio",
            "duration",
            "audio",
            "draft",
            "outputFormat",
            "referenceAudio",
            "seed",
        ],
        &[
            "992:432",
            "854:480",
            "752:560",
            "640:640",
            "560:752",
            "480:854",
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
        ],
    ),
    (
        "wan3",
        "/v1/image_to_video",
        &["model", "promptImage", "promptText"],
        &[
            "model",
            "promptImage",
            "promptText",
            "ratio",
            "duration",
            "audio",
            "referenceAudio",
            "referenceVideos",
        ],
        &[
            "832:480",
            "720:544",
            "624:624",
            "544:720",
            "480:832",
            "1280:720",
            "1104:832",
            "960:960",
            "832:1104",
            "720:1280",
            "1920:1080",
            "1648:1248",
            "1440:1440",
            "1248:1648",
            "1080:1920",
            "auto_480p",
            "auto_720p",
            "auto_1080p",
        ],
    ),
    (
        "grok_imagine_1_5",
        "/v1/image_to_video",
        &["model", "promptImage"],
        &[
            "model",
            "promptImage",
            "promptText",
            "duration",
            "resolution",
        ],
        &[],
    ),
    (
        "h3_max",
        "/v1/text_to_video",
        &["model", "promptText"],
        &[
            "model",
            "promptText",
            "duration",
            "resolution",
            "promptExpansionMode",
            "seed",
        ],
        &[],
    ),
    (
        "gemini_omni_flash_1.1",
        "/v1/image_to_video",
        &["model", "promptImage", "promptText"],
        &["model", "promptImage", "promptText", "ratio", "duration"],
        &[
            "640:360",
            "360:640",
            "1280:720",
            "720:1280",
            "1920:1080",
            "1080:1920",
            "3840:2160",
            "2160:3840",
        ],
    ),
    // A model Runway offers that dropreel's catalog does not list (a studio declares it under
    // `models:`).
    (
        "kling9_ultra",
        "/v1/image_to_video",
        &["model", "promptImage", "promptText"],
        &["model", "promptImage", "promptText", "ratio", "duration"],
        &["1920:1080", "1080:1920"],
    ),
    (
        "aleph2",
        "/v1/video_to_video",
        &["model", "videoUri"],
        &[
            "model",
            "videoUri",
            "promptText",
            "ratio",
            "seed",
            "contentModeration",
            "keyframes",
            "targetAspectRatio",
            "outputFormat",
            "proresProfile",
        ],
        &[],
    ),
    (
        "gen4.5",
        "/v1/image_to_video",
        &["model", "promptImage", "promptText", "ratio", "duration"],
        &[
            "model",
            "promptImage",
            "promptText",
            "ratio",
            "duration",
            "seed",
            "contentModeration",
            "outputFormat",
            "proresProfile",
        ],
        &[
            "1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672",
        ],
    ),
];

/// A body for a model of [`CURRENT`]: the fields it requires present, no other field than it
/// takes, a ratio it offers, the images and videos as URIs the API takes.
fn validate_current(
    body: &Value,
    required: &[&str],
    takes: &[&str],
    ratios: &[&str],
    uploads: &HashMap<String, usize>,
) -> Result<(), String> {
    let obj = body.as_object().ok_or("the body must be an object")?;
    if let Some(k) = obj.keys().find(|k| !takes.contains(&k.as_str())) {
        return Err(format!("{k} is not a field for {}", body["model"]));
    }
    if let Some(k) = required.iter().find(|k| !obj.contains_key(**k)) {
        return Err(format!("{k} is required"));
    }
    if let Some(r) = obj.get("ratio") {
        let r = r.as_str().ok_or("ratio must be a string")?;
        if !ratios.contains(&r) {
            return Err(format!("Invalid ratio {r} for {}", body["model"]));
        }
    }
    match obj.get("duration") {
        None => {}
        Some(Value::String(s)) if s == "auto" => {}
        Some(d) if d.as_u64().is_some_and(|d| d >= 1) => {}
        Some(d) => return Err(format!("Invalid duration {d}")),
    }
    match obj.get("promptImage") {
        None => {}
        Some(Value::String(uri)) => check_image_uri(uri, uploads)?,
        Some(Value::Array(items)) => {
            for item in items {
                check_image_uri(
                    item["uri"]
                        .as_str()
                        .ok_or("promptImage[].uri is required")?,
                    uploads,
                )?;
            }
        }
        Some(_) => return Err("promptImage must be a string or an array".into()),
    }
    for field in ["videoUri", "promptVideo"] {
        if let Some(uri) = obj.get(field) {
            let id = uri
                .as_str()
                .and_then(|u| u.strip_prefix("runway://"))
                .ok_or_else(|| format!("{field} must be a runway:// upload here"))?;
            if !uploads.contains_key(id) {
                return Err(format!("{field}: unknown upload"));
            }
        }
    }
    Ok(())
}

/// The fields each create endpoint takes; any other is a 400, as with the real API.
pub(super) fn fields_of(path: &str) -> &'static [&'static str] {
    match path {
        "/v1/video_to_video" => &[
            "model",
            "videoUri",
            "promptVideo",
            "promptText",
            "ratio",
            "duration",
            "seed",
            "contentModeration",
        ],
        "/v1/text_to_video" => &[
            "model",
            "promptText",
            "ratio",
            "duration",
            "seed",
            "contentModeration",
        ],
        _ => &[
            "model",
            "promptImage",
            "promptText",
            "ratio",
            "duration",
            "seed",
            "contentModeration",
        ],
    }
}

/// Validates a create body for the endpoint at `path` as the real API does; the error message on
/// failure.
pub(super) fn validate(
    path: &str,
    body: &Value,
    uploads: &HashMap<String, usize>,
) -> Result<(), String> {
    if let Some((_, _, required, takes, ratios)) = CURRENT
        .iter()
        .find(|m| Some(m.0) == body["model"].as_str() && m.1 == path)
    {
        return validate_current(body, required, takes, ratios, uploads);
    }
    if let Some(obj) = body.as_object() {
        let fields = fields_of(path);
        if let Some(k) = obj.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(format!("{k} is not a field of {}", &path[4..]));
        }
    }
    let model = body["model"].as_str().ok_or("model is required")?;
    if path == "/v1/text_to_video" {
        return validate_text(model, body);
    }
    if path == "/v1/video_to_video" {
        return validate_video(model, body, uploads);
    }
    let (_, ratios, durations, prompt_required) = MODELS
        .iter()
        .find(|m| m.0 == model)
        .ok_or_else(|| format!("Invalid model: {model}"))?;
    let ratio = body["ratio"].as_str().ok_or("ratio is required")?;
    if !ratios.contains(&ratio) {
        return Err(format!("Invalid ratio {ratio} for {model}"));
    }
    if let Some(d) = body.get("duration") {
        let d = d.as_u64().ok_or("duration must be an integer")? as u32;
        if !durations.contains(&d) {
            return Err(format!("Invalid duration {d} for {model}"));
        }
    }
    match body.get("promptText") {
        Some(Value::String(p)) if p.is_empty() => return Err("promptText must not be empty".into()),
        Some(Value::String(p)) if p.encode_utf16().count() > 1000 => {
            return Err("promptText is too long".into());
        }
        Some(Value::String(_)) => {}
        None if *prompt_required => return Err("promptText is required".into()),
        None => {}
        Some(_) => return Err("promptText must be a string".into()),
    }
    // The plain string form, or the array form with positions (first, and last where the model
    // takes a last frame).
    let images: Vec<(&str, &str)> = match &body["promptImage"] {
        Value::String(uri) => vec![(uri.as_str(), "first")],
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let uri = item["uri"]
                    .as_str()
                    .ok_or("promptImage[].uri is required")?;
                let position = item["position"]
                    .as_str()
                    .ok_or("promptImage[].position is required")?;
                Ok((uri, position))
            })
            .collect::<Result<_, String>>()?,
        Value::Null => return Err("promptImage is required".into()),
        _ => return Err("promptImage must be a string or an array".into()),
    };
    for (i, (_, position)) in images.iter().enumerate() {
        match (*position, i) {
            ("first", 0) => {}
            ("last", 1) if LAST_FRAME_MODELS.contains(&model) => {}
            ("last", 1) => return Err(format!("{model} does not take a last frame")),
            (p, _) => return Err(format!("Invalid promptImage position {p} at {i}")),
        }
    }
    for (img, _) in images {
        check_image_uri(img, uploads)?;
    }
    if let Some(seed) = body.get("seed") {
        let s = seed.as_u64().ok_or("seed must be an integer")?;
        if s > 4_294_967_295 {
            return Err("seed out of range".into());
        }
    }
    Ok(())
}

/// The text-to-video body: a prompt, a ratio and a duration the model offers; no image.
pub(super) fn validate_text(model: &str, body: &Value) -> Result<(), String> {
    let (_, ratios, durations) = TEXT_MODELS
        .iter()
        .find(|m| m.0 == model)
        .ok_or_else(|| format!("Invalid model for text_to_video: {model}"))?;
    let ratio = body["ratio"].as_str().ok_or("ratio is required")?;
    if !ratios.contains(&ratio) {
        return Err(format!("Invalid ratio {ratio} for {model}"));
    }
    let d = body["duration"].as_u64().ok_or("duration is required")? as u32;
    if !durations.contains(&d) {
        return Err(format!("Invalid duration {d} for {model}"));
    }
    match body.get("promptText") {
        Some(Value::String(p)) if p.trim().is_empty() => Err("promptText must not be empty".into()),
        Some(Value::String(p)) if p.encode_utf16().count() > 1000 => {
            Err("promptText is too long".into())
        }
        Some(Value::String(_)) => Ok(()),
        _ => Err("promptText is required".into()),
    }
}

/// The video-to-video body: the video, in the field the model names, as a known upload; only the
/// fields the model takes.
pub(super) fn validate_video(
    model: &str,
    body: &Value,
    uploads: &HashMap<String, usize>,
) -> Result<(), String> {
    let (_, field, fields) = VIDEO_MODELS
        .iter()
        .find(|m| m.0 == model)
        .ok_or_else(|| format!("Invalid model for video_to_video: {model}"))?;
    if let Some(k) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| !fields.contains(&k.as_str())))
    {
        return Err(format!("{k} is not a field of video_to_video for {model}"));
    }
    let uri = body[*field]
        .as_str()
        .ok_or_else(|| format!("{field} is required"))?;
    let id = uri
        .strip_prefix("runway://")
        .ok_or_else(|| format!("{field} must be a runway:// upload here"))?;
    if !uploads.contains_key(id) {
        return Err(format!("{field}: unknown upload"));
    }
    Ok(())
}
