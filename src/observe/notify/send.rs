//! The receivers and how one event is delivered to each: the webhook (a signed POST; a 4xx but
//! 408 and 429 rejects the event for good) and the command (no shell, placeholders filled, the
//! event in `DROPREEL_*` variables, secrets removed from its environment, killed after
//! [`super::COMMAND_TIMEOUT`]).

use std::process::Stdio;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};

use super::{ANSWER_KEPT, COMMAND_TIMEOUT, OUTPUT_LOGGED, WEBHOOK_TIMEOUT};
use crate::observe::events::Event;

/// A receiver of events.
#[derive(Clone)]
pub(super) enum Receiver {
    Webhook {
        url: String,
        secret: Option<Arc<Vec<u8>>>,
        http: reqwest::Client,
    },
    Command {
        argv: Vec<String>,
        /// Variables removed from its environment: the API key's, the webhook secret's.
        hidden: Arc<Vec<String>>,
    },
}

impl Receiver {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Receiver::Webhook { .. } => "webhook",
            Receiver::Command { .. } => "command",
        }
    }

    /// Tells the receiver about `event` (`body`: its JSON as written). `Err`: why not.
    pub(super) async fn send(&self, event: &Event, body: &[u8]) -> Result<(), NotSent> {
        match self {
            Receiver::Webhook { url, secret, http } => {
                let mut req = http
                    .post(url)
                    .timeout(WEBHOOK_TIMEOUT)
                    .header("content-type", "application/json")
                    .header("x-dropreel-event", event.event.name())
                    .header("x-dropreel-id", &event.id)
                    .body(body.to_vec());
                if let Some(key) = secret {
                    req = req.header("x-dropreel-signature", signature(key, body));
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) if refuses_for_good(r.status().as_u16()) => {
                        let code = r.status().as_u16();
                        let said = r.text().await.unwrap_or_default();
                        let said =
                            crate::shown(crate::studio::layout::fit_stem(said.trim(), ANSWER_KEPT))
                                .into_owned();
                        Err(NotSent::Refused(if said.is_empty() {
                            format!("the webhook answered HTTP {code}")
                        } else {
                            format!("the webhook answered HTTP {code}: {said}")
                        }))
                    }
                    Ok(r) => Err(NotSent::Retry(format!(
                        "the webhook answered HTTP {}",
                        r.status().as_u16()
                    ))),
                    Err(e) => Err(NotSent::Retry(format!(
                        "the webhook cannot be reached ({e})"
                    ))),
                }
            }
            Receiver::Command { argv, hidden } => run_command(argv, hidden, event, body)
                .await
                .map_err(NotSent::Retry),
        }
    }
}

/// Why an event was not delivered.
#[derive(Debug)]
pub(super) enum NotSent {
    /// A fault that may pass (the receiver down, a 5xx, a timeout, a 408 or 429): tried again.
    Retry(String),
    /// The receiver rejected this event for good (a 4xx): set aside, the next ones go on.
    Refused(String),
}

/// A webhook answer that rejects the event itself, for good: a 4xx but 408 (timeout) and 429
/// (too many requests), which pass.
pub(super) fn refuses_for_good(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// `sha256=<hex HMAC-SHA256 of body under key>`, the `X-Dropreel-Signature` header.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// `{event}`, `{file}`, `{job}` and `{outputs}` (space-separated) in `arg`, replaced; the result
/// stays one argument whatever it holds (no shell sees it). A file whose path starts with `-` is
/// given as `./-…` (the same path), so the program cannot take it for an option.
pub(super) fn fill(arg: &str, event: &Event) -> String {
    let file = event.file.as_deref().unwrap_or("");
    let file = match file.starts_with('-') {
        true => format!("./{file}"),
        false => file.to_string(),
    };
    arg.replace("{event}", event.event.name())
        .replace("{file}", &file)
        .replace("{job}", event.job.as_deref().unwrap_or(""))
        .replace("{outputs}", &event.outputs.join(" "))
}

/// Runs the command for `event`: no shell, the event in `DROPREEL_*` variables and the `hidden`
/// ones removed, killed after [`COMMAND_TIMEOUT`]; its output goes to the log. `Err` unless it
/// exits 0.
async fn run_command(
    argv: &[String],
    hidden: &[String],
    event: &Event,
    body: &[u8],
) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("notify.command is empty")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args.iter().map(|a| fill(a, event)))
        .env("DROPREEL_EVENT", event.event.name())
        .env("DROPREEL_EVENT_ID", &event.id)
        .env("DROPREEL_AT", &event.at)
        .env("DROPREEL_JOB", event.job.as_deref().unwrap_or(""))
        .env("DROPREEL_FILE", event.file.as_deref().unwrap_or(""))
        .env("DROPREEL_OUTPUTS", event.outputs.join("\n"))
        .env("DROPREEL_ERROR", event.error.as_deref().unwrap_or(""))
        .env("DROPREEL_CAUSE", event.cause.as_deref().unwrap_or(""))
        .env(
            "DROPREEL_CREDITS",
            event.credits.map(|c| c.to_string()).unwrap_or_default(),
        )
        .env(
            "DROPREEL_EVENT_JSON",
            String::from_utf8_lossy(body).as_ref(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The API key is the API's, the webhook's secret the webhook's: neither is the command's.
    for var in hidden {
        cmd.env_remove(var);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("notify.command {program:?} cannot be started ({e})"))?;
    let out = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("notify.command {program:?} failed to run ({e})")),
        // Dropping the future drops the child, which kills it.
        Err(_) => {
            return Err(format!(
                "notify.command {program:?} was still running after {} s and was stopped",
                COMMAND_TIMEOUT.as_secs()
            ));
        }
    };
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        if !text.is_empty() {
            let cut = crate::studio::layout::fit_stem(text, OUTPUT_LOGGED);
            tracing::info!(event = %event.id, stream, output = %cut, "notify.command said");
        }
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "notify.command {program:?} ended with {}",
            out.status
        ))
    }
}
