//! What skyshelve tells a `tracing` subscriber about the operations users
//! call: a span around each model operation, carrying the model's name,
//! and an event for each error a store hands back, at the level it
//! deserves. Without a subscriber both cost a check of a cached flag.
//! (Events about what the store does on its own — map growth, index
//! builds, lock waits — are emitted where that happens.)

use tracing::span::EnteredSpan;

use crate::error::{Error, Result};

/// Enters the span of operation `op` on model `model`, until dropped.
#[inline]
pub(crate) fn operation_span(model: &'static str, op: &'static str) -> EnteredSpan {
    tracing::debug_span!(target: "skyshelve::op", "operation", model, op).entered()
}

/// Passes `result` on, reporting its error (if any) first.
#[inline]
pub(crate) fn reported<R>(result: Result<R>) -> Result<R> {
    if let Err(err) = &result {
        report(err);
    }
    result
}

fn report(err: &Error) {
    match Severity::of(err) {
        Severity::Outcome => tracing::debug!(target: "skyshelve::error", error = %err, "operation refused"),
        Severity::Mistake => tracing::warn!(target: "skyshelve::error", error = %err, "operation failed"),
        Severity::Fault => tracing::error!(target: "skyshelve::error", error = %err, "operation failed"),
    }
}

/// How much an error says about the program or the machine.
#[derive(Debug, PartialEq, Eq)]
enum Severity {
    /// An answer the program asks for and handles (not found, taken, a
    /// lock held elsewhere, a rule of the data): debug.
    Outcome,
    /// The program or its deployment is wrong (two releases disagree, a
    /// store opened for other models, a transaction misused, a wait that
    /// ran out): warn.
    Mistake,
    /// The store, its files or the machine failed (damaged or unreadable
    /// data, a full disk, I/O): error.
    Fault,
}

impl Severity {
    fn of(err: &Error) -> Severity {
        match err {
            Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::UniqueViolation { .. }
            | Error::KeyTooLong { .. }
            | Error::ValueTooLarge { .. }
            | Error::Encode { .. }
            | Error::ParentMissing { .. }
            | Error::Restricted { .. }
            | Error::Locked { .. }
            | Error::WrongKey { .. }
            | Error::BadExpiry { .. }
            | Error::BeforeHistory { .. }
            | Error::Import { .. } => Severity::Outcome,
            // The reader of an export went away (`| head`): its choice, not a fault.
            Error::Io(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Severity::Outcome,
            Error::Decode { .. }
            | Error::UnreadableValue { .. }
            | Error::StorageFull { .. }
            | Error::DamagedStore { .. }
            | Error::Io(_)
            | Error::Fenced { .. }
            | Error::Stopped { .. }
            | Error::Storage(_) => Severity::Fault,
            _ => Severity::Mistake,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Severity;
    use crate::Error;

    #[test]
    fn answers_are_outcomes_misuse_is_a_mistake_and_damage_a_fault() {
        assert_eq!(Severity::of(&Error::NotFound { model: "m", key: "1".into() }), Severity::Outcome);
        assert_eq!(Severity::of(&Error::NestedWrite), Severity::Mistake);
        assert_eq!(Severity::of(&Error::SchemaMismatch { model: "m", reason: String::new() }), Severity::Mistake);
        assert_eq!(Severity::of(&Error::Decode { what: "m".into(), reason: String::new() }), Severity::Fault);
    }
}
