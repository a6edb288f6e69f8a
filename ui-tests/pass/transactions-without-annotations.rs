//! The common transaction forms need no type annotations: closures return
//! `skyshelve::Result`, and `?` works inside them.

use serde::{Deserialize, Serialize};
use skyshelve::{Persistent, Store};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Note {
    #[persistent(key)]
    id: u32,
    #[persistent(index)]
    tag: String,
}

fn main() -> skyshelve::Result<()> {
    let store = Store::temporary()?;
    store.write(|tx| {
        tx.save(&Note { id: 1, tag: "a".into() })?;
        tx.insert(&Note { id: 2, tag: "a".into() })?;
        Ok(())
    })?;
    let tagged = store.read(|tx| {
        let mut n = 0;
        for note in tx.scan_index(Note::TAG, "a")? {
            note?;
            n += 1;
        }
        Ok(n)
    })?;
    assert_eq!(tagged, 2);
    let notes = store.map::<String, u32>("counts")?;
    notes.for_each(|_, _| Ok(()))?;
    Ok(())
}
