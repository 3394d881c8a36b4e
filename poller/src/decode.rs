//! A mapping's schema registry at work: the parts of a record `schema_validation` names (key,
//! value) are decoded with the schema their registry header names, before filters see them,
//! as the event source mapping does.
//!
//! What the function then receives in place of the part (`event_record_format`): its JSON
//! (`JSON`), or its data without the registry header (`SOURCE`); either way with
//! `keySchemaMetadata` / `valueSchemaMetadata` (`dataFormat`, `schemaId`). Filters and the
//! input template see the JSON. A null key or a tombstone value is passed on as null, with no
//! metadata. A part that does not decode fails its record ([`DecodeError::error_type`]:
//! `SCHEMA_NOT_FOUND` or `DESERIALIZATION_ERROR`); a registry that cannot be reached fails no
//! record ([`DecodeError::is_unavailable`]): the worker waits for it.

use crate::config::{EventRecordFormat, RegistryTarget, SchemaRegistry};
use kafka_lambda_events::SchemaMetadata;
use kafka_lambda_schema::{ConfluentRegistry, DecodeError, GlueRegistry, Registry, Schemas};

/// Decodes records of one mapping. Shared by its partition workers.
#[derive(Debug)]
pub(crate) struct RecordDecoder {
    schemas: Schemas,
    format: EventRecordFormat,
    key: bool,
    value: bool,
}

/// A decoded key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedPart {
    /// The datum as JSON text: what filters and the input template see.
    pub json: Vec<u8>,
    /// What the event carries in the part's place, `None` when that is the JSON (`JSON`
    /// format); in `SOURCE` format, the data without the registry header.
    pub source: Option<Vec<u8>>,
    /// The part's `…SchemaMetadata`.
    pub metadata: SchemaMetadata,
}

impl DecodedPart {
    /// The JSON of `part`, if there is one: what filters see in place of the bytes read.
    pub(crate) fn json_of(part: Option<&Self>) -> Option<&[u8]> {
        part.map(|p| p.json.as_slice())
    }

    /// The bytes the event carries for the part.
    pub(crate) fn event_bytes(&self) -> &[u8] {
        self.source.as_deref().unwrap_or(&self.json)
    }
}

/// A record's key and value after decoding; `None` for a part not decoded (not named in
/// `schema_validation`, or null).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DecodedRecord {
    /// The key.
    pub key: Option<DecodedPart>,
    /// The value.
    pub value: Option<DecodedPart>,
}

/// Which part of a record did not decode, and why.
#[derive(Debug)]
pub(crate) struct PartError {
    /// `key` or `value`.
    pub part: &'static str,
    /// Why.
    pub error: DecodeError,
}

impl RecordDecoder {
    /// The decoder of `settings`; a Glue registry signs with the process's AWS credentials (the
    /// standard chain: environment, profile, web identity, container or instance role).
    ///
    /// # Errors
    /// The registry client cannot be made (a bad URL or PEM, no AWS credentials provider).
    pub(crate) async fn new(settings: &SchemaRegistry) -> Result<Self, String> {
        let registry =
            match &settings.target {
                RegistryTarget::Confluent { url, auth } => Registry::Confluent(
                    ConfluentRegistry::new(url, auth.clone(), settings.request_timeout)?,
                ),
                RegistryTarget::Glue { arn, endpoint } => {
                    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .load()
                        .await;
                    let credentials = config.credentials_provider().ok_or_else(|| {
                        "no AWS credentials provider is configured for the Glue schema registry"
                            .to_owned()
                    })?;
                    Registry::Glue(GlueRegistry::new(
                        arn,
                        endpoint.as_deref(),
                        credentials,
                        settings.request_timeout,
                    )?)
                }
            };
        Ok(RecordDecoder {
            schemas: Schemas::new(registry, settings.max_cached_schemas),
            format: settings.event_record_format,
            key: settings.key,
            value: settings.value,
        })
    }

    /// The registry, for logs.
    pub(crate) fn registry(&self) -> &Registry {
        self.schemas.registry()
    }

    /// Decodes the configured parts of a record with `key` and `value`.
    ///
    /// # Errors
    /// The first part that does not decode (the key before the value).
    pub(crate) async fn decode(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<DecodedRecord, PartError> {
        let key = match key.filter(|_| self.key) {
            Some(bytes) => Some(
                self.part(bytes)
                    .await
                    .map_err(|error| PartError { part: "key", error })?,
            ),
            None => None,
        };
        let value = match value.filter(|_| self.value) {
            Some(bytes) => Some(self.part(bytes).await.map_err(|error| PartError {
                part: "value",
                error,
            })?),
            None => None,
        };
        Ok(DecodedRecord { key, value })
    }

    async fn part(&self, bytes: &[u8]) -> Result<DecodedPart, DecodeError> {
        let decoded = self.schemas.decode(bytes).await?;
        Ok(DecodedPart {
            source: match self.format {
                EventRecordFormat::Json => None,
                EventRecordFormat::Source => Some(decoded.source.into_owned()),
            },
            json: decoded.json,
            metadata: decoded.metadata,
        })
    }
}

impl PartError {
    /// Whether the registry, not the record, is at fault
    /// ([`DecodeError::is_registry_fault`]: unreachable, slow, or refusing the poller's
    /// credentials), so the record must wait instead of failing; the log and `/readyz` say
    /// what is wrong.
    pub(crate) fn must_wait(&self) -> bool {
        self.error.is_registry_fault()
    }
}

impl std::fmt::Display for PartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the record's {} does not decode: {}",
            self.part, self.error
        )
    }
}
