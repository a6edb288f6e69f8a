use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Post {
    #[persistent(key)]
    id: u64,
    #[persistent(index(with = Post::tag_count))]
    tags: Vec<String>,
}

impl Post {
    fn tag_count(&self) -> usize {
        self.tags.len()
    }
}

fn main() {}
