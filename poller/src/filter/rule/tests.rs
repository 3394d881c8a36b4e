use super::*;

#[test]
fn wildcard_matches_like_a_glob() {
    let w = |p: &str| Wildcard::parse(p).unwrap();
    assert!(w("Simple*Service").matches("SimpleQueueService"));
    assert!(w("Simple*Service").matches("SimpleService"));
    assert!(!w("Simple*Service").matches("SimpleServices"));
    assert!(w("*").matches(""));
    assert!(w("*.png").matches("a.png"));
    assert!(w("dir/*.png").matches("dir/sub/x.png"));
    assert!(!w("a*a").matches("a"));
    assert!(w("a*b*c").matches("abbbc"));
    assert!(!w("a*b*c").matches("acb"));
    assert!(w("*ab*ab*").matches("xabab"));
    assert!(w("no-star").matches("no-star"));
    assert!(!w("no-star").matches("no-stars"));
    assert!(w(r"a\*b").matches("a*b"));
    assert!(!w(r"a\*b").matches("axb"));
    assert!(w(r"a\\*").matches(r"a\anything"));
    assert!(w("é*ü").matches("éxyzü"));
}

#[test]
fn wildcard_syntax_errors_name_the_position() {
    assert_eq!(
        Wildcard::parse("a**b").unwrap_err(),
        "\"wildcard\" has consecutive '*' at position 1; use a single '*'"
    );
    assert_eq!(
        Wildcard::parse(r"ab\c").unwrap_err(),
        r#""wildcard" has an invalid escape at position 2; only \* and \\ are allowed"#
    );
    assert!(Wildcard::parse(r"trailing\").is_err());
}

#[test]
fn cidr_covers_ipv4_and_ipv6_networks() {
    let c = |p: &str| Cidr::parse(p).unwrap();
    assert!(c("10.0.0.0/24").contains("10.0.0.255"));
    assert!(!c("10.0.0.0/24").contains("10.0.1.0"));
    assert!(c("10.0.0.7/32").contains("10.0.0.7"));
    assert!(!c("10.0.0.7/32").contains("10.0.0.8"));
    assert!(c("0.0.0.0/0").contains("192.168.1.1"));
    assert!(!c("0.0.0.0/0").contains("::1"));
    assert!(c("2001:db8::/32").contains("2001:db8:ffff::1"));
    assert!(!c("2001:db8::/32").contains("2001:db9::1"));
    assert!(!c("2001:db8::/32").contains("10.0.0.1"));
    assert!(c("::/0").contains("fe80::1"));
    assert!(!c("10.0.0.0/8").contains("not an ip"));
}

#[test]
fn cidr_errors_say_what_is_wrong() {
    for (cidr, error) in [
        (
            "10.0.0.0",
            "\"cidr\" needs an address and a prefix length, like \"10.0.0.0/24\"; got \"10.0.0.0\"",
        ),
        ("10.0.0/8", "\"cidr\" has an invalid IP address: \"10.0.0\""),
        (
            "10.0.0.0/33",
            "\"cidr\" prefix length must be a number from 0 to 32; got \"33\"",
        ),
        (
            "::/129",
            "\"cidr\" prefix length must be a number from 0 to 128; got \"129\"",
        ),
    ] {
        assert_eq!(Cidr::parse(cidr).unwrap_err(), error);
    }
}

#[test]
fn ignore_case_comparisons_fold_unicode() {
    assert!(eq_ignore_case("ALICE", &fold("alice")));
    assert!(starts_with_ignore_case("EventBridge", &fold("eventb")));
    assert!(!starts_with_ignore_case("Ev", &fold("eventb")));
    assert!(ends_with_ignore_case("EventBridge", &fold("TBRIDGE")));
    assert!(!ends_with_ignore_case("bridge", &fold("tbridge")));
    assert!(eq_ignore_case("ÉCOLE", &fold("école")));
}

#[test]
fn exact_numbers_compare_their_text() {
    // Lambda, filter rule syntax: "300, 300.0, and 3.0e2 are not considered equal".
    let exact = |text: &str| Rule::Exact(Literal::Num(text.into()));
    let data = |text| Leaf::Num(Num::of_text(text), Some(text));
    assert!(exact("300").matches(data("300")));
    assert!(!exact("300").matches(data("300.0")));
    assert!(!exact("300.0").matches(data("3.0e2")));
    assert!(!exact("1.5").matches(data("1.50")));
    assert!(!exact("5e-324").matches(data("4.9e-324")));
    assert!(exact("5e-324").matches(data("5e-324")));
    // The partition has no text: its decimal digits.
    let partition = |p: i64| Leaf::Num(Num::of_i64(p), None);
    assert!(exact("7").matches(partition(7)));
    assert!(!exact("7.0").matches(partition(7)));
    assert!(!exact("-0").matches(partition(0)));
    assert!(exact("-1").matches(partition(-1)));
}

#[test]
fn numeric_rules_take_the_numbers_a_double_is() {
    let n = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    let take = |text: &str| match n(text) {
        Value::Number(num) => comparable("numeric", &num),
        _ => unreachable!(),
    };
    for ok in [
        "0",
        "-0",
        "1.50",
        "3.0e2",
        "1E3",
        "1e+3",
        "123456789012345",
        "0.1",
        "1e-310",
        "0.30000000000000004",
        "9007199254740992",
        "1.7976931348623157e308",
        "2.2250738585072014e-308",
        "4.9e-324",
    ] {
        assert!(take(ok).is_ok(), "{ok} should be taken");
    }
    for refused in [
        "9007199254740993",
        "18446744073709551615",
        "-9223372036854775808",
        "5e-324",
        "1e-400",
        "0.30000000000000001",
    ] {
        assert!(take(refused).is_err(), "{refused} should be refused");
    }
    assert_eq!(
        take("9007199254740993").unwrap_err(),
        "\"numeric\" cannot compare 9007199254740993 exactly: numbers are compared as doubles, \
         and the nearest double is 9.007199254740992e15 (numeric matching has 15 digits of \
         precision)"
    );
}

#[test]
fn decimals_compare_by_value() {
    assert_eq!(decimal("300"), decimal("3.0e2"));
    assert_eq!(decimal("-0.0"), decimal("0"));
    assert_eq!(decimal("0.00120"), Some((false, "12".to_owned(), -4)));
    assert_ne!(decimal("1.5"), decimal("-1.5"));
    assert_eq!(decimal("1e99999999999999999999"), None);
}
