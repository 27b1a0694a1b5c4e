//! Checks docs/hypha.example.toml against the settings structs, both ways:
//! every key of the example is a field of the structs, and every field of
//! the structs (every subsystem's section, nested tables too) appears in
//! the example. The fields are read from the structs' own `Deserialize`
//! impls — serde hands each struct's field names to the deserializer — so
//! a knob added to any crate's settings fails this test until the example
//! documents it. (Parsing the example with `deny_unknown_fields` is the
//! `the_documented_example_parses` test beside this one.)

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::FileConfig;

/// The dotted paths of every field, and which of them are maps whose keys
/// are the operator's (`labels`, `work.exec_allow`).
#[derive(Default)]
struct Fields {
    all: BTreeSet<String>,
    maps: BTreeSet<String>,
}

/// A deserializer that produces placeholder values and records the path
/// of every struct field it is asked for.
#[derive(Clone, Copy)]
struct Recorder<'a> {
    path: &'a str,
    fields: &'a RefCell<Fields>,
}

/// Any string a field of these structs parses from (paths, names and
/// socket addresses alike).
const PLACEHOLDER: &str = "127.0.0.1:0";

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom(format!("{}: untyped field", self.path)))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_bool(false)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f64(1.0)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str(PLACEHOLDER)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str(PLACEHOLDER)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_seq(SeqDeserializer::new(std::iter::empty::<String>()))
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.fields.borrow_mut().maps.insert(self.path.to_owned());
        v.visit_map(MapDeserializer::new(std::iter::empty::<(String, String)>()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        names: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_map(StructFields {
            recorder: self,
            names: names.iter(),
            current: String::new(),
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        let first = variants.first().copied().unwrap_or_default();
        v.visit_enum(first.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u128 f32 char bytes byte_buf unit unit_struct
        newtype_struct tuple tuple_struct identifier ignored_any
    }
}

/// Hands a struct's visitor each of its fields, recording their paths.
struct StructFields<'a> {
    recorder: Recorder<'a>,
    names: std::slice::Iter<'static, &'static str>,
    current: String,
}

impl<'de> MapAccess<'de> for StructFields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(name) = self.names.next() else {
            return Ok(None);
        };
        self.current = match self.recorder.path {
            "" => (*name).to_owned(),
            parent => format!("{parent}.{name}"),
        };
        let fields = self.recorder.fields;
        fields.borrow_mut().all.insert(self.current.clone());
        seed.deserialize((*name).into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(Recorder {
            path: &self.current,
            fields: self.recorder.fields,
        })
    }
}

/// Every field path the node's config file has.
fn struct_fields() -> Fields {
    let fields = RefCell::new(Fields::default());
    let root = Recorder {
        path: "",
        fields: &fields,
    };
    if let Err(err) = FileConfig::deserialize(root) {
        panic!("walking the settings structs: {err}");
    }
    fields.into_inner()
}

/// Every key path of a TOML table, not descending into `maps`.
fn toml_keys(
    table: &toml::Table,
    parent: &str,
    maps: &BTreeSet<String>,
    out: &mut BTreeSet<String>,
) {
    for (key, value) in table {
        let path = match parent {
            "" => key.clone(),
            _ => format!("{parent}.{key}"),
        };
        if let (toml::Value::Table(inner), false) = (value, maps.contains(&path)) {
            toml_keys(inner, &path, maps, out);
        }
        out.insert(path);
    }
}

#[test]
fn the_example_documents_every_setting_and_nothing_else() {
    let fields = struct_fields();
    // The walk sees every section, so it is a real list of knobs.
    for known in [
        "node_name",
        "listen.bulk",
        "cluster.gossip.tick_ms",
        "work.exec_allow",
    ] {
        assert!(fields.all.contains(known), "{known} not found by the walk");
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/hypha.example.toml");
    let text = std::fs::read_to_string(path).expect("docs/hypha.example.toml is readable");
    let example: toml::Table = text.parse().expect("docs/hypha.example.toml is TOML");
    let mut keys = BTreeSet::new();
    toml_keys(&example, "", &fields.maps, &mut keys);
    let undocumented: Vec<_> = fields.all.difference(&keys).collect();
    let unknown: Vec<_> = keys.difference(&fields.all).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "settings missing from the example: {undocumented:?}; example keys no struct has: {unknown:?}"
    );
}
