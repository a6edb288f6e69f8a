//! A serializer that writes nothing and fails where a value skips a field.
//!
//! `#[serde(skip_serializing_if = ..)]` leaves a field out of the written
//! value when its condition holds, and serde tells the serializer through
//! `skip_field`. bincode ignores that call, so the bytes simply lack the
//! field and are read back with every later field shifted: sometimes an
//! error, sometimes other values of the same length, which no check of the
//! bytes can tell apart. Walking the value once through this probe finds
//! every skipped field, wherever it is nested.

use std::fmt;

use serde::ser::{self, Serialize};

/// Walks a value; fails at the first field it skips.
pub fn check_no_skipped_field<T: Serialize + ?Sized>(value: &T) -> Result<(), SkippedField> {
    value.serialize(Probe)
}

/// Why the probe stopped.
#[derive(Debug)]
pub struct SkippedField(pub String);

impl fmt::Display for SkippedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SkippedField {}

impl ser::Error for SkippedField {
    fn custom<M: fmt::Display>(message: M) -> Self {
        SkippedField(message.to_string())
    }
}

fn skipped(field: &str) -> SkippedField {
    SkippedField(format!("field `{field}` is skipped when written (skip_serializing_if)"))
}

struct Probe;

type Done = Result<(), SkippedField>;

/// The scalar methods of `Serializer`, all accepting their value.
macro_rules! accept {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method(self, _value: $ty) -> Done {
            Ok(())
        }
    )*};
}

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = SkippedField;
    type SerializeSeq = Probe;
    type SerializeTuple = Probe;
    type SerializeTupleStruct = Probe;
    type SerializeTupleVariant = Probe;
    type SerializeMap = Probe;
    type SerializeStruct = Probe;
    type SerializeStructVariant = Probe;

    accept!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_none(self) -> Done {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(Probe)
    }

    fn serialize_unit(self) -> Done {
        Ok(())
    }

    fn serialize_unit_variant(self, _name: &'static str, _index: u32, _variant: &'static str) -> Done {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Done {
        value.serialize(Probe)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Done {
        value.serialize(Probe)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Probe, SkippedField> {
        Ok(Probe)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Probe, SkippedField> {
        Ok(Probe)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Probe, SkippedField> {
        Ok(Probe)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Probe, SkippedField> {
        Ok(Probe)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Probe, SkippedField> {
        Ok(Probe)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Probe, SkippedField> {
        Ok(Probe)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Probe, SkippedField> {
        Ok(Probe)
    }
}

/// The element-taking compound traits, all walking into their elements.
macro_rules! compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for Probe {
            type Ok = ();
            type Error = SkippedField;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
                value.serialize(Probe)
            }

            fn end(self) -> Done {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Probe {
    type Ok = ();
    type Error = SkippedField;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        key.serialize(Probe)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(Probe)
    }

    fn end(self) -> Done {
        Ok(())
    }
}

/// The field-taking compound traits, which also hear about skipped fields.
macro_rules! fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Probe {
            type Ok = ();
            type Error = SkippedField;

            fn serialize_field<T: Serialize + ?Sized>(&mut self, _key: &'static str, value: &T) -> Done {
                value.serialize(Probe)
            }

            fn skip_field(&mut self, key: &'static str) -> Done {
                Err(skipped(key))
            }

            fn end(self) -> Done {
                Ok(())
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::check_no_skipped_field;

    #[derive(Serialize)]
    struct Inner {
        #[serde(skip_serializing_if = "Option::is_none")]
        nickname: Option<String>,
    }

    #[derive(Serialize)]
    enum Outer {
        Wrapped(Vec<Option<Inner>>),
    }

    #[test]
    fn a_nested_skipped_field_is_found_and_a_present_one_is_not() {
        let skipped = Outer::Wrapped(vec![None, Some(Inner { nickname: None })]);
        let err = check_no_skipped_field(&skipped).unwrap_err();
        assert!(err.to_string().contains("`nickname`"), "{err}");
        assert!(check_no_skipped_field(&Outer::Wrapped(vec![Some(Inner { nickname: Some("a".into()) })])).is_ok());
    }
}
