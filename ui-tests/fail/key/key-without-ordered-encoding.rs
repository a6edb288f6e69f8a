use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

#[derive(Persistent, Serialize, Deserialize)]
struct Reading {
    #[persistent(key)]
    at: f64,
}

fn main() {}
