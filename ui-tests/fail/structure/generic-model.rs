use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Wrapper<T> {
    #[persistent(key)]
    id: u32,
    value: T,
}

fn main() {}
