use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Serialize, Deserialize)]
struct UserV1 {
    id: u32,
}

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(version = 2, from(UserV1 = 2))]
struct User {
    #[persistent(key)]
    id: u32,
}

fn main() {}
