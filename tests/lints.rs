//! Generated code is clean under the strictest lints a user may enable;
//! `cargo clippy --all-targets -- -D warnings` in CI compiles this file.
#![deny(warnings, clippy::pedantic, missing_docs, unused_qualifications)]

use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[path = "common/engine.rs"]
mod engine;

/// A user.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "lint_users", version = 3)]
pub struct User {
    #[persistent(key)]
    id: u64,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: Option<u32>,
    #[persistent(index(with = User::words))]
    bio: String,
}

impl User {
    fn words(&self) -> Vec<String> {
        self.bio.split_whitespace().map(str::to_lowercase).collect()
    }
}

/// Where a post lives.
#[derive(skyshelve::Key, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Board {
    /// Everyone's.
    Public,
    /// One team's.
    Team(u32),
    /// One user's drafts.
    Drafts {
        /// The user.
        user: u64,
    },
}

/// A post.
#[derive(Persistent, Serialize, Deserialize, Debug)]
pub struct Post {
    #[persistent(key)]
    id: (u64, u32),
    #[persistent(parent = User)]
    author: u64,
    #[persistent(parent = Post)]
    reply_to: Option<(u64, u32)>,
    #[persistent(index)]
    board: Board,
}

#[test]
fn every_index_kind_compiles_under_pedantic_lints() {
    let store = engine::temporary().unwrap();
    let user = User { id: 1, email: "a@b".into(), team: Some(2), bio: "Hello World".into() };
    user.save(&store).unwrap();
    Post { id: (1, 0), author: 1, reply_to: None, board: Board::Team(2) }.save(&store).unwrap();
    assert_eq!(Post::scan_index(&store, Post::BOARD, &Board::Team(2)).unwrap().len(), 1);
    assert!(Post::scan_index(&store, Post::BOARD, &Board::Drafts { user: 1 }).unwrap().is_empty());
    assert!(Post::scan_index(&store, Post::BOARD, &Board::Public).unwrap().is_empty());
    assert_eq!(User::scan_index(&store, User::BIO, "world").unwrap(), std::slice::from_ref(&user));
    assert_eq!(User::scan_index(&store, User::TEAM, &2).unwrap(), [user]);
    assert_eq!(Post::children(&store, Post::AUTHOR, &1).unwrap().len(), 1);
    assert_eq!(User::INFO.version, 3);
}

/// The integration tests live at the top of the repository and are listed
/// by path in core/Cargo.toml; a file nobody lists would never run.
#[test]
fn every_test_file_is_a_test_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let listed: Vec<String> = manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("path = \"../tests/"))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .collect();
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(root.join("../tests")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|ext| ext == "rs") && !listed.contains(&name) {
            unlisted.push(name);
        }
    }
    assert!(unlisted.is_empty(), "add a [[test]] entry to core/Cargo.toml for {unlisted:?}");
    assert!(listed.len() >= 20, "the manifest lists the tests: {listed:?}");
}
