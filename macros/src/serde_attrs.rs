//! The model's `#[serde(...)]` attributes, read only as far as the stored
//! encoding cares. Records are stored with bincode, which reads fields by
//! position: an attribute that skips a field on one side only, or that
//! needs a self-describing format to read back, makes records that cannot
//! be loaded. Those are refused here; a model whose every field is of a
//! plain type and whose serde attributes keep the shape is known to read
//! back, and its writes skip the runtime read-back check.

use proc_macro2::TokenStream;
use syn::{Attribute, Type};

/// One `name` inside a `#[serde(...)]` attribute, with the path to point at.
pub struct SerdeAttr {
    pub path: syn::Path,
}

impl SerdeAttr {
    fn is(&self, name: &str) -> bool {
        self.path.is_ident(name)
    }
}

/// The names inside every `#[serde(...)]` of `attrs`. Serde reports its own
/// syntax errors, so what does not parse is passed over.
pub fn serde_attrs(attrs: &[Attribute]) -> Vec<SerdeAttr> {
    let mut found = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            skip_value(&meta)?;
            found.push(SerdeAttr { path: meta.path });
            Ok(())
        });
    }
    found
}

/// Consumes `= value` or `(...)` after an attribute name.
fn skip_value(meta: &syn::meta::ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        let _: TokenStream = content.parse()?;
    }
    Ok(())
}

/// Serde attributes whose records cannot be read back, and the fix.
pub const REFUSED: &[(&str, &str)] = &[
    (
        "skip_serializing_if",
        "a field skipped when it is written cannot be read back (records are read by position); \
         remove `skip_serializing_if`, or keep the JSON shape on a separate type",
    ),
    ("skip_serializing", "a field written on one side only cannot be read back; use #[serde(skip)] to leave it out"),
    ("skip_deserializing", "a field read on one side only cannot be read back; use #[serde(skip)] to leave it out"),
    ("flatten", "`flatten` needs a self-describing format to read back; nest the struct as a field instead"),
    ("tag", "tagged representations need a self-describing format to read back; remove `tag`"),
    ("content", "tagged representations need a self-describing format to read back; remove `content`"),
    ("untagged", "untagged representations need a self-describing format to read back; remove `untagged`"),
];

/// Serde attributes that leave the encoded shape as it is.
const SHAPE_KEEPING: &[&str] =
    &["rename", "rename_all", "alias", "deny_unknown_fields", "default", "skip", "crate", "expecting", "bound"];

/// Whether every attribute in `attrs` keeps the encoded shape.
pub fn keep_shape(attrs: &[SerdeAttr]) -> bool {
    attrs.iter().all(|attr| SHAPE_KEEPING.iter().any(|name| attr.is(name)))
}

/// Whether values of `ty` read back as they were written whatever they
/// hold: primitives, `String`, and the standard containers, tuples and
/// arrays of such. Anything else (a user's type may carry any serde
/// attribute) is checked when written instead.
pub fn is_plain(ty: &Type) -> bool {
    const SCALARS: &[&str] = &[
        "bool", "char", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32",
        "f64", "String",
    ];
    const CONTAINERS: &[&str] =
        &["Option", "Vec", "Box", "VecDeque", "BTreeMap", "BTreeSet", "HashMap", "HashSet", "Rc", "Arc"];
    match ty {
        Type::Tuple(tuple) => tuple.elems.iter().all(is_plain),
        Type::Array(array) => is_plain(&array.elem),
        Type::Group(group) => is_plain(&group.elem),
        Type::Paren(paren) => is_plain(&paren.elem),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else { return false };
            let name = last.ident.to_string();
            match &last.arguments {
                syn::PathArguments::None => SCALARS.contains(&name.as_str()),
                syn::PathArguments::AngleBracketed(args) if CONTAINERS.contains(&name.as_str()) => {
                    args.args.iter().all(|arg| matches!(arg, syn::GenericArgument::Type(ty) if is_plain(ty)))
                }
                _ => false,
            }
        }
        _ => false,
    }
}
