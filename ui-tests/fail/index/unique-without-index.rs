use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct User {
    #[persistent(key)]
    id: u32,
    #[persistent(unique)]
    email: String,
}

fn main() {}
