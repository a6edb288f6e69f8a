//! Stored value format: a 3-byte header, then the value in bincode.
//!
//! ```text
//! [format: u8][model version: u16 big-endian][bincode 2 "standard" payload]
//! ```
//!
//! The header lets a later release change the payload format, and lets
//! schema migrations know which model version wrote a record, without
//! guessing from the bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The payload format this release writes: bincode 2, standard config.
pub const FORMAT_BINCODE2: u8 = 1;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 3;

/// Memory a value may claim while decoding, per byte of its encoding. A
/// damaged length prefix can ask for anything; a real value's memory is a
/// small multiple of its encoded size (an empty `String` or `Vec` takes one
/// byte encoded and 24 in memory), so decoding claims at most this factor
/// times the payload, in tiers, and never less than 4 MiB.
const CLAIM_PER_BYTE: usize = 64;

type Config<const LIMIT: usize> = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
>;

fn config<const LIMIT: usize>() -> Config<LIMIT> {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Decodes `payload` claiming at most `LIMIT` bytes of memory, its strings
/// read borrowed (see `borrowing.rs`).
fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(payload: &[u8]) -> Result<(T, usize), String> {
    let owned = super::borrowing::Owned::<T>(std::marker::PhantomData);
    bincode::serde::seed_decode_from_slice(owned, payload, config::<LIMIT>()).map_err(|e| e.to_string())
}

/// Decodes `payload` with a claim limit that grows with its size.
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<(T, usize), String> {
    const TIER: [usize; 3] = [64 << 10, 1 << 20, 16 << 20];
    match payload.len() {
        n if n <= TIER[0] => decode_limited::<T, { TIER[0] * CLAIM_PER_BYTE }>(payload),
        n if n <= TIER[1] => decode_limited::<T, { TIER[1] * CLAIM_PER_BYTE }>(payload),
        n if n <= TIER[2] => decode_limited::<T, { TIER[2] * CLAIM_PER_BYTE }>(payload),
        _ => decode_limited::<T, { usize::MAX }>(payload),
    }
}

/// Appends the header and the encoding of `value` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, version: u16, what: &str, out: &mut Vec<u8>) -> Result<()> {
    out.push(FORMAT_BINCODE2);
    out.extend_from_slice(&version.to_be_bytes());
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
        .map(drop)
        .map_err(|e| Error::Encode { what: what.to_owned(), reason: e.to_string() })
}

/// Fails unless `value`, which `encode_into` wrote as `bytes`, reads back.
/// bincode is not self-describing, so serde forms that skip fields or need
/// `deserialize_any` (tagged and untagged enums, `flatten`,
/// `serde_json::Value`) write bytes that cannot be read, or that read as
/// other values. So: no field may be skipped (found by walking the value,
/// see `probe`), the payload must decode as a `T` using every byte, and
/// that `T` must encode to as many bytes again. The lengths are compared
/// rather than the bytes because a hash map may encode its entries in
/// another order after a round trip.
pub fn check_reads_back<T: Serialize + DeserializeOwned>(value: &T, bytes: &[u8], what: &str) -> Result<()> {
    let unreadable = |reason: String| Error::UnreadableValue { what: what.to_owned(), reason };
    super::probe::check_no_skipped_field(value).map_err(|skipped| unreadable(skipped.to_string()))?;
    let read: T = decode_body(&bytes[HEADER_LEN..], what).map_err(|err| match err {
        Error::Decode { reason, .. } => unreadable(reason),
        other => other,
    })?;
    let mut again = Vec::with_capacity(bytes.len());
    encode_into(&read, 0, what, &mut again)?;
    if again.len() == bytes.len() {
        Ok(())
    } else {
        Err(unreadable(format!("it reads back as another value ({} bytes instead of {})", again.len(), bytes.len())))
    }
}

/// The model version recorded in a stored value's header.
pub fn version_of(bytes: &[u8], what: &str) -> Result<u16> {
    match bytes {
        [FORMAT_BINCODE2, hi, lo, ..] => Ok(u16::from_be_bytes([*hi, *lo])),
        [format, _, _, ..] => Err(decode_error(what, format!("unknown value format {format}"))),
        _ => Err(decode_error(what, format!("value of {} bytes has no header", bytes.len()))),
    }
}

/// Decodes a stored value, rejecting unknown formats and trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<(u16, T)> {
    let version = version_of(bytes, what)?;
    Ok((version, decode_body(&bytes[HEADER_LEN..], what)?))
}

/// Decodes the bytes after the header, rejecting trailing bytes.
// Inlined into record decoding: once more callers decoded records (index
// builds, batched migration), the compiler stopped inlining it, and a
// streamed record cost about 3% more instructions (callgrind).
#[inline]
pub fn decode_body<T: DeserializeOwned>(payload: &[u8], what: &str) -> Result<T> {
    let (value, used) = decode_payload(payload).map_err(|reason| decode_error(what, reason))?;
    if used != payload.len() {
        let extra = payload.len() - used;
        return Err(decode_error(what, format!("{extra} trailing bytes after the value")));
    }
    Ok(value)
}

fn decode_error(what: &str, reason: String) -> Error {
    Error::Decode { what: what.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_keeps_version() {
        let mut bytes = Vec::new();
        encode_into(&("a".to_string(), 7u32), 3, "test", &mut bytes).unwrap();
        let (version, value): (u16, (String, u32)) = decode(&bytes, "test").unwrap();
        assert_eq!((version, value), (3, ("a".to_string(), 7)));
    }

    #[test]
    fn trailing_bytes_unknown_format_and_short_input_are_errors() {
        let mut bytes = Vec::new();
        encode_into(&5u32, 0, "test", &mut bytes).unwrap();
        bytes.push(0);
        assert!(decode::<u32>(&bytes, "test").is_err());
        assert!(decode::<u32>(&[9, 0, 0, 5], "test").is_err());
        assert!(decode::<u32>(&[1, 0], "test").is_err());
    }

    /// Strings read borrowed (`borrowing.rs`) give the value bincode's own
    /// owned path gives, wherever they are nested, and a visitor that
    /// takes only owned strings still gets one.
    #[test]
    fn borrowed_strings_decode_as_bincode_decodes_them() {
        use std::collections::BTreeMap;

        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        enum Shape {
            Unit,
            Named(String),
            Pair(String, Vec<u8>),
            Fields { label: Option<String>, tags: Vec<String> },
        }

        /// A string whose visitor implements `visit_string` only.
        #[derive(Debug, PartialEq)]
        struct OwnedOnly(String);

        impl<'de> serde::Deserialize<'de> for OwnedOnly {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                // Deliberately the misuse clippy warns of: such visitors exist
                // in the wild, and bincode's owned path served them.
                #[allow(clippy::serde_api_misuse)]
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = OwnedOnly;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("an owned string")
                    }
                    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<OwnedOnly, E> {
                        Ok(OwnedOnly(value))
                    }
                }
                deserializer.deserialize_string(Visitor)
            }
        }

        impl serde::Serialize for OwnedOnly {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        type Value = (Vec<Shape>, BTreeMap<String, Option<String>>, OwnedOnly, String);
        let value: Value = (
            vec![
                Shape::Unit,
                Shape::Named("é".repeat(40)),
                Shape::Pair(String::new(), vec![1, 2, 3]),
                Shape::Fields { label: Some("l".into()), tags: vec!["a".into(), "bc".into()] },
            ],
            BTreeMap::from([("k".to_owned(), Some("v".to_owned())), ("none".to_owned(), None)]),
            OwnedOnly("owned".into()),
            "last".into(),
        );
        let mut bytes = Vec::new();
        encode_into(&(&value.0, &value.1, &value.2.0, &value.3), 1, "test", &mut bytes).unwrap();
        let plain: Value =
            bincode::serde::decode_from_slice(&bytes[HEADER_LEN..], bincode::config::standard()).unwrap().0;
        let (_, borrowed): (u16, Value) = decode(&bytes, "test").unwrap();
        assert_eq!(borrowed, plain);
        assert_eq!(borrowed, value);
        // A string that claims more bytes than are left is an error.
        let mut short = Vec::new();
        encode_into(&"abcdef", 1, "test", &mut short).unwrap();
        short.truncate(short.len() - 2);
        assert!(decode::<String>(&short, "test").is_err());
    }

    #[test]
    fn huge_length_prefix_is_an_error_not_an_allocation() {
        // A Vec<u64> claiming u64::MAX elements.
        let bytes = [FORMAT_BINCODE2, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(decode::<Vec<u64>>(&bytes, "test").is_err());
    }
}
