//! Stores users and posts, queries them through every kind of index, then
//! lets four OS processes update one record at once, and checks everything
//! it finds. Run with `cargo run --example quickstart`.

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Store};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "users")]
struct User {
    #[persistent(key)]
    username: String,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: Option<String>,
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
    #[persistent(index)]
    score: i32,
}

impl Post {
    /// Tags are indexed in lower case, so "Rust" and "rust" meet.
    fn tag_values(&self) -> Vec<String> {
        self.tags.iter().map(|tag| tag.to_lowercase()).collect()
    }
}

fn user(name: &str, team: Option<&str>) -> User {
    User { username: name.into(), email: format!("{name}@example.com"), team: team.map(Into::into), logins: 0 }
}

#[derive(Persistent, Serialize, Deserialize, Debug)]
struct Visits {
    #[persistent(key)]
    page: String,
    count: u64,
}

const CHILD_ENV: &str = "SKYSHELVE_QUICKSTART_CHILD";
const PROCESSES: u64 = 4;
const VISITS_EACH: u64 = 250;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        return count_visits(&Store::open(path)?);
    }
    models_and_indexes()?;
    many_processes()
}

/// A child process: atomic increments of one record that may not exist yet.
fn count_visits(store: &Store) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..VISITS_EACH {
        Visits::upsert(store, || Visits { page: "/home".into(), count: 0 }, |v| v.count += 1)?;
    }
    Ok(())
}

fn many_processes() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let start = std::time::Instant::now();
    let children = (0..PROCESSES)
        .map(|_| std::process::Command::new(std::env::current_exe()?).env(CHILD_ENV, dir.path()).spawn())
        .collect::<Result<Vec<_>, _>>()?;
    for mut child in children {
        assert!(child.wait()?.success(), "a child process failed");
    }
    let store = Store::open(dir.path())?;
    let visits = Visits::load(&store, "/home")?.expect("the children counted").count;
    println!(
        "many processes:     {PROCESSES} processes x {VISITS_EACH} upserts = {visits} visits in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(visits, PROCESSES * VISITS_EACH, "no update may be lost");
    println!("quickstart: all checks passed");
    Ok(())
}

fn models_and_indexes() -> Result<(), Error> {
    let store = Store::temporary()?;
    println!("store opened in {}", store.path().display());

    for u in [user("ada", Some("core")), user("bob", Some("core")), user("cy", None)] {
        u.insert(&store)?;
    }
    let posts = [
        Post { id: 1, author: "ada".into(), tags: vec!["Rust".into(), "LMDB".into()], score: 10 },
        Post { id: 2, author: "ada".into(), tags: vec!["rust".into()], score: -3 },
        Post { id: 3, author: "bob".into(), tags: vec!["Python".into()], score: 7 },
    ];
    // Several records, one transaction: all are stored or none.
    store.write(|tx| posts.iter().try_for_each(|p| tx.save(p)))?;

    let ada = User::load(&store, "ada")?.expect("ada was inserted");
    println!("load by key:        {ada:?}");
    assert_eq!(ada.email, "ada@example.com");

    let by_email = User::load_by(&store, User::EMAIL, "bob@example.com")?;
    println!("unique index:       {by_email:?}");
    assert_eq!(by_email.map(|u| u.username).as_deref(), Some("bob"));

    let core: Vec<String> = User::scan_index(&store, User::TEAM, "core")?.into_iter().map(|u| u.username).collect();
    println!("optional index:     team core = {core:?} (cy has no team and is not indexed)");
    assert_eq!(core, ["ada", "bob"]);

    let by_ada: Vec<u64> = Post::children(&store, Post::AUTHOR, "ada")?.iter().map(|p| p.id).collect();
    println!("parent index:       posts of ada = {by_ada:?}");
    assert_eq!(by_ada, [1, 2]);

    let rust: Vec<u64> = Post::scan_index(&store, Post::TAGS, "rust")?.iter().map(|p| p.id).collect();
    println!("computed index:     posts tagged rust = {rust:?}");
    assert_eq!(rust, [1, 2]);

    let positive: Vec<i32> = Post::range_index(&store, Post::SCORE, 0..)?.iter().map(|p| p.score).collect();
    println!("index range:        scores >= 0 in order = {positive:?}");
    assert_eq!(positive, [7, 10]);

    let after = User::update(&store, "ada", |u| u.logins += 1)?;
    println!("atomic update:      ada logged in {} time(s)", after.logins);
    assert_eq!(after.logins, 1);

    let clash = user("dan", None);
    let mut clash = clash.clone();
    clash.email = "ada@example.com".into();
    let err = clash.insert(&store).expect_err("email is unique");
    println!("unique violation:   {err}");
    assert!(matches!(err, Error::UniqueViolation { index: "email", .. }));
    assert!(!User::exists(&store, "dan")?, "a failed insert writes nothing");

    let settings = store.map::<String, u64>("settings")?;
    settings.insert(&"max_posts".to_string(), &100)?;
    println!("typed map:          max_posts = {:?}", settings.get("max_posts")?);
    assert_eq!(settings.get("max_posts")?, Some(100));

    println!("counts:             {} users, {} posts", User::count(&store)?, Post::count(&store)?);
    assert_eq!((User::count(&store)?, Post::count(&store)?), (3, 3));
    Ok(())
}
