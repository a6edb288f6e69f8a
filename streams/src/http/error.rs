//! The one mapping of a [`StreamError`] to an HTTP response: the status
//! the protocol names, the headers that go with it, and a body that says
//! what the client did wrong — never what the engine said (a store
//! failure is logged for the operator and answered with a plain 500).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::headers as h;
use crate::StreamError;

impl StreamError {
    /// The HTTP status this failure is answered with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            StreamError::NotFound | StreamError::ForkSourceNotFound(_) => StatusCode::NOT_FOUND,
            StreamError::Gone | StreamError::OffsetGone => StatusCode::GONE,
            StreamError::ConfigConflict
            | StreamError::HeldByForks
            | StreamError::ContentTypeMismatch { .. }
            | StreamError::SeqRegression { .. }
            | StreamError::Closed { .. }
            | StreamError::SeqGap { .. } => StatusCode::CONFLICT,
            StreamError::StaleEpoch { .. } => StatusCode::FORBIDDEN,
            StreamError::BadRequest(_) => StatusCode::BAD_REQUEST,
            StreamError::TooLarge { .. } | StreamError::TooManyMessages { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            StreamError::PathTooLong { .. } => StatusCode::URI_TOO_LONG,
            StreamError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            StreamError::Store(skyshelve::Error::StorageFull { .. }) => StatusCode::INSUFFICIENT_STORAGE,
            StreamError::ReplicaBehind
            | StreamError::WriterUnreachable
            | StreamError::Store(
                skyshelve::Error::Fenced { .. } | skyshelve::Error::Stopped { .. } | skyshelve::Error::Io(_),
            ) => StatusCode::SERVICE_UNAVAILABLE,
            StreamError::Internal(_) | StreamError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response body: the message for a client's mistake; for a
    /// failure inside the server, a sentence without its internals, which
    /// go to the log instead.
    fn body(&self) -> String {
        match self {
            StreamError::Store(skyshelve::Error::StorageFull { .. }) => {
                tracing::error!(error = %self, "the store is full");
                "the store is full; deleting streams frees space".to_owned()
            }
            StreamError::Store(skyshelve::Error::Fenced { .. }) => {
                tracing::error!(error = %self, "another writer node took the store over");
                "this node is no longer the writer; the new writer node takes writes".to_owned()
            }
            StreamError::Store(err @ (skyshelve::Error::Io(_) | skyshelve::Error::Stopped { .. })) => {
                tracing::error!(error = %err, "the store is unavailable");
                "the store is unavailable; try again".to_owned()
            }
            StreamError::Store(err) => {
                tracing::error!(error = %err, "the store failed");
                "the server failed to serve this request; its log says why".to_owned()
            }
            StreamError::Internal(why) => {
                tracing::error!(error = %why, "a request failed inside the server");
                "the server failed to serve this request; its log says why".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for StreamError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, self.body()).into_response();
        let out = response.headers_mut();
        match self {
            StreamError::Closed { tail } => {
                h::set(out, h::CLOSED, "true");
                h::set(out, h::NEXT_OFFSET, &tail.to_string());
            }
            StreamError::StaleEpoch { current } => h::set(out, h::PRODUCER_EPOCH, &current.to_string()),
            StreamError::SeqGap { expected, received } => {
                h::set(out, h::PRODUCER_EXPECTED_SEQ, &expected.to_string());
                h::set(out, h::PRODUCER_RECEIVED_SEQ, &received.to_string());
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => h::set(out, "retry-after", "1"),
            _ => {}
        }
        response
    }
}
