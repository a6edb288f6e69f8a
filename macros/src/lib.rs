//! `#[derive(Persistent)]` for skyshelve. Use it through the `skyshelve`
//! crate, which re-exports it.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod key;
mod serde_attrs;
mod symbol;

use proc_macro::TokenStream;

/// Makes a serde struct a skyshelve model; see the `skyshelve` crate.
#[proc_macro_derive(Persistent, attributes(persistent))]
pub fn derive_persistent(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input).into()
}

/// Gives a struct or enum skyshelve's order-preserving key encoding, so it
/// can be a key, an index value or a map key; see `skyshelve::Key`.
#[proc_macro_derive(Key)]
pub fn derive_key(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    key::derive(&input).into()
}
