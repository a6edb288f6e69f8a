use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(name = "a")]
#[persistent(name = "b")]
struct User {
    #[persistent(key)]
    id: u32,
}

fn main() {}
