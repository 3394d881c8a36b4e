//! Templates: YAML to JSON, and the intrinsic functions the trigger properties use.

use kafka_lambda_tests::{command_output, output_text, repo_root};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::process::Command;

/// `path` (relative to the repository) as JSON, short-form tags in long form, through
/// `infra/lint.sh json` (PyYAML from the linters' virtualenv).
pub(crate) fn load_template(path: &str) -> Value {
    let mut command = Command::new(repo_root().join("infra/lint.sh"));
    command.arg("json").arg(repo_root().join(path));
    let output = command_output(&mut command);
    assert!(
        output.status.success(),
        "cannot read {path} as a CloudFormation template:\n{}",
        output_text(&output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("infra/lint.sh json {path} printed no JSON: {e}"))
}

pub(crate) fn resources_of_type<'a>(
    template: &'a Value,
    kind: &str,
) -> Vec<(&'a String, &'a Value)> {
    template["Resources"]
        .as_object()
        .map(|resources| {
            resources
                .iter()
                .filter(|(_, resource)| resource["Type"] == kind)
                .collect()
        })
        .unwrap_or_default()
}

/// A template with its parameter values: evaluates conditions, rules and the intrinsic
/// functions that can be resolved before deployment.
pub(crate) struct Stack<'a> {
    template: &'a Value,
    parameters: BTreeMap<String, Value>,
}

impl<'a> Stack<'a> {
    /// Defaults overridden by `overrides`; checks AllowedValues and MinValue/MaxValue.
    pub(crate) fn new(template: &'a Value, overrides: &[(&str, &str)]) -> Result<Self, String> {
        let declared = template["Parameters"]
            .as_object()
            .ok_or("the template has no Parameters")?;
        for (name, _) in overrides {
            if !declared.contains_key(*name) {
                return Err(format!("no parameter `{name}` in the template"));
            }
        }
        let mut parameters = BTreeMap::new();
        for (name, declaration) in declared {
            let text = match overrides.iter().find(|(n, _)| n == name) {
                Some((_, value)) => (*value).to_owned(),
                None => match &declaration["Default"] {
                    Value::Null => return Err(format!("parameter {name} has no default")),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            };
            if let Some(allowed) = declaration["AllowedValues"].as_array() {
                let allowed: Vec<String> = allowed.iter().map(scalar_text).collect();
                if !allowed.contains(&text) {
                    return Err(format!("{name} = {text}: not one of {allowed:?}"));
                }
            }
            for (bound, below) in [("MinValue", true), ("MaxValue", false)] {
                if let (Some(limit), Ok(value)) = (declaration[bound].as_f64(), text.parse::<f64>())
                    && (if below { value < limit } else { value > limit })
                {
                    return Err(format!("{name} = {text}: {bound} is {limit}"));
                }
            }
            let kind = declaration["Type"].as_str().unwrap_or("String");
            let value = if kind == "CommaDelimitedList" || kind.starts_with("List<") {
                Value::from(text.split(',').map(str::to_owned).collect::<Vec<_>>())
            } else {
                Value::String(text)
            };
            parameters.insert(name.clone(), value);
        }
        Ok(Stack {
            template,
            parameters,
        })
    }

    /// Whether a resource's `Condition` (if any) holds.
    pub(crate) fn resource_is_created(&self, resource: &Value) -> Result<bool, String> {
        match resource["Condition"].as_str() {
            None => Ok(true),
            Some(name) => self.condition(name),
        }
    }

    fn condition(&self, name: &str) -> Result<bool, String> {
        let definition = self
            .template
            .pointer(&format!("/Conditions/{name}"))
            .ok_or_else(|| format!("no condition {name}"))?;
        self.truth(definition)
    }

    /// The rules (`Rules` section) these parameters break, as `rule: assertion description`.
    pub(crate) fn violated_rules(&self) -> Result<Vec<String>, String> {
        let mut violated = Vec::new();
        let Some(rules) = self.template["Rules"].as_object() else {
            return Ok(violated);
        };
        for (name, rule) in rules {
            if let Some(condition) = rule.get("RuleCondition")
                && !self.truth(condition)?
            {
                continue;
            }
            for assertion in rule["Assertions"].as_array().into_iter().flatten() {
                if !self.truth(&assertion["Assert"])? {
                    violated.push(format!("{name}: {}", assertion["AssertDescription"]));
                }
            }
        }
        Ok(violated)
    }

    /// Evaluates a condition expression.
    fn truth(&self, expression: &Value) -> Result<bool, String> {
        let (function, arguments) = single_key(expression)
            .ok_or_else(|| format!("not a condition expression: {expression}"))?;
        let arguments_list = || {
            arguments
                .as_array()
                .ok_or_else(|| format!("{function} takes a list: {arguments}"))
        };
        match function {
            "Condition" => self.condition(arguments.as_str().ok_or("Condition takes a name")?),
            "Fn::Not" => Ok(!self.truth(&arguments_list()?[0])?),
            "Fn::And" => {
                for a in arguments_list()? {
                    if !self.truth(a)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for a in arguments_list()? {
                    if self.truth(a)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            "Fn::Equals" => {
                let list = arguments_list()?;
                let side = |v: &Value| -> Result<String, String> {
                    Ok(scalar_text(&self.resolve(v)?.unwrap_or_default()))
                };
                Ok(side(&list[0])? == side(&list[1])?)
            }
            other => Err(format!("condition function {other} is not supported here")),
        }
    }

    /// Resolves intrinsic functions; `None` is `AWS::NoValue`. Refs to resources and
    /// attributes cannot be known before deployment and are an error.
    pub(crate) fn resolve(&self, value: &Value) -> Result<Option<Value>, String> {
        if let Some((function, arguments)) = single_key(value)
            && (function == "Ref" || function.starts_with("Fn::"))
        {
            return self.intrinsic(function, arguments);
        }
        Ok(Some(match value {
            Value::Object(map) => {
                let mut resolved = Map::new();
                for (key, v) in map {
                    if let Some(v) = self.resolve(v)? {
                        resolved.insert(key.clone(), v);
                    }
                }
                Value::Object(resolved)
            }
            Value::Array(items) => {
                let mut resolved = Vec::new();
                for v in items {
                    resolved.extend(self.resolve(v)?);
                }
                Value::Array(resolved)
            }
            scalar => scalar.clone(),
        }))
    }

    fn intrinsic(&self, function: &str, arguments: &Value) -> Result<Option<Value>, String> {
        let list = || {
            arguments
                .as_array()
                .ok_or_else(|| format!("{function} takes a list: {arguments}"))
        };
        let text = |v: &Value| -> Result<String, String> {
            match self.resolve(v)? {
                Some(Value::String(s)) => Ok(s),
                Some(other @ (Value::Number(_) | Value::Bool(_))) => Ok(other.to_string()),
                other => Err(format!("{function}: expected a string, got {other:?}")),
            }
        };
        match function {
            "Ref" => {
                let name = arguments.as_str().ok_or("Ref takes a name")?;
                self.reference(name)
            }
            "Fn::If" => {
                let list = list()?;
                let condition = list[0].as_str().ok_or("Fn::If takes a condition name")?;
                let branch = if self.condition(condition)? {
                    &list[1]
                } else {
                    &list[2]
                };
                self.resolve(branch)
            }
            "Fn::Split" => {
                let list = list()?;
                let delimiter = text(&list[0])?;
                let source = text(&list[1])?;
                Ok(Some(Value::from(
                    source
                        .split(delimiter.as_str())
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                )))
            }
            "Fn::Join" => {
                let list = list()?;
                let delimiter = text(&list[0])?;
                let items = self.resolve(&list[1])?.unwrap_or_default();
                let items = items.as_array().ok_or("Fn::Join takes a list to join")?;
                let parts: Vec<String> = items.iter().map(scalar_text).collect();
                Ok(Some(Value::String(parts.join(&delimiter))))
            }
            "Fn::Select" => {
                let list = list()?;
                let index: usize = text(&list[0])?
                    .parse()
                    .map_err(|e| format!("Fn::Select index: {e}"))?;
                let items = self.resolve(&list[1])?.unwrap_or_default();
                items
                    .as_array()
                    .and_then(|items| items.get(index).cloned())
                    .map(Some)
                    .ok_or_else(|| format!("Fn::Select: no item {index} in {items}"))
            }
            "Fn::Sub" => {
                let (pattern, variables) = match arguments {
                    Value::String(pattern) => (pattern.clone(), Map::new()),
                    Value::Array(list) if list.len() == 2 => {
                        let variables = self.resolve(&list[1])?.unwrap_or_default();
                        (
                            list[0].as_str().ok_or("Fn::Sub pattern")?.to_owned(),
                            variables.as_object().cloned().unwrap_or_default(),
                        )
                    }
                    other => return Err(format!("Fn::Sub takes a string or a pair: {other}")),
                };
                let mut result = String::new();
                let mut rest = pattern.as_str();
                while let Some(start) = rest.find("${") {
                    result.push_str(&rest[..start]);
                    let end = rest[start..]
                        .find('}')
                        .ok_or_else(|| format!("Fn::Sub: unclosed ${{ in {pattern}"))?;
                    let name = &rest[start + 2..start + end];
                    if let Some(literal) = name.strip_prefix('!') {
                        result.push_str(&format!("${{{literal}}}"));
                    } else if let Some(v) = variables.get(name) {
                        result.push_str(&scalar_text(v));
                    } else {
                        let v = self.reference(name)?.unwrap_or_default();
                        result.push_str(&scalar_text(&v));
                    }
                    rest = &rest[start + end + 1..];
                }
                result.push_str(rest);
                Ok(Some(Value::String(result)))
            }
            other => Err(format!("{other} cannot be resolved before deployment")),
        }
    }

    fn reference(&self, name: &str) -> Result<Option<Value>, String> {
        let pseudo = match name {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => "eu-west-1",
            "AWS::AccountId" => "123456789012",
            "AWS::Partition" => "aws",
            "AWS::StackName" => "kafka-lambda-test",
            "AWS::URLSuffix" => "amazonaws.com",
            _ => {
                return self.parameters.get(name).cloned().map(Some).ok_or_else(|| {
                    format!(
                        "Ref {name}: not a parameter (resources are not known before deployment)"
                    )
                });
            }
        };
        Ok(Some(Value::from(pseudo)))
    }
}

/// `{"Key": value}` as (key, value).
fn single_key(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// A scalar as CloudFormation sees it: a string.
pub(crate) fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
