//! What a folder named as a studio root is: a studio, an empty folder that may become one, or
//! something dropreel leaves alone ([`check_root`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::studio::layout::{DONE, FAILED, INBOX, OWN_DIR, PROCESSING};

/// Why a folder cannot be used as a studio root. Only `init` (and `run --examples`, whose studio
/// is the README's first step) creates one: a typo or an unmounted share must never become a new,
/// empty studio, and a folder of someone's files must never get four folders made in it.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("no studio at {}", .0.display())]
    Missing(PathBuf),
    #[error("{} is a file, not a studio folder", .0.display())]
    NotAFolder(PathBuf),
    #[error(
        "{} is not a dropreel studio (it has no dropreel.yaml and no inbox/) and is not empty, so \
         dropreel leaves it alone",
        .0.display()
    )]
    NotAStudio(PathBuf),
    #[error("cannot read {}: {}", .0.display(), .1)]
    Unreadable(PathBuf, #[source] io::Error),
}

impl RootError {
    /// The error with what to do, naming the command as the user runs it (`dropreel`, or
    /// `cargo run --release --` from a checkout).
    pub fn explain(&self, command: &str) -> String {
        match self {
            RootError::Missing(root) => format!(
                "{self} — run `{command} init {0}` to create one",
                root.display()
            ),
            RootError::NotAStudio(root) => format!(
                "{self} — run `{command} init {0}` to make it a studio, or give the path of your \
                 studio (the folder holding inbox/ and dropreel.yaml)",
                root.display()
            ),
            RootError::NotAFolder(_) | RootError::Unreadable(..) => self.to_string(),
        }
    }
}

impl From<RootError> for io::Error {
    fn from(e: RootError) -> io::Error {
        let kind = match &e {
            RootError::Missing(_) => io::ErrorKind::NotFound,
            RootError::NotAFolder(_) => io::ErrorKind::NotADirectory,
            RootError::NotAStudio(_) => io::ErrorKind::InvalidInput,
            RootError::Unreadable(_, e) => e.kind(),
        };
        io::Error::new(kind, e.explain("dropreel"))
    }
}

/// What a folder named as a studio root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// It has `dropreel.yaml` or one of the studio's folders.
    Studio,
    /// It exists and holds nothing (or only what an OS leaves: `.DS_Store`, `Thumbs.db`, …).
    Empty,
}

/// Whether `root` can be used as a studio: an existing studio, or an empty folder (made into one).
pub fn check_root(root: &Path) -> Result<RootKind, RootError> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(RootError::NotAFolder(root.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RootError::Missing(root.to_path_buf()));
        }
        Err(e) => return Err(RootError::Unreadable(root.to_path_buf(), e)),
    }
    let marks = [
        crate::config::FILE_NAME,
        INBOX,
        PROCESSING,
        DONE,
        FAILED,
        OWN_DIR,
    ];
    if marks.iter().any(|m| root.join(m).exists()) {
        return Ok(RootKind::Studio);
    }
    let entries = fs::read_dir(root).map_err(|e| RootError::Unreadable(root.to_path_buf(), e))?;
    let os_litter = |name: &str| {
        let lower = name.to_lowercase();
        lower.starts_with('.') || lower == "thumbs.db" || lower == "desktop.ini"
    };
    let empty = entries
        .filter_map(Result::ok)
        .all(|e| os_litter(&e.file_name().to_string_lossy()));
    if empty {
        Ok(RootKind::Empty)
    } else {
        Err(RootError::NotAStudio(root.to_path_buf()))
    }
}
