//! Avro schemas: parsed with `apache-avro` together with the named types they reference, records
//! decoded with the schema that wrote them (the one the header names): written as JSON straight
//! from their bytes (the `transcode` module), or handed to serde.
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
//! | `float`, `double` | a number, the shortest that reads back to the same `float` or `double`; NaN and ±Infinity, which JSON lacks, as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `bytes`, `fixed` | a base64 string (standard alphabet, padded) |
//! | `enum` | the symbol, a string |
//! | `array` | an array |
//! | `map` | an object, its entries in the order written |
//! | `record` | an object with the fields in schema order |
//! | union | the value of the branch written, unwrapped (`null` for the null branch) |
//! | `decimal` (logical, over `bytes` or `fixed`) | a string of the exact decimal number with the schema's scale, e.g. `"12.30"`, `"-0.05"` |
//! | `big-decimal` (logical) | a string of the exact decimal number |
//! | `uuid` (over `string`, `bytes` or `fixed`) | the hyphenated lower-case string |
//! | `date` | the days since 1970-01-01, a number |
//! | `time-millis`, `time-micros` | the number as written |
//! | `timestamp-*`, `local-timestamp-*` | the number as written (milli-, micro- or nanoseconds since the epoch) |
//! | `duration` | `{"months": m, "days": d, "millis": ms}` |

use apache_avro::Schema;
use apache_avro::types::Value;

mod transcode;

pub use transcode::MAX_DEPTH;

/// A parsed Avro schema with the named schemas it references.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    schema: Schema,
    references: Vec<Schema>,
    json: transcode::JsonPlan,
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
        let (schema, references) = if references.is_empty() {
            let schema =
                Schema::parse_str(text).map_err(|e| format!("is not an Avro schema: {e}"))?;
            (schema, Vec::new())
        } else {
            Schema::parse_str_with_list(text, references)
                .map_err(|e| format!("is not an Avro schema with its references: {e}"))?
        };
        let json = transcode::JsonPlan::compile(&schema, &references)?;
        Ok(AvroSchema {
            schema,
            references,
            json,
        })
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

    /// Writes one datum as JSON (see the module documentation) into `out`, straight from
    /// its bytes.
    ///
    /// # Errors
    /// The data is not a datum of this schema, or has bytes left over.
    pub fn to_json(&self, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.json.transcode(data, out)
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
        // The map's entries come in the order apache-avro's writer took them from a HashMap.
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": 9_007_199_254_740_993_i64, "name": "ada", "email": "a@x",
                "kind": "B", "raw": "AP8=", "tags": {"a": 1, "b": 2}, "score": "NaN"})
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
