//! Generated code is clean under the strictest lints a user may enable;
//! `cargo clippy --all-targets -- -D warnings` in CI compiles this file.
#![deny(warnings, clippy::pedantic, missing_docs, unused_qualifications)]

use serde::{Deserialize, Serialize};
use skyshelve::{Persistent, Store};

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

/// A post.
#[derive(Persistent, Serialize, Deserialize, Debug)]
pub struct Post {
    #[persistent(key)]
    id: (u64, u32),
    #[persistent(parent = User)]
    author: u64,
    #[persistent(parent = Post)]
    reply_to: Option<(u64, u32)>,
}

#[test]
fn every_index_kind_compiles_under_pedantic_lints() {
    let store = Store::temporary().unwrap();
    let user = User { id: 1, email: "a@b".into(), team: Some(2), bio: "Hello World".into() };
    user.save(&store).unwrap();
    Post { id: (1, 0), author: 1, reply_to: None }.save(&store).unwrap();
    assert_eq!(User::scan_index(&store, User::BIO, "world").unwrap(), std::slice::from_ref(&user));
    assert_eq!(User::scan_index(&store, User::TEAM, &2).unwrap(), [user]);
    assert_eq!(Post::children(&store, Post::AUTHOR, &1).unwrap().len(), 1);
    assert_eq!(User::INFO.version, 3);
}
