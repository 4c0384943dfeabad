//! Writes that survive a crash or a power cut: [`write_atomic`] (temp file, fsync, rename, fsync of
//! the folder), [`copy_durably`], [`move_no_clobber`] (a move that never replaces a file), [`same_file`]
//! and [`sync_dir`]. A leaf: the studio's files and dropreel's own memory are all written through it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `dir/name` atomically and durably. A write that fails (a full disk) leaves no temp file.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let written = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, dir.join(name)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// fsync of a folder, so a rename in it survives a power cut. A no-op where folders cannot be opened.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Copies `src` into `dir/name` durably (temp file, fsync, rename).
pub fn copy_durably(src: &Path, dir: &Path, name: &str) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let copied = fs::copy(src, &tmp)
        .and_then(|_| File::open(&tmp)?.sync_all())
        .and_then(|()| fs::rename(&tmp, dir.join(name)));
    if copied.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    copied
}

/// Moves `from` to `to` unless `to` exists (a hard link cannot replace a file; where links are
/// not possible, a rename after a look).
pub fn move_no_clobber(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => fs::remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if !to.exists() => fs::rename(from, to),
        Err(e) => Err(e),
    }
}

/// Whether `a` and `b` hold the same file: one file under two names (a hard link), or two small
/// files (a sidecar and its copy) with the same bytes.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if (ma.dev(), ma.ino()) == (mb.dev(), mb.ino()) {
            return true;
        }
    }
    const SMALL: u64 = 1 << 20;
    ma.len() == mb.len()
        && ma.len() <= SMALL
        && matches!((fs::read(a), fs::read(b)), (Ok(x), Ok(y)) if x == y)
}
