//! Pairing: an image (or text, or video) with its sidecar and its last keyframe by stem, when a
//! pair is ready, and the companions that stay alone (said once, with why).

use std::collections::HashSet;

use tokio::time::Instant;
use unicode_normalization::UnicodeNormalization as _;

use super::{Inbox, Kind, Ready, Seen, kind_of, last_frame_key, stem_key, stem_of};

impl Inbox {
    /// Whether other images of `image`'s stem still wait in the inbox, so its sidecar must be
    /// copied into the job rather than moved (it applies to each of them).
    pub fn shares_sidecar(&self, image: &str) -> bool {
        self.images
            .get(&stem_key(image))
            .is_some_and(|v| v.iter().any(|n| n != image))
    }

    /// The sidecar for `image`, if one is known: `<stem>.yaml` first, then `<stem>.yml`.
    pub(super) fn sidecar_for(&self, image: &str) -> Option<(&String, &Seen)> {
        let names = self.sidecars.get(&stem_key(image))?;
        let pick = names
            .iter()
            .find(|n| n.to_lowercase().ends_with(".yaml"))
            .or_else(|| names.first())?;
        self.files.get_key_value(pick)
    }

    /// The last keyframe of `image`, if one is known (only images have one).
    pub(super) fn last_for(&self, image: &str) -> Option<(&String, &Seen)> {
        if kind_of(image) != Kind::Image {
            return None;
        }
        let names = self.lasts.get(&stem_key(image))?;
        self.files.get_key_value(names.first()?)
    }

    /// When `image` becomes ready if nothing changes: settled, and so are its companions (sidecar,
    /// last keyframe); without any, it also gives a late one `sidecar_wait` to arrive.
    pub(super) fn ready_at(&self, image: &str, seen: &Seen) -> Instant {
        let settled = |s: &Seen| s.since + self.settle.saturating_sub(s.head_start);
        let companions: Vec<&Seen> = [self.sidecar_for(image), self.last_for(image)]
            .into_iter()
            .flatten()
            .map(|(_, s)| s)
            .collect();
        let at = if companions.is_empty() {
            seen.since + (self.settle + self.sidecar_wait).saturating_sub(seen.head_start)
        } else {
            companions
                .into_iter()
                .map(settled)
                .fold(settled(seen), Instant::max)
        };
        seen.hold_until.map_or(at, |h| at.max(h))
    }

    /// The sidecars and last keyframes not told yet that have no file of their stem in their
    /// folder to pair with, and no near miss either (`dog.png.yaml`, `cat.yaml` beside `Cat.png`:
    /// [`Inbox::explain_unpaired`] says why that one does not pair).
    pub(super) fn lone(&self) -> Vec<(&String, &Seen)> {
        let mut out: Vec<(&String, &Seen)> = self
            .files
            .iter()
            .filter(|(n, _)| !self.reported.contains(*n))
            .filter(|(n, s)| match s.kind {
                Kind::Sidecar => {
                    !self.images.contains_key(&stem_key(n)) && !self.files.contains_key(stem_of(n))
                }
                Kind::LastFrame => !self
                    .images
                    .get(&last_frame_key(n))
                    .is_some_and(|v| v.iter().any(|i| kind_of(i) == Kind::Image)),
                _ => false,
            })
            .collect();
        if out.iter().any(|(_, s)| s.kind == Kind::Sidecar) {
            let folded: HashSet<String> = self.images.keys().map(|k| k.to_lowercase()).collect();
            out.retain(|(n, s)| {
                s.kind != Kind::Sidecar || !folded.contains(&stem_key(n).to_lowercase())
            });
        }
        out
    }

    /// When a lone sidecar or last keyframe is told: once it settled and the pairing wait passed.
    pub(super) fn lone_due(&self, seen: &Seen) -> Instant {
        seen.since + (self.settle + self.sidecar_wait).saturating_sub(seen.head_start)
    }

    /// Says once of each lone sidecar and last keyframe whose pairing wait passed that it waits,
    /// and for what. It stays in inbox/ untouched.
    pub(super) fn tell_lone(&mut self, now: Instant) {
        let due: Vec<(String, Kind)> = self
            .lone()
            .into_iter()
            .filter(|(_, s)| self.lone_due(s) <= now)
            .map(|(n, s)| (n.clone(), s.kind))
            .collect();
        if due.is_empty() {
            return;
        }
        for (name, kind) in due {
            let file = name.rsplit('/').next().unwrap_or(&name);
            let why = if kind == Kind::LastFrame {
                let stem = last_frame_key(file);
                format!(
                    "it is a last keyframe and waits for {stem}.<image ext> beside it (e.g. {stem}.png); \
                     it is never a job of its own"
                )
            } else {
                let stem = stem_of(file);
                format!(
                    "it is a sidecar and waits for {stem}.<image ext> beside it (e.g. {stem}.png), or for \
                     {stem}.txt or a video of that name; it is never a job of its own"
                )
            };
            self.report(&name, &why);
        }
        self.cache.set(None);
    }

    /// Warns once about sidecars that look meant for `r`'s image but will not apply to it.
    pub(super) fn explain_unpaired(&mut self, r: &Ready) {
        // Indexes are by path under inbox/ (a sidecar pairs within its folder).
        let rel = r.source.rel();
        let key = stem_key(&rel);
        let mut notes: Vec<(String, String)> = Vec::new();
        if let (Some(used), Some(names)) = (&r.sidecar, self.sidecars.get(&key)) {
            for other in names.iter().filter(|n| *n != used) {
                notes.push((
                    other.clone(),
                    format!(
                        "{used} is the sidecar of {}; delete one of the two",
                        r.source.name
                    ),
                ));
            }
        }
        // `dog.png.yaml`: named after the whole file name.
        if let Some(names) = self.sidecars.get(&rel.nfc().collect::<String>()) {
            for n in names {
                notes.push((
                    n.clone(),
                    format!(
                        "a sidecar is named after the image without its extension: rename it to {}.{}",
                        stem_of(&r.source.name),
                        n.rsplit_once('.').map_or("yaml", |(_, e)| e)
                    ),
                ));
            }
        }
        // `Cat.png` + `cat.yaml`: the same stem but for letter case.
        if r.sidecar.is_none()
            && let Some(names) = self.sidecars_folded.get(&key.to_lowercase())
        {
            for n in names.iter().filter(|n| stem_key(n) != key) {
                notes.push((
                    n.clone(),
                    format!(
                        "it differs from {} in letter case only, so it does not pair; rename it to {}.{}",
                        r.source.name,
                        stem_of(&r.source.name),
                        n.rsplit_once('.').map_or("yaml", |(_, e)| e)
                    ),
                ));
            }
        }
        for (name, why) in notes {
            self.report(&name, &why);
        }
    }
}
