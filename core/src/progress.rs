//! `Progress`: how far a long piece of work (an index build, a migration,
//! an export) has come.

/// How far a long piece of admin work has come, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Items done so far.
    pub done: u64,
    /// Items in all, when known up front.
    pub total: Option<u64>,
}
