use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Post {
    #[persistent(key)]
    id: u64,
    #[persistent(index, must_exist)]
    author: String,
    #[persistent(index, on_delete = cascade)]
    editor: String,
}

fn main() {}
