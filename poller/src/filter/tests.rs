//! Behaviour of [`Filter`]: every documented example of the Lambda and EventBridge pattern
//! language, the Kafka specifics (plain strings, tombstones, binary keys, headers, topic and
//! partition), and the exact messages of rejected patterns.

use super::*;
use kafka_lambda_events::Header;

fn record<'a>(value: Option<&'a [u8]>) -> RecordView<'a> {
    RecordView {
        topic: "orders",
        partition: 3,
        key: None,
        value,
        headers: &[],
    }
}

fn filter(patterns: &[&str]) -> Filter {
    match Filter::parse(patterns) {
        Ok(f) => f,
        Err(e) => panic!("{patterns:?} should compile: {e}"),
    }
}

/// Whether `{"value": <pattern>}` matches a record whose value is `value`.
fn value_matches(pattern: &str, value: &str) -> bool {
    filter(&[&format!(r#"{{"value": {pattern}}}"#)]).matches(&record(Some(value.as_bytes())))
}

fn error(patterns: &[&str]) -> String {
    match Filter::parse(patterns) {
        Ok(_) => panic!("{patterns:?} should be rejected"),
        Err(e) => e.to_string(),
    }
}

fn invalid(pattern: &str) -> String {
    error(&[pattern])
}

/// The sample event of the EventBridge / Event Ruler documentation.
const EC2_EVENT: &str = r#"{
  "version": "0",
  "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
  "detail-type": "EC2 Instance State-change Notification",
  "source": "aws.ec2",
  "account": "012345679012",
  "time": "2017-10-02T16:24:49Z",
  "region": "us-east-1",
  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
  "detail": {
    "c-count": 5,
    "d-count": 3,
    "x-limit": 301.8,
    "source-ip": "10.0.0.33",
    "instance-id": "i-000000aaaaaa00000",
    "state": "running"
  }
}"#;

fn ec2(pattern: &str) -> bool {
    value_matches(pattern, EC2_EVENT)
}

// ---- Lambda "filter rule syntax" table, one test per row ----

#[test]
fn null_matches_a_null_field_only() {
    let p = r#"{"UserID": [null]}"#;
    assert!(value_matches(p, r#"{"UserID": null}"#));
    assert!(!value_matches(p, r#"{"UserID": "null"}"#));
    assert!(!value_matches(p, r#"{"UserID": ""}"#));
    assert!(!value_matches(p, r#"{"Other": 1}"#));
}

#[test]
fn empty_string_matches_an_empty_field_only() {
    let p = r#"{"LastName": [""]}"#;
    assert!(value_matches(p, r#"{"LastName": ""}"#));
    assert!(!value_matches(p, r#"{"LastName": null}"#));
    assert!(!value_matches(p, r#"{"LastName": " "}"#));
    assert!(!value_matches(p, r#"{}"#));
}

#[test]
fn equals_is_exact_and_case_sensitive() {
    let p = r#"{"Name": ["Alice"]}"#;
    assert!(value_matches(p, r#"{"Name": "Alice"}"#));
    assert!(!value_matches(p, r#"{"Name": "alice"}"#));
    assert!(!value_matches(p, r#"{"Name": "Alice "}"#));
}

#[test]
fn equals_ignore_case_folds_case() {
    let p = r#"{"Name": [{"equals-ignore-case": "alice"}]}"#;
    assert!(value_matches(p, r#"{"Name": "ALICE"}"#));
    assert!(value_matches(p, r#"{"Name": "Alice"}"#));
    assert!(!value_matches(p, r#"{"Name": "Alicia"}"#));
}

#[test]
fn fields_of_one_object_are_anded() {
    let p = r#"{"Location": ["New York"], "Day": ["Monday"]}"#;
    assert!(value_matches(
        p,
        r#"{"Location": "New York", "Day": "Monday"}"#
    ));
    assert!(!value_matches(
        p,
        r#"{"Location": "New York", "Day": "Tuesday"}"#
    ));
    assert!(!value_matches(p, r#"{"Location": "New York"}"#));
}

#[test]
fn values_of_one_list_are_ored() {
    let p = r#"{"PaymentType": ["Credit", "Debit"]}"#;
    assert!(value_matches(p, r#"{"PaymentType": "Credit"}"#));
    assert!(value_matches(p, r#"{"PaymentType": "Debit"}"#));
    assert!(!value_matches(p, r#"{"PaymentType": "Cash"}"#));
}

#[test]
fn or_across_fields() {
    let p = r#"{"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}"#;
    assert!(value_matches(
        p,
        r#"{"Location": "New York", "Day": "Friday"}"#
    ));
    assert!(value_matches(
        p,
        r#"{"Location": "Paris", "Day": "Monday"}"#
    ));
    assert!(!value_matches(
        p,
        r#"{"Location": "Paris", "Day": "Friday"}"#
    ));
}

#[test]
fn anything_but_list_excludes_listed_values() {
    let p = r#"{"Weather": [{"anything-but": ["Raining"]}]}"#;
    assert!(value_matches(p, r#"{"Weather": "Sunny"}"#));
    assert!(!value_matches(p, r#"{"Weather": "Raining"}"#));
    assert!(
        !value_matches(p, r#"{"Temperature": 3}"#),
        "a missing field is not anything-but"
    );
}

#[test]
fn numeric_equals() {
    let p = r#"{"Price": [{"numeric": ["=", 100]}]}"#;
    assert!(value_matches(p, r#"{"Price": 100}"#));
    assert!(value_matches(p, r#"{"Price": 100.0}"#));
    assert!(value_matches(p, r#"{"Price": 1e2}"#));
    assert!(!value_matches(p, r#"{"Price": 100.5}"#));
    assert!(
        !value_matches(p, r#"{"Price": "100"}"#),
        "numeric matches JSON numbers only"
    );
}

#[test]
fn numeric_range() {
    let p = r#"{"Price": [{"numeric": [">", 10, "<=", 20]}]}"#;
    assert!(!value_matches(p, r#"{"Price": 10}"#));
    assert!(value_matches(p, r#"{"Price": 10.5}"#));
    assert!(value_matches(p, r#"{"Price": 20}"#));
    assert!(!value_matches(p, r#"{"Price": 20.01}"#));
}

#[test]
fn exists_true_needs_the_field() {
    let p = r#"{"ProductName": [{"exists": true}]}"#;
    assert!(value_matches(p, r#"{"ProductName": "x"}"#));
    assert!(value_matches(p, r#"{"ProductName": null}"#));
    assert!(!value_matches(p, r#"{"Other": "x"}"#));
}

#[test]
fn exists_false_needs_the_field_missing() {
    let p = r#"{"ProductName": [{"exists": false}]}"#;
    assert!(value_matches(p, r#"{"Other": "x"}"#));
    assert!(!value_matches(p, r#"{"ProductName": "x"}"#));
    assert!(!value_matches(p, r#"{"ProductName": null}"#));
}

#[test]
fn begins_with() {
    let p = r#"{"Region": [{"prefix": "us-"}]}"#;
    assert!(value_matches(p, r#"{"Region": "us-east-1"}"#));
    assert!(!value_matches(p, r#"{"Region": "eu-west-1"}"#));
    assert!(!value_matches(p, r#"{"Region": "US-east-1"}"#));
}

#[test]
fn ends_with() {
    let p = r#"{"FileName": [{"suffix": ".png"}]}"#;
    assert!(value_matches(p, r#"{"FileName": "image.png"}"#));
    assert!(!value_matches(p, r#"{"FileName": "image.jpg"}"#));
}

// ---- Lambda "filtering examples" ----

#[test]
fn lambda_example_temperature_range() {
    let p = r#"{"Temperature": [{"numeric": [">", 50, "<=", 60]}]}"#;
    assert!(value_matches(
        p,
        r#"{"City": "Seattle", "Temperature": 55}"#
    ));
    assert!(value_matches(
        p,
        r#"{"City": "Seattle", "Temperature": 60}"#
    ));
    assert!(!value_matches(
        p,
        r#"{"City": "Seattle", "Temperature": 50}"#
    ));
    assert!(
        !value_matches(p, r#"{"City": "Seattle", "Temperature": "55"}"#),
        "the documented Kinesis record carries a string, which numeric does not match"
    );
}

#[test]
fn lambda_example_multi_level() {
    let p = r#"{"Keys": {"Id": {"N": ["101"]}}}"#;
    let event = r#"{"Keys": {"Id": {"N": "101"}},
        "NewImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
        "SequenceNumber": "111", "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"}"#;
    assert!(value_matches(p, event));
    assert!(!value_matches(p, r#"{"Keys": {"Id": {"N": "102"}}}"#));
    assert!(!value_matches(p, r#"{"Keys": {"Id": "101"}}"#));
}

#[test]
fn lambda_console_example_number_list() {
    let p = r#"{"a": [1, 2]}"#;
    assert!(value_matches(p, r#"{"a": 1}"#));
    assert!(value_matches(p, r#"{"a": 2}"#));
    assert!(!value_matches(p, r#"{"a": 3}"#));
    assert!(!value_matches(p, r#"{"a": "1"}"#));
}

#[test]
fn exact_numbers_compare_like_their_text() {
    // Lambda, filter rule syntax: "For numbers, Lambda also uses string representation. For
    // example, 300, 300.0, and 3.0e2 are not considered equal." Fractions and exponents too.
    assert!(value_matches(r#"{"n": [300]}"#, r#"{"n": 300}"#));
    assert!(!value_matches(r#"{"n": [300]}"#, r#"{"n": 300.0}"#));
    assert!(!value_matches(r#"{"n": [300.0]}"#, r#"{"n": 300}"#));
    assert!(!value_matches(r#"{"n": [300.0]}"#, r#"{"n": 3.0e2}"#));
    assert!(!value_matches(r#"{"n": [3.0e2]}"#, r#"{"n": 3.0E2}"#));
    assert!(value_matches(r#"{"n": [3.0e2]}"#, r#"{"n": 3.0e2}"#));
    assert!(!value_matches(r#"{"n": [1.5]}"#, r#"{"n": 1.50}"#));
    assert!(!value_matches(r#"{"n": [5e-324]}"#, r#"{"n": 4.9e-324}"#));
    assert!(!value_matches(
        r#"{"n": [1.8446744073709552e19]}"#,
        r#"{"n": 18446744073709551616}"#
    ));
    assert!(!value_matches(r#"{"n": [-0]}"#, r#"{"n": 0}"#));
    assert!(value_matches(r#"{"n": [-7]}"#, r#"{"n": -7}"#));
    assert!(value_matches(
        r#"{"n": [9007199254740993]}"#,
        r#"{"n": 9007199254740993}"#
    ));
    assert!(value_matches(r#"{"n": [1.50]}"#, r#"{"n": [1.5, 1.50]}"#));
    assert!(value_matches(
        r#"{"n": [300.0]}"#,
        r#"{"n": {"x": 1}, "n": 300.0}"#
    ));
    // The text of numbers is kept where an exact number rule looks, whichever pattern it is in.
    let f = filter(&[
        r#"{"value": {"n": [{"numeric": ["=", 300]}]}}"#,
        r#"{"value": {"n": [300.0]}}"#,
    ]);
    assert!(f.matches(&record(Some(br#"{"n": 3.0e2}"#))));
    let f = filter(&[r#"{"value": {"n": [300.0]}}"#]);
    assert!(!f.matches(&record(Some(br#"{"n": 3.0e2}"#))));
    // The partition is written as its digits.
    assert!(filter(&[r#"{"partition": [3]}"#]).matches(&record(None)));
    assert!(!filter(&[r#"{"partition": [3.0]}"#]).matches(&record(None)));
}

#[test]
fn numeric_rules_compare_values_whatever_the_spelling() {
    // Exact matching compares text; `numeric` and numeric `anything-but` compare numbers.
    let p = r#"{"n": [{"numeric": ["=", 3.0e2]}]}"#;
    for n in ["300", "300.0", "3.0e2", "3E2", "300.000"] {
        assert!(value_matches(p, &format!(r#"{{"n": {n}}}"#)), "{n}");
    }
    let but = r#"{"n": [{"anything-but": [1.50, 2]}]}"#;
    assert!(!value_matches(but, r#"{"n": 1.5}"#));
    assert!(!value_matches(but, r#"{"n": 2.0}"#));
    assert!(value_matches(but, r#"{"n": 2.5}"#));
}

#[test]
fn numeric_pattern_numbers_no_double_holds_are_refused() {
    // EventBridge, content filtering: numeric matching works "with 15 digits of precision";
    // event-ruler compares doubles and refuses a pattern number no double is ("Cannot compare
    // number"). A number a double is, as written, is taken however long.
    for ok in [
        "123456789012345",
        "0.123456789012345",
        "0.30000000000000004",
        "9007199254740992",
        "1.7976931348623157e308",
        "1e-310",
    ] {
        assert!(
            Filter::parse(&[format!(
                r#"{{"value": {{"n": [{{"numeric": [">", {ok}]}}]}}}}"#
            )])
            .is_ok(),
            "{ok}"
        );
    }
    assert_eq!(
        invalid(r#"{"value": {"n": [{"numeric": [">", 0, "<", 9007199254740993]}]}}"#),
        r#"filter[0] at value.n: "numeric" cannot compare 9007199254740993 exactly: numbers are compared as doubles, and the nearest double is 9.007199254740992e15 (numeric matching has 15 digits of precision)"#
    );
    assert_eq!(
        invalid(r#"{"value": {"n": [{"numeric": ["=", 5e-324]}]}}"#),
        r#"filter[0] at value.n: "numeric" cannot compare 5e-324 exactly: numbers are compared as doubles, and the nearest double is 4.9e-324 (numeric matching has 15 digits of precision)"#
    );
    assert_eq!(
        invalid(r#"{"value": {"n": [{"anything-but": [1, 18446744073709551615]}]}}"#),
        r#"filter[0] at value.n: "anything-but" cannot compare 18446744073709551615 exactly: numbers are compared as doubles, and the nearest double is 1.8446744073709552e19 (numeric matching has 15 digits of precision)"#
    );
    assert!(
        invalid(r#"{"value": {"n": [{"anything-but": 0.1000000000000000001}]}}"#)
            .contains("cannot compare 0.1000000000000000001 exactly")
    );
    // Exact rules compare text, so any number is taken there.
    assert!(Filter::parse(&[r#"{"value": {"n": [9007199254740993]}}"#]).is_ok());
}

#[test]
fn duplicate_keys_in_a_pattern_keep_the_last() {
    let p = r#"{"duplicateKey": ["hello"], "uniqueKey": ["test123"], "duplicateKey": ["world"]}"#;
    assert!(value_matches(
        p,
        r#"{"duplicateKey": "world", "uniqueKey": "test123"}"#
    ));
    assert!(!value_matches(
        p,
        r#"{"duplicateKey": "hello", "uniqueKey": "test123"}"#
    ));
}

#[test]
fn booleans_match_booleans() {
    assert!(value_matches(r#"{"ok": [true]}"#, r#"{"ok": true}"#));
    assert!(!value_matches(r#"{"ok": [true]}"#, r#"{"ok": "true"}"#));
    assert!(!value_matches(r#"{"ok": [true]}"#, r#"{"ok": false}"#));
}

// ---- Kafka documentation ----

#[test]
fn kafka_example_json_value_prefix() {
    let f = filter(&[r#"{ "value" : { "device_ID" : [ { "prefix": "AB" } ] } }"#]);
    let yes = br#"{ "device_ID": "AB1234", "session":{ "start_time": "yyyy-mm-ddThh:mm:ss", "duration": 162 } }"#;
    let no = br#"{ "device_ID": "CD1234", "session":{ "duration": 162 } }"#;
    assert!(f.matches(&record(Some(yes))));
    assert!(!f.matches(&record(Some(no))));
}

#[test]
fn kafka_example_plain_string_anything_but() {
    let f = filter(&[r#"{ "value" : [ { "anything-but": [ "error" ] } ] }"#]);
    assert!(!f.matches(&record(Some(b"error"))));
    assert!(f.matches(&record(Some(b"Hello, this is a test."))));
    assert!(f.matches(&record(Some(b"errors"))));
}

// ---- EventBridge comparison operators, on its sample event ----

#[test]
fn eventbridge_simple_matching() {
    assert!(ec2(r#"{
          "detail-type": [ "EC2 Instance State-change Notification" ],
          "resources": [ "arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000" ],
          "detail": { "state": [ "initializing", "running" ] }
        }"#));
    assert!(!ec2(r#"{"detail": {"state": ["initializing"]}}"#));
}

#[test]
fn eventbridge_prefix() {
    assert!(ec2(r#"{"time": [{"prefix": "2017-10-02"}]}"#));
    assert!(!ec2(r#"{"time": [{"prefix": "2017-10-03"}]}"#));
    assert!(
        !ec2(r#"{"detail": {"c-count": [{"prefix": "5"}]}}"#),
        "prefix matches strings only"
    );
}

#[test]
fn eventbridge_prefix_ignore_case() {
    assert!(ec2(
        r#"{"source": [{"prefix": {"equals-ignore-case": "AWS."}}]}"#
    ));
    assert!(!ec2(
        r#"{"source": [{"prefix": {"equals-ignore-case": "EC2"}}]}"#
    ));
}

#[test]
fn eventbridge_suffix() {
    assert!(ec2(r#"{"source": [{"suffix": "ec2"}]}"#));
    assert!(!ec2(r#"{"source": [{"suffix": "EC2"}]}"#));
}

#[test]
fn eventbridge_suffix_ignore_case() {
    assert!(ec2(
        r#"{"source": [{"suffix": {"equals-ignore-case": "EC2"}}]}"#
    ));
    assert!(!ec2(
        r#"{"source": [{"suffix": {"equals-ignore-case": "EC3"}}]}"#
    ));
}

#[test]
fn eventbridge_equals_ignore_case() {
    assert!(!ec2(r#"{"source": [{"equals-ignore-case": "EC2"}]}"#));
    assert!(ec2(r#"{"source": [{"equals-ignore-case": "AWS.EC2"}]}"#));
}

#[test]
fn eventbridge_wildcard() {
    let p = r#"{"source": [{"wildcard": "Simple*Service"}]}"#;
    assert!(value_matches(p, r#"{"source": "SimpleQueueService"}"#));
    assert!(value_matches(p, r#"{"source": "SimpleService"}"#));
    assert!(!value_matches(p, r#"{"source": "SimpleQueue"}"#));
    let arn = r#"{"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}"#;
    assert!(value_matches(
        arn,
        r#"{"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/default"}"#
    ));
    assert!(!value_matches(
        arn,
        r#"{"EventBusArn": "arn:aws:events:eu-west-1:123456789012:event-bus/default"}"#
    ));
    let png = r#"{"FilePath": [{"wildcard": "dir/*.png"}]}"#;
    assert!(value_matches(png, r#"{"FilePath": "dir/image.png"}"#));
    assert!(!value_matches(png, r#"{"FilePath": "other/image.png"}"#));
}

#[test]
fn eventbridge_anything_but_single_string_and_number() {
    assert!(ec2(
        r#"{"detail": {"state": [{"anything-but": "initializing"}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"state": [{"anything-but": "running"}]}}"#
    ));
    assert!(ec2(r#"{"detail": {"x-limit": [{"anything-but": 123}]}}"#));
    assert!(!ec2(
        r#"{"detail": {"x-limit": [{"anything-but": 301.8}]}}"#
    ));
}

#[test]
fn eventbridge_anything_but_lists() {
    assert!(ec2(
        r#"{"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"state": [{"anything-but": ["stopped", "running"]}]}}"#
    ));
    assert!(ec2(
        r#"{"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"c-count": [{"anything-but": [5, 6]}]}}"#
    ));
}

#[test]
fn eventbridge_anything_but_prefix() {
    assert!(ec2(
        r#"{"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}"#
    ));
    assert!(ec2(
        r#"{"detail": {"state": [{"anything-but": {"prefix": ["init", "error"]}}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"state": [{"anything-but": {"prefix": ["init", "run"]}}]}}"#
    ));
    let region = r#"{"Region": [{"anything-but": {"prefix": "us-"}}]}"#;
    assert!(value_matches(region, r#"{"Region": "eu-west-1"}"#));
    assert!(!value_matches(region, r#"{"Region": "us-east-1"}"#));
}

#[test]
fn eventbridge_anything_but_suffix() {
    assert!(ec2(
        r#"{"detail": {"instance-id": [{"anything-but": {"suffix": "1234"}}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"instance-id": [{"anything-but": {"suffix": "0000"}}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"instance-id": [{"anything-but": {"suffix": ["1234", "0000"]}}]}}"#
    ));
    let png = r#"{"FileName": [{"anything-but": {"suffix": ".png"}}]}"#;
    assert!(value_matches(png, r#"{"FileName": "a.jpg"}"#));
    assert!(!value_matches(png, r#"{"FileName": "a.png"}"#));
}

#[test]
fn eventbridge_anything_but_ignore_case() {
    assert!(ec2(
        r#"{"detail": {"state": [{"anything-but": {"equals-ignore-case": "Stopped"}}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"state": [{"anything-but": {"equals-ignore-case": "RUNNING"}}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "Running"]}}]}}"#
    ));
}

#[test]
fn eventbridge_anything_but_wildcard() {
    let p = r#"{"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}"#;
    assert!(value_matches(p, r#"{"FilePath": "/usr/bin/x"}"#));
    assert!(!value_matches(p, r#"{"FilePath": "/usr/lib/x"}"#));
    let list = r#"{"state": [{"anything-but": {"wildcard": ["*/bin/*.jar", "*/bin/*.class"]}}]}"#;
    assert!(value_matches(list, r#"{"state": "/opt/lib/a.jar"}"#));
    assert!(!value_matches(list, r#"{"state": "/opt/bin/a.class"}"#));
}

#[test]
fn anything_but_matches_other_types_but_not_missing() {
    let p = r#"{"x": [{"anything-but": "a"}]}"#;
    assert!(value_matches(p, r#"{"x": 5}"#));
    assert!(value_matches(p, r#"{"x": null}"#));
    assert!(value_matches(p, r#"{"x": true}"#));
    assert!(!value_matches(p, r#"{"y": "b"}"#));
    let numbers = r#"{"x": [{"anything-but": [1, 2]}]}"#;
    assert!(value_matches(numbers, r#"{"x": "1"}"#));
    assert!(!value_matches(numbers, r#"{"x": 1.0}"#));
}

#[test]
fn eventbridge_numeric() {
    assert!(ec2(r#"{"detail": {
          "c-count": [{"numeric": [">", 0, "<=", 5]}],
          "d-count": [{"numeric": ["<", 10]}],
          "x-limit": [{"numeric": ["=", 3.018e2]}]
        }}"#));
    assert!(!ec2(r#"{"detail": {"c-count": [{"numeric": [">", 5]}]}}"#));
    assert!(ec2(r#"{"detail": {"c-count": [{"numeric": [">=", 5]}]}}"#));
    assert!(ec2(r#"{"detail": {"c-count": [{"numeric": ["<=", 5]}]}}"#));
    assert!(!ec2(r#"{"detail": {"c-count": [{"numeric": ["<", 5]}]}}"#));
    assert!(ec2(
        r#"{"detail": {"c-count": [{"numeric": [">=", 5, "<", 6]}]}}"#
    ));
    assert!(value_matches(
        r#"{"t": [{"numeric": ["<", 0]}]}"#,
        r#"{"t": -3.5}"#
    ));
}

#[test]
fn eventbridge_cidr() {
    assert!(ec2(
        r#"{"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}"#
    ));
    assert!(!ec2(
        r#"{"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}"#
    ));
    let v6 = r#"{"ip": [{"cidr": "2001:db8::/32"}]}"#;
    assert!(value_matches(v6, r#"{"ip": "2001:db8:1::5"}"#));
    assert!(!value_matches(v6, r#"{"ip": "2001:db9::5"}"#));
    assert!(!value_matches(v6, r#"{"ip": "10.0.0.1"}"#));
    assert!(!value_matches(v6, r#"{"ip": "not an address"}"#));
}

#[test]
fn eventbridge_exists() {
    assert!(ec2(r#"{"detail": {"c-count": [{"exists": true}]}}"#));
    assert!(!ec2(r#"{"detail": {"c-count": [{"exists": false}]}}"#));
    let absent = r#"{"detail": {"c-count": [{"exists": false}]}}"#;
    assert!(value_matches(
        absent,
        r#"{"detail-type": "EC2 Instance State-change Notification",
            "detail": {"state": ["initializing", "running"]}}"#
    ));
    // "c-count" is not a leaf here, so it does not exist for the pattern language.
    assert!(value_matches(
        absent,
        r#"{"detail": {"state": ["initializing", "running"], "c-count": {"c1": 100}}}"#
    ));
    assert!(!value_matches(
        r#"{"detail": {"c-count": [{"exists": true}]}}"#,
        r#"{"detail": {"c-count": {"c1": 100}}}"#
    ));
    assert!(value_matches(absent, r#"{"detail": {"c-count": []}}"#));
    assert!(value_matches(absent, r#"{"detail": "not an object"}"#));
    assert!(value_matches(absent, r#"{"other": 1}"#));
}

#[test]
fn eventbridge_complex_example() {
    assert!(ec2(r#"{
          "time": [{"prefix": "2017-10-02"}],
          "detail": {
            "state": [{"anything-but": "initializing"}],
            "c-count": [{"numeric": [">", 0, "<=", 5]}],
            "d-count": [{"numeric": ["<", 10]}],
            "x-limit": [{"anything-but": [100, 200, 300]}],
            "source-ip": [{"cidr": "10.0.0.0/8"}]
          }
        }"#));
    assert!(!ec2(
        r#"{"time": [{"prefix": "2017-10-02"}], "detail": {"state": [{"anything-but": "running"}]}}"#
    ));
}

const CLOUDWATCH: &str = r#"{"source": "aws.cloudwatch", "metricName": "CPUUtilization",
    "namespace": "AWS/Lambda", "metricType": "MetricType", "scope": "Other",
    "detail": {"source": "other", "detail-type": "CloudWatch Alarm State Change"}}"#;

#[test]
fn eventbridge_or_normal() {
    let p = r#"{"source": ["aws.cloudwatch"], "$or": [
        {"metricName": ["CPUUtilization", "ReadLatency"]},
        {"namespace": ["AWS/EC2", "AWS/ES"]}]}"#;
    assert!(value_matches(p, CLOUDWATCH));
    assert!(!value_matches(
        p,
        r#"{"source": "aws.cloudwatch", "metricName": "Other", "namespace": "AWS/Lambda"}"#
    ));
    assert!(!value_matches(
        p,
        r#"{"source": "aws.ec2", "metricName": "CPUUtilization"}"#
    ));
}

#[test]
fn eventbridge_or_parallel() {
    let p = r#"{"$or": [
            {"metricName": ["CPUUtilization", "ReadLatency"]},
            {"namespace": ["AWS/EC2", "AWS/ES"]}],
        "detail": {"$or": [
            {"source": ["aws.cloudwatch"]},
            {"detail-type": ["CloudWatch Alarm State Change"]}]}}"#;
    assert!(value_matches(p, CLOUDWATCH));
    assert!(!value_matches(
        p,
        r#"{"metricName": "CPUUtilization", "detail": {"source": "x", "detail-type": "y"}}"#
    ));
}

#[test]
fn eventbridge_or_with_and_inside_and_nested() {
    let p = r#"{"source": ["aws.cloudwatch"], "$or": [
        {"metricName": ["CPUUtilization", "ReadLatency"]},
        {"metricType": ["MetricType"], "namespace": ["AWS/EC2", "AWS/ES"],
         "$or": [{"metricId": [1234]}, {"spaceId": [1000]}]},
        {"scope": ["Service"]}]}"#;
    assert!(value_matches(p, CLOUDWATCH));
    let nested_yes = r#"{"source": "aws.cloudwatch", "metricType": "MetricType",
        "namespace": "AWS/EC2", "spaceId": 1000}"#;
    let nested_no = r#"{"source": "aws.cloudwatch", "metricType": "MetricType",
        "namespace": "AWS/EC2", "spaceId": 1001}"#;
    assert!(value_matches(p, nested_yes));
    assert!(!value_matches(p, nested_no));
    assert!(value_matches(
        p,
        r#"{"source": "aws.cloudwatch", "scope": "Service"}"#
    ));
}

#[test]
fn eventbridge_array_matching_is_array_consistent() {
    let employees = r#"{"employees": [
        {"firstName": "John", "lastName": "Doe"},
        {"firstName": "Anna", "lastName": "Smith"},
        {"firstName": "Peter", "lastName": "Jones"}]}"#;
    assert!(value_matches(
        r#"{"employees": {"firstName": ["Anna"]}}"#,
        employees
    ));
    assert!(!value_matches(
        r#"{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}"#,
        employees
    ));
    assert!(value_matches(
        r#"{"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}"#,
        employees
    ));
    let nested = r#"{"employees": [
        [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}],
        [{"firstName": "Peter", "lastName": "Jones"}]]}"#;
    assert!(value_matches(
        r#"{"employees": {"firstName": ["Peter"]}}"#,
        nested
    ));
    assert!(!value_matches(
        r#"{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}"#,
        nested
    ));
}

#[test]
fn array_consistency_holds_across_or() {
    // event-ruler's README, JSON array matching: `rulesForJSONEvent()` "will refuse to recognize
    // any match in which any two fields are within JSON objects that are in different elements
    // of the same array" — also when one of the fields is inside a `$or` (event-ruler expands
    // `$or`s into rules).
    let split = r#"{"a": {"b": [1]}, "$or": [{"a": {"c": [2]}}, {"z": [0]}]}"#;
    assert!(!value_matches(split, r#"{"a": [{"b": 1}, {"c": 2}]}"#));
    assert!(value_matches(
        split,
        r#"{"a": [{"b": 1}, {"b": 1, "c": 2}]}"#
    ));
    assert!(value_matches(
        split,
        r#"{"a": [{"b": 1}, {"c": 2}], "z": 0}"#
    ));
    assert!(value_matches(split, r#"{"a": {"b": 1, "c": 2}}"#));
    // Nested inside an alternative, deeper down, inside the object, across alternatives.
    let nested = r#"{"a": {"b": [1]}, "$or": [{"q": [5], "$or": [{"a": {"c": [2]}}, {"w": [1]}]}, {"z": [0]}]}"#;
    assert!(!value_matches(
        nested,
        r#"{"q": 5, "a": [{"b": 1}, {"c": 2}]}"#
    ));
    assert!(value_matches(
        nested,
        r#"{"q": 5, "a": [{"b": 1}, {"b": 1, "c": 2}]}"#
    ));
    let deeper = r#"{"a": {"x": {"b": [1]}}, "$or": [{"a": {"x": {"c": [2]}}}, {"z": [0]}]}"#;
    assert!(!value_matches(
        deeper,
        r#"{"a": {"x": [{"b": 1}, {"c": 2}]}}"#
    ));
    assert!(!value_matches(
        deeper,
        r#"{"a": [{"x": {"b": 1}}, {"x": {"c": 2}}]}"#
    ));
    assert!(value_matches(deeper, r#"{"a": [{"x": {"b": 1, "c": 2}}]}"#));
    let inside = r#"{"a": {"b": [1], "$or": [{"c": [2]}, {"d": [3]}]}}"#;
    assert!(!value_matches(inside, r#"{"a": [{"b": 1}, {"c": 2}]}"#));
    assert!(value_matches(
        inside,
        r#"{"a": [{"b": 1, "d": 3}, {"c": 2}]}"#
    ));
    let alternatives = r#"{"a": {"b": [1]}, "$or": [{"a": {"c": [2]}}, {"a": {"d": [3]}}]}"#;
    assert!(value_matches(
        alternatives,
        r#"{"a": [{"b": 1, "c": 2}, {"d": 3}]}"#
    ));
    assert!(!value_matches(
        alternatives,
        r#"{"a": [{"b": 1}, {"c": 2}, {"d": 3}]}"#
    ));
    // A rule list meets scalars, which are within no JSON object: no consistency asked.
    assert!(value_matches(
        r#"{"a": [1], "$or": [{"a": {"b": [2]}}, {"z": [0]}]}"#,
        r#"{"a": [1, {"b": 2}]}"#
    ));
    // At the top of the pattern too, between `value` and a `$or` of `value`s.
    let top =
        r#"{"value": {"a": {"b": [1]}}, "$or": [{"value": {"a": {"c": [2]}}}, {"topic": ["x"]}]}"#;
    assert!(!filter(&[top]).matches(&record(Some(br#"{"a": [{"b": 1}, {"c": 2}]}"#))));
    assert!(filter(&[top]).matches(&record(Some(br#"{"a": [{"b": 1, "c": 2}]}"#))));
}

#[test]
fn rules_match_any_element_of_a_data_array() {
    let p = r#"{"resources": ["arn:b"]}"#;
    assert!(value_matches(p, r#"{"resources": ["arn:a", "arn:b"]}"#));
    assert!(value_matches(p, r#"{"resources": [["arn:a"], ["arn:b"]]}"#));
    assert!(!value_matches(p, r#"{"resources": ["arn:a"]}"#));
    assert!(!value_matches(p, r#"{"resources": []}"#));
    assert!(value_matches(
        r#"{"n": [{"numeric": [">", 2]}]}"#,
        r#"{"n": [1, 3]}"#
    ));
    assert!(value_matches(
        r#"{"r": [{"exists": true}]}"#,
        r#"{"r": [1]}"#
    ));
    assert!(!value_matches(
        r#"{"r": [{"exists": true}]}"#,
        r#"{"r": []}"#
    ));
}

#[test]
fn exists_false_inside_an_array_of_objects_checks_each_element() {
    let p = r#"{"items": {"discount": [{"exists": false}]}}"#;
    assert!(value_matches(
        p,
        r#"{"items": [{"discount": 1}, {"price": 2}]}"#
    ));
    assert!(!value_matches(
        p,
        r#"{"items": [{"discount": 1}, {"discount": 2}]}"#
    ));
}

#[test]
fn deeply_nested_fields_and_escapes() {
    let p = r#"{"a": {"b": {"c": {"d": ["x\"y"]}}}}"#;
    assert!(value_matches(p, r#"{"a": {"b": {"c": {"d": "x\"y"}}}}"#));
    assert!(value_matches(
        p,
        r#"{"a": {"b": {"c": {"d": "x\u0022y"}}}}"#
    ));
    assert!(!value_matches(p, r#"{"a": {"b": {"c": "x\"y"}}}"#));
    assert!(value_matches(r#"{"é t": ["ü"]}"#, r#"{"\u00e9 t": "ü"}"#));
}

// ---- Kafka record specifics ----

#[test]
fn plain_string_values_are_matched_as_one_string() {
    assert!(value_matches(r#"["hello"]"#, "hello"));
    assert!(value_matches(r#"[{"prefix": "ERROR"}]"#, "ERROR disk full"));
    assert!(value_matches(
        r#"[{"wildcard": "*disk*"}]"#,
        "ERROR disk full"
    ));
    assert!(value_matches(r#"[""]"#, ""));
    assert!(
        !value_matches(r#"[{"numeric": [">", 1]}]"#, "42"),
        "a plain string is never a number"
    );
}

#[test]
fn json_scalars_and_arrays_are_plain_strings() {
    assert!(value_matches(r#"["42"]"#, "42"));
    assert!(!value_matches(r#"[42]"#, "42"));
    assert!(value_matches(r#"["\"quoted\""]"#, r#""quoted""#));
    assert!(value_matches(r#"[{"prefix": "[1,"}]"#, "[1, 2]"));
    assert!(value_matches(r#"["{not json"]"#, "{not json"));
}

#[test]
fn format_mismatches_do_not_match() {
    // A JSON object against a plain-string rule list.
    assert!(!value_matches(
        r#"[{"anything-but": ["error"]}]"#,
        r#"{"a": 1}"#
    ));
    assert!(!value_matches(r#"[{"prefix": "{"}]"#, r#"{"a": 1}"#));
    // A plain string against an object pattern, even one asking for absence.
    assert!(!value_matches(r#"{"a": [{"exists": false}]}"#, "plain"));
    assert!(!value_matches(r#"{"a": ["x"]}"#, "plain"));
    // Presence of the value works for any format.
    assert!(value_matches(r#"[{"exists": true}]"#, r#"{"a": 1}"#));
    assert!(value_matches(r#"[{"exists": true}]"#, "plain"));
}

#[test]
fn tombstones_are_null() {
    let tombstone = record(None);
    assert!(filter(&[r#"{"value": [null]}"#]).matches(&tombstone));
    assert!(filter(&[r#"{"value": [{"exists": false}]}"#]).matches(&tombstone));
    assert!(!filter(&[r#"{"value": [{"exists": true}]}"#]).matches(&tombstone));
    assert!(!filter(&[r#"{"value": [{"anything-but": "x"}]}"#]).matches(&tombstone));
    assert!(!filter(&[r#"{"value": ["null"]}"#]).matches(&tombstone));
    assert!(!filter(&[r#"{"value": {"a": [{"exists": false}]}}"#]).matches(&tombstone));
    assert!(!filter(&[r#"{"value": [null]}"#]).matches(&record(Some(b"null"))));
}

#[test]
fn binary_values_only_exist() {
    let binary = record(Some(b"\x00\xff\xfe"));
    assert!(filter(&[r#"{"value": [{"exists": true}]}"#]).matches(&binary));
    assert!(!filter(&[r#"{"value": [{"exists": false}]}"#]).matches(&binary));
    assert!(!filter(&[r#"{"value": [{"anything-but": "x"}]}"#]).matches(&binary));
    assert!(!filter(&[r#"{"value": [{"prefix": ""}]}"#]).matches(&binary));
}

fn keyed(key: Option<&[u8]>) -> RecordView<'_> {
    RecordView {
        key,
        ..record(Some(b"{}"))
    }
}

#[test]
fn keys_match_like_values() {
    let prefix = filter(&[r#"{"key": [{"prefix": "order-"}]}"#]);
    assert!(prefix.matches(&keyed(Some(b"order-42"))));
    assert!(!prefix.matches(&keyed(Some(b"user-42"))));
    assert!(!prefix.matches(&keyed(None)));

    let json = filter(&[r#"{"key": {"tenant": ["acme"]}}"#]);
    assert!(json.matches(&keyed(Some(br#"{"tenant": "acme", "id": 1}"#))));
    assert!(!json.matches(&keyed(Some(br#"{"tenant": "other"}"#))));
    assert!(!json.matches(&keyed(Some(b"acme"))));

    let null_key = filter(&[r#"{"key": [null]}"#]);
    assert!(null_key.matches(&keyed(None)));
    assert!(!null_key.matches(&keyed(Some(b""))));
}

#[test]
fn binary_keys_only_exist() {
    let key = Some(&b"\x80\x81\x82"[..]);
    assert!(filter(&[r#"{"key": [{"exists": true}]}"#]).matches(&keyed(key)));
    assert!(!filter(&[r#"{"key": [{"wildcard": "*"}]}"#]).matches(&keyed(key)));
    assert!(!filter(&[r#"{"key": [{"anything-but": "a"}]}"#]).matches(&keyed(key)));
}

#[test]
fn key_and_value_conditions_combine() {
    let f = filter(&[r#"{"key": ["k1"], "value": {"status": ["ok"]}}"#]);
    let r = RecordView {
        key: Some(b"k1"),
        ..record(Some(br#"{"status": "ok"}"#))
    };
    assert!(f.matches(&r));
    let r = RecordView {
        key: Some(b"k2"),
        ..r
    };
    assert!(!f.matches(&r));
}

fn with_headers(headers: &[Header]) -> RecordView<'_> {
    RecordView {
        headers,
        ..record(Some(b"payload"))
    }
}

#[test]
fn headers_match_by_name_as_strings() {
    let headers = [
        Header::new("source", "web"),
        Header::new("trace", "00-abc-01"),
        Header::new("tag", "a"),
        Header::new("tag", "b"),
        Header::new("empty", ""),
        Header::new("raw", vec![0xff, 0x00]),
    ];
    let r = with_headers(&headers);
    let m = |p: &str| filter(&[p]).matches(&r);
    assert!(m(r#"{"headers": {"source": ["web"]}}"#));
    assert!(!m(r#"{"headers": {"source": ["mobile"]}}"#));
    assert!(m(r#"{"headers": {"trace": [{"prefix": "00-"}]}}"#));
    assert!(
        m(r#"{"headers": {"tag": ["b"]}}"#),
        "a repeated header matches on any value"
    );
    assert!(m(r#"{"headers": {"tag": [{"anything-but": "a"}]}}"#));
    assert!(m(r#"{"headers": {"empty": [""]}}"#));
    assert!(m(r#"{"headers": {"missing": [{"exists": false}]}}"#));
    assert!(!m(r#"{"headers": {"missing": [{"anything-but": "x"}]}}"#));
    assert!(m(r#"{"headers": {"raw": [{"exists": true}]}}"#));
    assert!(!m(r#"{"headers": {"raw": [{"anything-but": "x"}]}}"#));
    assert!(m(r#"{"headers": {"source": ["web"], "tag": ["a"]}}"#));
    assert!(!m(r#"{"headers": {"source": ["web"], "tag": ["c"]}}"#));
    assert!(m(
        r#"{"headers": {"$or": [{"source": ["mobile"]}, {"tag": ["a"]}]}}"#
    ));
    assert!(
        !m(r#"{"headers": {"Source": ["web"]}}"#),
        "header names are case-sensitive"
    );
}

#[test]
fn topic_and_partition_patterns() {
    let r = record(Some(b"x"));
    let m = |p: &str| filter(&[p]).matches(&r);
    assert!(m(r#"{"topic": ["orders"]}"#));
    assert!(m(r#"{"topic": [{"prefix": "ord"}]}"#));
    assert!(!m(r#"{"topic": [{"suffix": ".dlq"}]}"#));
    assert!(m(r#"{"partition": [1, 3]}"#));
    assert!(!m(r#"{"partition": ["3"]}"#));
    assert!(m(r#"{"partition": [{"numeric": [">=", 2, "<", 4]}]}"#));
    assert!(!m(r#"{"partition": [{"numeric": [">", 3]}]}"#));
    assert!(m(r#"{"partition": [{"exists": true}]}"#));
    assert!(m(
        r#"{"topic": ["orders"], "partition": [3], "value": ["x"]}"#
    ));
    assert!(!m(r#"{"topic": ["orders"], "partition": [4]}"#));
    assert!(m(r#"{"$or": [{"topic": ["other"]}, {"partition": [3]}]}"#));
}

#[test]
fn patterns_are_ored() {
    let f = filter(&[
        r#"{"value": {"level": ["ERROR"]}}"#,
        r#"{"value": {"level": ["WARN"], "code": [{"numeric": [">=", 500]}]}}"#,
        r#"{"topic": ["audit"]}"#,
    ]);
    let rec = |v: &'static [u8]| record(Some(v));
    assert!(f.matches(&rec(br#"{"level": "ERROR"}"#)));
    assert!(f.matches(&rec(br#"{"level": "WARN", "code": 503}"#)));
    assert!(!f.matches(&rec(br#"{"level": "WARN", "code": 200}"#)));
    assert!(!f.matches(&rec(br#"{"level": "INFO"}"#)));
    let audit = RecordView {
        topic: "audit",
        ..rec(b"anything")
    };
    assert!(f.matches(&audit));
    assert_eq!(f.len(), 3);
}

#[test]
fn an_empty_filter_matches_everything() {
    let f = filter(&[]);
    assert!(f.is_empty());
    assert!(f.matches(&record(None)));
    assert!(f.matches(&record(Some(b"\xff"))));
    assert!(Filter::default().matches(&record(Some(b"{}"))));
    assert!(!f.reads_value() && !f.reads_key());
}

#[test]
fn one_pattern_can_look_at_every_part_of_the_record() {
    let headers = [Header::new("h", "v")];
    let view = RecordView {
        topic: "t",
        partition: 2,
        key: Some(b"k"),
        value: Some(br#"{"a": 1}"#),
        headers: &headers,
    };
    let f = filter(&[
        r#"{"key": ["k"], "value": {"a": [1]}, "headers": {"h": ["v"]}, "topic": ["t"], "partition": [2]}"#,
    ]);
    assert!(f.matches(&view));
}

// ---- cost: what is read, and how often ----

fn reads() -> usize {
    doc::READS.with(|r| r.get())
}

#[test]
fn metadata_only_filters_never_read_key_or_value() {
    let f = filter(&[
        r#"{"topic": [{"prefix": "ord"}]}"#,
        r#"{"headers": {"source": ["web"]}, "partition": [{"numeric": [">", 0]}]}"#,
    ]);
    assert!(!f.reads_value() && !f.reads_key());
    let headers = [Header::new("source", "web")];
    let before = reads();
    for _ in 0..1000 {
        assert!(f.matches(&with_headers(&headers)));
        assert!(f.matches(&record(Some(b"\xff not json"))));
    }
    assert_eq!(reads(), before);
}

#[test]
fn the_value_is_read_at_most_once_per_record_whatever_the_pattern_count() {
    let f = filter(&[
        r#"{"value": {"a": ["1"]}}"#,
        r#"{"value": {"b": ["2"]}}"#,
        r#"{"value": [{"prefix": "x"}]}"#,
        r#"{"value": {"c": {"d": [{"exists": true}]}}}"#,
        r#"{"value": {"$or": [{"e": [1]}, {"f": [2]}]}}"#,
    ]);
    assert!(f.reads_value() && !f.reads_key());
    let before = reads();
    assert!(!f.matches(&record(Some(br#"{"z": 0}"#))));
    assert_eq!(reads(), before + 1);
    assert!(f.matches(&record(Some(br#"{"f": 2}"#))));
    assert_eq!(reads(), before + 2);
}

#[test]
fn the_value_is_not_read_when_a_cheaper_field_already_failed() {
    let f = filter(&[r#"{"topic": ["payments"], "value": {"a": [1]}}"#]);
    let before = reads();
    assert!(!f.matches(&record(Some(br#"{"a": 1}"#))));
    assert_eq!(reads(), before);
}

#[test]
fn large_values_are_matched_on_the_fields_named() {
    let mut big = String::from(r#"{"noise": ["#);
    for i in 0..5_000 {
        big.push_str(&format!(r#"{{"i": {i}, "s": "filler text\n"}},"#));
    }
    big.push_str(r#"{}], "status": "ok", "nested": {"deep": {"code": 503}}}"#);
    assert!(value_matches(
        r#"{"status": ["ok"], "nested": {"deep": {"code": [{"numeric": [">=", 500]}]}}}"#,
        &big
    ));
    assert!(!value_matches(r#"{"noise": {"i": [5000]}}"#, &big));
    assert!(value_matches(r#"{"noise": {"i": [4999]}}"#, &big));
}

// ---- rejected patterns: exact messages ----

#[test]
fn too_many_patterns() {
    let p = r#"{"topic": ["t"]}"#;
    assert_eq!(
        error(&[p; 6]),
        "6 filter patterns given; a mapping takes at most 5"
    );
    assert!(Filter::parse_with_limit(&[p; 10], 10).is_ok());
    assert_eq!(
        Filter::parse_with_limit(&[p; 3], 2).err(),
        Some(FilterError::TooManyPatterns { count: 3, max: 2 })
    );
}

#[test]
fn invalid_json_names_the_pattern_and_position() {
    assert_eq!(
        error(&[r#"{"topic": ["t"]}"#, r#"{"value": "#]),
        "filter[1] is not valid JSON: EOF while parsing a value at line 1 column 10"
    );
    assert_eq!(
        Filter::parse(&["{\n  \"value\": [1,]\n}"]).err(),
        Some(FilterError::Json {
            index: 0,
            line: 2,
            column: 15,
            message: "trailing comma".to_owned(),
        })
    );
}

#[test]
fn numeric_errors() {
    assert_eq!(
        error(&[
            r#"{"topic": ["t"]}"#,
            r#"{"value": {"code": [{"numeric": [">"]}]}}"#
        ]),
        r#"filter[1] at value.code: "numeric" needs an operator and a number, like [">", 0] or [">", 0, "<=", 5]"#
    );
    assert_eq!(
        invalid(r#"{"value": {"code": [{"numeric": 5}]}}"#),
        r#"filter[0] at value.code: "numeric" needs an operator and a number, like [">", 0] or [">", 0, "<=", 5]"#
    );
    assert_eq!(
        invalid(r#"{"value": {"code": [{"numeric": [">", "5"]}]}}"#),
        r#"filter[0] at value.code: "numeric" needs an operator and a number, like [">", 0] or [">", 0, "<=", 5]"#
    );
    assert_eq!(
        invalid(r#"{"value": {"code": [{"numeric": []}]}}"#),
        r#"filter[0] at value.code: "numeric" needs an operator and a number, like [">", 0]"#
    );
    assert_eq!(
        invalid(r#"{"value": {"code": [{"numeric": ["=>", 5]}]}}"#),
        r#"filter[0] at value.code: unknown numeric operator "=>"; expected =, <, <=, > or >="#
    );
    assert_eq!(
        invalid(r#"{"value": {"code": [{"numeric": ["<", 5, ">", 1]}]}}"#),
        r#"filter[0] at value.code: a "numeric" range starts with ">" or ">=", found "<""#
    );
    assert_eq!(
        invalid(r#"{"value": {"code": [{"numeric": [">", 1, ">=", 5]}]}}"#),
        r#"filter[0] at value.code: a "numeric" range ends with "<" or "<=", found ">=""#
    );
    assert_eq!(
        invalid(r#"{"value": {"code": [{"numeric": [">", 5, "<", 3]}]}}"#),
        r#"filter[0] at value.code: "numeric" range is empty: no number is > 5 and < 3"#
    );
    assert_eq!(
        invalid(r#"{"value": {"code": [{"numeric": [">", 5, "<=", 5]}]}}"#),
        r#"filter[0] at value.code: "numeric" range is empty: no number is > 5 and <= 5"#
    );
    assert_eq!(
        invalid(r#"{"value": {"code": [{"numeric": [">", 0, "<", 5, "<", 6]}]}}"#),
        r#"filter[0] at value.code: "numeric" takes at most two comparisons, like [">", 0, "<=", 5]"#
    );
    assert!(Filter::parse(&[r#"{"value": {"c": [{"numeric": [">=", 5, "<=", 5]}]}}"#]).is_ok());
}

#[test]
fn operator_errors() {
    assert_eq!(
        invalid(r#"{"value": {"a": [{"prefx": "x"}]}}"#),
        "filter[0] at value.a: unknown operator \"prefx\"; expected one of prefix, suffix, \
         equals-ignore-case, wildcard, anything-but, numeric, exists, cidr"
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"prefix": "x", "suffix": "y"}]}}"#),
        r#"filter[0] at value.a: a rule object needs exactly one operator, found 2: "prefix", "suffix""#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{}]}}"#),
        "filter[0] at value.a: a rule object needs exactly one operator, found 0: {}"
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"prefix": 5}]}}"#),
        r#"filter[0] at value.a: "prefix" needs a string, found a number"#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"suffix": {"ignore-case": "x"}}]}}"#),
        r#"filter[0] at value.a: "suffix" takes a string or {"equals-ignore-case": "..."}, found an object with "ignore-case""#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"prefix": {"equals-ignore-case": 1}}]}}"#),
        r#"filter[0] at value.a: "prefix" with "equals-ignore-case" needs a string, found a number"#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"exists": "yes"}]}}"#),
        r#"filter[0] at value.a: "exists" must be true or false, found a string"#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"wildcard": "a**"}]}}"#),
        r#"filter[0] at value.a: "wildcard" has consecutive '*' at position 1; use a single '*'"#
    );
    assert_eq!(
        invalid(r#"{"value": {"ip": [{"cidr": "10.0.0.0/40"}]}}"#),
        r#"filter[0] at value.ip: "cidr" prefix length must be a number from 0 to 32; got "40""#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [["x"]]}}"#),
        "filter[0] at value.a: a rule list cannot contain another list"
    );
}

#[test]
fn anything_but_errors() {
    assert_eq!(
        invalid(r#"{"value": {"a": [{"anything-but": ["x", 1]}]}}"#),
        r#"filter[0] at value.a: "anything-but" needs a non-empty list of only strings or only numbers"#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"anything-but": []}]}}"#),
        r#"filter[0] at value.a: "anything-but" needs a non-empty list of only strings or only numbers"#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"anything-but": null}]}}"#),
        r#"filter[0] at value.a: "anything-but" needs a string, a number or a list of them, found null"#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"anything-but": {"prefix": ""}}]}}"#),
        r#"filter[0] at value.a: "anything-but" "prefix" cannot be an empty string"#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"anything-but": {"numeric": [">", 1]}}]}}"#),
        r#"filter[0] at value.a: "anything-but" "numeric" needs a string or a non-empty list of strings, found a list"#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"anything-but": {"exists": "x"}}]}}"#),
        r#"filter[0] at value.a: "anything-but" takes one of "prefix", "suffix", "equals-ignore-case", "wildcard"; found "exists""#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"anything-but": {"suffix": [1]}}]}}"#),
        r#"filter[0] at value.a: "anything-but" "suffix" needs a string or a non-empty list of strings, found a list"#
    );
    assert_eq!(
        invalid(r#"{"value": {"a": [{"anything-but": {"wildcard": "x\\y"}}]}}"#),
        r#"filter[0] at value.a: "wildcard" has an invalid escape at position 1; only \* and \\ are allowed"#
    );
}

#[test]
fn structure_errors() {
    assert_eq!(
        invalid(r#"["x"]"#),
        r#"filter[0]: a pattern must be a JSON object, like {"value": {"status": ["ok"]}}"#
    );
    assert_eq!(invalid("{}"), "filter[0]: empty objects are not allowed");
    assert_eq!(
        invalid(r#"{"value": {}}"#),
        "filter[0] at value: empty objects are not allowed"
    );
    assert_eq!(
        invalid(r#"{"value": []}"#),
        "filter[0] at value: an empty list of rules matches nothing and is not allowed"
    );
    assert_eq!(
        invalid(r#"{"value": "x"}"#),
        r#"filter[0] at value: expected a list of rules (plain-string match) or an object (JSON match), found "x""#
    );
    assert_eq!(
        invalid(r#"{"value": {"status": "ok"}}"#),
        r#"filter[0] at value.status: expected a list of rules, like ["ok"], or a nested object, found "ok""#
    );
    assert_eq!(
        invalid(r#"{"offset": [1]}"#),
        r#"filter[0] at offset: unknown record field "offset"; patterns can match value, key, headers, topic, partition"#
    );
    assert_eq!(
        invalid(r#"{"topic": "orders"}"#),
        r#"filter[0] at topic: expected a list of rules, like ["orders"], found "orders""#
    );
    assert_eq!(
        invalid(r#"{"partition": {"a": [1]}}"#),
        "filter[0] at partition: expected a list of rules, like [0, 1], found an object"
    );
    assert_eq!(
        invalid(r#"{"headers": ["x"]}"#),
        r#"filter[0] at headers: "headers" must be an object of header names, like {"source": ["web"]}"#
    );
    assert_eq!(
        invalid(r#"{"headers": {"trace": {"id": ["x"]}}}"#),
        r#"filter[0] at headers.trace: header values are strings: use a list of rules, like ["web"], not an object"#
    );
}

#[test]
fn or_errors() {
    assert_eq!(
        invalid(r#"{"value": {"$or": [{"a": [1]}]}}"#),
        r#"filter[0] at value.$or: "$or" needs a list of at least two objects, like [{"a": [1]}, {"b": [2]}]"#
    );
    assert_eq!(
        invalid(r#"{"$or": {"topic": ["a"]}}"#),
        r#"filter[0] at $or: "$or" needs a list of at least two objects, like [{"a": [1]}, {"b": [2]}]"#
    );
    assert_eq!(
        invalid(r#"{"value": {"$or": [{"a": [1]}, "b"]}}"#),
        r#"filter[0] at value.$or[1]: "$or" needs a list of at least two objects, like [{"a": [1]}, {"b": [2]}]"#
    );
    assert_eq!(
        invalid(r#"{"value": {"$or": [{"numeric": 123}, {"prefix": "abc"}]}}"#),
        r#"filter[0] at value.$or[0]: "numeric" is an operator; each "$or" entry is an object of fields, like {"a": [{"numeric": ...}]}"#
    );
    assert_eq!(
        invalid(r#"{"$or": [{"topic": ["a"]}, {"value": {"x": [{"exists": 1}]}}]}"#),
        r#"filter[0] at $or[1].value.x: "exists" must be true or false, found a number"#
    );
}

#[test]
fn field_names_that_look_like_operators_are_fields_outside_or() {
    assert!(value_matches(r#"{"prefix": ["x"]}"#, r#"{"prefix": "x"}"#));
    assert!(value_matches(
        r#"{"numeric": {"exists": ["y"]}}"#,
        r#"{"numeric": {"exists": "y"}}"#
    ));
}

#[test]
fn log_etl_drops_successful_entries() {
    // The log-etl example drops entries whose `returnCode` is 0; the same rule as a filter.
    let f = filter(&[r#"{"value": {"returnCode": [{"anything-but": 0}]}}"#]);
    let failed = br#"{"version":1,"componentName":"trade","timestamp":1595944295,"eventId":9128499,"returnValue":-1,"returnCode":101103,"returnMessage":"return has no deal return error","data":[],"seqId":"u3Becr8iz*"}"#;
    let ok = br#"{"timestamp": 1595944300, "returnCode": 0, "returnMessage": "ok"}"#;
    assert!(f.matches(&record(Some(failed))));
    assert!(!f.matches(&record(Some(ok))));
    assert!(!f.matches(&record(Some(b"not json at all"))));
}

#[test]
fn a_filter_can_be_shared_across_partition_workers() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Filter>();
    shareable::<FilterError>();
}
