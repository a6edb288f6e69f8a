use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(index(fields(stream, ofset)))]
struct Message {
    #[persistent(key)]
    id: u64,
    stream: String,
    offset: u64,
}

fn main() {}
