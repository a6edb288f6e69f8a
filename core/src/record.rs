//! A stored record of a model: decoding it (upgrading one an older
//! version wrote), its index values, and the type-erased operations over
//! them that the derive registers (`ModelOps::of`).

use crate::codec::key::{describe_encoded, encode_to_vec};
use crate::error::{Error, Result};
use crate::model::{IndexEntries, Model, ModelOps, StoredRecord};

impl ModelOps {
    /// The operations of model `M`.
    #[must_use]
    pub const fn of<M: Model>() -> ModelOps {
        ModelOps {
            layout: crate::layout::of::<M>,
            describe_key: describe_encoded::<M::Key>,
            entries_of_stored: entries_of_stored::<M>,
            read_stored: read_stored::<M>,
        }
    }
}

/// The index values of `record`, as its model's derive computes them.
#[inline]
pub(crate) fn entries_of<M: Model>(record: &M) -> IndexEntries {
    let mut entries = IndexEntries::with_capacity(M::INFO.indexes.len());
    record.index_entries(&mut entries);
    entries
}

/// The index values of a stored record of `M`; see `ModelOps`.
fn entries_of_stored<M: Model>(bytes: &[u8]) -> Result<Option<IndexEntries>> {
    let (version, record) = decode_record::<M>(bytes)?;
    Ok((version == M::INFO.version).then(|| entries_of(&record)))
}

/// A stored record of `M`, read for an index build or a check.
fn read_stored<M: Model>(bytes: &[u8]) -> Result<StoredRecord> {
    let (_, record) = decode_record::<M>(bytes)?;
    Ok(StoredRecord { key: encode_to_vec(record.record_key()), entries: entries_of(&record) })
}

/// Decodes a stored record of `M`, upgrading one written by an older
/// version; returns the version that wrote it too.
pub(crate) fn decode_record<M: Model>(bytes: &[u8]) -> Result<(u16, M)> {
    let name = M::INFO.name;
    let known = M::INFO.version;
    let stored = crate::codec::value::version_of(bytes, name)?;
    let payload = &bytes[crate::codec::value::HEADER_LEN..];
    let record = match stored {
        v if v == known => crate::codec::value::decode_body(payload, name)?,
        v if v > known => return Err(Error::NewerVersion { model: name, stored: v, known }),
        v => match M::upgrade(v, payload) {
            Some(upgraded) => upgraded?,
            None => {
                let reason = format!("no upgrade from version {v} (list it in #[persistent(from(...))])");
                return Err(Error::Decode { what: name.to_owned(), reason });
            }
        },
    };
    Ok((stored, record))
}
