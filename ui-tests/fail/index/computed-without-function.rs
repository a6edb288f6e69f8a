use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Post {
    #[persistent(key)]
    id: u64,
    #[persistent(index(value = String))]
    tags: Vec<String>,
}

fn main() {}
