//! Whether the store's folder is still where this process opened it. LMDB
//! goes on writing into a data file that was deleted (or moved away) and
//! acknowledges every commit, which no later open then sees; a process
//! started meanwhile makes a new empty store at the path.
//!
//! Checking the file at every write transaction costs a system call or two
//! (`fstat`, `stat`): 9-17% of a small unsynced write, measured. So a
//! thread per open store sleeps on inotify (once the store has made some
//! thousands of checks: see `inotify.rs`), watching the folder (deleted or
//! moved) and the data file's name in it (deleted, moved away, replaced),
//! and raises a flag; a write reads the flag (one atomic load) and, when it
//! is up, checks the file itself to say what happened. The event is queued
//! by the kernel as the folder changes and the thread wakes within
//! microseconds; a write that starts within that moment can still go
//! through. Where inotify cannot be had (its limits reached, another
//! system), every write checks the file instead.

use std::path::{Path, PathBuf};

use super::files::DATA_FILE;
use super::inotify::{Changes, Watched};
use crate::error::{Error, Result};

/// The data file as this process opened it, and the watch on its folder.
pub(super) struct FolderWatch {
    file: std::fs::File,
    /// The device and inode of `file`, which never change.
    identity: (u64, u64),
    path: PathBuf,
    watched: Watched,
}

impl FolderWatch {
    pub(super) fn start(dir: &Path) -> Result<FolderWatch> {
        use std::os::unix::fs::MetadataExt;
        let path = dir.join(DATA_FILE);
        let file = std::fs::File::open(&path)?;
        let held = file.metadata()?;
        let watched = Watched::start(dir, Changes::FolderOrEntry(DATA_FILE));
        Ok(FolderWatch { file, identity: (held.dev(), held.ino()), path, watched })
    }

    /// Fails when the data file this process opened is no longer the one
    /// at the store's path. Inlined: on every write it is one load.
    #[inline]
    pub(super) fn check(&self) -> Result<()> {
        if self.watched.suspect() { self.check_file() } else { Ok(()) }
    }

    /// Deleted (its link count is 0), gone from its path, or the path now
    /// names another file. The usual answer, the file still at its path,
    /// costs one `stat`; the held file is asked only to say what happened.
    #[cold]
    fn check_file(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let at_path = match std::fs::metadata(&self.path) {
            Ok(now) if (now.dev(), now.ino()) == self.identity => return Ok(()),
            Ok(_) => Some(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err.into()),
        };
        let removed = |reason: &str| Err(Error::StoreRemoved { path: self.path.clone(), reason: reason.to_owned() });
        if self.file.metadata()?.nlink() == 0 {
            return removed("its data file was deleted");
        }
        match at_path {
            Some(()) => removed("its path now holds another data file"),
            None => removed("its data file is gone from its path"),
        }
    }
}
