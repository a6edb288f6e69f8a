//! The operations of each model that whole-store work needs: JSON export
//! and import of records and of their history, and migration. The derive
//! registers them here, at the top, beside its `ModelInfo` (whose
//! `ModelOps` are what the layers below need); `admin.rs` and the CLI find
//! a model's by its `ModelInfo`.

use crate::error::{Error, Result};
use crate::model::{ModelInfo, ModelSlot};
use crate::persistent::Persistent;
use crate::store::Store;
use crate::txn::WriteTx;

/// One model's whole-store operations, registered by the derive with
/// [`ModelTools::of`].
#[doc(hidden)]
#[derive(Debug)]
pub struct ModelTools {
    /// The model's slot, which tells it apart from another model of the
    /// same name (a program may hold several and open one of them).
    slot: &'static ModelSlot,
    /// A stored record as JSON, for export; `None` once it has expired.
    /// (Export and import need the `json` feature.)
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    pub(crate) to_json: fn(&[u8]) -> Result<Option<String>>,
    /// Saves a record given as JSON, for import.
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    pub(crate) save_json: fn(&mut WriteTx<'_>, &str) -> Result<()>,
    /// [`Persistent::migrate`], for admin tools that know the model by name.
    pub(crate) migrate: fn(&Store, &mut (dyn FnMut(crate::Progress) + Send)) -> Result<u64>,
    /// A kept version (entry key, value) as JSON, for exporting history.
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    pub(crate) history_to_json: fn(&[u8], &[u8]) -> Result<Option<String>>,
    /// Puts back exported history; see `history::import_json`.
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    pub(crate) import_history: ImportHistoryFn,
}

/// Puts back the JSON lines (numbered) of exported history into the
/// model's history table; returns how many versions were written.
pub(crate) type ImportHistoryFn =
    fn(&mut dyn crate::engine::Writer, crate::engine::Table, &[(usize, String)]) -> Result<u64>;

inventory::collect!(ModelTools);

impl ModelTools {
    /// The operations of model `M`.
    #[must_use]
    pub const fn of<M: Persistent>() -> ModelTools {
        ModelTools {
            slot: M::INFO.slot,
            to_json: record_to_json::<M>,
            save_json: save_json::<M>,
            migrate: M::migrate,
            history_to_json: crate::history::version_to_json::<M>,
            import_history: crate::history::import_json::<M>,
        }
    }
}

/// The registered operations of the model `info` describes.
pub(crate) fn tools_of(info: &ModelInfo) -> Result<&'static ModelTools> {
    inventory::iter::<ModelTools>
        .into_iter()
        .find(|tools| std::ptr::eq(tools.slot, info.slot))
        .ok_or(Error::UnknownModel { name: info.name.to_owned() })
}

impl ModelInfo {
    /// The number of records of this model in `store`.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// #[persistent(name = "doc_model_info_count")]
    /// struct Note { #[persistent(key)] id: u32 }
    ///
    /// let store = Store::temporary()?;
    /// Note { id: 1 }.save(&store)?;
    /// for model in skyshelve::models() {
    ///     if model.name == "doc_model_info_count" {
    ///         assert_eq!(model.count_in(&store)?, 1);
    ///     }
    /// }
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn count_in(&self, store: &Store) -> Result<u64> {
        let tables = store.shared().tables_of(self)?;
        store.read(|tx| crate::engine::Reader::len(tx.reads(), tables.main))
    }

    /// [`Persistent::migrate`](crate::Persistent::migrate) for this model, for admin work that goes
    /// through [`models`](crate::models) rather than a type.
    ///
    /// ```
    /// # let store = skyshelve::Store::temporary()?;
    /// for model in skyshelve::models() {
    ///     let rewritten = model.migrate_in(&store, &mut |_| {})?;
    ///     assert_eq!(rewritten, 0, "{} has no older records", model.name);
    /// }
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn migrate_in(&self, store: &Store, progress: &mut (dyn FnMut(crate::Progress) + Send)) -> Result<u64> {
        (tools_of(self)?.migrate)(store, progress)
    }
}

/// A stored record of `M` as a JSON object; registered in `ModelInfo`.
///
/// JSON cannot hold every value exactly (a NaN or infinite float becomes
/// `null`, `Some(None)` becomes `None`), and an export that import would
/// read back differently is worse than none: each line is read back and
/// compared, and a record that would not round-trip is refused by name.
#[cfg(feature = "json")]
pub(crate) fn record_to_json<M: Persistent>(bytes: &[u8]) -> Result<Option<String>> {
    let Some(record) = crate::txn::decode_visible::<M>(bytes, crate::expiry::now_millis())? else { return Ok(None) };
    let what = || format!("{} record {:?} as JSON", M::INFO.name, record.key());
    let json = serde_json::to_string(&record).map_err(|e| Error::Encode { what: what(), reason: e.to_string() })?;
    let read_back: Option<M> = serde_json::from_str(&json).ok();
    if read_back.is_none_or(|read_back| encoded(&read_back) != encoded(&record)) {
        let reason = "JSON cannot hold one of its values exactly (a NaN or infinite float, Some(None), ...), \
                      so it would not import as it is"
            .to_owned();
        return Err(Error::Encode { what: what(), reason });
    }
    Ok(Some(json))
}

/// A record's stored encoding, to compare two records without `PartialEq`.
#[cfg(feature = "json")]
fn encoded<M: Persistent>(record: &M) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    crate::codec::value::encode_into(record, M::INFO.version, M::INFO.name, &mut bytes).ok().map(|()| bytes)
}

/// Saves one JSON object as a record of `M`; registered in `ModelInfo`.
#[cfg(feature = "json")]
pub(crate) fn save_json<M: Persistent>(tx: &mut WriteTx<'_>, line: &str) -> Result<()> {
    let record: M = serde_json::from_str(line)
        .map_err(|e| Error::Decode { what: format!("{} from JSON", M::INFO.name), reason: e.to_string() })?;
    tx.save(&record)
}

/// Without the `json` feature the derive still registers these; they are
/// never called, since export and import do not exist then.
#[cfg(not(feature = "json"))]
pub(crate) fn record_to_json<M: Persistent>(_bytes: &[u8]) -> Result<Option<String>> {
    Err(Error::Encode { what: M::INFO.name.to_owned(), reason: "built without the json feature".into() })
}

/// See the other `record_to_json`.
#[cfg(not(feature = "json"))]
pub(crate) fn save_json<M: Persistent>(_tx: &mut WriteTx<'_>, _line: &str) -> Result<()> {
    Err(Error::Decode { what: M::INFO.name.to_owned(), reason: "built without the json feature".into() })
}
