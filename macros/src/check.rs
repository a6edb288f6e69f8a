//! The rules a model must follow, one function each. Type-level rules
//! (ordered key encodings, parent key types, computed index signatures) are
//! checked by the compiler on the generated code instead.
//!
//! The structure follows serde_derive's `internals/check.rs` (serde-rs/serde).

use quote::ToTokens;

use crate::ast::Model;
use crate::ctxt::Ctxt;
use crate::serde_attrs::{REFUSED, serde_attrs};

pub fn check(cx: &Ctxt, model: &Model) {
    check_no_generics(cx, model);
    check_exactly_one_key(cx, model);
    check_key_is_not_an_index(cx, model);
    check_unique_needs_index(cx, model);
    check_parent_is_not_also_index(cx, model);
    check_name_is_identifier(cx, model);
    check_older_versions(cx, model);
    check_serde_attributes_read_back(cx, model);
    check_index_names(cx, model);
    check_integrity_needs_parent(cx, model);
    check_sequence_names(cx, model);
    check_composite_fields(cx, model);
    check_expiry_field(cx, model);
}

// The expiry field is an index of its own: one per model, on a field
// that is nothing else.
fn check_expiry_field(cx: &Ctxt, model: &Model) {
    let mut seen = false;
    for field in &model.fields {
        let Some(tokens) = &field.attrs.expires else { continue };
        if seen {
            cx.error_spanned_by(tokens, "a model has at most one #[persistent(expires)] field");
        }
        seen = true;
        let attrs = &field.attrs;
        if attrs.key.is_some()
            || attrs.index.is_some()
            || attrs.unique.is_some()
            || attrs.parent.is_some()
            || attrs.sequence.is_some()
        {
            cx.error_spanned_by(tokens, "`expires` stands alone: the expiry field is indexed by itself and cannot also be a key, index, parent or sequence");
        }
    }
}

// A composite index lists two or more distinct fields of the struct.
fn check_composite_fields(cx: &Ctxt, model: &Model) {
    for composite in &model.container.composites {
        if composite.fields.len() < 2 {
            cx.error_spanned_by(
                &composite.tokens,
                "a composite index lists two or more fields; for one field, write #[persistent(index)] on it",
            );
        }
        for (at, name) in composite.fields.iter().enumerate() {
            if !model.fields.iter().any(|field| field.ident == name) {
                cx.error_spanned_by(name, format!("no field `{name}` in this struct"));
            } else if composite.fields[..at].contains(name) {
                cx.error_spanned_by(name, format!("`{name}` is listed twice"));
            }
        }
    }
}

// A sequence name is a key of the store's sequence table: not empty.
fn check_sequence_names(cx: &Ctxt, model: &Model) {
    for field in &model.fields {
        if let Some((_, Some(lit))) = &field.attrs.sequence {
            let name = lit.value();
            if name.is_empty() || name.len() > 255 {
                cx.error_spanned_by(lit, "a sequence name is 1 to 255 bytes long; choose another");
            }
        }
    }
}

// `must_exist` and `on_delete` say how a parent index relates its records
// to the parent model's, so they need `parent = Model`.
fn check_integrity_needs_parent(cx: &Ctxt, model: &Model) {
    for field in model.fields.iter().filter(|field| field.attrs.parent.is_none()) {
        if let Some(tokens) = &field.attrs.must_exist {
            cx.error_spanned_by(
                tokens,
                "`must_exist` needs a parent index; write #[persistent(parent = Model, must_exist)]",
            );
        }
        if let Some((tokens, _)) = &field.attrs.on_delete {
            cx.error_spanned_by(
                tokens,
                "`on_delete` needs a parent index; write #[persistent(parent = Model, on_delete = ...)]",
            );
        }
    }
}

// An index name becomes a table name and a handle constant: an identifier
// in lower case, and no two indexes of a model share one.
fn check_index_names(cx: &Ctxt, model: &Model) {
    let computed = model.fields.iter().filter_map(|field| match &field.attrs.index {
        Some((_, Some(crate::attr::Computed { name: Some((lit, name)), .. }))) => Some((lit, name)),
        _ => None,
    });
    let composite = model.container.composites.iter().filter_map(|c| c.name.as_ref().map(|(lit, name)| (lit, name)));
    let mut seen = Vec::new();
    for (lit, name) in computed.chain(composite) {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            cx.error_spanned_by(lit, "an index name is a lower-case identifier (letters, digits, `_`); choose another");
        }
        seen.push((lit, name));
    }
    let index_names: Vec<String> = model.indexes().iter().map(crate::ast::Index::name).collect();
    for (lit, name) in seen {
        if index_names.iter().filter(|other| *other == name).count() > 1 {
            cx.error_spanned_by(lit, format!("two indexes of this model are named `{name}`; give one another name"));
        }
    }
}

// Stored records are read by position: serde attributes that skip a field
// on one side, or need a self-describing format, would write records that
// cannot be loaded.
fn check_serde_attributes_read_back(cx: &Ctxt, model: &Model) {
    let fields = model.fields.iter().flat_map(|field| serde_attrs(&field.original.attrs));
    for attr in serde_attrs(&model.original.attrs).into_iter().chain(fields) {
        if let Some((name, fix)) = REFUSED.iter().find(|(name, _)| attr.path.is_ident(name)) {
            cx.error_spanned_by(&attr.path, format!("#[serde({name})] on a skyshelve model: {fix}"));
        }
    }
}

// Older versions need a current version above them, each number once.
fn check_older_versions(cx: &Ctxt, model: &Model) {
    let current = model.container.version.as_ref().map(|(_, v)| *v);
    if let (None, Some((path, _))) = (current, model.container.from.first()) {
        cx.error_spanned_by(path, "`from` needs the current version: write #[persistent(version = N, from(...))]");
        return;
    }
    let mut seen = Vec::new();
    for (path, older) in &model.container.from {
        let number = older.as_ref().map_or(current.unwrap_or(1).saturating_sub(1), |(_, n)| *n);
        let tokens = older.as_ref().map_or_else(|| path.to_token_stream(), |(lit, _)| lit.to_token_stream());
        if Some(number) >= current || number == 0 {
            cx.error_spanned_by(tokens, "an older version is a number from 1 below the current `version`");
        } else if seen.contains(&number) {
            cx.error_spanned_by(tokens, "this version number is listed twice in `from(...)`");
        }
        seen.push(number);
    }
}

// Models are registered in a program-wide list, which a generic type cannot join.
fn check_no_generics(cx: &Ctxt, model: &Model) {
    let generics = &model.original.generics;
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            generics,
            "#[derive(Persistent)] does not support generic structs; define a concrete model type",
        );
    }
}

// Exactly one field is marked #[persistent(key)].
fn check_exactly_one_key(cx: &Ctxt, model: &Model) {
    let keys: Vec<_> = model.keys().collect();
    if keys.is_empty() {
        cx.error_spanned_by(&model.original.ident, "missing #[persistent(key)]; mark exactly one field as the key");
    }
    for extra in keys.iter().skip(1) {
        let tokens = extra.attrs.key.as_ref().expect("key fields have key tokens");
        let message =
            format!("a model has exactly one key, but `{}` is marked too; remove one #[persistent(key)]", extra.ident);
        cx.error_spanned_by(tokens, message);
    }
}

// The key is already looked up directly; an index on it would duplicate it.
fn check_key_is_not_an_index(cx: &Ctxt, model: &Model) {
    for field in model.keys() {
        let attrs = &field.attrs;
        let extra =
            attrs.index.as_ref().map(|(t, _)| t).or(attrs.unique.as_ref()).or(attrs.parent.as_ref().map(|(t, _)| t));
        if let Some(tokens) = extra {
            cx.error_spanned_by(
                tokens,
                "the key field cannot also be an index; keys are unique and looked up directly, so remove this",
            );
        }
    }
}

// `unique` qualifies an index.
fn check_unique_needs_index(cx: &Ctxt, model: &Model) {
    for field in &model.fields {
        let attrs = &field.attrs;
        if let Some(tokens) = &attrs.unique
            && attrs.index.is_none()
            && attrs.parent.is_none()
            && attrs.key.is_none()
        {
            cx.error_spanned_by(tokens, "`unique` needs an index; write #[persistent(index, unique)]");
        }
    }
}

// `parent = Model` is an index by itself.
fn check_parent_is_not_also_index(cx: &Ctxt, model: &Model) {
    for field in &model.fields {
        if let (Some(_), Some((tokens, _))) = (&field.attrs.parent, &field.attrs.index) {
            cx.error_spanned_by(tokens, "`parent = ...` already makes this field an index; remove `index`");
        }
    }
}

// Model names become database names: ASCII letters, digits and underscores.
fn check_name_is_identifier(cx: &Ctxt, model: &Model) {
    let Some((lit, name)) = &model.container.name else { return };
    let valid = !name.is_empty() && name.len() <= 200 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        cx.error_spanned_by(
            lit.to_token_stream(),
            "model names use ASCII letters, digits and `_` only (at most 200); choose another name",
        );
    }
}
