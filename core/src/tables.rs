//! The names of the store's tables, in one place. A model's records live
//! in a table named after the model, each index in `<model>/<index>`; the
//! names the store reserves start with `~`, which no model name can (the
//! derive allows identifier characters only), so they never meet.

use crate::error::{Error, Result};
use crate::model::ModelInfo;

/// Record-lock markers (see `lock`).
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
