//! Keys and values written through a schema registry (cargo features `avro`, `protobuf`,
//! `json-schema`): [`Avro<T>`], [`Protobuf<M>`] and [`JsonSchema<T>`] decode a record's value
//! ([`Record<Avro<Order>>`](crate::Record)), and [`Keyed<K, V>`] its key and value together.
//!
//! They take either form a function meets:
//! - a trigger (or the poller) configured with a schema registry in `SOURCE` format: the data
//!   without the registry header, with `keySchemaMetadata` / `valueSchemaMetadata` naming the
//!   schema (`schemaId`: a Confluent id, or a Glue schema version UUID);
//! - a trigger without a registry: the bytes as the producer's serializer wrote them, registry
//!   header first (Confluent's magic byte and id, Glue's 18-byte header, zlib inflated).
//!
//! Protobuf's message indexes (Confluent) or index (Glue) before the message are skipped: the
//! type is the message. Avro needs the schema that wrote the datum: from the registry, by the
//! id the record names ([`SchemaSource::registry`]), or given in code for data without an id
//! ([`SchemaSource::avro_schema`]). JSON Schema data is validated when its schema can be had
//! from the registry, and read with serde either way.
//!
//! Schemas are fetched before an event's records are decoded, each once per process
//! ([`SchemaSource::prefetch`]; [`run_records`](crate::run_records) and
//! [`run_batch`](crate::run_batch) do it when [`ProcessOptions::schemas`](crate::ProcessOptions::schemas)
//! or [`BatchOptions::schemas`](crate::BatchOptions::schemas) is set). A record whose schema
//! the registry does not have fails with `SCHEMA_NOT_FOUND`, one that does not decode with
//! `DESERIALIZATION_ERROR` ([`DecodeError::Schema`]); a registry that cannot be reached fails
//! the invocation, which Lambda retries.

use kafka_lambda_events::{DecodeError, Field, KafkaEvent, KafkaRecord, SchemaMetadata};
use kafka_lambda_schema::{Compiled, DESERIALIZATION_ERROR, Framing, Schemas};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

pub use kafka_lambda_schema::{
    ConfluentAuth, ConfluentRegistry, GlueRegistry, Registry, RegistryError, SchemaId,
};

/// Where the schemas that wrote records come from: a registry, schemas given in code, or both.
#[derive(Debug, Clone, Default)]
pub struct SchemaSource {
    registry: Option<Arc<Schemas>>,
    known: HashMap<SchemaId, Arc<Compiled>>,
    #[cfg(feature = "avro")]
    avro: Option<Arc<kafka_lambda_schema::avro::AvroSchema>>,
}

/// The schemas of one event, fetched: what decoding reads them from.
#[derive(Debug, Clone, Default)]
pub struct Prefetched {
    schemas: HashMap<SchemaId, Result<Arc<Compiled>, RegistryError>>,
    /// Whether a registry was asked: then Avro data starting like a registry header is one.
    registry: bool,
    #[cfg(feature = "avro")]
    avro: Option<Arc<kafka_lambda_schema::avro::AvroSchema>>,
}

tokio::task_local! {
    static CURRENT: Arc<Prefetched>;
}

impl SchemaSource {
    /// Schemas from `registry` (a [`ConfluentRegistry`] or a [`GlueRegistry`]), at most
    /// `capacity` of them kept compiled.
    pub fn registry(registry: Registry, capacity: usize) -> Self {
        SchemaSource {
            registry: Some(Arc::new(Schemas::new(registry, capacity))),
            ..Self::default()
        }
    }

    /// A Confluent-compatible registry at `url`, as [`registry`](Self::registry) with 1,000
    /// schemas and 10-second requests.
    ///
    /// # Errors
    /// The URL is not http(s), or a PEM of `auth` does not parse.
    pub fn confluent(url: &str, auth: ConfluentAuth) -> Result<Self, String> {
        let registry = ConfluentRegistry::new(url, auth, std::time::Duration::from_secs(10))?;
        Ok(Self::registry(
            Registry::Confluent(registry),
            kafka_lambda_schema::DEFAULT_CAPACITY,
        ))
    }

    /// Adds an Avro schema given in code: the writer schema of data that names none (no
    /// registry header, no schema metadata).
    ///
    /// # Errors
    /// The text is not an Avro schema.
    #[cfg(feature = "avro")]
    pub fn avro_schema(mut self, text: &str) -> Result<Self, String> {
        let schema = kafka_lambda_schema::avro::AvroSchema::parse(text, [])?;
        self.avro = Some(Arc::new(schema));
        Ok(self)
    }

    /// Adds a schema given in code under the id the data names (`format` Avro, Protobuf or
    /// JSON Schema, `text` as a registry holds it): used before asking the registry, so a
    /// function can pin its schemas or run without a registry at all.
    ///
    /// # Errors
    /// The text does not compile, or its format is not built in (cargo features).
    pub fn with_schema(
        mut self,
        id: SchemaId,
        format: kafka_lambda_events::DataFormat,
        text: &str,
    ) -> Result<Self, String> {
        let compiled = Compiled::compile(&kafka_lambda_schema::RegisteredSchema {
            id,
            format,
            text: text.to_owned(),
            references: Vec::new(),
        })
        .map_err(|e| e.to_string())?;
        self.known.insert(id, Arc::new(compiled));
        Ok(self)
    }

    /// Fetches the schema of every key and value of `event` that names one (by its schema
    /// metadata or its registry header), each fetched once per process.
    ///
    /// # Errors
    /// The registry cannot be reached or refuses the requests: the invocation should fail and be
    /// retried. A schema the registry does not have is no error here: its records fail to
    /// decode with `SCHEMA_NOT_FOUND`.
    pub async fn prefetch(&self, event: &KafkaEvent) -> Result<Prefetched, RegistryError> {
        let mut prefetched = Prefetched {
            schemas: self
                .known
                .iter()
                .map(|(id, compiled)| (*id, Ok(compiled.clone())))
                .collect(),
            registry: self.registry.is_some() || !self.known.is_empty(),
            #[cfg(feature = "avro")]
            avro: self.avro.clone(),
        };
        let Some(registry) = &self.registry else {
            return Ok(prefetched);
        };
        for record in event.records() {
            for (metadata, bytes) in [
                (&record.key_schema_metadata, record.key()),
                (&record.value_schema_metadata, record.value()),
            ] {
                let Some(id) = named_schema(metadata.as_ref(), bytes) else {
                    continue;
                };
                if prefetched.schemas.contains_key(&id) {
                    continue;
                }
                let got = match registry.get(id).await {
                    Err(e) if e.is_registry_fault() => {
                        return Err(e);
                    }
                    got => got,
                };
                prefetched.schemas.insert(id, got);
            }
        }
        Ok(prefetched)
    }
}

impl SchemaSource {
    /// [`prefetch`](Self::prefetch) for an invocation: a registry that cannot be asked fails it
    /// (logged), so that Lambda retries it.
    pub(crate) async fn prefetch_for_invocation(
        &self,
        event: &KafkaEvent,
    ) -> Result<Arc<Prefetched>, crate::HandlerError> {
        self.prefetch(event).await.map(Arc::new).map_err(|e| {
            tracing::error!(error = %e, "the schema registry cannot be asked");
            crate::HandlerError::SchemaRegistryUnavailable(e.to_string())
        })
    }
}

impl Prefetched {
    /// Whether schemas are at hand by id (from a registry, or given in code by id): then Avro
    /// data starting like a registry header is read as one.
    pub fn has_registry(&self) -> bool {
        self.registry
    }

    /// Runs `f` (which decodes records) with these schemas.
    pub fn scope<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self.clone(), f)
    }

    /// Runs `future` (which decodes records) with these schemas.
    pub async fn scope_async<F: Future>(self: Arc<Self>, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }
}

/// The schema id a part names: its metadata's `schemaId`, or its registry header.
fn named_schema(metadata: Option<&SchemaMetadata>, bytes: Option<&[u8]>) -> Option<SchemaId> {
    match metadata {
        Some(m) => parse_schema_id(&m.schema_id),
        None => Framing::parse(bytes?).ok().map(|f| f.schema),
    }
}

/// A `schemaId` as the event carries it: a Confluent number, or a Glue UUID.
fn parse_schema_id(id: &str) -> Option<SchemaId> {
    if let Ok(n) = id.parse::<u32>() {
        return Some(SchemaId::Confluent(n));
    }
    uuid::Uuid::parse_str(id).ok().map(SchemaId::Glue)
}

/// Which part of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The key.
    Key,
    /// The value.
    Value,
}

impl Part {
    fn field(self) -> Field {
        match self {
            Part::Key => Field::Key,
            Part::Value => Field::Value,
        }
    }

    fn of(self, record: &KafkaRecord) -> (Option<&[u8]>, Option<&SchemaMetadata>) {
        match self {
            Part::Key => (record.key(), record.key_schema_metadata.as_ref()),
            Part::Value => (record.value(), record.value_schema_metadata.as_ref()),
        }
    }
}

/// A type a record's key or value written through a schema registry decodes into.
pub trait DecodePart: Sized {
    /// Decodes `part` of `record`.
    ///
    /// # Errors
    /// The part is null, its schema cannot be had, or it does not decode.
    fn decode_part(record: &KafkaRecord, part: Part) -> Result<Self, DecodeError>;
}

/// A record's key and value, each decoded: `Record<Keyed<Avro<OrderKey>, Avro<Order>>>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<K, V> {
    /// The decoded key.
    pub key: K,
    /// The decoded value.
    pub value: V,
}

impl<K: DecodePart, V: DecodePart> crate::DecodeValue for Keyed<K, V> {
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError> {
        Ok(Keyed {
            key: K::decode_part(record, Part::Key)?,
            value: V::decode_part(record, Part::Value)?,
        })
    }
}

/// The data of a part and the schema it names, if any: in a `SOURCE` event the bytes are the
/// data and the metadata names the schema; otherwise a registry header, when there is one,
/// names it and is taken off.
struct Located<'a> {
    id: Option<SchemaId>,
    /// With Protobuf message indexes still in front.
    data: Cow<'a, [u8]>,
}

/// `header_possible`: whether bytes starting with 0 or 3 carry a registry header. Always so
/// for Protobuf (a message never starts with field number 0) and JSON (text never starts with
/// those bytes); for Avro only when a registry is configured, as a bare datum may start with 0.
fn locate<'a>(
    record: &'a KafkaRecord,
    part: Part,
    header_possible: bool,
) -> Result<Located<'a>, DecodeError> {
    let (bytes, metadata) = part.of(record);
    let bytes = bytes.ok_or_else(|| DecodeError::Null {
        record: record.id(),
        field: part.field(),
    })?;
    if let Some(m) = metadata {
        return Ok(Located {
            id: parse_schema_id(&m.schema_id),
            data: Cow::Borrowed(bytes),
        });
    }
    match bytes.first() {
        Some(0 | 3) if header_possible => {
            let framing = Framing::parse(bytes).map_err(|e| schema_error(record, part, &e))?;
            Ok(Located {
                id: Some(framing.schema),
                data: framing.data,
            })
        }
        _ => Ok(Located {
            id: None,
            data: Cow::Borrowed(bytes),
        }),
    }
}

fn schema_error(record: &KafkaRecord, part: Part, e: &dyn std::fmt::Display) -> DecodeError {
    DecodeError::Schema {
        record: record.id(),
        field: part.field(),
        error_type: DESERIALIZATION_ERROR,
        message: e.to_string(),
    }
}

/// The compiled schema `id` names, from the schemas prefetched for this event.
#[cfg(any(feature = "avro", feature = "json-schema"))]
fn compiled(record: &KafkaRecord, part: Part, id: SchemaId) -> Result<Arc<Compiled>, DecodeError> {
    let found = CURRENT
        .try_with(|p| p.schemas.get(&id).cloned())
        .ok()
        .flatten();
    match found {
        Some(Ok(compiled)) => Ok(compiled),
        Some(Err(e)) => Err(DecodeError::Schema {
            record: record.id(),
            field: part.field(),
            message: e.to_string(),
            error_type: kafka_lambda_schema::DecodeError::Registry(e).error_type(),
        }),
        None => Err(DecodeError::Schema {
            record: record.id(),
            field: part.field(),
            error_type: kafka_lambda_schema::SCHEMA_NOT_FOUND,
            message: format!(
                "schema {id} was not fetched: set ProcessOptions::schemas or BatchOptions::schemas \
                 to a SchemaSource with its registry"
            ),
        }),
    }
}

/// A value (or key) written in Avro, decoded into `T` with serde (`apache_avro::from_value`):
/// records into structs by field name, enums into unit variants by symbol, unions into
/// `Option` or untagged enums.
#[cfg(feature = "avro")]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Avro<T>(pub T);

#[cfg(feature = "avro")]
impl<T: serde::de::DeserializeOwned> DecodePart for Avro<T> {
    fn decode_part(record: &KafkaRecord, part: Part) -> Result<Self, DecodeError> {
        let registry = CURRENT.try_with(|p| p.has_registry()).unwrap_or(false);
        let located = locate(record, part, registry)?;
        match located.id {
            Some(id) => match &*compiled(record, part, id)? {
                Compiled::Avro(schema) => schema.deserialize::<T>(&located.data),
                #[allow(unreachable_patterns, reason = "with other formats built in")]
                other => Err(format!(
                    "schema {id} is {}, not Avro",
                    other.data_format().as_str()
                )),
            },
            None => {
                let given = CURRENT.try_with(|p| p.avro.clone()).ok().flatten();
                match given {
                    Some(schema) => schema.deserialize::<T>(&located.data),
                    None => {
                        return Err(DecodeError::Schema {
                            record: record.id(),
                            field: part.field(),
                            error_type: kafka_lambda_schema::SCHEMA_NOT_FOUND,
                            message: "the data names no schema (no schema metadata, no registry \
                                      header) and no Avro schema is given in code \
                                      (SchemaSource::avro_schema)"
                                .to_owned(),
                        });
                    }
                }
            }
        }
        .map(Avro)
        .map_err(|e| schema_error(record, part, &e))
    }
}

#[cfg(feature = "avro")]
impl<T: serde::de::DeserializeOwned> crate::DecodeValue for Avro<T> {
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError> {
        Self::decode_part(record, Part::Value)
    }
}

/// A value (or key) written in Protobuf, decoded into the `prost` message `M`.
#[cfg(feature = "protobuf")]
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Protobuf<M>(pub M);

#[cfg(feature = "protobuf")]
impl<M: prost::Message + Default> DecodePart for Protobuf<M> {
    fn decode_part(record: &KafkaRecord, part: Part) -> Result<Self, DecodeError> {
        // A Protobuf message never starts with byte 0 or 3 (field number 0 is invalid): such a
        // first byte is a registry header.
        let located = locate(record, part, true)?;
        let message = match located.id {
            Some(SchemaId::Confluent(_)) => {
                kafka_lambda_schema::MessageIndexes::read_confluent(&located.data)
                    .map_err(|e| schema_error(record, part, &e))?
                    .1
            }
            Some(SchemaId::Glue(_)) => {
                kafka_lambda_schema::MessageIndexes::read_glue(&located.data)
                    .map_err(|e| schema_error(record, part, &e))?
                    .1
            }
            None => &located.data[..],
        };
        M::decode(message).map(Protobuf).map_err(|e| {
            schema_error(
                record,
                part,
                &format!("is not a {} message: {e}", std::any::type_name::<M>()),
            )
        })
    }
}

#[cfg(feature = "protobuf")]
impl<M: prost::Message + Default> crate::DecodeValue for Protobuf<M> {
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError> {
        Self::decode_part(record, Part::Value)
    }
}

/// A value (or key) written as JSON Schema JSON, validated against its schema when the
/// registry has it, and read into `T` with serde.
#[cfg(feature = "json-schema")]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct JsonSchema<T>(pub T);

#[cfg(feature = "json-schema")]
impl<T: serde::de::DeserializeOwned> DecodePart for JsonSchema<T> {
    fn decode_part(record: &KafkaRecord, part: Part) -> Result<Self, DecodeError> {
        // JSON text never starts with byte 0 or 3: such a first byte is a registry header.
        let located = locate(record, part, true)?;
        // Validated when the registry was asked for the schema: a record naming a schema the
        // registry lacks fails; without a registry the data is read unvalidated.
        let fetched = located
            .id
            .and_then(|id| CURRENT.try_with(|p| p.schemas.contains_key(&id)).ok())
            .unwrap_or(false);
        if let (Some(id), true) = (located.id, fetched) {
            match &*compiled(record, part, id)? {
                Compiled::Json(schema) => {
                    schema
                        .validate(&located.data)
                        .map_err(|e| schema_error(record, part, &e))?;
                }
                #[allow(unreachable_patterns, reason = "with other formats built in")]
                other => {
                    return Err(schema_error(
                        record,
                        part,
                        &format!(
                            "schema {id} is {}, not JSON Schema",
                            other.data_format().as_str()
                        ),
                    ));
                }
            }
        }
        serde_json::from_slice(&located.data)
            .map(JsonSchema)
            .map_err(|source| DecodeError::Json {
                record: record.id(),
                field: part.field(),
                source,
            })
    }
}

#[cfg(feature = "json-schema")]
impl<T: serde::de::DeserializeOwned> crate::DecodeValue for JsonSchema<T> {
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError> {
        Self::decode_part(record, Part::Value)
    }
}

#[cfg(all(test, feature = "avro", feature = "protobuf", feature = "json-schema"))]
mod tests;
