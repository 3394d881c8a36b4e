use super::*;
use apache_avro::types::Value;

fn plan(schema: &str) -> (Schema, JsonPlan) {
    let schema = Schema::parse_str(schema).unwrap();
    let plan = JsonPlan::compile(&schema, &[]).unwrap();
    (schema, plan)
}

fn write(schema: &Schema, value: Value) -> Vec<u8> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap()
}

fn transcode(plan: &JsonPlan, data: &[u8]) -> Result<String, String> {
    let mut out = Vec::new();
    plan.transcode(data, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

/// Every type apache-avro's own JSON conversion writes the same way as ours (it writes bytes,
/// fixed and decimals as arrays of numbers, and a `float` widened to `f64`: those have tests of
/// their own below), nested and recursive.
const EVENT: &str = r#"{
    "type": "record", "name": "Event", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "count", "type": "int"},
        {"name": "ok", "type": "boolean"},
        {"name": "price", "type": "double"},
        {"name": "note", "type": "string"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}},
        {"name": "email", "type": ["null", "string"]},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "lines", "type": {"type": "array", "items": {
            "type": "record", "name": "Line", "fields": [
                {"name": "sku", "type": "string"},
                {"name": "qty", "type": "int"},
                {"name": "state", "type": "Status"}
            ]}}},
        {"name": "attrs", "type": {"type": "map", "values": ["null", "long", "string", "Line"]}},
        {"name": "chain", "type": ["null", {"type": "record", "name": "Link", "fields": [
            {"name": "n", "type": "int"},
            {"name": "next", "type": ["null", "Link"]}
        ]}]}
    ]
}"#;

/// A deterministic source of pseudo-random numbers (SplitMix64), so that a failure repeats.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn long(&mut self) -> i64 {
        // Small and extreme numbers alike: every varint length.
        let bits = self.below(64);
        (self.next() >> bits) as i64 * if self.below(2) == 0 { 1 } else { -1 }
    }

    fn string(&mut self) -> String {
        const PIECES: [&str; 9] = ["a", "Zürich", "\"", "\\", "\n", "\u{1}", "😀", "/", " "];
        (0..self.below(6))
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }

    fn line(&mut self) -> Value {
        Value::Record(vec![
            ("sku".into(), Value::String(self.string())),
            ("qty".into(), Value::Int(self.long() as i32)),
            ("state".into(), self.status()),
        ])
    }

    fn status(&mut self) -> Value {
        let i = self.below(3) as u32;
        Value::Enum(i, ["NEW", "PAID", "SHIPPED"][i as usize].into())
    }

    fn chain(&mut self, depth: u32) -> Value {
        if depth == 0 || self.below(3) == 0 {
            return Value::Union(0, Box::new(Value::Null));
        }
        Value::Union(
            1,
            Box::new(Value::Record(vec![
                ("n".into(), Value::Int(self.long() as i32)),
                ("next".into(), self.chain(depth - 1)),
            ])),
        )
    }

    fn event(&mut self) -> Value {
        let attrs = (0..self.below(4))
            .map(|i| {
                let value = match self.below(4) {
                    0 => Value::Union(0, Box::new(Value::Null)),
                    1 => Value::Union(1, Box::new(Value::Long(self.long()))),
                    2 => Value::Union(2, Box::new(Value::String(self.string()))),
                    _ => Value::Union(3, Box::new(self.line())),
                };
                (format!("{i}{}", self.string()), value)
            })
            .collect();
        let email = if self.below(2) == 0 {
            Value::Union(0, Box::new(Value::Null))
        } else {
            Value::Union(1, Box::new(Value::String(self.string())))
        };
        Value::Record(vec![
            ("id".into(), Value::Long(self.long())),
            ("count".into(), Value::Int(self.long() as i32)),
            ("ok".into(), Value::Boolean(self.below(2) == 0)),
            (
                "price".into(),
                Value::Double(self.long() as f64 / (self.below(1000) + 1) as f64),
            ),
            ("note".into(), Value::String(self.string())),
            ("status".into(), self.status()),
            ("email".into(), email),
            ("at".into(), Value::TimestampMillis(self.long())),
            ("day".into(), Value::Date(self.long() as i32)),
            (
                "lines".into(),
                Value::Array((0..self.below(5)).map(|_| self.line()).collect()),
            ),
            ("attrs".into(), Value::Map(attrs)),
            ("chain".into(), self.chain(5)),
        ])
    }
}

#[test]
fn datums_read_as_apache_avro_reads_them() {
    let (schema, plan) = plan(EVENT);
    let mut numbers = Numbers(7);
    for _ in 0..2_000 {
        let data = write(&schema, numbers.event());
        let expected = serde_json::Value::try_from(
            apache_avro::reader::datum::GenericDatumReader::builder(&schema)
                .build()
                .unwrap()
                .read_value(&mut &data[..])
                .unwrap(),
        )
        .unwrap();
        let written = transcode(&plan, &data).unwrap();
        let actual: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(actual, expected, "{written}");
    }
}

#[test]
fn record_fields_keep_schema_order_and_map_entries_the_order_written() {
    let (_, plan) = plan(
        r#"{"type": "record", "name": "R", "fields": [
            {"name": "z", "type": "int"},
            {"name": "a", "type": {"type": "map", "values": "int"}}]}"#,
    );
    // Written by hand: apache-avro's writer takes a HashMap. A map of one block of 2 entries,
    // "b" then "a", then the end block.
    let data = [2, 4, 2, b'b', 4, 2, b'a', 2, 0];
    assert_eq!(
        transcode(&plan, &data).unwrap(),
        r#"{"z":1,"a":{"b":2,"a":1}}"#
    );
}

#[test]
fn a_block_with_its_byte_size_is_read() {
    let (_, plan) = plan(r#"{"type": "array", "items": "long"}"#);
    // A count of -2 (zigzag 3) is followed by the block's size in bytes (2, zigzag 4).
    assert_eq!(transcode(&plan, &[3, 4, 2, 4, 2, 6, 0]).unwrap(), "[1,2,3]");
}

#[test]
fn bytes_and_fixed_are_base64() {
    let (schema, plan) = plan(
        r#"{"type": "record", "name": "R", "fields": [
            {"name": "b", "type": "bytes"},
            {"name": "f", "type": {"type": "fixed", "name": "F", "size": 3}}]}"#,
    );
    let data = write(
        &schema,
        Value::Record(vec![
            ("b".into(), Value::Bytes(vec![0, 255])),
            ("f".into(), Value::Fixed(3, vec![1, 2, 3])),
        ]),
    );
    assert_eq!(
        transcode(&plan, &data).unwrap(),
        r#"{"b":"AP8=","f":"AQID"}"#
    );
}

#[test]
fn floats_are_shortest_and_non_finite_numbers_are_strings() {
    let (schema, plan) = plan(r#"{"type": "array", "items": ["float", "double"]}"#);
    let items = [
        Value::Union(0, Box::new(Value::Float(0.1))),
        Value::Union(1, Box::new(Value::Double(0.1))),
        Value::Union(1, Box::new(Value::Double(f64::NAN))),
        Value::Union(0, Box::new(Value::Float(f32::INFINITY))),
        Value::Union(1, Box::new(Value::Double(f64::NEG_INFINITY))),
        Value::Union(1, Box::new(Value::Double(-0.0))),
    ];
    let data = write(&schema, Value::Array(items.into()));
    assert_eq!(
        transcode(&plan, &data).unwrap(),
        r#"[0.1,0.1,"NaN","Infinity","-Infinity",-0.0]"#
    );
}

#[test]
fn decimals_are_strings_of_their_exact_digits() {
    let (_, on_bytes) =
        plan(r#"{"type": "bytes", "logicalType": "decimal", "precision": 40, "scale": 2}"#);
    let (_, on_fixed) = plan(
        r#"{"type": "fixed", "name": "D", "size": 2, "logicalType": "decimal", "precision": 4, "scale": 3}"#,
    );
    let (_, whole) =
        plan(r#"{"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 0}"#);
    let bytes = |unscaled: &[u8]| {
        let mut data = vec![u8::try_from(unscaled.len() * 2).unwrap()];
        data.extend_from_slice(unscaled);
        data
    };
    assert_eq!(
        transcode(&on_bytes, &bytes(&[0x04, 0xce])).unwrap(),
        r#""12.30""#
    );
    assert_eq!(transcode(&on_bytes, &bytes(&[0xfb])).unwrap(), r#""-0.05""#);
    assert_eq!(transcode(&on_bytes, &bytes(&[])).unwrap(), r#""0.00""#);
    assert_eq!(transcode(&whole, &bytes(&[0x80])).unwrap(), r#""-128""#);
    assert_eq!(transcode(&on_fixed, &[0xff, 0xff]).unwrap(), r#""-0.001""#);
    // 2^127 - 1 and -2^127 (17 bytes with the sign), beyond any machine integer.
    let mut max = vec![0x00, 0x7f];
    max.extend([0xff; 15]);
    assert_eq!(
        transcode(&on_bytes, &bytes(&max)).unwrap(),
        r#""1701411834604692317316873037158841057.27""#
    );
    let mut min = vec![0xff, 0x80];
    min.extend([0x00; 15]);
    assert_eq!(
        transcode(&on_bytes, &bytes(&min)).unwrap(),
        r#""-1701411834604692317316873037158841057.28""#
    );
}

#[test]
fn uuids_durations_and_big_decimals_are_written_as_documented() {
    let uuid = uuid::Uuid::parse_str("0a1B2c3d-4e5f-6071-8293-a4b5c6d7e8f9").unwrap();
    let (schema, plan) = plan(
        r#"{"type": "record", "name": "R", "fields": [
            {"name": "s", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "f", "type": {"type": "fixed", "name": "U", "size": 16, "logicalType": "uuid"}},
            {"name": "d", "type": {"type": "fixed", "name": "Dur", "size": 12, "logicalType": "duration"}},
            {"name": "b", "type": {"type": "bytes", "logicalType": "big-decimal"}}]}"#,
    );
    let data = write(
        &schema,
        Value::Record(vec![
            ("s".into(), Value::Uuid(uuid)),
            ("f".into(), Value::Uuid(uuid)),
            (
                "d".into(),
                Value::Duration(apache_avro::Duration::new(
                    apache_avro::Months::new(1),
                    apache_avro::Days::new(2),
                    apache_avro::Millis::new(3_000),
                )),
            ),
            ("b".into(), Value::BigDecimal("-3.14159".parse().unwrap())),
        ]),
    );
    assert_eq!(
        transcode(&plan, &data).unwrap(),
        r#"{"s":"0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9","f":"0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9","d":{"months":1,"days":2,"millis":3000},"b":"-3.14159"}"#
    );
}

#[test]
fn every_cut_of_a_datum_is_refused_and_so_are_bytes_left_over() {
    let (schema, plan) = plan(EVENT);
    let mut numbers = Numbers(11);
    let data = write(&schema, numbers.event());
    for cut in 0..data.len() {
        assert!(
            transcode(&plan, &data[..cut]).is_err(),
            "{cut} of {} bytes",
            data.len()
        );
    }
    let mut longer = data.clone();
    longer.push(0);
    let e = transcode(&plan, &longer).unwrap_err();
    assert!(e.contains("followed by 1 more bytes"), "{e}");
}

#[test]
fn bytes_that_break_the_schema_are_refused_with_the_reason() {
    let refused = |schema: &str, data: &[u8], reason: &str| {
        let (_, plan) = plan(schema);
        let e = transcode(&plan, data).unwrap_err();
        assert!(e.contains(reason), "{e} should say {reason}");
        assert!(e.starts_with("is not an Avro datum of its schema"), "{e}");
    };
    refused(r#"["null", "int"]"#, &[4], "union branch 2 of a union of 2");
    refused(
        r#"{"type": "enum", "name": "E", "symbols": ["A"]}"#,
        &[2],
        "enum symbol 1 of an enum of 1",
    );
    refused(r#""string""#, &[4, 0xc3, 0x28], "not UTF-8");
    refused(r#""bytes""#, &[3], "negative length -2");
    refused(r#""bytes""#, &[20, 1], "bytes of 10 bytes where 1 remain");
    refused(r#""boolean""#, &[2], "a boolean byte of 2");
    refused(
        r#""int""#,
        &[0x80, 0x80, 0x80, 0x80, 0x20],
        "beyond 32 bits",
    );
    refused(r#""long""#, &[0xff; 11], "longer than 64 bits");
    refused(r#""long""#, &[0xff, 0xff], "ends inside a number");
    refused(
        r#"{"type": "string", "logicalType": "uuid"}"#,
        &[6, b'a', b'b', b'c'],
        "not a UUID",
    );
}

#[test]
fn a_datum_nested_past_the_limit_is_refused_not_overflowing_the_stack() {
    let (_, plan) = plan(
        r#"{"type": "record", "name": "Link", "fields": [{"name": "next", "type": ["null", "Link"]}]}"#,
    );
    // Each level is a union branch 1; the last is the null branch.
    let mut deep = vec![2; MAX_DEPTH];
    deep.push(0);
    let e = transcode(&plan, &deep).unwrap_err();
    assert!(e.contains("nested deeper than 256 levels"), "{e}");
    let mut shallow = vec![2; 100];
    shallow.push(0);
    assert!(transcode(&plan, &shallow).is_ok());
}

#[test]
fn a_few_bytes_claiming_billions_of_empty_items_are_refused() {
    let (_, plan) = plan(r#"{"type": "array", "items": "null"}"#);
    // One block of 2^40 nulls: five bytes that would write 5 TB of JSON.
    let e = transcode(&plan, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0]).unwrap_err();
    assert!(e.contains("far more than"), "{e}");
    // A few nulls are a datum like any other.
    assert_eq!(transcode(&plan, &[6, 0]).unwrap(), "[null,null,null]");
}

#[test]
fn named_types_resolve_across_namespaces_and_references() {
    let address = r#"{"type": "record", "name": "Address", "namespace": "geo", "fields": [
        {"name": "city", "type": "string"}]}"#;
    let person = r#"{"type": "record", "name": "Person", "namespace": "people", "fields": [
        {"name": "home", "type": "geo.Address"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "other", "type": "Kind"}]}"#;
    let (schema, references) =
        Schema::parse_str_with_list(person, [address]).expect("schemas parse");
    let plan = JsonPlan::compile(&schema, &references).unwrap();
    assert_eq!(
        transcode(&plan, &[8, b'O', b's', b'l', b'o', 2, 0]).unwrap(),
        r#"{"home":{"city":"Oslo"},"kind":"B","other":"A"}"#
    );
}
