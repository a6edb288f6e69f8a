use serde::{Deserialize, Serialize};
use skyshelve::{Persistent, Store};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "users", version = 2)]
pub struct User {
    #[persistent(key)]
    username: String,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: Option<String>,
    #[persistent(index)]
    age: u8,
    logins: u64,
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone)]
struct Post {
    #[persistent(key)]
    id: u64,
    #[persistent(parent = User)]
    author: String,
    #[persistent(parent = Post, unique)]
    pinned_reply_of: Option<u64>,
    #[persistent(index(with = Post::tag_values))]
    tags: Vec<String>,
    #[persistent(index(with = Post::borrowed_labels))]
    labels: Vec<String>,
    #[persistent(index(with = Post::words, value = (String, u32)))]
    body: String,
    #[persistent(index)]
    r#type: [u8; 4],
}

impl Post {
    fn tag_values(&self) -> Vec<String> {
        self.tags.iter().map(|t| t.to_lowercase()).collect()
    }

    fn borrowed_labels(&self) -> &[String] {
        &self.labels
    }

    fn words(&self) -> impl Iterator<Item = (String, u32)> + '_ {
        self.body.split(' ').map(|w| (w.to_owned(), 0))
    }
}

#[derive(Persistent, Serialize, Deserialize)]
struct Signed {
    #[persistent(key)]
    at: (i64, bool, char, Vec<u8>, Option<i16>, [u32; 2]),
}

fn main() {
    let store = Store::temporary().unwrap();
    let user = User { username: "ada".into(), email: "a@x".into(), team: None, age: 36, logins: 0 };
    user.save(&store).unwrap();
    let post = Post {
        id: 1,
        author: "ada".into(),
        pinned_reply_of: None,
        tags: vec!["A".into()],
        labels: vec!["x".into()],
        body: "hi there".into(),
        r#type: *b"note",
    };
    post.save(&store).unwrap();
    assert_eq!(Post::scan_index(&store, Post::BODY, &("there".to_string(), 0)).unwrap().len(), 1);
    assert_eq!(Post::scan_index(&store, Post::TYPE, b"note").unwrap().len(), 1);
    assert_eq!(Post::children(&store, Post::AUTHOR, "ada").unwrap().len(), 1);
    assert_eq!(Post::scan_index(&store, Post::LABELS, "x").unwrap().len(), 1);
    assert!(Post::children(&store, Post::PINNED_REPLY_OF, &7).unwrap().is_empty());
    let key = (-1, true, 'x', vec![0], Some(-2), [1, 2]);
    Signed { at: key.clone() }.save(&store).unwrap();
    assert!(Signed::exists(&store, &key).unwrap());
}
