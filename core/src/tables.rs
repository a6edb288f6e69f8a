//! The store's tables: their names, in one place, and the per-store state
//! that finds them (`Shared`, `ModelTables`). A model's records live
//! in a table named after the model, each index in `<model>/<index>`; the
//! names the store reserves start with `~` (`engine::RESERVED_PREFIX`),
//! which no model name can (the derive allows identifier characters
//! only), so they never meet; the engine tells a store from another
//! program's LMDB environment by them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::engine::{Engine, Table};
use crate::error::{Error, Result};
use crate::group::Group;
use crate::locks::Locks;
use crate::model::{Model, ModelInfo};

/// Record-lock markers (see `locks.rs`).
pub(crate) const LOCKS: &str = "~locks";

/// The index catalog (see `catalog`).
pub(crate) const CATALOG: &str = "~catalog";

/// Sequence counters (see `sequence`).
pub(crate) const SEQUENCES: &str = "~sequences";

/// The table of one index of a model.
pub(crate) fn index_table(model: &ModelInfo, index: &str) -> String {
    format!("{}/{index}", model.name)
}

/// The table of a model's record history (see `history`): index names
/// are identifiers, so none is `~history`.
pub(crate) fn history_table(model: &ModelInfo) -> String {
    format!("{}/~history", model.name)
}

/// The table of the typed map named `name`.
pub(crate) fn map_table(name: &str) -> String {
    format!("{MAP_PREFIX}{name}")
}

/// What every map table's name starts with.
const MAP_PREFIX: &str = "~map/";

/// The name of the map whose table is `table`, if it is a map's.
pub(crate) fn map_name(table: &str) -> Option<&str> {
    table.strip_prefix(MAP_PREFIX)
}

/// Model and map names become table names: non-empty, no `/` (it
/// separates a model from its indexes), no NUL, at most 255 bytes.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "names must not be empty"
    } else if name.contains('/') {
        "names must not contain '/'"
    } else if name.contains('\0') {
        "names must not contain NUL"
    } else if name.len() > 255 {
        "names are at most 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName { name: name.to_owned(), reason })
}

/// The tables of one model.
pub(crate) struct ModelTables {
    pub info: &'static ModelInfo,
    pub main: Table,
    pub indexes: Vec<Table>,
    /// The record history, for a model that keeps one (see `history`).
    pub history: Option<Table>,
    /// The position of the model's expiry index, if it has one (see
    /// `expiry`), found once at open.
    pub expiry: Option<usize>,
    /// The model's catalog entry when this program's indexes are complete,
    /// encoded: checks compare stored bytes against it.
    pub catalog_entry: Vec<u8>,
    /// The model's layout in this program, traced once at open: the writes
    /// that compare it with the catalog's (during an index build, say) must
    /// not trace it each time.
    pub layout: crate::layout::Layout,
    /// The last version of the catalog (`Reader::table_version`) in which
    /// the stored catalog entry was found equal to `catalog_entry`: queries
    /// and writes that see that version need not look again. `u64::MAX`
    /// until one was.
    pub catalog_seen_in: AtomicU64,
    /// The parent indexes of this store's models that point at this model
    /// and ask for something when a record of it is deleted.
    pub referrers: Vec<Referrer>,
    /// The model's watch topic, as a bit (see `engine::topic_of`).
    pub topic: u64,
}

/// A parent index pointing at a model, with an `on_delete` action.
pub(crate) struct Referrer {
    pub child: &'static ModelInfo,
    pub position: usize,
    pub on_delete: crate::OnDelete,
}

/// The parent indexes among `models` that point at `parent` and act when
/// a record of it is deleted.
pub(crate) fn referrers_of(parent: &ModelInfo, models: &[&'static ModelInfo]) -> Vec<Referrer> {
    let mut referrers = Vec::new();
    for &child in models {
        for (position, index) in child.indexes.iter().enumerate() {
            let points_here = index.parent().is_some_and(|info| info.name == parent.name);
            if points_here && index.on_delete != crate::OnDelete::Leave {
                referrers.push(Referrer { child, position, on_delete: index.on_delete });
            }
        }
    }
    referrers
}

/// The state of an open store that the layers below `Store` share: the
/// engine, every model's tables, and the store's own tables. `Store` keeps
/// it with what only the process needs (see `store::Opened`).
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    /// By `ModelInfo::slot` index; `None` for numbers of no model here.
    pub(crate) models: Vec<Option<ModelTables>>,
    /// The maps opened in this process: each table, with the key and
    /// value type names its shape was checked for.
    pub(crate) maps: Mutex<HashMap<String, (Table, MapTypes)>>,
    pub(crate) lock_table: Table,
    /// The index catalog; see `catalog`.
    pub(crate) catalog: Table,
    /// Sequence counters; see `sequence`. Absent only from a store opened
    /// read-only that no program with sequences has written.
    pub(crate) sequences: Option<Table>,
    /// Set when concurrent durable writes share commits.
    pub(crate) group: Option<Group>,
    pub(crate) locks: Locks,
    /// How long a write waits for a record lock held elsewhere.
    pub(crate) lock_wait: Duration,
}

impl Shared {
    /// The tables of every model of this program.
    pub(crate) fn all_tables(&self) -> impl Iterator<Item = &ModelTables> {
        self.models.iter().flatten()
    }

    /// The tables of the model named `name`.
    #[cfg(feature = "json")]
    pub(crate) fn tables_named(&self, name: &str) -> Result<&ModelTables> {
        self.all_tables()
            .find(|tables| tables.info.name == name)
            .ok_or_else(|| Error::UnknownModel { name: name.to_owned() })
    }

    /// The tables of model `M`, created when the store opened.
    pub(crate) fn tables<M: Model>(&self) -> Result<&ModelTables> {
        self.tables_of(M::INFO)
    }

    /// The tables of the model `info` describes.
    pub(crate) fn tables_of(&self, info: &ModelInfo) -> Result<&ModelTables> {
        self.models.get(info.slot.index()).and_then(Option::as_ref).ok_or(Error::ModelNotOpened { model: info.name })
    }
}

/// The Rust names of a map's key and value types, as this process
/// checked them: a second open with the same names needs no new check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapTypes {
    key: &'static str,
    value: &'static str,
}

impl MapTypes {
    pub(crate) fn of<K, V>() -> MapTypes {
        MapTypes { key: std::any::type_name::<K>(), value: std::any::type_name::<V>() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reserved_name_starts_with_the_prefix_the_engine_looks_for() {
        for name in [LOCKS, CATALOG, SEQUENCES, MAP_PREFIX] {
            assert!(name.starts_with(crate::engine::RESERVED_PREFIX), "{name}");
        }
    }
}
