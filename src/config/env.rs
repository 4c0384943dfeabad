//! The environment as dropreel sees it: the API key's variables (real ones first, then `.env`
//! files), held as a [`Secret`] that never shows itself.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::ConfigError;

/// The environment variables that hold the API key (the first wins): never passed on to a
/// notification command.
pub const API_KEY_VARS: [&str; 2] = ["RUNWAYML_API_SECRET", "RUNWAY_API_KEY"];

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

    pub(super) fn add_dotenv(&mut self, path: &Path) -> Result<(), ConfigError> {
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
