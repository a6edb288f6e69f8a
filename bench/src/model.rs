//! The benchmark's record, as BENCH.md defines it.

use serde::{Deserialize, Serialize};

/// `User { id, email, team, score, bio }` with the values BENCH.md gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserData {
    pub id: u64,
    pub email: String,
    pub team: u32,
    pub score: i64,
    pub bio: String,
}

pub const TEAMS: u32 = 1000;

pub fn user(id: u64) -> UserData {
    UserData { id, email: email(id), team: (id % u64::from(TEAMS)) as u32, score: 0, bio: format!("{id:0>100}") }
}

pub fn email(id: u64) -> String {
    format!("user{id}@example.com")
}

/// splitmix64: a seeded generator for random keys, identical for every system.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
