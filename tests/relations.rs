//! Relations with integrity, opt-in per parent index and checked in the
//! same transaction: `must_exist` (a child names a stored parent),
//! `on_delete = restrict` (a parent with children cannot be deleted) and
//! `on_delete = cascade` (its children go with it); `leave` is the default.
//! Processes racing a child's save against its parent's delete are in
//! tests/multiprocess.rs.

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Problem, Store};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Author {
    #[persistent(key)]
    name: String,
}

/// Posts must name a stored author; deleting an author deletes the posts.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Post {
    #[persistent(key)]
    id: u32,
    #[persistent(parent = Author, must_exist, on_delete = cascade)]
    author: String,
}

/// A comment keeps its post from being deleted.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Comment {
    #[persistent(key)]
    id: u32,
    #[persistent(parent = Post, on_delete = restrict)]
    post: u32,
}

/// Likes go with their post; nothing is checked on write.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Like {
    #[persistent(key)]
    id: u32,
    #[persistent(parent = Post, on_delete = cascade)]
    post: Option<u32>,
}

/// Today's behaviour, the default: a bookmark may outlive its post.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Bookmark {
    #[persistent(key)]
    id: u32,
    #[persistent(parent = Post)]
    post: u32,
}

/// A store for the models above (this binary also holds `loose::Post`,
/// which shares the post model's name).
fn store() -> Store {
    let models = [Author::INFO, Post::INFO, Comment::INFO, Like::INFO, Bookmark::INFO];
    engine::options().models(models).open_temporary().unwrap()
}

fn author(name: &str) -> Author {
    Author { name: name.into() }
}

fn post(id: u32, author: &str) -> Post {
    Post { id, author: author.into() }
}

#[test]
fn a_child_must_name_a_stored_parent() {
    let store = store();
    let err = post(1, "ada").save(&store).unwrap_err();
    assert!(matches!(&err, Error::ParentMissing { index: "author", parent: "author", .. }), "{err}");
    assert!(!Post::exists(&store, &1).unwrap());
    author("ada").save(&store).unwrap();
    post(1, "ada").insert(&store).unwrap();
    // Within one transaction the parent may come first.
    store
        .write(|tx| {
            tx.save(&author("bob"))?;
            tx.save(&post(2, "bob"))
        })
        .unwrap();
    assert!(matches!(Post::update(&store, &1, |p| p.author = "cy".into()), Err(Error::ParentMissing { .. })));
    assert_eq!(Post::load(&store, &1).unwrap(), Some(post(1, "ada")));
}

#[test]
fn restrict_refuses_the_delete_and_changes_nothing() {
    let store = store();
    author("ada").save(&store).unwrap();
    post(1, "ada").save(&store).unwrap();
    Comment { id: 10, post: 1 }.save(&store).unwrap();
    let err = Post::delete(&store, &1).unwrap_err();
    assert!(matches!(&err, Error::Restricted { model: "post", child: "comment", .. }), "{err}");
    // Deleting the author would cascade into the post, which is restricted: nothing is deleted.
    assert!(Author::delete(&store, "ada").is_err());
    assert!(Author::exists(&store, "ada").unwrap() && Post::exists(&store, &1).unwrap());
    Comment::delete(&store, &10).unwrap();
    assert!(Post::delete(&store, &1).unwrap());
}

#[test]
fn cascade_deletes_children_and_grandchildren_in_the_same_transaction() {
    let store = store();
    author("ada").save(&store).unwrap();
    author("bob").save(&store).unwrap();
    for id in 0..3 {
        post(id, "ada").save(&store).unwrap();
    }
    post(9, "bob").save(&store).unwrap();
    Like { id: 100, post: Some(0) }.save(&store).unwrap();
    Like { id: 101, post: Some(9) }.save(&store).unwrap();
    Like { id: 102, post: None }.save(&store).unwrap();
    Bookmark { id: 200, post: 1 }.save(&store).unwrap();

    assert!(Author::delete(&store, "ada").unwrap());
    assert_eq!(Post::all(&store).unwrap(), [post(9, "bob")]);
    let likes: Vec<u32> = Like::all(&store).unwrap().iter().map(|l| l.id).collect();
    assert_eq!(likes, [101, 102], "the like of a deleted post went with it");
    assert_eq!(Bookmark::load(&store, &200).unwrap(), Some(Bookmark { id: 200, post: 1 }), "leave is the default");
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report}");
}

/// The same post model without integrity, as an older release of the
/// program would define it; opened alone, it can delete an author.
mod loose {
    use serde::{Deserialize, Serialize};
    use skyshelve::Persistent;

    #[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[persistent(name = "post")]
    pub struct Post {
        #[persistent(key)]
        pub id: u32,
        #[persistent(parent = super::Author)]
        pub author: String,
    }
}

#[test]
fn verify_reports_children_whose_parent_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = engine::options().models([Author::INFO, loose::Post::INFO]).open(dir.path()).unwrap();
        loose::Post { id: 1, author: "ghost".into() }.save(&store).unwrap();
    }
    let store = engine::options().models([Author::INFO, Post::INFO]).open(dir.path()).unwrap();
    let report = Post::verify(&store).unwrap();
    assert!(report.problems.iter().any(|p| matches!(p, Problem::DanglingChild { index: "author", .. })), "{report}");
}
