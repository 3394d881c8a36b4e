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
fn exact_numbers_compare_representations() {
    assert!(Num::U(300).same(Num::U(300)));
    assert!(!Num::U(300).same(Num::F(300.0)));
    assert!(Num::F(300.0).same(Num::F(3.0e2)));
    assert!(Num::I(-1).same(Num::I(-1)));
    assert!(!Num::I(-1).same(Num::U(1)));
}
