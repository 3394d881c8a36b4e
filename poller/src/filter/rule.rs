//! Leaf rules: one entry of a pattern's rule list (`"ok"`, `{"prefix": "us-"}`, ...), compiled
//! once and tested against one scalar of the record.

use super::json::{Map, Number, Value};
use std::net::IpAddr;

/// A scalar of the record a rule is tested against.
#[derive(Debug, Clone, Copy)]
pub(super) enum Leaf<'a> {
    /// JSON `null`.
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// A JSON number, with its text when an exact number rule may meet it (`None`: the
    /// partition, whose text is its decimal digits).
    Num(Num, Option<&'a str>),
    /// A JSON string, a plain-string value or key, a header value, the topic.
    Str(&'a str),
    /// Bytes that are not UTF-8 (a header value): present, but no rule other than `exists` sees it.
    Binary,
}

/// A JSON number's value, for `numeric` and `anything-but` (exact rules compare the text).
#[derive(Debug, Clone, Copy)]
pub(super) enum Num {
    /// A non-negative integer.
    U(u64),
    /// A negative integer.
    I(i64),
    /// A number with a fraction or an exponent, or an integer past 64 bits.
    F(f64),
}

impl Num {
    /// The value of a JSON number's text, as serde_json reads it.
    pub(super) fn of_text(text: &str) -> Num {
        if let Ok(u) = text.parse::<u64>() {
            Num::U(u)
        } else if let Ok(i) = text.parse::<i64>() {
            Num::of_i64(i)
        } else {
            Num::F(text.parse().unwrap_or(f64::NAN))
        }
    }

    pub(super) fn of_i64(i: i64) -> Num {
        u64::try_from(i).map_or(Num::I(i), Num::U)
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::U(u) => u as f64,
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }

    /// Whether `text` (a JSON number) is this integer's decimal spelling: the text of a number
    /// read without it (the partition).
    fn is_spelled(self, text: &str) -> bool {
        text != "-0"
            && match self {
                Num::U(u) => text.parse::<u64>() == Ok(u),
                Num::I(i) => text.parse::<i64>() == Ok(i),
                Num::F(_) => false,
            }
    }
}

/// A literal of an exact-match rule.
#[derive(Debug, Clone)]
pub(super) enum Literal {
    Null,
    Bool(bool),
    /// A number as written: it matches the same text only (Lambda: "300, 300.0, and 3.0e2 are
    /// not considered equal").
    Num(Box<str>),
    Str(Box<str>),
}

/// One compiled rule. Rules of one list are ORed.
#[derive(Debug, Clone)]
pub(super) enum Rule {
    /// `"x"`, `5`, `true`, `null`: equal value and type.
    Exact(Literal),
    /// `{"prefix": "x"}`.
    Prefix(Box<str>),
    /// `{"prefix": {"equals-ignore-case": "x"}}` (stored case-folded).
    PrefixIgnoreCase(Box<str>),
    /// `{"suffix": "x"}`.
    Suffix(Box<str>),
    /// `{"suffix": {"equals-ignore-case": "x"}}` (stored case-folded).
    SuffixIgnoreCase(Box<str>),
    /// `{"equals-ignore-case": "x"}` (stored case-folded).
    EqualsIgnoreCase(Box<str>),
    /// `{"wildcard": "a*b"}`.
    Wildcard(Wildcard),
    /// `{"anything-but": ...}`.
    AnythingBut(AnythingBut),
    /// `{"numeric": [...]}`.
    Numeric(Range),
    /// `{"exists": bool}`: answered from the number of leaves, never per leaf.
    Exists(bool),
    /// `{"cidr": "10.0.0.0/24"}`.
    Cidr(Cidr),
}

/// The forms of `anything-but`. Following EventBridge, a leaf of another type than the listed
/// values (a number against a string list, `null`, a boolean) is "anything but" them: it matches.
#[derive(Debug, Clone)]
pub(super) enum AnythingBut {
    Strings(Box<[Box<str>]>),
    Numbers(Box<[f64]>),
    Prefixes(Box<[Box<str>]>),
    Suffixes(Box<[Box<str>]>),
    /// Case-folded.
    IgnoreCase(Box<[Box<str>]>),
    Wildcards(Box<[Wildcard]>),
}

/// A numeric interval; each bound is `(value, inclusive)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

impl Range {
    fn contains(self, x: f64) -> bool {
        let above = match self.lower {
            None => true,
            Some((b, true)) => x >= b,
            Some((b, false)) => x > b,
        };
        let below = match self.upper {
            None => true,
            Some((b, true)) => x <= b,
            Some((b, false)) => x < b,
        };
        above && below
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cidr {
    v4: bool,
    network: u128,
    mask: u128,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr, String> {
        let Some((ip, bits)) = s.split_once('/') else {
            return Err(format!(
                "\"cidr\" needs an address and a prefix length, like \"10.0.0.0/24\"; got {s:?}"
            ));
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("\"cidr\" has an invalid IP address: {ip:?}"))?;
        let (v4, max, addr) = match ip {
            IpAddr::V4(a) => (true, 32, u128::from(u32::from(a))),
            IpAddr::V6(a) => (false, 128, u128::from(a)),
        };
        let bits: u32 = match bits.parse() {
            Ok(b) if b <= max => b,
            _ => {
                return Err(format!(
                    "\"cidr\" prefix length must be a number from 0 to {max}; got {bits:?}"
                ));
            }
        };
        let width_mask = if max == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        let mask = if bits == 0 {
            0
        } else {
            (width_mask << (max - bits)) & width_mask
        };
        Ok(Cidr {
            v4,
            network: addr & mask,
            mask,
        })
    }

    fn contains(self, s: &str) -> bool {
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if self.v4 => u128::from(u32::from(a)) & self.mask == self.network,
            Ok(IpAddr::V6(a)) if !self.v4 => u128::from(a) & self.mask == self.network,
            _ => false,
        }
    }
}

/// A wildcard pattern split at its unescaped `*`s: `parts.len() - 1` stars.
#[derive(Debug, Clone)]
pub(super) struct Wildcard {
    parts: Box<[Box<str>]>,
}

impl Wildcard {
    /// EventBridge's syntax: `*` matches any run of characters, `\*` is a literal star, `\\` a
    /// literal backslash; any other escape and two stars in a row are errors.
    fn parse(s: &str) -> Result<Wildcard, String> {
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = s.char_indices().peekable();
        while let Some((pos, c)) = chars.next() {
            match c {
                '*' => {
                    if matches!(chars.peek(), Some((_, '*'))) {
                        return Err(format!(
                            "\"wildcard\" has consecutive '*' at position {pos}; use a single '*'"
                        ));
                    }
                    parts.push(std::mem::take(&mut current).into_boxed_str());
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '\\'))) => current.push(e),
                    _ => {
                        return Err(format!(
                            "\"wildcard\" has an invalid escape at position {pos}; only \\* and \\\\ are allowed"
                        ));
                    }
                },
                c => current.push(c),
            }
        }
        parts.push(current.into_boxed_str());
        Ok(Wildcard {
            parts: parts.into_boxed_slice(),
        })
    }

    fn matches(&self, s: &str) -> bool {
        let (first, rest) = match self.parts.split_first() {
            Some(split) => split,
            None => return s.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return s == &**first;
        };
        if s.len() < first.len() + last.len() || !s.starts_with(&**first) || !s.ends_with(&**last) {
            return false;
        }
        // Leftmost-first placement of each middle part is optimal for '*'-only globs.
        let mut window = &s[first.len()..s.len() - last.len()];
        for part in middle {
            match window.find(&**part) {
                Some(at) => window = &window[at + part.len()..],
                None => return false,
            }
        }
        true
    }
}

fn fold(s: &str) -> Box<str> {
    s.chars().flat_map(char::to_lowercase).collect()
}

fn eq_ignore_case(value: &str, folded: &str) -> bool {
    value
        .chars()
        .flat_map(char::to_lowercase)
        .eq(folded.chars())
}

fn starts_with_ignore_case(value: &str, folded: &str) -> bool {
    let mut v = value.chars().flat_map(char::to_lowercase);
    folded.chars().all(|p| v.next() == Some(p))
}

fn ends_with_ignore_case(value: &str, folded: &str) -> bool {
    let mut v = value.chars().rev().flat_map(|c| c.to_lowercase().rev());
    folded.chars().rev().all(|p| v.next() == Some(p))
}

impl Rule {
    /// Whether this rule holds for one leaf. `Exists` is decided by the caller.
    pub(super) fn matches(&self, leaf: Leaf<'_>) -> bool {
        match (self, leaf) {
            (Rule::Exists(_), _) | (_, Leaf::Binary) => false,
            (Rule::Exact(lit), leaf) => match (lit, leaf) {
                (Literal::Null, Leaf::Null) => true,
                (Literal::Bool(a), Leaf::Bool(b)) => *a == b,
                (Literal::Num(a), Leaf::Num(_, Some(b))) => **a == *b,
                (Literal::Num(a), Leaf::Num(n, None)) => n.is_spelled(a),
                (Literal::Str(a), Leaf::Str(b)) => **a == *b,
                _ => false,
            },
            (Rule::Numeric(range), Leaf::Num(n, _)) => range.contains(n.as_f64()),
            (Rule::AnythingBut(but), leaf) => but.matches(leaf),
            (rule, Leaf::Str(s)) => match rule {
                Rule::Prefix(p) => s.starts_with(&**p),
                Rule::PrefixIgnoreCase(p) => starts_with_ignore_case(s, p),
                Rule::Suffix(p) => s.ends_with(&**p),
                Rule::SuffixIgnoreCase(p) => ends_with_ignore_case(s, p),
                Rule::EqualsIgnoreCase(p) => eq_ignore_case(s, p),
                Rule::Wildcard(w) => w.matches(s),
                Rule::Cidr(c) => c.contains(s),
                _ => false,
            },
            _ => false,
        }
    }
}

impl AnythingBut {
    fn matches(&self, leaf: Leaf<'_>) -> bool {
        match (self, leaf) {
            (AnythingBut::Numbers(ns), Leaf::Num(n, _)) => {
                let x = n.as_f64();
                !ns.contains(&x)
            }
            (AnythingBut::Numbers(_), _) => true,
            (but, Leaf::Str(s)) => match but {
                AnythingBut::Strings(v) => !v.iter().any(|x| **x == *s),
                AnythingBut::Prefixes(v) => !v.iter().any(|x| s.starts_with(&**x)),
                AnythingBut::Suffixes(v) => !v.iter().any(|x| s.ends_with(&**x)),
                AnythingBut::IgnoreCase(v) => !v.iter().any(|x| eq_ignore_case(s, x)),
                AnythingBut::Wildcards(v) => !v.iter().any(|w| w.matches(s)),
                AnythingBut::Numbers(_) => true,
            },
            _ => true,
        }
    }
}

/// The operators a rule object may use, for error messages.
pub(super) const OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
];

/// Compiles one entry of a rule list. The error is the problem alone; the caller adds where.
pub(super) fn parse(v: &Value) -> Result<Rule, String> {
    match v {
        Value::Null => Ok(Rule::Exact(Literal::Null)),
        Value::Bool(b) => Ok(Rule::Exact(Literal::Bool(*b))),
        Value::Number(n) => Ok(Rule::Exact(Literal::Num(n.text().into()))),
        Value::String(s) => Ok(Rule::Exact(Literal::Str(s.as_str().into()))),
        Value::Array(_) => Err("a rule list cannot contain another list".to_owned()),
        Value::Object(m) => {
            let mut ops = m.iter();
            let (Some((op, arg)), None) = (ops.next(), ops.next()) else {
                return Err(format!(
                    "a rule object needs exactly one operator, found {}: {}",
                    m.len(),
                    quoted_keys(m)
                ));
            };
            parse_operator(op, arg)
        }
    }
}

fn quoted_keys(m: &Map<String, Value>) -> String {
    if m.is_empty() {
        return "{}".to_owned();
    }
    m.keys()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn string_arg<'v>(op: &str, arg: &'v Value) -> Result<&'v str, String> {
    arg.as_str()
        .ok_or_else(|| format!("{op:?} needs a string, found {}", type_name(arg)))
}

/// `{"prefix": {"equals-ignore-case": "x"}}` and the suffix twin.
fn ignore_case_arg<'v>(op: &str, m: &'v Map<String, Value>) -> Result<&'v str, String> {
    match (m.len(), m.get("equals-ignore-case")) {
        (1, Some(v)) => v.as_str().ok_or_else(|| {
            format!(
                "{op:?} with \"equals-ignore-case\" needs a string, found {}",
                type_name(v)
            )
        }),
        _ => Err(format!(
            "{op:?} takes a string or {{\"equals-ignore-case\": \"...\"}}, found an object with {}",
            quoted_keys(m)
        )),
    }
}

fn parse_operator(op: &str, arg: &Value) -> Result<Rule, String> {
    match op {
        "prefix" => match arg {
            Value::Object(m) => Ok(Rule::PrefixIgnoreCase(fold(ignore_case_arg(op, m)?))),
            _ => Ok(Rule::Prefix(string_arg(op, arg)?.into())),
        },
        "suffix" => match arg {
            Value::Object(m) => Ok(Rule::SuffixIgnoreCase(fold(ignore_case_arg(op, m)?))),
            _ => Ok(Rule::Suffix(string_arg(op, arg)?.into())),
        },
        "equals-ignore-case" => Ok(Rule::EqualsIgnoreCase(fold(string_arg(op, arg)?))),
        "wildcard" => Ok(Rule::Wildcard(Wildcard::parse(string_arg(op, arg)?)?)),
        "cidr" => Ok(Rule::Cidr(Cidr::parse(string_arg(op, arg)?)?)),
        "exists" => match arg {
            Value::Bool(b) => Ok(Rule::Exists(*b)),
            _ => Err(format!(
                "\"exists\" must be true or false, found {}",
                type_name(arg)
            )),
        },
        "numeric" => parse_numeric(arg).map(Rule::Numeric),
        "anything-but" => parse_anything_but(arg).map(Rule::AnythingBut),
        _ => Err(format!(
            "unknown operator {op:?}; expected one of {}",
            OPERATORS.join(", ")
        )),
    }
}

/// The double a number of a `numeric` or `anything-but` rule is compared as. A number that no
/// double is, as written, is refused rather than rounded: EventBridge documents numeric matching
/// "with 15 digits of precision", and event-ruler, its engine, refuses it ("Cannot compare
/// number"). So any number of at most 15 significant digits is taken (but a subnormal, where a
/// double holds fewer), a longer one only when it is how a double is written
/// (`0.30000000000000004`, not `9007199254740993`).
fn comparable(op: &str, n: &Number) -> Result<f64, String> {
    let x = n.as_f64();
    let double = spelling(x);
    if x.is_finite() && decimal(n.text()).is_some_and(|d| Some(d) == decimal(&double)) {
        Ok(x)
    } else {
        Err(format!(
            "{op:?} cannot compare {} exactly: numbers are compared as doubles, and the nearest \
             double is {double} (numeric matching has 15 digits of precision)",
            n.text()
        ))
    }
}

/// How a double is written: its shortest decimal, with at least two significant digits (the
/// nearest two-digit decimal where one digit would do: `4.9e-324`, not `5e-324`), as event-ruler
/// (Java) writes the doubles it compares.
fn spelling(x: f64) -> String {
    let shortest = format!("{x:e}");
    if shortest.contains('.') {
        shortest
    } else {
        format!("{x:.1e}")
    }
}

/// The value of a JSON number's text as (negative, significant digits, power of ten of the last
/// digit); zero is `(false, "", 0)`. `None` past the exponents an `i64` holds.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let trimmed = digits.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let exponent = exponent
        .checked_sub(i64::try_from(frac.len()).ok()?)?
        .checked_add(i64::try_from(trimmed.len() - significant.len()).ok()?)?;
    Some((negative, significant.to_owned(), exponent))
}

const NUMERIC_SHAPE: &str = "\"numeric\" needs an operator and a number";

fn parse_numeric(arg: &Value) -> Result<Range, String> {
    let Value::Array(items) = arg else {
        return Err(format!(
            "{NUMERIC_SHAPE}, like [\">\", 0] or [\">\", 0, \"<=\", 5]"
        ));
    };
    let mut terms = Vec::with_capacity(2);
    for pair in items.chunks(2) {
        let [Value::String(op), Value::Number(n)] = pair else {
            return Err(format!(
                "{NUMERIC_SHAPE}, like [\">\", 0] or [\">\", 0, \"<=\", 5]"
            ));
        };
        terms.push((op.as_str(), comparable("numeric", n)?));
    }
    let check_op = |op: &str| match op {
        "=" | "<" | "<=" | ">" | ">=" => Ok(()),
        _ => Err(format!(
            "unknown numeric operator {op:?}; expected =, <, <=, > or >="
        )),
    };
    match terms.as_slice() {
        [] => Err(format!("{NUMERIC_SHAPE}, like [\">\", 0]")),
        [(op, x)] => {
            check_op(op)?;
            let (lower, upper) = match *op {
                "=" => (Some((*x, true)), Some((*x, true))),
                ">" => (Some((*x, false)), None),
                ">=" => (Some((*x, true)), None),
                "<" => (None, Some((*x, false))),
                _ => (None, Some((*x, true))),
            };
            Ok(Range { lower, upper })
        }
        [(lo_op, lo), (hi_op, hi)] => {
            check_op(lo_op)?;
            check_op(hi_op)?;
            // One end of the range: `(bound, inclusive)` for `exclusive` or `inclusive`, the
            // two operators allowed at the end that `end` ("starts", "ends") names.
            let end = |op: &str, x: f64, exclusive: &str, inclusive: &str, end: &str| {
                if op == exclusive || op == inclusive {
                    Ok((x, op == inclusive))
                } else {
                    Err(format!(
                        "a \"numeric\" range {end} with \"{exclusive}\" or \"{inclusive}\", found {op:?}"
                    ))
                }
            };
            let lower = end(lo_op, *lo, ">", ">=", "starts")?;
            let upper = end(hi_op, *hi, "<", "<=", "ends")?;
            if lo > hi || (lo == hi && !(lower.1 && upper.1)) {
                return Err(format!(
                    "\"numeric\" range is empty: no number is {lo_op} {lo} and {hi_op} {hi}"
                ));
            }
            Ok(Range {
                lower: Some(lower),
                upper: Some(upper),
            })
        }
        _ => {
            Err("\"numeric\" takes at most two comparisons, like [\">\", 0, \"<=\", 5]".to_owned())
        }
    }
}

fn parse_anything_but(arg: &Value) -> Result<AnythingBut, String> {
    match arg {
        Value::String(s) => Ok(AnythingBut::Strings(Box::new([s.as_str().into()]))),
        Value::Number(n) => Ok(AnythingBut::Numbers(Box::new([comparable(
            "anything-but",
            n,
        )?]))),
        Value::Array(items) => {
            if items.iter().all(Value::is_string) && !items.is_empty() {
                Ok(AnythingBut::Strings(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(Into::into)
                        .collect(),
                ))
            } else if items.iter().all(Value::is_number) && !items.is_empty() {
                Ok(AnythingBut::Numbers(
                    items
                        .iter()
                        .filter_map(Value::as_number)
                        .map(|n| comparable("anything-but", n))
                        .collect::<Result<_, _>>()?,
                ))
            } else {
                Err(
                    "\"anything-but\" needs a non-empty list of only strings or only numbers"
                        .to_owned(),
                )
            }
        }
        Value::Object(m) => {
            let mut ops = m.iter();
            let (Some((op, inner)), None) = (ops.next(), ops.next()) else {
                return Err(format!(
                    "\"anything-but\" takes one of \"prefix\", \"suffix\", \"equals-ignore-case\", \"wildcard\"; found {}",
                    quoted_keys(m)
                ));
            };
            let strings = anything_but_strings(op, inner)?;
            match op.as_str() {
                "prefix" | "suffix" if strings.iter().any(|s| s.is_empty()) => {
                    Err(format!("\"anything-but\" {op:?} cannot be an empty string"))
                }
                "prefix" => Ok(AnythingBut::Prefixes(strings)),
                "suffix" => Ok(AnythingBut::Suffixes(strings)),
                "equals-ignore-case" => Ok(AnythingBut::IgnoreCase(
                    strings.iter().map(|s| fold(s)).collect(),
                )),
                "wildcard" => Ok(AnythingBut::Wildcards(
                    strings
                        .iter()
                        .map(|s| Wildcard::parse(s))
                        .collect::<Result<_, _>>()?,
                )),
                _ => Err(format!(
                    "\"anything-but\" takes one of \"prefix\", \"suffix\", \"equals-ignore-case\", \"wildcard\"; found {op:?}"
                )),
            }
        }
        Value::Null | Value::Bool(_) => Err(format!(
            "\"anything-but\" needs a string, a number or a list of them, found {}",
            type_name(arg)
        )),
    }
}

/// The argument of `anything-but`'s inner operator: a string or a non-empty list of strings.
fn anything_but_strings(op: &str, v: &Value) -> Result<Box<[Box<str>]>, String> {
    match v {
        Value::String(s) => Ok(Box::new([s.as_str().into()])),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => Ok(items
            .iter()
            .filter_map(Value::as_str)
            .map(Into::into)
            .collect()),
        _ => Err(format!(
            "\"anything-but\" {op:?} needs a string or a non-empty list of strings, found {}",
            type_name(v)
        )),
    }
}

#[cfg(test)]
mod tests;
