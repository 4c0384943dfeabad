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
