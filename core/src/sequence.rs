//! Sequences: numbers the store issues inside a write transaction, one
//! counter per name in the `~sequences` table. The counter is written in
//! the same transaction as the records that use its numbers, so a number
//! is never issued twice by committed transactions, whatever process or
//! thread asked; a transaction that aborts gives its numbers back, which
//! is why a gap can only come from a commit that skipped numbers on
//! purpose (none does) and never from a crash.

use crate::engine::{Reader, Table, Writer};
use crate::error::{Error, Result};

/// Issues the next number of sequence `name`: 1 on first use, then one
/// more than the last number committed or issued in this transaction.
pub(crate) fn next(txn: &mut dyn Writer, table: Table, name: &str) -> Result<u64> {
    check_name(name)?;
    let last = read(txn, table, name)?;
    let next = last.checked_add(1).ok_or_else(|| Error::SequenceExhausted { name: name.to_owned() })?;
    txn.put(table, name.as_bytes(), &next.to_be_bytes())?;
    Ok(next)
}

/// Sets sequence `name` to `last` (0: never used): back, for an append
/// whose insert failed, or up, for a record saved with its own number.
pub(crate) fn rewind(txn: &mut dyn Writer, table: Table, name: &str, last: u64) -> Result<()> {
    if last == 0 {
        txn.delete(table, name.as_bytes()).map(drop)
    } else {
        txn.put(table, name.as_bytes(), &last.to_be_bytes())
    }
}

/// The last number issued by sequence `name`, if any.
pub(crate) fn last(txn: &(impl Reader + ?Sized), table: Option<Table>, name: &str) -> Result<Option<u64>> {
    check_name(name)?;
    let Some(table) = table else { return Ok(None) };
    Ok(Some(read(txn, table, name)?).filter(|&last| last > 0))
}

fn read(txn: &(impl Reader + ?Sized), table: Table, name: &str) -> Result<u64> {
    match txn.get(table, name.as_bytes())? {
        None => Ok(0),
        Some(bytes) => {
            let bytes: [u8; 8] = bytes.try_into().map_err(|_| Error::Decode {
                what: format!("sequence {name:?}"),
                reason: format!("{} bytes stored, 8 expected", bytes.len()),
            })?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

/// Sequence names are table keys: non-empty and within the key limit.
fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "sequence names must not be empty"
    } else if name.len() > 255 {
        "sequence names are at most 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName { name: name.to_owned(), reason })
}

#[cfg(test)]
mod tests {
    use crate::{Error, Store};

    #[test]
    fn the_last_number_is_issued_once_then_the_sequence_is_exhausted() {
        let store = Store::temporary().unwrap();
        let table = store.shared().sequences.unwrap();
        store.write(|tx| super::rewind(tx.raw_writer(), table, "near_end", u64::MAX - 1)).unwrap();
        assert_eq!(store.write(|tx| tx.next_sequence("near_end")).unwrap(), u64::MAX);
        let exhausted = store.write(|tx| tx.next_sequence("near_end"));
        assert!(matches!(exhausted, Err(Error::SequenceExhausted { ref name }) if name == "near_end"), "{exhausted:?}");
        assert_eq!(store.read(|tx| tx.last_sequence("near_end")).unwrap(), Some(u64::MAX), "nothing was written");
    }
}
