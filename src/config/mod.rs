//! `dropreel.yaml`: the schema with its defaults, the environment (`RUNWAYML_API_SECRET`, `.env`
//! files), and validation at start, so a bad setting stops dropreel with one clear message before it
//! touches any file.
//!
//! Here: [`Settings`] (everything a run needs, resolved), parsing and the errors; `schema` (each
//! section and its defaults), `env` (the API key and `.env` files), `validate` (every key checked)
//! and `template.yaml` (the commented file `init` writes).

use std::path::{Path, PathBuf};

mod env;
mod schema;
mod validate;

pub use env::{API_KEY_VARS, Env, Secret};
pub use schema::{
    BackendChoice, BudgetSection, Config, Defaults, IN_FLIGHT_FALLBACK, InFlight, LocalSection,
    MAX_VARIANTS, NotifySection, Preset, RunwaySection, UI_DEFAULT_LISTEN, UiSection,
    UncertainSubmit, WatchSection, parse_listen, web_origin,
};
use validate::{validate, validate_base_url};

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

/// Everything a run needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    /// Where the config came from (for messages), or `None` for built-in defaults.
    pub config_path: Option<PathBuf>,
    pub config: Config,
    /// The model catalog: Runway's, with the config's `models:` merged in.
    pub models: std::sync::Arc<crate::job::models::Models>,
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
            models: crate::job::models::Models::built_in(),
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
        let models = validate(&config, &origin, local)?;
        validate_base_url(&config.runway.base_url, &url_origin)?;
        if config.runway.organization_every.is_zero() {
            return Err(validate::invalid(
                &origin,
                "runway.organization_every must be longer than 0s",
            ));
        }
        Ok(Settings {
            config_path: path,
            config,
            models,
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
        .map(|mut c| {
            c.runway.max_in_flight = c.runway.in_flight.fallback();
            c
        })
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("unknown field") {
                format!("{msg} (check the spelling; every key is listed in docs/settings.md)")
            } else {
                msg
            }
        })
}

/// The commented `dropreel.yaml` that `init` writes. It passes the strict check as it is.
pub const TEMPLATE: &str = include_str!("template.yaml");

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn template_passes_the_strict_check() {
        let c = parse_str(TEMPLATE).unwrap();
        validate(&c, "template", false).unwrap();
        assert_eq!(c.runway.max_in_flight, 2);
        assert_eq!(c.watch.poll, None);
    }

    // See: issue 23, item 4 — `auto` follows Runway's limits per model (2 until it answers).
    #[test]
    fn max_in_flight_is_auto_by_default_or_a_number() {
        let c = parse_str("runway:\n  retries: 3\n").unwrap();
        assert_eq!(c.runway.in_flight, InFlight::Auto);
        assert_eq!(c.runway.max_in_flight, IN_FLIGHT_FALLBACK);
        assert_eq!(c.runway.organization_every, Duration::from_secs(300));
        let c = parse_str("runway:\n  max_in_flight: auto\n  organization_every: 1m\n").unwrap();
        assert_eq!(c.runway.in_flight, InFlight::Auto);
        assert_eq!(c.runway.organization_every, Duration::from_secs(60));
        let c = parse_str("runway:\n  max_in_flight: 5\n").unwrap();
        assert_eq!(c.runway.in_flight, InFlight::Fixed(5));
        assert_eq!(c.runway.max_in_flight, 5);
        let c = parse_str("runway:\n  max_in_flight: 0\n").unwrap();
        let e = validate(&c, "x", false).unwrap_err().to_string();
        assert!(e.contains("max_in_flight"), "{e}");
        let e = parse_str("runway:\n  max_in_flight: lots\n").unwrap_err();
        assert!(e.contains("neither `auto` nor a number"), "{e}");
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
            e.contains("defaults.text_model") && e.contains("use one of") && e.contains("gen4.5"),
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
