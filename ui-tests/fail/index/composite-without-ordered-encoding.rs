use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(index(fields(stream, weight)))]
struct Message {
    #[persistent(key)]
    id: u64,
    stream: String,
    weight: f64,
}

fn main() {}
