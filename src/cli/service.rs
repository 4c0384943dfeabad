//! `dropreel service install|uninstall`: runs `dropreel watch ROOT` as a user service — a systemd
//! user unit on Linux, a launchd agent on macOS — with absolute paths and a restart on failure, and
//! says how to see its logs. One service per studio: its name carries a hash of the studio's path.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// What installing or removing did, for the user.
#[derive(Debug)]
pub struct Report {
    /// Lines to print.
    pub lines: Vec<String>,
}

/// Why the service cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "dropreel service needs systemd (Linux) or launchd (macOS), and this system has neither; \
         start `dropreel watch {0}` from your system's own service manager instead"
    )]
    Unsupported(String),
    #[error("cannot find your home folder (HOME is not set)")]
    NoHome,
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The service's name for the studio at `root` (absolute): `dropreel-<8 hex of its path's hash>`.
pub fn name_for(root: &Path) -> String {
    let digest = Sha256::digest(root.to_string_lossy().as_bytes());
    let mut hex = String::new();
    for b in &digest[..4] {
        let _ = write!(hex, "{b:02x}");
    }
    format!("dropreel-{hex}")
}

/// Installs and starts the service for `root`, run by the binary at `exe` (both absolute).
pub fn install(root: &Path, exe: &Path) -> Result<Report, ServiceError> {
    let name = name_for(root);
    if cfg!(target_os = "macos") {
        let plist = launchd_dir()?.join(format!("com.dropreel.{name}.plist"));
        let log = home()?.join("Library/Logs").join(format!("{name}.log"));
        write(&plist, &launchd_plist(&name, root, exe, &log))?;
        let mut lines = vec![format!("wrote {}", plist.display())];
        lines.push(run_step(
            "launchctl",
            &["load", "-w", &plist.to_string_lossy()],
        ));
        lines.push(format!("logs: tail -f {}", log.display()));
        return Ok(Report { lines });
    }
    if !cfg!(target_os = "linux") || !on_path("systemctl") {
        return Err(ServiceError::Unsupported(root.display().to_string()));
    }
    let unit = systemd_dir()?.join(format!("{name}.service"));
    write(&unit, &systemd_unit(root, exe))?;
    let mut lines = vec![format!("wrote {}", unit.display())];
    if Path::new("/run/systemd/system").exists() {
        lines.push(run_step("systemctl", &["--user", "daemon-reload"]));
        lines.push(run_step(
            "systemctl",
            &["--user", "enable", "--now", &format!("{name}.service")],
        ));
        lines.push(
            "to keep it running while you are logged out: loginctl enable-linger $USER".into(),
        );
    } else {
        lines.push(format!(
            "systemd is not running here (a container?), so the service was not started; where it \
             runs: systemctl --user daemon-reload && systemctl --user enable --now {name}.service"
        ));
    }
    lines.push(format!("logs: journalctl --user -u {name}.service -f"));
    Ok(Report { lines })
}

/// Stops and removes the service for `root`.
pub fn uninstall(root: &Path) -> Result<Report, ServiceError> {
    let name = name_for(root);
    let (file, stop): (PathBuf, Vec<(&str, Vec<String>)>) = if cfg!(target_os = "macos") {
        let plist = launchd_dir()?.join(format!("com.dropreel.{name}.plist"));
        let args = vec!["unload".into(), "-w".into(), plist.display().to_string()];
        (plist, vec![("launchctl", args)])
    } else if cfg!(target_os = "linux") && on_path("systemctl") {
        let unit = systemd_dir()?.join(format!("{name}.service"));
        let running = Path::new("/run/systemd/system").exists();
        let stop = if running {
            vec![(
                "systemctl",
                vec![
                    "--user".into(),
                    "disable".into(),
                    "--now".into(),
                    format!("{name}.service"),
                ],
            )]
        } else {
            Vec::new()
        };
        (unit, stop)
    } else {
        return Err(ServiceError::Unsupported(root.display().to_string()));
    };
    if !file.exists() {
        return Ok(Report {
            lines: vec![format!(
                "no dropreel service for {} ({} does not exist)",
                root.display(),
                file.display()
            )],
        });
    }
    let mut lines = Vec::new();
    for (cmd, args) in &stop {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lines.push(run_step(cmd, &args));
    }
    std::fs::remove_file(&file).map_err(|source| ServiceError::Remove {
        path: file.clone(),
        source,
    })?;
    lines.push(format!("removed {}", file.display()));
    if cfg!(target_os = "linux") && Path::new("/run/systemd/system").exists() {
        lines.push(run_step("systemctl", &["--user", "daemon-reload"]));
    }
    Ok(Report { lines })
}

/// The systemd user unit: `watch` on the studio, restarted when it fails (exit 2, a bad setting,
/// restarts too; systemd's rate limit stops the loop and the journal says why).
pub fn systemd_unit(root: &Path, exe: &Path) -> String {
    format!(
        "# Written by `dropreel service install`; remove with `dropreel service uninstall`.\n\
         [Unit]\n\
         Description=dropreel watching {root}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart={exe} watch {root_arg}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         # SIGTERM: dropreel stops within 2 s, every job keeping its state.\n\
         TimeoutStopSec=30\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        root = systemd_text(&root.display().to_string()),
        exe = systemd_quote(&exe.display().to_string()),
        root_arg = systemd_quote(&root.display().to_string()),
    )
}

/// The launchd agent: `watch` on the studio at login, restarted unless it exited cleanly.
pub fn launchd_plist(name: &str, root: &Path, exe: &Path, log: &Path) -> String {
    let x = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>com.dropreel.{name}</string>
  <key>ProgramArguments</key>
  <array><string>{exe}</string><string>watch</string><string>{root}</string></array>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
  <key>StandardErrorPath</key><string>{log}</string>
</dict>
</plist>
"#,
        exe = x(&exe.display().to_string()),
        root = x(&root.display().to_string()),
        log = x(&log.display().to_string()),
    )
}

/// A systemd command-line argument in double quotes (spaces, quotes, backslashes and `%`
/// specifiers kept literal).
fn systemd_quote(s: &str) -> String {
    let inner = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{inner}\"")
}

/// Text in a unit's value (no quoting there, only `%` specifiers).
fn systemd_text(s: &str) -> String {
    s.replace('%', "%%").replace('\n', " ")
}

fn home() -> Result<PathBuf, ServiceError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or(ServiceError::NoHome)
}

fn systemd_dir() -> Result<PathBuf, ServiceError> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => home()?.join(".config"),
    };
    Ok(config.join("systemd").join("user"))
}

fn launchd_dir() -> Result<PathBuf, ServiceError> {
    Ok(home()?.join("Library").join("LaunchAgents"))
}

fn write(path: &Path, text: &str) -> Result<(), ServiceError> {
    let err = |source| ServiceError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, text).map_err(err)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Runs one step of the service manager; a line saying what happened.
fn run_step(program: &str, args: &[&str]) -> String {
    let shown = format!("{program} {}", args.join(" "));
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => format!("ran: {shown}"),
        Ok(out) => format!(
            "{shown} failed ({}): {}; run it yourself once the service manager is available",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("cannot run {shown}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_quotes_paths_and_restarts_on_failure() {
        let unit = systemd_unit(
            Path::new("/srv/studio 100%"),
            Path::new("/opt/drop \"reel\"/dropreel"),
        );
        assert!(
            unit.contains(r#"ExecStart="/opt/drop \"reel\"/dropreel" watch "/srv/studio 100%%""#),
            "{unit}"
        );
        assert!(unit.contains("Restart=on-failure"));
        assert!(unit.contains("WantedBy=default.target"));
        let plist = launchd_plist(
            "dropreel-x",
            Path::new("/Users/a/R&D"),
            Path::new("/usr/local/bin/dropreel"),
            Path::new("/Users/a/Library/Logs/dropreel-x.log"),
        );
        assert!(
            plist.contains("<string>/Users/a/R&amp;D</string>"),
            "{plist}"
        );
        assert_eq!(name_for(Path::new("/a")), name_for(Path::new("/a")));
        assert_ne!(name_for(Path::new("/a")), name_for(Path::new("/b")));
    }
}
