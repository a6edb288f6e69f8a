use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Point {
    #[persistent(key)]
    id: u64,
    #[persistent(index)]
    x: f32,
}

fn main() {}
