//! Serde attributes that leave the stored shape alone are accepted.

use serde::{Deserialize, Serialize};
use skyshelve::{Persistent, Store};

#[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Account {
    #[persistent(key)]
    id: u32,
    #[serde(rename = "displayName", alias = "name")]
    display_name: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(skip)]
    cached: u64,
}

fn main() -> Result<(), skyshelve::Error> {
    let store = Store::temporary()?;
    let account = Account { id: 1, display_name: "Ada".into(), tags: vec!["x".into()], cached: 0 };
    account.save(&store)?;
    assert_eq!(Account::load(&store, &1)?, Some(account));
    Ok(())
}
