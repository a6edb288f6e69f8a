//! Admin work on a live store: statistics, JSON-lines export and import of
//! any registered model, and compacting backups taken while other
//! processes keep writing.

#[cfg(feature = "json")]
use std::io::{BufRead, Write};
use std::path::Path;

use crate::engine::Reader;
use crate::error::{Error, Result};
#[cfg(feature = "json")]
use crate::progress::Progress;
use crate::store::Store;
#[cfg(feature = "json")]
use crate::tools::tools_of;

/// What [`Store::stats`] reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreStats {
    /// The size of the memory map in bytes (it grows by itself).
    pub map_size: usize,
    /// Bytes of the map in use.
    pub used_bytes: u64,
    /// Reader slots in use, across all processes.
    pub readers: u32,
    /// Reader slots available.
    pub max_readers: u32,
    /// Per model of this program, by name.
    pub models: Vec<ModelStats>,
    /// Per typed map in the store (made by any program), by name.
    pub maps: Vec<MapStats>,
    /// What this process did with the store since it opened it.
    pub activity: crate::Activity,
}

/// Counts for one typed map.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MapStats {
    /// The map's name, as given to [`Store::map`].
    pub name: String,
    /// Entries stored.
    pub entries: u64,
}

/// Counts for one model.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelStats {
    /// The model's name.
    pub name: &'static str,
    /// Records stored.
    pub records: u64,
    /// Entries in each index, in the model's index order (0 for one not
    /// built).
    pub index_entries: Vec<u64>,
    /// The indexes the program declares that the store has not built yet
    /// (seen by a read-only handle; a writable open builds them).
    pub unbuilt_indexes: Vec<&'static str>,
}

/// How many JSON lines an import reports progress after.
#[cfg(feature = "json")]
const PROGRESS_EVERY: u64 = 1000;

impl Store {
    /// Sizes, reader slots and per-model counts.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_admin_stats")]
    /// # struct Item { #[persistent(key)] id: u32, #[persistent(index)] tag: u8 }
    /// let store = Store::temporary()?;
    /// Item { id: 1, tag: 2 }.save(&store)?;
    /// store.map::<String, u32>("settings")?.insert(&"retries".into(), &3)?;
    /// let stats = store.stats()?;
    /// let items = stats.models.iter().find(|m| m.name == "doc_admin_stats").unwrap();
    /// assert_eq!((stats.maps[0].name.as_str(), stats.maps[0].entries), ("settings", 1));
    /// assert_eq!((items.records, items.index_entries.as_slice()), (1, &[1][..]));
    /// assert!(stats.used_bytes <= stats.map_size as u64);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn stats(&self) -> Result<StoreStats> {
        let (map_size, used_bytes, readers, max_readers) = self.shared().engine.usage();
        let models = self.read(|tx| {
            let reader = tx.reads();
            self.shared()
                .all_tables()
                .map(|tables| {
                    let built = |table: &crate::engine::Table| table.exists();
                    Ok(ModelStats {
                        name: tables.info.name,
                        records: reader.len(tables.main)?,
                        index_entries: tables
                            .indexes
                            .iter()
                            .map(|&table| if built(&table) { reader.len(table) } else { Ok(0) })
                            .collect::<Result<_>>()?,
                        unbuilt_indexes: tables
                            .info
                            .indexes
                            .iter()
                            .zip(&tables.indexes)
                            .filter(|(_, table)| !built(table))
                            .map(|(index, _)| index.name)
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let maps = self.map_stats()?;
        let activity = self.shared().engine.counters().snapshot();
        Ok(StoreStats { map_size, used_bytes, readers, max_readers, models, maps, activity })
    }

    /// The typed maps stored, with their entry counts.
    fn map_stats(&self) -> Result<Vec<MapStats>> {
        let engine = &self.shared().engine;
        let tables: Vec<String> =
            engine.table_names()?.into_iter().filter(|table| crate::tables::map_name(table).is_some()).collect();
        let opened = engine.open_tables_that_exist(&tables)?;
        self.read(|tx| {
            let reader = tx.reads();
            let mut maps = Vec::with_capacity(tables.len());
            for table in &tables {
                let (Some(name), Some(&handle)) = (crate::tables::map_name(table), opened.get(table)) else { continue };
                maps.push(MapStats { name: name.to_owned(), entries: reader.len(handle)? });
            }
            Ok(maps)
        })
    }

    #[cfg(feature = "json")]
    /// Writes every record of the model named `model` to `out` as one JSON
    /// object per line, in key order, from one consistent snapshot; returns
    /// how many.
    ///
    /// `"<model>~history"` exports the model's kept versions instead (see
    /// [`Persistent::history`](crate::Persistent::history)), a line each:
    /// `key` (the encoded key in hex), `position`, `at_micros`, `change`,
    /// `model_version` and `record` (`null` for a deletion).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_admin_export")]
    /// # struct Item { #[persistent(key)] id: u32, name: String }
    /// let store = Store::temporary()?;
    /// Item { id: 1, name: "one".into() }.save(&store)?;
    /// let mut out = Vec::new();
    /// store.export_json_lines("doc_admin_export", &mut out, &mut |_| {})?;
    /// assert_eq!(String::from_utf8(out).unwrap(), "{\"id\":1,\"name\":\"one\"}\n");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn export_json_lines(
        &self,
        model: &str,
        out: &mut dyn Write,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<u64> {
        if let Some(map) = registered_map(self, model) {
            let exported = (map.export)(self, map.name, out)?;
            progress(Progress { done: exported, total: Some(exported) });
            return Ok(exported);
        }
        if let Some(model) = model.strip_suffix(crate::history::SUFFIX) {
            return self.export_history(model, out, progress);
        }
        self.export_records(model, out, progress, None)
    }

    #[cfg(feature = "json")]
    /// [`export_json_lines`](Store::export_json_lines) for salvage: a
    /// record that does not decode is left out and handed to `skipped`
    /// (`record <its key>`, and why), and the export goes on. On LMDB the
    /// model's pages are checked first (LMDB keeps no checksums, and
    /// following a damaged page could crash the process): if any is
    /// damaged, the records are read from the intact pages instead, and
    /// each damaged page, with whatever it held, is handed to `skipped` as
    /// `page <number>`. Returns how many records were written.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_admin_salvage")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// let store = Store::temporary()?;
    /// Item { id: 1 }.save(&store)?;
    /// let (mut out, mut skipped) = (Vec::new(), Vec::new());
    /// let written = store.export_json_lines_skipping_damaged(
    ///     "doc_admin_salvage", &mut out, &mut |_| {}, &mut |key, why| skipped.push(format!("{key}: {why}")),
    /// )?;
    /// assert_eq!((written, skipped.len()), (1, 0), "nothing damaged here");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn export_json_lines_skipping_damaged(
        &self,
        model: &str,
        out: &mut dyn Write,
        progress: &mut (dyn FnMut(Progress) + Send),
        skipped: &mut (dyn FnMut(String, Error) + Send),
    ) -> Result<u64> {
        self.export_records(model, out, progress, Some(skipped))
    }

    #[cfg(feature = "json")]
    fn export_records(
        &self,
        model: &str,
        out: &mut dyn Write,
        progress: &mut (dyn FnMut(Progress) + Send),
        mut skipped: Option<&mut (dyn FnMut(String, Error) + Send)>,
    ) -> Result<u64> {
        let tables = self.shared().tables_named(model)?;
        if let Some(skip) = skipped.as_deref_mut()
            && !self.shared().engine.damaged_pages(&[tables.info.name])?.is_empty()
        {
            return self.export_intact_pages(tables, out, progress, skip);
        }
        self.read(|tx| {
            let reader = tx.reads();
            let total = reader.len(tables.main)?;
            let mut done: u64 = 0;
            for entry in reader.range(tables.main, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)? {
                let (key, bytes) = entry?;
                // `None`: an expired record, gone for every reader.
                let json = match ((tools_of(tables.info)?.to_json)(bytes), skipped.as_deref_mut()) {
                    (Ok(Some(json)), _) => json,
                    (Ok(None), _) => continue,
                    (Err(err), Some(skip)) => {
                        skip(format!("record {}", (tables.info.ops.describe_key)(key)), err);
                        continue;
                    }
                    (Err(err), None) => return Err(err),
                };
                out.write_all(json.as_bytes())?;
                out.write_all(b"\n")?;
                done += 1;
                if done.is_multiple_of(PROGRESS_EVERY) || done == total {
                    progress(Progress { done, total: Some(total) });
                }
            }
            out.flush()?;
            Ok(done)
        })
    }

    /// The salvage export of a model whose table has damaged pages: the
    /// records of its intact pages, read from the file around the damage.
    #[cfg(feature = "json")]
    fn export_intact_pages(
        &self,
        tables: &crate::tables::ModelTables,
        out: &mut dyn Write,
        progress: &mut (dyn FnMut(Progress) + Send),
        skipped: &mut (dyn FnMut(String, Error) + Send),
    ) -> Result<u64> {
        let (mut done, mut failed) = (0, None);
        let to_json = tools_of(tables.info)?.to_json;
        let damage = self.shared().engine.salvage(tables.info.name, &mut |key, bytes| match to_json(bytes) {
            Ok(Some(json)) if failed.is_none() => match out.write_all(format!("{json}\n").as_bytes()) {
                Ok(()) => done += 1,
                Err(err) => failed = Some(err),
            },
            Ok(_) => {}
            Err(err) => skipped(format!("record {}", (tables.info.ops.describe_key)(key)), err),
        })?;
        if let Some(err) = failed {
            return Err(err.into());
        }
        for page in damage {
            let reason = format!("{page}, with whatever it held");
            skipped(format!("page {}", page.page), Error::DamagedStore { path: self.path().to_owned(), reason });
        }
        out.flush()?;
        progress(Progress { done, total: None });
        Ok(done)
    }

    #[cfg(feature = "json")]
    /// Saves every JSON line of `input` as a record of the model named
    /// `model` (inserting or replacing, indexes kept in step), all in one
    /// transaction: a bad line or a unique violation imports nothing.
    /// Returns how many records were imported.
    ///
    /// `"<model>~history"` puts back exported history, in one transaction:
    /// each record named gets exactly the exported versions (records in the
    /// current format), and positions go on after the highest. Import the
    /// records first: importing a record is a change, which history would
    /// otherwise keep as a version of its own.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_admin_import")]
    /// # struct Item { #[persistent(key)] id: u32, name: String }
    /// let store = Store::temporary()?;
    /// let lines = "{\"id\":1,\"name\":\"one\"}\n{\"id\":2,\"name\":\"two\"}\n";
    /// let imported = store.import_json_lines("doc_admin_import", &mut lines.as_bytes(), &mut |_| {})?;
    /// assert_eq!(imported, 2);
    /// assert_eq!(Item::load(&store, &2)?.unwrap().name, "two");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn import_json_lines(
        &self,
        model: &str,
        input: &mut dyn BufRead,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<u64> {
        if let Some(map) = registered_map(self, model) {
            let imported = (map.import)(self, map.name, &read_lines(input)?)?;
            progress(Progress { done: imported, total: Some(imported) });
            return Ok(imported);
        }
        let lines = read_lines(input)?;
        if let Some(model) = model.strip_suffix(crate::history::SUFFIX) {
            let table = history_table(self, model)?;
            let import = tools_of(self.shared().tables_named(model)?.info)?.import_history;
            self.writable()?;
            let imported = self.shared().engine.write(|txn| import(txn, table, &lines))?;
            progress(Progress { done: imported, total: Some(imported) });
            return Ok(imported);
        }
        let tables = self.shared().tables_named(model)?;
        let total = lines.iter().filter(|(_, line)| !line.trim().is_empty()).count() as u64;
        self.write(|tx| {
            let mut done: u64 = 0;
            for (number, line) in lines.iter().filter(|(_, line)| !line.trim().is_empty()) {
                (tools_of(tables.info)?.save_json)(tx, line).map_err(|err| at_line(*number, err))?;
                done += 1;
                if done.is_multiple_of(PROGRESS_EVERY) || done == total {
                    progress(Progress { done, total: Some(total) });
                }
            }
            Ok(done)
        })
    }

    /// Writes a compacted copy of the whole store into the folder `dir`
    /// (created, owner-only), from one consistent snapshot, while other
    /// threads and processes keep writing. Open the copy with
    /// [`Store::open`], or put it back with [`Store::restore`]. On SlateDB:
    /// [`Error::Unsupported`] (export the models, or rely on the object
    /// store's own copies).
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let backups = tempfile::tempdir()?;
    /// store.backup(backups.path().join("monday"))?;
    /// let copy = skyshelve::Store::open(backups.path().join("monday"))?;
    /// assert!(copy.verify()?.is_clean());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backup(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        crate::fs::create_private_dir(dir)?;
        if crate::engine::holds_store(dir) {
            return Err(already_holds_store("the backup folder"));
        }
        self.shared().engine.backup(dir)
    }

    /// Puts the backup in folder `backup` back as a store in folder
    /// `target`, which must not hold a store yet. The copy is written whole
    /// or not at all: a restore cut short (a crash, a full disk) leaves no
    /// store in `target`, and can be run again.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let work = tempfile::tempdir()?;
    /// store.backup(work.path().join("backup"))?;
    /// skyshelve::Store::restore(work.path().join("backup"), work.path().join("restored"))?;
    /// assert!(skyshelve::Store::open(work.path().join("restored"))?.verify()?.is_clean());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restore(backup: impl AsRef<Path>, target: impl AsRef<Path>) -> Result<()> {
        let (backup, target) = (backup.as_ref(), target.as_ref());
        crate::fs::create_private_dir(target)?;
        if crate::engine::holds_store(target) {
            return Err(already_holds_store("the target folder"));
        }
        crate::engine::restore(backup, target)
    }
}

#[cfg(feature = "json")]
impl Store {
    /// The kept versions of every record of `model`, as JSON lines.
    fn export_history(
        &self,
        model: &str,
        out: &mut dyn Write,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<u64> {
        let table = history_table(self, model)?;
        let to_json = tools_of(self.shared().tables_named(model)?.info)?.history_to_json;
        self.read(|tx| {
            let reader = tx.reads();
            let mut done: u64 = 0;
            for entry in reader.range(table, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)? {
                let (entry_key, value) = entry?;
                let Some(json) = to_json(entry_key, value)? else { continue };
                out.write_all(json.as_bytes())?;
                out.write_all(b"\n")?;
                done += 1;
                if done.is_multiple_of(PROGRESS_EVERY) {
                    progress(Progress { done, total: None });
                }
            }
            out.flush()?;
            progress(Progress { done, total: Some(done) });
            Ok(done)
        })
    }
}

/// The history table of the model named `model`.
#[cfg(feature = "json")]
fn history_table(store: &Store, model: &str) -> Result<crate::engine::Table> {
    let tables = store.shared().tables_named(model)?;
    match tables.history {
        Some(table) => Ok(table),
        None if tables.info.history == 0 => Err(Error::HistoryNotKept { model: tables.info.name }),
        None => Err(Error::ReadOnly),
    }
}

fn already_holds_store(folder: &str) -> Error {
    Error::Io(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("{folder} already holds a store")))
}

/// The typed map registered as `name` (see `map_type!`), when no model of
/// the store has that name.
#[cfg(feature = "json")]
fn registered_map(store: &Store, name: &str) -> Option<&'static crate::MapInfo> {
    if store.shared().tables_named(name).is_ok() {
        return None;
    }
    crate::maps().into_iter().find(|map| map.name == name)
}

/// One entry of a typed map, as a JSON line.
#[cfg(feature = "json")]
#[derive(serde::Serialize, serde::Deserialize)]
struct MapEntry<K, V> {
    key: K,
    value: V,
}

/// Writes every entry of the map `name` as JSON lines; registered by
/// `map_type!`. An entry JSON cannot hold exactly is refused, as a record.
#[doc(hidden)]
#[cfg(feature = "json")]
pub fn export_map<K, V>(store: &Store, name: &str, out: &mut dyn Write) -> Result<u64>
where
    K: crate::Key + serde::Serialize + serde::de::DeserializeOwned,
    V: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let map = store.map::<K, V>(name)?;
    let mut exported = 0;
    map.for_each(|key, value| {
        let entry = MapEntry { key, value };
        let what = || format!("map {name} entry {:?} as JSON", entry.key);
        let json = serde_json::to_string(&entry).map_err(|e| Error::Encode { what: what(), reason: e.to_string() })?;
        let back: Option<MapEntry<K, V>> = serde_json::from_str(&json).ok();
        if back.is_none_or(|back| serde_json::to_string(&back).ok().as_deref() != Some(json.as_str())) {
            let reason = "JSON cannot hold it exactly, so it would not import as it is".to_owned();
            return Err(Error::Encode { what: what(), reason });
        }
        out.write_all(json.as_bytes())?;
        out.write_all(b"\n")?;
        exported += 1;
        Ok(())
    })?;
    out.flush()?;
    Ok(exported)
}

/// Saves numbered JSON lines as entries of the map `name`, in one
/// transaction; registered by `map_type!`.
#[doc(hidden)]
#[cfg(feature = "json")]
pub fn import_map<K, V>(store: &Store, name: &str, lines: &[(usize, String)]) -> Result<u64>
where
    K: crate::Key + serde::Serialize + serde::de::DeserializeOwned,
    V: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let map = store.map::<K, V>(name)?;
    store.write(|tx| {
        let mut imported = 0;
        for (number, line) in lines.iter().filter(|(_, line)| !line.trim().is_empty()) {
            let entry: MapEntry<K, V> = serde_json::from_str(line).map_err(|e| {
                at_line(*number, Error::Decode { what: format!("map {name} entry from JSON"), reason: e.to_string() })
            })?;
            map.insert_in(tx, &entry.key, &entry.value).map_err(|err| at_line(*number, err))?;
            imported += 1;
        }
        Ok(imported)
    })
}

/// Without the `json` feature `map_type!` still registers these; they are
/// never called, since export and import do not exist then.
#[doc(hidden)]
#[cfg(not(feature = "json"))]
pub fn export_map<K, V>(_store: &Store, name: &str, _out: &mut dyn std::io::Write) -> Result<u64> {
    Err(Error::Encode { what: format!("map {name}"), reason: "built without the json feature".into() })
}

/// See the other `export_map`.
#[doc(hidden)]
#[cfg(not(feature = "json"))]
pub fn import_map<K, V>(_store: &Store, name: &str, _lines: &[(usize, String)]) -> Result<u64> {
    Err(Error::Decode { what: format!("map {name}"), reason: "built without the json feature".into() })
}

/// The lines of `input` with their numbers (from 1); a line that is not
/// UTF-8 is an error naming it.
#[cfg(feature = "json")]
fn read_lines(input: &mut dyn BufRead) -> Result<Vec<(usize, String)>> {
    let mut lines = Vec::new();
    for (index, line) in input.split(b'\n').enumerate() {
        let number = index + 1;
        let line = String::from_utf8(line?).map_err(|e| at_line(number, Error::Io(std::io::Error::other(e))))?;
        lines.push((number, line));
    }
    Ok(lines)
}

/// `err`, said to come from line `number` of an import.
#[cfg(feature = "json")]
fn at_line(number: usize, err: Error) -> Error {
    Error::Import { line: number, source: Box::new(err) }
}
