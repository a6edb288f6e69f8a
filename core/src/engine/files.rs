//! LMDB's files in a store's folder: which they are, whether a folder
//! holds a store, copies written whole, and the check that refuses a data
//! file cut short before LMDB maps it.

use std::path::Path;

use crate::error::{Error, Result};

/// The data file of an environment.
pub(super) const DATA_FILE: &str = "data.mdb";

/// The file whose OS lock serialises writers across processes.
pub(super) const WRITER_LOCK_FILE: &str = "writer.lock";

/// Whether the folder holds a store: something is at its data file's
/// path. Whatever is there that is no store (a FIFO, a folder, a damaged
/// file) is then refused by the open, which says what is wrong.
pub(crate) fn holds_store(dir: &Path) -> bool {
    dir.join(DATA_FILE).exists()
}

/// Copies the store in folder `backup` into folder `target`, whole or not
/// at all. The backup is checked first: a damaged one is refused.
pub(crate) fn restore(backup: &Path, target: &Path) -> Result<()> {
    check_data_file(backup, Empty::NoStore)?;
    let mut from = std::fs::File::open(backup.join(DATA_FILE))?;
    crate::fs::write_whole(&target.join(DATA_FILE), |to| {
        std::io::copy(&mut from, to)?;
        Ok(())
    })
}

/// What an empty data file is to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Empty {
    /// A store being made: LMDB writes its first pages into an empty file
    /// at open, and a process killed before it did leaves one behind.
    NewStore,
    /// No store, and neither is a missing file: a read-only open cannot
    /// make one (LMDB would try, and fail writing), and a backup must hold
    /// one.
    NoStore,
}

/// Refuses a data file that LMDB must not be let near: one cut short (a
/// copy interrupted by a crash or a full disk: LMDB would map the missing
/// pages and the process would die of SIGBUS on the first read of them),
/// one that is not a regular file (a FIFO in its place would make every
/// open wait for a writer for ever), and a missing or empty one where
/// `empty` says that is no store. The newest commit's tree roots must lie
/// inside the file: a commit writes its roots before its meta page, and a
/// compacted copy writes its main root last.
pub(super) fn check_data_file(dir: &Path, empty: Empty) -> Result<()> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let damaged = |reason: String| Error::DamagedStore { path: dir.to_owned(), reason };
    // Not blocking: opening a FIFO for reading waits for a writer.
    let opened = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(dir.join(DATA_FILE));
    let mut file = match opened {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && empty == Empty::NoStore => {
            return Err(no_store(dir, "it has no data file"));
        }
        // LMDB makes the file, or says why it cannot.
        Err(_) => return Ok(()),
    };
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() { "a folder" } else { "not a regular file (a FIFO, a socket or a device)" };
        return Err(damaged(format!("its data file is {what}")));
    }
    // The meta page first, then the length: a commit in another process
    // meanwhile only makes the file longer.
    let mut head = vec![0; meta::READ_LEN];
    let read = file.read(&mut head)?;
    head.truncate(read);
    let len = file.metadata()?.len();
    if len == 0 && empty == Empty::NoStore {
        return Err(no_store(dir, "its data file is empty"));
    }
    if let Some(page) = meta::damaged(&head) {
        let reason = format!(
            "meta page {page} of the data file is damaged (LMDB opens no file with a damaged meta page); restore a \
             backup"
        );
        return Err(damaged(reason));
    }
    match meta::required_len(&head) {
        Some(required) if len < required => {
            Err(damaged(format!("the data file is {len} bytes but its last commit needs {required}: it was cut short")))
        }
        _ => Ok(()),
    }
}

/// The error of a folder that holds no store, saying `why`.
fn no_store(dir: &Path, why: &str) -> Error {
    let message = format!("{dir:?} holds no store: {why}");
    Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, message))
}

/// LMDB's meta pages (pages 0 and 1 of the data file), read just far
/// enough to know how long the file must be. Layout of LMDB 0.9 on a
/// 64-bit machine: a 16-byte page header, then `MDB_meta`, whose two
/// `MDB_db` records (free pages, main) are 48 bytes each.
mod meta {
    /// Enough of the file for both meta pages at any page size up to 64 KiB.
    pub const READ_LEN: usize = 64 * 1024 + 256;
    const HEADER: usize = 16;
    const MAGIC: u32 = 0xBEEF_C0DE;
    const MAGIC_AT: usize = HEADER;
    /// `mm_dbs[FREE_DBI].md_pad` holds the page size.
    const PAGE_SIZE_AT: usize = HEADER + 24;
    /// `md_root` of the free-page and the main tree.
    const ROOTS_AT: [usize; 2] = [HEADER + 64, HEADER + 112];
    const TXNID_AT: usize = HEADER + 128;
    /// The root of an empty tree.
    const NO_PAGE: u64 = u64::MAX;

    fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    }

    fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
        Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    }

    /// (transaction id, highest root page, page size) of a meta page.
    fn read(page: &[u8]) -> Option<(u64, u64, u64)> {
        if u32_at(page, MAGIC_AT)? != MAGIC {
            return None;
        }
        let roots = ROOTS_AT.map(|at| u64_at(page, at).unwrap_or(NO_PAGE));
        let highest = roots.into_iter().filter(|&root| root != NO_PAGE).max().unwrap_or(0);
        Some((u64_at(page, TXNID_AT)?, highest, u64::from(u32_at(page, PAGE_SIZE_AT)?)))
    }

    /// The meta page that is damaged while the other is intact (LMDB
    /// would only say the file is not its own).
    pub fn damaged(head: &[u8]) -> Option<u64> {
        let page_size = usize::try_from(read(head)?.2).ok()?;
        let second = head.get(page_size..(2 * page_size).min(head.len()))?;
        (second.len() == page_size && read(second).is_none()).then_some(1)
    }

    /// The length the newest commit's roots need; `None` when the head of
    /// the file is not LMDB's (LMDB itself then reports it).
    pub fn required_len(head: &[u8]) -> Option<u64> {
        let (txn0, root0, page_size) = read(head)?;
        let second = head.get(usize::try_from(page_size).ok()?..)?;
        let root = match read(second) {
            Some((txn1, root1, _)) if txn1 > txn0 => root1,
            _ => root0,
        };
        root.checked_add(1)?.checked_mul(page_size)
    }
}
