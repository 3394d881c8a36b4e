//! Protobuf schemas: compiled with `protox` from their registered form, records decoded with
//! `prost-reflect` and written as proto3's canonical JSON.
//!
//! A registry holds a Protobuf schema either as `.proto` text or, as confluent-kafka's Python
//! serializer registers it, as a base64 serialized `FileDescriptorProto`; both are taken. Its
//! references are the files it imports, by import path; Google's well-known types
//! (`google/protobuf/*.proto`) are built in, as registries do not store them.
//!
//! JSON is the [canonical proto3 mapping](https://protobuf.dev/programming-guides/json/): field
//! names in lowerCamelCase, 64-bit integers as strings, enums by name, `bytes` as base64,
//! well-known types in their special forms (a `Timestamp` as an RFC 3339 string), fields at
//! their default value left out.

use crate::wire::MessageIndexes;
use base64::Engine;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use std::collections::HashMap;

/// Which message of a schema a record is, as its registry's serializer wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which<'a> {
    /// Confluent's message indexes: see [`ProtobufSchema::message`].
    Confluent(&'a MessageIndexes),
    /// AWS Glue's message index: see [`ProtobufSchema::glue_message`].
    Glue(usize),
}

/// A compiled Protobuf schema: the file the registry holds and everything it imports.
#[derive(Debug, Clone)]
pub struct ProtobufSchema {
    pool: DescriptorPool,
    file: String,
}

/// The registered file and its references, served to `protox` by name.
struct Registered {
    files: HashMap<String, File>,
}

impl FileResolver for Registered {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        self.files
            .get(name)
            .cloned()
            .ok_or_else(|| protox::Error::file_not_found(name))
    }
}

/// Reads a registered schema's text: `.proto` source, or a base64 `FileDescriptorProto`.
fn file(name: &str, text: &str) -> Result<File, String> {
    let trimmed = text.trim();
    let looks_base64 = !trimmed.is_empty()
        && !trimmed.contains(['{', ';', ' ', '\n'])
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if looks_base64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .map_err(|e| format!("`{name}` is neither .proto text nor base64: {e}"))?;
        return File::decode_file_descriptor_proto(bytes.as_slice())
            .map_err(|e| format!("`{name}` is base64 but no FileDescriptorProto: {e}"));
    }
    File::from_source(name, text).map_err(|e| format!("`{name}`: {e}"))
}

impl ProtobufSchema {
    /// Compiles `text` (named `name` unless it is a descriptor carrying its own name) with its
    /// `references` (import path → text).
    ///
    /// # Errors
    /// The text or a reference does not parse, or an import is missing.
    pub fn compile<'a>(
        name: &str,
        text: &str,
        references: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut files = HashMap::new();
        for (import, reference) in references {
            files.insert(import.to_owned(), file(import, reference)?);
        }
        let main = file(name, text)?;
        let main_name = match main.file_descriptor_proto().name() {
            "" => name.to_owned(),
            own => own.to_owned(),
        };
        files.insert(main_name.clone(), main);
        let mut resolver = ChainFileResolver::new();
        resolver.add(Registered { files });
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler
            .open_file(&main_name)
            .map_err(|e| format!("does not compile: {e}"))?;
        Ok(ProtobufSchema {
            pool: compiler.descriptor_pool(),
            file: main_name,
        })
    }

    /// The message `indexes` name: into the file's top-level messages, then nested ones.
    ///
    /// # Errors
    /// An index is out of range.
    pub fn message(&self, indexes: &MessageIndexes) -> Result<MessageDescriptor, String> {
        let file = self
            .pool
            .get_file_by_name(&self.file)
            .ok_or_else(|| format!("the compiled schema has no file `{}`", self.file))?;
        let mut path = indexes.0.iter();
        let first = *path.next().unwrap_or(&0);
        let mut message = file.messages().nth(first).ok_or_else(|| {
            format!(
                "message index {first} is out of range: the schema has {} top-level messages",
                file.messages().len()
            )
        })?;
        for &index in path {
            let child = message.child_messages().nth(index);
            message = child.ok_or_else(|| {
                format!(
                    "message index {index} is out of range in `{}`",
                    message.full_name()
                )
            })?;
        }
        Ok(message)
    }

    /// The message at `index` in AWS Glue's numbering: every message of the file, nested ones
    /// included, sorted by full name (`MessageIndexFinder` of aws-glue-schema-registry: `B` = 0,
    /// `B.A` = 1, `B.A.D` = 2, `B.C` = 3).
    ///
    /// # Errors
    /// The index is out of range.
    pub fn glue_message(&self, index: usize) -> Result<MessageDescriptor, String> {
        let file = self
            .pool
            .get_file_by_name(&self.file)
            .ok_or_else(|| format!("the compiled schema has no file `{}`", self.file))?;
        let mut all = Vec::new();
        let mut level: Vec<MessageDescriptor> = file.messages().collect();
        while !level.is_empty() {
            let next = level.iter().flat_map(|m| m.child_messages()).collect();
            all.append(&mut level);
            level = next;
        }
        let count = all.len();
        all.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        all.into_iter().nth(index).ok_or_else(|| {
            format!(
                "AWS Glue message index {index} is out of range: the schema has {count} messages"
            )
        })
    }

    /// Decodes `data` as the message `which` names and writes it as canonical JSON into `out`.
    ///
    /// # Errors
    /// `which` names no message, or the data is not that message.
    pub fn to_json(&self, which: Which<'_>, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let message = self.decode(which, data)?;
        let mut serializer = serde_json::Serializer::new(out);
        message
            .serialize_with_options(&mut serializer, &SerializeOptions::new())
            .map_err(|e| format!("cannot write the message as JSON: {e}"))
    }

    /// Decodes `data` as the message `which` names.
    ///
    /// # Errors
    /// `which` names no message, or the data is not that message.
    pub fn decode(&self, which: Which<'_>, data: &[u8]) -> Result<DynamicMessage, String> {
        let descriptor = match which {
            Which::Confluent(indexes) => self.message(indexes)?,
            Which::Glue(index) => self.glue_message(index)?,
        };
        DynamicMessage::decode(descriptor.clone(), data)
            .map_err(|e| format!("not a `{}` message: {e}", descriptor.full_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = r#"
        syntax = "proto3";
        package shop;
        import "google/protobuf/timestamp.proto";
        import "common.proto";
        message Other { string x = 1; }
        message Order {
            int64 id = 1;
            common.Money total = 2;
            google.protobuf.Timestamp at = 3;
            message Line { string sku = 1; int32 qty = 2; bytes tag = 3; }
            repeated Line lines = 4;
        }
    "#;
    const COMMON: &str = "syntax = \"proto3\"; package common; message Money { int64 cents = 1; }";

    fn compiled() -> ProtobufSchema {
        ProtobufSchema::compile("order.proto", ORDER, [("common.proto", COMMON)]).unwrap()
    }

    #[test]
    fn message_indexes_select_top_level_and_nested_messages() {
        let s = compiled();
        assert_eq!(
            s.message(&MessageIndexes(vec![0])).unwrap().full_name(),
            "shop.Other"
        );
        assert_eq!(
            s.message(&MessageIndexes(vec![1])).unwrap().full_name(),
            "shop.Order"
        );
        assert_eq!(
            s.message(&MessageIndexes(vec![1, 0])).unwrap().full_name(),
            "shop.Order.Line"
        );
        assert!(s.message(&MessageIndexes(vec![2])).is_err());
        assert!(s.message(&MessageIndexes(vec![1, 1])).is_err());
    }

    #[test]
    fn messages_become_canonical_json() {
        let s = compiled();
        // Order { id: 7, total: { cents: 1999 }, lines: [{ sku: "a", qty: 2, tag: [1, 2] }] }
        let data = [
            0x08, 7, // id
            0x12, 3, 0x08, 0xcf, 0x0f, // total.cents = 1999
            0x22, 9, 0x0a, 1, b'a', 0x10, 2, 0x1a, 2, 1, 2, // lines[0]
            0, // a stray byte: field number 0 is invalid
        ];
        let mut out = Vec::new();
        let err = s.to_json(Which::Confluent(&MessageIndexes(vec![1])), &data, &mut out);
        assert!(err.is_err(), "{err:?}");
        out.clear();
        s.to_json(
            Which::Confluent(&MessageIndexes(vec![1])),
            &data[..data.len() - 1],
            &mut out,
        )
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "7",
                "total": {"cents": "1999"},
                "lines": [{"sku": "a", "qty": 2, "tag": "AQI="}]
            })
        );
    }

    #[test]
    fn glue_numbers_every_message_sorted_by_full_name() {
        let s = compiled();
        let names: Vec<String> = (0..3)
            .map(|i| s.glue_message(i).unwrap().full_name().to_owned())
            .collect();
        assert_eq!(names, ["shop.Order", "shop.Order.Line", "shop.Other"]);
        assert!(s.glue_message(3).is_err());
    }

    #[test]
    fn a_base64_file_descriptor_is_taken_like_proto_text() {
        use prost::Message;
        let s = compiled();
        let proto = s
            .pool
            .get_file_by_name("order.proto")
            .unwrap()
            .file_descriptor_proto()
            .encode_to_vec();
        let text = base64::engine::general_purpose::STANDARD.encode(proto);
        let again = ProtobufSchema::compile("whatever", &text, [("common.proto", COMMON)]).unwrap();
        assert_eq!(
            again
                .message(&MessageIndexes(vec![1, 0]))
                .unwrap()
                .full_name(),
            "shop.Order.Line"
        );
    }

    #[test]
    fn a_missing_import_is_named() {
        let e = ProtobufSchema::compile("order.proto", ORDER, []).unwrap_err();
        assert!(e.contains("common.proto"), "{e}");
    }
}
