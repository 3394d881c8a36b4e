'use strict';
// Conformance function `node-powertools`: AWS's Node.js runtime interface client (aws-lambda-ric)
// running a handler wrapped in Powertools for AWS Lambda (TypeScript)'s Kafka utility,
// `kafkaConsumer` from @aws-lambda-powertools/kafka, which decodes the records. See
// ../README.md for the contract and LIMITS.md for what this library cannot carry.
//
// CommonJS, so that NODE_PATH (set by the command install.sh prints) finds the packages in the
// cache: ES modules ignore NODE_PATH.
//
// - No schema config: kafkaConsumer then decodes keys and values as "primitive" values, i.e.
//   UTF-8 text (its only raw mode; `json`, `avro` and `protobuf` are the others). The bytes
//   written are the UTF-8 bytes of that text.
// - Header values come as UTF-8 text too (the library decodes them, always): the bytes written
//   are the UTF-8 bytes of that text.
// - A key the library gives as `undefined` (a missing `key` field, or an empty key "") is
//   written as null: JSON has no undefined.
// - Every field of the line is modelled by the library's event type (MSKEvent / ConsumerRecord):
//   none is null for want of a model; eventSourceArn is null when the event has none
//   (self-managed Kafka).
// - Poison records: Powertools' batch utility has no Kafka event type (@aws-lambda-powertools/
//   batch 2.35.0 knows SQS, KinesisDataStreams and DynamoDBStreams only), so a poison record
//   fails the whole invocation: the handler throws after writing every line.
const fs = require('node:fs');
const { kafkaConsumer } = require('@aws-lambda-powertools/kafka');

const NAME = 'node-powertools';
const POISON_HEADER = 'kl-poison';

const utf8Base64 = (text) =>
  text === null || text === undefined ? null : Buffer.from(text, 'utf8').toString('base64');

const orNull = (value) => (value === undefined ? null : value);

// Appends `text` with one write on a file opened with O_APPEND.
const appendAll = (path, text) => {
  const bytes = Buffer.from(text, 'utf8');
  const fd = fs.openSync(path, 'a');
  try {
    let written = 0;
    while (written < bytes.length) {
      written += fs.writeSync(fd, bytes, written, bytes.length - written);
    }
  } finally {
    fs.closeSync(fd);
  }
};

const handle = async (event, context) => {
  const out = process.env.KL_CONFORMANCE_OUT;
  if (!out) throw new Error('KL_CONFORMANCE_OUT is not set');
  let lines = '';
  const poisoned = [];
  // event.records: the library's ConsumerRecord list, in the event's order.
  for (const record of event.records) {
    const headers = record.headers; // [{ name: utf8 text }, …] or null
    const pairs =
      headers === null ? null : headers.flatMap((header) => Object.entries(header));
    const poison = pairs !== null && pairs.some(([name]) => name === POISON_HEADER);
    lines += `${JSON.stringify({
      function: NAME,
      invocation: context.awsRequestId,
      eventSource: orNull(event.eventSource),
      eventSourceArn: orNull(event.eventSourceArn),
      bootstrapServers: orNull(event.bootstrapServers),
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      timestamp: record.timestamp,
      timestampType: record.timestampType,
      key: utf8Base64(record.key),
      value: utf8Base64(record.value),
      headers: pairs === null ? null : pairs.map(([name, text]) => [name, utf8Base64(text)]),
      keySchemaMetadata: orNull(record.keySchemaMetadata),
      valueSchemaMetadata: orNull(record.valueSchemaMetadata),
      poison,
    })}\n`;
    if (poison) poisoned.push(`${record.topic}-${record.partition}@${record.offset}`);
  }
  if (lines) appendAll(out, lines);
  if (poisoned.length > 0) {
    throw new Error(`poison records (header ${POISON_HEADER}): ${poisoned.join(', ')}`);
  }
};

exports.handler = kafkaConsumer(handle);
