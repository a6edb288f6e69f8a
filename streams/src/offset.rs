//! Offsets as the protocol sees them: opaque, lexicographically sortable
//! tokens. Ours are `<stream>_<position>`, each 16 zero-padded decimal
//! digits (the reference servers' shape). The position counts the
//! stream's bytes before it; the stream part is the id of the stream
//! incarnation whose bytes start there, so that an offset handed out by a
//! stream later deleted is recognised, and refused, by the stream created
//! again at its path (it would otherwise resume in the middle of another
//! stream's data).
//!
//! A fork's positions below its fork offset hold its sources' bytes, and
//! carry its sources' ids: those are older streams with smaller ids, so the
//! offsets of one stream still sort in the order of their positions.
//!
//! A stream part of 0 names no incarnation: offsets handed out before
//! incarnations were carried, and the zero offset clients write by hand,
//! are taken as plain positions.

use std::fmt;

/// A position in a stream, with the incarnation whose bytes start there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offset {
    /// The id of the stream whose bytes start here; 0 for none named.
    pub stream: u64,
    /// The stream's bytes (in JSON mode, message bytes) before this point.
    pub position: u64,
}

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
        write!(f, "{:0width$}_{:0width$}", self.stream, self.position, width = DIGITS)
    }
}

impl Offset {
    /// Position `position` of stream `stream`.
    #[must_use]
    pub const fn new(stream: u64, position: u64) -> Offset {
        Offset { stream, position }
    }

    /// Parses an offset this server printed; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Offset> {
        let (stream, position) = text.split_once('_')?;
        let number = |part: &str| {
            (part.len() == DIGITS && part.bytes().all(|b| b.is_ascii_digit())).then(|| part.parse().ok()).flatten()
        };
        Some(Offset { stream: number(stream)?, position: number(position)? })
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
        let (a, b) = (Offset::new(3, 9), Offset::new(3, 10));
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string(), "0000000000000003_0000000000000009");
        assert_eq!(Offset::parse(&b.to_string()), Some(b));
        // A fork's own offsets sort after its source's, as its positions do.
        assert!(Offset::new(3, 500).to_string() < Offset::new(4, 2).to_string());
        for bad in ["", "10", "0_10", "0000000000000000-0000000000000009", "000000000000000a_0000000000000009"] {
            assert_eq!(Offset::parse(bad), None, "{bad}");
        }
        assert_eq!(Start::parse(None), Some(Start::Beginning));
        assert_eq!(Start::parse(Some("now")), Some(Start::Now));
        assert_eq!(Start::parse(Some("x")), None);
    }
}
