use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Event {
    #[persistent(key, sequence = "")]
    id: u64,
}

fn main() {}
