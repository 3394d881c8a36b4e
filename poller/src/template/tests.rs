use super::*;

fn apply(template: &str, value: &str) -> String {
    let t = match InputTemplate::parse(template) {
        Ok(t) => t,
        Err(e) => panic!("{template} should compile: {e}"),
    };
    match t.apply(value.as_bytes()) {
        Ok(out) => String::from_utf8(out).expect("templates produce UTF-8"),
        Err(e) => panic!("{value} should apply: {e}"),
    }
}

fn parse_error(template: &str) -> String {
    match InputTemplate::parse(template) {
        Ok(_) => panic!("{template} should be rejected"),
        Err(e) => e.to_string(),
    }
}

/// The log-etl example's record shape.
const LOG_RECORD: &str = r#"{"eventId": "7f3a", "returnCode": 503, "level": "ERROR",
    "service": {"name": "checkout", "region": "eu-west-1"},
    "data": [{"path": "/pay", "ms": 812.50}, {"path": "/cart", "ms": 3}],
    "message": "upstream \"payments\" timed out"}"#;

/// The record of the log-etl example (`examples/log-etl`).
const LOG_ETL_RECORD: &str = r#"{"version":1,"componentName":"trade","timestamp":1595944295,"eventId":9128499,"returnValue":-1,"returnCode":101103,"returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]","data":[],"seqId":"u3Becr8iz*"}"#;

#[test]
fn log_etl_shape() {
    assert_eq!(
        apply(
            r#"{"id": "$.eventId", "code": "$.returnCode", "first": "$.data[0]", "component": "$.componentName", "message": "$.returnMessage"}"#,
            LOG_ETL_RECORD,
        ),
        r#"{"id":9128499,"code":101103,"first":null,"component":"trade","message":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]"}"#
    );
    let all = apply(r#"{"all": "$", "source": "kafka"}"#, LOG_ETL_RECORD);
    assert_eq!(
        all,
        format!(r#"{{"all":{LOG_ETL_RECORD},"source":"kafka"}}"#)
    );
}

#[test]
fn selected_values_keep_their_exact_text() {
    let out = apply(
        r#"{"id": "$.eventId", "code": "$.returnCode", "first": "$.data[0]", "all": "$"}"#,
        LOG_RECORD,
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("output is JSON");
    assert_eq!(v["id"], "7f3a");
    assert_eq!(v["code"], 503);
    assert_eq!(
        v["all"],
        serde_json::from_str::<serde_json::Value>(LOG_RECORD).expect("valid")
    );
    assert!(
        out.starts_with(
            r#"{"id":"7f3a","code":503,"first":{"path": "/pay", "ms": 812.50},"all":{"#
        )
    );
}

#[test]
fn keys_keep_template_order_and_literals_are_copied() {
    assert_eq!(
        apply(
            r#"{"z": "$.level", "a": 1.5, "m": [true, null, "text"], "k": {"x": "lit"}}"#,
            LOG_RECORD
        ),
        r#"{"z":"ERROR","a":1.5,"m":[true,null,"text"],"k":{"x":"lit"}}"#
    );
}

#[test]
fn nested_templates_and_arrays() {
    assert_eq!(
        apply(
            r#"{"svc": {"name": "$.service.name", "where": ["$.service.region", "$.data[1].path"]},
                "timings": ["$.data[0].ms", "$.data[1].ms"], "msg": "$.message"}"#,
            LOG_RECORD
        ),
        r#"{"svc":{"name":"checkout","where":["eu-west-1","/cart"]},"timings":[812.50,3],"msg":"upstream \"payments\" timed out"}"#
    );
}

#[test]
fn overlapping_paths_are_all_filled() {
    assert_eq!(
        apply(
            r#"{"svc": "$.service", "name": "$.service.name", "again": "$.service.name", "d": "$.data", "d1": "$.data[1]", "ms": "$.data[1].ms"}"#,
            LOG_RECORD
        ),
        r#"{"svc":{"name": "checkout", "region": "eu-west-1"},"name":"checkout","again":"checkout","d":[{"path": "/pay", "ms": 812.50}, {"path": "/cart", "ms": 3}],"d1":{"path": "/cart", "ms": 3},"ms":3}"#
    );
}

#[test]
fn missing_paths_yield_null() {
    assert_eq!(
        apply(
            r#"{"a": "$.nope", "b": "$.data[9]", "c": "$.level.x", "d": "$.service[0]", "e": "$.data.path"}"#,
            LOG_RECORD
        ),
        r#"{"a":null,"b":null,"c":null,"d":null,"e":null}"#
    );
}

#[test]
fn whole_value_and_scalar_templates() {
    assert_eq!(apply(r#""$""#, " [1, 2] "), "[1, 2]");
    assert_eq!(apply(r#""$.a""#, r#"{"a": "x"}"#), r#""x""#);
    assert_eq!(apply(r#""$[1]""#, "[10, 20]"), "20");
    assert_eq!(apply(r#"{"v": "$"}"#, "42"), r#"{"v":42}"#);
    assert_eq!(apply(r#"{"v": "$.a"}"#, "42"), r#"{"v":null}"#);
    assert_eq!(
        apply(r#"{"fixed": true}"#, r#"{"a": 1}"#),
        r#"{"fixed":true}"#
    );
}

#[test]
fn quoted_names_and_escaped_keys() {
    let value = r#"{"a.b": 1, "x y": {"[z]": 2}, "detail-type": "t", "q\"k": 3}"#;
    assert_eq!(
        apply(
            r#"{"1": "$['a.b']", "2": "$[\"x y\"]['[z]']", "3": "$.detail-type", "4": "$['q\"k']"}"#,
            value
        ),
        r#"{"1":1,"2":2,"3":"t","4":3}"#
    );
}

#[test]
fn dollar_dollar_is_a_literal_dollar() {
    assert_eq!(
        apply(r#"{"price": "$$5", "p": "$$.a"}"#, r#"{"a": 1}"#),
        r#"{"price":"$5","p":"$.a"}"#
    );
}

#[test]
fn repeated_keys_in_the_value_keep_the_last() {
    assert_eq!(
        apply(r#"{"a": "$.a"}"#, r#"{"a": 1, "a": 2}"#),
        r#"{"a":2}"#
    );
}

#[test]
fn many_paths_spill_to_the_heap() {
    // The items of 40 paths `f0`..`f39`, joined with commas.
    let forty = |item: fn(usize) -> String| (0..40).map(item).collect::<Vec<_>>().join(",");
    let template = format!("[{}]", forty(|i| format!("\"$.f{i}\"")));
    let value = format!("{{{}}}", forty(|i| format!("\"f{i}\": {i}")));
    let expected = format!("[{}]", forty(|i| i.to_string()));
    assert_eq!(apply(&template, &value), expected);
}

#[test]
fn apply_into_appends_and_leaves_the_buffer_alone_on_error() {
    let t = InputTemplate::parse(r#"{"a": "$.a"}"#).expect("valid");
    let mut buf = b"prefix:".to_vec();
    t.apply_into(br#"{"a": [1]}"#, &mut buf).expect("applies");
    assert_eq!(buf, br#"prefix:{"a":[1]}"#);
    let before = buf.clone();
    assert!(t.apply_into(b"not json", &mut buf).is_err());
    assert_eq!(buf, before);
}

#[test]
fn non_json_values_are_a_typed_error() {
    let t = InputTemplate::parse(r#"{"a": "$.a"}"#).expect("valid");
    let err = t.apply(b"plain text").expect_err("not JSON");
    assert_eq!(
        err,
        TemplateError::ValueNotJson {
            line: 1,
            column: 1,
            message: "expected value".to_owned()
        }
    );
    assert_eq!(
        err.to_string(),
        "record value is not JSON, so the input template cannot apply: expected value at line 1 column 1"
    );
    assert!(matches!(
        t.apply(br#"{"a": 1} trailing"#),
        Err(TemplateError::ValueNotJson { column: 10, .. })
    ));
    assert!(matches!(
        t.apply(br#"{"a": 1"#),
        Err(TemplateError::ValueNotJson { .. })
    ));
    assert!(matches!(
        t.apply(b"{\"a\": \"\xff\"}"),
        Err(TemplateError::ValueNotJson { .. })
    ));
    assert!(matches!(
        t.apply(b""),
        Err(TemplateError::ValueNotJson { .. })
    ));
}

#[test]
fn a_template_can_be_shared_across_partition_workers() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<InputTemplate>();
    shareable::<TemplateError>();
}

#[test]
fn literal_only_templates_still_require_a_json_value() {
    let t = InputTemplate::parse(r#"{"fixed": 1}"#).expect("valid");
    assert!(t.apply(b"{oops").is_err());
}

#[test]
fn invalid_templates_are_rejected_with_the_place_and_position() {
    assert_eq!(
        parse_error(r#"{"a": "$.x"#),
        "input template is not valid JSON: EOF while parsing a string at line 1 column 10"
    );
    assert_eq!(
        parse_error(r#"{"id": "$eventId"}"#),
        r#"input template at id: invalid path "$eventId": expected '.' or '[' after '$' (write "$$" for a literal string starting with '$') at position 1"#
    );
    assert_eq!(
        parse_error(r#"{"a": {"b": ["ok", "$.a..b"]}}"#),
        r#"input template at a.b[1]: invalid path "$.a..b": empty field name at position 4"#
    );
    assert_eq!(
        parse_error(r#"{"a": "$.data[x]"}"#),
        r#"input template at a: invalid path "$.data[x]": expected an index like [0] or a quoted name like ['name'] inside [] at position 7"#
    );
    assert_eq!(
        parse_error(r#"{"a": "$.data[0"}"#),
        r#"input template at a: invalid path "$.data[0": '[' is never closed at position 6"#
    );
    assert_eq!(
        parse_error(r#"{"a": "$.data[]"}"#),
        r#"input template at a: invalid path "$.data[]": expected an index like [0] or a quoted name like ['name'] inside [] at position 7"#
    );
    assert_eq!(
        parse_error(r#"{"a": "$.data[0]x"}"#),
        r#"input template at a: invalid path "$.data[0]x": expected '.' or '[', found 'x' at position 9"#
    );
    assert_eq!(
        parse_error(r#"{"a": "$."}"#),
        r#"input template at a: invalid path "$.": empty field name at position 2"#
    );
    assert_eq!(
        parse_error(r#""$['unclosed]""#),
        r#"input template: invalid path "$['unclosed]": quoted name is never closed at position 2"#
    );
    assert_eq!(
        parse_error(r#""$[99999999999999999999999]""#),
        r#"input template: invalid path "$[99999999999999999999999]": index 99999999999999999999999 is too large at position 2"#
    );
}
