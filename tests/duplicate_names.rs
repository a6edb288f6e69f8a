//! Two models of one program may not share a name: they would share tables.

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent};

#[path = "common/engine.rs"]
mod engine;

mod first {
    use super::*;
    #[derive(Persistent, Serialize, Deserialize)]
    #[persistent(name = "things")]
    pub struct Thing {
        #[persistent(key)]
        pub id: u32,
    }
}

mod second {
    use super::*;
    #[derive(Persistent, Serialize, Deserialize)]
    #[persistent(name = "things")]
    pub struct Thing {
        #[persistent(key)]
        pub name: String,
    }
}

#[test]
fn opening_a_store_with_two_models_of_one_name_fails() {
    let err = engine::temporary().unwrap_err();
    assert!(matches!(&err, Error::InvalidName { name, .. } if name == "things"), "{err}");
    // The models themselves compile and describe themselves.
    assert_eq!(first::Thing::INFO.key_type, "u32");
    assert_eq!(second::Thing::INFO.key_type, "String");
}
