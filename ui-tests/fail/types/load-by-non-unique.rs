use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct User {
    #[persistent(key)]
    id: u64,
    #[persistent(index)]
    team: String,
}

fn query(store: &skyshelve::Store) {
    let _ = User::load_by(store, User::TEAM, "core");
}

fn main() {}
