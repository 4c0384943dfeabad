//! Validation at start: every key of a parsed config checked against what dropreel can do, each
//! refusal naming the file, the key and what to write.

use super::{
    Config, ConfigError, Defaults, MAX_VARIANTS, NotifySection, UiSection, parse_listen, web_origin,
};
use std::sync::Arc;

use crate::job::models::{self, Endpoint, Models};

pub(super) fn invalid(origin: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        message: message.into(),
    }
}

/// The API base URL must be an http(s) URL; `origin` says where it came from.
pub(super) fn validate_base_url(base_url: &str, origin: &str) -> Result<(), ConfigError> {
    let url = base_url.trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
        let key = if origin.contains("RUNWAYML_BASE_URL") {
            "RUNWAYML_BASE_URL"
        } else {
            "runway.base_url"
        };
        return Err(invalid(
            origin,
            format!("{key}: {base_url:?} is not an http(s) URL"),
        ));
    }
    Ok(())
}

/// Checks everything; the catalog the settings use (with their `models:`) when it is all fine.
pub(super) fn validate(c: &Config, origin: &str, local: bool) -> Result<Arc<Models>, ConfigError> {
    let models = Models::with(&c.models).map_err(|e| {
        invalid(
            origin,
            format!(
                "{e}. A `models:` entry uses the keys of the catalog (see `dropreel models` and the README's \"Models\")"
            ),
        )
    })?;
    validate_defaults(&c.defaults, "defaults", origin, local, &models)?;
    for (name, preset) in &c.presets {
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            return Err(invalid(
                origin,
                format!("presets: {name:?} cannot be a folder name in inbox/; use a plain name"),
            ));
        }
        validate_defaults(
            &preset.over(&c.defaults),
            &format!("presets.{name}"),
            origin,
            local,
            &models,
        )?;
    }
    validate_notify(&c.notify, origin)?;
    validate_ui(&c.ui, origin)?;
    validate_runtime(c, origin)?;
    Ok(models)
}

/// Checks `notify:`: a webhook is an http(s) URL, a command names a program, a secret's variable
/// is named only beside a webhook.
pub(super) fn validate_notify(n: &NotifySection, origin: &str) -> Result<(), ConfigError> {
    if let Some(url) = &n.webhook {
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(invalid(
                origin,
                format!("notify.webhook: {url:?} is not an http:// or https:// URL"),
            ));
        }
    }
    if n.webhook_secret_env.is_some() && n.webhook.is_none() {
        return Err(invalid(
            origin,
            "notify.webhook_secret_env signs webhook bodies, but notify.webhook is not set"
                .to_string(),
        ));
    }
    if n.retry_min.is_zero() || n.retry_max < n.retry_min {
        return Err(invalid(
            origin,
            "notify.retry_min must be above zero and notify.retry_max at least as long".to_string(),
        ));
    }
    if n.command
        .as_ref()
        .is_some_and(|c| c.first().is_none_or(|p| p.trim().is_empty()))
    {
        return Err(invalid(
            origin,
            "notify.command: give the program and its arguments as a list, e.g. [\"/usr/local/bin/on-reel\", \"{event}\", \"{file}\"]".to_string(),
        ));
    }
    Ok(())
}

/// Checks `ui:`: an address that can be listened on, a token long enough not to be guessed.
pub(super) fn validate_ui(u: &UiSection, origin: &str) -> Result<(), ConfigError> {
    if let Some(listen) = &u.listen
        && parse_listen(listen).is_none()
    {
        return Err(invalid(
            origin,
            format!(
                "ui.listen: {listen:?} is not an address to listen on; write it as 127.0.0.1:7878, 0.0.0.0:7878 or [::1]:7878"
            ),
        ));
    }
    if let Some(t) = &u.token
        && (t.chars().count() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(invalid(
            origin,
            "ui.token must be at least 16 characters without spaces (e.g. the output of `openssl rand -hex 16`)".to_string(),
        ));
    }
    if let Some(public) = &u.public_origin
        && web_origin(public).is_none()
    {
        return Err(invalid(
            origin,
            format!(
                "ui.public_origin: {public:?} is not a web origin; write the scheme and host the page is opened at through your proxy, e.g. https://reels.example.com (no path)"
            ),
        ));
    }
    if u.max_upload_mb == 0 {
        return Err(invalid(
            origin,
            "ui.max_upload_mb must be above zero".to_string(),
        ));
    }
    Ok(())
}

/// Checks one set of job settings (`defaults`, or a preset over them; `key` names it in messages).
pub(super) fn validate_defaults(
    d: &Defaults,
    key: &str,
    origin: &str,
    local: bool,
    catalog: &Models,
) -> Result<(), ConfigError> {
    let image_models = || catalog.models_for(Endpoint::ImageToVideo).join(", ");
    let Some(model) = catalog.find(&d.model) else {
        let near = catalog.nearest(&d.model, 3);
        let near = if near.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", near.join(" or "))
        };
        return Err(invalid(
            origin,
            format!(
                "{key}.model: unknown model {:?}{near}; models that animate images: {}. \
                 To use a model dropreel does not list yet, declare it under `models:`",
                d.model,
                image_models()
            ),
        ));
    };
    for (field, id) in [
        ("model", &d.model),
        ("text_model", &d.text_model),
        ("video_model", &d.video_model),
    ] {
        if let Some(m) = catalog.find(id)
            && m.legacy
        {
            let instead = m.replaced_by.as_deref().map_or(String::new(), |r| {
                format!("; use {r}, the current model closest to it")
            });
            return Err(invalid(
                origin,
                format!("{key}.{field}: {id} is no longer offered by Runway{instead}"),
            ));
        }
    }
    let Some(i2v) = model.rules(Endpoint::ImageToVideo) else {
        return Err(invalid(
            origin,
            format!(
                "{key}.model: {} does not animate images; use one of {}",
                model.id,
                image_models()
            ),
        ));
    };
    // Ratio and duration are checked against what will render them.
    let (model, i2v) = match (local, models::LOCAL.rules(Endpoint::ImageToVideo)) {
        (true, Some(l)) => (&*models::LOCAL, l),
        _ => (model, i2v),
    };
    if d.ratio != "auto" {
        let offered = i2v.ratios.as_deref().unwrap_or(&[]);
        if !offered.contains(&d.ratio) {
            return Err(invalid(
                origin,
                format!(
                    "{key}.ratio: {:?} is not offered by {}; use auto or one of {}",
                    d.ratio,
                    model.id,
                    offered.join(", ")
                ),
            ));
        }
    }
    if !(1..=MAX_VARIANTS).contains(&d.variants) {
        return Err(invalid(
            origin,
            format!(
                "{key}.variants: {} is out of range; use 1 to {MAX_VARIANTS}",
                d.variants
            ),
        ));
    }
    if let Some(dur) = d.duration
        && let Some(durations) = &i2v.durations
        && !durations.allows(dur)
    {
        return Err(invalid(
            origin,
            format!(
                "{key}.duration: {dur} is not offered by {}; it takes {}",
                model.id,
                durations.describe()
            ),
        ));
    }
    for (field, id, endpoint) in [
        ("text_model", &d.text_model, Endpoint::TextToVideo),
        ("video_model", &d.video_model, Endpoint::VideoToVideo),
    ] {
        if catalog.find(id).is_none_or(|m| m.rules(endpoint).is_none()) {
            return Err(invalid(
                origin,
                format!(
                    "{key}.{field}: {id:?} does not make {} videos; use one of {}",
                    endpoint.input(),
                    catalog.models_for(endpoint).join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the `runway:`, `watch:` and `local:` sections.
pub(super) fn validate_runtime(c: &Config, origin: &str) -> Result<(), ConfigError> {
    let r = &c.runway;
    if r.api_version.trim().is_empty() {
        return Err(invalid(origin, "runway.api_version must not be empty"));
    }
    if !(1..=100).contains(&r.max_in_flight) {
        return Err(invalid(
            origin,
            format!(
                "runway.max_in_flight: {} must be between 1 and 100",
                r.max_in_flight
            ),
        ));
    }
    for (key, v) in [
        ("runway.poll_interval", r.poll_interval),
        ("runway.task_timeout", r.task_timeout),
        ("runway.retry_min", r.retry_min),
        ("runway.retry_max", r.retry_max),
        ("runway.request_timeout", r.request_timeout),
        ("watch.rescan", c.watch.rescan),
        ("watch.lease", c.watch.lease),
        ("watch.truncated_after", c.watch.truncated_after),
    ] {
        if v.is_zero() {
            return Err(invalid(origin, format!("{key} must be longer than 0s")));
        }
    }
    if r.retry_max < r.retry_min {
        return Err(invalid(
            origin,
            "runway.retry_max must not be shorter than runway.retry_min",
        ));
    }
    if let Some(p) = c.watch.poll
        && p.is_zero()
    {
        return Err(invalid(
            origin,
            "watch.poll must be longer than 0s, or null for OS events",
        ));
    }
    if !(1..=120).contains(&c.local.fps) {
        return Err(invalid(
            origin,
            format!("local.fps: {} must be between 1 and 120", c.local.fps),
        ));
    }
    Ok(())
}
