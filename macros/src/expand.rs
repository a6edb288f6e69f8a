//! Code generation. On error, the errors are emitted together with a
//! minimal impl so the user sees the real mistake and not a cascade of
//! "trait not implemented" errors.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident};

use crate::ast::{Index, IndexSource, Model};
use crate::check;
use crate::ctxt::Ctxt;

pub fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let model = Model::from_ast(&cx, input);
    if let Some(model) = &model {
        check::check(&cx, model);
    }
    match (cx.check(), model) {
        (Ok(()), Some(model)) => expand(&model),
        (Err(errors), _) => fallback(input, &errors),
        (Ok(()), None) => unreachable!("a model that failed to parse reported an error"),
    }
}

fn expand(model: &Model) -> TokenStream {
    let ident = &model.original.ident;
    let key = model.keys().next().expect("checked: exactly one key");
    let key_ident = key.ident;
    let key_ty = &key.original.ty;
    let indexes = model.indexes();
    let info = model_info(model, &indexes);
    let entries = indexes.iter().enumerate().map(|(position, index)| index_entry(position, index));
    let handles = indexes.iter().enumerate().map(|(position, index)| handle(model, position, index));
    let checks = type_checks(model, &indexes);
    let upgrade = upgrade(model);
    let entries_param = if indexes.is_empty() { quote!(_entries) } else { quote!(entries) };
    let reads_back = reads_back(model);
    let sequences = sequences(model);
    let expiry = expiry(model);
    // `User::INFO` without the `Model` trait in scope; an index handle of
    // that name (a field `info`) keeps the name, as an inherent item would
    // have shadowed the trait's anyway.
    let inherent_info = (!indexes.iter().any(|index| index.name().to_uppercase() == "INFO")).then(|| {
        let vis = &model.original.vis;
        quote! {
            /// The model's static description (see `skyshelve::Model::INFO`).
            #vis const INFO: &'static ::skyshelve::ModelInfo = <Self as ::skyshelve::Model>::INFO;
        }
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications)]
        const _: () = {
            static SLOT: ::skyshelve::__private::ModelSlot = ::skyshelve::__private::ModelSlot::new();

            #[automatically_derived]
            impl ::skyshelve::Model for #ident {
                type Key = #key_ty;
                const INFO: &'static ::skyshelve::ModelInfo = &#info;

                const READS_BACK: bool = #reads_back;

                #[inline]
                fn record_key(&self) -> &Self::Key {
                    &self.#key_ident
                }

                fn index_entries(&self, #entries_param: &mut ::skyshelve::__private::IndexEntries) {
                    #(#entries)*
                }

                #upgrade

                #sequences

                #expiry
            }

            #[automatically_derived]
            impl #ident {
                #inherent_info
                #(#handles)*
            }

            ::skyshelve::__private::inventory::submit! {
                ::skyshelve::__private::Registration(<#ident as ::skyshelve::Model>::INFO)
            }

            ::skyshelve::__private::inventory::submit! {
                ::skyshelve::__private::ModelTools::of::<#ident>()
            }

            #checks
        };
    }
}

/// Whether the derive can see that every record reads back as written
/// (see `serde_attrs`).
fn reads_back(model: &Model) -> bool {
    use crate::serde_attrs::{is_plain, keep_shape, serde_attrs};
    keep_shape(&serde_attrs(&model.original.attrs))
        && model
            .fields
            .iter()
            .all(|field| is_plain(&field.original.ty) && keep_shape(&serde_attrs(&field.original.attrs)))
}

fn model_info(model: &Model, indexes: &[Index]) -> TokenStream {
    let ident = &model.original.ident;
    let name = model.name();
    let version = model.container.version.as_ref().map_or(1, |(_, v)| *v);
    let history = model.container.history.as_ref().map_or(0, |(_, n)| *n);
    let key = model.keys().next().expect("checked: exactly one key");
    let key_type = type_name(&key.original.ty);
    let infos = indexes.iter().map(|index| {
        let name = index.name();
        let unique = index.unique;
        let value_ty = &index.value_ty;
        let value_type = type_name(value_ty);
        let kind = match &index.source {
            IndexSource::Field => quote!(::skyshelve::IndexKind::Field),
            IndexSource::Optional => quote!(::skyshelve::IndexKind::Optional),
            IndexSource::Computed(_) => quote!(::skyshelve::IndexKind::Computed),
            IndexSource::Parent(_) => quote!(::skyshelve::IndexKind::Parent),
            IndexSource::Composite(..) => quote!(::skyshelve::IndexKind::Composite),
            IndexSource::Expiry => quote!(::skyshelve::IndexKind::Expiry),
        };
        let source = match &index.source {
            IndexSource::Computed(computed) => path_name(&computed.with.path),
            IndexSource::Parent(parent) => path_name(parent),
            IndexSource::Composite(_, fields) => {
                fields.iter().map(|field| crate::ast::unraw(field.ident)).collect::<Vec<_>>().join(", ")
            }
            IndexSource::Field | IndexSource::Optional | IndexSource::Expiry => String::new(),
        };
        // Integrity belongs to the parent field, not to an index that merely starts with it.
        let parent_attrs = matches!(index.source, IndexSource::Parent(_)).then_some(&index.field.attrs);
        let must_exist = parent_attrs.is_some_and(|attrs| attrs.must_exist.is_some());
        let on_delete = match parent_attrs
            .and_then(|attrs| attrs.on_delete.as_ref())
            .map(|(_, action)| action.to_string())
            .as_deref()
        {
            Some("restrict") => quote!(::skyshelve::OnDelete::Restrict),
            Some("cascade") => quote!(::skyshelve::OnDelete::Cascade),
            _ => quote!(::skyshelve::OnDelete::Leave),
        };
        let parent_info = match &index.source {
            IndexSource::Parent(parent) => {
                quote!(::core::option::Option::Some(::skyshelve::__private::info_of::<#parent>))
            }
            _ => quote!(::core::option::Option::None),
        };
        quote! {
            ::skyshelve::IndexInfo {
                name: #name,
                kind: #kind,
                unique: #unique,
                value_type: #value_type,
                source: #source,
                describe: ::skyshelve::__private::describe_encoded::<#value_ty>,
                parent_info: #parent_info,
                must_exist: #must_exist,
                on_delete: #on_delete,
            }
        }
    });
    quote! {
        ::skyshelve::ModelInfo {
            name: #name,
            version: #version,
            key_type: #key_type,
            indexes: &[#(#infos),*],
            history: #history,
            slot: &SLOT,
            ops: ::skyshelve::__private::ModelOps::of::<#ident>(),
        }
    }
}

/// The statement adding one index's values of `self` to `entries`.
fn index_entry(position: usize, index: &Index) -> TokenStream {
    let field = index.field.ident;
    let value_ty = &index.value_ty;
    match &index.source {
        IndexSource::Expiry => quote_spanned! {index.field.original.ty.span()=>
            if let ::core::option::Option::Some(millis) = ::skyshelve::__private::expiry_index_value(&self.#field) {
                entries.add(#position, &millis);
            }
        },
        IndexSource::Composite(_, fields) => {
            // A tuple of references encodes as the tuple of values does.
            let idents = fields.iter().map(|field| field.ident);
            quote!(entries.add(#position, &(#(&self.#idents,)*));)
        }
        IndexSource::Field => quote!(entries.add(#position, &self.#field);),
        IndexSource::Parent(_) if !index.parent_is_optional() => quote!(entries.add(#position, &self.#field);),
        IndexSource::Optional | IndexSource::Parent(_) => quote! {
            if let ::core::option::Option::Some(value) = &self.#field {
                entries.add(#position, value);
            }
        },
        IndexSource::Computed(computed) => {
            // Spanned at the function so that a wrong signature is reported there.
            let function = &computed.with;
            quote_spanned! {function.span()=>
                for value in ::core::iter::IntoIterator::into_iter(#function(self)) {
                    entries.add::<#value_ty>(#position, ::core::borrow::Borrow::<#value_ty>::borrow(&value));
                }
            }
        }
    }
}

/// `EXPIRY` and `expires_at` for the `#[persistent(expires)]` field.
fn expiry(model: &Model) -> TokenStream {
    let Some((field, position)) = model.expiry() else { return TokenStream::new() };
    let ident = field.ident;
    let ty = &field.original.ty;
    // Spanned at the type, so that a field of another type is reported there.
    let expiry = quote_spanned!(ty.span()=> <#ty as ::skyshelve::ExpiryField>::expiry(&self.#ident));
    quote! {
        const EXPIRY: ::core::option::Option<usize> = ::core::option::Option::Some(#position);

        fn expires_at(&self) -> ::core::option::Option<::std::time::SystemTime> {
            #expiry
        }
    }
}

/// `SEQUENCES` and `set_sequence` for the `#[persistent(sequence)]` fields.
fn sequences(model: &Model) -> TokenStream {
    let sequences = model.sequences();
    if sequences.is_empty() {
        return TokenStream::new();
    }
    let names = sequences.iter().map(|(_, name)| name);
    let arms = sequences.iter().enumerate().map(|(position, (field, _))| {
        let ident = field.ident;
        let ty = &field.original.ty;
        // Spanned at the type, so that a field of another type is reported there.
        let number = quote_spanned!(ty.span()=> <#ty as ::skyshelve::__private::SequenceField>::from_number(value));
        quote!(#position => self.#ident = #number,)
    });
    let getters = sequences.iter().enumerate().map(|(position, (field, _))| {
        let ident = field.ident;
        quote!(#position => ::core::convert::Into::<u64>::into(self.#ident),)
    });
    quote! {
        const SEQUENCES: &'static [&'static str] = &[#(#names),*];

        fn set_sequence(&mut self, position: usize, value: u64) {
            match position {
                #(#arms)*
                _ => {}
            }
        }

        fn sequence_number(&self, position: usize) -> u64 {
            match position {
                #(#getters)*
                _ => 0,
            }
        }
    }
}

/// Decoding of records written by older versions, through `From`.
fn upgrade(model: &Model) -> TokenStream {
    if model.container.from.is_empty() {
        return TokenStream::new();
    }
    let current = model.container.version.as_ref().map_or(1, |(_, v)| *v);
    let arms = model.container.from.iter().map(|(path, older)| {
        let number = older.as_ref().map_or(current.saturating_sub(1), |(_, n)| *n);
        quote_spanned! {path.span()=>
            #number => ::core::option::Option::Some(
                ::skyshelve::__private::decode_payload::<#path>(payload, Self::INFO.name)
                    .map(<Self as ::core::convert::From<#path>>::from),
            ),
        }
    });
    quote! {
        fn upgrade(version: u16, payload: &[u8]) -> ::core::option::Option<::skyshelve::Result<Self>> {
            match version {
                #(#arms)*
                _ => ::core::option::Option::None,
            }
        }
    }
}

/// `pub const EMAIL: UniqueIndex<User, String> = ...;`
fn handle(model: &Model, position: usize, index: &Index) -> TokenStream {
    let vis = &model.original.vis;
    let ident = &model.original.ident;
    let value_ty = &index.value_ty;
    let const_name = Ident::new(&index.name().to_uppercase(), index.field.ident.span());
    let doc = format!("Handle on the `{}` index, for queries.", index.name());
    let ty = match &index.source {
        IndexSource::Parent(parent) => quote!(::skyshelve::ParentIndex<#ident, #parent>),
        _ if index.unique => quote!(::skyshelve::UniqueIndex<#ident, #value_ty>),
        _ => quote!(::skyshelve::Index<#ident, #value_ty>),
    };
    let constructor = match &index.source {
        IndexSource::Parent(_) => quote!(::skyshelve::ParentIndex::new(#position)),
        _ if index.unique => quote!(::skyshelve::UniqueIndex::new(#position)),
        _ => quote!(::skyshelve::Index::new(#position)),
    };
    quote! {
        #[doc = #doc]
        #vis const #const_name: #ty = #constructor;
    }
}

/// Compile-time assertions, each spanned at the user's tokens so that a
/// failure points at the field that causes it.
fn type_checks(model: &Model, indexes: &[Index]) -> TokenStream {
    let key = model.keys().next().expect("checked: exactly one key");
    let key_ty = &key.original.ty;
    let mut checks = vec![quote_spanned! {key_ty.span()=>
        ::skyshelve::__private::assert_key::<#key_ty>();
    }];
    for index in indexes {
        let value_ty = &index.value_ty;
        let span = match &index.source {
            IndexSource::Composite(composite, _) => composite.tokens.span(),
            _ => value_ty.span(),
        };
        checks.push(quote_spanned! {span=>
            ::skyshelve::__private::assert_key::<#value_ty>();
        });
        if let IndexSource::Parent(parent) = &index.source {
            let span = index.field.original.ty.span();
            checks.push(quote_spanned! {span=>
                ::skyshelve::__private::assert_parent_key::<#parent, #value_ty>();
            });
        }
    }
    quote! {
        const _: () = {
            #(#checks)*
        };
    }
}

/// On errors: the errors, plus an impl of the trait so that uses of the
/// model elsewhere do not add errors of their own.
fn fallback(input: &DeriveInput, errors: &syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let ident = &input.ident;
    if !input.generics.params.is_empty() {
        return errors;
    }
    quote! {
        #errors
        const _: () = {
            static SLOT: ::skyshelve::__private::ModelSlot = ::skyshelve::__private::ModelSlot::new();

            #[automatically_derived]
            impl ::skyshelve::Model for #ident {
                type Key = ();
                const INFO: &'static ::skyshelve::ModelInfo = &::skyshelve::ModelInfo {
                    name: "",
                    version: 0,
                    key_type: "()",
                    indexes: &[],
                    history: 0,
                    slot: &SLOT,
                    ops: ::skyshelve::__private::ModelOps::of::<#ident>(),
                };
                fn record_key(&self) -> &Self::Key {
                    &()
                }
                fn index_entries(&self, _: &mut ::skyshelve::__private::IndexEntries) {}
            }
        };
    }
}

/// A path as written, without the spaces token printing adds.
fn path_name(path: &syn::Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// A type as the user would write it, for `ModelInfo` and error messages.
fn type_name(ty: &syn::Type) -> String {
    ty.to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace(",)", ")")
        .replace(" :: ", "::")
        .replace("& ", "&")
}
