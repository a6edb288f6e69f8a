use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

// `history = 0` would keep nothing: leave the attribute out instead.
#[derive(Persistent, Serialize, Deserialize)]
#[persistent(history = 0)]
struct Price {
    #[persistent(key)]
    item: String,
}

fn main() {}
