//! Input templates: reshape a record's JSON value before it is sent to the function.
//!
//! A template is JSON whose string leaves of the form `"$.path.to.field"` are replaced by what
//! that path selects in the record's value; every other leaf, and every key, is copied as is.
//!
//! ```
//! use kafka_lambda_poller::template::InputTemplate;
//!
//! let template = InputTemplate::parse(
//!     r#"{"id": "$.eventId", "code": "$.returnCode", "first": "$.data[0]", "source": "kafka"}"#,
//! )?;
//! let out = template.apply(br#"{"eventId": "e-1", "returnCode": 503, "data": [{"x": 1}, 2]}"#)?;
//! assert_eq!(out, br#"{"id":"e-1","code":503,"first":{"x": 1},"source":"kafka"}"#);
//! # Ok::<(), kafka_lambda_poller::template::TemplateError>(())
//! ```
//!
//! # Paths
//!
//! A JSONPath subset, always starting at `$` (the whole value):
//!
//! * `.name` — a field; a name is any run of characters other than `.` and `[`;
//! * `['name']` or `["name"]` — a field whose name has dots, brackets or spaces;
//! * `[n]` — the n-th element (from 0) of an array.
//!
//! Every string leaf that starts with `$` is a path and must be valid, so a typo such as
//! `"$eventId"` is reported when the template is parsed rather than sent as text. Write `$$` for
//! a literal string that starts with `$` (`"$$5"` becomes `"$5"`).
//!
//! # Results
//!
//! * A path that selects nothing (a missing field, an index past the end, a field of a
//!   non-object) yields `null`.
//! * Selected values are copied byte for byte from the record (numbers keep their exact text;
//!   whitespace inside a selected object or array is kept). Template keys keep their order.
//! * A record value that is not JSON is an error ([`TemplateError::ValueNotJson`]) — the
//!   caller decides what happens to that record; a tombstone has no value to apply to and is
//!   the caller's case too.
//!
//! # Cost
//!
//! The template is compiled once into literal output bytes with holes. Applying it tokenizes the
//! value once and keeps only the selected parts, as slices of the input: nothing is built for the
//! fields no path selects, and up to 16 distinct paths need no allocation besides the output.

use crate::object_key::ChildKey;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::fmt;

/// A compiled input template.
#[derive(Debug, Clone)]
pub struct InputTemplate {
    /// The output's literal bytes, with the holes removed.
    literal: Vec<u8>,
    /// Holes in output order: at `literal[..at]`'s end, insert what path `slot` selected.
    holes: Vec<Hole>,
    /// The distinct paths, merged into one tree to walk the value once.
    tree: PathNode,
    /// Number of distinct paths (slots).
    slots: usize,
}

#[derive(Debug, Clone, Copy)]
struct Hole {
    at: usize,
    slot: usize,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

/// The paths' steps merged: a node is a position in the value some path reaches.
#[derive(Debug, Clone, Default)]
struct PathNode {
    /// The slot of the path that ends here.
    slot: Option<usize>,
    fields: Vec<(Box<str>, PathNode)>,
    indices: Vec<(usize, PathNode)>,
}

impl PathNode {
    fn has_children(&self) -> bool {
        !self.fields.is_empty() || !self.indices.is_empty()
    }

    fn insert(&mut self, steps: &[Step], next_slot: &mut usize) -> usize {
        let Some((step, rest)) = steps.split_first() else {
            return *self.slot.get_or_insert_with(|| {
                *next_slot += 1;
                *next_slot - 1
            });
        };
        let child = match step {
            Step::Field(name) => {
                let i = match self.fields.iter().position(|(n, _)| **n == **name) {
                    Some(i) => i,
                    None => {
                        self.fields
                            .push((name.as_str().into(), PathNode::default()));
                        self.fields.len() - 1
                    }
                };
                &mut self.fields[i].1
            }
            Step::Index(n) => {
                let i = match self.indices.iter().position(|(m, _)| m == n) {
                    Some(i) => i,
                    None => {
                        self.indices.push((*n, PathNode::default()));
                        self.indices.len() - 1
                    }
                };
                &mut self.indices[i].1
            }
        };
        child.insert(rest, next_slot)
    }
}

/// Distinct paths handled without allocating the slot table.
const STACK_SLOTS: usize = 16;

impl InputTemplate {
    /// Compiles a template.
    ///
    /// # Errors
    /// [`TemplateError::Syntax`] if it is not JSON, [`TemplateError::InvalidPath`] for a string
    /// leaf starting with `$` that is not a valid path.
    pub fn parse(template: &str) -> Result<InputTemplate, TemplateError> {
        let root: Tpl = serde_json::from_str(template).map_err(|e| TemplateError::Syntax {
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
        let mut t = InputTemplate {
            literal: Vec::with_capacity(template.len()),
            holes: Vec::new(),
            tree: PathNode::default(),
            slots: 0,
        };
        t.emit(&root, &mut String::new())?;
        Ok(t)
    }

    fn emit(&mut self, node: &Tpl, at: &mut String) -> Result<(), TemplateError> {
        match node {
            Tpl::Object(fields) => {
                self.literal.push(b'{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        self.literal.push(b',');
                    }
                    write_json(&mut self.literal, key);
                    self.literal.push(b':');
                    let len = at.len();
                    if !at.is_empty() {
                        at.push('.');
                    }
                    at.push_str(key);
                    self.emit(value, at)?;
                    at.truncate(len);
                }
                self.literal.push(b'}');
            }
            Tpl::Array(items) => {
                self.literal.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.literal.push(b',');
                    }
                    let len = at.len();
                    at.push_str(&format!("[{i}]"));
                    self.emit(item, at)?;
                    at.truncate(len);
                }
                self.literal.push(b']');
            }
            Tpl::Str(s) if s.starts_with("$$") => write_json(&mut self.literal, &s[1..]),
            Tpl::Str(s) if s.starts_with('$') => {
                let steps =
                    parse_path(s).map_err(|(position, problem)| TemplateError::InvalidPath {
                        at: at.clone(),
                        path: s.clone(),
                        position,
                        problem,
                    })?;
                let slot = self.tree.insert(&steps, &mut self.slots);
                self.holes.push(Hole {
                    at: self.literal.len(),
                    slot,
                });
            }
            Tpl::Str(s) => write_json(&mut self.literal, s),
            Tpl::Scalar(v) => write_json(&mut self.literal, v),
        }
        Ok(())
    }

    /// Applies the template to a record value and returns the new value.
    ///
    /// # Errors
    /// [`TemplateError::ValueNotJson`] if `value` is not one JSON document.
    pub fn apply(&self, value: &[u8]) -> Result<Vec<u8>, TemplateError> {
        let mut out = Vec::new();
        self.apply_into(value, &mut out)?;
        Ok(out)
    }

    /// Like [`InputTemplate::apply`], appending to `out` (so a buffer can be reused). On error
    /// `out` is left as it was.
    ///
    /// # Errors
    /// [`TemplateError::ValueNotJson`] if `value` is not one JSON document.
    pub fn apply_into(&self, value: &[u8], out: &mut Vec<u8>) -> Result<(), TemplateError> {
        let mut stack = [None; STACK_SLOTS];
        let mut heap = Vec::new();
        let slots: &mut [Option<&RawValue>] = if self.slots <= STACK_SLOTS {
            &mut stack[..self.slots]
        } else {
            heap.resize(self.slots, None);
            &mut heap
        };
        let mut de = serde_json::Deserializer::from_slice(value);
        Extract {
            node: &self.tree,
            slots: &mut *slots,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| TemplateError::ValueNotJson {
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;

        let selected: usize = slots.iter().flatten().map(|r| r.get().len()).sum();
        out.reserve(self.literal.len() + selected + 4 * self.holes.len());
        let mut from = 0;
        for hole in &self.holes {
            out.extend_from_slice(&self.literal[from..hole.at]);
            match slots[hole.slot] {
                Some(raw) => out.extend_from_slice(raw.get().as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
            from = hole.at;
        }
        out.extend_from_slice(&self.literal[from..]);
        Ok(())
    }
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Serializing a string or a JSON scalar into memory cannot fail.
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.extend_from_slice(b"null");
    }
}

/// serde_json's message without the " at line L column C" it appends.
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// Parses `$`, `$.a.b`, `$.a[0]`, `$['a.b']`. The error is (character position, problem).
fn parse_path(path: &str) -> Result<Vec<Step>, (usize, String)> {
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 1; // after '$'
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                if end == start {
                    return Err((start, "empty field name".to_owned()));
                }
                steps.push(Step::Field(chars[start..end].iter().collect()));
                i = end;
            }
            '[' => {
                let open = i;
                let Some(close_rel) = chars[open..].iter().position(|&c| c == ']') else {
                    return Err((open, "'[' is never closed".to_owned()));
                };
                let close = open + close_rel;
                let inner: String = chars[open + 1..close].iter().collect();
                let quoted =
                    |q: char| inner.len() >= 2 && inner.starts_with(q) && inner.ends_with(q);
                if quoted('\'') || quoted('"') {
                    // A quoted name may itself contain ']': look for the closing quote first.
                    steps.push(Step::Field(inner[1..inner.len() - 1].to_owned()));
                    i = close + 1;
                } else if matches!(inner.chars().next(), Some('\'' | '"')) {
                    let q = inner.chars().next().unwrap_or('\'');
                    let Some(end_rel) = chars[open + 2..].iter().position(|&c| c == q) else {
                        return Err((open + 1, "quoted name is never closed".to_owned()));
                    };
                    let end = open + 2 + end_rel;
                    if chars.get(end + 1) != Some(&']') {
                        return Err((end + 1, "expected ']' after the quoted name".to_owned()));
                    }
                    steps.push(Step::Field(chars[open + 2..end].iter().collect()));
                    i = end + 2;
                } else if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
                    let n = inner
                        .parse()
                        .map_err(|_| (open + 1, format!("index {inner} is too large")))?;
                    steps.push(Step::Index(n));
                    i = close + 1;
                } else {
                    return Err((
                        open + 1,
                        "expected an index like [0] or a quoted name like ['name'] inside []"
                            .to_owned(),
                    ));
                }
            }
            _ if i == 1 => {
                return Err((
                    1,
                    "expected '.' or '[' after '$' (write \"$$\" for a literal string starting with '$')"
                        .to_owned(),
                ));
            }
            c => return Err((i, format!("expected '.' or '[', found {c:?}"))),
        }
    }
    Ok(steps)
}

/// Walks the value along the path tree, keeping the raw JSON of each selected position.
struct Extract<'t, 's, 'de> {
    node: &'t PathNode,
    slots: &'s mut [Option<&'de RawValue>],
}

impl<'de> DeserializeSeed<'de> for Extract<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let Some(slot) = self.node.slot else {
            return d.deserialize_any(self);
        };
        let raw = <&'de RawValue>::deserialize(d)?;
        self.slots[slot] = Some(raw);
        if self.node.has_children() {
            // A path ends here and others go deeper ("$.a" and "$.a.b"): walk the kept slice.
            let mut inner = serde_json::Deserializer::from_str(raw.get());
            d_walk(self.node, self.slots, &mut inner).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

fn d_walk<'de>(
    node: &PathNode,
    slots: &mut [Option<&'de RawValue>],
    d: &mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
) -> Result<(), serde_json::Error> {
    d.deserialize_any(Extract { node, slots })
}

impl<'de> Visitor<'de> for Extract<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let found = match self.node.indices.iter().find(|(n, _)| *n == i) {
                Some((_, child)) => seq
                    .next_element_seed(Extract {
                        node: child,
                        slots: &mut *self.slots,
                    })?
                    .is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !found {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(found) = map.next_key_seed(ChildKey(&self.node.fields))? {
            match found {
                Some(i) => map.next_value_seed(Extract {
                    node: &self.node.fields[i].1,
                    slots: &mut *self.slots,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The template as written, keys in order (a repeated key keeps its first place and last value).
enum Tpl {
    Object(Vec<(String, Tpl)>),
    Array(Vec<Tpl>),
    Str(String),
    Scalar(serde_json::Value),
}

impl<'de> Deserialize<'de> for Tpl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tpl, D::Error> {
        d.deserialize_any(TplVisitor)
    }
}

struct TplVisitor;

impl<'de> Visitor<'de> for TplVisitor {
    type Value = Tpl;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON template")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Tpl, E> {
        Ok(Tpl::Scalar(b.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Tpl, E> {
        Ok(Tpl::Scalar(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Tpl, E> {
        Ok(Tpl::Scalar(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Tpl, E> {
        Ok(Tpl::Scalar(n.into()))
    }

    fn visit_unit<E>(self) -> Result<Tpl, E> {
        Ok(Tpl::Scalar(serde_json::Value::Null))
    }

    fn visit_str<E>(self, s: &str) -> Result<Tpl, E> {
        Ok(Tpl::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Tpl, E> {
        Ok(Tpl::Str(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tpl, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tpl::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tpl, A::Error> {
        let mut fields: Vec<(String, Tpl)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Tpl>()? {
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key, value)),
            }
        }
        Ok(Tpl::Object(fields))
    }
}

/// Why a template could not be compiled or applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template is not JSON (a configuration error).
    Syntax {
        /// 1-based line in the template.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// A string leaf starting with `$` is not a valid path (a configuration error).
    InvalidPath {
        /// Where the leaf is in the template (`data.first`, `items[1]`; empty for the root).
        at: String,
        /// The path as written.
        path: String,
        /// 0-based character position of the problem in `path`.
        position: usize,
        /// What is wrong.
        problem: String,
    },
    /// The record value is not JSON (a property of that record: apply the failure policy).
    ValueNotJson {
        /// 1-based line in the value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Syntax {
                line,
                column,
                message,
            } => write!(
                f,
                "input template is not valid JSON: {message} at line {line} column {column}"
            ),
            TemplateError::InvalidPath {
                at,
                path,
                position,
                problem,
            } => {
                f.write_str("input template")?;
                if !at.is_empty() {
                    write!(f, " at {at}")?;
                }
                write!(
                    f,
                    ": invalid path {path:?}: {problem} at position {position}"
                )
            }
            TemplateError::ValueNotJson {
                line,
                column,
                message,
            } => write!(
                f,
                "record value is not JSON, so the input template cannot apply: {message} at line {line} column {column}"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

#[cfg(test)]
mod tests;
