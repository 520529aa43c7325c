//! Writing files so that a reader never sees half of one: a temporary file in the same directory, renamed over
//! the target. A bake killed mid-write (kill -9) leaves its `.bake-XXXXXX.tmp` behind; the next bake to write
//! into that directory removes such leftovers at its first write there — only bake's own pattern, only files
//! older than this process that no live writer holds (each writer keeps an exclusive lock on its temporary until
//! the rename).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

const PREFIX: &str = ".bake-";
const SUFFIX: &str = ".tmp";
/// tempfile's default: six random alphanumeric characters between prefix and suffix.
const RANDOM_LEN: usize = 6;

static START: OnceLock<SystemTime> = OnceLock::new();

/// Notes when this process started (called first thing by `cli::main`); temporaries older than that cannot be
/// this process's own.
pub fn mark_process_start() {
    START.get_or_init(SystemTime::now);
}

fn process_start() -> SystemTime {
    *START.get_or_init(SystemTime::now)
}

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
    if first_write_into(dir) {
        remove_stale_temporaries(dir);
    }
    // On any error below, `tmp` is dropped, which deletes it: an ordinary failure leaves nothing behind.
    let mut builder = tempfile::Builder::new();
    builder.prefix(PREFIX).suffix(SUFFIX).rand_bytes(RANDOM_LEN);
    // tempfile creates 0600 files and the mode survives the rename; ask for 0666 so the umask decides, as it does
    // for any other file (0644 under the usual 022).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.as_file().lock()?;
    tmp.write_all(content.as_bytes())?;
    if sync {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether this is the process's first write into `dir`: leftovers are removed then, once per directory, since
/// reading the directory for every file would make a compile that writes many files into one directory
/// quadratic (a 100-image spec writes 302). A leftover is older than this process, so it was there at that first
/// write (one a live writer still held then is the next bake's to remove).
fn first_write_into(dir: &Path) -> bool {
    static CLEANED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let mut cleaned = CLEANED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cleaned.insert(dir.to_path_buf())
}

/// Whether `name` is one of bake's temporaries: `.bake-` + six ASCII letters or digits + `.tmp`.
fn is_bake_temporary(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
        .is_some_and(|mid| {
            mid.len() == RANDOM_LEN && mid.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Removes what killed writers left in `dir`, and returns how many. Best effort: a file that cannot be read,
/// locked or removed is left alone.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let start = process_start();
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !is_bake_temporary(&name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta.modified().is_ok_and(|m| m < start);
        if !meta.is_file() || !old {
            continue;
        }
        // A live writer holds the lock: not ours to remove.
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn aged(path: &Path) {
        std::fs::write(path, "half a lock").unwrap();
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_next_write_removes_what_a_killed_bake_left() {
        mark_process_start();
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".bake-Ab3dE9.tmp");
        aged(&stale);
        // Not bake's pattern, even if old: untouched.
        for other in [
            ".bake-notes.txt",
            ".bake-abc.tmp",
            "other-Ab3dE9.tmp",
            ".bake-Ab3dE9.tmp.keep",
        ] {
            aged(&dir.path().join(other));
        }
        // Bake's pattern but held by a live writer: untouched.
        let held = dir.path().join(".bake-HeLd00.tmp");
        aged(&held);
        let holder = std::fs::File::options().write(true).open(&held).unwrap();
        holder.lock().unwrap();
        // Bake's pattern but younger than this process: untouched.
        let young = dir.path().join(".bake-Young1.tmp");
        std::fs::write(&young, "").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&young)
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(60))
            .unwrap();

        write_atomic(&dir.path().join("web.lock.json"), "{}\n").unwrap();

        assert_eq!(
            names(dir.path()),
            [
                ".bake-Ab3dE9.tmp.keep",
                ".bake-HeLd00.tmp",
                ".bake-Young1.tmp",
                ".bake-abc.tmp",
                ".bake-notes.txt",
                "other-Ab3dE9.tmp",
                "web.lock.json"
            ]
        );
        drop(holder);
    }

    /// The directory is read once per process, at the first write into it, not at every write.
    #[test]
    fn leftovers_are_looked_for_once_per_directory() {
        mark_process_start();
        let dir = tempfile::tempdir().unwrap();
        write_artifact(&dir.path().join("a.json"), "{}\n").unwrap();
        let stale = dir.path().join(".bake-Ab3dE9.tmp");
        aged(&stale);
        write_artifact(&dir.path().join("b.json"), "{}\n").unwrap();
        assert!(stale.exists());
        assert_eq!(remove_stale_temporaries(dir.path()), 1);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails after the temporary was written.
        std::fs::create_dir(dir.path().join("target")).unwrap();
        std::fs::write(dir.path().join("target").join("x"), "").unwrap();
        assert!(write_atomic(&dir.path().join("target"), "content").is_err());
        assert_eq!(names(dir.path()), ["target"]);
    }

    #[test]
    fn temporaries_match_the_pattern_the_cleanup_looks_for() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::Builder::new()
            .prefix(PREFIX)
            .suffix(SUFFIX)
            .rand_bytes(RANDOM_LEN)
            .tempfile_in(dir.path())
            .unwrap();
        let name = tmp.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(is_bake_temporary(&name), "{name}");
    }

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_mode_any_other_file_gets() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let atomic = dir.path().join("atomic");
        super::write_atomic(&atomic, "x").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
        // Under any umask that leaves the group or others something to read, the file is not private.
        if mode(&plain) & 0o044 != 0 {
            assert_ne!(mode(&atomic), 0o600);
        }
    }
}
