//! Iteration, key ranges, key prefixes and counts.

use serde::{Deserialize, Serialize};
use skyshelve::{Persistent, Store};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
struct Event {
    #[persistent(key)]
    at: (String, i64),
    what: String,
}

#[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
struct File {
    #[persistent(key)]
    path: String,
}

fn event(source: &str, at: i64) -> Event {
    Event { at: (source.into(), at), what: format!("{source}@{at}") }
}

fn seeded() -> Store {
    let store = engine::temporary().unwrap();
    for (source, at) in [("disk", 5), ("net", -3), ("disk", -10), ("net", 7), ("cpu", 0)] {
        event(source, at).save(&store).unwrap();
    }
    store
}

fn keys(events: Vec<Event>) -> Vec<(String, i64)> {
    events.into_iter().map(|e| e.at).collect()
}

#[test]
fn all_iterates_in_key_order() {
    let store = seeded();
    let got = keys(Event::all(&store).unwrap());
    let mut expected = got.clone();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(got.first().unwrap(), &("cpu".to_string(), 0));
    assert_eq!(got[1], ("disk".to_string(), -10), "negative numbers sort first within a source");
}

#[test]
fn key_range_uses_tuple_order() {
    let store = seeded();
    let lower = ("disk".to_string(), 0);
    let upper = ("net".to_string(), 0);
    assert_eq!(keys(Event::range(&store, lower..upper).unwrap()), [("disk".into(), 5), ("net".into(), -3)]);
}

#[test]
fn tuple_prefix_selects_one_source() {
    let store = seeded();
    let disk = keys(Event::prefix(&store, &("disk".to_string(),)).unwrap());
    assert_eq!(disk, [("disk".into(), -10), ("disk".into(), 5)]);
}

#[test]
fn string_prefix_selects_extensions_only() {
    let store = engine::temporary().unwrap();
    for path in ["a", "a/b", "a/c", "ab", "b", "a\0z"] {
        File { path: path.into() }.save(&store).unwrap();
    }
    let paths: Vec<String> = File::prefix(&store, "a/").unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(paths, ["a/b", "a/c"]);
    assert_eq!(File::prefix(&store, "a").unwrap().len(), 5);
    assert_eq!(File::prefix(&store, "").unwrap().len(), 6);
}

#[test]
fn count_and_streaming_iteration_agree() {
    let store = seeded();
    assert_eq!(Event::count(&store).unwrap(), 5);
    let streamed = store.read(|tx| tx.iter::<Event>()?.try_fold(0, |n, e| e.map(|_| n + 1))).unwrap();
    assert_eq!(streamed, 5);
}

#[test]
fn streaming_key_range_inside_a_read_transaction() {
    let store = engine::temporary().unwrap();
    #[derive(Persistent, Serialize, Deserialize)]
    struct Tick {
        #[persistent(key)]
        n: u32,
    }
    store.write(|tx| (0..1000).try_for_each(|n| tx.save(&Tick { n }))).unwrap();
    let sum: u64 = store
        .read(|tx| tx.range::<Tick, _>(10..20)?.map(|t| t.map(|t| u64::from(t.n))).sum::<Result<u64, _>>())
        .unwrap();
    assert_eq!(sum, (10..20u64).sum::<u64>());
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Visit {
    #[persistent(key)]
    id: (String, u32),
}

#[test]
fn tuple_key_prefixes_take_borrowed_first_elements() {
    let store = engine::temporary().unwrap();
    for (page, n) in [("home", 1), ("home", 2), ("about", 1)] {
        Visit { id: (page.into(), n) }.save(&store).unwrap();
    }
    let code = String::from("home");
    let home = Visit::prefix(&store, &(code.as_str(),)).unwrap();
    assert_eq!(home.iter().map(|v| v.id.1).collect::<Vec<_>>(), [1, 2]);
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Member {
    #[persistent(key)]
    name: String,
    #[persistent(index, unique)]
    email: String,
}

#[test]
fn ranges_take_borrowed_bounds() {
    let store = engine::temporary().unwrap();
    for name in ["ada", "bob", "max", "zoe"] {
        Member { name: name.into(), email: format!("{name}@x.org") }.save(&store).unwrap();
    }
    let names = |members: Vec<Member>| members.into_iter().map(|m| m.name).collect::<Vec<_>>();
    assert_eq!(names(Member::range_index(&store, Member::EMAIL, "a".."m").unwrap()), ["ada", "bob"]);
    assert_eq!(names(Member::range(&store, "b"..="max").unwrap()), ["bob", "max"]);
    let from = String::from("m");
    assert_eq!(names(Member::range(&store, &from..).unwrap()), ["max", "zoe"]);
    assert_eq!(names(Member::range_index(&store, Member::EMAIL, ..).unwrap()).len(), 4);
    let upto = store.read(|tx| Ok(tx.range::<Member, _>(.."bob")?.count())).unwrap();
    assert_eq!(upto, 1);
}
