use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Session {
    #[persistent(key)]
    token: String,
    #[persistent(expires)]
    expires_at: u64,
}

fn main() {}
