//! Errors a user can cause: each is typed, and none writes anything.

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
struct Doc {
    #[persistent(key)]
    name: String,
    #[persistent(index)]
    title: String,
    #[persistent(index, unique)]
    slug: String,
}

fn doc(name: &str, title: &str, slug: &str) -> Doc {
    Doc { name: name.into(), title: title.into(), slug: slug.into() }
}

/// A string key encodes as its bytes plus a 2-byte terminator; LMDB's
/// limit is 511 bytes.
const LONGEST_STRING_KEY: usize = 509;

#[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
struct Tag {
    #[persistent(key)]
    name: String,
    #[persistent(index, unique)]
    code: u32,
}

#[test]
fn primary_key_at_the_limit_works_and_one_byte_more_is_key_too_long() {
    let store = engine::temporary().unwrap();
    let at_limit = "k".repeat(LONGEST_STRING_KEY);
    Tag { name: at_limit.clone(), code: 1 }.save(&store).unwrap();
    assert!(Tag::load(&store, at_limit.as_str()).unwrap().is_some());

    let too_long = "k".repeat(LONGEST_STRING_KEY + 1);
    let err = Tag { name: too_long, code: 2 }.save(&store).unwrap_err();
    assert!(matches!(err, Error::KeyTooLong { len: 512, max: 511, .. }), "{err}");
    assert!(Tag::load_by(&store, Tag::CODE, &2).unwrap().is_none(), "nothing written");
    assert_eq!(Tag::count(&store).unwrap(), 1);
}

#[test]
fn index_entry_counts_value_and_primary_key_together() {
    let store = engine::temporary().unwrap();
    // Plain index entry = title (len + 2) + name (len + 2).
    let title = "t".repeat(LONGEST_STRING_KEY - 3);
    doc("a", &title, "s1").save(&store).unwrap();
    let err = doc("ab", &title, "s2").save(&store).unwrap_err();
    assert!(matches!(err, Error::KeyTooLong { len: 512, .. }), "{err}");
    assert!(!Doc::exists(&store, "ab").unwrap());
    assert_eq!(Doc::scan_index(&store, Doc::TITLE, title.as_str()).unwrap().len(), 1);
}

#[test]
fn unique_index_value_too_long_is_key_too_long() {
    let store = engine::temporary().unwrap();
    let err = doc("a", "t", &"s".repeat(600)).save(&store).unwrap_err();
    assert!(matches!(err, Error::KeyTooLong { .. }), "{err}");
    assert_eq!(Doc::count(&store).unwrap(), 0);
}

#[test]
fn keys_with_nul_bytes_and_unusual_unicode_roundtrip() {
    let store = engine::temporary().unwrap();
    for name in ["", "\0", "a\0b", "\u{10FFFF}", "é", "e\u{301}", "🦀"] {
        doc(name, name, &format!("slug-{name}")).save(&store).unwrap();
        assert_eq!(Doc::load(&store, name).unwrap().unwrap().name, name);
        assert_eq!(Doc::scan_index(&store, Doc::TITLE, name).unwrap().len(), 1, "{name:?}");
    }
    assert_eq!(Doc::count(&store).unwrap(), 7);
}

#[test]
fn errors_display_what_happened() {
    let store = engine::temporary().unwrap();
    doc("a", "t", "s").insert(&store).unwrap();
    let exists = doc("a", "t", "s").insert(&store).unwrap_err().to_string();
    assert_eq!(exists, "a doc record with key \"a\" already exists");
    let missing = Doc::update(&store, "zz", |_| ()).unwrap_err().to_string();
    assert_eq!(missing, "no doc record with key \"zz\"");
}
