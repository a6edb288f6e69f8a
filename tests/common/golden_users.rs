//! Version 2 of the `golden_users` model, which reads the golden stores of
//! tests/data written by version 1 (tests/golden_v1.rs).

use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

/// Version 1, as tests/golden_v1.rs wrote it.
#[derive(Serialize, Deserialize)]
pub struct UserV1 {
    id: u32,
    email: String,
    team: String,
}

/// Version 2: team names are lower case, and there is a new indexed field.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "golden_users", version = 2, from(UserV1 = 1))]
pub struct User {
    #[persistent(key)]
    pub id: u32,
    #[persistent(index, unique)]
    pub email: String,
    #[persistent(index)]
    pub team: String,
    #[persistent(index)]
    pub active: bool,
}

impl From<UserV1> for User {
    fn from(old: UserV1) -> Self {
        User { id: old.id, email: old.email, team: old.team.to_lowercase(), active: true }
    }
}
