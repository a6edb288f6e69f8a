//! JSON mode (`application/json` streams): every append is validated, a
//! top-level array is flattened one level into its messages, each message
//! is stored as its own chunk with its exact text, and reads return the
//! messages as one JSON array.

use serde_json::value::RawValue;

use crate::error::{Result, StreamError};

/// Whether an empty array is allowed: at creation it makes an empty
/// stream; in an append it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// `[]` is no messages.
    Allowed,
    /// `[]` is a bad request.
    Refused,
}

/// The messages of a JSON body, each as its own text.
pub fn messages(body: &[u8], empty: Empty) -> Result<Vec<Vec<u8>>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return match empty {
            Empty::Allowed => Ok(Vec::new()),
            Empty::Refused => Err(StreamError::BadRequest("an append needs a body".into())),
        };
    }
    let value: &RawValue =
        serde_json::from_slice(body).map_err(|e| StreamError::BadRequest(format!("invalid JSON: {e}")))?;
    let text = value.get();
    if !text.starts_with('[') {
        return Ok(vec![text.as_bytes().to_vec()]);
    }
    let items: Vec<&RawValue> =
        serde_json::from_str(text).map_err(|e| StreamError::BadRequest(format!("invalid JSON: {e}")))?;
    if items.is_empty() && empty == Empty::Refused {
        return Err(StreamError::BadRequest("an empty JSON array appends nothing".into()));
    }
    Ok(items.into_iter().map(|item| item.get().as_bytes().to_vec()).collect())
}

/// Messages as one JSON array.
#[must_use]
pub fn array(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + messages.iter().map(|m| m.len() + 1).sum::<usize>());
    out.push(b'[');
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(message);
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_flatten_one_level_and_keep_each_message_as_written() {
        let of = |body: &str| {
            messages(body.as_bytes(), Empty::Refused)
                .map(|m| m.into_iter().map(|m| String::from_utf8(m).unwrap()).collect::<Vec<_>>())
        };
        assert_eq!(of(r#"{"event": "created"}"#).unwrap(), [r#"{"event": "created"}"#]);
        assert_eq!(of(r#"[{"a":1}, {"b":2}]"#).unwrap(), [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert_eq!(of("[[1,2],[3,4]]").unwrap(), ["[1,2]", "[3,4]"]);
        assert_eq!(of("[[[1,2,3]]]").unwrap(), ["[[1,2,3]]"]);
        assert!(of("[]").is_err());
        assert!(of("{").is_err());
        assert!(messages(b"[]", Empty::Allowed).unwrap().is_empty());
        assert_eq!(array(&[b"1".to_vec(), b"{}".to_vec()]), b"[1,{}]");
        assert_eq!(array(&[]), b"[]");
    }
}
