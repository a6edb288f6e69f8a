//! Users' own key types: `#[derive(Key)]` for structs and enums, the rules
//! checker for hand-written encodings, and what happens when a hand-written
//! encoding breaks the self-delimiting rule: queries still return only the
//! records asked for, and `verify` names the problem.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use skyshelve::{EncodeKey, Key, Persistent, Problem, check_key_encoding};

#[path = "common/engine.rs"]
mod engine;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Key)]
struct Slug(String);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Key)]
struct Version {
    major: u16,
    minor: u16,
    label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Key)]
enum Owner {
    Nobody,
    User(u64),
    Team { name: String, sub: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Key)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Key)]
struct Pair(i8, Slug);

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        Just(Owner::Nobody),
        any::<u64>().prop_map(Owner::User),
        ("[a\\x00]{0,3}", any::<i32>()).prop_map(|(name, sub)| Owner::Team { name, sub }),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    (0u16..3, 0u16..3, proptest::option::of("[ab]{0,2}")).prop_map(|(major, minor, label)| Version {
        major,
        minor,
        label,
    })
}

proptest! {
    #[test]
    fn derived_encodings_follow_the_rules(
        slugs in proptest::collection::vec("[ab\\x00]{0,3}".prop_map(Slug), 0..12),
        versions in proptest::collection::vec(version(), 0..12),
        owners in proptest::collection::vec(owner(), 0..12),
        pairs in proptest::collection::vec((any::<i8>(), "[ab]{0,2}".prop_map(Slug)).prop_map(|(a, b)| Pair(a, b)), 0..12),
    ) {
        prop_assert_eq!(check_key_encoding(&slugs), Ok(()));
        prop_assert_eq!(check_key_encoding(&versions), Ok(()));
        prop_assert_eq!(check_key_encoding(&owners), Ok(()));
        prop_assert_eq!(check_key_encoding(&pairs), Ok(()));
    }
}

#[test]
fn unit_structs_and_variant_order() {
    check_key_encoding(&[Unit]).unwrap();
    let owners = [Owner::Nobody, Owner::User(0), Owner::User(u64::MAX), Owner::Team { name: String::new(), sub: -1 }];
    check_key_encoding(&owners).unwrap();
    assert_eq!(Owner::decode_key(&mut &[0u8][..]).unwrap(), Owner::Nobody);
    let unknown = Owner::decode_key(&mut &[7u8][..]).unwrap_err();
    assert!(
        matches!(&unknown, skyshelve::Error::Decode { reason, .. } if reason.contains("variant number 7")),
        "{unknown}"
    );
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Release {
    #[persistent(key)]
    version: Version,
    #[persistent(index)]
    owner: Owner,
    #[persistent(index, unique)]
    slug: Slug,
}

#[test]
fn derived_keys_work_as_keys_and_index_values() {
    let store = engine::temporary().unwrap();
    let release = |major, minor, owner, slug: &str| Release {
        version: Version { major, minor, label: None },
        owner,
        slug: Slug(slug.into()),
    };
    for r in [
        release(1, 0, Owner::User(7), "one"),
        release(1, 2, Owner::Team { name: "core".into(), sub: 0 }, "one-two"),
        release(2, 0, Owner::User(7), "two"),
    ] {
        r.save(&store).unwrap();
    }
    let by_seven = Release::scan_index(&store, Release::OWNER, &Owner::User(7)).unwrap();
    assert_eq!(by_seven.iter().map(|r| r.slug.0.as_str()).collect::<Vec<_>>(), ["one", "two"]);
    let ones = Release::range(
        &store,
        Version { major: 1, minor: 0, label: None }..Version { major: 2, minor: 0, label: None },
    );
    assert_eq!(ones.unwrap().len(), 2);
    assert_eq!(Release::load_by(&store, Release::SLUG, &Slug("two".into())).unwrap().unwrap().version.major, 2);
    assert!(store.verify().unwrap().is_clean());
}

/// The encoding from the bug report: raw bytes, no terminator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct RawSlug(String);

impl EncodeKey for RawSlug {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
    }
}

impl Key for RawSlug {
    fn decode_key(input: &mut &[u8]) -> skyshelve::Result<Self> {
        let text = String::from_utf8(input.to_vec())
            .map_err(|e| skyshelve::Error::Decode { what: "raw slug".into(), reason: e.to_string() })?;
        *input = &[];
        Ok(RawSlug(text))
    }
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Page {
    #[persistent(key)]
    id: u32,
    #[persistent(index)]
    slug: RawSlug,
}

#[test]
fn a_broken_hand_written_encoding_never_returns_the_wrong_records_and_verify_names_it() {
    let broken = check_key_encoding(&[RawSlug("ab".into()), RawSlug("abc".into())]).unwrap_err();
    assert_eq!(broken.rule, "self-delimiting");
    let store = engine::temporary().unwrap();
    Page { id: 1, slug: RawSlug("ab".into()) }.save(&store).unwrap();
    Page { id: 2, slug: RawSlug("abc".into()) }.save(&store).unwrap();
    let found = Page::scan_index(&store, Page::SLUG, &RawSlug("ab".into())).unwrap();
    assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), [1], "only the record whose value is \"ab\"");
    let report = Page::verify(&store).unwrap();
    assert!(report.problems.iter().any(|p| matches!(p, Problem::NotSelfDelimiting { index: "slug", .. })), "{report}");
}
