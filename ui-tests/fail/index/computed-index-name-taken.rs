use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Link {
    #[persistent(key)]
    id: u64,
    #[persistent(index)]
    host: String,
    #[persistent(index(name = "host", with = Link::hosts))]
    url: String,
    #[persistent(index(name = "Not Valid", with = Link::hosts))]
    mirror: String,
}

impl Link {
    fn hosts(&self) -> Vec<String> {
        Vec::new()
    }
}

fn main() {}
