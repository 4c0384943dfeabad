//! Sidecars: the `<stem>.yaml` beside a dropped file, read strictly (unknown keys, wrong types and
//! keys `extra:` may not set are errors naming the key and its line), every problem reported at
//! once so one look at `error.txt` shows all there is to fix — in a designer's words: what a value
//! must be ("a whole number of seconds", not serde's `u32`), the known key an unknown one was
//! probably meant to be, and a tab used for indentation.

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
    pub duration: Option<crate::job::Seconds>,
    pub ratio: Option<String>,
    /// A model's `resolution` (`1080p`).
    pub resolution: Option<String>,
    /// A model's `outputFormat` (`prores`).
    pub output_format: Option<String>,
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
    ("resolution", "resolution:"),
    ("outputFormat", "output_format:"),
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
        } else if let Some(line) = tab_indented(text, e.location().map(|l| l.line())) {
            format!("YAML does not allow tabs for indentation: use spaces (line {line})")
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
    // The known keys are listed once, with the first unknown key.
    let mut listed = false;
    for (k, v) in map {
        let key = match &k {
            serde_yaml_ng::Value::String(s) => s.clone(),
            other => scalar(other).unwrap_or_else(|| "a list or a map".into()),
        };
        let at = line_of_key(text, &key).map_or(String::new(), |n| format!(" (line {n})"));
        if !KEYS.contains(&key.as_str()) && !ALIASES.iter().any(|(a, _)| *a == key) {
            let mut p = format!("unknown key `{key}`{at}");
            let near = nearest_key(&key);
            if let Some(near) = near {
                p.push_str(&format!("; did you mean `{near}`?"));
            }
            if !listed {
                let the = if near.is_some() { " The" } else { "; the" };
                p.push_str(&format!("{the} known keys are {}", known_keys()));
                listed = true;
            }
            problems.push(p);
            continue;
        }
        let mut one = serde_yaml_ng::Mapping::new();
        one.insert(k.clone(), v.clone());
        match serde_yaml_ng::from_value::<Sidecar>(serde_yaml_ng::Value::Mapping(one)) {
            Ok(_) => {
                good.insert(k, v);
            }
            Err(_) => problems.push(wrong_value(&key, &v, &at)),
        }
    }
    let sidecar: Sidecar = serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(good))
        .map_err(|e| format!("it cannot be read: {e}"))?;
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

/// The keys a sidecar takes (its aliases aside), in the order they are listed.
const KEYS: &[&str] = &[
    "prompt",
    "model",
    "duration",
    "ratio",
    "resolution",
    "output_format",
    "seed",
    "variants",
    "dedupe",
    "motion",
    "zoom",
    "extra",
];

/// Other spellings a sidecar takes, and the key each means.
const ALIASES: &[(&str, &str)] = &[("promptText", "prompt")];

/// "prompt, model, … and extra".
fn known_keys() -> String {
    let (last, rest) = KEYS.split_last().expect("keys");
    format!("{} and {last}", rest.join(", "))
}

/// The known key an unknown one was probably meant to be: the same once letter case and `_`,
/// `-` are ignored (`Duration`, `prompt_text`), a typo away (`promt`, `modle`: one edit for
/// short names, two otherwise), or a longer name around it (`aspect_ratio`).
fn nearest_key(unknown: &str) -> Option<&'static str> {
    let plain = |s: &str| s.to_lowercase().replace(['_', '-', ' '], "");
    let u = plain(unknown);
    let spellings = KEYS.iter().map(|k| (*k, *k)).chain(ALIASES.iter().copied());
    let mut best: Option<(usize, &'static str)> = None;
    for (spelling, key) in spellings {
        let s = plain(spelling);
        let distance = if s == u {
            0
        } else {
            let d = strsim::osa_distance(&u, &s);
            let near = if u.chars().count() <= 4 { 1 } else { 2 };
            if d <= near {
                d
            } else if u.contains(&s) {
                3
            } else {
                continue;
            }
        };
        if best.is_none_or(|(b, _)| distance < b) {
            best = Some((distance, key));
        }
    }
    best.map(|(_, key)| key)
}

/// What a key's value must be, in a designer's words, and an example of one.
fn wants(key: &str) -> (&'static str, &'static str) {
    match key {
        "duration" => ("a whole number of seconds, or auto", "duration: 5"),
        "seed" => ("a whole number from 0 to 4294967295", "seed: 42"),
        "variants" => ("a whole number from 1 to 8", "variants: 3"),
        "dedupe" => ("true or false", "dedupe: false"),
        "zoom" => ("a number from 1.0 to 2.0", "zoom: 1.3"),
        "extra" => (
            "a map of API field names to values",
            "extra: {contentModeration: {publicFigureThreshold: low}}",
        ),
        "model" => ("text", "model: gen4.5"),
        "ratio" => ("text", "ratio: \"1280:720\""),
        "resolution" => ("text", "resolution: 1080p"),
        "output_format" => ("text", "output_format: prores"),
        "motion" => ("text", "motion: push_in"),
        _ => ("text", "prompt: \"slow push-in, soft light\""),
    }
}

/// A scalar value as written (text, a number, true or false); `None` for a list or a map.
fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    use serde_yaml_ng::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// What a value is, in a designer's words.
fn described(v: &serde_yaml_ng::Value) -> String {
    use serde_yaml_ng::Value;
    match v {
        Value::String(s) => format!("the text {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a set of keys".into(),
        Value::Tagged(_) => "a tagged value".into(),
        other => scalar(other).unwrap_or_default(),
    }
}

/// The problem of a known key whose value is not what it takes: what it must be, what it is,
/// and how to write it (`at` is " (line N)" or empty).
fn wrong_value(key: &str, value: &serde_yaml_ng::Value, at: &str) -> String {
    let (want, example) = wants(
        ALIASES
            .iter()
            .find(|(a, _)| *a == key)
            .map_or(key, |(_, k)| k),
    );
    let shown = scalar(value);
    let written = match &shown {
        Some(s) => format!("`{key}: {s}`"),
        None => format!("`{key}`"),
    };
    let how = match shown {
        // A number or `yes` where text belongs: quotes make it text.
        Some(s) if want == "text" => format!("put it in quotes: `{key}: \"{s}\"`"),
        _ => format!("e.g. `{example}`"),
    };
    format!(
        "{written}{at} must be {want}, not {}; {how}",
        described(value)
    )
}

/// The 1-based line of the first line indented with a tab — the one the YAML parser stopped at
/// (`stopped`), or one before it — when there is one: YAML forbids tabs there.
fn tab_indented(text: &str, stopped: Option<usize>) -> Option<usize> {
    let tabbed = |l: &str| {
        l.chars()
            .take_while(|c| c.is_whitespace())
            .any(|c| c == '\t')
    };
    let lines: Vec<&str> = text.lines().collect();
    if let Some(n) = stopped
        && lines.get(n.wrapping_sub(1)).is_some_and(|l| tabbed(l))
    {
        return Some(n);
    }
    let first = lines.iter().position(|l| tabbed(l))? + 1;
    stopped.is_none_or(|n| first <= n).then_some(first)
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

    // See: issue 21, item 3 — sidecar errors listed the keys twice, said `expected u32`, and gave
    // no "did you mean `prompt`?" or tab hint.
    #[test]
    fn sidecar_errors_speak_a_designers_words() {
        let e = parse_sidecar("promt: hi").unwrap_err();
        assert!(e.contains("unknown key `promt` (line 1)"), "{e}");
        assert!(e.contains("did you mean `prompt`?"), "{e}");
        assert_eq!(
            e.matches("duration").count(),
            1,
            "the keys are listed once: {e}"
        );
        for (yaml, want) in [
            ("Duration: 5", "`duration`"),
            ("sed: 5", "`seed`"),
            ("modle: gen4.5", "`model`"),
            ("aspect_ratio: auto", "`ratio`"),
            ("prompt_text: hi", "`prompt`"),
        ] {
            let e = parse_sidecar(yaml).unwrap_err();
            assert!(e.contains(&format!("did you mean {want}?")), "{yaml}: {e}");
        }
        let e = parse_sidecar("colour: red").unwrap_err();
        assert!(!e.contains("did you mean"), "nothing near: {e}");
        // Two unknown keys: the known ones are still listed once.
        let e = parse_sidecar("promt: hi\nsed: 3\n").unwrap_err();
        assert_eq!(e.matches("variants").count(), 1, "{e}");
        let e = parse_sidecar(
            "duration: 5s\nseed: lots\nvariants: two\ndedupe: maybe\nzoom: big\nmodel: [a, b]\n",
        )
        .unwrap_err();
        for word in [
            "u32",
            "u64",
            "f64",
            "a string",
            "a boolean",
            "invalid type",
            "sequence",
        ] {
            assert!(!e.contains(word), "serde's word {word:?} in {e}");
        }
        for words in [
            "`duration: 5s` (line 1) must be a whole number of seconds, or auto, not the text \"5s\"",
            "`seed: lots` (line 2) must be a whole number",
            "`variants: two` (line 3) must be a whole number from 1 to 8",
            "`dedupe: maybe` (line 4) must be true or false",
            "`zoom: big` (line 5) must be a number",
            "`model` (line 6) must be text, not a list",
        ] {
            assert!(e.contains(words), "{words:?} in {e}");
        }
        for (yaml, line) in [
            ("prompt: hi\n\tmodel: gen4.5\n", 2),
            ("\tprompt: hi\n", 1),
            ("prompt: hi\nextra:\n\tfoo: 1\n", 3),
        ] {
            let e = parse_sidecar(yaml).unwrap_err();
            assert!(
                e.contains(&format!(
                    "YAML does not allow tabs for indentation: use spaces (line {line})"
                )),
                "{yaml:?}: {e}"
            );
        }
        // A tab between a key and its value is fine.
        assert_eq!(
            parse_sidecar("model:\tgen4.5").unwrap().model.as_deref(),
            Some("gen4.5")
        );
    }
}
