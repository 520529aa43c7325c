//! Writing files so that a reader never sees half of one: a temporary file in the same directory, renamed over
//! the target.

use std::io::Write;
use std::path::Path;

pub fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".bake-").suffix(".tmp");
    // tempfile creates 0600 files and the mode survives the rename; ask for 0666 so the umask decides, as it does
    // for any other file (0644 under the usual 022).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(content.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

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
