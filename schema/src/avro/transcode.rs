//! Avro binary datums written straight to JSON text (the mapping of the [parent
//! module](super)), by walking a plan compiled once from the writer schema: no value tree, no
//! allocation per string, array or map, and field names written from bytes encoded once.
//!
//! The plan is built from `apache-avro`'s parsed [`Schema`], with names resolved as its own
//! decoder resolves them; the transcoder is checked against that decoder in the tests. It is
//! stricter than the decoder where the decoder forgives: a datum that ends early is refused,
//! not completed with nulls.
//!
//! Untrusted data cannot make it run away: nesting is bounded ([`MAX_DEPTH`]), every length is
//! checked against the bytes that remain, and the JSON written for one datum is bounded
//! ([`output_budget`]), so that a few bytes claiming millions of zero-width items (nulls, empty
//! records) are refused instead of filling memory.

use apache_avro::Schema;
use apache_avro::schema::{
    DecimalSchema, EnumSchema, FixedSchema, InnerDecimalSchema, Name, NamespaceRef, RecordSchema,
    ResolvedSchema, UuidSchema,
};
use scalars::{write_base64, write_decimal, write_float, write_str, write_uuid};
use std::collections::HashMap;

/// How deeply a datum may nest records, arrays, maps and unions. A recursive schema allows any
/// depth; a datum that goes deeper than this is refused instead of exhausting the stack.
pub const MAX_DEPTH: usize = 256;

/// The most JSON one datum may write: 64 bytes for every byte read, and 16 MiB more. Avro's
/// widest honest expansion is a field name per byte (a record of booleans); only zero-width
/// items repeated by a block count go beyond it.
fn output_budget(data_len: usize) -> usize {
    data_len.saturating_mul(64).saturating_add(16 << 20)
}

/// What the transcoder does at one place of the schema.
#[derive(Debug, Clone)]
enum Node {
    Null,
    Boolean,
    /// `int`, `date`, `time-millis`: a zigzag varint of 32 bits.
    Int,
    /// `long`, `time-micros` and every timestamp: a zigzag varint of 64 bits.
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// `fixed` of this size, written as base64.
    Fixed(usize),
    /// The symbols, each already written as a JSON string.
    Enum(Vec<Box<[u8]>>),
    Array(usize),
    Map(usize),
    /// The branches' nodes.
    Union(Vec<usize>),
    /// Each field's `"name":` already written, with the field's node.
    Record(Vec<(Box<[u8]>, usize)>),
    /// `decimal` over `bytes` (`fixed: None`) or a `fixed` of that size.
    Decimal {
        scale: usize,
        fixed: Option<usize>,
    },
    /// `uuid` over a string, checked and written hyphenated.
    UuidString,
    /// `uuid` over 16 bytes (`bytes` or `fixed`).
    UuidBytes {
        fixed: bool,
    },
    /// `duration`: a `fixed` of 12 bytes, three little-endian `u32`.
    Duration,
    /// `big-decimal`, apache-avro's own logical type, left to apache-avro.
    BigDecimal,
}

/// A writer schema compiled for transcoding.
#[derive(Debug, Clone)]
pub(crate) struct JsonPlan {
    nodes: Vec<Node>,
    root: usize,
}

impl JsonPlan {
    /// Compiles `schema`, whose named types are defined in it or in `references`.
    ///
    /// # Errors
    /// A named type is used but defined nowhere, or a `fixed` has a size its logical type
    /// does not allow.
    pub(crate) fn compile(schema: &Schema, references: &[Schema]) -> Result<Self, String> {
        let all: Vec<&Schema> = references.iter().chain(std::iter::once(schema)).collect();
        let resolved = ResolvedSchema::new_with_schemata(all)
            .map_err(|e| format!("has a named type that does not resolve: {e}"))?;
        let mut builder = Builder {
            definitions: resolved.get_names(),
            nodes: Vec::new(),
            named: HashMap::new(),
        };
        let root = builder.node(schema, None)?;
        Ok(JsonPlan {
            nodes: builder.nodes,
            root,
        })
    }

    /// Writes the datum `data` as JSON into `out`; the whole of `data` must be the datum.
    /// On an error, `out` holds a part of the JSON.
    ///
    /// # Errors
    /// The data is not a datum of the schema (the reason says where it went wrong), or has
    /// bytes left over.
    pub(crate) fn transcode(&self, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut transcoder = Transcoder {
            plan: self,
            rest: data,
            out,
            limit: 0,
        };
        transcoder.limit = transcoder
            .out
            .len()
            .saturating_add(output_budget(data.len()));
        transcoder
            .write(self.root, 0)
            .map_err(|e| format!("is not an Avro datum of its schema: {e}"))?;
        if !transcoder.rest.is_empty() {
            return Err(format!(
                "is an Avro datum of its schema followed by {} more bytes",
                transcoder.rest.len()
            ));
        }
        Ok(())
    }
}

struct Builder<'s> {
    definitions: &'s HashMap<Name, &'s Schema>,
    nodes: Vec<Node>,
    /// Named types compiled or being compiled: a recursive type refers to its own node.
    named: HashMap<Name, usize>,
}

impl Builder<'_> {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The node of a named type: compiled once, and reserved before its parts so that the
    /// parts can refer to it.
    fn named(
        &mut self,
        name: &Name,
        namespace: NamespaceRef<'_>,
        build: impl FnOnce(&mut Self, NamespaceRef<'_>) -> Result<Node, String>,
    ) -> Result<usize, String> {
        let full = name.fully_qualified_name(namespace).into_owned();
        if let Some(&index) = self.named.get(&full) {
            return Ok(index);
        }
        let index = self.push(Node::Null);
        self.named.insert(full.clone(), index);
        self.nodes[index] = build(self, full.namespace())?;
        Ok(index)
    }

    fn node(&mut self, schema: &Schema, namespace: NamespaceRef<'_>) -> Result<usize, String> {
        let node = match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Node::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::String,
            Schema::BigDecimal => Node::BigDecimal,
            Schema::Uuid(UuidSchema::String) => Node::UuidString,
            Schema::Uuid(UuidSchema::Bytes) => Node::UuidBytes { fixed: false },
            Schema::Uuid(UuidSchema::Fixed(FixedSchema { name, size, .. })) => {
                let size = *size;
                return self.named(name, namespace, |_, _| {
                    if size == 16 {
                        Ok(Node::UuidBytes { fixed: true })
                    } else {
                        Err(format!("a uuid is 16 bytes, not a fixed of {size}"))
                    }
                });
            }
            Schema::Duration(FixedSchema { name, size, .. }) => {
                let size = *size;
                return self.named(name, namespace, |_, _| {
                    if size == 12 {
                        Ok(Node::Duration)
                    } else {
                        Err(format!("a duration is 12 bytes, not a fixed of {size}"))
                    }
                });
            }
            Schema::Decimal(DecimalSchema { scale, inner, .. }) => {
                let scale = *scale;
                match inner {
                    InnerDecimalSchema::Bytes => Node::Decimal { scale, fixed: None },
                    InnerDecimalSchema::Fixed(FixedSchema { name, size, .. }) => {
                        let size = *size;
                        return self.named(name, namespace, |_, _| {
                            Ok(Node::Decimal {
                                scale,
                                fixed: Some(size),
                            })
                        });
                    }
                }
            }
            Schema::Fixed(FixedSchema { name, size, .. }) => {
                let size = *size;
                return self.named(name, namespace, |_, _| Ok(Node::Fixed(size)));
            }
            Schema::Enum(EnumSchema { name, symbols, .. }) => {
                return self.named(name, namespace, |_, _| {
                    Ok(Node::Enum(
                        symbols.iter().map(|s| json_string(s).into()).collect(),
                    ))
                });
            }
            Schema::Record(RecordSchema { name, fields, .. }) => {
                return self.named(name, namespace, |builder, namespace| {
                    let mut compiled = Vec::with_capacity(fields.len());
                    for field in fields {
                        let mut key = json_string(&field.name);
                        key.push(b':');
                        compiled.push((key.into(), builder.node(&field.schema, namespace)?));
                    }
                    Ok(Node::Record(compiled))
                });
            }
            Schema::Array(array) => Node::Array(self.node(&array.items, namespace)?),
            Schema::Map(map) => Node::Map(self.node(&map.types, namespace)?),
            Schema::Union(union) => Node::Union(
                union
                    .variants()
                    .iter()
                    .map(|branch| self.node(branch, namespace))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(namespace);
                if let Some(&index) = self.named.get(full.as_ref()) {
                    return Ok(index);
                }
                let definitions = self.definitions;
                let definition = definitions
                    .get(full.as_ref())
                    .ok_or_else(|| format!("uses the type {full} that it does not define"))?;
                return self.node(definition, full.namespace());
            }
        };
        Ok(self.push(node))
    }
}

fn json_string(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_str(s, &mut out);
    out
}

struct Transcoder<'p, 'd, 'o> {
    plan: &'p JsonPlan,
    rest: &'d [u8],
    out: &'o mut Vec<u8>,
    /// The length `out` may not pass (see [`output_budget`]).
    limit: usize,
}

impl<'d> Transcoder<'_, 'd, '_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'d [u8], String> {
        if n > self.rest.len() {
            return Err(format!(
                "{what} of {n} bytes where {} remain",
                self.rest.len()
            ));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut value: u64 = 0;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i == 9 && byte > 1 {
                    break;
                }
                self.rest = &self.rest[i + 1..];
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(if self.rest.len() < 10 {
            "the data ends inside a number".to_owned()
        } else {
            "a number longer than 64 bits".to_owned()
        })
    }

    fn int(&mut self) -> Result<i32, String> {
        let n = self.long()?;
        i32::try_from(n).map_err(|_| format!("an int of {n}, beyond 32 bits"))
    }

    /// A length or count that must not be negative.
    fn length(&mut self, what: &str) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("{what} of negative length {n}"))
    }

    fn bytes(&mut self, what: &str) -> Result<&'d [u8], String> {
        let n = self.length(what)?;
        self.take(n, what)
    }

    fn string(&mut self, what: &str) -> Result<&'d str, String> {
        let bytes = self.bytes(what)?;
        std::str::from_utf8(bytes).map_err(|e| format!("{what} that is not UTF-8: {e}"))
    }

    /// The item count of the next block of an array or map; 0 ends it. A negative count is
    /// followed by the block's size in bytes, which is not needed here.
    fn block(&mut self) -> Result<usize, String> {
        let count = self.long()?;
        if count < 0 {
            self.long()?;
        }
        usize::try_from(count.unsigned_abs())
            .map_err(|_| format!("a block of {count} items, beyond this machine"))
    }

    fn check_budget(&self) -> Result<(), String> {
        if self.out.len() > self.limit {
            return Err(format!(
                "its JSON passes {} bytes, far more than its {} bytes could honestly hold",
                self.limit,
                self.limit.saturating_sub(16 << 20) / 64
            ));
        }
        Ok(())
    }

    fn write(&mut self, node: usize, depth: usize) -> Result<(), String> {
        let plan = self.plan;
        match &plan.nodes[node] {
            Node::Null => self.out.extend_from_slice(b"null"),
            Node::Boolean => match self.take(1, "a boolean")?[0] {
                0 => self.out.extend_from_slice(b"false"),
                1 => self.out.extend_from_slice(b"true"),
                other => return Err(format!("a boolean byte of {other}, neither 0 nor 1")),
            },
            Node::Int => {
                let n = self.int()?;
                self.out
                    .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
            Node::Long => {
                let n = self.long()?;
                self.out
                    .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
            Node::Float => {
                let bytes = self.take(4, "a float")?;
                let f = f32::from_le_bytes(bytes.try_into().expect("4 bytes taken"));
                write_float(f, self.out);
            }
            Node::Double => {
                let bytes = self.take(8, "a double")?;
                let f = f64::from_le_bytes(bytes.try_into().expect("8 bytes taken"));
                write_float(f, self.out);
            }
            Node::Bytes => {
                let bytes = self.bytes("bytes")?;
                write_base64(bytes, self.out);
            }
            Node::String => {
                let s = self.string("a string")?;
                write_str(s, self.out);
            }
            Node::Fixed(size) => {
                let bytes = self.take(*size, "a fixed")?;
                write_base64(bytes, self.out);
            }
            Node::Enum(symbols) => {
                let index = self.int()?;
                let symbol = chosen(symbols, index.into(), "enum symbol", "an enum")?;
                self.out.extend_from_slice(symbol);
            }
            Node::Union(branches) => {
                let index = self.long()?;
                let branch = chosen(branches, index, "union branch", "a union")?;
                self.nested(*branch, depth)?;
            }
            Node::Record(fields) => {
                self.out.push(b'{');
                for (i, (key, field)) in fields.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.out.extend_from_slice(key);
                    self.nested(*field, depth)?;
                }
                self.out.push(b'}');
            }
            Node::Array(items) => {
                self.out.push(b'[');
                self.blocks(|t| t.nested(*items, depth))?;
                self.out.push(b']');
            }
            Node::Map(values) => {
                // Entries in the order written: the same datum always gives the same JSON.
                self.out.push(b'{');
                self.blocks(|t| {
                    let key = t.string("a map key")?;
                    write_str(key, t.out);
                    t.out.push(b':');
                    t.nested(*values, depth)
                })?;
                self.out.push(b'}');
            }
            Node::Decimal { scale, fixed } => {
                let unscaled = match fixed {
                    Some(size) => self.take(*size, "a decimal")?,
                    None => self.bytes("a decimal")?,
                };
                write_decimal(unscaled, *scale, self.out);
            }
            Node::UuidString => {
                let s = self.string("a uuid")?;
                let uuid = uuid::Uuid::parse_str(s)
                    .map_err(|e| format!("a uuid string {s:?} that is not a UUID: {e}"))?;
                write_uuid(&uuid, self.out);
            }
            Node::UuidBytes { fixed } => {
                let bytes = if *fixed {
                    self.take(16, "a uuid")?
                } else {
                    self.bytes("a uuid")?
                };
                let uuid = uuid::Uuid::from_slice(bytes)
                    .map_err(|_| format!("a uuid of {} bytes, not 16", bytes.len()))?;
                write_uuid(&uuid, self.out);
            }
            Node::Duration => {
                let bytes = self.take(12, "a duration")?;
                let part = |i: usize| {
                    u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"))
                };
                let mut buffer = itoa::Buffer::new();
                self.out.extend_from_slice(b"{\"months\":");
                self.out
                    .extend_from_slice(buffer.format(part(0)).as_bytes());
                self.out.extend_from_slice(b",\"days\":");
                self.out
                    .extend_from_slice(buffer.format(part(1)).as_bytes());
                self.out.extend_from_slice(b",\"millis\":");
                self.out
                    .extend_from_slice(buffer.format(part(2)).as_bytes());
                self.out.push(b'}');
            }
            Node::BigDecimal => {
                let mut rest = self.rest;
                let value =
                    apache_avro::reader::datum::GenericDatumReader::builder(&Schema::BigDecimal)
                        .build()
                        .and_then(|r| r.read_value(&mut rest))
                        .map_err(|e| format!("a big-decimal: {e}"))?;
                self.rest = rest;
                match value {
                    apache_avro::types::Value::BigDecimal(d) => write_str(&d.to_string(), self.out),
                    other => return Err(format!("a big-decimal read as {other:?}")),
                }
            }
        }
        Ok(())
    }

    /// The items of an array or map, block by block, each written by `item` after a comma
    /// where one is due.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut first = true;
        loop {
            let count = self.block()?;
            if count == 0 {
                return Ok(());
            }
            for _ in 0..count {
                if !first {
                    self.out.push(b',');
                }
                first = false;
                item(self)?;
                self.check_budget()?;
            }
        }
    }

    fn nested(&mut self, node: usize, depth: usize) -> Result<(), String> {
        if depth >= MAX_DEPTH {
            return Err(format!("a datum nested deeper than {MAX_DEPTH} levels"));
        }
        self.write(node, depth + 1)
    }
}

/// Item `index` of `items`, which the datum chose (an enum's symbol, a union's branch); an index
/// outside them is named as `"{what} {index} of {among} of {len}"`.
fn chosen<'i, T>(items: &'i [T], index: i64, what: &str, among: &str) -> Result<&'i T, String> {
    usize::try_from(index)
        .ok()
        .and_then(|i| items.get(i))
        .ok_or_else(|| format!("{what} {index} of {among} of {}", items.len()))
}

mod scalars;

#[cfg(test)]
mod tests;
