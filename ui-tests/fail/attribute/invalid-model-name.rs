use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(name = "user/profiles")]
struct User {
    #[persistent(key)]
    id: u32,
}

fn main() {}
