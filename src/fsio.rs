//! Writing files so that a reader never sees half of one: a temporary file in the same directory, renamed over
//! the target.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `content` atomically and durably (flushed to disk before the rename): for sources such
/// as the lock and formatted specs.
pub fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    replace(path, content, true)
}

/// Writes one of `bake compile`'s artifacts: atomically like [`write_atomic`] (a reader sees the old file or the
/// new one), but without waiting for the disk (`fsync`), and not at all when the file already holds `content`.
/// Artifacts are derived from the spec and its lock: after a crash `bake compile` writes them again, while a
/// flush per file costs more than the whole compile (a 100-image spec writes 302 files). Returns whether it
/// wrote.
pub fn write_artifact(path: &Path, content: &str) -> std::io::Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(false);
    }
    replace(path, content, false)?;
    Ok(true)
}

fn replace(path: &Path, content: &str, sync: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".bake-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(content.as_bytes())?;
    if sync {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
