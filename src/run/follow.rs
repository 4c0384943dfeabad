//! `dropreel.yaml` as a running `watch` follows it: one `stat` a second; an edit of `defaults` or of
//! the intake's timings applies to the next files, what needs a restart is said once, and a bad
//! edit keeps the running settings with one warning.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Settings;

/// How often the config file's stamp is looked at (one `stat`).
const CONFIG_LOOK: Duration = Duration::from_secs(1);

/// `dropreel.yaml` as the running pipeline follows it: edits to `defaults` and to the intake's
/// timings (`watch.settle`, `sidecar_wait`, `rescan`, `truncated_after`) apply to the next files;
/// the rest (backend, `runway:`, `local:`, `budget:`, `notify:`, `ui:`, `watch.poll`, `watch.lease`, `models:`) needs a restart, which is
/// said once. A bad edit keeps the running settings, with one warning.
pub struct ConfigFile {
    /// The file's (length, mtime) when last looked at.
    stamp: Option<(u64, Option<std::time::SystemTime>)>,
    pub next_look: Instant,
    /// Settings loaded so far (1 = at start).
    pub version: u32,
    /// Why the file as it is now cannot be used, if it cannot.
    pub error: Option<String>,
    pub error_changed: bool,
}

impl ConfigFile {
    /// Follows the file when `follow` (a `watch`); else (a `run`, which is short and keeps the
    /// settings it started with) the first look is a year away, that is never.
    pub fn new(settings: &Settings, follow: bool) -> ConfigFile {
        let first = if follow {
            CONFIG_LOOK
        } else {
            Duration::from_secs(365 * 24 * 3600)
        };
        ConfigFile {
            stamp: Self::stamp_of(&settings.watched_path),
            next_look: Instant::now() + first,
            version: 1,
            error: None,
            error_changed: false,
        }
    }

    fn stamp_of(path: &std::path::Path) -> Option<(u64, Option<std::time::SystemTime>)> {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    }

    /// Looks at the file; the settings to run with from now on when it changed and is good.
    pub fn look(&mut self, running: &Settings) -> Option<Settings> {
        self.next_look = Instant::now() + CONFIG_LOOK;
        let stamp = Self::stamp_of(&running.watched_path);
        if stamp == self.stamp {
            return None;
        }
        self.stamp = stamp;
        let file = running.watched_path.display().to_string();
        let mut new = match running.reload() {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!(
                    "{file} changed but cannot be used, so the running settings stay: {e}"
                );
                self.error = Some(e.to_string());
                self.error_changed = true;
                return None;
            }
        };
        let (old, next) = (&running.config, &mut new.config);
        let mut restart = Vec::new();
        if next.backend != old.backend {
            restart.push("backend");
        }
        if next.runway != old.runway {
            restart.push("runway:");
        }
        if next.local != old.local {
            restart.push("local:");
        }
        // The budget is kept by the backend that counts each request.
        if next.budget != old.budget {
            restart.push("budget:");
        }
        if next.notify != old.notify {
            restart.push("notify:");
        }
        if next.ui != old.ui {
            restart.push("ui:");
        }
        if next.watch.poll != old.watch.poll || next.watch.lease != old.watch.lease {
            restart.push("watch.poll / watch.lease");
        }
        // The backend checks, sends and prices jobs by the catalog it started with.
        if next.models != old.models {
            restart.push("models:");
        }
        // What needs a restart keeps its running value until then.
        next.backend = old.backend;
        next.runway = old.runway.clone();
        next.local = old.local.clone();
        next.budget = old.budget.clone();
        next.notify = old.notify.clone();
        next.ui = old.ui.clone();
        next.watch.poll = old.watch.poll;
        next.watch.lease = old.watch.lease;
        next.models = old.models.clone();
        new.models = running.models.clone();
        if !restart.is_empty() {
            tracing::warn!(
                "{file} changed: {} take effect only when dropreel is restarted",
                restart.join(", ")
            );
        }
        if *next == *old {
            if self.error.take().is_some() {
                self.error_changed = true;
            }
            return None;
        }
        tracing::info!("{file} changed: the next files use the new defaults and watch timings");
        self.version += 1;
        self.error = None;
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    // See: issue 23, item 2 (the backend keeps the catalog it started with).
    #[test]
    fn models_edited_while_watching_wait_for_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dropreel.yaml");
        std::fs::write(&path, "models:\n  kling3.0_pro: {credits_per_second: 20}\n").unwrap();
        let running = Settings::load(dir.path(), None, &Env::default()).unwrap();
        let mut file = ConfigFile::new(&running, true);
        // A different size, so the stamp changes whatever the clock's resolution.
        std::fs::write(
            &path,
            "defaults: {prompt: a new prompt}\nmodels:\n  kling3.0_pro: {credits_per_second: 300}\n",
        )
        .unwrap();
        let new = file.look(&running).expect("the new defaults apply");
        assert_eq!(new.config.defaults.prompt, "a new prompt");
        assert_eq!(new.config.models, running.config.models);
        let rate = |s: &Settings| s.models.find("kling3.0_pro").unwrap().credits_per_second;
        assert_eq!(rate(&new), Some(20), "models: waits for a restart");
    }
}
