//! Goal 7: schema-registry records. (a) The poller decoding Avro values of about 1 KB to JSON
//! through a Confluent-compatible registry (`[mapping.schema_registry]`), 4 partitions, against
//! the plain consumer reading the same records in the same run, and the poller passing the same
//! records on undecoded. (b) The handler SDK's `Avro<T>` decode of a 6 MB event against
//! `apache-avro` used by hand on the same event.

use crate::Setup;
use crate::kafka::{self, ConsumeRun};
use crate::server::Behaviour;
use crate::throughput::{self, PollerRun, RunSettings};
use apache_avro::Schema;
use apache_avro::types::Value;
use base64::Engine;
use kafka_lambda_events::{
    DataFormat, EventSource, EventWriter, KafkaEvent, RecordRef, SchemaMetadata, TimestampType,
};
use kafka_lambda_handler::schema::{Avro, SchemaSource};
use kafka_lambda_handler::{BatchOptions, decode_batch};
use serde::Deserialize;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The record's schema: an order of about 1 KB once encoded.
const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "bench", "fields": [
    {"name": "id", "type": "long"},
    {"name": "customer", "type": "string"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "total_cents", "type": "long"},
    {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [
        {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}, {"name": "description", "type": "string"}]}}},
    {"name": "tags", "type": {"type": "map", "values": "string"}}
]}"#;

#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "read by serde, black-boxed whole")]
struct Order {
    id: i64,
    customer: String,
    status: Status,
    note: Option<String>,
    total_cents: i64,
    lines: Vec<Line>,
    tags: std::collections::HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Status {
    New,
    Paid,
    Shipped,
}

#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "read by serde, black-boxed whole")]
struct Line {
    sku: String,
    qty: i32,
    description: String,
}

/// The Avro datum of order `id`: about 1 KB.
fn datum(schema: &Schema, id: u64) -> anyhow::Result<Vec<u8>> {
    let text = |n: usize| {
        let mut s = format!("{id:08}-");
        while s.len() < n {
            s.push_str("lorem ipsum dolor sit amet ");
        }
        s.truncate(n);
        s
    };
    let line = |i: i64| {
        Value::Record(vec![
            ("sku".into(), Value::String(format!("SKU-{i:05}"))),
            ("qty".into(), Value::Int(i as i32 % 7 + 1)),
            ("description".into(), Value::String(text(250))),
        ])
    };
    let order = Value::Record(vec![
        ("id".into(), Value::Long(id as i64)),
        ("customer".into(), Value::String(text(60))),
        ("status".into(), Value::Enum(1, "PAID".into())),
        (
            "note".into(),
            Value::Union(1, Box::new(Value::String(text(100)))),
        ),
        ("total_cents".into(), Value::Long(12_345 + id as i64)),
        (
            "lines".into(),
            Value::Array((0..3).map(|i| line(id as i64 * 3 + i)).collect()),
        ),
        (
            "tags".into(),
            Value::Map(
                [
                    ("channel".to_owned(), Value::String("web".into())),
                    ("region".to_owned(), Value::String("eu-west-1".into())),
                ]
                .into(),
            ),
        ),
    ]);
    Ok(
        apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()?
            .write_value_to_vec(order)?,
    )
}

/// Registers the schema under `subject` with the registry at `url`; returns its id.
fn register(url: &str, subject: &str) -> anyhow::Result<u32> {
    let body = serde_json::json!({ "schema": ORDER }).to_string();
    let answer: serde_json::Value = ureq::post(&format!("{url}/subjects/{subject}/versions"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send(body.as_bytes())?
        .body_mut()
        .read_json()?;
    let id = answer["id"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("the registry answered no id: {answer}"))?;
    Ok(u32::try_from(id)?)
}

/// The poller and the baseline on the same Avro records.
#[derive(Debug, Clone)]
pub(crate) struct PollerResult {
    /// Records read by each run.
    pub(crate) records: u64,
    /// Bytes of one record's value (header and datum).
    pub(crate) value_bytes: usize,
    /// The plain rdkafka consumer.
    pub(crate) baseline: ConsumeRun,
    /// The poller with `[mapping.schema_registry]`: values decoded to JSON.
    pub(crate) decoding: PollerRun,
    /// The poller without it: the values passed on as read.
    pub(crate) plain: PollerRun,
}

impl PollerResult {
    /// Decoding poller records/s over the baseline's.
    pub(crate) fn ratio(&self) -> f64 {
        self.decoding.run.steady_rate() / self.baseline.steady_rate()
    }
}

/// Produces `records` Avro orders (Confluent wire format, the schema registered at
/// `registry`) over the workload's partitions and runs the three readers on them.
pub(crate) async fn poller(
    setup: &Setup,
    registry: &str,
    records: u64,
) -> anyhow::Result<PollerResult> {
    let topic = kafka::unique("bench-avro");
    kafka::create_topic(&setup.bootstrap, &topic).await?;
    let id = register(registry, &format!("{topic}-value"))?;
    let schema = Schema::parse_str(ORDER)?;
    let value = move |n: u64| -> anyhow::Result<Vec<u8>> {
        let mut value = vec![0];
        value.extend_from_slice(&id.to_be_bytes());
        value.extend(datum(&schema, n)?);
        Ok(value)
    };
    let value_bytes = value(0)?.len();
    let (bootstrap, t) = (setup.bootstrap.clone(), topic.clone());
    tokio::task::spawn_blocking(move || kafka::produce_values(&bootstrap, &t, records, value))
        .await??;
    eprintln!("produced {records} Avro records of {value_bytes} bytes into {topic}");
    let (bootstrap, t, timeout) = (setup.bootstrap.clone(), topic.clone(), setup.timeout);
    let baseline =
        tokio::task::spawn_blocking(move || kafka::baseline(&bootstrap, &t, records, 10, timeout))
            .await??;
    let settings = |extra: String| RunSettings {
        fetch_wait_max_ms: 10,
        batching_window_ms: 20,
        options: Vec::new(),
        env: Vec::new(),
        behaviour: Behaviour::default(),
        batch_size: 1000,
        max_concurrency: 10,
        mapping_extra: extra,
    };
    let decoding = throughput::poller_run(
        setup,
        "avro",
        &topic,
        records,
        &settings(format!("[mapping.schema_registry]\nuri = \"{registry}\"")),
    )
    .await?;
    let plain = throughput::poller_run(
        setup,
        "avro-plain",
        &topic,
        records,
        &settings(String::new()),
    )
    .await?;
    let result = PollerResult {
        records,
        value_bytes,
        baseline,
        decoding,
        plain,
    };
    eprintln!(
        "avro: baseline {:.0} records/s, poller decoding {:.0} ({:.2}×), poller plain {:.0}",
        result.baseline.steady_rate(),
        result.decoding.run.steady_rate(),
        result.ratio(),
        result.plain.run.steady_rate()
    );
    Ok(result)
}

/// The handler's decode against `apache-avro` by hand, on one 6 MB event.
#[derive(Debug, Clone)]
pub(crate) struct DecodeResult {
    /// Records in the event.
    pub(crate) records: usize,
    /// The event's size.
    pub(crate) event_bytes: usize,
    /// `KafkaEvent::from_slice` + `decode_batch::<Avro<Order>>`, median.
    pub(crate) ours: Duration,
    /// `serde_json` into `aws_lambda_events`' event + `base64` + `apache-avro` per record, median.
    pub(crate) by_hand: Duration,
}

impl DecodeResult {
    /// How many times faster the SDK is.
    pub(crate) fn speedup(&self) -> f64 {
        self.by_hand.as_secs_f64() / self.ours.as_secs_f64()
    }
}

/// A `SOURCE`-format event of up to 6 MiB of Avro orders with their schema metadata.
fn source_event(schema: &Schema) -> anyhow::Result<(Vec<u8>, usize)> {
    let metadata = SchemaMetadata {
        data_format: DataFormat::Avro,
        schema_id: "1".into(),
    };
    let mut writer = EventWriter::new(&EventSource::SelfManagedKafka, None, Some("b:9092"));
    let mut records = 0;
    for n in 0.. {
        let value = datum(schema, n)?;
        let key = n.to_string();
        let record = RecordRef {
            topic: "orders",
            // One partition: the writer groups consecutive records of a partition.
            partition: 0,
            offset: n as i64,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(key.as_bytes()),
            value: Some(&value),
            headers: &[],
            key_schema_metadata: None,
            value_schema_metadata: Some(&metadata),
        };
        if writer.try_push(&record, 6 * 1024 * 1024).is_err() {
            break;
        }
        records += 1;
    }
    Ok((writer.finish(), records))
}

/// Times both on the same event, `iterations` rounds each, back to back.
pub(crate) fn decode(iterations: usize) -> anyhow::Result<DecodeResult> {
    let schema = Schema::parse_str(ORDER)?;
    let (event, records) = source_event(&schema)?;
    let source = SchemaSource::default().with_schema(
        kafka_lambda_handler::schema::SchemaId::Confluent(1),
        DataFormat::Avro,
        ORDER,
    );
    let source = source.map_err(anyhow::Error::msg)?;
    let ours = || -> anyhow::Result<usize> {
        let parsed = KafkaEvent::from_slice(&event)?;
        let prefetched = std::sync::Arc::new(futures_lite_block_on(source.prefetch(&parsed))?);
        let batch =
            prefetched.scope(|| decode_batch::<Avro<Order>>(parsed, &BatchOptions::new()))?;
        Ok(black_box(batch.len()))
    };
    let by_hand = || -> anyhow::Result<usize> {
        let parsed: aws_lambda_events::event::kafka::KafkaEvent = serde_json::from_slice(&event)?;
        let mut n = 0;
        for record in parsed.records.values().flatten() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(record.value.as_deref().unwrap_or_default())?;
            let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
                .build()?
                .read_value(&mut bytes.as_slice())?;
            black_box(apache_avro::from_value::<Order>(&value)?);
            n += 1;
        }
        Ok(n)
    };
    let (a, b) = (ours()?, by_hand()?);
    anyhow::ensure!(
        a == records && b == records,
        "both read every record: {records} in the event, the SDK read {a}, by hand {b}"
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let t = Instant::now();
        ours()?;
        a.push(t.elapsed());
        let t = Instant::now();
        by_hand()?;
        b.push(t.elapsed());
    }
    let result = DecodeResult {
        records,
        event_bytes: event.len(),
        ours: crate::stats::median(&a),
        by_hand: crate::stats::median(&b),
    };
    eprintln!(
        "avro decode: SDK {:.1?}, by hand {:.1?}, {:.2}× ({} records, {} bytes)",
        result.ours,
        result.by_hand,
        result.speedup(),
        result.records,
        result.event_bytes
    );
    Ok(result)
}

/// Runs a future that never waits (no registry is asked) to completion on this thread.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}
