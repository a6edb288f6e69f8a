use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(index(fields(stream)))]
struct Message {
    #[persistent(key)]
    id: u64,
    stream: String,
}

fn main() {}
