use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Serialize, Deserialize)]
struct Address {
    city: String,
}

#[derive(Persistent, Serialize, Deserialize)]
struct Person {
    #[persistent(key)]
    id: u32,
    #[serde(flatten)]
    address: Address,
}

fn main() {}
