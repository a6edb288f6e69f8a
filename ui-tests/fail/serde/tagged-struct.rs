use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
struct Event {
    #[persistent(key)]
    id: u64,
    #[serde(skip_serializing)]
    cached: u32,
}

fn main() {}
