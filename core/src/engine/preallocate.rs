//! Growing LMDB's data file ahead of its commits, with real zeros.
//!
//! A commit that writes past the end of the data file makes the file
//! system allocate blocks and record the new length, and a durable commit's
//! `fdatasync` must then commit that to the file system's journal as well.
//! Over blocks already written it only writes the pages. On ext4 that made
//! a group commit of eight inserts about a seventh cheaper. So before a
//! write transaction of a syncing store, the file is extended with zeros to
//! a little beyond the pages LMDB uses: in steps of an eighth of the file,
//! at least 1 MiB and at most 8 MiB (the commit after a step writes the
//! step's zeros out with its own pages, so a larger step would make that
//! one commit slow). `set_len` would not do: it leaves a hole, whose blocks
//! are allocated on first write all the same.
//!
//! The zeros lie past every page of every commit, and LMDB reads only the
//! pages its commits name, so they change nothing LMDB sees. They are
//! written with the writer lock held and before the transaction begins:
//! no writer in any process is writing past the end then.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;

/// Grow in steps of `file length / GROWTH_FRACTION`, within these bounds.
const GROWTH_FRACTION: u64 = 8;
const MIN_STEP: u64 = 1 << 20;
const MAX_STEP: u64 = 8 << 20;

/// The zeros are written this much at a time.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The data file, opened on first need, and how long it was last seen.
pub(super) struct Preallocation {
    path: PathBuf,
    file: Mutex<Option<(File, u64)>>,
}

impl Preallocation {
    pub(super) fn new(path: PathBuf) -> Preallocation {
        Preallocation { path, file: Mutex::new(None) }
    }

    /// Makes sure the file holds written blocks up to a step beyond `used`
    /// bytes (LMDB's pages in use), never past `map_size`.
    ///
    /// Call it only with the writer lock held and no write transaction
    /// open. It is an optimisation: a caller may ignore its errors, since
    /// LMDB then extends the file itself (and reports a full disk itself).
    pub(super) fn ensure_room(&self, used: u64, map_size: u64) -> std::io::Result<()> {
        let mut slot = crate::sync::lock(&self.file);
        let (file, known_len) = match &mut *slot {
            Some(open) => open,
            None => {
                let file = std::fs::OpenOptions::new().write(true).open(&self.path)?;
                let len = file.metadata()?.len();
                slot.insert((file, len))
            }
        };
        let low_water = step_for(used) / 2;
        if used.saturating_add(low_water) <= *known_len {
            return Ok(());
        }
        // Another process may have grown it meanwhile.
        *known_len = file.metadata()?.len();
        let target = used.saturating_add(step_for(used)).min(map_size);
        if used.saturating_add(low_water) <= *known_len || target <= *known_len {
            return Ok(());
        }
        write_zeros(file, *known_len, target)?;
        *known_len = target;
        Ok(())
    }
}

fn step_for(len: u64) -> u64 {
    (len / GROWTH_FRACTION).clamp(MIN_STEP, MAX_STEP)
}

#[cfg(unix)]
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut at = from;
    while at < to {
        let len = usize::try_from(to - at).map_or(ZEROS.len(), |left| left.min(ZEROS.len()));
        file.write_all_at(&ZEROS[..len], at)?;
        at += len as u64;
    }
    Ok(())
}

/// Elsewhere the file grows as LMDB writes.
#[cfg(not(unix))]
fn write_zeros(_file: &File, _from: u64, _to: u64) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_an_eighth_of_the_file_within_bounds() {
        assert_eq!(step_for(0), MIN_STEP);
        assert_eq!(step_for(40 << 20), 5 << 20);
        assert_eq!(step_for(8 << 30), MAX_STEP);
    }

    #[test]
    fn the_file_is_extended_with_written_zeros_and_never_shortened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let room = Preallocation::new(path.clone());
        room.ensure_room(4096, 1 << 30).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, 4096 + MIN_STEP);
        assert!(bytes[..4096].iter().all(|&b| b == 7), "the used pages are untouched");
        assert!(bytes[4096..].iter().all(|&b| b == 0));
        // Enough room left: nothing is written.
        room.ensure_room(8192, 1 << 30).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096 + MIN_STEP);
        // Never past the map.
        room.ensure_room(MIN_STEP, MIN_STEP + 8192).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), MIN_STEP + 8192);
    }
}
