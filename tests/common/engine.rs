//! Which engine the suite runs on. The same test files run on LMDB and,
//! with `SKYSHELVE_ENGINE=slatedb` and the `slatedb` feature, on SlateDB
//! (the library reads the variable when a program names no engine). A test
//! whose promise does not hold on SlateDB says so here and returns.

#![allow(dead_code)]

/// Whether the suite runs on SlateDB.
pub fn on_slatedb() -> bool {
    std::env::var("SKYSHELVE_ENGINE").as_deref() == Ok("slatedb")
}

/// For a test whose promise does not hold on SlateDB: prints why and
/// returns `true` there, so the test returns; `false` on LMDB.
pub fn not_on_slatedb(why: &str) -> bool {
    if on_slatedb() {
        eprintln!("not on SlateDB: {why}");
    }
    on_slatedb()
}

/// Whether SlateDB keeps its objects outside the store's folder (in
/// `SKYSHELVE_SLATEDB_URL`), where what a test does to the folder (its
/// modes, a read-only mount) does not reach them.
pub fn objects_elsewhere() -> bool {
    on_slatedb() && std::env::var_os("SKYSHELVE_SLATEDB_URL").is_some()
}
