//! `#[derive(Key)]`: an order-preserving key encoding for a user's struct
//! or enum, built from its fields' encodings. Fields are encoded one after
//! another in declaration order, and an enum first writes its variant's
//! position: since every field encoding is self-delimiting, so is the
//! whole, and the bytes sort as the derived `Ord` does (fields in order,
//! variants in declaration order).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields};

pub fn derive(input: &DeriveInput) -> TokenStream {
    let ident = &input.ident;
    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(syn::parse_quote!(::skyshelve::Key));
    }
    let (impl_generics, type_generics, where_clause) = generics.split_for_impl();
    let (encode, decode) = match &input.data {
        Data::Struct(data) => (encode_struct(&data.fields), decode_fields(quote!(Self), &data.fields)),
        Data::Enum(data) => match enum_bodies(ident, data) {
            Ok(bodies) => bodies,
            Err(err) => return err.to_compile_error(),
        },
        Data::Union(data) => {
            return syn::Error::new_spanned(data.union_token, "#[derive(Key)] works on structs and enums only")
                .to_compile_error();
        }
    };
    quote! {
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #impl_generics ::skyshelve::EncodeKey for #ident #type_generics #where_clause {
                fn encode_key(&self, out: &mut ::std::vec::Vec<u8>) {
                    #encode
                }
            }

            #[automatically_derived]
            impl #impl_generics ::skyshelve::Key for #ident #type_generics #where_clause {
                fn decode_key(input: &mut &[u8]) -> ::skyshelve::Result<Self> {
                    #decode
                }
            }
        };
    }
}

/// Encodes `self`'s fields in order.
fn encode_struct(fields: &Fields) -> TokenStream {
    let names = field_bindings(fields);
    let pattern = pattern(quote!(Self), fields, &names);
    quote! {
        let #pattern = self;
        #(::skyshelve::EncodeKey::encode_key(#names, out);)*
    }
}

/// Builds `path` from fields decoded in order.
fn decode_fields(path: TokenStream, fields: &Fields) -> TokenStream {
    let decoded = fields.iter().map(|field| {
        let ty = &field.ty;
        quote!(<#ty as ::skyshelve::Key>::decode_key(input)?)
    });
    let value = match fields {
        Fields::Named(named) => {
            let names = named.named.iter().map(|f| f.ident.as_ref());
            quote!(#path { #(#names: #decoded),* })
        }
        Fields::Unnamed(_) => quote!(#path(#(#decoded),*)),
        Fields::Unit => quote!(#path),
    };
    quote!(::core::result::Result::Ok(#value))
}

/// The encode and decode bodies of an enum: the variant's position (one
/// byte, or two past 256 variants), then its fields.
fn enum_bodies(ident: &syn::Ident, data: &syn::DataEnum) -> syn::Result<(TokenStream, TokenStream)> {
    let count = data.variants.len();
    let tag_ty = match count {
        0 => return Err(syn::Error::new_spanned(ident, "#[derive(Key)] needs at least one variant")),
        1..=256 => quote!(u8),
        257..=65_536 => quote!(u16),
        _ => return Err(syn::Error::new_spanned(ident, "#[derive(Key)] supports at most 65,536 variants")),
    };
    let mut encode_arms = Vec::new();
    let mut decode_arms = Vec::new();
    for (position, variant) in data.variants.iter().enumerate() {
        let name = &variant.ident;
        let tag = proc_macro2::Literal::usize_unsuffixed(position);
        let names = field_bindings(&variant.fields);
        let pattern = pattern(quote!(Self::#name), &variant.fields, &names);
        encode_arms.push(quote! {
            #pattern => {
                ::skyshelve::EncodeKey::encode_key(&(#tag as #tag_ty), out);
                #(::skyshelve::EncodeKey::encode_key(#names, out);)*
            }
        });
        let build = decode_fields(quote!(Self::#name), &variant.fields);
        decode_arms.push(quote!(#tag => #build,));
    }
    let type_name = ident.to_string();
    let encode = quote!(match self { #(#encode_arms)* });
    let decode = quote! {
        match <#tag_ty as ::skyshelve::Key>::decode_key(input)? {
            #(#decode_arms)*
            other => ::core::result::Result::Err(::skyshelve::__private::unknown_variant(#type_name, other.into())),
        }
    };
    Ok((encode, decode))
}

/// A binding per field: `f0`, `f1`, ...
fn field_bindings(fields: &Fields) -> Vec<syn::Ident> {
    (0..fields.len()).map(|i| format_ident!("f{i}")).collect()
}

/// A pattern binding every field of `path` to `names`.
fn pattern(path: TokenStream, fields: &Fields, names: &[syn::Ident]) -> TokenStream {
    match fields {
        Fields::Named(named) => {
            let idents = named.named.iter().map(|f| f.ident.as_ref());
            quote!(#path { #(#idents: #names),* })
        }
        Fields::Unnamed(_) => quote!(#path(#(#names),*)),
        Fields::Unit => quote!(#path),
    }
}
