//! The poller's filter judged by AWS's own engine: event-ruler, the open-source engine of the
//! EventBridge pattern language that Lambda's `FilterCriteria` use (Maven Central's
//! `software.amazon.event.ruler:event-ruler`, run by tests/event-ruler: built once into the
//! cache by its build.sh, then one JVM judges every case through stdin).
//!
//! Thousands of (pattern, value) pairs are generated from a fixed seed: every operator the poller
//! supports (exact strings, numbers, booleans and null, `prefix`, `suffix` and their
//! `equals-ignore-case` forms, `equals-ignore-case`, `wildcard`, `anything-but` with values,
//! lists, `prefix`, `suffix`, `equals-ignore-case` and `wildcard`, `numeric` comparisons and
//! ranges, `exists`, `cidr`), nested objects, `$or`, arrays in the data (objects in arrays, arrays
//! in arrays), numbers spelled several ways (`0`, `-0`, `1e3`, `5e-324`, integers past 2^53),
//! unicode and JSON escapes (`\u00e9`, surrogate pairs, `\/`) in names and strings.
//!
//! The poller filters on the record's decoded value: the pattern `{"value": P}` against a record
//! whose value is the JSON object V is given to event-ruler as the pattern `{"value": P}` and the
//! event `{"value": V}`; a value that is plain text T (not JSON: the poller matches it as one
//! string, as the native trigger does) as the event `{"value": "T"}`. The cases where the poller
//! follows Kafka rather than EventBridge (an object pattern against a plain-text value, a rule
//! list against a JSON object value, tombstones, bytes that are not UTF-8) have no event-ruler
//! counterpart and are not generated.
//!
//! Patterns at the edges of the language ([`EDGE_PATTERNS`], valid or not) are judged too, and
//! so are the repros of the disagreements fixed in the poller ([`FIXED`]).
//!
//! Both verdicts must agree, a refused pattern counting as agreement only when both refuse it.
//! Every known disagreement is listed in [`KNOWN`] (and in tests/event-ruler/README.md): what
//! differs, the AWS documentation that settles it and for which side (or that none does), a
//! minimal repro that must still disagree exactly as listed, and which generated disagreements
//! it accounts for. The test passes only when exactly those disagree: a disagreement no entry
//! accounts for fails it (the first 20 are printed), and so does an entry whose repro no longer
//! disagrees. The number of cases compared is printed (`--nocapture`).
//!
//! Exploring: FILTER_ORACLE_SEED=N generates other cases; FILTER_ORACLE_MINIMIZE=N shrinks the
//! first N unaccounted disagreements of each kind to minimal repros and prints them.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kafka_lambda_poller::filter::{Filter, RecordView};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The generator's seed: the cases are the same on every run.
const SEED: u64 = 0x6b61_666b_615f_6c61;
/// Cases whose value is a JSON object, matched by an object pattern.
const OBJECT_CASES: usize = 16_000;
/// Cases whose value is plain text, matched by a rule list.
const TEXT_CASES: usize = 3_000;

// ---------------------------------------------------------------------------------------------
// A deterministic generator (SplitMix64: no dependency whose stream could change).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with `percent`% probability.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index drawn with the given weights.
    fn weighted(&mut self, weights: &[usize]) -> usize {
        let mut x = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        unreachable!()
    }
}

// ---------------------------------------------------------------------------------------------
// JSON, kept as written: numbers as their text, objects as ordered fields (a repeated name is
// possible), rendered with random but valid escapes.

#[derive(Clone, Debug)]
enum V {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<V>),
    Obj(Vec<(String, V)>),
}

fn s(x: &str) -> V {
    V::Str(x.to_owned())
}

fn n(x: &str) -> V {
    V::Num(x.to_owned())
}

fn obj(fields: Vec<(&str, V)>) -> V {
    V::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// JSON text; with `rng`, some characters of strings escaped at random (see [`render_str`]).
fn render(v: &V, rng: Option<&mut Rng>) -> String {
    let mut out = String::new();
    let mut rng = rng;
    render_into(v, &mut rng, &mut out);
    out
}

fn render_into(v: &V, rng: &mut Option<&mut Rng>, out: &mut String) {
    match v {
        V::Null => out.push_str("null"),
        V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        V::Num(t) => out.push_str(t),
        V::Str(t) => render_str(t, rng, out),
        V::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(item, rng, out);
            }
            out.push(']');
        }
        V::Obj(fields) => {
            out.push('{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_str(k, rng, out);
                out.push_str(": ");
                render_into(item, rng, out);
            }
            out.push('}');
        }
    }
}

/// A JSON string literal. With `rng`, some characters are escaped as `\uXXXX` (surrogate pairs
/// past the BMP) or `\/`, at random, so pattern and data spell the same string differently.
fn render_str(t: &str, rng: &mut Option<&mut Rng>, out: &mut String) {
    out.push('"');
    for c in t.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            '/' if rng.as_mut().is_some_and(|r| r.chance(30)) => out.push_str("\\/"),
            c if rng.as_mut().is_some_and(|r| r.chance(8)) => {
                let upper = rng.as_mut().is_some_and(|r| r.chance(50));
                for unit in c.encode_utf16(&mut [0; 2]) {
                    if upper {
                        write!(out, "\\u{unit:04X}").unwrap();
                    } else {
                        write!(out, "\\u{unit:04x}").unwrap();
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Pools.

const NAMES: &[&str] = &["a", "b", "c", "d", "A", "é", "x y", "q\"t", "ü😀", "sl/sh"];

const STRINGS: &[&str] = &[
    "",
    "a",
    "A",
    "ab",
    "Ab",
    "AB",
    "abc",
    "b",
    "ba",
    " a",
    "é",
    "É",
    "e\u{301}",
    "straße",
    "STRASSE",
    "ß",
    "ẞ",
    "İ",
    "i\u{307}",
    "ı",
    "I",
    "\u{212a}",
    "k",
    "K",
    "ǅ",
    "ǆ",
    "Σ",
    "σ",
    "ς",
    "ΑΣ",
    "ας",
    "😀",
    "a😀b",
    "a*b",
    "a\\b",
    "*",
    "\\",
    "\\*",
    "\"",
    "line\nbreak",
    "tab\t",
    "\u{0}",
    "\u{7f}",
    "\u{ffff}",
    "\u{2028}",
    "5",
    "1e3",
    "true",
    "null",
    "ÀB",
    "àb",
    "ﬀ",
    "FF",
    "Ǆ",
];

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "-0.0",
    "1",
    "-1",
    "1.5",
    "-1.5",
    "2",
    "10",
    "100",
    "300",
    "300.0",
    "3.018e2",
    "1e3",
    "1E3",
    "1e+3",
    "1000",
    "1000.0",
    "5e-324",
    "4.9e-324",
    "2.2250738585072014e-308",
    "1e308",
    "1.7976931348623157e308",
    "9007199254740992",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "123456789012345678901234567890",
    "0.1",
    "0.30000000000000004",
    "5e9",
    "5000000000",
    "5000000001",
    "-5e9",
    "-5000000001",
    "2.5e-7",
    "1e-6",
    "0.000001",
    "0.0000001",
    "1.0000000000000002",
    "123.456789",
    "-1.5e-10",
];

const IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.255",
    "10.0.1.7",
    "192.168.1.20",
    "0.0.0.0",
    "255.255.255.255",
    "2001:db8::1",
    "2001:db8:0:0:0:0:0:ff",
    "2001:DB8::1",
    "::1",
    "fe80::1",
    "::",
    "::ffff:10.0.0.1",
    "10.0.0.01",
    "1.2.3",
    "10.0.0.256",
];

/// Characters of random strings, so prefixes, suffixes and wildcards meet.
const ALPHABET: &[char] = &[
    'a', 'b', 'A', 'B', 'é', 'É', 'ß', '*', '\\', '😀', 'İ', '\u{212a}', 'k', 'σ', 'Σ', 'ς', ' ',
];

/// Plain-text record values (never JSON).
const TEXTS: &[&str] = &[
    "",
    "hello",
    "Hello World",
    "HELLO",
    "hello world",
    "é😀",
    "a*b",
    "{broken",
    "[1, 2",
    "line\nbreak",
    "straße",
    "10.0.0.1",
    "2001:db8::1",
    "Error: 500",
    "ABC-123",
];

// ---------------------------------------------------------------------------------------------
// Values (the data).

fn random_string(rng: &mut Rng) -> String {
    let len = rng.below(6);
    (0..len).map(|_| *rng.pick(ALPHABET)).collect()
}

fn gen_string(rng: &mut Rng) -> String {
    match rng.weighted(&[50, 35, 15]) {
        0 => (*rng.pick(STRINGS)).to_owned(),
        1 => random_string(rng),
        _ => (*rng.pick(IPS)).to_owned(),
    }
}

fn pool_number(rng: &mut Rng) -> V {
    V::Num((*rng.pick(NUMBERS)).to_owned())
}

fn gen_scalar(rng: &mut Rng) -> V {
    match rng.weighted(&[45, 35, 10, 10]) {
        0 => V::Str(gen_string(rng)),
        1 => pool_number(rng),
        2 => V::Bool(rng.chance(50)),
        _ => V::Null,
    }
}

fn gen_value(rng: &mut Rng, depth: usize) -> V {
    match rng.weighted(&[70, 15, 15]) {
        1 if depth < 3 => V::Obj(gen_fields(rng, depth + 1)),
        2 if depth < 3 => gen_array(rng, depth),
        _ => gen_scalar(rng),
    }
}

fn gen_array(rng: &mut Rng, depth: usize) -> V {
    let len = rng.below(5);
    let objects = rng.chance(35);
    V::Arr(
        (0..len)
            .map(|_| {
                if objects && depth < 3 && rng.chance(80) {
                    V::Obj(gen_fields(rng, depth + 1))
                } else if depth < 3 && rng.chance(5) {
                    gen_array(rng, depth + 1)
                } else {
                    gen_scalar(rng)
                }
            })
            .collect(),
    )
}

fn gen_fields(rng: &mut Rng, depth: usize) -> Vec<(String, V)> {
    let count = 1 + rng.below(4);
    let mut fields: Vec<(String, V)> = Vec::new();
    while fields.len() < count {
        let name = *rng.pick(NAMES);
        // Now and then a repeated name: the last one wins, in serde_json as in Jackson.
        if fields.iter().any(|(k, _)| k == name) && !rng.chance(3) {
            continue;
        }
        fields.push((name.to_owned(), gen_value(rng, depth)));
    }
    fields
}

/// The scalars a rule list at `v` is tested against (arrays looked through).
fn leaves<'v>(v: &'v V, out: &mut Vec<&'v V>) {
    match v {
        V::Arr(items) => items.iter().for_each(|i| leaves(i, out)),
        V::Obj(_) => {}
        scalar => out.push(scalar),
    }
}

/// The objects an object pattern at `v` is tested against.
fn objects(v: &V) -> Vec<&[(String, V)]> {
    match v {
        V::Obj(fields) => vec![fields.as_slice()],
        V::Arr(items) => items.iter().flat_map(objects).collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Patterns, drawn near the data so that both verdicts occur.

/// An object pattern for the object `fields` (empty: a missing object).
fn obj_pattern(rng: &mut Rng, fields: &[(String, V)], depth: usize) -> V {
    let count = 1 + rng.weighted(&[65, 25, 10]);
    let mut out: Vec<(String, V)> = Vec::new();
    for _ in 0..count {
        let (name, value) = if !fields.is_empty() && rng.chance(80) {
            let (k, v) = rng.pick(fields);
            (k.clone(), Some(v))
        } else {
            ((*rng.pick(NAMES)).to_owned(), None)
        };
        if out.iter().any(|(k, _)| *k == name) {
            continue;
        }
        // The last of a repeated name is the one both engines read.
        let value = value.map(|_| {
            &fields
                .iter()
                .rev()
                .find(|(k, _)| *k == name)
                .expect("a field of the object")
                .1
        });
        out.push((name, field_pattern(rng, value, depth)));
    }
    if depth < 3 && rng.chance(8) {
        let alternatives = 2 + rng.below(2);
        let alts = (0..alternatives)
            .map(|_| obj_pattern(rng, fields, depth + 1))
            .collect();
        out.push(("$or".to_owned(), V::Arr(alts)));
    }
    V::Obj(out)
}

fn field_pattern(rng: &mut Rng, value: Option<&V>, depth: usize) -> V {
    let objs = value.map(objects).unwrap_or_default();
    if depth < 3 && !objs.is_empty() && rng.chance(65) {
        let fields = *rng.pick(&objs);
        return obj_pattern(rng, fields, depth + 1);
    }
    if depth < 3 && value.is_none() && rng.chance(10) {
        return obj_pattern(rng, &[], depth + 1);
    }
    let mut found = Vec::new();
    if let Some(v) = value {
        leaves(v, &mut found);
    }
    rule_list(rng, &found)
}

fn rule_list(rng: &mut Rng, leaves: &[&V]) -> V {
    let count = 1 + rng.weighted(&[80, 15, 5]);
    V::Arr(
        (0..count)
            .map(|_| {
                let leaf = if !leaves.is_empty() && rng.chance(80) {
                    Some(*rng.pick(leaves))
                } else {
                    None
                };
                rule(rng, leaf)
            })
            .collect(),
    )
}

/// The leaf's string, or a random one.
fn text_of(rng: &mut Rng, leaf: Option<&V>) -> String {
    match leaf {
        Some(V::Str(t)) if rng.chance(85) => t.clone(),
        _ => gen_string(rng),
    }
}

/// The leaf's number, or a pool's.
fn number_of(rng: &mut Rng, leaf: Option<&V>) -> String {
    match leaf {
        Some(V::Num(t)) if rng.chance(85) => t.clone(),
        _ => (*rng.pick(NUMBERS)).to_owned(),
    }
}

/// Letters changed to upper or lower case at random.
fn mangle_case(rng: &mut Rng, t: &str) -> String {
    let mut out = String::new();
    for c in t.chars() {
        match rng.below(3) {
            0 => out.extend(c.to_uppercase()),
            1 => out.extend(c.to_lowercase()),
            _ => out.push(c),
        }
    }
    out
}

fn prefix_of(rng: &mut Rng, t: &str) -> String {
    let len = t.chars().count();
    let k = rng.below(len + 1);
    t.chars().take(k).collect()
}

fn suffix_of(rng: &mut Rng, t: &str) -> String {
    let len = t.chars().count();
    let k = rng.below(len + 1);
    t.chars().skip(k).collect()
}

/// The same number spelled another way (or itself), or a neighbour.
fn respell(rng: &mut Rng, t: &str) -> String {
    let Ok(x) = t.parse::<f64>() else {
        return t.to_owned();
    };
    let mut options = vec![t.to_owned(), format!("{x:e}"), format!("{x}")];
    if x.fract() == 0.0 && x.abs() < 1e15 {
        options.push(format!("{x:.1}"));
    }
    for near in [x + 1.0, x - 1.0, x / 2.0, -x, x * 10.0] {
        if near.is_finite() {
            options.push(format!("{near}"));
        }
    }
    rng.pick(&options).clone()
}

/// A wildcard that the string may match: runs of characters replaced by `*`, literal `*` and
/// `\` escaped.
fn wildcard_of(rng: &mut Rng, t: &str) -> String {
    let mut out = String::new();
    let mut star = false;
    if rng.chance(20) {
        out.push('*');
        star = true;
    }
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !star && rng.chance(25) {
            out.push('*');
            star = true;
            i += rng.below(3);
            continue;
        }
        match chars[i] {
            '*' => out.push_str("\\*"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
        star = false;
        i += 1;
    }
    if !star && rng.chance(20) {
        out.push('*');
    }
    out
}

fn cidr_of(rng: &mut Rng, leaf: Option<&V>) -> String {
    let ip = match leaf {
        Some(V::Str(t)) if t.parse::<IpAddr>().is_ok() && rng.chance(85) => t.clone(),
        _ => loop {
            let t = rng.pick(IPS);
            if t.parse::<IpAddr>().is_ok() {
                break (*t).to_owned();
            }
        },
    };
    let keep_host = rng.chance(25);
    match ip.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => {
            let bits = *rng.pick(&[0, 1, 8, 16, 24, 25, 31, 32]);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let addr = if keep_host {
                u32::from(a)
            } else {
                u32::from(a) & mask
            };
            format!("{}/{bits}", std::net::Ipv4Addr::from(addr))
        }
        IpAddr::V6(a) => {
            let bits = *rng.pick(&[0, 16, 32, 64, 120, 127, 128]);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            let addr = if keep_host {
                u128::from(a)
            } else {
                u128::from(a) & mask
            };
            format!("{}/{bits}", std::net::Ipv6Addr::from(addr))
        }
    }
}

fn one_or_list(rng: &mut Rng, first: String, more: impl Fn(&mut Rng) -> String) -> V {
    if rng.chance(60) {
        return V::Str(first);
    }
    let count = rng.below(3);
    let mut items = vec![V::Str(first)];
    items.extend((0..count).map(|_| V::Str(more(rng))));
    V::Arr(items)
}

fn non_empty(t: String) -> String {
    if t.is_empty() { "a".to_owned() } else { t }
}

fn rule(rng: &mut Rng, leaf: Option<&V>) -> V {
    let kind = rng.weighted(&[14, 6, 4, 6, 4, 6, 8, 16, 14, 8, 5]);
    match kind {
        // Exact values.
        0 => match leaf {
            Some(V::Str(t)) if rng.chance(20) => V::Str(mangle_case(rng, t)),
            Some(V::Num(t)) if rng.chance(50) => V::Num(respell(rng, t)),
            Some(v) if rng.chance(85) => v.clone(),
            _ => gen_scalar(rng),
        },
        1 => {
            let t = text_of(rng, leaf);
            obj(vec![("prefix", V::Str(prefix_of(rng, &t)))])
        }
        2 => {
            let t = text_of(rng, leaf);
            let p = prefix_of(rng, &t);
            let p = mangle_case(rng, &p);
            obj(vec![(
                "prefix",
                obj(vec![("equals-ignore-case", V::Str(p))]),
            )])
        }
        3 => {
            let t = text_of(rng, leaf);
            obj(vec![("suffix", V::Str(suffix_of(rng, &t)))])
        }
        4 => {
            let t = text_of(rng, leaf);
            let p = suffix_of(rng, &t);
            let p = mangle_case(rng, &p);
            obj(vec![(
                "suffix",
                obj(vec![("equals-ignore-case", V::Str(p))]),
            )])
        }
        5 => {
            let t = text_of(rng, leaf);
            obj(vec![("equals-ignore-case", V::Str(mangle_case(rng, &t)))])
        }
        6 => {
            let t = text_of(rng, leaf);
            obj(vec![("wildcard", V::Str(wildcard_of(rng, &t)))])
        }
        7 => obj(vec![("anything-but", anything_but(rng, leaf))]),
        8 => obj(vec![("numeric", numeric(rng, leaf))]),
        9 => obj(vec![("exists", V::Bool(rng.chance(50)))]),
        _ => obj(vec![("cidr", V::Str(cidr_of(rng, leaf)))]),
    }
}

fn anything_but(rng: &mut Rng, leaf: Option<&V>) -> V {
    match rng.weighted(&[15, 12, 15, 12, 12, 12, 12, 10]) {
        0 => V::Str(text_of(rng, leaf)),
        1 => V::Num(number_of(rng, leaf)),
        2 => {
            let first = text_of(rng, leaf);
            let count = rng.below(3);
            let mut items = vec![V::Str(first)];
            items.extend((0..count).map(|_| V::Str(gen_string(rng))));
            V::Arr(items)
        }
        3 => {
            let first = number_of(rng, leaf);
            let count = rng.below(3);
            let mut items = vec![V::Num(first)];
            items.extend((0..count).map(|_| pool_number(rng)));
            V::Arr(items)
        }
        4 => {
            let t = text_of(rng, leaf);
            let p = non_empty(prefix_of(rng, &t));
            obj(vec![(
                "prefix",
                one_or_list(rng, p, |r| non_empty(gen_string(r))),
            )])
        }
        5 => {
            let t = text_of(rng, leaf);
            let p = non_empty(suffix_of(rng, &t));
            obj(vec![(
                "suffix",
                one_or_list(rng, p, |r| non_empty(gen_string(r))),
            )])
        }
        6 => {
            let t = text_of(rng, leaf);
            let p = mangle_case(rng, &t);
            obj(vec![(
                "equals-ignore-case",
                one_or_list(rng, p, gen_string),
            )])
        }
        _ => {
            let t = text_of(rng, leaf);
            let w = wildcard_of(rng, &t);
            obj(vec![(
                "wildcard",
                one_or_list(rng, w, |r| {
                    let t = gen_string(r);
                    wildcard_of(r, &t)
                }),
            )])
        }
    }
}

fn numeric(rng: &mut Rng, leaf: Option<&V>) -> V {
    let base = number_of(rng, leaf);
    let a = respell(rng, &base);
    if rng.chance(55) {
        let op = *rng.pick(&["=", "<", "<=", ">", ">="]);
        return V::Arr(vec![s(op), V::Num(a)]);
    }
    let b = if rng.chance(50) {
        respell(rng, &base)
    } else {
        (*rng.pick(NUMBERS)).to_owned()
    };
    let (x, y) = (a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap());
    let (lo, hi) = if x <= y { (a, b) } else { (b, a) };
    let mut lo_op = *rng.pick(&[">", ">="]);
    let mut hi_op = *rng.pick(&["<", "<="]);
    if x == y {
        (lo_op, hi_op) = (">=", "<=");
    }
    V::Arr(vec![s(lo_op), V::Num(lo), s(hi_op), V::Num(hi)])
}

// ---------------------------------------------------------------------------------------------
// Cases and verdicts.

/// The record value of a case.
#[derive(Clone, Debug)]
enum Subject {
    /// A JSON object.
    Json(V),
    /// Plain text (not JSON), matched as one string.
    Text(String),
}

#[derive(Clone, Debug)]
struct Case {
    /// The whole pattern: `{"value": ...}` (or `$or` of such).
    pattern: V,
    value: Subject,
    /// Seeds the random escapes of the rendered JSON; `None`: no escapes beyond the needed ones.
    escapes: Option<u64>,
}

/// A case as text: the pattern (one for both engines), the record value (the poller's), the
/// event (event-ruler's).
struct Rendered {
    pattern: String,
    value: String,
    event: String,
}

impl Case {
    fn render(&self) -> Rendered {
        let mut rng = self.escapes.map(Rng);
        let pattern = render(&self.pattern, rng.as_mut());
        let (value, event) = match &self.value {
            Subject::Json(v) => {
                let value = render(v, rng.as_mut());
                let event = format!("{{\"value\": {value}}}");
                (value, event)
            }
            Subject::Text(t) => (
                t.clone(),
                format!(
                    "{{\"value\": {}}}",
                    render(&V::Str(t.clone()), rng.as_mut())
                ),
            ),
        };
        Rendered {
            pattern,
            value,
            event,
        }
    }
}

fn object_case(rng: &mut Rng) -> Case {
    let fields = gen_fields(rng, 0);
    let pattern = if rng.chance(5) {
        let alts = (0..2)
            .map(|_| obj(vec![("value", obj_pattern(rng, &fields, 0))]))
            .collect();
        obj(vec![("$or", V::Arr(alts))])
    } else {
        obj(vec![("value", obj_pattern(rng, &fields, 0))])
    };
    Case {
        pattern,
        value: Subject::Json(V::Obj(fields)),
        escapes: Some(rng.next()),
    }
}

fn text_case(rng: &mut Rng) -> Case {
    let text = loop {
        let t = match rng.weighted(&[40, 40, 20]) {
            0 => (*rng.pick(TEXTS)).to_owned(),
            1 => gen_string(rng),
            _ => (*rng.pick(STRINGS)).to_owned(),
        };
        // JSON text (`5`, `"a"`, `null`) is no plain string to every reader: left out.
        if serde_json::from_str::<serde_json::Value>(&t).is_err() {
            break t;
        }
    };
    let leaf = V::Str(text.clone());
    Case {
        pattern: obj(vec![("value", rule_list(rng, &[&leaf]))]),
        value: Subject::Text(text),
        escapes: Some(rng.next()),
    }
}

/// Patterns at the edges of the language, valid or not (each judged against [`EDGE_VALUES`]):
/// whether both engines take or refuse the same patterns.
const EDGE_PATTERNS: &[&str] = &[
    r#"{"value": {"a": [{"anything-but": {"prefix": ""}}]}}"#,
    r#"{"value": {"a": [{"anything-but": {"suffix": ""}}]}}"#,
    r#"{"value": {"a": [{"anything-but": {"equals-ignore-case": ""}}]}}"#,
    r#"{"value": {"a": [{"anything-but": {"wildcard": ""}}]}}"#,
    r#"{"value": {"a": [{"anything-but": []}]}}"#,
    r#"{"value": {"a": [{"anything-but": ["x", 1]}]}}"#,
    r#"{"value": {"a": [{"anything-but": [null]}]}}"#,
    r#"{"value": {"a": [{"anything-but": null}]}}"#,
    r#"{"value": {"a": [{"anything-but": true}]}}"#,
    r#"{"value": {"a": [{"anything-but": {"prefix": ["a", 1]}}]}}"#,
    r#"{"value": {"a": [{"anything-but": {"prefix": []}}]}}"#,
    r#"{"value": {"a": [{"anything-but": {"numeric": [">", 1]}}]}}"#,
    r#"{"value": {"a": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}}"#,
    r#"{"value": {"a": [{"wildcard": "a**b"}]}}"#,
    r#"{"value": {"a": [{"wildcard": "a\\b"}]}}"#,
    r#"{"value": {"a": [{"wildcard": "a\\*b"}]}}"#,
    r#"{"value": {"a": [{"wildcard": "a\\\\b"}]}}"#,
    r#"{"value": {"a": [{"wildcard": "\\"}]}}"#,
    r#"{"value": {"a": [{"wildcard": ""}]}}"#,
    r#"{"value": {"a": [{"wildcard": 5}]}}"#,
    r#"{"value": {"a": [{"prefix": 5}]}}"#,
    r#"{"value": {"a": [{"prefix": ""}]}}"#,
    r#"{"value": {"a": [{"suffix": ""}]}}"#,
    r#"{"value": {"a": [{"prefix": {"equals-ignore-case": 5}}]}}"#,
    r#"{"value": {"a": [{"prefix": {"foo": "x"}}]}}"#,
    r#"{"value": {"a": [{"equals-ignore-case": 5}]}}"#,
    r#"{"value": {"a": [{"equals-ignore-case": ""}]}}"#,
    r#"{"value": {"a": [{"exists": "true"}]}}"#,
    r#"{"value": {"a": [{"exists": null}]}}"#,
    r#"{"value": {"a": [{"numeric": []}]}}"#,
    r#"{"value": {"a": [{"numeric": ["=", "5"]}]}}"#,
    r#"{"value": {"a": [{"numeric": [">", 5, ">", 6]}]}}"#,
    r#"{"value": {"a": [{"numeric": ["<", 5, ">", 1]}]}}"#,
    r#"{"value": {"a": [{"numeric": [">", 6, "<", 5]}]}}"#,
    r#"{"value": {"a": [{"numeric": ["=", 5, "<", 6]}]}}"#,
    r#"{"value": {"a": [{"numeric": [">", 1, "<", 5, "<", 9]}]}}"#,
    r#"{"value": {"a": [{"numeric": ["!=", 5]}]}}"#,
    r#"{"value": {"a": [{"numeric": [">", 1e400]}]}}"#,
    r#"{"value": {"a": [{"numeric": [5]}]}}"#,
    r#"{"value": {"a": [{"cidr": "10.0.0.0/33"}]}}"#,
    r#"{"value": {"a": [{"cidr": "10.0.0.0"}]}}"#,
    r#"{"value": {"a": [{"cidr": "10.0.0.0/-1"}]}}"#,
    r#"{"value": {"a": [{"cidr": "10.0.0.1/24"}]}}"#,
    r#"{"value": {"a": [{"cidr": "10.0.0.01/24"}]}}"#,
    r#"{"value": {"a": [{"cidr": "::/129"}]}}"#,
    r#"{"value": {"a": [{"cidr": 5}]}}"#,
    r#"{"value": {"a": []}}"#,
    r#"{"value": {"a": [[1]]}}"#,
    r#"{"value": {"a": 5}}"#,
    r#"{"value": {"a": "x"}}"#,
    r#"{"value": {"a": null}}"#,
    r#"{"value": {}}"#,
    r#"{"value": {"a": {}}}"#,
    r#"{"value": {"a": [{}]}}"#,
    r#"{"value": {"a": [{"prefix": "x", "suffix": "y"}]}}"#,
    r#"{"value": {"a": [{"foo": "x"}]}}"#,
    r#"{"value": {"$or": [{"a": [1]}]}}"#,
    r#"{"value": {"$or": []}}"#,
    r#"{"value": {"$or": {"a": [1]}}}"#,
    r#"{"value": {"$or": [{"a": [1]}, 5]}}"#,
    r#"{"value": {"$or": [{"a": [1]}, {}]}}"#,
    r#"{"value": {"$or": [{"prefix": "a"}, {"a": [1]}]}}"#,
    r#"{"value": {"$or": [{"numeric": [1]}, {"a": [1]}]}}"#,
    r#"{"value": {"$or": [{"a": [1]}, {"b": [2]}], "c": [3]}}"#,
    r#"{"value": ["x"]}"#,
    r#"{"value": [{"prefix": "x"}]}"#,
    r#"{"value": [{"exists": true}]}"#,
    r#"{"value": [null]}"#,
    r#"{"$or": [{"value": {"a": [1]}}]}"#,
    r#"{"value": {"a": [{"exists": true}, {"exists": false}]}}"#,
    r#"{"value": {"a": [{"anything-but": "x"}, {"exists": false}]}}"#,
    r#"{"value": {"a": [{"equals-ignore-case": "x"}, {"prefix": {"equals-ignore-case": ""}}]}}"#,
    r#"{"value": {"a": [{"suffix": {"equals-ignore-case": ""}}]}}"#,
    r#"{"value": {"a": [{"anything-but": {"equals-ignore-case": []}}]}}"#,
    r#"{"value": {"a": [{"anything-but": {"wildcard": "a**"}}]}}"#,
    r#"{"value": {"a": [{"wildcard": "*"}]}}"#,
    r#"{"value": {"a": [{"wildcard": "**"}]}}"#,
    r#"{"value": {"a": [{"wildcard": "\\**"}]}}"#,
    r#"{"value": {"a": [{"wildcard": "*\\*"}]}}"#,
];

/// Disagreements fixed in the poller, (pattern, value) as their `KNOWN` entries had them: judged
/// like every case, so they must now agree.
const FIXED: &[(&str, &str)] = &[
    // An exact number compares its text: Lambda, "300, 300.0, and 3.0e2 are not considered
    // equal" (the poller compared fractions and exponents by value).
    (r#"{"value": {"n": [5e-324]}}"#, r#"{"n": 4.9e-324}"#),
    (
        r#"{"value": {"n": [1.8446744073709552e19]}}"#,
        r#"{"n": 18446744073709551616}"#,
    ),
    // A pattern number no double is, in `numeric` or `anything-but`, is refused.
    (
        r#"{"value": {"n": [{"numeric": [">", 9007199254740993]}]}}"#,
        r#"{"n": 1e300}"#,
    ),
    (
        r#"{"value": {"n": [{"anything-but": 5e-324}]}}"#,
        r#"{"n": 1}"#,
    ),
    // Array consistency across `$or`: one element of `a` must satisfy `b` and `c`.
    (
        r#"{"value": {"a": {"b": [1]}, "$or": [{"a": {"c": [2]}}, {"z": [0]}]}}"#,
        r#"{"a": [{"b": 1}, {"c": 2}]}"#,
    ),
    (
        r#"{"value": {"a": {"b": [1]}, "$or": [{"a": {"c": [2]}}, {"z": [0]}]}}"#,
        r#"{"a": [{"b": 1}, {"b": 1, "c": 2}]}"#,
    ),
];

/// The values each of [`EDGE_PATTERNS`] is judged against.
const EDGE_VALUES: &[&str] = &[
    r#"{"a": "x"}"#,
    r#"{"a": "10.0.0.5"}"#,
    r#"{"a": 5}"#,
    r#"{"a": ["x", 1]}"#,
    r#"{"b": null}"#,
    "x",
];

fn edge_cases() -> Vec<Case> {
    EDGE_PATTERNS
        .iter()
        .flat_map(|pattern| {
            EDGE_VALUES.iter().map(move |value| {
                known_case(&Known {
                    pattern,
                    value,
                    ..KNOWN[0]
                })
            })
        })
        // An object pattern against plain text, a rule list against a JSON object: the Kafka
        // cases event-ruler has no counterpart for (see the top of this file).
        .filter(|case| {
            let V::Obj(fields) = &case.pattern else {
                return true;
            };
            !fields.iter().any(|(name, p)| {
                name == "value"
                    && matches!(
                        (p, &case.value),
                        (V::Obj(_), Subject::Text(_)) | (V::Arr(_), Subject::Json(_))
                    )
            })
        })
        .chain(FIXED.iter().map(|(pattern, value)| {
            known_case(&Known {
                pattern,
                value,
                ..KNOWN[0]
            })
        }))
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Match(bool),
    /// The engine refused the pattern.
    Refused(String),
}

impl Verdict {
    /// The verdict without the reason of a refusal.
    fn kind(&self) -> Option<bool> {
        match self {
            Verdict::Match(b) => Some(*b),
            Verdict::Refused(_) => None,
        }
    }

    fn short(&self) -> String {
        match self {
            Verdict::Match(b) => b.to_string(),
            Verdict::Refused(why) => {
                let why: String = why.chars().take(160).collect();
                format!("refused ({why})")
            }
        }
    }
}

/// Why an engine refused the pattern (empty: it did not).
fn refusal(verdict: &Verdict) -> &str {
    match verdict {
        Verdict::Refused(why) => why,
        Verdict::Match(_) => "",
    }
}

/// What a pair of verdicts is: agreement, or which disagreement.
type Outcome = (Option<bool>, Option<bool>);

fn poller_verdict(pattern: &str, value: &[u8]) -> Verdict {
    match Filter::parse(&[pattern]) {
        Err(e) => Verdict::Refused(e.to_string()),
        Ok(filter) => Verdict::Match(filter.matches(&RecordView {
            topic: "t",
            partition: 0,
            key: None,
            value: Some(value),
            headers: &[],
        })),
    }
}

/// event-ruler in one JVM (tests/event-ruler/build.sh run): JSON lines in, one verdict a line
/// out, batch after batch.
struct Oracle {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    fn start() -> Oracle {
        let build = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/event-ruler/build.sh");
        let mut child = Command::new("bash")
            .arg(&build)
            .arg("run")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", build.display()));
        Oracle {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    /// event-ruler's verdicts on (pattern, event) pairs.
    fn judge(&mut self, cases: &[(String, String)]) -> Vec<Verdict> {
        let mut stdin = self.stdin.take().unwrap();
        let input: String = cases
            .iter()
            .map(|(pattern, event)| format!("{{\"pattern\": {pattern}, \"event\": {event}}}\n"))
            .collect();
        // Written beside the reading: neither pipe fills while the other waits.
        let writer = std::thread::spawn(move || {
            stdin.write_all(input.as_bytes()).unwrap();
            stdin.flush().unwrap();
            stdin
        });
        let mut verdicts = Vec::with_capacity(cases.len());
        let mut line = String::new();
        for _ in cases {
            line.clear();
            let read = self.stdout.read_line(&mut line).unwrap();
            assert!(
                read > 0,
                "the event-ruler oracle stopped (see its messages above): is Java with Maven installed?"
            );
            let line = line.trim_end_matches('\n');
            verdicts.push(match line {
                "true" => Verdict::Match(true),
                "false" => Verdict::Match(false),
                _ => match line.strip_prefix("error: pattern: ") {
                    Some(why) => Verdict::Refused(why.to_owned()),
                    None => panic!("event-ruler could not judge a case: {line}"),
                },
            });
        }
        self.stdin = Some(writer.join().unwrap());
        verdicts
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the event-ruler oracle failed: {status}");
    }
}

/// Both verdicts on each case.
fn judge_all(oracle: &mut Oracle, cases: &[Case]) -> Vec<(Verdict, Verdict)> {
    let rendered: Vec<Rendered> = cases.iter().map(Case::render).collect();
    let lines: Vec<(String, String)> = rendered
        .iter()
        .map(|r| (r.pattern.clone(), r.event.clone()))
        .collect();
    let theirs = oracle.judge(&lines);
    rendered
        .iter()
        .zip(theirs)
        .map(|(r, theirs)| (poller_verdict(&r.pattern, r.value.as_bytes()), theirs))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Shrinking a disagreement to a minimal repro (FILTER_ORACLE_MINIMIZE=N: the first N of each
// kind of disagreement, printed).

/// Every tree one step smaller: one object field or list element removed, one character of a
/// string removed, a list replaced by one of its elements.
fn shrinks(v: &V) -> Vec<V> {
    let mut out = Vec::new();
    match v {
        V::Obj(fields) => {
            for i in 0..fields.len() {
                let mut fewer = fields.clone();
                fewer.remove(i);
                out.push(V::Obj(fewer));
            }
            for (i, (_, child)) in fields.iter().enumerate() {
                for smaller in shrinks(child) {
                    let mut changed = fields.clone();
                    changed[i].1 = smaller;
                    out.push(V::Obj(changed));
                }
            }
        }
        V::Arr(items) => {
            for i in 0..items.len() {
                let mut fewer = items.clone();
                fewer.remove(i);
                out.push(V::Arr(fewer));
                out.push(items[i].clone());
            }
            for (i, child) in items.iter().enumerate() {
                for smaller in shrinks(child) {
                    let mut changed = items.clone();
                    changed[i] = smaller;
                    out.push(V::Arr(changed));
                }
            }
        }
        V::Str(t) => {
            let chars: Vec<char> = t.chars().collect();
            for i in 0..chars.len() {
                let mut fewer = chars.clone();
                fewer.remove(i);
                out.push(V::Str(fewer.into_iter().collect()));
            }
        }
        V::Num(t) if t != "0" => out.push(n("0")),
        _ => {}
    }
    out
}

fn case_shrinks(case: &Case) -> Vec<Case> {
    let mut out = Vec::new();
    if case.escapes.is_some() {
        out.push(Case {
            escapes: None,
            ..case.clone()
        });
    }
    for pattern in shrinks(&case.pattern) {
        out.push(Case {
            pattern,
            ..case.clone()
        });
    }
    let values: Vec<Subject> = match &case.value {
        Subject::Json(v) => shrinks(v).into_iter().map(Subject::Json).collect(),
        Subject::Text(t) => shrinks(&V::Str(t.clone()))
            .into_iter()
            .filter_map(|v| match v {
                V::Str(t) => Some(Subject::Text(t)),
                _ => None,
            })
            .collect(),
    };
    for value in values {
        out.push(Case {
            value,
            ..case.clone()
        });
    }
    out
}

/// Each case made as small as the same disagreement allows.
fn minimize(oracle: &mut Oracle, cases: Vec<(Case, Outcome)>) -> Vec<(Case, Verdict, Verdict)> {
    let mut current = cases;
    let mut done = vec![false; current.len()];
    for _round in 0..200 {
        let mut batch = Vec::new();
        let mut owners = Vec::new();
        for (i, (case, _)) in current.iter().enumerate() {
            if done[i] {
                continue;
            }
            for candidate in case_shrinks(case) {
                owners.push(i);
                batch.push(candidate);
            }
        }
        if batch.is_empty() {
            break;
        }
        let verdicts = judge_all(oracle, &batch);
        let mut moved = vec![false; current.len()];
        for ((owner, candidate), (ours, theirs)) in owners.into_iter().zip(batch).zip(verdicts) {
            let outcome = (ours.kind(), theirs.kind());
            if !moved[owner]
                && outcome == current[owner].1
                && !KNOWN
                    .iter()
                    .any(|k| (k.covers)(&candidate, outcome, refusal(&theirs)))
            {
                current[owner].0 = candidate;
                moved[owner] = true;
            }
        }
        for (i, m) in moved.iter().enumerate() {
            if !m {
                done[i] = true;
            }
        }
    }
    let cases: Vec<Case> = current.into_iter().map(|(c, _)| c).collect();
    let verdicts = judge_all(oracle, &cases);
    cases
        .into_iter()
        .zip(verdicts)
        .map(|(c, (ours, theirs))| (c, ours, theirs))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What a case contains, for telling known disagreements apart.

/// `{"op": arg}`: a rule's operator and argument.
fn operator(rule: &V) -> Option<(&str, &V)> {
    match rule {
        V::Obj(fields) if fields.len() == 1 => Some((fields[0].0.as_str(), &fields[0].1)),
        _ => None,
    }
}

/// The strings of a string argument or a list of them.
fn strings(arg: &V) -> Vec<&str> {
    match arg {
        V::Str(t) => vec![t.as_str()],
        V::Arr(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// The numbers (as written) of an argument.
fn numbers(arg: &V) -> Vec<&str> {
    match arg {
        V::Num(t) => vec![t.as_str()],
        V::Arr(items) => items.iter().flat_map(numbers).collect(),
        _ => Vec::new(),
    }
}

/// A rule of the pattern and the data it is tested against: the leaves at its field (arrays
/// looked through), and whether the field is missing from some object on the way.
struct Site<'a> {
    rule: &'a V,
    /// The rule list the rule is in.
    list: &'a [V],
    leaves: Vec<V>,
}

fn sites(case: &Case) -> Vec<Site<'_>> {
    let mut out = Vec::new();
    top_sites(&case.pattern, &case.value, &mut out);
    out
}

fn top_sites<'a>(pattern: &'a V, value: &Subject, out: &mut Vec<Site<'a>>) {
    let V::Obj(fields) = pattern else { return };
    for (name, p) in fields {
        match (name.as_str(), p, value) {
            ("value", V::Arr(rules), Subject::Text(t)) => {
                out.extend(rules.iter().map(|rule| Site {
                    rule,
                    list: rules,
                    leaves: vec![V::Str(t.clone())],
                }));
            }
            ("value", V::Obj(_), Subject::Json(v)) => object_sites(p, &[v], out),
            ("$or", V::Arr(alts), _) => alts.iter().for_each(|alt| top_sites(alt, value, out)),
            _ => {}
        }
    }
}

fn object_sites<'a>(pattern: &'a V, nodes: &[&V], out: &mut Vec<Site<'a>>) {
    let V::Obj(fields) = pattern else { return };
    let objs: Vec<&[(String, V)]> = nodes.iter().flat_map(|n| objects(n)).collect();
    for (name, p) in fields {
        if name == "$or" {
            if let V::Arr(alts) = p {
                alts.iter().for_each(|alt| object_sites(alt, nodes, out));
            }
            continue;
        }
        let values: Vec<&V> = objs
            .iter()
            .filter_map(|o| o.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v))
            .collect();
        match p {
            V::Arr(rules) => {
                let mut found = Vec::new();
                values.iter().for_each(|v| leaves(v, &mut found));
                let found: Vec<V> = found.into_iter().cloned().collect();
                out.extend(rules.iter().map(|rule| Site {
                    rule,
                    list: rules,
                    leaves: found.clone(),
                }));
            }
            V::Obj(_) => object_sites(p, &values, out),
            _ => {}
        }
    }
}

/// Whether event-ruler can compare the number numerically: its `ComparableNumber` takes a
/// number only when the decimal written equals the `double` it parses to, as Java prints that
/// double (`BigDecimal.valueOf`), e.g. not 9007199254740993, nor 5e-324 (Java: 4.9E-324).
fn ruler_comparable(text: &str) -> bool {
    let Ok(x) = text.parse::<f64>() else {
        return false;
    };
    if !x.is_finite() {
        return false;
    }
    let java = if x.abs() == f64::from_bits(1) {
        format!("{}4.9e-324", if x < 0.0 { "-" } else { "" })
    } else {
        format!("{x:e}")
    };
    decimal(text) == decimal(&java)
}

/// A decimal number as (negative, significant digits, exponent of the point after them); zero
/// is `(false, "", 0)`.
fn decimal(text: &str) -> (bool, String, i64) {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().unwrap()),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let mut exponent = exponent - frac.len() as i64;
    let trimmed = digits.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    exponent += (trimmed.len() - significant.len()) as i64;
    if significant.is_empty() {
        return (false, String::new(), 0);
    }
    (negative, significant.to_owned(), exponent)
}

/// Whether the pattern reads one field twice in one `$or` branch (outside and inside a `$or`,
/// or in two `$or`s), counting a field by its path of names, as event-ruler flattens it.
fn reads_a_field_twice(pattern: &V) -> bool {
    fn branches(v: &V, prefix: &[String]) -> Vec<Vec<Vec<String>>> {
        let V::Obj(fields) = v else {
            return vec![Vec::new()];
        };
        let mut out: Vec<Vec<Vec<String>>> = vec![Vec::new()];
        for (name, child) in fields {
            let options: Vec<Vec<Vec<String>>> = if name == "$or" {
                match child {
                    V::Arr(alts) => alts.iter().flat_map(|a| branches(a, prefix)).collect(),
                    _ => vec![Vec::new()],
                }
            } else {
                let mut path = prefix.to_vec();
                path.push(name.clone());
                match child {
                    V::Obj(_) => branches(child, &path),
                    _ => vec![vec![path]],
                }
            };
            out = out
                .iter()
                .flat_map(|done| {
                    options.iter().map(move |more| {
                        let mut joined = done.clone();
                        joined.extend(more.iter().cloned());
                        joined
                    })
                })
                .collect();
        }
        out
    }
    branches(pattern, &[]).iter().any(|paths| {
        paths
            .iter()
            .enumerate()
            .any(|(i, p)| paths[i + 1..].contains(p))
    })
}

/// Whether a character's case mappings are not one-to-one and reversible: more than one
/// character (ß → SS, İ → i̇), a title case (ǅ), or a mapping that does not come back (K, the
/// Kelvin sign, → k → K; ς → Σ → σ).
fn irregular_case(c: char) -> bool {
    let lower: Vec<char> = c.to_lowercase().collect();
    let upper: Vec<char> = c.to_uppercase().collect();
    if lower.len() != 1 || upper.len() != 1 {
        return true;
    }
    let (l, u) = (lower[0], upper[0]);
    let back_up: Vec<char> = l.to_uppercase().collect();
    let back_down: Vec<char> = u.to_lowercase().collect();
    (c != l && c != u) || back_up != [u] || back_down != [l]
}

/// The strings an ignore-case rule compares: `equals-ignore-case`, `prefix`/`suffix` with
/// `equals-ignore-case`, `anything-but` with `equals-ignore-case`.
fn ignore_case_strings(rule: &V) -> Vec<&str> {
    match operator(rule) {
        Some(("equals-ignore-case", arg)) => strings(arg),
        Some(("prefix" | "suffix" | "anything-but", inner)) => match operator(inner) {
            Some(("equals-ignore-case", arg)) => strings(arg),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn leaf_strings(leaves: &[V]) -> impl Iterator<Item = &str> {
    leaves.iter().filter_map(|l| match l {
        V::Str(t) => Some(t.as_str()),
        _ => None,
    })
}

fn any_site(case: &Case, f: impl Fn(&Site<'_>) -> bool) -> bool {
    sites(case).iter().any(f)
}

/// Whether any rule of the pattern (wherever it is, whatever the data) satisfies `f`.
fn any_rule(case: &Case, f: impl Fn(&V) -> bool) -> bool {
    fn walk(v: &V, f: &dyn Fn(&V) -> bool) -> bool {
        let V::Obj(fields) = v else { return false };
        fields.iter().any(|(name, child)| match child {
            V::Arr(items) if name == "$or" => items.iter().any(|alt| walk(alt, f)),
            V::Arr(rules) => rules.iter().any(f),
            V::Obj(_) => walk(child, f),
            _ => false,
        })
    }
    walk(&case.pattern, &f)
}

/// Whether a number is beyond what event-ruler compares: not exactly a double (as Java prints
/// it), more than the 15 significant digits EventBridge documents (Java 17 prints some doubles
/// with 17 digits where 16 would do, and then refuses their 16-digit spelling), or subnormal
/// (Java prints 5e-323 as 4.9E-323).
fn beyond_precision(text: &str) -> bool {
    let subnormal = text
        .parse::<f64>()
        .is_ok_and(|x| x != 0.0 && x.abs() < f64::MIN_POSITIVE);
    !ruler_comparable(text) || decimal(text).1.len() > 15 || subnormal
}

/// The address of a `cidr` rule.
fn cidr_parts(rule: &V) -> Option<(&str, &str)> {
    match operator(rule) {
        Some(("cidr", V::Str(t))) => t.split_once('/'),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Known disagreements, each with the documentation that settles it (or saying that none does),
// and a repro that must still disagree exactly so.

struct Known {
    /// What differs.
    what: &'static str,
    /// Which side the documentation takes, quoting it, or that it settles nothing.
    settled_by: &'static str,
    /// The documentation.
    doc: &'static str,
    /// A minimal pattern …
    pattern: &'static str,
    /// … and record value (a JSON object, or plain text) …
    value: &'static str,
    /// … and the verdicts: the poller's, event-ruler's (`None`: refuses the pattern).
    verdicts: Outcome,
    /// Whether event-ruler's verdict varies from run to run: its repro is then judged
    /// [`FLAKY_TRIES`] times and must disagree at least once.
    flaky: bool,
    /// Whether a generated disagreement is this one, given both verdicts and event-ruler's
    /// reason for refusing the pattern (empty when it took it).
    covers: fn(&Case, Outcome, &str) -> bool,
}

const LAMBDA_SYNTAX: &str = "Lambda Developer Guide, Lambda event filtering, Filter rule syntax \
     (https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html#filtering-syntax)";
const EB_CONTENT: &str = "EventBridge User Guide, Content filtering in event patterns \
     (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html)";

const EB_ARRAYS: &str = "EventBridge User Guide, Arrays in event patterns \
     (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-arrays.html)";
const RULER_README: &str = "event-ruler's README, Numeric matching \
     (https://github.com/aws/event-ruler#numeric-matching)";
const EB_OPERATORS: &str = "EventBridge User Guide, Comparison operators for use in event \
     patterns (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html)";

fn is_numeric_rule(rule: &V) -> bool {
    matches!(operator(rule), Some(("numeric", _)))
        || matches!(
            operator(rule),
            Some(("anything-but", V::Num(_) | V::Arr(_)))
        )
}

/// Whether an exact-number rule meets a number of the data written differently.
fn exact_number_spelled_otherwise(case: &Case) -> bool {
    any_site(case, |site| {
        let V::Num(a) = site.rule else { return false };
        site.leaves.iter().any(|l| matches!(l, V::Num(b) if a != b))
    })
}

/// Whether an object of the data repeats a key.
fn repeats_a_key(v: &V) -> bool {
    match v {
        V::Obj(fields) => {
            fields
                .iter()
                .enumerate()
                .any(|(i, (k, _))| fields[i + 1..].iter().any(|(other, _)| other == k))
                || fields.iter().any(|(_, child)| repeats_a_key(child))
        }
        V::Arr(items) => items.iter().any(repeats_a_key),
        _ => false,
    }
}

fn mismatch(outcome: Outcome) -> bool {
    matches!(outcome, (Some(a), Some(b)) if a != b)
}

fn refused_by_ruler(outcome: Outcome) -> bool {
    matches!(outcome, (Some(_), None))
}

const KNOWN: &[Known] = &[
    Known {
        what: "an exact number matches another spelling of it in event-ruler (300 vs 300.0, \
               1000 vs 1e3)",
        settled_by: "for the poller: \"For numbers, Lambda also uses string representation. For \
             example, 300, 300.0, and 3.0e2 are not considered equal.\"",
        doc: LAMBDA_SYNTAX,
        pattern: r#"{"value": {"n": [300]}}"#,
        value: r#"{"n": 300.0}"#,
        flaky: false,
        verdicts: (Some(false), Some(true)),
        covers: |case, outcome, _| {
            outcome == (Some(false), Some(true)) && exact_number_spelled_otherwise(case)
        },
    },
    Known {
        what: "a string rule that is an IP address matches other spellings of it in event-ruler",
        settled_by: "for the poller: \"Lambda uses exact character-by-character matching without \
             case-folding or any other string normalization\"",
        doc: LAMBDA_SYNTAX,
        pattern: r#"{"value": {"ip": ["2001:db8::1"]}}"#,
        value: r#"{"ip": "2001:DB8:0:0:0:0:0:1"}"#,
        flaky: false,
        verdicts: (Some(false), Some(true)),
        covers: |case, outcome, _| {
            outcome == (Some(false), Some(true))
                && any_site(case, |site| {
                    let V::Str(a) = site.rule else { return false };
                    a.contains(['.', ':'])
                        && a.chars()
                            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
                        && leaf_strings(&site.leaves).any(|b| b != a)
                })
        },
    },
    Known {
        what: "cidr matches values that are no IP address of its family in event-ruler (numbers, \
               0.0.0.01, an IPv6 address for an IPv4 cidr)",
        settled_by: "for the poller: \"You can use IP address matching for IPv4 and IPv6 \
             addresses\"",
        doc: EB_CONTENT,
        pattern: r#"{"value": {"ip": [{"cidr": "0.0.0.0/0"}]}}"#,
        value: r#"{"ip": 1.5}"#,
        flaky: false,
        verdicts: (Some(false), Some(true)),
        covers: |case, outcome, _| {
            outcome == (Some(false), Some(true))
                && any_site(case, |site| {
                    let Some((ip, _)) = cidr_parts(site.rule) else {
                        return false;
                    };
                    site.leaves.iter().any(|l| match l {
                        V::Str(t) => t
                            .parse::<IpAddr>()
                            .map_or(true, |a| a.is_ipv4() == ip.contains(':')),
                        _ => true,
                    })
                })
        },
    },
    Known {
        what: "an ignore-case rule with a character outside the BMP (an emoji) never matches in \
               event-ruler, not even the same string",
        settled_by: "for the poller: equals-ignore-case matches the value \"regardless of case\", \
             so at least the identical string (event-ruler folds each UTF-16 unit alone, and a \
             lone surrogate becomes '?')",
        doc: EB_OPERATORS,
        pattern: r#"{"value": {"s": [{"equals-ignore-case": "a😀"}]}}"#,
        value: r#"{"s": "a😀"}"#,
        flaky: false,
        verdicts: (Some(true), Some(false)),
        covers: |case, outcome, _| {
            mismatch(outcome)
                && any_rule(case, |rule| {
                    ignore_case_strings(rule)
                        .iter()
                        .any(|t| t.chars().any(|c| c.len_utf16() == 2))
                })
        },
    },
    Known {
        what: "ignore-case rules fold characters with irregular case mappings differently: the \
               poller lowercases both sides per character, event-ruler accepts each pattern \
               character's Java lower or upper case (K, the Kelvin sign, vs k; ß vs SS; ς vs Σ)",
        settled_by: "NOT settled: the documentation says \"regardless of case\" and defines no \
             Unicode case folding",
        doc: EB_OPERATORS,
        pattern: r#"{"value": {"s": [{"equals-ignore-case": "k"}]}}"#,
        value: "{\"s\": \"\u{212a}\"}",
        flaky: false,
        verdicts: (Some(true), Some(false)),
        covers: |case, outcome, _| {
            mismatch(outcome)
                && any_site(case, |site| {
                    let pattern = ignore_case_strings(site.rule);
                    !pattern.is_empty()
                        && pattern
                            .iter()
                            .copied()
                            .chain(leaf_strings(&site.leaves))
                            .any(|t| t.chars().any(irregular_case))
                })
        },
    },
    Known {
        what: "a field read both outside and inside `$or` (or in two `$or`s): event-ruler keeps one \
               of the two conditions (the later one), the poller requires both",
        settled_by: "NOT settled: the documentation ANDs fields and says a key given twice keeps \
             its last reference, but not for a key inside `$or`",
        doc: EB_CONTENT,
        pattern: r#"{"value": {"x": [1], "$or": [{"x": [2]}, {"y": [3]}]}}"#,
        value: r#"{"x": 2}"#,
        flaky: false,
        verdicts: (Some(false), Some(true)),
        covers: |case, outcome, _| mismatch(outcome) && reads_a_field_twice(&case.pattern),
    },
    Known {
        what: "`exists: false` on a field of objects in an array: the poller matches when one \
               element lacks the field, event-ruler only when none has it",
        settled_by: "NOT settled (leans to event-ruler): \"Exists matching works on the presence \
             or absence of a field in the JSON of the event\"",
        doc: EB_CONTENT,
        pattern: r#"{"value": {"a": {"b": [{"exists": false}]}}}"#,
        value: r#"{"a": [{"b": 1}, {"c": 2}]}"#,
        flaky: false,
        verdicts: (Some(true), Some(false)),
        covers: |case, outcome, _| {
            mismatch(outcome)
                && any_site(case, |site| {
                    matches!(operator(site.rule), Some(("exists", V::Bool(false))))
                        && !site.leaves.is_empty()
                })
        },
    },
    Known {
        what: "a number in the data that a double does not hold exactly (9007199254740993, \
               -9223372036854775808, 5e-324) never matches numeric rules in event-ruler; the \
               poller compares it rounded to a double",
        settled_by: "NOT settled: numeric matching is documented for a limited range and \
             precision (\"15 digits of precision\"; event-ruler: Java's double), not beyond",
        doc: EB_CONTENT,
        pattern: r#"{"value": {"n": [{"numeric": ["<", 0]}]}}"#,
        value: r#"{"n": -9223372036854775808}"#,
        flaky: false,
        verdicts: (Some(true), Some(false)),
        covers: |case, outcome, _| {
            mismatch(outcome)
                && any_site(case, |site| {
                    is_numeric_rule(site.rule)
                        && site
                            .leaves
                            .iter()
                            .any(|l| matches!(l, V::Num(t) if beyond_precision(t)))
                })
        },
    },
    Known {
        what: "event-ruler refuses a numeric range whose bounds are equal ([\">=\", 5, \"<=\", 5]: \
               \"Bottom must be less than top\"); the poller takes it as = 5",
        settled_by: "NOT settled: the documentation shows ranges, and no rule for equal bounds",
        doc: LAMBDA_SYNTAX,
        pattern: r#"{"value": {"n": [{"numeric": [">=", 5, "<=", 5]}]}}"#,
        value: r#"{"n": 5}"#,
        flaky: false,
        verdicts: (Some(true), None),
        covers: |case, outcome, why| {
            refused_by_ruler(outcome)
                && why.contains("Bottom must be less than top")
                && any_rule(case, |rule| match operator(rule) {
                    Some(("numeric", V::Arr(items))) => match items.as_slice() {
                        [_, V::Num(a), _, V::Num(b)] => {
                            a.parse::<f64>().ok() == b.parse::<f64>().ok()
                        }
                        _ => false,
                    },
                    _ => false,
                })
        },
    },
    Known {
        what: "event-ruler refuses a cidr of one whole address (/32 for IPv4, /128 for IPv6); the \
               poller matches that address",
        settled_by: "NOT settled: the documentation shows \"10.0.0.0/24\" and states no bound",
        doc: EB_CONTENT,
        pattern: r#"{"value": {"ip": [{"cidr": "10.0.0.1/32"}]}}"#,
        value: r#"{"ip": "10.0.0.1"}"#,
        flaky: false,
        verdicts: (Some(true), None),
        covers: |case, outcome, why| {
            refused_by_ruler(outcome)
                && why.contains("mask bits must be <")
                && any_rule(case, |rule| {
                    matches!(cidr_parts(rule), Some((ip, bits))
                        if (bits == "32" && !ip.contains(':')) || (bits == "128" && ip.contains(':')))
                })
        },
    },
    Known {
        what: "event-ruler refuses a cidr whose IPv6 address embeds an IPv4 one (::ffff:10.0.0.0/104: \
               \"Nonstandard IP address\"); the poller takes it",
        settled_by: "NOT settled: the documentation shows IPv4 and IPv6 addresses, not this form",
        doc: EB_CONTENT,
        pattern: r#"{"value": {"ip": [{"cidr": "::ffff:10.0.0.0/104"}]}}"#,
        value: r#"{"ip": "::ffff:10.0.0.1"}"#,
        flaky: false,
        verdicts: (Some(true), None),
        covers: |case, outcome, why| {
            refused_by_ruler(outcome)
                && why.contains("Nonstandard IP address")
                && any_rule(
                    case,
                    |rule| matches!(cidr_parts(rule), Some((ip, _)) if ip.contains(':') && ip.contains('.')),
                )
        },
    },
    Known {
        what: "event-ruler fails on a numeric bound past the largest double ([\">\", \
               1.7976931348623157e308] or [\"<\", -1.7976931348623157e308]: \
               ArrayIndexOutOfBoundsException); the poller matches nothing there",
        settled_by: "NOT settled: numeric matching is documented for a limited range only",
        doc: EB_CONTENT,
        pattern: r#"{"value": {"n": [{"numeric": [">", 1.7976931348623157e308]}]}}"#,
        value: r#"{"n": 1}"#,
        flaky: false,
        verdicts: (Some(false), None),
        covers: |case, outcome, why| {
            refused_by_ruler(outcome)
                && why.contains("ArrayIndexOutOfBoundsException")
                && any_rule(case, |rule| match operator(rule) {
                    Some(("numeric", arg)) => numbers(arg)
                        .iter()
                        .any(|t| t.parse::<f64>().is_ok_and(|x| x.abs() == f64::MAX)),
                    _ => false,
                })
        },
    },
    Known {
        what: "a key repeated in an object of the data: the poller keeps its last value (as \
               serde_json does), event-ruler matches every value given",
        settled_by: "NOT settled: the documentation says nothing of repeated keys in events (only \
             that a key repeated in a pattern keeps its last reference); RFC 8259 leaves \
             repeated names to the reader",
        doc: EB_CONTENT,
        pattern: r#"{"value": {"a": ["x"]}}"#,
        value: r#"{"a": "x", "a": "y"}"#,
        flaky: false,
        verdicts: (Some(false), Some(true)),
        covers: |case, outcome, _| {
            mismatch(outcome) && matches!(&case.value, Subject::Json(v) if repeats_a_key(v))
        },
    },
    Known {
        what: "a `$or` that is not a list of at least two objects: event-ruler takes it as an \
               ordinary field named \"$or\", the poller refuses the pattern",
        settled_by: "NOT settled: EventBridge documents `$or` with a list of objects only \
             (event-ruler's README keeps \"$or\" as a field name for compatibility)",
        doc: EB_OPERATORS,
        pattern: r#"{"value": {"$or": {"a": [1]}}}"#,
        value: r#"{"$or": {"a": 1}}"#,
        flaky: false,
        verdicts: (None, Some(true)),
        covers: |case, outcome, _| {
            matches!(outcome, (None, Some(_)))
                && any_or(
                    &case.pattern,
                    |alts| !matches!(alts, V::Arr(items) if items.len() >= 2 && items.iter().all(|i| matches!(i, V::Obj(_)))),
                )
        },
    },
    Known {
        what: "a cidr whose IPv4 address has a leading zero (10.0.0.01/24): event-ruler takes it, \
               the poller refuses it",
        settled_by: "NOT settled: the documentation shows IPv4 addresses, not this form",
        doc: EB_CONTENT,
        pattern: r#"{"value": {"ip": [{"cidr": "10.0.0.01/24"}]}}"#,
        value: r#"{"ip": "10.0.0.5"}"#,
        flaky: false,
        verdicts: (None, Some(true)),
        covers: |case, outcome, _| {
            matches!(outcome, (None, Some(_)))
                && any_rule(
                    case,
                    |rule| matches!(cidr_parts(rule), Some((ip, _)) if ip.parse::<IpAddr>().is_err()),
                )
        },
    },
    Known {
        what: "event-ruler misses, at random (from run to run), a string rule of a list that also \
               holds a numeric rule reaching below zero and another string rule ([\"a\", \
               {\"numeric\": [\">\", -5, \"<\", 5]}, \"b\"] against \"a\")",
        settled_by: "for the poller: an event matches a rule list \"if any of the values in the \
             array match\" (event-ruler defect)",
        doc: EB_ARRAYS,
        flaky: true,
        pattern: r#"{"value": {"s": ["a", {"numeric": [">", -5, "<", 5]}, "b"]}}"#,
        value: r#"{"s": "a"}"#,
        verdicts: (Some(true), Some(false)),
        covers: |case, outcome, _| {
            outcome == (Some(true), Some(false))
                && any_site(case, |site| {
                    site.list.len() >= 3
                        && site
                            .list
                            .iter()
                            .any(|r| matches!(operator(r), Some(("numeric", _))))
                })
        },
    },
    Known {
        what: "event-ruler matches any non-empty string with a rule list holding a wildcard that \
               starts with `*` and then an equals-ignore-case rule ([{\"wildcard\": \"*b\"}, \
               {\"equals-ignore-case\": \"x\"}] against \"c\")",
        settled_by: "for the poller: \"c\" neither ends with \"b\" nor equals \"x\" in any case \
             (event-ruler defect)",
        doc: EB_OPERATORS,
        pattern: r#"{"value": {"s": [{"wildcard": "*b"}, {"equals-ignore-case": "x"}]}}"#,
        value: r#"{"s": "c"}"#,
        flaky: false,
        verdicts: (Some(false), Some(true)),
        covers: |case, outcome, _| {
            outcome == (Some(false), Some(true))
                && any_site(case, |site| {
                    site.list.iter().any(|r| {
                        matches!(operator(r), Some(("wildcard", V::Str(w))) if w.starts_with('*'))
                    }) && site
                        .list
                        .iter()
                        .any(|r| matches!(operator(r), Some(("equals-ignore-case", _))))
                })
        },
    },
    Known {
        what: "event-ruler on Java 17 refuses, in `numeric` and `anything-but`, the shortest \
               spelling of some doubles of 16 or 17 digits (-4611686018427388000, which Java \
               17 writes -4.6116860184273879E18: JDK-4511638, fixed in Java 19); the poller takes \
               it, as the double it is",
        settled_by: "for the poller: \"Numeric matching supports the same precision and range as \
             Java's double primitive\" (event-ruler's README), and this number is a double as \
             written (a Java defect, not the engine's rule: it refuses a pattern number no double \
             is, as the poller does)",
        doc: RULER_README,
        pattern: r#"{"value": {"n": [{"numeric": ["<", -4611686018427388000]}]}}"#,
        value: r#"{"n": -9223372036854775808}"#,
        flaky: false,
        verdicts: (Some(true), None),
        covers: |case, outcome, why| {
            refused_by_ruler(outcome)
                && why.contains("Cannot compare number")
                && any_rule(case, |rule| {
                    is_numeric_rule(rule)
                        && match operator(rule) {
                            Some((_, arg)) => numbers(arg)
                                .iter()
                                .any(|t| ruler_comparable(t) && decimal(t).1.len() > 15),
                            None => false,
                        }
                })
        },
    },
    Known {
        what: "an IPv6 address in the data that embeds an IPv4 one (::ffff:10.0.0.1) matches no \
               cidr in event-ruler; the poller matches it as the IPv6 address it is",
        settled_by: "NOT settled: the documentation shows IPv4 and IPv6 addresses, not this form",
        doc: EB_CONTENT,
        flaky: false,
        pattern: r#"{"value": {"ip": [{"cidr": "::/64"}]}}"#,
        value: r#"{"ip": "::ffff:10.0.0.1"}"#,
        verdicts: (Some(true), Some(false)),
        covers: |case, outcome, _| {
            outcome == (Some(true), Some(false))
                && any_site(case, |site| {
                    cidr_parts(site.rule).is_some()
                        && leaf_strings(&site.leaves).any(|t| t.contains(':') && t.contains('.'))
                })
        },
    },
];

/// How many times a flaky repro is judged.
const FLAKY_TRIES: usize = 20;

/// Whether some `$or` of the pattern has an argument satisfying `f`.
fn any_or(v: &V, f: impl Fn(&V) -> bool + Copy) -> bool {
    match v {
        V::Obj(fields) => fields
            .iter()
            .any(|(name, child)| (name == "$or" && f(child)) || any_or(child, f)),
        V::Arr(items) => items.iter().any(|i| any_or(i, f)),
        _ => false,
    }
}

fn known_case(k: &Known) -> Case {
    let value = match parse_json(k.value) {
        Some(v @ V::Obj(_)) => Subject::Json(v),
        _ => Subject::Text(k.value.to_owned()),
    };
    Case {
        pattern: parse_json(k.pattern).expect("a repro's pattern is JSON"),
        value,
        escapes: None,
    }
}

/// JSON text as a [`V`], numbers as written and keys in order, repeated ones kept (what
/// serde_json's `Value` would change); `None` when it is not JSON.
fn parse_json(text: &str) -> Option<V> {
    fn ws(t: &mut &str) {
        *t = t.trim_start_matches([' ', '\t', '\n', '\r']);
    }
    fn string(t: &mut &str) -> Option<String> {
        let mut de = serde_json::Deserializer::from_str(t).into_iter::<String>();
        let parsed = de.next()?.ok()?;
        *t = &t[de.byte_offset()..];
        Some(parsed)
    }
    fn value(t: &mut &str) -> Option<V> {
        ws(t);
        let v = match t.chars().next()? {
            '{' => {
                *t = &t[1..];
                let mut fields = Vec::new();
                ws(t);
                if let Some(rest) = t.strip_prefix('}') {
                    *t = rest;
                    return Some(V::Obj(fields));
                }
                loop {
                    ws(t);
                    let name = string(t)?;
                    ws(t);
                    *t = t.strip_prefix(':')?;
                    fields.push((name, value(t)?));
                    ws(t);
                    if let Some(rest) = t.strip_prefix(',') {
                        *t = rest;
                    } else {
                        *t = t.strip_prefix('}')?;
                        break V::Obj(fields);
                    }
                }
            }
            '[' => {
                *t = &t[1..];
                let mut items = Vec::new();
                ws(t);
                if let Some(rest) = t.strip_prefix(']') {
                    *t = rest;
                    return Some(V::Arr(items));
                }
                loop {
                    items.push(value(t)?);
                    ws(t);
                    if let Some(rest) = t.strip_prefix(',') {
                        *t = rest;
                    } else {
                        *t = t.strip_prefix(']')?;
                        break V::Arr(items);
                    }
                }
            }
            '"' => V::Str(string(t)?),
            _ => {
                let end = t
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
                    .unwrap_or(t.len());
                let (word, rest) = t.split_at(end);
                *t = rest;
                match word {
                    "null" => V::Null,
                    "true" => V::Bool(true),
                    "false" => V::Bool(false),
                    _ => {
                        // JSON's number syntax (not its range: 1e400 is kept as written).
                        let digits = word.strip_prefix('-').unwrap_or(word);
                        let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
                            Some((m, e)) => (m, Some(e.trim_start_matches(['+', '-']))),
                            None => (digits, None),
                        };
                        let (int, frac) = match mantissa.split_once('.') {
                            Some((i, f)) => (i, Some(f)),
                            None => (mantissa, None),
                        };
                        let all_digits =
                            |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
                        let valid = all_digits(int)
                            && (int == "0" || !int.starts_with('0'))
                            && frac.is_none_or(all_digits)
                            && exponent.is_none_or(all_digits);
                        if !valid {
                            return None;
                        }
                        V::Num(word.to_owned())
                    }
                }
            }
        };
        Some(v)
    }
    let mut t = text;
    let v = value(&mut t)?;
    ws(&mut t);
    t.is_empty().then_some(v)
}

/// Non-ASCII characters as `\\uXXXX` (valid inside the JSON strings where they occur), so a
/// Kelvin sign is not read as a K.
fn ascii(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                write!(out, "\\u{unit:04x}").unwrap();
            }
        }
    }
    out
}

fn describe(case: &Case, ours: &Verdict, theirs: &Verdict) -> String {
    let r = case.render();
    format!(
        "  pattern {}\n  value   {}\n  poller {}, event-ruler {}\n",
        ascii(&r.pattern),
        ascii(&r.value),
        ours.short(),
        theirs.short()
    )
}

#[test]
fn the_filter_agrees_with_aws_event_ruler() {
    let started = std::time::Instant::now();
    // FILTER_ORACLE_SEED explores other cases; the test's are SEED's.
    let seed = std::env::var("FILTER_ORACLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SEED);
    let mut rng = Rng(seed);
    let mut cases: Vec<Case> = (0..OBJECT_CASES).map(|_| object_case(&mut rng)).collect();
    cases.extend((0..TEXT_CASES).map(|_| text_case(&mut rng)));
    cases.extend(edge_cases());

    let mut oracle = Oracle::start();
    // The known disagreements' repros first, judged like every case (a flaky one many times).
    let mut known_cases: Vec<(usize, Case)> = Vec::new();
    for (i, k) in KNOWN.iter().enumerate() {
        let tries = if k.flaky { FLAKY_TRIES } else { 1 };
        known_cases.extend((0..tries).map(|_| (i, known_case(k))));
    }
    let repro_cases: Vec<Case> = known_cases.iter().map(|(_, c)| c.clone()).collect();
    let repro_verdicts = judge_all(&mut oracle, &repro_cases);
    let mut stale = Vec::new();
    for (i, k) in KNOWN.iter().enumerate() {
        let judged: Vec<(&Case, &(Verdict, Verdict))> = known_cases
            .iter()
            .zip(&repro_verdicts)
            .filter(|((owner, _), _)| *owner == i)
            .map(|((_, case), verdicts)| (case, verdicts))
            .collect();
        let as_listed =
            |(ours, theirs): &(Verdict, Verdict)| (ours.kind(), theirs.kind()) == k.verdicts;
        if !judged.iter().any(|(_, v)| as_listed(v)) {
            let (case, (ours, theirs)) = judged[0];
            stale.push(format!("  {}:\n{}", k.what, describe(case, ours, theirs)));
        }
    }

    let verdicts = judge_all(&mut oracle, &cases);
    let compared = cases.len();
    let matched = verdicts
        .iter()
        .filter(|(o, _)| *o == Verdict::Match(true))
        .count();
    let refused = verdicts
        .iter()
        .filter(|(o, t)| o.kind().is_none() && t.kind().is_none())
        .count();
    let mut known_hits = vec![0usize; KNOWN.len()];
    let mut unknown = Vec::new();
    for (case, (ours, theirs)) in cases.iter().zip(&verdicts) {
        if ours.kind() == theirs.kind() {
            continue;
        }
        match KNOWN
            .iter()
            .position(|k| (k.covers)(case, (ours.kind(), theirs.kind()), refusal(theirs)))
        {
            Some(i) => known_hits[i] += 1,
            None => unknown.push((case, ours, theirs)),
        }
    }

    println!(
        "filter oracle: {compared} cases compared with event-ruler ({matched} matched, {refused} \
         refused by both), {} known disagreements, {} unknown, in {:.1?}",
        known_hits.iter().sum::<usize>(),
        unknown.len(),
        started.elapsed()
    );
    for (k, hits) in KNOWN.iter().zip(&known_hits) {
        println!(
            "  known ({hits} cases): {}\n    {} ({})",
            k.what, k.settled_by, k.doc
        );
    }

    if let Some(per_kind) = std::env::var("FILTER_ORACLE_MINIMIZE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut picked: Vec<(Case, Outcome)> = Vec::new();
        let mut seen: Vec<(Outcome, usize)> = Vec::new();
        for (case, ours, theirs) in &unknown {
            let outcome = (ours.kind(), theirs.kind());
            let count = match seen.iter_mut().find(|(o, _)| *o == outcome) {
                Some((_, c)) => c,
                None => {
                    seen.push((outcome, 0));
                    &mut seen.last_mut().unwrap().1
                }
            };
            if *count < per_kind {
                *count += 1;
                picked.push(((*case).clone(), outcome));
            }
        }
        println!("minimized disagreements:");
        for (case, ours, theirs) in minimize(&mut oracle, picked) {
            println!("{}", describe(&case, &ours, &theirs));
        }
    }
    oracle.finish();

    let mut report = String::new();
    for (case, ours, theirs) in unknown.iter().take(20) {
        writeln!(report, "{}", describe(case, ours, theirs)).unwrap();
    }
    assert!(
        unknown.is_empty(),
        "{} of {compared} cases disagree with event-ruler beyond the known list; the first 20:\n{report}",
        unknown.len()
    );
    assert!(
        stale.is_empty(),
        "known disagreements that no longer disagree as listed (update KNOWN and the README):\n{}",
        stale.join("\n")
    );
}
