//! The model as the derive understands it, after attribute parsing. Every
//! part keeps the syntax it came from so errors can point at it.
//!
//! The structure follows serde_derive's `internals/ast.rs` (serde-rs/serde).

use syn::{Data, DeriveInput, Fields, Ident, LitStr, Type};

use crate::attr;
use crate::ctxt::Ctxt;

/// A struct with `#[derive(Persistent)]`.
pub struct Model<'a> {
    pub original: &'a DeriveInput,
    pub container: attr::Container,
    pub fields: Vec<Field<'a>>,
}

/// One named field and its `#[persistent(...)]` attributes.
pub struct Field<'a> {
    pub original: &'a syn::Field,
    pub ident: &'a Ident,
    pub attrs: attr::Field,
}

/// Where an index's values come from.
pub enum IndexSource<'a> {
    /// The field itself.
    Field,
    /// The `T` inside an `Option<T>` field; `None` is not indexed.
    Optional,
    /// A function of the record returning any number of values.
    Computed(&'a attr::Computed),
    /// A field holding a key of another model.
    Parent(&'a syn::Path),
    /// The record's expiry time, in milliseconds (`expires`).
    Expiry,
    /// Several fields, as a tuple (`index(fields(...))` on the struct).
    Composite(&'a attr::Composite, Vec<&'a Field<'a>>),
}

/// One secondary index.
pub struct Index<'a> {
    /// The field it is declared on; a composite index's first field.
    pub field: &'a Field<'a>,
    pub source: IndexSource<'a>,
    pub unique: bool,
    /// The type of the index values.
    pub value_ty: Type,
}

impl<'a> Model<'a> {
    /// Parses the input; `None` when it is not a struct with named fields
    /// (the error is then in `cx`).
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Model<'a>> {
        let container = attr::Container::from_ast(cx, &input.attrs);
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => &named.named,
                Fields::Unnamed(_) | Fields::Unit => {
                    cx.error_spanned_by(&input.ident, "#[derive(Persistent)] needs named fields; give each field a name so one can be marked #[persistent(key)]");
                    return None;
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(data.enum_token, "#[derive(Persistent)] works on structs only; wrap the enum in a struct with a #[persistent(key)] field");
                return None;
            }
            Data::Union(data) => {
                cx.error_spanned_by(data.union_token, "#[derive(Persistent)] works on structs only");
                return None;
            }
        };
        let fields = fields
            .iter()
            .filter_map(|field| {
                let ident = field.ident.as_ref()?;
                Some(Field { original: field, ident, attrs: attr::Field::from_ast(cx, &field.attrs) })
            })
            .collect();
        Some(Model { original: input, container, fields })
    }

    /// The model's name: `#[persistent(name = "...")]` or the type name in snake_case.
    pub fn name(&self) -> String {
        match &self.container.name {
            Some((_, name)) => name.clone(),
            None => snake_case(&self.original.ident.to_string()),
        }
    }

    /// The fields marked `#[persistent(key)]`.
    pub fn keys(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields.iter().filter(|field| field.attrs.key.is_some())
    }

    /// The `#[persistent(sequence)]` fields and the names of their
    /// sequences (`<model>.<field>` unless named), in declaration order.
    pub fn sequences(&self) -> Vec<(&Field<'a>, String)> {
        self.fields
            .iter()
            .filter_map(|field| {
                let (_, named) = field.attrs.sequence.as_ref()?;
                let name =
                    named.as_ref().map_or_else(|| format!("{}.{}", self.name(), unraw(field.ident)), LitStr::value);
                Some((field, name))
            })
            .collect()
    }

    /// The field marked `#[persistent(expires)]`, and its index's position.
    pub fn expiry(&self) -> Option<(&Field<'a>, usize)> {
        let position = self.indexes().iter().position(|index| matches!(index.source, IndexSource::Expiry))?;
        let field = self.fields.iter().find(|field| field.attrs.expires.is_some())?;
        Some((field, position))
    }

    /// The secondary indexes: those declared on fields, in declaration
    /// order, then the composite ones declared on the struct. A composite
    /// naming a field that does not exist is left out (`check` reports it).
    pub fn indexes(&self) -> Vec<Index<'_>> {
        let on_fields = self.fields.iter().filter_map(Index::of);
        let composites = self.container.composites.iter().filter_map(|composite| {
            let fields: Vec<&Field> = composite
                .fields
                .iter()
                .map(|name| self.fields.iter().find(|field| field.ident == name))
                .collect::<Option<_>>()?;
            let types = fields.iter().map(|field| &field.original.ty);
            let value_ty = syn::parse_quote!((#(#types,)*));
            let first = *fields.first()?;
            Some(Index {
                field: first,
                source: IndexSource::Composite(composite, fields),
                unique: composite.unique,
                value_ty,
            })
        });
        on_fields.chain(composites).collect()
    }
}

impl<'a> Index<'a> {
    fn of(field: &'a Field<'a>) -> Option<Index<'a>> {
        let ty = &field.original.ty;
        let unique = field.attrs.unique.is_some();
        if field.attrs.expires.is_some() {
            return Some(Index { field, source: IndexSource::Expiry, unique, value_ty: syn::parse_quote!(u64) });
        }
        let (source, value_ty) = if let Some((_, parent)) = &field.attrs.parent {
            let value_ty = option_inner(ty).unwrap_or(ty);
            (IndexSource::Parent(parent), value_ty)
        } else {
            match &field.attrs.index {
                None => return None,
                Some((_, Some(computed))) => {
                    let value_ty = computed.value.as_ref().or_else(|| collection_item(ty)).unwrap_or(ty);
                    (IndexSource::Computed(computed), value_ty)
                }
                Some((_, None)) => match option_inner(ty) {
                    Some(inner) => (IndexSource::Optional, inner),
                    None => (IndexSource::Field, ty),
                },
            }
        };
        Some(Index { field, source, unique, value_ty: value_ty.clone() })
    }

    /// The index's name: `index(name = "...")` of a computed index, or
    /// the field's name.
    pub fn name(&self) -> String {
        match &self.source {
            IndexSource::Computed(attr::Computed { name: Some((_, name)), .. })
            | IndexSource::Composite(attr::Composite { name: Some((_, name)), .. }, _) => name.clone(),
            IndexSource::Composite(_, fields) => {
                fields.iter().map(|field| unraw(field.ident)).collect::<Vec<_>>().join("_")
            }
            _ => unraw(self.field.ident),
        }
    }

    /// Whether `None` values of an `Option` parent field are left out.
    pub fn parent_is_optional(&self) -> bool {
        matches!(self.source, IndexSource::Parent(_)) && option_inner(&self.field.original.ty).is_some()
    }
}

/// A field's name without the `r#` of a raw identifier.
pub fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

/// `T` for a type written `Option<T>`.
pub fn option_inner(ty: &Type) -> Option<&Type> {
    single_generic(ty, &["Option"])
}

/// `T` for `Vec<T>`, `BTreeSet<T>`, `HashSet<T>` or `Option<T>`: the usual
/// item type of a computed index.
fn collection_item(ty: &Type) -> Option<&Type> {
    single_generic(ty, &["Vec", "BTreeSet", "HashSet", "Option"])
}

fn single_generic<'t>(ty: &'t Type, names: &[&str]) -> Option<&'t Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if !names.iter().any(|name| last.ident == name) {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    match args.args.first() {
        Some(syn::GenericArgument::Type(inner)) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

/// `UserProfile` → `user_profile`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}
