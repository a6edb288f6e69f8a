//! Order-preserving, prefix-free key encoding.
//!
//! Invariants every implementation keeps, checked by the property tests at
//! the bottom of this file:
//! - order: `a < b` exactly when `encode(a) < encode(b)` bytewise;
//! - injective and prefix-free: no encoding is a prefix of another value's
//!   encoding of the same type, so encodings can be concatenated (tuples,
//!   index value followed by primary key) and split again unambiguously.

use std::fmt::Debug;
use std::ops::Bound;

use crate::error::{Error, Result};

/// A value that can be written in skyshelve's order-preserving key encoding.
///
/// Unsized types such as `str` and `[u8]` implement it so that queries can
/// take borrowed forms (`&str` for a `String` key), as `HashMap::get` does.
/// `Debug` is required so that errors can name the offending key.
///
/// # The rules an encoding follows
///
/// Keys, index values and map keys are stored as these bytes, and queries
/// work on the bytes, so every encoding must be:
///
/// 1. **order-preserving**: `a < b` exactly when `encode(a) < encode(b)`
///    compared bytewise, so that ranges mean what they say;
/// 2. **injective**: two different values never share an encoding;
/// 3. **self-delimiting**: no value's encoding is a prefix of another
///    value's encoding, so that encodings can be concatenated (tuples, an
///    index value followed by the record's key) and split again.
///
/// Writing raw string bytes breaks rule 3 (`"ab"` is a prefix of `"abc"`).
/// Rather than write an encoding by hand, derive it — `#[derive(Key)]`
/// encodes the fields in order, and an enum's variant first — or delegate
/// to a type that has one:
///
/// ```
/// use skyshelve::{EncodeKey, Key};
///
/// #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Key)]
/// struct Slug(String);
///
/// // By hand, the same thing: delegate to String's escaped, terminated encoding.
/// #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
/// struct Tag(String);
/// impl EncodeKey for Tag {
///     fn encode_key(&self, out: &mut Vec<u8>) {
///         self.0.encode_key(out);
///     }
/// }
/// impl Key for Tag {
///     fn decode_key(input: &mut &[u8]) -> skyshelve::Result<Self> {
///         String::decode_key(input).map(Tag)
///     }
/// }
///
/// let samples = ["", "a", "ab", "abc", "b"].map(|s| Slug(s.into()));
/// skyshelve::check_key_encoding(&samples).unwrap();
/// skyshelve::check_key_encoding(&["ab", "abc"].map(|s| Tag(s.into()))).unwrap();
/// ```
///
/// [`check_key_encoding`] tests a hand-written encoding against the rules
/// on sample values (from a property test, where you have one), and
/// [`Store::verify`](crate::Store::verify) reports stored values whose
/// encodings break rule 3. Queries never return a record whose key or
/// index value is not the one asked for, even then.
pub trait EncodeKey: Debug {
    /// Appends the encoding of `self` to `out`.
    fn encode_key(&self, out: &mut Vec<u8>);
}

/// A type usable as a model key, an index value or a map key: it has an
/// order-preserving encoding and can be decoded back.
///
/// Implemented for integers, `bool`, `char`, `String`, `Vec<u8>`, arrays,
/// `Option` and tuples of up to six keys.
///
/// ```
/// use skyshelve::{EncodeKey, Key};
///
/// let mut a = Vec::new();
/// let mut b = Vec::new();
/// (-5i32, "x".to_string()).encode_key(&mut a);
/// (3i32, "a".to_string()).encode_key(&mut b);
/// assert!(a < b, "encoded order follows Ord");
/// let decoded = <(i32, String)>::decode_key(&mut a.as_slice())?;
/// assert_eq!(decoded, (-5, "x".to_string()));
/// # Ok::<(), skyshelve::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no ordered key encoding, so it cannot be a key or an index value",
    label = "not usable as a key or index value",
    note = "keys and index values use integers, bool, char, String, Vec<u8>, arrays, Option or tuples of these; floats have no total order"
)]
pub trait Key: EncodeKey + Sized {
    /// Reads one value from the front of `input` and advances it.
    fn decode_key(input: &mut &[u8]) -> Result<Self>;
}

/// A value usable as a bound of a range over `V`: `V` itself, or a
/// borrowed form that encodes exactly as the `V` with the same content
/// (`&str` or `&String` for `String`, `&[u8]` or `&Vec<u8>` for `Vec<u8>`).
pub trait KeyBound<V>: EncodeKey {}

impl<V: Key> KeyBound<V> for V {}
impl KeyBound<String> for &str {}
impl KeyBound<String> for &String {}
impl KeyBound<Vec<u8>> for &[u8] {}
impl KeyBound<Vec<u8>> for &Vec<u8> {}

/// A range of values of `V`, as range queries take it: any of std's range
/// forms (`a..b`, `a..=b`, `a..`, `..b`, `..=b`, `..`, or a pair of
/// `Bound`s) over `V` or a borrowed form of it (see [`KeyBound`]), so that
/// `"a".."m"` ranges over a `String` index.
///
/// ```
/// use std::ops::Bound;
/// use skyshelve::KeyRange;
///
/// let (start, end) = KeyRange::<String>::encoded_bounds(&("a".."m"));
/// assert!(matches!((start, end), (Bound::Included(_), Bound::Excluded(_))));
/// let (start, _) = KeyRange::<u32>::encoded_bounds(&(..));
/// assert_eq!(start, Bound::Unbounded);
/// ```
pub trait KeyRange<V> {
    /// The range's start and end, encoded.
    fn encoded_bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>);
}

impl<V: Key> KeyRange<V> for std::ops::RangeFull {
    fn encoded_bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        (Bound::Unbounded, Bound::Unbounded)
    }
}

macro_rules! key_range {
    ($($range:ty),*) => {$(
        impl<V, B: KeyBound<V>> KeyRange<V> for $range {
            fn encoded_bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
                use std::ops::RangeBounds;
                (self.start_bound().map(encode_to_vec), self.end_bound().map(encode_to_vec))
            }
        }
    )*};
}
key_range!(
    std::ops::Range<B>,
    std::ops::RangeInclusive<B>,
    std::ops::RangeFrom<B>,
    std::ops::RangeTo<B>,
    std::ops::RangeToInclusive<B>,
    (Bound<B>, Bound<B>)
);

/// A partial key: every key of type `K` that starts with this value.
///
/// `str` is a prefix of `String` keys (`"al"` matches `"alice"`), `[u8]` of
/// byte-string keys, and the first elements of a tuple of the tuple.
pub trait KeyPrefix<K: Key> {
    /// Appends the encoding shared by every key with this prefix.
    fn encode_prefix(&self, out: &mut Vec<u8>);
}

/// A rule of [`EncodeKey`] that a key encoding breaks, found by
/// [`check_key_encoding`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRuleBroken {
    /// Which rule: `"order"`, `"round trip"` or `"self-delimiting"`.
    pub rule: &'static str,
    /// The values involved and what went wrong.
    pub detail: String,
}

impl std::fmt::Display for KeyRuleBroken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the key encoding breaks the {} rule: {}", self.rule, self.detail)
    }
}

impl std::error::Error for KeyRuleBroken {}

/// Checks `K`'s key encoding against the rules of [`EncodeKey`] on the
/// sample values: each decodes back to itself using all its bytes, every
/// pair sorts as `Ord` says, and no encoding is a prefix of another's (two
/// encodings written one after the other split back into the two values).
/// Pairs are compared all against all, so a few hundred samples are cheap;
/// give it values that share prefixes (`"a"`, `"ab"`), the empty and the
/// extreme ones.
///
/// ```
/// use skyshelve::{EncodeKey, Key};
///
/// // Raw bytes without a terminator: "ab" is a prefix of "abc".
/// #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
/// struct Raw(String);
/// impl EncodeKey for Raw {
///     fn encode_key(&self, out: &mut Vec<u8>) {
///         out.extend_from_slice(self.0.as_bytes());
///     }
/// }
/// impl Key for Raw {
///     fn decode_key(input: &mut &[u8]) -> skyshelve::Result<Self> {
///         let text = String::from_utf8(input.to_vec()).map_err(|e| skyshelve::Error::Decode {
///             what: "raw".into(),
///             reason: e.to_string(),
///         })?;
///         *input = &[];
///         Ok(Raw(text))
///     }
/// }
///
/// let broken = skyshelve::check_key_encoding(&[Raw("ab".into()), Raw("abc".into())]).unwrap_err();
/// assert_eq!(broken.rule, "self-delimiting");
/// ```
///
/// # Errors
///
/// The first rule found broken, naming the values.
pub fn check_key_encoding<K: Key + Ord>(samples: &[K]) -> std::result::Result<(), KeyRuleBroken> {
    let broken = |rule, detail: String| Err(KeyRuleBroken { rule, detail });
    let encoded: Vec<Vec<u8>> = samples.iter().map(encode_to_vec).collect();
    for (value, bytes) in samples.iter().zip(&encoded) {
        match decode_exact::<K>(bytes) {
            Ok(back) if back == *value => {}
            Ok(back) => {
                return broken("round trip", format!("{value:?} encodes to {bytes:?}, which decodes to {back:?}"));
            }
            Err(err) => {
                return broken("round trip", format!("{value:?} encodes to {bytes:?}, which does not decode: {err}"));
            }
        }
    }
    for (a, ea) in samples.iter().zip(&encoded) {
        for (b, eb) in samples.iter().zip(&encoded) {
            if a.cmp(b) != ea.cmp(eb) {
                return broken(
                    "order",
                    format!("{a:?} and {b:?} compare as {:?}, their encodings as {:?}", a.cmp(b), ea.cmp(eb)),
                );
            }
            if a != b && eb.starts_with(ea) {
                return broken(
                    "self-delimiting",
                    format!("the encoding of {a:?} is a prefix of the encoding of {b:?}"),
                );
            }
        }
    }
    Ok(())
}

/// Encodes `key` into a fresh buffer.
pub fn encode_to_vec<K: EncodeKey + ?Sized>(key: &K) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    key.encode_key(&mut out);
    out
}

/// Decodes a whole buffer as one `K`, rejecting trailing bytes.
pub fn decode_exact<K: Key>(mut bytes: &[u8]) -> Result<K> {
    let key = K::decode_key(&mut bytes)?;
    if bytes.is_empty() { Ok(key) } else { Err(key_error(format!("{} trailing bytes after the key", bytes.len()))) }
}

/// The smallest byte string greater than every string that starts with
/// `prefix`, or `None` when no such string exists (all bytes are 0xFF).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last_growable = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut next = prefix[..=last_growable].to_vec();
    next[last_growable] += 1;
    Some(next)
}

fn key_error(reason: impl Into<String>) -> Error {
    Error::Decode { what: "key".into(), reason: reason.into() }
}

fn take<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8]> {
    if input.len() < len {
        return Err(key_error(format!("needs {len} bytes, {} left", input.len())));
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N]> {
    let bytes = take(input, N)?;
    let mut array = [0; N];
    array.copy_from_slice(bytes);
    Ok(array)
}

impl<T: EncodeKey + ?Sized> EncodeKey for &T {
    fn encode_key(&self, out: &mut Vec<u8>) {
        (**self).encode_key(out);
    }
}

// Unsigned integers: fixed-width big-endian, whose byte order is numeric order.
macro_rules! unsigned_key {
    ($($t:ty),*) => {$(
        impl EncodeKey for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Key for $t {
            fn decode_key(input: &mut &[u8]) -> Result<Self> {
                Ok(<$t>::from_be_bytes(take_array(input)?))
            }
        }
    )*};
}
unsigned_key!(u8, u16, u32, u64, u128);

// Signed integers: flipping the sign bit maps MIN..=MAX onto 0..=MAX of the
// unsigned type of the same width, preserving order.
macro_rules! signed_key {
    ($($t:ty => $u:ty),*) => {$(
        impl EncodeKey for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
        }
        impl Key for $t {
            fn decode_key(input: &mut &[u8]) -> Result<Self> {
                let flipped = <$u>::from_be_bytes(take_array(input)?);
                Ok((flipped ^ (1 << (<$u>::BITS - 1))) as $t)
            }
        }
    )*};
}
signed_key!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

// usize and isize are stored as 64-bit values so that a store written on one
// platform reads the same on another.
impl EncodeKey for usize {
    fn encode_key(&self, out: &mut Vec<u8>) {
        (*self as u64).encode_key(out);
    }
}
impl Key for usize {
    fn decode_key(input: &mut &[u8]) -> Result<Self> {
        usize::try_from(u64::decode_key(input)?).map_err(|_| key_error("usize key out of range"))
    }
}
impl EncodeKey for isize {
    fn encode_key(&self, out: &mut Vec<u8>) {
        (*self as i64).encode_key(out);
    }
}
impl Key for isize {
    fn decode_key(input: &mut &[u8]) -> Result<Self> {
        isize::try_from(i64::decode_key(input)?).map_err(|_| key_error("isize key out of range"))
    }
}

impl EncodeKey for bool {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}
impl Key for bool {
    fn decode_key(input: &mut &[u8]) -> Result<Self> {
        match take(input, 1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(key_error(format!("invalid bool byte {other}"))),
        }
    }
}

impl EncodeKey for char {
    fn encode_key(&self, out: &mut Vec<u8>) {
        u32::from(*self).encode_key(out);
    }
}
impl Key for char {
    fn decode_key(input: &mut &[u8]) -> Result<Self> {
        let code = u32::decode_key(input)?;
        char::from_u32(code).ok_or_else(|| key_error(format!("invalid char {code:#x}")))
    }
}

impl EncodeKey for () {
    fn encode_key(&self, _out: &mut Vec<u8>) {}
}
impl Key for () {
    fn decode_key(_input: &mut &[u8]) -> Result<Self> {
        Ok(())
    }
}

// Byte strings: every 0x00 is escaped as 0x00 0xFF and the string ends with
// 0x00 0x00. The terminator sorts below any continuation, so a string sorts
// before its extensions, and it can never occur inside the escaped body.
const ESCAPE: u8 = 0xFF;
const TERMINATOR: [u8; 2] = [0x00, 0x00];

fn encode_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    // Most strings hold no zero byte: one `contains` (memchr, a word at a
    // time) and one copy, instead of a test per byte.
    if !bytes.contains(&0) {
        out.extend_from_slice(bytes);
        return;
    }
    for chunk in bytes.split_inclusive(|&b| b == 0) {
        out.extend_from_slice(chunk);
        if chunk.last() == Some(&0) {
            out.push(ESCAPE);
        }
    }
}

fn decode_escaped(input: &mut &[u8]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut rest = *input;
    loop {
        let Some(zero) = rest.iter().position(|&b| b == 0) else {
            return Err(key_error("byte string without terminator"));
        };
        bytes.extend_from_slice(&rest[..zero]);
        match rest.get(zero + 1) {
            Some(&ESCAPE) => bytes.push(0),
            Some(0) => {
                *input = &rest[zero + 2..];
                return Ok(bytes);
            }
            _ => return Err(key_error("invalid escape in byte string")),
        }
        rest = &rest[zero + 2..];
    }
}

impl EncodeKey for [u8] {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_escaped(self, out);
        out.extend_from_slice(&TERMINATOR);
    }
}
impl EncodeKey for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.as_slice().encode_key(out);
    }
}
impl Key for Vec<u8> {
    fn decode_key(input: &mut &[u8]) -> Result<Self> {
        decode_escaped(input)
    }
}
impl EncodeKey for str {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.as_bytes().encode_key(out);
    }
}
impl EncodeKey for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.as_bytes().encode_key(out);
    }
}
impl Key for String {
    fn decode_key(input: &mut &[u8]) -> Result<Self> {
        String::from_utf8(decode_escaped(input)?).map_err(|e| key_error(e.to_string()))
    }
}

impl KeyPrefix<String> for str {
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        encode_escaped(self.as_bytes(), out);
    }
}
impl KeyPrefix<String> for String {
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        self.as_str().encode_prefix(out);
    }
}
impl KeyPrefix<Vec<u8>> for [u8] {
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        encode_escaped(self, out);
    }
}
impl KeyPrefix<Vec<u8>> for Vec<u8> {
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        encode_escaped(self, out);
    }
}

// Fixed arrays have a fixed element count, so plain concatenation is
// already prefix-free and ordered element by element.
impl<T: EncodeKey, const N: usize> EncodeKey for [T; N] {
    fn encode_key(&self, out: &mut Vec<u8>) {
        for item in self {
            item.encode_key(out);
        }
    }
}
impl<T: Key, const N: usize> Key for [T; N] {
    fn decode_key(input: &mut &[u8]) -> Result<Self> {
        let items = (0..N).map(|_| T::decode_key(input)).collect::<Result<Vec<T>>>()?;
        items.try_into().map_err(|_| key_error("array length mismatch"))
    }
}

// None sorts before every Some, as Option's Ord does.
impl<T: EncodeKey> EncodeKey for Option<T> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode_key(out);
            }
        }
    }
}
impl<T: Key> Key for Option<T> {
    fn decode_key(input: &mut &[u8]) -> Result<Self> {
        match take(input, 1)?[0] {
            0 => Ok(None),
            1 => T::decode_key(input).map(Some),
            other => Err(key_error(format!("invalid option tag {other}"))),
        }
    }
}

// Tuples: each element's encoding is prefix-free, so concatenation orders
// element by element and never lets ("ab","c") meet ("a","bc").
macro_rules! tuple_key {
    ($($name:ident)+) => {
        impl<$($name: EncodeKey),+> EncodeKey for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode_key(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode_key(out);)+
            }
        }
        impl<$($name: Key),+> Key for ($($name,)+) {
            fn decode_key(input: &mut &[u8]) -> Result<Self> {
                Ok(($($name::decode_key(input)?,)+))
            }
        }
    };
}
tuple_key!(A);
tuple_key!(A B);
tuple_key!(A B C);
tuple_key!(A B C D);
tuple_key!(A B C D E);
tuple_key!(A B C D E F);

// A leading element (or leading elements) is a prefix of a tuple key.
macro_rules! tuple_prefix {
    (($($p:ident)+) of ($($all:ident)+)) => {
        impl<$($all: Key),+> KeyPrefix<($($all,)+)> for ($($p,)+) {
            #[allow(non_snake_case)]
            fn encode_prefix(&self, out: &mut Vec<u8>) {
                let ($($p,)+) = self;
                $($p.encode_key(out);)+
            }
        }
    };
}
tuple_prefix!((A) of (A B));
tuple_prefix!((A) of (A B C));
tuple_prefix!((A B) of (A B C));
tuple_prefix!((A) of (A B C D));
tuple_prefix!((A B) of (A B C D));
tuple_prefix!((A B C) of (A B C D));

// A borrowed first element (`&str` for a `String`, `&[u8]` for a
// `Vec<u8>`) is a prefix too, so a prefix query needs no owned copy.
macro_rules! borrowed_tuple_prefix {
    ($borrowed:ty => $owned:ty, ($($rest:ident)*)) => {
        impl<$($rest: Key),*> KeyPrefix<($owned, $($rest,)*)> for ($borrowed,) {
            fn encode_prefix(&self, out: &mut Vec<u8>) {
                self.0.encode_key(out);
            }
        }
    };
}
borrowed_tuple_prefix!(&str => String, (B));
borrowed_tuple_prefix!(&str => String, (B C));
borrowed_tuple_prefix!(&str => String, (B C D));
borrowed_tuple_prefix!(&[u8] => Vec<u8>, (B));
borrowed_tuple_prefix!(&[u8] => Vec<u8>, (B C));
borrowed_tuple_prefix!(&[u8] => Vec<u8>, (B C D));

/// The name under which errors report a key.
pub(crate) fn describe_key<K: EncodeKey + ?Sized>(key: &K) -> String {
    format!("{key:?}")
}

/// Decodes an encoded index value and prints it with `Debug`.
#[doc(hidden)]
pub fn describe_encoded<V: Key>(bytes: &[u8]) -> String {
    match decode_exact::<V>(bytes) {
        Ok(value) => format!("{value:?}"),
        Err(_) => format!("<undecodable {bytes:?}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc<K: EncodeKey + ?Sized>(k: &K) -> Vec<u8> {
        encode_to_vec(k)
    }

    fn check_order_and_roundtrip<K: Key + Ord + Clone + PartialEq>(a: K, b: K) {
        let (ea, eb) = (enc(&a), enc(&b));
        assert_eq!(a.cmp(&b), ea.cmp(&eb), "order of {a:?} vs {b:?}");
        assert_eq!(a == b, ea == eb, "injectivity of {a:?} vs {b:?}");
        assert_eq!(decode_exact::<K>(&ea).unwrap(), a);
        // Prefix-freeness: a then b concatenated splits back into a and b.
        let mut both = ea.clone();
        both.extend_from_slice(&eb);
        let mut input = both.as_slice();
        assert_eq!(K::decode_key(&mut input).unwrap(), a);
        assert_eq!(K::decode_key(&mut input).unwrap(), b);
        assert!(input.is_empty());
    }

    proptest! {
        #[test]
        fn u64_order(a: u64, b: u64) { check_order_and_roundtrip(a, b); }
        #[test]
        fn u8_u16_u32_u128_order(a: (u8, u16, u32, u128), b: (u8, u16, u32, u128)) {
            check_order_and_roundtrip(a, b);
        }
        #[test]
        fn signed_order(a: (i8, i16, i32, i64, i128), b: (i8, i16, i32, i64, i128)) {
            check_order_and_roundtrip(a, b);
        }
        #[test]
        fn usize_isize_bool_char_order(a: (usize, isize, bool, char), b: (usize, isize, bool, char)) {
            check_order_and_roundtrip(a, b);
        }
        #[test]
        fn string_order(a: String, b: String) { check_order_and_roundtrip(a, b); }
        #[test]
        fn string_with_nuls_order(a in "[\\x00a\\xff]{0,6}", b in "[\\x00a\\xff]{0,6}") {
            check_order_and_roundtrip(a, b);
        }
        #[test]
        fn bytes_order(a in prop::collection::vec(prop::sample::select(vec![0u8, 1, 0xFE, 0xFF]), 0..8),
                       b in prop::collection::vec(prop::sample::select(vec![0u8, 1, 0xFE, 0xFF]), 0..8)) {
            check_order_and_roundtrip(a, b);
        }
        #[test]
        fn tuple_of_strings_order(a: (String, String), b: (String, String)) {
            check_order_and_roundtrip(a, b);
        }
        #[test]
        fn short_string_tuples_are_injective(a in ("[ab]{0,3}", "[ab]{0,3}"), b in ("[ab]{0,3}", "[ab]{0,3}")) {
            check_order_and_roundtrip(a, b);
        }
        #[test]
        fn mixed_tuple_order(a: (i64, String, Option<u16>), b: (i64, String, Option<u16>)) {
            check_order_and_roundtrip(a, b);
        }
        #[test]
        fn array_order(a: [i16; 3], b: [i16; 3]) { check_order_and_roundtrip(a, b); }
        #[test]
        fn string_prefix_matches_exactly_the_extensions(p in "[a\\x00]{0,3}", s in "[a\\x00]{0,5}") {
            let mut prefix = Vec::new();
            p.as_str().encode_prefix(&mut prefix);
            prop_assert_eq!(enc(&s).starts_with(&prefix), s.starts_with(&p));
        }
        #[test]
        fn truncated_keys_never_panic(a: (String, u32, Vec<u8>), cut in 0usize..64) {
            let bytes = enc(&a);
            let cut = cut.min(bytes.len());
            let _ = decode_exact::<(String, u32, Vec<u8>)>(&bytes[..cut]);
        }
    }

    #[test]
    fn split_strings_do_not_collide() {
        assert_ne!(enc(&("ab", "c")), enc(&("a", "bc")));
        assert_ne!(enc(&("a\0", "")), enc(&("a", "\0")));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = enc(&7u32);
        bytes.push(0);
        assert!(matches!(decode_exact::<u32>(&bytes), Err(Error::Decode { .. })));
    }

    #[test]
    fn prefix_successor_skips_trailing_ff() {
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(&[]), None);
    }
}
