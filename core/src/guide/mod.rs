//! The manual, chapter by chapter. Each chapter is a Markdown file beside
//! this one (readable on its own in the repository), and every example in
//! it runs as a doctest.
//!
//! - [`models`]: models, indexes and the operations on them.
//! - [`logs`]: sequences, composite indexes, paged queries, watches, expiry.
//! - [`history`]: the versions a record keeps.
//! - [`schema`]: schema versions and index changes.
//! - [`processes`]: many threads and processes, and what is guaranteed.
//! - [`admin`]: stats, verify, export, import, backups, the command line.
//! - [`diagnostics`]: what skyshelve reports through `tracing`.
//! - [`slatedb`]: the same models on object storage.

#[doc = include_str!("models.md")]
pub mod models {}

#[doc = include_str!("logs.md")]
pub mod logs {}

#[doc = include_str!("history.md")]
pub mod history {}

#[doc = include_str!("schema.md")]
pub mod schema {}

#[doc = include_str!("processes.md")]
pub mod processes {}

#[doc = include_str!("admin.md")]
pub mod admin {}

#[doc = include_str!("diagnostics.md")]
pub mod diagnostics {}

#[doc = include_str!("slatedb.md")]
pub mod slatedb {}
