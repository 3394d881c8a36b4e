//! One pattern compiled into conditions, and their evaluation against a record.
//!
//! A pattern is an AND of its fields plus, for each `$or`, "any of these alternatives". Inside a
//! JSON object, field positions are trie indices fixed at compile time, so matching never looks
//! up a name.

use super::RecordView;
use super::doc::{self, Node, Subject, Trie};
use super::json::{Map, Value};
use super::rule::{self, Leaf, Literal, Num, Rule};
use kafka_lambda_events::Header;
use std::cell::OnceCell;

/// A list of rules, ORed.
type Rules = Box<[Rule]>;

/// The top level: conditions on the record's fields.
#[derive(Debug, Clone)]
pub(super) struct RecordCond {
    fields: Vec<RecordField>,
    ors: Vec<Vec<RecordCond>>,
    /// Whether the value's (or key's) object patterns are split between parts of this level
    /// (see [`shares_objects`]).
    joint: bool,
}

#[derive(Debug, Clone)]
enum RecordField {
    Topic(Rules),
    Partition(Rules),
    Headers(HeaderCond),
    Key(Body),
    Value(Body),
}

/// A condition on the key or value as a whole.
#[derive(Debug, Clone)]
enum Body {
    /// `"value": [rules]`: the value as one plain string.
    Rules(Rules),
    /// `"value": {fields}`: the value as a JSON object.
    Object(ObjCond),
}

/// A condition on a JSON object; field indices point into the matching trie node's children.
#[derive(Debug, Clone)]
struct ObjCond {
    fields: Vec<(usize, FieldCond)>,
    ors: Vec<Vec<ObjCond>>,
    /// Whether a field's object patterns are split between parts of this level (see
    /// [`shares_objects`]).
    joint: bool,
}

#[derive(Debug, Clone)]
enum FieldCond {
    Rules(Rules),
    Object(ObjCond),
}

/// A condition on headers by name; every header value is a string leaf.
#[derive(Debug, Clone)]
struct HeaderCond {
    fields: Vec<(Box<str>, Rules)>,
    ors: Vec<Vec<HeaderCond>>,
}

/// A compile error: where (field path) and what.
#[derive(Debug)]
pub(super) struct Invalid {
    pub(super) path: String,
    pub(super) problem: String,
}

fn invalid(path: &str, problem: impl Into<String>) -> Invalid {
    Invalid {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The record fields a pattern may name.
pub(super) const RECORD_FIELDS: &str = "value, key, headers, topic, partition";

/// Compiles one parsed pattern, adding the paths it reads to the value and key tries.
pub(super) fn compile(
    pattern: &Value,
    value: &mut Trie,
    key: &mut Trie,
) -> Result<RecordCond, Invalid> {
    let Value::Object(fields) = pattern else {
        return Err(invalid(
            "",
            "a pattern must be a JSON object, like {\"value\": {\"status\": [\"ok\"]}}",
        ));
    };
    record_cond(fields, "", value, key)
}

fn record_cond(
    fields: &Map<String, Value>,
    path: &str,
    value: &mut Trie,
    key: &mut Trie,
) -> Result<RecordCond, Invalid> {
    if fields.is_empty() {
        return Err(invalid(path, "empty objects are not allowed"));
    }
    let mut cond = RecordCond {
        fields: Vec::new(),
        ors: Vec::new(),
        joint: false,
    };
    for (name, v) in fields {
        let at = join(path, name);
        let field = match name.as_str() {
            "$or" => {
                let alts = or_alternatives(v, &at, |alt, p| record_cond(alt, p, value, key))?;
                cond.ors.push(alts);
                continue;
            }
            "topic" => RecordField::Topic(rules(v, &at, "[\"orders\"]")?),
            "partition" => RecordField::Partition(rules(v, &at, "[0, 1]")?),
            "headers" => match v {
                Value::Object(m) => RecordField::Headers(header_cond(m, &at)?),
                _ => {
                    return Err(invalid(
                        &at,
                        "\"headers\" must be an object of header names, like {\"source\": [\"web\"]}",
                    ));
                }
            },
            "value" => RecordField::Value(body(v, &at, value)?),
            "key" => RecordField::Key(body(v, &at, key)?),
            other => {
                return Err(invalid(
                    &at,
                    format!("unknown record field {other:?}; patterns can match {RECORD_FIELDS}"),
                ));
            }
        };
        cond.fields.push(field);
    }
    cond.joint = shares_objects(&cond);
    Ok(cond)
}

/// `"$or": [{...}, {...}]`: at least two objects, each compiled by `each`.
fn or_alternatives<T>(
    v: &Value,
    path: &str,
    mut each: impl FnMut(&Map<String, Value>, &str) -> Result<T, Invalid>,
) -> Result<Vec<T>, Invalid> {
    const SHAPE: &str =
        "\"$or\" needs a list of at least two objects, like [{\"a\": [1]}, {\"b\": [2]}]";
    let Value::Array(items) = v else {
        return Err(invalid(path, SHAPE));
    };
    if items.len() < 2 {
        return Err(invalid(path, SHAPE));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{path}[{i}]");
            match item {
                Value::Object(m) => {
                    if let Some(op) = m.keys().find(|k| rule::OPERATORS.contains(&k.as_str())) {
                        return Err(invalid(
                            &at,
                            format!(
                                "{op:?} is an operator; each \"$or\" entry is an object of fields, like {{\"a\": [{{{op:?}: ...}}]}}"
                            ),
                        ));
                    }
                    each(m, &at)
                }
                _ => Err(invalid(&at, SHAPE)),
            }
        })
        .collect()
}

/// A rule list: a non-empty array of rules.
fn rules(v: &Value, path: &str, example: &str) -> Result<Rules, Invalid> {
    let Value::Array(items) = v else {
        return Err(invalid(
            path,
            format!(
                "expected a list of rules, like {example}, found {}",
                describe(v)
            ),
        ));
    };
    if items.is_empty() {
        return Err(invalid(
            path,
            "an empty list of rules matches nothing and is not allowed",
        ));
    }
    items
        .iter()
        .map(|item| rule::parse(item).map_err(|problem| invalid(path, problem)))
        .collect()
}

fn describe(v: &Value) -> String {
    match v {
        Value::Object(_) => "an object".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        other => other.to_string(),
    }
}

fn body(v: &Value, path: &str, trie: &mut Trie) -> Result<Body, Invalid> {
    match v {
        Value::Array(_) => {
            trie.leaves = true;
            Ok(Body::Rules(rules(v, path, "[\"text\"]")?))
        }
        Value::Object(m) => Ok(Body::Object(obj_cond(m, path, trie)?)),
        other => Err(invalid(
            path,
            format!(
                "expected a list of rules (plain-string match) or an object (JSON match), found {}",
                describe(other)
            ),
        )),
    }
}

fn obj_cond(fields: &Map<String, Value>, path: &str, trie: &mut Trie) -> Result<ObjCond, Invalid> {
    if fields.is_empty() {
        return Err(invalid(path, "empty objects are not allowed"));
    }
    let mut cond = ObjCond {
        fields: Vec::new(),
        ors: Vec::new(),
        joint: false,
    };
    for (name, v) in fields {
        let at = join(path, name);
        if name == "$or" {
            cond.ors
                .push(or_alternatives(v, &at, |alt, p| obj_cond(alt, p, trie))?);
            continue;
        }
        let i = trie.child(name);
        let child = &mut trie.children[i].1;
        let field = match v {
            Value::Array(_) => {
                let rules = rules(v, &at, "[\"ok\"]")?;
                child.leaves = true;
                // Exact numbers compare text: keep the text of the numbers found here.
                child.numbers |= rules
                    .iter()
                    .any(|r| matches!(r, Rule::Exact(Literal::Num(_))));
                FieldCond::Rules(rules)
            }
            Value::Object(m) => FieldCond::Object(obj_cond(m, &at, child)?),
            other => {
                return Err(invalid(
                    &at,
                    format!(
                        "expected a list of rules, like [{other}], or a nested object, found {}",
                        describe(other)
                    ),
                ));
            }
        };
        cond.fields.push((i, field));
    }
    cond.joint = shares_objects(&cond);
    Ok(cond)
}

/// One level of a pattern (the record, or one JSON object of it): fields ANDed, and `$or`s.
trait Level: Sized {
    /// The `$or`s here, each a list of alternatives.
    fn ors(&self) -> &[Vec<Self>];

    /// The fields here (not in the `$or`s) that hold object patterns, by position.
    fn objects(&self) -> impl Iterator<Item = usize>;
}

impl Level for RecordCond {
    fn ors(&self) -> &[Vec<Self>] {
        &self.ors
    }

    fn objects(&self) -> impl Iterator<Item = usize> {
        self.fields.iter().filter_map(|f| match f {
            RecordField::Value(Body::Object(_)) => Some(0),
            RecordField::Key(Body::Object(_)) => Some(1),
            _ => None,
        })
    }
}

impl Level for ObjCond {
    fn ors(&self) -> &[Vec<Self>] {
        &self.ors
    }

    fn objects(&self) -> impl Iterator<Item = usize> {
        self.fields
            .iter()
            .filter_map(|(i, f)| matches!(f, FieldCond::Object(_)).then_some(*i))
    }
}

/// Whether a field holding object patterns is named in more than one part of a level: its own
/// fields, and each `$or` (with the `$or`s nested in its alternatives). Such parts are judged
/// together, so that one element of an array in the data satisfies all of them, as without `$or`
/// (array consistency, as event-ruler's `rulesForJSONEvent`): `{"a": {"b": [1]}, "$or":
/// [{"a": {"c": [2]}}, ..]}` does not match `{"a": [{"b": 1}, {"c": 2}]}`.
fn shares_objects<L: Level>(level: &L) -> bool {
    fn names<L: Level>(level: &L, out: &mut Vec<usize>) {
        out.extend(level.objects());
        for alt in level.ors().iter().flatten() {
            names(alt, out);
        }
    }
    let mut seen: Vec<usize> = level.objects().collect();
    for alts in level.ors() {
        let mut group = Vec::new();
        for alt in alts {
            names(alt, &mut group);
        }
        if group.iter().any(|n| seen.contains(n)) {
            return true;
        }
        seen.extend(group);
    }
    false
}

/// Whether `check` holds for the levels `levels` with one alternative of each of their `$or`s
/// (and of the `$or`s of the alternatives taken), for some way of choosing them.
fn any_choice<'c, L: Level>(levels: &[&'c L], check: &mut dyn FnMut(&[&'c L]) -> bool) -> bool {
    fn choose<'c, L: Level>(
        chosen: &mut Vec<&'c L>,
        pending: &mut Vec<&'c [L]>,
        check: &mut dyn FnMut(&[&'c L]) -> bool,
    ) -> bool {
        let Some(alts) = pending.pop() else {
            return check(chosen);
        };
        let found = alts.iter().any(|alt| {
            let (c, p) = (chosen.len(), pending.len());
            chosen.push(alt);
            pending.extend(alt.ors().iter().map(Vec::as_slice));
            let found = choose(chosen, pending, check);
            chosen.truncate(c);
            pending.truncate(p);
            found
        });
        pending.push(alts);
        found
    }
    let mut chosen = levels.to_vec();
    let mut pending = levels
        .iter()
        .flat_map(|l| l.ors().iter().map(Vec::as_slice))
        .collect();
    choose(&mut chosen, &mut pending, check)
}

fn header_cond(fields: &Map<String, Value>, path: &str) -> Result<HeaderCond, Invalid> {
    if fields.is_empty() {
        return Err(invalid(path, "empty objects are not allowed"));
    }
    let mut cond = HeaderCond {
        fields: Vec::new(),
        ors: Vec::new(),
    };
    for (name, v) in fields {
        let at = join(path, name);
        if name == "$or" {
            cond.ors.push(or_alternatives(v, &at, header_cond)?);
            continue;
        }
        if v.is_object() {
            return Err(invalid(
                &at,
                "header values are strings: use a list of rules, like [\"web\"], not an object",
            ));
        }
        cond.fields
            .push((name.as_str().into(), rules(v, &at, "[\"web\"]")?));
    }
    Ok(cond)
}

/// Something that yields the leaves a rule list is tested against.
trait Leaves {
    /// Calls `f` per leaf until it returns true; whether it did.
    fn any(&self, f: &mut dyn FnMut(Leaf<'_>) -> bool) -> bool;
}

impl Leaves for Node<'_> {
    fn any(&self, f: &mut dyn FnMut(Leaf<'_>) -> bool) -> bool {
        self.any_leaf(&mut |l| f(l))
    }
}

impl Leaves for Leaf<'_> {
    fn any(&self, f: &mut dyn FnMut(Leaf<'_>) -> bool) -> bool {
        f(*self)
    }
}

/// The values of every header with one name (names may repeat).
struct HeaderValues<'h> {
    headers: &'h [Header],
    name: &'h str,
}

impl Leaves for HeaderValues<'_> {
    fn any(&self, f: &mut dyn FnMut(Leaf<'_>) -> bool) -> bool {
        self.headers
            .iter()
            .filter(|h| h.name == self.name)
            .any(|h| match std::str::from_utf8(&h.value) {
                Ok(s) => f(Leaf::Str(s)),
                Err(_) => f(Leaf::Binary),
            })
    }
}

/// A rule list holds if any rule holds; `exists` looks at whether there is any leaf at all.
fn rules_match(rules: &[Rule], leaves: &dyn Leaves) -> bool {
    rules.iter().any(|rule| match rule {
        Rule::Exists(want) => leaves.any(&mut |_| true) == *want,
        rule => leaves.any(&mut |leaf| rule.matches(leaf)),
    })
}

/// One record being matched; its key and value are read on first use and at most once.
pub(super) struct Eval<'r, 'f> {
    record: &'r RecordView<'r>,
    value_trie: &'f Trie,
    key_trie: &'f Trie,
    value: OnceCell<Subject<'r>>,
    key: OnceCell<Subject<'r>>,
}

impl<'r, 'f> Eval<'r, 'f> {
    pub(super) fn new(
        record: &'r RecordView<'r>,
        value_trie: &'f Trie,
        key_trie: &'f Trie,
    ) -> Self {
        Eval {
            record,
            value_trie,
            key_trie,
            value: OnceCell::new(),
            key: OnceCell::new(),
        }
    }

    fn value(&self) -> &Subject<'r> {
        self.value
            .get_or_init(|| doc::read(self.record.value, self.value_trie))
    }

    fn key(&self) -> &Subject<'r> {
        self.key
            .get_or_init(|| doc::read(self.record.key, self.key_trie))
    }
}

impl RecordCond {
    pub(super) fn matches(&self, r: &Eval<'_, '_>) -> bool {
        if self.joint {
            return self.matches_jointly(r);
        }
        self.fields.iter().all(|f| f.matches(r))
            && self
                .ors
                .iter()
                .all(|alts| alts.iter().any(|alt| alt.matches(r)))
    }

    /// With the value's (or key's) object patterns of every part of a choice of `$or`
    /// alternatives judged together.
    fn matches_jointly(&self, r: &Eval<'_, '_>) -> bool {
        any_choice(&[self], &mut |chosen| {
            let fields = || chosen.iter().flat_map(|c| &c.fields);
            let objects = |key: bool| -> Vec<&ObjCond> {
                fields()
                    .filter_map(|f| match f {
                        RecordField::Value(Body::Object(o)) if !key => Some(o),
                        RecordField::Key(Body::Object(o)) if key => Some(o),
                        _ => None,
                    })
                    .collect()
            };
            let holds = |conds: Vec<&ObjCond>, subject: &Subject<'_>| {
                conds.is_empty() || matches!(subject, Subject::Json(node) if together(&conds, node))
            };
            fields().all(|f| {
                matches!(
                    f,
                    RecordField::Value(Body::Object(_)) | RecordField::Key(Body::Object(_))
                ) || f.matches(r)
            }) && holds(objects(false), r.value())
                && holds(objects(true), r.key())
        })
    }
}

impl RecordField {
    fn matches(&self, r: &Eval<'_, '_>) -> bool {
        match self {
            RecordField::Topic(rules) => rules_match(rules, &Leaf::Str(r.record.topic)),
            RecordField::Partition(rules) => rules_match(
                rules,
                &Leaf::Num(Num::of_i64(i64::from(r.record.partition)), None),
            ),
            RecordField::Headers(cond) => cond.matches(r.record.headers),
            RecordField::Key(body) => body.matches(r.key()),
            RecordField::Value(body) => body.matches(r.value()),
        }
    }
}

impl Body {
    fn matches(&self, subject: &Subject<'_>) -> bool {
        match (self, subject) {
            (Body::Object(cond), Subject::Json(node)) => cond.matches(node),
            (Body::Object(_), _) => false,
            (Body::Rules(rules), Subject::Text(s)) => rules_match(rules, &Leaf::Str(s)),
            // A tombstone (or null key) is Kafka's null: `[null]` and `exists: false` select it.
            (Body::Rules(rules), Subject::Absent) => rules
                .iter()
                .any(|r| matches!(r, Rule::Exists(false) | Rule::Exact(Literal::Null))),
            // A JSON object against a plain-string rule list, or bytes that are not text: only
            // the presence of the value can be tested.
            (Body::Rules(rules), Subject::Json(_) | Subject::Binary) => {
                rules.iter().any(|r| matches!(r, Rule::Exists(true)))
            }
        }
    }
}

impl ObjCond {
    fn matches(&self, node: &Node<'_>) -> bool {
        if self.joint {
            return together(&[self], node);
        }
        match node {
            // Array-consistent: one element must satisfy the whole object condition.
            Node::Arr(items) => items.iter().any(|n| self.matches(n)),
            Node::Obj(fields) => {
                self.fields.iter().all(|(i, f)| f.matches(&fields[*i])) && self.ors_match(node)
            }
            // A scalar or an object without read fields: every field is missing.
            _ => self.fields.iter().all(|(_, f)| f.matches(&Node::Skip)) && self.ors_match(node),
        }
    }

    fn ors_match(&self, node: &Node<'_>) -> bool {
        self.ors
            .iter()
            .all(|alts| alts.iter().any(|alt| alt.matches(node)))
    }
}

/// Whether object conditions hold together on one node: at an array, one element satisfies all
/// of them (array-consistent); elsewhere, for some choice of alternatives of their `$or`s, every
/// field's rules hold, and every field's object patterns hold together.
fn together(conds: &[&ObjCond], node: &Node<'_>) -> bool {
    const SKIP: &Node<'static> = &Node::Skip;
    if let [cond] = conds
        && !cond.joint
    {
        return cond.matches(node);
    }
    let fields = match node {
        Node::Arr(items) => return items.iter().any(|n| together(conds, n)),
        Node::Obj(fields) => Some(fields),
        // A scalar or an object without read fields: every field is missing.
        _ => None,
    };
    let child = |i: usize| fields.map_or(SKIP, |f| &f[i]);
    any_choice(conds, &mut |chosen| {
        let mut judged = Vec::new();
        chosen.iter().flat_map(|c| &c.fields).all(|(i, f)| match f {
            FieldCond::Rules(rules) => rules_match(rules, child(*i)),
            FieldCond::Object(_) if judged.contains(i) => true,
            FieldCond::Object(_) => {
                judged.push(*i);
                let same: Vec<&ObjCond> = chosen
                    .iter()
                    .flat_map(|c| &c.fields)
                    .filter_map(|(j, f)| match f {
                        FieldCond::Object(o) if j == i => Some(o),
                        _ => None,
                    })
                    .collect();
                together(&same, child(*i))
            }
        })
    })
}

impl FieldCond {
    fn matches(&self, node: &Node<'_>) -> bool {
        match self {
            FieldCond::Rules(rules) => rules_match(rules, node),
            FieldCond::Object(cond) => cond.matches(node),
        }
    }
}

impl HeaderCond {
    fn matches(&self, headers: &[Header]) -> bool {
        self.fields
            .iter()
            .all(|(name, rules)| rules_match(rules, &HeaderValues { headers, name }))
            && self
                .ors
                .iter()
                .all(|alts| alts.iter().any(|alt| alt.matches(headers)))
    }
}
