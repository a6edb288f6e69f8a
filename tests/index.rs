//! Every index kind stays exactly in step with its records.

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "users")]
struct User {
    #[persistent(key)]
    username: String,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: Option<String>,
    #[persistent(index)]
    logins: u64,
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Post {
    #[persistent(key)]
    id: u64,
    #[persistent(parent = User)]
    author: String,
    #[persistent(index(with = Post::tag_values))]
    tags: Vec<String>,
    #[persistent(parent = Post)]
    reply_to: Option<u64>,
}

impl Post {
    fn tag_values(&self) -> Vec<String> {
        self.tags.iter().map(|t| t.to_lowercase()).collect()
    }
}

fn user(name: &str, team: Option<&str>) -> User {
    User { username: name.into(), email: format!("{name}@x.org"), team: team.map(Into::into), logins: 0 }
}

fn post(id: u64, author: &str, tags: &[&str]) -> Post {
    Post { id, author: author.into(), tags: tags.iter().map(|t| (*t).to_string()).collect(), reply_to: None }
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

fn ids(posts: &[Post]) -> Vec<u64> {
    posts.iter().map(|p| p.id).collect()
}

#[test]
fn unique_index_finds_the_one_record() {
    let store = engine::temporary().unwrap();
    user("ada", None).save(&store).unwrap();
    user("bob", None).save(&store).unwrap();
    assert_eq!(User::load_by(&store, User::EMAIL, "bob@x.org").unwrap().unwrap().username, "bob");
    assert!(User::load_by(&store, User::EMAIL, "nobody@x.org").unwrap().is_none());
    assert_eq!(names(&User::scan_index(&store, User::EMAIL, "ada@x.org").unwrap()), ["ada"]);
}

#[test]
fn unique_violation_writes_nothing_and_names_model_index_and_value() {
    let store = engine::temporary().unwrap();
    user("ada", Some("red")).save(&store).unwrap();
    let mut clash = user("eve", Some("blue"));
    clash.email = "ada@x.org".into();
    match clash.save(&store).unwrap_err() {
        Error::UniqueViolation { model, index, value } => {
            assert_eq!((model, index, value.as_str()), ("users", "email", "\"ada@x.org\""));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(User::load(&store, "eve").unwrap().is_none());
    assert!(User::scan_index(&store, User::TEAM, "blue").unwrap().is_empty(), "no index entry of the failed write");
    assert_eq!(User::load_by(&store, User::EMAIL, "ada@x.org").unwrap().unwrap().username, "ada");
}

#[test]
fn unique_violation_on_update_keeps_the_old_record() {
    let store = engine::temporary().unwrap();
    user("ada", None).save(&store).unwrap();
    user("bob", None).save(&store).unwrap();
    let err = User::update(&store, "bob", |u| u.email = "ada@x.org".into()).unwrap_err();
    assert!(matches!(err, Error::UniqueViolation { .. }));
    assert_eq!(User::load(&store, "bob").unwrap().unwrap().email, "bob@x.org");
    assert_eq!(User::load_by(&store, User::EMAIL, "bob@x.org").unwrap().unwrap().username, "bob");
}

#[test]
fn saving_the_same_unique_value_again_is_not_a_violation() {
    let store = engine::temporary().unwrap();
    user("ada", None).save(&store).unwrap();
    let mut again = user("ada", Some("red"));
    again.logins = 3;
    again.save(&store).unwrap();
    assert_eq!(User::load_by(&store, User::EMAIL, "ada@x.org").unwrap().unwrap().logins, 3);
}

#[test]
fn changed_unique_value_frees_the_old_one() {
    let store = engine::temporary().unwrap();
    user("ada", None).save(&store).unwrap();
    User::update(&store, "ada", |u| u.email = "ada@new.org".into()).unwrap();
    assert!(User::load_by(&store, User::EMAIL, "ada@x.org").unwrap().is_none());
    let mut bob = user("bob", None);
    bob.email = "ada@x.org".into();
    bob.insert(&store).expect("the old email is free again");
}

#[test]
fn optional_index_skips_none_and_follows_changes() {
    let store = engine::temporary().unwrap();
    user("ada", Some("red")).save(&store).unwrap();
    user("bob", None).save(&store).unwrap();
    user("cy", Some("red")).save(&store).unwrap();
    assert_eq!(names(&User::scan_index(&store, User::TEAM, "red").unwrap()), ["ada", "cy"]);
    User::update(&store, "ada", |u| u.team = None).unwrap();
    User::update(&store, "bob", |u| u.team = Some("red".into())).unwrap();
    assert_eq!(names(&User::scan_index(&store, User::TEAM, "red").unwrap()), ["bob", "cy"]);
    let all_teams = User::range_index(&store, User::TEAM, ..).unwrap();
    assert_eq!(names(&all_teams), ["bob", "cy"], "records with None are not in the index");
}

#[test]
fn index_on_a_counter_holds_one_entry_for_the_current_value() {
    let store = engine::temporary().unwrap();
    user("ada", None).save(&store).unwrap();
    for _ in 0..5 {
        User::update(&store, "ada", |u| u.logins += 1).unwrap();
    }
    let all = User::range_index(&store, User::LOGINS, ..).unwrap();
    assert_eq!(all.len(), 1, "old counter values must leave the index");
    assert_eq!(names(&User::scan_index(&store, User::LOGINS, &5).unwrap()), ["ada"]);
    assert!(User::scan_index(&store, User::LOGINS, &4).unwrap().is_empty());
}

#[test]
fn deleted_records_leave_every_index() {
    let store = engine::temporary().unwrap();
    user("ada", Some("red")).save(&store).unwrap();
    post(1, "ada", &["Rust"]).save(&store).unwrap();
    User::delete(&store, "ada").unwrap();
    Post::delete(&store, &1).unwrap();
    assert!(User::load_by(&store, User::EMAIL, "ada@x.org").unwrap().is_none());
    assert!(User::scan_index(&store, User::TEAM, "red").unwrap().is_empty());
    assert!(User::range_index(&store, User::LOGINS, ..).unwrap().is_empty());
    assert!(Post::children(&store, Post::AUTHOR, "ada").unwrap().is_empty());
    assert!(Post::scan_index(&store, Post::TAGS, "rust").unwrap().is_empty());
}

#[test]
fn parent_index_lists_children_in_key_order() {
    let store = engine::temporary().unwrap();
    post(3, "ada", &[]).save(&store).unwrap();
    post(1, "ada", &[]).save(&store).unwrap();
    post(2, "bob", &[]).save(&store).unwrap();
    assert_eq!(ids(&Post::children(&store, Post::AUTHOR, "ada").unwrap()), [1, 3]);
    assert_eq!(ids(&Post::children(&store, Post::AUTHOR, "bob").unwrap()), [2]);
    assert!(Post::children(&store, Post::AUTHOR, "cy").unwrap().is_empty());
}

#[test]
fn optional_parent_index_skips_none() {
    let store = engine::temporary().unwrap();
    post(1, "ada", &[]).save(&store).unwrap();
    let mut reply = post(2, "bob", &[]);
    reply.reply_to = Some(1);
    reply.save(&store).unwrap();
    assert_eq!(ids(&Post::children(&store, Post::REPLY_TO, &1).unwrap()), [2]);
    assert_eq!(Post::range_index(&store, Post::REPLY_TO, ..).unwrap().len(), 1);
}

#[test]
fn computed_index_follows_a_shrinking_value_set() {
    let store = engine::temporary().unwrap();
    post(1, "ada", &["Rust", "LMDB", "rust"]).save(&store).unwrap();
    assert_eq!(ids(&Post::scan_index(&store, Post::TAGS, "rust").unwrap()), [1], "duplicate values index once");
    assert_eq!(ids(&Post::scan_index(&store, Post::TAGS, "lmdb").unwrap()), [1]);
    Post::update(&store, &1, |p| p.tags = vec!["Go".into()]).unwrap();
    assert!(Post::scan_index(&store, Post::TAGS, "rust").unwrap().is_empty());
    assert!(Post::scan_index(&store, Post::TAGS, "lmdb").unwrap().is_empty());
    assert_eq!(ids(&Post::scan_index(&store, Post::TAGS, "go").unwrap()), [1]);
    Post::update(&store, &1, |p| p.tags.clear()).unwrap();
    assert!(Post::range_index(&store, Post::TAGS, ..).unwrap().is_empty());
}

#[test]
fn a_record_giving_a_unique_index_one_value_twice_holds_it_once() {
    #[derive(Persistent, Serialize, Deserialize, Debug)]
    struct Alias {
        #[persistent(key)]
        id: u32,
        #[persistent(index(with = Alias::lowercase), unique)]
        names: Vec<String>,
        #[persistent(index, unique)]
        badge: u32,
    }
    impl Alias {
        fn lowercase(&self) -> Vec<String> {
            self.names.iter().map(|n| n.to_lowercase()).collect()
        }
    }
    let alias =
        |id, names: &[&str], badge| Alias { id, names: names.iter().map(|n| (*n).to_string()).collect(), badge };
    let store = engine::temporary().unwrap();
    store.write(|tx| tx.insert(&alias(1, &["Ada", "ada", "ADA"], 10))).unwrap();
    assert_eq!(Alias::load_by(&store, Alias::NAMES, "ada").unwrap().map(|a| a.id), Some(1));
    assert_eq!(Alias::range_index(&store, Alias::NAMES, ..).unwrap().len(), 1);

    // Another record naming the value twice is refused, and so is one
    // whose later index clashes: neither leaves an entry behind.
    let taken = store.write(|tx| tx.insert(&alias(2, &["bob", "Ada", "bob"], 20)));
    assert!(matches!(taken, Err(Error::UniqueViolation { .. })), "{taken:?}");
    let badge_taken = store.write(|tx| tx.insert(&alias(3, &["cy", "CY"], 10)));
    assert!(matches!(badge_taken, Err(Error::UniqueViolation { .. })), "{badge_taken:?}");
    for free in ["bob", "cy"] {
        assert!(Alias::load_by(&store, Alias::NAMES, free).unwrap().is_none(), "{free} was left indexed");
    }
    assert!(Alias::verify(&store).unwrap().is_clean());

    // Deleting the record frees the value, held once.
    Alias::delete(&store, &1).unwrap();
    store.write(|tx| tx.insert(&alias(4, &["ada"], 10))).unwrap();
    assert_eq!(Alias::load_by(&store, Alias::NAMES, "ADA".to_lowercase().as_str()).unwrap().map(|a| a.id), Some(4));
    assert!(Alias::verify(&store).unwrap().is_clean());
}

#[test]
fn index_ranges_follow_value_order_with_every_bound_kind() {
    #[derive(Persistent, Serialize, Deserialize, Debug)]
    struct Reading {
        #[persistent(key)]
        id: u32,
        #[persistent(index)]
        celsius: i32,
        #[persistent(index)]
        place: String,
    }
    let store = engine::temporary().unwrap();
    let places = ["a", "ab", "b", "ba", "c"];
    for (id, celsius) in [-20, -1, 0, 1, 35].into_iter().enumerate() {
        let id = u32::try_from(id).unwrap();
        Reading { id, celsius, place: places[id as usize].into() }.save(&store).unwrap();
    }
    let temps = |r: Vec<Reading>| r.into_iter().map(|r| r.celsius).collect::<Vec<_>>();
    assert_eq!(temps(Reading::range_index(&store, Reading::CELSIUS, -1..1).unwrap()), [-1, 0]);
    assert_eq!(temps(Reading::range_index(&store, Reading::CELSIUS, -1..=1).unwrap()), [-1, 0, 1]);
    assert_eq!(temps(Reading::range_index(&store, Reading::CELSIUS, ..0).unwrap()), [-20, -1]);
    assert_eq!(temps(Reading::range_index(&store, Reading::CELSIUS, 1..).unwrap()), [1, 35]);
    let excluded_start = (std::ops::Bound::Excluded(-1), std::ops::Bound::Unbounded);
    assert_eq!(temps(Reading::range_index(&store, Reading::CELSIUS, excluded_start).unwrap()), [0, 1, 35]);
    let place_names = |r: Vec<Reading>| r.into_iter().map(|r| r.place).collect::<Vec<_>>();
    let a_to_b = Reading::range_index(&store, Reading::PLACE, "a".to_string()..="b".to_string()).unwrap();
    assert_eq!(place_names(a_to_b), ["a", "ab", "b"], "an included upper string bound excludes its extensions");
}

#[test]
fn streaming_scan_yields_the_same_records_as_the_collected_one() {
    let store = engine::temporary().unwrap();
    for i in 0..50 {
        post(i, if i % 2 == 0 { "ada" } else { "bob" }, &[]).save(&store).unwrap();
    }
    let streamed: Vec<u64> =
        store.read(|tx| tx.children(Post::AUTHOR, "ada")?.map(|p| p.map(|p| p.id)).collect::<Result<_, _>>()).unwrap();
    assert_eq!(streamed, ids(&Post::children(&store, Post::AUTHOR, "ada").unwrap()));
    assert_eq!(streamed.len(), 25);
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Link {
    #[persistent(key)]
    id: u64,
    #[persistent(index(name = "host", with = Link::host_of))]
    url: String,
}

impl Link {
    fn host_of(&self) -> Option<String> {
        self.url.split('/').nth(2).map(str::to_owned)
    }
}

#[test]
fn a_computed_index_can_have_a_name_of_its_own() {
    let store = engine::temporary().unwrap();
    Link { id: 1, url: "https://example.com/a".into() }.save(&store).unwrap();
    Link { id: 2, url: "https://rust-lang.org/b".into() }.save(&store).unwrap();
    let found = Link::scan_index(&store, Link::HOST, "example.com").unwrap();
    assert_eq!(found.iter().map(|l| l.id).collect::<Vec<_>>(), [1]);
    assert_eq!(Link::INFO.indexes[0].name, "host");
    assert_eq!(Link::INFO.indexes[0].fingerprint(), "computed host: String with Link::host_of");
}
