//! A table of a store opened through LMDB directly, for tests that change
//! stored bytes behind skyshelve's back.
#![allow(dead_code)] // Each test file uses its own part of this.

type RawTable = heed::Database<'static, heed::types::Bytes, heed::types::Bytes>;

/// The LMDB environment of the store in `dir` and its table `name`. No
/// skyshelve handle on the folder may be open in this process.
pub fn raw_table(dir: &std::path::Path, name: &str) -> (heed::Env, RawTable) {
    open_raw(dir, Some(name))
}

/// The LMDB environment in `dir` and its unnamed table, which holds the
/// names of the others (or, in a program that keeps no named tables, its
/// entries). No skyshelve handle on the folder may be open in this process.
pub fn raw_main_table(dir: &std::path::Path) -> (heed::Env, RawTable) {
    open_raw(dir, None)
}

fn open_raw(dir: &std::path::Path, name: Option<&str>) -> (heed::Env, RawTable) {
    // SAFETY: the caller has no skyshelve handle on this folder open.
    let env = unsafe { heed::EnvOpenOptions::new().max_dbs(32).open(dir) }.unwrap();
    let wtxn = env.write_txn().unwrap();
    let table = env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            opener
                .create_database::<heed::types::Bytes, heed::types::Bytes>(wtxn, name)
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    (env, table)
}
