use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct User {
    #[persistent(key, index)]
    id: u32,
}

fn main() {}
