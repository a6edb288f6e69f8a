use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(table = "users")]
struct User {
    #[persistent(key)]
    id: u32,
}

fn main() {}
