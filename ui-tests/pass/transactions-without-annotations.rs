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
    store.write(|tx| {
        Note::update_in(tx, &1, |n| n.tag = "b".into())?;
        Note::delete_in(tx, &2)?;
        assert!(Note::exists_in(tx, &1)?);
        Ok(())
    })?;
    let first = store.read(|tx| Note::load_in(tx, &1))?;
    assert_eq!(first.map(|n| n.tag), Some("b".to_string()));
    // Borrowed forms in ranges, as in `load`.
    assert_eq!(Note::range_index(&store, Note::TAG, "a".."c")?.len(), 1);
    assert_eq!(Note::range_index(&store, Note::TAG, ..)?.len(), 1);
    let notes = store.map::<String, u32>("counts")?;
    notes.for_each(|_, _| Ok(()))?;
    Ok(())
}
