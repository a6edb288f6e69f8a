//! Which engine the suite runs on. The same test files run on LMDB and,
//! with `SKYSHELVE_ENGINE=slatedb` and the `slatedb` feature, on `SlateDB`:
//! every test opens its stores through [`options`], [`open`] or
//! [`temporary`] here, which read the variable (the library never does:
//! the engine is a program's choice). A test whose promise does not hold
//! on `SlateDB` says so here and returns.

#![allow(dead_code)]

use std::path::Path;

use skyshelve::{Result, Store, StoreOptions};

/// The options every test starts from: on `SlateDB` when the suite runs
/// there, with the objects under `SKYSHELVE_SLATEDB_URL` at the store
/// folder's path, or in the folder `objects` inside it.
pub fn options() -> StoreOptions {
    let options = Store::options();
    #[cfg(feature = "slatedb")]
    if on_slatedb() {
        return options.slatedb_under(std::env::var("SKYSHELVE_SLATEDB_URL").unwrap_or_default());
    }
    options
}

/// `Store::open` on the suite's engine.
pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
    options().open(dir)
}

/// `Store::temporary` on the suite's engine.
pub fn temporary() -> Result<Store> {
    options().open_temporary()
}

/// Whether the suite runs on `SlateDB`.
pub fn on_slatedb() -> bool {
    std::env::var("SKYSHELVE_ENGINE").as_deref() == Ok("slatedb")
}

/// For a test whose promise does not hold on `SlateDB`: prints why and
/// returns `true` there, so the test returns; `false` on LMDB.
pub fn not_on_slatedb(why: &str) -> bool {
    if on_slatedb() {
        eprintln!("not on SlateDB: {why}");
    }
    on_slatedb()
}

/// Whether `SlateDB` keeps its objects outside the store's folder (in
/// `SKYSHELVE_SLATEDB_URL`), where what a test does to the folder (its
/// modes, a read-only mount) does not reach them.
pub fn objects_elsewhere() -> bool {
    on_slatedb() && std::env::var_os("SKYSHELVE_SLATEDB_URL").is_some()
}
