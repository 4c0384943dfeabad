//! The prices Runway reported, learnt: `ROOT/.dropreel/prices.json` keeps, per model, the credits
//! per second of its latest create answer (`estimatedCost.credits` ÷ the task's seconds) and the day
//! it was reported. The budget and `estimate` price a model by it when `budget.rates` names none,
//! before the catalog (see [`super::spend::rate`]). Written atomically, and only when a price
//! changes or a day has passed; a file that cannot be read counts as empty (prices are learnt
//! again). Two instances learning at once may each keep the other's latest price out until the
//! next create request: a price learnt is a hint, the spend log's reconciliation is the truth.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The file under `ROOT/.dropreel/`.
pub const FILE: &str = "prices.json";

/// A model's price as Runway last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learnt {
    /// Credits per output second.
    pub credits_per_second: f64,
    /// The day it was reported (local time, `2026-12-08`).
    pub on: String,
}

/// Every price learnt, by model id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Prices(pub BTreeMap<String, Learnt>);

impl Prices {
    /// The prices learnt in the studio at `root` (none when the file is missing or unreadable).
    pub fn read(root: &Path) -> Prices {
        let path = dir(root).join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::debug!(file = %path.display(), error = %e, "the learnt prices cannot be read; learning them again");
                Prices::default()
            }),
            Err(_) => Prices::default(),
        }
    }

    /// `model`'s price, if one was learnt.
    pub fn get(&self, model: &str) -> Option<&Learnt> {
        self.0.get(model)
    }
}

fn dir(root: &Path) -> PathBuf {
    root.join(super::DIR)
}

/// The studio's learnt prices, as one process keeps them: read at start, updated at each create
/// answer, written when they change.
#[derive(Debug)]
pub struct Book {
    dir: PathBuf,
    prices: Mutex<Prices>,
}

impl Book {
    /// The prices learnt in the studio at `root` so far.
    pub fn new(root: &Path) -> Book {
        Book {
            dir: dir(root),
            prices: Mutex::new(Prices::read(root)),
        }
    }

    /// What is known now.
    pub fn prices(&self) -> Prices {
        self.prices.lock().expect("prices lock").clone()
    }

    /// Learns `model`'s price from a create answer: `estimated` credits for `seconds` of video,
    /// reported `today`. Writes the file when the price changed or was reported on another day.
    pub fn learn(&self, model: &str, estimated: f64, seconds: u32, today: &str) -> io::Result<()> {
        if seconds == 0 || !estimated.is_finite() || estimated < 0.0 {
            return Ok(());
        }
        let learnt = Learnt {
            credits_per_second: estimated / f64::from(seconds),
            on: today.to_string(),
        };
        let mut prices = self.prices.lock().expect("prices lock");
        if prices.get(model) == Some(&learnt) {
            return Ok(());
        }
        // What other instances learnt meanwhile is kept.
        let root = self.dir.parent().unwrap_or(&self.dir);
        let mut on_disk = Prices::read(root);
        on_disk.0.insert(model.to_string(), learnt);
        std::fs::create_dir_all(&self.dir)?;
        let mut bytes = serde_json::to_vec_pretty(&on_disk).map_err(io::Error::other)?;
        bytes.push(b'\n');
        crate::studio::durable::write_atomic(&self.dir, FILE, &bytes)?;
        *prices = on_disk;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_is_learnt_written_once_a_day_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let book = Book::new(d.path());
        assert_eq!(book.prices(), Prices::default());
        book.learn("aleph2", 60.0, 4, "2026-12-08").unwrap();
        let file = d.path().join(".dropreel/prices.json");
        let written = std::fs::metadata(&file).unwrap().modified().unwrap();
        // The same price the same day: not written again.
        book.learn("aleph2", 60.0, 4, "2026-12-08").unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            written
        );
        // No seconds: nothing to learn from.
        book.learn("gen4.5", 10.0, 0, "2026-12-08").unwrap();
        let read = Prices::read(d.path());
        assert_eq!(read.0.len(), 1);
        assert_eq!(read.get("aleph2").unwrap().credits_per_second, 15.0);
        assert_eq!(read.get("aleph2").unwrap().on, "2026-12-08");
        // A damaged file reads as empty.
        std::fs::write(&file, b"{not json").unwrap();
        assert_eq!(Prices::read(d.path()), Prices::default());
    }
}
