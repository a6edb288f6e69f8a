//! The typed handles on indexes that the derive generates (`User::EMAIL`,
//! `Post::AUTHOR`, ...); the indexes' descriptions are `model.rs`.

use std::fmt;
use std::marker::PhantomData;

use crate::codec::key::Key;
use crate::model::{Model, ModelInfo};

/// The static description of model `M`, as a function pointer target.
#[doc(hidden)]
#[must_use]
pub fn info_of<M: Model>() -> &'static ModelInfo {
    M::INFO
}

/// A typed handle on one index of model `M` whose values have type `V`;
/// accepted by every index query.
pub trait IndexHandle: Copy {
    /// The model the index belongs to.
    type Model: Model;
    /// The type of the index values.
    type Value: Key;
    /// The index's position in the model's `INFO.indexes`.
    fn position(&self) -> usize;
}

macro_rules! handle_type {
    ($(#[$doc:meta])* $name:ident, $value:ident => $value_ty:ty) => {
        $(#[$doc])*
        pub struct $name<M, $value> {
            position: usize,
            _types: PhantomData<fn() -> (M, $value)>,
        }

        impl<M, $value> $name<M, $value> {
            #[doc(hidden)]
            #[must_use]
            pub const fn new(position: usize) -> Self {
                Self { position, _types: PhantomData }
            }
        }

        impl<M, $value> Clone for $name<M, $value> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<M, $value> Copy for $name<M, $value> {}

        impl<M: Model, $value> fmt::Debug for $name<M, $value> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let info = &M::INFO.indexes[self.position];
                write!(f, "{}::{}({})", M::INFO.name, info.name, info.value_type)
            }
        }
    };
}

handle_type!(
    /// A plain, optional or computed index: many records per value.
    Index, V => V
);
handle_type!(
    /// A unique index: at most one record per value, so [`Persistent::load_by`](crate::Persistent::load_by)
    /// accepts it.
    UniqueIndex, V => V
);
handle_type!(
    /// An index whose values are keys of the model `P`, queried with
    /// [`Persistent::children`](crate::Persistent::children).
    ParentIndex, P => P::Key
);

impl<M: Model, V: Key> IndexHandle for Index<M, V> {
    type Model = M;
    type Value = V;
    fn position(&self) -> usize {
        self.position
    }
}

impl<M: Model, V: Key> IndexHandle for UniqueIndex<M, V> {
    type Model = M;
    type Value = V;
    fn position(&self) -> usize {
        self.position
    }
}

impl<M: Model, P: Model> IndexHandle for ParentIndex<M, P> {
    type Model = M;
    type Value = P::Key;
    fn position(&self) -> usize {
        self.position
    }
}
