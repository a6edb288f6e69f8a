//! A reader node's replica catching up with the writer: what a read at an
//! offset the writer handed out, and a write forwarded through the reader,
//! wait for, so that the node never answers short of what the client
//! already knows exists (see "Many machines" in `streams/README.md`).

use std::sync::Arc;
use std::time::Instant;

use super::{App, blocking};
use crate::{StreamError, Streams};

/// Waits until `done` holds on this node's replica, for up to the
/// long-poll timeout; whether it came to hold. Woken by the store's watch,
/// which the replica's follower wakes at each commit it sees.
pub(super) async fn caught_up<F>(app: &Arc<App>, done: F) -> Result<bool, StreamError>
where
    F: Fn(&Streams) -> Result<bool, StreamError> + Clone + Send + 'static,
{
    // Made before the first look, so that no commit between the two is missed.
    let mut watch = app.streams.watch()?;
    let deadline = Instant::now() + app.settings.long_poll_timeout;
    loop {
        if blocking(app, done.clone()).await? {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, watch.changed()).await.is_err() {
            return Ok(false);
        }
    }
}
