//! `dropreel.yaml`: the schema with its defaults, the environment (`RUNWAYML_API_SECRET`, `.env`
//! files), and validation at start, so a bad setting stops dropreel with one clear message before it
//! touches any file.
//!
//! (Over 600 lines: the whole schema, its defaults, every key's validation and their tests, kept in
//! one place so a new setting is added in one file.)

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::job::models::{self, Endpoint};

/// The config file name looked up in the studio root.
pub const FILE_NAME: &str = "dropreel.yaml";
/// Default Runway API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.dev.runwayml.com";

/// A config that cannot be used; the message names the file, the key and what to write.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// Which engine turns images into video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Runway when an API key is set, else the local renderer.
    #[default]
    Auto,
    Runway,
    Local,
}

/// `defaults:` — what every job starts from; a sidecar overrides any key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// The model of image jobs.
    pub model: String,
    /// The model of text jobs (a `.txt`: text to video).
    pub text_model: String,
    /// The model of video jobs (video to video).
    pub video_model: String,
    pub prompt: String,
    /// `None` = 5 s, or the nearest duration the model offers when it does not offer 5.
    pub duration: Option<u32>,
    /// `auto` or a pixel ratio such as `1280:720`.
    pub ratio: String,
    /// Takes per input (1–8), each its own task and output.
    pub variants: u32,
    /// Whether a job already delivered (same inputs, same settings) is reused instead of paid
    /// again: the top-level `dedupe:`, or a preset's (not a key of `defaults:`).
    #[serde(skip)]
    pub dedupe: bool,
}

/// The most takes one input may ask for.
pub const MAX_VARIANTS: u32 = 8;

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            model: "gen4_turbo".into(),
            text_model: "gen4.5".into(),
            video_model: "aleph2".into(),
            prompt: String::new(),
            duration: None,
            ratio: "auto".into(),
            variants: 1,
            dedupe: true,
        }
    }
}

/// One entry of `presets:` — the keys of `defaults`, each optional (what it leaves out comes from
/// `defaults`).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub model: Option<String>,
    pub text_model: Option<String>,
    pub video_model: Option<String>,
    pub prompt: Option<String>,
    pub duration: Option<u32>,
    pub ratio: Option<String>,
    pub variants: Option<u32>,
    /// `false`: always generate afresh (see the top-level `dedupe:`).
    pub dedupe: Option<bool>,
}

impl Preset {
    /// `defaults` with this preset's keys over them.
    pub fn over(&self, d: &Defaults) -> Defaults {
        Defaults {
            model: self.model.clone().unwrap_or_else(|| d.model.clone()),
            text_model: self
                .text_model
                .clone()
                .unwrap_or_else(|| d.text_model.clone()),
            video_model: self
                .video_model
                .clone()
                .unwrap_or_else(|| d.video_model.clone()),
            prompt: self.prompt.clone().unwrap_or_else(|| d.prompt.clone()),
            duration: self.duration.or(d.duration),
            ratio: self.ratio.clone().unwrap_or_else(|| d.ratio.clone()),
            variants: self.variants.unwrap_or(d.variants),
            dedupe: self.dedupe.unwrap_or(d.dedupe),
        }
    }
}

impl Config {
    /// The settings a file in `inbox/<folder>` starts from: `defaults`, under the preset its
    /// top-level folder names (if it names one), and that preset's name.
    pub fn defaults_for(&self, folder: &str) -> (Defaults, Option<String>) {
        let top = folder.split('/').next().unwrap_or_default();
        let defaults = Defaults {
            dedupe: self.dedupe.unwrap_or(true),
            ..self.defaults.clone()
        };
        match self.presets.get(top) {
            Some(p) if !top.is_empty() => (p.over(&defaults), Some(top.to_string())),
            _ => (defaults, None),
        }
    }
}

/// `runway:` — the API client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunwaySection {
    pub base_url: String,
    pub api_version: String,
    /// Remote tasks submitted and not yet finished.
    pub max_in_flight: usize,
    /// Upper bound between two polls of one task.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A task still unfinished this long after its submission ends in `failed/`.
    #[serde(with = "humantime_serde")]
    pub task_timeout: Duration,
    /// First retry delay after a transient fault (doubles each time, with up to +50 % jitter).
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    /// Cap of the retry delay, also for systemic holds (bad key, quota, outage).
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Transient faults one job may hit before it goes to `failed/`.
    pub retries: u32,
    /// HTTP timeout of one API call (not of a download, which only needs to keep moving).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// What to do when a create request's outcome is unknown (a crash during it, or its answer
    /// lost): the API has no idempotency key, so a task may exist that dropreel never heard of.
    pub uncertain_submit: UncertainSubmit,
}

/// The policy for a create request whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UncertainSubmit {
    /// Submit again and record a possible double charge in `result.json`: the video gets made.
    #[default]
    Resubmit,
    /// Move the job to `failed/` saying it may already be running: never risk paying twice.
    Park,
}

impl Default for RunwaySection {
    fn default() -> Self {
        RunwaySection {
            base_url: DEFAULT_BASE_URL.into(),
            api_version: "2024-11-06".into(),
            max_in_flight: 2,
            poll_interval: Duration::from_secs(10),
            task_timeout: Duration::from_secs(30 * 60),
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(5 * 60),
            retries: 5,
            request_timeout: Duration::from_secs(60),
            uncertain_submit: UncertainSubmit::Resubmit,
        }
    }
}

/// `watch:` — how the inbox is watched.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchSection {
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    #[serde(with = "humantime_serde")]
    pub sidecar_wait: Duration,
    #[serde(with = "humantime_serde")]
    pub poll: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub rescan: Duration,
    /// A job whose lease is not renewed this long is taken over by another instance.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// An image that is still not whole (its structure ends early) after staying unchanged this
    /// long is a copy that broke off: it goes to `failed/` as truncated.
    #[serde(with = "humantime_serde")]
    pub truncated_after: Duration,
}

impl Default for WatchSection {
    fn default() -> Self {
        WatchSection {
            settle: Duration::from_secs(2),
            sidecar_wait: Duration::from_secs(2),
            poll: None,
            rescan: Duration::from_secs(60),
            lease: Duration::from_secs(60),
            truncated_after: Duration::from_secs(10 * 60),
        }
    }
}

/// `local:` — the local motion renderer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSection {
    pub fps: u32,
}

impl Default for LocalSection {
    fn default() -> Self {
        LocalSection { fps: 24 }
    }
}

/// The whole `dropreel.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub backend: BackendChoice,
    pub defaults: Defaults,
    /// Named sets of job settings: a file under `inbox/<name>/` gets defaults < preset < sidecar.
    pub presets: std::collections::BTreeMap<String, Preset>,
    pub runway: RunwaySection,
    pub watch: WatchSection,
    pub local: LocalSection,
    /// Spend limits for the studio.
    pub budget: BudgetSection,
    /// `false`: never reuse an earlier delivery of the same inputs and settings (default `true`).
    pub dedupe: Option<bool>,
    /// Notifications (webhook, command).
    pub notify: NotifySection,
    /// The dashboard (`watch --ui`).
    pub ui: UiSection,
}

/// `ui:` — the dashboard `watch --ui` serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiSection {
    /// `ADDRESS:PORT` to serve on; set, `watch` serves the dashboard without `--ui`.
    pub listen: Option<String>,
    /// Required on any address but loopback: every request must carry it.
    pub token: Option<String>,
    /// The largest file the drop zone takes, in MiB.
    pub max_upload_mb: u64,
    /// The address the page is opened at through a proxy (`https://reels.example.com`): a change
    /// whose `Origin` is this one is the page's own, and on loopback its host is answered.
    pub public_origin: Option<String>,
}

impl Default for UiSection {
    fn default() -> Self {
        UiSection {
            listen: None,
            token: None,
            max_upload_mb: 2048,
            public_origin: None,
        }
    }
}

/// A web origin as a browser sends it in `Origin`: `scheme://host[:port]`, lower case, the
/// scheme's default port left out. `None` for anything else (a path, a query, a user name).
pub fn web_origin(text: &str) -> Option<String> {
    let url = reqwest::Url::parse(text.trim()).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    plain.then(|| url.origin().ascii_serialization())
}

/// The environment variables that hold the API key (the first wins): never passed on to a
/// notification command.
pub const API_KEY_VARS: [&str; 2] = ["RUNWAYML_API_SECRET", "RUNWAY_API_KEY"];

/// The dashboard's address when neither `--ui=ADDR` nor `ui.listen` names one.
pub const UI_DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Reads a dashboard address: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
pub fn parse_listen(text: &str) -> Option<std::net::SocketAddr> {
    if let Some(port) = text.strip_prefix("localhost:") {
        return port
            .parse()
            .ok()
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)));
    }
    text.parse().ok()
}

/// `budget:` — what a day and a month may spend, in credits (1 credit = US$0.01).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetSection {
    /// 0 = no limit; the calendar day in the machine's local time.
    pub daily_credits: u64,
    /// 0 = no limit; the calendar month.
    pub monthly_credits: u64,
    /// Credits per second for models whose price the catalog does not know (or to override it).
    pub rates: std::collections::BTreeMap<String, u32>,
}

impl BudgetSection {
    /// Whether any limit is set.
    pub fn limited(&self) -> bool {
        self.daily_credits > 0 || self.monthly_credits > 0
    }
}

/// `notify:` — who hears about delivered and failed jobs and about pauses of submission.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    /// A URL that gets one JSON object per event (POST).
    pub webhook: Option<String>,
    /// The name of an environment variable holding the secret that signs each webhook body
    /// (`X-Dropreel-Signature: sha256=<HMAC>`).
    pub webhook_secret_env: Option<String>,
    /// A program and its arguments, run once per event without a shell; `{event}`, `{file}`,
    /// `{job}` and `{outputs}` in an argument are replaced.
    pub command: Option<Vec<String>>,
    /// Which events are sent.
    pub events: Vec<crate::observe::events::EventKind>,
    /// The first wait after a failed delivery (doubles each time).
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    /// The longest wait between two tries of one event.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

impl Default for NotifySection {
    fn default() -> Self {
        NotifySection {
            webhook: None,
            webhook_secret_env: None,
            command: None,
            events: crate::observe::events::EventKind::ALL.to_vec(),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(600),
        }
    }
}

/// An API key; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The environment as dropreel sees it: real variables first, then `ROOT/.env`, then `./.env`
/// (a later source never overrides an earlier one).
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment plus the `.env` files.
    pub fn from_process(root: &Path) -> Result<Env, ConfigError> {
        let mut env = Env {
            vars: std::env::vars().collect(),
        };
        env.add_dotenv(&root.join(".env"))?;
        if let Ok(cwd) = std::env::current_dir() {
            env.add_dotenv(&cwd.join(".env"))?;
        }
        Ok(env)
    }

    /// An environment made of these pairs only (tests, embedding).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn add_dotenv(&mut self, path: &Path) -> Result<(), ConfigError> {
        let iter = match dotenvy::from_path_iter(path) {
            Ok(iter) => iter,
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        };
        for item in iter {
            let (k, v) = item.map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("{e} (write lines like RUNWAYML_API_SECRET=key_...)"),
            })?;
            self.vars.entry(k).or_insert(v);
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// Everything a run needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    /// Where the config came from (for messages), or `None` for built-in defaults.
    pub config_path: Option<PathBuf>,
    pub config: Config,
    pub api_key: Option<Secret>,
    /// The file whose changes [`Settings::reload`] picks up: `--config`, or `ROOT/dropreel.yaml`
    /// (also when it did not exist at start).
    pub watched_path: PathBuf,
    /// `RUNWAYML_BASE_URL` from the environment, which beats the file at every reload.
    env_base_url: Option<String>,
}

impl Settings {
    /// Loads `config_path` (or `ROOT/dropreel.yaml` when present), applies the environment and
    /// validates everything.
    pub fn load(
        root: &Path,
        config_path: Option<&Path>,
        env: &Env,
    ) -> Result<Settings, ConfigError> {
        let watched_path = config_path.map_or_else(|| root.join(FILE_NAME), Path::to_path_buf);
        let [main_key, alias_key] = API_KEY_VARS;
        let api_key = env
            .get(main_key)
            .or_else(|| env.get(alias_key))
            .map(|k| Secret::new(k.trim()));
        let seed = Settings {
            root: root.to_path_buf(),
            config_path: None,
            config: Config::default(),
            api_key,
            watched_path,
            env_base_url: env.get("RUNWAYML_BASE_URL").map(|u| u.trim().to_string()),
        };
        // An explicit --config must exist; the default file is optional.
        seed.read(config_path.is_some())
    }

    /// Reads the watched file again (same environment, same key) and validates it: the settings
    /// as they are now, or why they cannot be used.
    pub fn reload(&self) -> Result<Settings, ConfigError> {
        self.read(false)
    }

    fn read(&self, must_exist: bool) -> Result<Settings, ConfigError> {
        let path = (must_exist || self.watched_path.exists()).then(|| self.watched_path.clone());
        let mut config = match &path {
            Some(p) => parse_file(p)?,
            None => Config::default(),
        };
        if let Some(url) = &self.env_base_url {
            config.runway.base_url = url.clone();
        }
        let origin = path.as_ref().map_or_else(
            || "built-in defaults".to_string(),
            |p| p.display().to_string(),
        );
        let local = match config.backend {
            BackendChoice::Local => true,
            BackendChoice::Runway => false,
            BackendChoice::Auto => self.api_key.is_none(),
        };
        let url_origin = match self.env_base_url {
            Some(_) => "the environment variable RUNWAYML_BASE_URL (or a .env file)".to_string(),
            None => origin.clone(),
        };
        validate(&config, &origin, local)?;
        validate_base_url(&config.runway.base_url, &url_origin)?;
        Ok(Settings {
            config_path: path,
            config,
            ..self.clone()
        })
    }

    /// The backend this run uses.
    pub fn backend(&self) -> BackendChoice {
        match self.config.backend {
            BackendChoice::Auto if self.api_key.is_some() => BackendChoice::Runway,
            BackendChoice::Auto => BackendChoice::Local,
            b => b,
        }
    }
}

/// Parses a config file strictly (unknown keys are errors).
pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses config text; an empty document is the defaults.
pub fn parse_str(text: &str) -> Result<Config, String> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
    {
        return Ok(Config::default());
    }
    serde_yaml_ng::from_str::<Option<Config>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("unknown field") {
                format!("{msg} (check the spelling; every key is listed in docs/settings.md)")
            } else {
                msg
            }
        })
}

fn invalid(origin: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        message: message.into(),
    }
}

/// The API base URL must be an http(s) URL; `origin` says where it came from.
fn validate_base_url(base_url: &str, origin: &str) -> Result<(), ConfigError> {
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

fn validate(c: &Config, origin: &str, local: bool) -> Result<(), ConfigError> {
    validate_defaults(&c.defaults, "defaults", origin, local)?;
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
        )?;
    }
    validate_notify(&c.notify, origin)?;
    validate_ui(&c.ui, origin)?;
    validate_runtime(c, origin)
}

/// Checks `notify:`: a webhook is an http(s) URL, a command names a program, a secret's variable
/// is named only beside a webhook.
fn validate_notify(n: &NotifySection, origin: &str) -> Result<(), ConfigError> {
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
fn validate_ui(u: &UiSection, origin: &str) -> Result<(), ConfigError> {
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
fn validate_defaults(
    d: &Defaults,
    key: &str,
    origin: &str,
    local: bool,
) -> Result<(), ConfigError> {
    let Some(model) = models::find(&d.model) else {
        return Err(invalid(
            origin,
            format!(
                "{key}.model: unknown model {:?}; models that animate images: {}",
                d.model,
                models::image_models().join(", ")
            ),
        ));
    };
    let Some(i2v) = model.rules(Endpoint::ImageToVideo) else {
        return Err(invalid(
            origin,
            format!(
                "{key}.model: {} does not animate images; use one of {}",
                model.id,
                models::image_models().join(", ")
            ),
        ));
    };
    // Ratio and duration are checked against what will render them.
    let (model, i2v) = match (local, models::LOCAL.rules(Endpoint::ImageToVideo)) {
        (true, Some(l)) => (&models::LOCAL, l),
        _ => (model, i2v),
    };
    if d.ratio != "auto" {
        let offered = i2v.ratios.unwrap_or(&[]);
        if !offered.contains(&d.ratio.as_str()) {
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
        && let Some(durations) = i2v.durations
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
        if models::find(id).is_none_or(|m| m.rules(endpoint).is_none()) {
            return Err(invalid(
                origin,
                format!(
                    "{key}.{field}: {id:?} does not make {} videos; use one of {}",
                    endpoint.input(),
                    models::models_for(endpoint).join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the `runway:`, `watch:` and `local:` sections.
fn validate_runtime(c: &Config, origin: &str) -> Result<(), ConfigError> {
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

/// The commented `dropreel.yaml` that `init` writes. It passes the strict check as it is.
pub const TEMPLATE: &str = r#"# dropreel configuration. Every key is optional; delete what you do not change.
# Durations: 250ms, 5s, 20m, 1h. The API key is never stored here: put RUNWAYML_API_SECRET in the
# environment or in a .env file beside this one.

# auto: Runway when an API key is set, else the local renderer | runway | local
backend: auto

defaults:               # every job starts from these; a sidecar <name>.yaml overrides any of them
  model: gen4_turbo     # images: gen4.5, gen4_turbo, veo3, veo3.1, veo3.1_fast, seedance2, ...
  text_model: gen4.5    # text files (.txt, the text is the prompt): gen4.5, veo3, veo3.1, ...
  video_model: aleph2   # videos (.mp4 .mov .webm, restyled): aleph2, seedance2, gemini_omni_flash, ...
  prompt: ""            # the text prompt of images when a sidecar gives none
  # duration: 5         # seconds; when unset: 5, or the nearest the model offers
  ratio: auto           # auto: the offered ratio nearest to the image's own shape; or e.g. "1280:720"
  variants: 1           # takes per input (1-8): <name>-v1.mp4 ...; with seed: S they use S, S+1, ...

# dedupe: true          # false: never reuse an earlier video of the same inputs and settings

# presets:              # a file under inbox/<name>/ (at any depth) gets defaults < preset < sidecar
#   vertical:           # init makes inbox/vertical/; any key of defaults
#     ratio: "720:1280"
#     model: gen4.5
#     prompt: slow vertical reveal

runway:
  base_url: https://api.dev.runwayml.com
  api_version: "2024-11-06"
  max_in_flight: 2      # tasks submitted and not finished; at least your Runway tier's concurrency
  poll_interval: 10s    # longest wait between two status checks of one task (polls follow progress)
  task_timeout: 30m     # a task unfinished after this goes to failed/
  retry_min: 2s         # first wait after a transient fault (doubles each time)
  retry_max: 5m         # longest wait between retries, also while paused on a systemic fault
  retries: 5            # transient faults one job may hit before it goes to failed/
  request_timeout: 60s  # one API call
  uncertain_submit: resubmit  # a create request with no answer: resubmit (noted in result.json) | park

watch:
  settle: 2s            # a file must stay unchanged this long before it is taken
  sidecar_wait: 2s      # then wait this long for its sidecar to appear
  poll: null            # e.g. 2s: poll instead of OS events (network shares)
  rescan: 60s           # full rescan of inbox/ as a safety net
  lease: 60s            # another instance takes over a job not renewed this long
  truncated_after: 10m  # an image still not whole after this long unchanged goes to failed/

local:
  fps: 24

budget:                 # 1 credit = US$0.01; spend is written in .dropreel/spend/
  daily_credits: 0      # 0 = no limit; the calendar day, local time
  monthly_credits: 0    # 0 = no limit
  rates: {}             # credits per second for a model without a known price, e.g. {veo3: 40}

notify:                 # events wait in .dropreel/outbox/ until delivered (retried for 24 h)
  webhook: null         # URL: POST one JSON object per event
  webhook_secret_env: null  # name of an env var; then X-Dropreel-Signature: sha256=<HMAC of the body>
  command: null         # e.g. ["/usr/local/bin/on-reel", "{event}", "{file}"], run without a shell
  events: [delivered, failed, hold, resumed]
  retry_min: 1s         # first wait after a failed delivery (doubles each time)
  retry_max: 10m        # longest wait between two tries of one event

ui:                     # the dashboard of `dropreel watch --ui`
  listen: null          # e.g. 127.0.0.1:7878; set, `watch` serves the dashboard without --ui
  token: null           # needed on any address but loopback; every request must carry it
  max_upload_mb: 2048   # the largest file the page's drop zone takes
  public_origin: null   # behind a proxy: the address the page is opened at, e.g. https://reels.example.com
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_passes_the_strict_check() {
        let c = parse_str(TEMPLATE).unwrap();
        validate(&c, "template", false).unwrap();
        assert_eq!(c.runway.max_in_flight, 2);
        assert_eq!(c.watch.poll, None);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse_str("runway:\n  max_inflight: 3\n").unwrap_err();
        assert!(err.contains("max_inflight"), "{err}");
        let err = parse_str("defautls: {}\n").unwrap_err();
        assert!(err.contains("defautls"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        let c = parse_str("defaults:\n  model: gen4_turbo\n  ratio: \"1280:768\"\n").unwrap();
        let e = validate(&c, "x.yaml", false).unwrap_err().to_string();
        assert!(e.contains("1280:768") && e.contains("1584:672"), "{e}");
        let c = parse_str("defaults:\n  model: aleph2\n").unwrap();
        let e = validate(&c, "x.yaml", false).unwrap_err().to_string();
        assert!(e.contains("does not animate images"), "{e}");
        let c = parse_str("defaults:\n  text_model: gen4_turbo\n").unwrap();
        let e = validate(&c, "x.yaml", false).unwrap_err().to_string();
        assert!(
            e.contains("defaults.text_model") && e.contains("use one of gen4.5, veo3"),
            "{e}"
        );
        let c = parse_str("runway:\n  poll_interval: 0s\n").unwrap();
        assert!(validate(&c, "x", false).is_err());
        assert!(parse_str("watch:\n  settle: soon\n").is_err());
    }

    #[test]
    fn a_public_origin_is_a_scheme_and_a_host() {
        for (text, want) in [
            ("https://reels.example.com", "https://reels.example.com"),
            ("https://Reels.Example.com/", "https://reels.example.com"),
            ("https://reels.example.com:443", "https://reels.example.com"),
            ("http://10.0.0.2:8080", "http://10.0.0.2:8080"),
        ] {
            assert_eq!(web_origin(text).as_deref(), Some(want), "{text}");
        }
        for bad in [
            "reels.example.com",
            "https://reels.example.com/dashboard",
            "https://reels.example.com/?a=1",
            "https://user@reels.example.com",
            "ftp://reels.example.com",
            "null",
        ] {
            assert_eq!(web_origin(bad), None, "{bad}");
        }
        let c = parse_str("ui:\n  public_origin: reels.example.com\n").unwrap();
        let e = validate(&c, "x.yaml", false).unwrap_err().to_string();
        assert!(
            e.contains("ui.public_origin") && e.contains("https://"),
            "{e}"
        );
        let c = parse_str("ui:\n  public_origin: https://reels.example.com\n").unwrap();
        validate(&c, "x.yaml", false).unwrap();
    }

    #[test]
    fn env_precedence_and_key_alias() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "RUNWAY_API_KEY=fromfile\nRUNWAYML_BASE_URL=http://a.example\n",
        )
        .unwrap();
        let mut env = Env::from_pairs([("RUNWAYML_BASE_URL", "http://real.example")]);
        env.add_dotenv(&dir.path().join(".env")).unwrap();
        let s = Settings::load(dir.path(), None, &env).unwrap();
        assert_eq!(s.api_key.as_ref().unwrap().expose(), "fromfile");
        assert_eq!(s.config.runway.base_url, "http://real.example");
        assert_eq!(format!("{:?}", s.api_key), "Some(Secret(***))");
    }

    // See: issue 9, item 7 — a bad URL from the environment was blamed on dropreel.yaml.
    #[test]
    fn a_bad_base_url_from_the_environment_is_reported_as_the_environments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "defaults:\n  prompt: hi\n").unwrap();
        let env = Env::from_pairs([("RUNWAYML_BASE_URL", "api.example.com")]);
        let e = Settings::load(dir.path(), None, &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("environment variable RUNWAYML_BASE_URL") && !e.contains(FILE_NAME),
            "{e}"
        );
        std::fs::write(
            dir.path().join(FILE_NAME),
            "runway:\n  base_url: api.example.com\n",
        )
        .unwrap();
        let e = Settings::load(dir.path(), None, &Env::from_pairs([]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(FILE_NAME) && e.contains("runway.base_url"),
            "{e}"
        );
    }

    #[test]
    fn the_default_poll_interval_is_10_seconds() {
        assert_eq!(
            Config::default().runway.poll_interval,
            Duration::from_secs(10)
        );
        assert_eq!(
            parse_str(TEMPLATE).unwrap().runway.poll_interval,
            Duration::from_secs(10)
        );
    }
}
