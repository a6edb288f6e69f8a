//! Attribute names, as constants so that none is spelled twice.
//!
//! The structure follows serde_derive's `internals/symbol.rs` (serde-rs/serde).

use std::fmt::{self, Display};

use syn::{Ident, Path};

/// One word of the `#[persistent(...)]` vocabulary.
#[derive(Copy, Clone)]
pub struct Symbol(&'static str);

pub const PERSISTENT: Symbol = Symbol("persistent");
pub const NAME: Symbol = Symbol("name");
pub const VERSION: Symbol = Symbol("version");
pub const KEY: Symbol = Symbol("key");
pub const INDEX: Symbol = Symbol("index");
pub const UNIQUE: Symbol = Symbol("unique");
pub const PARENT: Symbol = Symbol("parent");
pub const WITH: Symbol = Symbol("with");
pub const VALUE: Symbol = Symbol("value");
pub const FROM: Symbol = Symbol("from");
pub const MUST_EXIST: Symbol = Symbol("must_exist");
pub const ON_DELETE: Symbol = Symbol("on_delete");
pub const SEQUENCE: Symbol = Symbol("sequence");
pub const FIELDS: Symbol = Symbol("fields");
pub const EXPIRES: Symbol = Symbol("expires");
pub const HISTORY: Symbol = Symbol("history");

impl PartialEq<Symbol> for Ident {
    fn eq(&self, word: &Symbol) -> bool {
        self == word.0
    }
}

impl PartialEq<Symbol> for &Ident {
    fn eq(&self, word: &Symbol) -> bool {
        *self == word.0
    }
}

impl PartialEq<Symbol> for Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl PartialEq<Symbol> for &Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl Display for Symbol {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(self.0)
    }
}
