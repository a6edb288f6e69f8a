//! SQLite through rusqlite (bundled), WAL, prepared statements.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Db, Result, Sync};
use crate::model::UserData;

/// One connection per thread that uses it: SQLite connections are not
/// shared between threads here, as an application would not share them.
pub struct Sqlite {
    path: std::path::PathBuf,
    sync: Sync,
    pool: Mutex<Vec<Connection>>,
    /// Held by each write transaction when the writers are serialised.
    turn: Option<Mutex<()>>,
}

/// How the writers of one process meet SQLite's write lock.
pub enum Writers {
    /// Each takes it itself (`BEGIN IMMEDIATE`); a writer that finds it
    /// taken sleeps in SQLite's busy handler and tries again.
    Concurrent,
    /// They take turns behind a mutex first, so none sleeps in SQLite.
    Serialised,
}

impl Sqlite {
    pub fn open(dir: &Path, sync: Sync, writers: Writers) -> Result<Self> {
        let turn = matches!(writers, Writers::Serialised).then(|| Mutex::new(()));
        let db = Sqlite { path: dir.join("bench.sqlite"), sync, pool: Mutex::new(Vec::new()), turn };
        let conn = db.connect()?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
                                               team INTEGER NOT NULL, score INTEGER NOT NULL, bio TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS users_team ON users(team);",
        )?;
        db.pool.lock().unwrap().push(conn);
        Ok(db)
    }

    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if self.sync == Sync::Durable { "FULL" } else { "OFF" })?;
        Ok(conn)
    }

    /// Runs the write `f`, after the writer's turn when writers are serialised.
    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let _turn = self.turn.as_ref().map(|turn| turn.lock().unwrap());
        self.with(f)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let pooled = self.pool.lock().unwrap().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = f(&mut conn);
        self.pool.lock().unwrap().push(conn);
        result
    }
}

/// SQLite integers are i64; benchmark ids stay far below i64::MAX.
fn sql_id(id: u64) -> i64 {
    i64::try_from(id).expect("benchmark ids fit in i64")
}

fn row(row: &rusqlite::Row) -> rusqlite::Result<UserData> {
    let id: i64 = row.get(0)?;
    Ok(UserData { id: id as u64, email: row.get(1)?, team: row.get(2)?, score: row.get(3)?, bio: row.get(4)? })
}

const INSERT: &str = "INSERT INTO users (id, email, team, score, bio) VALUES (?1, ?2, ?3, ?4, ?5)";
const SELECT: &str = "SELECT id, email, team, score, bio FROM users";

fn insert(conn: &Connection, user: &UserData) -> Result<()> {
    conn.prepare_cached(INSERT)?.execute(params![sql_id(user.id), user.email, user.team, user.score, user.bio])?;
    Ok(())
}

impl Db for Sqlite {
    fn insert_batch(&self, users: &[UserData]) -> Result<()> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            for user in users {
                insert(&tx, user)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn insert_one(&self, user: &UserData) -> Result<()> {
        // BEGIN IMMEDIATE takes the write lock up front, as a careful user
        // of concurrent writers does: an autocommit INSERT starts as a
        // reader and can only upgrade, so under 8 writers it meets
        // SQLITE_BUSY and the busy handler's sleeps far more often.
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            insert(&tx, user)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn get(&self, id: u64) -> Result<Option<UserData>> {
        self.with(|conn| {
            Ok(conn.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?.query_row([sql_id(id)], row).optional()?)
        })
    }

    fn get_by_email(&self, email: &str) -> Result<Option<UserData>> {
        self.with(|conn| {
            Ok(conn.prepare_cached(&format!("{SELECT} WHERE email = ?1"))?.query_row([email], row).optional()?)
        })
    }

    fn scan_team(&self, team: u32) -> Result<usize> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached(&format!("{SELECT} WHERE team = ?1"))?;
            let mut count = 0;
            for user in statement.query_map([team], row)? {
                count += usize::from(user?.team == team);
            }
            Ok(count)
        })
    }

    fn range_teams(&self, teams: std::ops::Range<u32>) -> Result<usize> {
        self.with(|conn| {
            let sql = format!("{SELECT} WHERE team >= ?1 AND team < ?2 ORDER BY team");
            let mut statement = conn.prepare_cached(&sql)?;
            let mut count = 0;
            for user in statement.query_map([teams.start, teams.end], row)? {
                count += usize::from(teams.contains(&user?.team));
            }
            Ok(count)
        })
    }

    fn increment(&self, id: u64) -> Result<()> {
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut user = tx.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?.query_row([sql_id(id)], row)?;
            user.score += 1;
            tx.prepare_cached("UPDATE users SET score = ?1 WHERE id = ?2")?.execute(params![user.score, sql_id(id)])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn stream_all(&self, visit: &mut dyn FnMut(&UserData)) -> Result<u64> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached(SELECT)?;
            let mut count = 0;
            for user in statement.query_map([], row)? {
                visit(&user?);
                count += 1;
            }
            Ok(count)
        })
    }

    fn index_sizes(&self) -> Result<(u64, u64)> {
        self.with(|conn| {
            let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
            let emails = count("SELECT count(email) FROM users INDEXED BY sqlite_autoindex_users_1")?;
            let teams = count("SELECT count(team) FROM users INDEXED BY users_team")?;
            Ok((emails as u64, teams as u64))
        })
    }
}
