use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Profile {
    #[persistent(key)]
    id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    nickname: Option<String>,
}

fn main() {}
