//! The output folder, replaced as a whole: a run's files are written into a staging folder
//! beside it and swapped in at once, so after a full disk, a signal or a crash the folder holds
//! either the previous run's files or the new run's, never a mix.
//!
//! On Linux the swap is one `renameat2(RENAME_EXCHANGE)`; elsewhere two renames, and an
//! interrupted swap is repaired by the next run. Files in the folder that facenmf did not write
//! (a `.gitkeep`, notes) are carried into the new folder as hard links (copies where links
//! fail); a folder inside it would be lost, so such an output folder is refused before any
//! work.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Names a staging or retired folder beside `dir` starts with.
fn sibling_prefix(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    format!(".{name}.facenmf-")
}

fn parent(dir: &Path) -> &Path {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn refuse(dir: &Path, reason: impl Into<String>) -> Error {
    Error::Output {
        path: dir.to_path_buf(),
        reason: reason.into(),
    }
}

/// Checks that `dir` can take a run's outputs, before any work: it is a folder (or can be
/// made), it holds no folder of its own, and its parent is writable (the staging folder goes
/// there). Removes what an interrupted earlier run left (staging folders, temporary files) and
/// puts back a folder an interrupted swap left aside.
///
/// # Errors
/// `dir` is a file, holds a folder, or cannot be written; the message names it.
pub fn prepare_output_dir(dir: &Path) -> Result<()> {
    let prefix = sibling_prefix(dir);
    let parent = parent(dir);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let leftovers: Vec<PathBuf> = std::fs::read_dir(parent)
        .map_err(|e| Error::io(parent, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    for path in leftovers {
        let retired = path.to_string_lossy().contains(".facenmf-old-");
        if retired && !dir.exists() {
            // A swap stopped between its two renames: the previous run's folder comes back.
            std::fs::rename(&path, dir).map_err(|e| Error::io(dir, e))?;
        } else {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    if dir.exists() {
        if !dir.is_dir() {
            return Err(refuse(
                dir,
                "is a file, not a folder; choose another output folder",
            ));
        }
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_temporary(&name) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            } else if entry.file_type().map_err(|e| Error::io(dir, e))?.is_dir() {
                return Err(refuse(
                    dir,
                    format!(
                        "holds a folder ({name}) that replacing the outputs would lose; choose \
                         an output folder of its own"
                    ),
                ));
            }
        }
    }
    let probe = parent.join(format!("{prefix}probe-{}", std::process::id()));
    std::fs::create_dir(&probe)
        .and_then(|()| std::fs::remove_dir(&probe))
        .map_err(|e| {
            refuse(
                dir,
                format!("cannot be written ({e}); choose another output folder"),
            )
        })
}

/// A temporary file of [`super::write_atomic`].
fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// A fresh, empty staging folder beside `dir`.
pub(crate) fn staging(dir: &Path) -> Result<PathBuf> {
    let path = parent(dir).join(format!("{}new-{}", sibling_prefix(dir), std::process::id()));
    if path.exists() {
        std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
    }
    std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Makes `staged` the new `dir`: the files of `dir` that facenmf did not write are carried
/// over, then the two are swapped and the old one removed.
pub(crate) fn swap_in(staged: &Path, dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::rename(staged, dir).map_err(|e| Error::io(dir, e))?;
        return sync_dir(parent(dir));
    }
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let target = staged.join(entry.file_name());
        let ours = super::OUTPUT_FILES.iter().any(|n| entry.file_name() == **n)
            || entry.file_name() == super::CHECKPOINT_FILE
            || super::RANK_FILES.iter().any(|n| entry.file_name() == **n)
            || super::RECOGNITION_FILES
                .iter()
                .any(|n| entry.file_name() == **n);
        if !ours && entry.file_type().is_ok_and(|t| t.is_file()) && !target.exists() {
            std::fs::hard_link(entry.path(), &target)
                .or_else(|_| std::fs::copy(entry.path(), &target).map(|_| ()))
                .map_err(|e| Error::io(&target, e))?;
        }
    }
    sync_dir(staged)?;
    exchange(staged, dir)?;
    sync_dir(parent(dir))?;
    // `staged` now names the previous outputs.
    std::fs::remove_dir_all(staged).map_err(|e| Error::io(staged, e))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|e| refuse(p, e.to_string()));
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let status = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if status == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    // Filesystems without the exchange (some network ones) take the two-rename path.
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => exchange_by_renames(a, b),
        _ => Err(Error::io(b, err)),
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    exchange_by_renames(a, b)
}

/// `b` aside, `a` in its place, the old `b` to `a`; [`prepare_output_dir`] repairs a stop
/// between the first two renames.
fn exchange_by_renames(a: &Path, b: &Path) -> Result<()> {
    let old = parent(b).join(format!("{}old-{}", sibling_prefix(b), std::process::id()));
    std::fs::rename(b, &old).map_err(|e| Error::io(b, e))?;
    std::fs::rename(a, b).map_err(|e| Error::io(b, e))?;
    std::fs::rename(&old, a).map_err(|e| Error::io(a, e))
}

/// Makes a folder's entries durable (a no-op where folders cannot be opened for it).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_are_recognised_by_their_pattern() {
        assert!(is_temporary(".W.npy.tmp1234"));
        assert!(!is_temporary("W.npy"));
        assert!(!is_temporary(".gitkeep"));
        assert!(!is_temporary(".notes.tmpx"));
    }

    #[test]
    fn a_swap_replaces_the_set_and_keeps_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        for (name, text) in [
            ("W.npy", "old"),
            ("H.npy", "old"),
            (".gitkeep", ""),
            (".W.npy.tmp99", "x"),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        prepare_output_dir(&dir).unwrap();
        assert!(
            !dir.join(".W.npy.tmp99").exists(),
            "stale temporary file left"
        );
        let staged = staging(&dir).unwrap();
        std::fs::write(staged.join("W.npy"), "new").unwrap();
        swap_in(&staged, &dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("W.npy")).unwrap(), "new");
        // The .gitkeep is carried over; the old H.npy belonged to the old set and goes with it.
        assert!(dir.join(".gitkeep").exists() && !dir.join("H.npy").exists());
        assert!(!staged.exists());
        let siblings = std::fs::read_dir(tmp.path()).unwrap().count();
        assert_eq!(siblings, 1, "a staging folder was left behind");
    }

    #[test]
    fn a_swap_stopped_half_way_is_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let aside = tmp.path().join(".out.facenmf-old-7");
        std::fs::create_dir(&aside).unwrap();
        std::fs::write(aside.join("run.json"), "{}").unwrap();
        prepare_output_dir(&dir).unwrap();
        assert!(dir.join("run.json").exists() && !aside.exists());
    }

    #[test]
    fn unusable_output_folders_are_refused_before_any_work() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(
            prepare_output_dir(&file)
                .unwrap_err()
                .to_string()
                .contains("is a file")
        );
        let nested = tmp.path().join("nested");
        std::fs::create_dir_all(nested.join("inner")).unwrap();
        let err = prepare_output_dir(&nested).unwrap_err().to_string();
        assert!(err.contains("holds a folder (inner)"), "{err}");
    }
}
