//! How keys and values become bytes.
//!
//! Keys and index values use [`key`]'s order-preserving encoding so that
//! LMDB's byte order is the values' `Ord` order; record values use
//! [`value`]'s versioned serde/bincode format. Nothing else in the crate
//! knows either byte layout.

pub mod key;
pub mod probe;
pub mod value;
