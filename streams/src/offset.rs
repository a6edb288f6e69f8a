//! Offsets as the protocol sees them: opaque, lexicographically sortable
//! tokens. Ours are `<segment>_<byte position>`, each 16 zero-padded
//! decimal digits (the reference servers' shape): the segment is always 0
//! for now, the position counts the stream's bytes before it.

use std::fmt;

/// A position in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offset(pub u64);

/// Where a read starts, as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `-1` or no offset: the beginning.
    Beginning,
    /// `now`: the current tail.
    Now,
    /// A position returned earlier.
    At(Offset),
}

const DIGITS: usize = 16;

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}_{:0width$}", 0, self.0, width = DIGITS)
    }
}

impl Offset {
    /// Parses an offset this server printed; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Offset> {
        let (segment, position) = text.split_once('_')?;
        let digits = |part: &str| part.len() == DIGITS && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(segment) || !digits(position) || segment.bytes().any(|b| b != b'0') {
            return None;
        }
        position.parse().ok().map(Offset)
    }
}

impl Start {
    /// The `offset` query parameter; `None` when it is malformed.
    #[must_use]
    pub fn parse(text: Option<&str>) -> Option<Start> {
        match text {
            None | Some("-1") => Some(Start::Beginning),
            Some("now") => Some(Start::Now),
            Some(other) => Offset::parse(other).map(Start::At),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_print_sortably_and_parse_back() {
        let (a, b) = (Offset(9), Offset(10));
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string(), "0000000000000000_0000000000000009");
        assert_eq!(Offset::parse(&b.to_string()), Some(b));
        for bad in ["", "10", "0_10", "0000000000000000-0000000000000009", "000000000000000a_0000000000000009"] {
            assert_eq!(Offset::parse(bad), None, "{bad}");
        }
        assert_eq!(Start::parse(None), Some(Start::Beginning));
        assert_eq!(Start::parse(Some("now")), Some(Start::Now));
        assert_eq!(Start::parse(Some("x")), None);
    }
}
