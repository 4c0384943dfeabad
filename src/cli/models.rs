//! `dropreel models`: the catalog a studio's jobs are checked against — every model with its
//! endpoints, ratios, durations, keyframe support and price, the studio's own and the legacy ones
//! marked — as a table, as JSON (`--json`), or as the Markdown table the README carries
//! (`--markdown`, so the README's table is made from the data the binary uses).

use serde::Serialize;

use crate::job::models::{Durations, Endpoint, Model, Models, Origin, RUNWAY_EDITION, Rules};

/// One model, as `--json` writes it.
#[derive(Debug, Serialize)]
pub struct ModelEntry<'a> {
    pub model: &'a str,
    /// `runway`, `overridden` (changed by the studio's `models:`) or `user` (declared there).
    pub origin: Origin,
    pub legacy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_in_sdk: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<&'a str>,
    /// `null` when Runway has not published one.
    pub credits_per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_per_second_with_audio: Option<u32>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub surcharge_per_second: &'a std::collections::BTreeMap<String, u32>,
    /// `outputFormat` values with the extension of their file.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub output_formats: &'a std::collections::BTreeMap<String, String>,
    pub endpoints: Vec<EndpointEntry<'a>>,
}

/// One (model, endpoint): the endpoint, then the model's rules there.
#[derive(Debug, Serialize)]
pub struct EndpointEntry<'a> {
    pub endpoint: Endpoint,
    pub path: &'static str,
    #[serde(flatten)]
    pub rules: &'a Rules,
}

/// Every model of `models`, as `--json` writes them.
pub fn entries(models: &Models) -> Vec<ModelEntry<'_>> {
    models
        .iter()
        .map(|m| ModelEntry {
            model: &m.id,
            origin: m.origin,
            legacy: m.legacy,
            removed_in_sdk: m.removed_in.as_deref(),
            replaced_by: m.replaced_by.as_deref(),
            credits_per_second: m.credits_per_second,
            credits_per_second_with_audio: m.credits_with_audio,
            surcharge_per_second: &m.surcharges,
            output_formats: &m.output_formats,
            endpoints: m
                .endpoints
                .iter()
                .map(|(e, r)| EndpointEntry {
                    endpoint: *e,
                    path: e.path(),
                    rules: r,
                })
                .collect(),
        })
        .collect()
}

/// Ratios in a few words: "1280:720, 720:1280" or "992:432, 864:496, … (24)"; resolutions beside.
fn ratios_text(r: &Rules) -> String {
    let mut text = match &r.ratios {
        None => "follows the input".to_string(),
        Some(list) if list.len() <= 4 => list.join(", "),
        Some(list) => format!("{}, … ({})", list[..3].join(", "), list.len()),
    };
    if let Some(res) = &r.resolutions {
        // Upper-case spellings Runway deprecated are left out.
        let shown: Vec<&str> = res
            .iter()
            .filter(|x| !x.chars().any(|c| c.is_ascii_uppercase()))
            .map(String::as_str)
            .collect();
        text.push_str(&format!("; resolution {}", shown.join("/")));
    }
    text
}

fn durations_text(r: &Rules) -> String {
    let mut text = r
        .durations
        .as_ref()
        .map_or("follows the input".to_string(), Durations::short);
    if r.duration_auto {
        text.push_str(", auto");
    }
    text
}

fn price_text(m: &Model) -> String {
    match (m.credits_per_second, m.credits_with_audio) {
        (Some(c), Some(a)) => format!("{c} ({a} with audio)"),
        (Some(c), None) => c.to_string(),
        (None, _) => "not published".into(),
    }
}

fn mark(m: &Model) -> &'static str {
    match (m.legacy, m.origin) {
        (true, _) => " (legacy)",
        (_, Origin::User) => " (yours)",
        (_, Origin::Overridden) => " (changed by yours)",
        _ => "",
    }
}

/// The table `dropreel models` prints.
pub fn table(models: &Models) -> String {
    let mut out = format!(
        "Runway models (catalog of SDK {RUNWAY_EDITION}; credits per output second, 1 credit = US$0.01)\n\n"
    );
    let rows: Vec<[String; 6]> = models
        .iter()
        .flat_map(|m| {
            m.endpoints.iter().enumerate().map(move |(i, (e, r))| {
                [
                    if i == 0 {
                        format!("{}{}", m.id, mark(m))
                    } else {
                        String::new()
                    },
                    e.words().to_string(),
                    ratios_text(r),
                    durations_text(r),
                    if r.last_frame { "yes" } else { "-" }.to_string(),
                    if i == 0 { price_text(m) } else { String::new() },
                ]
            })
        })
        .collect();
    let head = [
        "MODEL",
        "ENDPOINT",
        "RATIOS",
        "SECONDS",
        "LAST KEYFRAME",
        "CREDITS/S",
    ];
    let mut widths = head.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(head.to_vec()));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    let legacy: Vec<String> = models
        .iter()
        .filter(|m| m.legacy)
        .map(|m| match &m.replaced_by {
            Some(r) => format!("{} (use {r})", m.id),
            None => m.id.clone(),
        })
        .collect();
    if !legacy.is_empty() {
        out.push_str(&format!(
            "\nLegacy models are no longer offered by Runway; a job naming one fails before any request: {}.\n",
            legacy.join(", ")
        ));
    }
    out.push_str(
        "Add a model or change one under `models:` in dropreel.yaml; `--json` gives every field.\n",
    );
    out
}

/// The README's model table (Markdown), made from the shipped catalog.
pub fn markdown(models: &Models) -> String {
    let mut out = String::from(
        "| Model | Endpoint | Ratios | Seconds | Last keyframe | Credits/s |\n|---|---|---|---|---|---|\n",
    );
    for m in models.iter() {
        for (i, (e, r)) in m.endpoints.iter().enumerate() {
            let first = i == 0;
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                if first {
                    format!("`{}`{}", m.id, mark(m))
                } else {
                    String::new()
                },
                e.words(),
                ratios_text(r).replace('|', "\\|"),
                durations_text(r),
                if r.last_frame { "yes" } else { "–" },
                if first { price_text(m) } else { String::new() },
            ));
        }
    }
    out
}
