use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct User {
    #[persistent(key)]
    name: String,
}

#[derive(Persistent, Serialize, Deserialize)]
struct Post {
    #[persistent(key)]
    id: u64,
    #[persistent(parent = User)]
    author: u64,
}

fn main() {}
