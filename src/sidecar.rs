//! Sidecars: the `<stem>.yaml` beside a dropped file, read strictly (unknown keys, wrong types and
//! keys `extra:` may not set are errors naming the key and its line), every problem reported at
//! once so one look at `error.txt` shows all there is to fix.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

/// A sidecar larger than this is refused unread (a prompt is text, not a file dump).
pub const MAX_SIDECAR_BYTES: u64 = 256 * 1024;

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
    /// Takes of this input (1–8), each its own task and output.
    pub variants: Option<u32>,
    /// `false`: generate afresh even when the same job was delivered before.
    pub dedupe: Option<bool>,
    /// Merged verbatim into the API request body.
    pub extra: Option<Map<String, Value>>,
}

/// Request fields dropreel sets itself; `extra:` may not replace them.
const OWN_FIELDS: &[(&str, &str)] = &[
    ("model", "model:"),
    ("promptImage", "the image itself (and its .last keyframe)"),
    ("videoUri", "the video itself"),
    ("promptVideo", "the video itself"),
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
        "the known keys are prompt, model, duration, ratio, seed, variants, dedupe, motion, zoom and extra"
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = parse_sidecar("extra:\n  videoUri: https://example.com/v.mp4").unwrap_err();
        assert!(e.contains("may not set `videoUri`"), "{e}");
        assert_eq!(parse_sidecar("").unwrap(), Sidecar::default());
        let s = parse_sidecar(
            "promptText: hi\nextra:\n  contentModeration:\n    publicFigureThreshold: low",
        )
        .unwrap();
        assert_eq!(s.prompt.as_deref(), Some("hi"));
        assert!(s.extra.unwrap().contains_key("contentModeration"));
    }
}
