//! How keys and values become bytes.
//!
//! Keys and index values use [`key`]'s order-preserving encoding so that
//! the engine's byte order is the values' `Ord` order; record values use
//! [`value`]'s versioned serde/bincode format. Nothing else in the crate
//! knows either byte layout.

mod borrowing;
pub mod key;
pub mod probe;
pub mod value;

/// Bytes as lower-case hex digits, two per byte: how cursors and exported
/// history name encoded keys.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The bytes `text` names as hex digits; `None` unless it is an even run
/// of them.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok()).collect()
}
