//! Writes the golden store `tests/data/users_v1` with version 1 of the
//! `golden_users` model, as an older release of a program would have. Run
//! it only to regenerate the committed data:
//! `cargo test --test golden_v1 -- --ignored`.
//!
//! `tests/data/users_v1_before_catalog` was written by this same program
//! with skyshelve before the index catalog existed; it cannot be
//! regenerated.

use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[path = "common/engine.rs"]
mod engine;

/// Version 1 of the model; tests/versions.rs has version 2.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "golden_users")]
struct User {
    #[persistent(key)]
    id: u32,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: String,
}

#[test]
#[ignore = "regenerates committed test data"]
fn write_the_version_1_golden_store() {
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/users_v1");
    let _ = std::fs::remove_dir_all(&target);
    {
        let store = engine::open(&target).unwrap();
        for (id, team) in [(1, "Red"), (2, "Blue"), (3, "Red")] {
            User { id, email: format!("u{id}@example.com"), team: team.into() }.save(&store).unwrap();
        }
        assert!(store.verify().unwrap().is_clean());
    }
    // Only the data file is kept: the lock file is rebuilt on open.
    std::fs::remove_file(target.join("lock.mdb")).unwrap();
}
