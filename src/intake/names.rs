//! What a name in the inbox is: ignored (it belongs to a sync client, the OS or a download in
//! progress), an image, a text, a sidecar, a last keyframe, or something else; the stem it pairs by; whether an open error
//! means its writer still holds it.

use unicode_normalization::UnicodeNormalization as _;

/// What a name in the inbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    /// A `.txt`: its text is the prompt of a text-to-video job.
    Text,
    /// A video (`.mp4 .mov .webm`): a video-to-video job.
    Video,
    Sidecar,
    /// `<stem>.last.<image ext>`: the last keyframe of `<stem>`'s image, never a job of its own.
    LastFrame,
    Other,
}

impl Kind {
    /// A file that is a job of its own.
    pub fn is_job(self) -> bool {
        matches!(self, Kind::Image | Kind::Text | Kind::Video)
    }
}

/// Names that belong to other programs (sync clients, OS metadata, downloads in progress): never
/// touched. Matched case-insensitively.
pub fn is_ignored(name: &str) -> bool {
    let lower = name.to_lowercase();
    lower.starts_with('.')
        || lower.starts_with("~$")
        || lower == "thumbs.db"
        || lower == "desktop.ini"
        || [
            ".tmp",
            ".part",
            ".partial",
            ".crdownload",
            ".download",
            ".!sync",
        ]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// A path under inbox/ that is never looked at: a name of another program (see [`is_ignored`]),
/// or anything inside a dot folder.
pub fn ignored_path(rel: &str) -> bool {
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if (last && is_ignored(part)) || (!last && part.starts_with('.')) {
            return true;
        }
    }
    false
}

/// Classifies a (not ignored) name by its extension.
pub fn kind_of(name: &str) -> Kind {
    let lower = name.to_lowercase();
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        e if crate::media::IMAGE_EXTENSIONS.contains(&e) && stem_of(&lower).ends_with(".last") => {
            Kind::LastFrame
        }
        e if crate::media::IMAGE_EXTENSIONS.contains(&e) => Kind::Image,
        "yaml" | "yml" => Kind::Sidecar,
        "txt" => Kind::Text,
        e if crate::media::video::VIDEO_EXTENSIONS.contains(&e) => Kind::Video,
        _ => Kind::Other,
    }
}

pub(super) fn stem_of(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

/// The key a stem pairs by: its NFC form, so `Café` typed on a Mac (decomposed) and elsewhere
/// (composed) are one stem.
pub fn stem_key(name: &str) -> String {
    stem_of(name).nfc().collect()
}

/// The stem key of the image a last keyframe belongs to: `cat.last.png` → `cat`.
pub fn last_frame_key(name: &str) -> String {
    let stem = stem_of(name);
    let cut = stem.len().saturating_sub(".last".len());
    let owner = if stem.is_char_boundary(cut) && stem[cut..].eq_ignore_ascii_case(".last") {
        &stem[..cut]
    } else {
        stem
    };
    owner.nfc().collect()
}

/// A sharing or lock violation: another program has the file open for writing (Windows, SMB).
pub fn held_by_writer(e: &std::io::Error) -> bool {
    cfg!(windows) && matches!(e.raw_os_error(), Some(32 | 33))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules() {
        for n in [
            ".DS_Store",
            "._cat.png",
            ".syncthing.cat.png.tmp",
            ".cat.png.Xa1b2c",
            "Thumbs.db",
            "DESKTOP.INI",
            "~$doc.png",
            "cat.png.tmp",
            "cat.PART",
            "cat.partial",
            "cat.crdownload",
            "cat.download",
            "cat.png.!sync",
        ] {
            assert!(is_ignored(n), "{n} must be ignored");
        }
        for n in ["cat.png", "cat.yaml", "part.png", "tmp.jpg"] {
            assert!(!is_ignored(n), "{n} must not be ignored");
        }
        assert_eq!(kind_of("A.JPEG"), Kind::Image);
        assert_eq!(kind_of("a.yml"), Kind::Sidecar);
        assert_eq!(kind_of("notes.txt"), Kind::Text);
        assert_eq!(kind_of("cat.last.png"), Kind::LastFrame);
        assert_eq!(kind_of("cat.LAST.JPG"), Kind::LastFrame);
        assert_eq!(kind_of("last.png"), Kind::Image);
        assert_eq!(last_frame_key("cat.LAST.JPG"), "cat");
        assert_eq!(last_frame_key("a.b.last.webp"), "a.b");
        assert_eq!(kind_of("notes.pdf"), Kind::Other);
        assert_eq!(kind_of("clip.MOV"), Kind::Video);
    }
}
