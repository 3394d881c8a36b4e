//! Avro schemas: parsed with `apache-avro` together with the named types they reference, records
//! decoded with the schema that wrote them (the one the header names), then written as JSON or
//! handed to serde.
//!
//! # JSON
//!
//! A datum is written as the JSON a reader expects of a "standard JSON object", not in Avro's
//! own JSON encoding (which wraps every non-null union value in `{"type": value}` and writes
//! bytes as ISO-8859-1 strings):
//!
//! | Avro | JSON |
//! |---|---|
//! | `null`, `boolean`, `string` | the same |
//! | `int`, `long` | a number (a `long` beyond ±2⁵³ loses nothing: JSON numbers are written exactly) |
//! | `float`, `double` | a number; NaN and ±Infinity, which JSON lacks, as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `bytes`, `fixed` | a base64 string (standard alphabet, padded) |
//! | `enum` | the symbol, a string |
//! | `array` | an array |
//! | `map` | an object |
//! | `record` | an object with the fields in schema order |
//! | union | the value of the branch written, unwrapped (`null` for the null branch) |
//! | `decimal` (logical) | a string of the exact decimal number, e.g. `"12.30"` |
//! | `uuid` | the string |
//! | `date` | the days since 1970-01-01, a number |
//! | `time-millis`, `time-micros` | the number as written |
//! | `timestamp-*`, `local-timestamp-*` | the number as written (milli-, micro- or nanoseconds since the epoch) |
//! | `duration` | `{"months": m, "days": d, "millis": ms}` |

use apache_avro::Schema;
use apache_avro::types::Value;
use base64::Engine;

/// A parsed Avro schema with the named schemas it references.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    schema: Schema,
    references: Vec<Schema>,
}

impl AvroSchema {
    /// Parses `text` with the `references` (the texts of the named types it uses).
    ///
    /// # Errors
    /// A text is not an Avro schema, or a named type is missing.
    pub fn parse<'a>(
        text: &str,
        references: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        let references: Vec<&str> = references.into_iter().collect();
        if references.is_empty() {
            let schema =
                Schema::parse_str(text).map_err(|e| format!("is not an Avro schema: {e}"))?;
            return Ok(AvroSchema {
                schema,
                references: Vec::new(),
            });
        }
        let (schema, references) = Schema::parse_str_with_list(text, references)
            .map_err(|e| format!("is not an Avro schema with its references: {e}"))?;
        Ok(AvroSchema { schema, references })
    }

    /// The schema itself.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Reads one datum of `data` with `read`, given a reader of this schema (and `reader`, the
    /// schema to resolve into, if any); the whole of `data` must be the datum.
    fn read<V>(
        &self,
        data: &[u8],
        reader: Option<&Schema>,
        read: impl FnOnce(
            &apache_avro::reader::datum::GenericDatumReader<'_>,
            &mut &[u8],
        ) -> apache_avro::AvroResult<V>,
    ) -> Result<V, String> {
        let mut rest = data;
        // The schema's own named types as well as its references': a type defined once and
        // used again by name resolves only through them. References first: a schema is
        // resolved against those listed before it.
        let writer_schemata: Vec<&Schema> = self
            .references
            .iter()
            .chain(std::iter::once(&self.schema))
            .collect();
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&self.schema)
            .writer_schemata(writer_schemata)
            .and_then(|b| b.maybe_reader_schema(reader).build())
            .and_then(|r| read(&r, &mut rest))
            .map_err(|e| format!("is not an Avro datum of its schema: {e}"))?;
        if !rest.is_empty() {
            return Err(format!(
                "is an Avro datum of its schema followed by {} more bytes",
                rest.len()
            ));
        }
        Ok(value)
    }

    /// Decodes one datum written with this schema. With `reader`, the datum is resolved into
    /// that schema (Avro's schema evolution: defaults filled in, fields dropped, promotions).
    ///
    /// # Errors
    /// The data is not a datum of this schema, has bytes left over, or cannot be resolved into
    /// `reader`.
    pub fn decode(&self, data: &[u8], reader: Option<&Schema>) -> Result<Value, String> {
        self.read(data, reader, |r, rest| r.read_value(rest))
    }

    /// Decodes one datum written with this schema straight into `T` with serde (no
    /// intermediate value tree): records into structs by field name, enums into unit variants
    /// by symbol, unions into `Option` or untagged enums.
    ///
    /// # Errors
    /// The data is not a datum of this schema, does not fit `T`, or has bytes left over.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self, data: &[u8]) -> Result<T, String> {
        self.read(data, None, |r, rest| r.read_deser::<T>(rest))
            .or_else(|_| {
                // apache-avro's schema-aware deserializer is stricter than its value-tree one
                // (an enum symbol into a `String`, say): what it refuses goes the slower way.
                let value = self.decode(data, None)?;
                apache_avro::from_value::<T>(&value)
                    .map_err(|e| format!("is an Avro datum that does not fit the type: {e}"))
            })
    }

    /// Decodes one datum and writes it as JSON (see the module documentation) into `out`.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn to_json(&self, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        write_json(&self.decode(data, None)?, out);
        Ok(())
    }
}

/// Writes a decoded Avro value as JSON (see the module documentation) into `out`. Written
/// straight to text rather than through `serde_json::Value`, whose objects would sort a
/// record's fields.
pub fn write_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(n) | Value::Date(n) | Value::TimeMillis(n) => {
            out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
        }
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => {
            out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
        }
        Value::Float(f) => write_float(f64::from(*f), out),
        Value::Double(f) => write_float(*f, out),
        Value::Bytes(b) | Value::Fixed(_, b) => write_base64(b, out),
        Value::String(s) | Value::Enum(_, s) => write_str(s, out),
        Value::Uuid(u) => write_str(&u.hyphenated().to_string(), out),
        Value::Union(_, v) => write_json(v, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out);
            }
            out.push(b']');
        }
        Value::Map(entries) => {
            // A HashMap: sorted, so that the same datum always gives the same JSON.
            let mut entries: Vec<(&String, &Value)> = entries.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            write_object(entries, out);
        }
        Value::Record(fields) => write_object(fields.iter().map(|(k, v)| (k, v)), out),
        Value::Decimal(d) => {
            // apache-avro keeps the unscaled two's-complement integer, not the schema's scale:
            // its big-endian bytes are written as base64, as `bytes` are.
            let bytes: Vec<u8> = Vec::<u8>::try_from(d).unwrap_or_default();
            write_base64(&bytes, out);
        }
        Value::BigDecimal(d) => write_str(&d.to_string(), out),
        Value::Duration(d) => {
            out.extend_from_slice(
                format!(
                    "{{\"months\":{},\"days\":{},\"millis\":{}}}",
                    u32::from(d.months()),
                    u32::from(d.days()),
                    u32::from(d.millis())
                )
                .as_bytes(),
            );
        }
    }
}

fn write_object<'v>(fields: impl IntoIterator<Item = (&'v String, &'v Value)>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (name, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(name, out);
        out.push(b':');
        write_json(value, out);
    }
    out.push(b'}');
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing a string to a Vec cannot fail");
}

fn write_base64(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .as_bytes(),
    );
    out.push(b'"');
}

/// A number; NaN and the infinities, which JSON lacks, as strings.
fn write_float(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        serde_json::to_writer(&mut *out, &f).expect("writing a number to a Vec cannot fail");
    } else if f.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if f > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = r#"{
        "type": "record", "name": "User", "namespace": "t",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "email", "type": ["null", "string"], "default": null},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
            {"name": "raw", "type": "bytes"},
            {"name": "tags", "type": {"type": "map", "values": "int"}},
            {"name": "score", "type": "double"}
        ]
    }"#;

    fn user_datum() -> Vec<u8> {
        let schema = Schema::parse_str(USER).unwrap();
        let mut record = apache_avro::types::Record::new(&schema).unwrap();
        record.put("id", 9_007_199_254_740_993_i64);
        record.put("name", "ada");
        record.put(
            "email",
            Value::Union(1, Box::new(Value::String("a@x".into()))),
        );
        record.put("kind", Value::Enum(1, "B".into()));
        record.put("raw", Value::Bytes(vec![0, 255]));
        record.put(
            "tags",
            Value::Map(
                [
                    ("b".to_owned(), Value::Int(2)),
                    ("a".to_owned(), Value::Int(1)),
                ]
                .into(),
            ),
        );
        record.put("score", f64::NAN);
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(record)
            .unwrap()
    }

    #[test]
    fn a_datum_becomes_plain_json() {
        let schema = AvroSchema::parse(USER, []).unwrap();
        let mut out = Vec::new();
        schema.to_json(&user_datum(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":9007199254740993,"name":"ada","email":"a@x","kind":"B","raw":"AP8=","tags":{"a":1,"b":2},"score":"NaN"}"#
        );
    }

    #[test]
    fn a_truncated_or_overlong_datum_is_refused() {
        let schema = AvroSchema::parse(USER, []).unwrap();
        let data = user_datum();
        assert!(schema.decode(&data[..data.len() - 3], None).is_err());
        let mut longer = data.clone();
        longer.push(0);
        let e = schema.decode(&longer, None).unwrap_err();
        assert!(e.contains("1 more bytes"), "{e}");
    }

    #[test]
    fn named_types_from_references_resolve() {
        let address = r#"{"type": "record", "name": "Address", "namespace": "t", "fields": [{"name": "city", "type": "string"}]}"#;
        let person = r#"{"type": "record", "name": "Person", "namespace": "t", "fields": [{"name": "home", "type": "t.Address"}]}"#;
        let schema = AvroSchema::parse(person, [address]).unwrap();
        // "Oslo": length 4 zigzag = 8, then the bytes.
        let mut out = Vec::new();
        schema
            .to_json(&[8, b'O', b's', b'l', b'o'], &mut out)
            .unwrap();
        assert_eq!(out, br#"{"home":{"city":"Oslo"}}"#);
        assert!(
            AvroSchema::parse(person, []).is_err(),
            "t.Address is unknown alone"
        );
    }

    #[test]
    fn a_named_type_used_again_by_name_in_its_own_schema_resolves() {
        let pair = r#"{"type": "record", "name": "Pair", "fields": [
            {"name": "a", "type": {"type": "record", "name": "P", "fields": [{"name": "x", "type": "int"}]}},
            {"name": "b", "type": "P"}]}"#;
        let schema = AvroSchema::parse(pair, []).unwrap();
        let mut out = Vec::new();
        schema.to_json(&[2, 4], &mut out).unwrap();
        assert_eq!(out, br#"{"a":{"x":1},"b":{"x":2}}"#);
    }
}
