//! Parsing of `#[persistent(...)]` on the struct and on its fields.
//!
//! The structure follows serde_derive's `internals/attr.rs` (serde-rs/serde).

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitInt, LitStr};

use crate::ctxt::Ctxt;
use crate::symbol::{
    EXPIRES, FIELDS, FROM, HISTORY, INDEX, KEY, MUST_EXIST, NAME, ON_DELETE, PARENT, PERSISTENT, SEQUENCE, Symbol,
    UNIQUE, VALUE, VERSION, WITH,
};

/// One attribute value, remembering where it was written so that a
/// duplicate is reported at its second occurrence.
pub struct Attr<'c, T> {
    cx: &'c Ctxt,
    name: Symbol,
    tokens: TokenStream,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    fn none(cx: &'c Ctxt, name: Symbol) -> Self {
        Attr { cx, name, tokens: TokenStream::new(), value: None }
    }

    fn set<A: ToTokens>(&mut self, obj: A, value: T) {
        let tokens = obj.into_token_stream();
        if self.value.is_some() {
            let message = format!("duplicate #[persistent({})] attribute; remove this one", self.name);
            self.cx.error_spanned_by(tokens, message);
        } else {
            self.tokens = tokens;
            self.value = Some(value);
        }
    }

    /// The value and the tokens it was written with.
    pub fn get_with_tokens(self) -> Option<(TokenStream, T)> {
        self.value.map(|value| (self.tokens, value))
    }
}

/// `#[persistent(...)]` on the struct.
pub struct Container {
    pub name: Option<(LitStr, String)>,
    pub version: Option<(TokenStream, u16)>,
    /// `history = N`: how many previous versions of each record to keep.
    pub history: Option<(TokenStream, u32)>,
    /// Older versions, see [`OlderVersion`].
    pub from: Vec<OlderVersion>,
    /// Indexes over several fields, in declaration order.
    pub composites: Vec<Composite>,
}

/// `index(fields(a, b, ...), unique, name = "...")` on the struct: an
/// index whose values are the tuple of those fields.
pub struct Composite {
    /// The `fields(...)` tokens, for errors about the list.
    pub tokens: TokenStream,
    pub fields: Vec<syn::Ident>,
    pub unique: bool,
    pub name: Option<(LitStr, String)>,
}

/// An older version: the type it was written as, and its number (`None`
/// for the `from = Type` shorthand, meaning `version - 1`).
pub type OlderVersion = (syn::Path, Option<(LitInt, u16)>);

impl Container {
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut name = Attr::none(cx, NAME);
        let mut version = Attr::none(cx, VERSION);
        let mut from = Attr::none(cx, FROM);
        let mut history = Attr::none(cx, HISTORY);
        let mut composites = Vec::new();
        for attr in persistent_attrs(attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path == NAME {
                    let lit: LitStr = meta.value()?.parse()?;
                    let value = lit.value();
                    name.set(&meta.path, (lit, value));
                } else if meta.path == VERSION {
                    let lit: LitInt = meta.value()?.parse()?;
                    version.set(&meta.path, lit.base10_parse::<u16>()?);
                } else if meta.path == HISTORY {
                    let lit: LitInt = meta.value()?.parse()?;
                    let kept = lit.base10_parse::<u32>()?;
                    if kept == 0 {
                        return Err(syn::Error::new_spanned(lit, "`history = N` keeps N previous versions: N must be at least 1"));
                    }
                    history.set(&meta.path, kept);
                } else if meta.path == FROM {
                    from.set(&meta.path, parse_from(&meta)?);
                } else if meta.path == INDEX {
                    composites.push(parse_composite(cx, &meta)?);
                } else {
                    return Err(unknown(
                        &meta,
                        "struct",
                        "`name = \"...\"`, `version = N`, `from(OldType = N, ...)`, `history = N` or `index(fields(a, b), ...)`",
                    ));
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }
        Container {
            name: name.get_with_tokens().map(|(_, v)| v),
            version: version.get_with_tokens(),
            history: history.get_with_tokens(),
            from: from.get_with_tokens().map(|(_, v)| v).unwrap_or_default(),
            composites,
        }
    }
}

/// `index(with = path, value = Type, name = "...")`: a computed index.
pub struct Computed {
    pub with: syn::ExprPath,
    pub value: Option<syn::Type>,
    /// The index's own name, when it should not take the field's.
    pub name: Option<(LitStr, String)>,
}

/// `#[persistent(...)]` on a field; each entry keeps its tokens for spans.
#[derive(Default)]
pub struct Field {
    pub key: Option<TokenStream>,
    pub index: Option<(TokenStream, Option<Computed>)>,
    pub unique: Option<TokenStream>,
    pub parent: Option<(TokenStream, syn::Path)>,
    /// `must_exist`: a parent field's value must be the key of a stored parent.
    pub must_exist: Option<TokenStream>,
    /// `on_delete = restrict | cascade | leave`: what deleting the parent does.
    pub on_delete: Option<(TokenStream, syn::Ident)>,
    /// `sequence` or `sequence = "name"`: the store assigns the field the
    /// next number of a sequence on `append`.
    pub sequence: Option<(TokenStream, Option<LitStr>)>,
    /// `expires`: the record's expiry time; the field becomes an index.
    pub expires: Option<TokenStream>,
}

impl Field {
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut key = Attr::none(cx, KEY);
        let mut index = Attr::none(cx, INDEX);
        let mut unique = Attr::none(cx, UNIQUE);
        let mut parent = Attr::none(cx, PARENT);
        let mut must_exist = Attr::none(cx, MUST_EXIST);
        let mut on_delete = Attr::none(cx, ON_DELETE);
        let mut sequence = Attr::none(cx, SEQUENCE);
        let mut expires = Attr::none(cx, EXPIRES);
        for attr in persistent_attrs(attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path == KEY {
                    key.set(&meta.path, ());
                } else if meta.path == INDEX {
                    let computed =
                        if meta.input.peek(syn::token::Paren) { Some(parse_computed(cx, &meta)?) } else { None };
                    index.set(&meta.path, computed);
                } else if meta.path == UNIQUE {
                    unique.set(&meta.path, ());
                } else if meta.path == PARENT {
                    let model: syn::Path = meta.value()?.parse()?;
                    parent.set(&meta.path, model);
                } else if meta.path == MUST_EXIST {
                    must_exist.set(&meta.path, ());
                } else if meta.path == ON_DELETE {
                    let action: syn::Ident = meta.value()?.parse()?;
                    if !["restrict", "cascade", "leave"].iter().any(|a| action == a) {
                        return Err(syn::Error::new_spanned(
                            &action,
                            "unknown on_delete action; expected `restrict`, `cascade` or `leave`",
                        ));
                    }
                    on_delete.set(&meta.path, action);
                } else if meta.path == EXPIRES {
                    expires.set(&meta.path, ());
                } else if meta.path == SEQUENCE {
                    let name = if meta.input.peek(syn::Token![=]) { Some(meta.value()?.parse::<LitStr>()?) } else { None };
                    sequence.set(&meta.path, name);
                } else {
                    return Err(unknown(
                        &meta,
                        "field",
                        "`key`, `index`, `index(with = ...)`, `unique`, `parent = Model`, `must_exist`, `on_delete = ...`, `sequence` or `expires`",
                    ));
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }
        Field {
            key: key.get_with_tokens().map(|(tokens, ())| tokens),
            index: index.get_with_tokens(),
            unique: unique.get_with_tokens().map(|(tokens, ())| tokens),
            parent: parent.get_with_tokens(),
            must_exist: must_exist.get_with_tokens().map(|(tokens, ())| tokens),
            on_delete: on_delete.get_with_tokens(),
            sequence: sequence.get_with_tokens(),
            expires: expires.get_with_tokens().map(|(tokens, ())| tokens),
        }
    }
}

/// `from = OldType` or `from(OldType = 1, OlderType = 2)`.
fn parse_from(meta: &ParseNestedMeta) -> syn::Result<Vec<OlderVersion>> {
    if meta.input.peek(syn::Token![=]) {
        let path: syn::Path = meta.value()?.parse()?;
        return Ok(vec![(path, None)]);
    }
    let mut versions = Vec::new();
    meta.parse_nested_meta(|older| {
        let lit: LitInt = older.value()?.parse()?;
        let number = lit.base10_parse::<u16>()?;
        versions.push((older.path, Some((lit, number))));
        Ok(())
    })?;
    Ok(versions)
}

fn parse_composite(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Composite> {
    let mut fields = Attr::none(cx, FIELDS);
    let mut unique = Attr::none(cx, UNIQUE);
    let mut name = Attr::none(cx, NAME);
    meta.parse_nested_meta(|inner| {
        if inner.path == FIELDS {
            let mut idents = Vec::new();
            inner.parse_nested_meta(|field| {
                idents.push(field.path.require_ident()?.clone());
                Ok(())
            })?;
            fields.set(&inner.path, idents);
        } else if inner.path == UNIQUE {
            unique.set(&inner.path, ());
        } else if inner.path == NAME {
            let lit: LitStr = inner.value()?.parse()?;
            let text = lit.value();
            name.set(&inner.path, (lit, text));
        } else {
            return Err(unknown(&inner, "index", "`fields(a, b, ...)`, `unique` or `name = \"...\"`"));
        }
        Ok(())
    })?;
    let Some((tokens, fields)) = fields.get_with_tokens() else {
        return Err(meta.error("an index on the struct lists its fields: write #[persistent(index(fields(a, b)))]"));
    };
    let unique = unique.get_with_tokens().is_some();
    Ok(Composite { tokens, fields, unique, name: name.get_with_tokens().map(|(_, name)| name) })
}

fn parse_computed(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Computed> {
    let mut with = Attr::none(cx, WITH);
    let mut value = Attr::none(cx, VALUE);
    let mut name = Attr::none(cx, NAME);
    meta.parse_nested_meta(|inner| {
        if inner.path == NAME {
            let lit: LitStr = inner.value()?.parse()?;
            let text = lit.value();
            name.set(&inner.path, (lit, text));
        } else if inner.path == WITH {
            let path: syn::ExprPath = inner.value()?.parse()?;
            with.set(&inner.path, path);
        } else if inner.path == VALUE {
            let ty: syn::Type = inner.value()?.parse()?;
            value.set(&inner.path, ty);
        } else {
            return Err(unknown(&inner, "index", "`with = function`, `value = Type` or `name = \"...\"`"));
        }
        Ok(())
    })?;
    let Some((_, with)) = with.get_with_tokens() else {
        return Err(meta.error("computed index needs a function: write #[persistent(index(with = Model::function))]"));
    };
    let name = name.get_with_tokens().map(|(_, name)| name);
    Ok(Computed { with, value: value.get_with_tokens().map(|(_, ty)| ty), name })
}

fn persistent_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| attr.path() == PERSISTENT)
}

fn unknown(meta: &ParseNestedMeta, place: &str, expected: &str) -> syn::Error {
    let name = meta.path.to_token_stream().to_string().replace(' ', "");
    syn::Error::new_spanned(&meta.path, format!("unknown {place} attribute `{name}`; expected {expected}"))
}
