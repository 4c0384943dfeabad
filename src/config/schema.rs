//! The schema of `dropreel.yaml`: each section as a serde type with its defaults (unknown keys are
//! refused), and the small parsers of values the schema holds (a web origin, a listen address).

use std::time::Duration;

use serde::Deserialize;

use super::DEFAULT_BASE_URL;

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
    /// A model's `resolution` (`1080p`), for the models that take one; `None` = the model's own.
    pub resolution: Option<String>,
    /// A model's `outputFormat` (`prores`), for the models that take one; `None` = MP4.
    pub output_format: Option<String>,
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
            resolution: None,
            output_format: None,
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
    pub resolution: Option<String>,
    pub output_format: Option<String>,
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
            resolution: self.resolution.clone().or_else(|| d.resolution.clone()),
            output_format: self
                .output_format
                .clone()
                .or_else(|| d.output_format.clone()),
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
    /// `max_in_flight` as written: `auto` (the default) or a number.
    #[serde(rename = "max_in_flight")]
    pub in_flight: InFlight,
    /// Remote tasks submitted and not yet finished: the number written, or under `auto` the cap
    /// used until Runway tells the organisation's limits (and whenever it does not answer).
    /// Derived from `in_flight` when the file is parsed.
    #[serde(skip)]
    pub max_in_flight: usize,
    /// How often the organisation's balance and limits are asked for (`GET /v1/organization`).
    #[serde(with = "humantime_serde")]
    pub organization_every: Duration,
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

/// `runway.max_in_flight`: `auto`, or a fixed number of tasks in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InFlight {
    /// Each model's own concurrency limit, as Runway reports it for the organisation.
    #[default]
    Auto,
    Fixed(usize),
}

/// The in-flight cap under `auto` until Runway answers (or when it does not): today's default.
pub const IN_FLIGHT_FALLBACK: usize = 2;

impl InFlight {
    /// The cap used while nothing is known of the organisation.
    pub fn fallback(self) -> usize {
        match self {
            InFlight::Auto => IN_FLIGHT_FALLBACK,
            InFlight::Fixed(n) => n,
        }
    }
}

impl<'de> Deserialize<'de> for InFlight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(usize),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(InFlight::Fixed(n)),
            Raw::S(s) if s == "auto" => Ok(InFlight::Auto),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "max_in_flight: {s:?} is neither `auto` nor a number"
            ))),
        }
    }
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
            in_flight: InFlight::Auto,
            max_in_flight: IN_FLIGHT_FALLBACK,
            organization_every: Duration::from_secs(5 * 60),
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
    /// Models added to the catalog or changed in it, each in the catalog's own form (see
    /// [`crate::job::models`]); checked at start.
    pub models: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
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
