//! A program's own admin tool: its models, a command of its own (`seed`),
//! and skyshelve's admin commands added to its command line in one line.
//!
//! ```text
//! cargo run --example shelf_admin --features cli -- seed /tmp/shelf --users 20000
//! cargo run --example shelf_admin --features cli -- stats /tmp/shelf
//! cargo run --example shelf_admin --features cli -- verify /tmp/shelf
//! cargo run --example shelf_admin --features cli -- export /tmp/shelf user -o /tmp/users.jsonl
//! cargo run --example shelf_admin --features cli -- backup /tmp/shelf /tmp/shelf-backup
//! cargo run --example shelf_admin --features cli -- --help
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use serde::{Deserialize, Serialize};
use skyshelve::{Persistent, Store};

#[derive(Persistent, Serialize, Deserialize, Debug)]
struct User {
    #[persistent(key)]
    id: u32,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: String,
}

#[derive(Persistent, Serialize, Deserialize, Debug)]
struct Post {
    #[persistent(key)]
    id: u64,
    #[persistent(parent = User)]
    author: u32,
    title: String,
}

/// The program's command line: its own commands beside skyshelve's.
#[derive(Parser)]
#[command(about = "Admin tool of the shelf example")]
enum Cli {
    /// Fill a store with sample users and posts.
    Seed {
        /// The store's folder (created if needed).
        store: PathBuf,
        /// How many users (each with three posts).
        #[arg(long, default_value_t = 10_000)]
        users: u32,
    },
    #[command(flatten)]
    Admin(skyshelve::cli::Command),
}

const TEAMS: [&str; 4] = ["red", "blue", "green", "gold"];

fn seed(store: &PathBuf, users: u32) -> skyshelve::Result<()> {
    let store = Store::open(store)?;
    // Batches keep each transaction short, so other processes get their turn.
    for first in (0..users).step_by(5_000) {
        store.write(|tx| {
            for id in first..users.min(first + 5_000) {
                let team = TEAMS[id as usize % TEAMS.len()].to_owned();
                tx.save(&User { id, email: format!("user{id}@example.com"), team })?;
                for n in 0..3 {
                    let post = Post { id: u64::from(id) * 3 + n, author: id, title: format!("post {n} of {id}") };
                    tx.save(&post)?;
                }
            }
            Ok(())
        })?;
    }
    println!("{} users and {} posts stored", User::count(&store)?, Post::count(&store)?);
    Ok(())
}

fn main() -> ExitCode {
    match Cli::parse() {
        Cli::Seed { store, users } => match seed(&store, users) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(2)
            }
        },
        Cli::Admin(command) => command.run_and_report(),
    }
}
