//! A registry behind a bounded cache of compiled schemas, and the decoding of a record with it.

use crate::error::{DecodeError, RegistryError};
use crate::registry::{RegisteredSchema, Registry};
use crate::wire::{Framing, SchemaId};
use kafka_lambda_events::{DataFormat, SchemaMetadata};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OnceCell;

/// A schema ready to decode with.
#[derive(Debug)]
pub enum Compiled {
    /// An Avro schema with its named references.
    #[cfg(feature = "avro")]
    Avro(crate::avro::AvroSchema),
    /// A Protobuf file with its imports.
    #[cfg(feature = "protobuf")]
    Protobuf(crate::protobuf::ProtobufSchema),
    /// A JSON Schema.
    #[cfg(feature = "json-schema")]
    Json(crate::json_schema::JsonSchema),
}

impl Compiled {
    /// Compiles a schema as the registry gave it.
    ///
    /// # Errors
    /// [`RegistryError::Unusable`]: the text does not compile, or its format is not built in.
    pub fn compile(registered: &RegisteredSchema) -> Result<Self, RegistryError> {
        let unusable = |reason: String| RegistryError::Unusable {
            id: registered.id,
            reason,
        };
        match &registered.format {
            #[cfg(feature = "avro")]
            DataFormat::Avro => crate::avro::AvroSchema::parse(
                &registered.text,
                registered.references.iter().map(|r| r.text.as_str()),
            )
            .map(Compiled::Avro)
            .map_err(unusable),
            #[cfg(feature = "protobuf")]
            DataFormat::Protobuf => crate::protobuf::ProtobufSchema::compile(
                &format!("schema-{}.proto", registered.id),
                &registered.text,
                registered
                    .references
                    .iter()
                    .map(|r| (r.name.as_str(), r.text.as_str())),
            )
            .map(Compiled::Protobuf)
            .map_err(|reason| match registered.id {
                // Glue stores one file per schema and no references: what the file imports
                // beyond Google's well-known types is nowhere to be had.
                SchemaId::Glue(_) if reason.contains("import") => unusable(format!(
                    "{reason} (AWS Glue keeps no references: a Protobuf schema in Glue can import \
                     only Google's well-known types)"
                )),
                _ => unusable(reason),
            }),
            #[cfg(feature = "json-schema")]
            DataFormat::Json => {
                if let Some(r) = registered.references.first() {
                    return Err(unusable(format!(
                        "it references `{}`: JSON Schema references are not supported",
                        r.name
                    )));
                }
                crate::json_schema::JsonSchema::compile(&registered.text)
                    .map(Compiled::Json)
                    .map_err(unusable)
            }
            other => Err(unusable(format!(
                "its format {} is not built into this program (cargo features avro, protobuf, json-schema)",
                other.as_str()
            ))),
        }
    }

    /// The `dataFormat` of the event's schema metadata.
    pub fn data_format(&self) -> DataFormat {
        match *self {
            #[cfg(feature = "avro")]
            Compiled::Avro(_) => DataFormat::Avro,
            #[cfg(feature = "protobuf")]
            Compiled::Protobuf(_) => DataFormat::Protobuf,
            #[cfg(feature = "json-schema")]
            Compiled::Json(_) => DataFormat::Json,
        }
    }
}

/// A record's key or value decoded with its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// `dataFormat` and `schemaId`, as the event carries them.
    pub metadata: SchemaMetadata,
    /// The datum as JSON text.
    pub json: Vec<u8>,
    /// The data without the registry header (inflated, when Glue compressed it): what the
    /// event carries in `SOURCE` format. Protobuf data keeps its message indexes.
    pub source: Cow<'a, [u8]>,
}

/// Schemas cached at most by default.
pub const DEFAULT_CAPACITY: usize = 1000;

type Slot = Arc<OnceCell<Arc<Compiled>>>;

/// A registry with a bounded cache of compiled schemas, keyed by id: each schema is fetched and
/// compiled once, however many records and tasks ask for it at the same time. Cheap to share
/// behind an `Arc`.
#[derive(Debug)]
pub struct Schemas {
    registry: Registry,
    capacity: usize,
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    by_id: HashMap<SchemaId, Slot>,
    /// Ids in the order they were first asked for: the oldest is dropped when full.
    order: VecDeque<SchemaId>,
}

impl Schemas {
    /// Schemas of `registry`, at most `capacity` of them kept compiled (at least one).
    pub fn new(registry: Registry, capacity: usize) -> Self {
        Schemas {
            registry,
            capacity: capacity.max(1),
            slots: Mutex::new(Slots::default()),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Schema `id`, compiled: from the cache, or fetched and compiled now. Concurrent askers of
    /// one id wait for one fetch. A failure is not cached: the next ask fetches again.
    ///
    /// # Errors
    /// The registry's answer ([`RegistryError`]), or [`RegistryError::Unusable`].
    pub async fn get(&self, id: SchemaId) -> Result<Arc<Compiled>, RegistryError> {
        let slot = self.slot(id);
        slot.get_or_try_init(|| async {
            let registered = self.registry.fetch(id).await?;
            tracing::debug!(%id, format = registered.format.as_str(), "fetched a schema");
            Compiled::compile(&registered).map(Arc::new)
        })
        .await
        .cloned()
    }

    fn slot(&self, id: SchemaId) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.by_id.get(&id) {
            return slot.clone();
        }
        if slots.order.len() >= self.capacity
            && let Some(oldest) = slots.order.pop_front()
        {
            slots.by_id.remove(&oldest);
        }
        let slot = Slot::default();
        slots.by_id.insert(id, slot.clone());
        slots.order.push_back(id);
        slot
    }

    /// Decodes `bytes`, a record's key or value in a registry's wire format: the header names
    /// the schema, which is fetched (once) and decodes the data.
    ///
    /// # Errors
    /// [`DecodeError`]; [`DecodeError::is_unavailable`] tells a registry outage from a record
    /// that does not decode.
    pub async fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Decoded<'a>, DecodeError> {
        let framing = Framing::parse(bytes)?;
        let compiled = self.get(framing.schema).await?;
        decode_with(&compiled, framing)
    }
}

/// Decodes the data of `framing` with its compiled schema.
#[cfg_attr(
    not(any(feature = "avro", feature = "protobuf", feature = "json-schema")),
    expect(
        unreachable_code,
        unused_variables,
        unused_mut,
        reason = "no format is built in: no schema compiles"
    )
)]
fn decode_with<'a>(compiled: &Compiled, framing: Framing<'a>) -> Result<Decoded<'a>, DecodeError> {
    let id = framing.schema;
    let data_error = |reason: String| DecodeError::Data { id, reason };
    // JSON is usually longer than the binary datum: room for that, so that it is not regrown
    // several times per record.
    let mut json = Vec::with_capacity(framing.data.len() * 2 + 16);
    match *compiled {
        #[cfg(feature = "avro")]
        Compiled::Avro(ref schema) => schema
            .to_json(&framing.data, &mut json)
            .map_err(data_error)?,
        #[cfg(feature = "protobuf")]
        Compiled::Protobuf(ref schema) => {
            use crate::protobuf::Which;
            match id {
                SchemaId::Confluent(_) => {
                    let (indexes, message) =
                        crate::wire::MessageIndexes::read_confluent(&framing.data)?;
                    schema.to_json(Which::Confluent(&indexes), message, &mut json)
                }
                SchemaId::Glue(_) => {
                    let (index, message) = crate::wire::MessageIndexes::read_glue(&framing.data)?;
                    schema.to_json(Which::Glue(index), message, &mut json)
                }
            }
            .map_err(data_error)?;
        }
        #[cfg(feature = "json-schema")]
        Compiled::Json(ref schema) => {
            schema.validate(&framing.data).map_err(data_error)?;
            json.extend_from_slice(&framing.data);
        }
    }
    Ok(Decoded {
        metadata: SchemaMetadata {
            data_format: compiled.data_format(),
            schema_id: id.to_string(),
        },
        json,
        source: framing.data,
    })
}

#[cfg(all(test, feature = "avro"))]
mod tests;
