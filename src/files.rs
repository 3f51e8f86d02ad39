//! Files written so that a reader never sees half of one: into a temporary file beside the
//! target, synced, then renamed over it. Used by every stage that writes (the decoded cache,
//! the outputs, checkpoints).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
///
/// # Errors
/// The folder is not writable or the disk is full; `path` is then untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes `path` atomically with `write`, which may seek within the file it is given (the
/// temporary file); on any error the temporary file goes and `path` is untouched.
///
/// # Errors
/// `write` fails, or the folder is not writable, or the disk is full.
pub(crate) fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temporary_beside(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// A hidden temporary name beside `path`, unique to this process.
fn temporary_beside(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.tmp{}", std::process::id()))
}
