//! A file's identity under `inbox/`: the folder it was dropped in (relative to `inbox/`), the preset
//! that folder names, and its name. Intake hands sources out, the spool claims them, records and
//! reports keep them, so a file's folder travels with it to `done/` and `failed/`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// The folder under `inbox/`, `/`-separated; empty for `inbox/` itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub folder: String,
    /// The preset the folder names, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The file name (kept as `image` in `job.json`, as before sources had folders).
    #[serde(rename = "image")]
    pub name: String,
}

impl Source {
    /// A file in `inbox/` itself.
    pub fn in_inbox(name: &str) -> Source {
        Source {
            folder: String::new(),
            preset: None,
            name: name.to_string(),
        }
    }

    /// The file at `rel`, a `/`-separated path relative to `inbox/`.
    pub fn at(rel: &str) -> Source {
        match rel.rsplit_once('/') {
            Some((folder, name)) => Source {
                folder: folder.to_string(),
                preset: None,
                name: name.to_string(),
            },
            None => Source::in_inbox(rel),
        }
    }

    /// Its `/`-separated path relative to `inbox/`: how intake names it.
    pub fn rel(&self) -> String {
        self.to_string()
    }

    /// Its path relative to `inbox/` (and to `done/` and `failed/`).
    pub fn rel_path(&self) -> PathBuf {
        let mut p = PathBuf::new();
        for part in self.folder.split('/').filter(|p| !p.is_empty()) {
            p.push(part);
        }
        p.push(&self.name);
        p
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.folder.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.folder, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_reads_as_its_path_and_keeps_the_old_json_name() {
        let s = Source::in_inbox("a.png");
        assert_eq!(s.to_string(), "a.png");
        assert_eq!(s.rel_path(), PathBuf::from("a.png"));
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"image":"a.png"}"#);
        let nested = Source {
            folder: "social/9x16".into(),
            preset: Some("social".into()),
            name: "b.jpg".into(),
        };
        assert_eq!(nested.to_string(), "social/9x16/b.jpg");
        assert_eq!(
            nested.rel_path(),
            PathBuf::from("social").join("9x16").join("b.jpg")
        );
        let back: Source = serde_json::from_str(&serde_json::to_string(&nested).unwrap()).unwrap();
        assert_eq!(back, nested);
    }
}
