//! The layout of a stored type: the serde shape of a model's records or a
//! map's values — field names and their types, nested types as far as
//! serde can tell — so that a store can refuse a program that would read
//! its bytes as another shape. The values are bincode, which writes no
//! names and no types: without this, a second program declaring `struct
//! Entry` with other fields reads the first one's records as garbage.
//!
//! The shape is traced from the type's `Deserialize` impl with
//! `serde-reflection` (the serde ecosystem's tracer, used by its authors
//! to check wire formats across releases): it asks the impl for each
//! field, walks enums variant by variant, and names every primitive. That
//! sees what serde sees, nested structs, enums, options, sequences, maps
//! and tuples included, without a description of our own to keep in step
//! with the derive. It cannot see through a `Deserialize` that asks the
//! format what comes next (`deserialize_any`: `serde_json::Value`,
//! untagged or internally tagged enums) or that refuses the tracer's
//! sample values; such a type's layout is its Rust type name instead,
//! which tells types apart but not their versions.
//!
//! Type names themselves are left out, so that renaming a Rust type or
//! moving it to another module changes nothing: two layouts are equal
//! when their fields, in order, have equal names and shapes.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_reflection::{
    ContainerFormat, Format, FormatHolder, Named, Registry, Samples, Tracer, TracerConfig, VariantFormat,
};

/// A layout: the top-level fields, in order, each as (name, shape). A
/// type that is not a struct is one unnamed entry.
pub(crate) type Layout = Vec<(String, String)>;

/// The layout of `T`.
pub(crate) fn of<T: DeserializeOwned>() -> Layout {
    traced::<T>().unwrap_or_else(|| vec![(String::new(), format!("the Rust type {}", std::any::type_name::<T>()))])
}

fn traced<T: DeserializeOwned>() -> Option<Layout> {
    let (root, registry) = trace::<T>()?;
    let shapes = Shapes { registry: &registry };
    Some(match &root {
        Format::TypeName(name) => match registry.get(name) {
            Some(ContainerFormat::Struct(fields)) => {
                fields.iter().map(|field| (field.name.clone(), shapes.of(&field.value, &mut vec![name]))).collect()
            }
            _ => vec![(String::new(), shapes.of(&root, &mut Vec::new()))],
        },
        other => vec![(String::new(), shapes.of(other, &mut Vec::new()))],
    })
}

/// Traces `T` until every variant of every enum in it is known. The
/// tracer walks one variant of each enum per pass and says which enums
/// have variants left only once asked by name; their names come from the
/// registry's complaint, and the trace starts again knowing them. The
/// bounds only stop a type with thousands of variants from taking long.
fn trace<T: DeserializeOwned>() -> Option<(Format, Registry)> {
    let samples = Samples::new();
    let mut enums: Vec<String> = Vec::new();
    for _ in 0..16 {
        let mut tracer = Tracer::new(TracerConfig::default());
        let mut root = Format::unknown();
        for _ in 0..4096 {
            root = tracer.trace_type_once::<T>(&samples).ok()?.0;
            let root_name = match &root {
                Format::TypeName(name) => Some(name.clone()),
                _ => None,
            };
            let mut incomplete = false;
            for name in enums.iter().chain(&root_name) {
                incomplete |= tracer.check_incomplete_enum(name).is_some();
            }
            if !incomplete {
                break;
            }
        }
        match tracer.registry() {
            Ok(registry) => {
                root.normalize().ok()?;
                return Some((root, registry));
            }
            Err(serde_reflection::Error::MissingVariants(names)) => enums.extend(names),
            Err(_) => return None,
        }
    }
    None
}

/// Renders shapes with the containers they name written out in place.
struct Shapes<'r> {
    registry: &'r Registry,
}

impl Shapes<'_> {
    /// The shape of `format`; `within` holds the containers being written
    /// out, so that a recursive type is written as a reference up.
    fn of<'a>(&'a self, format: &'a Format, within: &mut Vec<&'a String>) -> String {
        match format {
            Format::TypeName(name) => self.container(name, within),
            Format::Option(inner) => format!("option<{}>", self.of(inner, within)),
            Format::Seq(inner) => format!("seq<{}>", self.of(inner, within)),
            Format::Map { key, value } => format!("map<{}, {}>", self.of(key, within), self.of(value, within)),
            Format::Tuple(items) => format!("({})", self.list(items, within)),
            Format::TupleArray { content, size } => format!("[{}; {size}]", self.of(content, within)),
            Format::Variable(_) => "?".to_owned(),
            primitive => format!("{primitive:?}").to_lowercase(),
        }
    }

    fn list<'a>(&'a self, formats: &'a [Format], within: &mut Vec<&'a String>) -> String {
        formats.iter().map(|format| self.of(format, within)).collect::<Vec<_>>().join(", ")
    }

    fn fields<'a>(&'a self, fields: &'a [Named<Format>], within: &mut Vec<&'a String>) -> String {
        let fields: Vec<String> =
            fields.iter().map(|field| format!("{}: {}", field.name, self.of(&field.value, within))).collect();
        format!("{{{}}}", fields.join(", "))
    }

    fn container<'a>(&'a self, name: &'a String, within: &mut Vec<&'a String>) -> String {
        if let Some(depth) = within.iter().rev().position(|open| *open == name) {
            return format!("^{}", depth + 1);
        }
        let Some(container) = self.registry.get(name) else { return "?".to_owned() };
        within.push(name);
        let shape = match container {
            ContainerFormat::UnitStruct => "unit".to_owned(),
            // bincode writes a newtype as what it wraps.
            ContainerFormat::NewTypeStruct(inner) => self.of(inner, within),
            ContainerFormat::TupleStruct(items) => format!("({})", self.list(items, within)),
            ContainerFormat::Struct(fields) => self.fields(fields, within),
            ContainerFormat::Enum(variants) => self.variants(variants, within),
        };
        within.pop();
        shape
    }

    fn variants<'a>(
        &'a self,
        variants: &'a BTreeMap<u32, Named<VariantFormat>>,
        within: &mut Vec<&'a String>,
    ) -> String {
        let variants: Vec<String> = variants
            .values()
            .map(|variant| {
                let shape = match &variant.value {
                    VariantFormat::Unit | VariantFormat::Variable(_) => String::new(),
                    VariantFormat::NewType(inner) => format!("({})", self.of(inner, within)),
                    VariantFormat::Tuple(items) => format!("({})", self.list(items, within)),
                    VariantFormat::Struct(fields) => self.fields(fields, within),
                };
                format!("{}{shape}", variant.name)
            })
            .collect();
        format!("enum {{{}}}", variants.join(" | "))
    }
}

/// What differs between the `stored` layout and this program's, in words:
/// fields added, removed, renamed, retyped or moved.
pub(crate) fn differences(stored: &Layout, current: &Layout) -> String {
    let named = |layout: &Layout, name: &str| layout.iter().position(|(field, _)| field == name);
    let mut said = Vec::new();
    for (position, (name, shape)) in stored.iter().enumerate() {
        match named(current, name) {
            Some(at) if current[at].1 != *shape => {
                said.push(format!("{} is {} in the store, {} here", label(name), shape, current[at].1));
            }
            Some(at) if at != position => {
                said.push(format!("{} is field {} in the store, {} here", label(name), position + 1, at + 1))
            }
            Some(_) => {}
            None => match current.get(position).filter(|(other, same)| same == shape && named(stored, other).is_none())
            {
                Some((other, _)) => said.push(format!("{} is named `{other}` here", label(name))),
                None => said.push(format!("{} ({shape}) is in the store, not here", label(name))),
            },
        }
    }
    for (position, (name, shape)) in current.iter().enumerate() {
        let renamed = stored.get(position).is_some_and(|(old, same)| same == shape && named(current, old).is_none());
        if named(stored, name).is_none() && !renamed {
            said.push(format!("{} ({shape}) is here, not in the store", label(name)));
        }
    }
    said.join("; ")
}

fn label(name: &str) -> String {
    if name.is_empty() { "the value".to_owned() } else { format!("field `{name}`") }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        tags: Vec<String>,
        score: Option<f64>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        Plain,
        Sized(u32),
        Named { width: u16 },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Record {
        id: u64,
        name: String,
        inner: Inner,
        kind: Kind,
        next: Option<Box<Record>>,
    }

    #[test]
    fn nested_types_enums_and_recursion_are_written_out_without_type_names() {
        let layout = of::<Record>();
        let shapes: Vec<String> = layout.iter().map(|(name, shape)| format!("{name}: {shape}")).collect();
        assert_eq!(
            shapes,
            [
                "id: u64",
                "name: str",
                "inner: {tags: seq<str>, score: option<f64>}",
                "kind: enum {Plain | Sized(u32) | Named{width: u16}}",
                "next: option<^1>",
            ]
        );
        assert_eq!(of::<(u32, String)>(), [(String::new(), "(u32, str)".to_owned())]);
    }

    #[cfg(feature = "json")]
    #[test]
    fn a_type_serde_cannot_trace_is_told_by_its_rust_name() {
        let layout = of::<serde_json::Value>();
        assert!(layout[0].1.contains("serde_json::value::Value"), "{layout:?}");
    }

    #[test]
    fn differences_name_each_field_added_removed_renamed_or_retyped() {
        let fields =
            |list: &[(&str, &str)]| -> Layout { list.iter().map(|(n, s)| ((*n).into(), (*s).into())).collect() };
        let stored = fields(&[("id", "u64"), ("name", "str"), ("age", "u32"), ("gone", "bool")]);
        let current = fields(&[("id", "str"), ("title", "str"), ("age", "u32"), ("new", "u8")]);
        assert_eq!(
            differences(&stored, &current),
            "field `id` is u64 in the store, str here; field `name` is named `title` here; \
             field `gone` (bool) is in the store, not here; field `new` (u8) is here, not in the store"
        );
        assert_eq!(differences(&stored, &stored), "");
    }
}
