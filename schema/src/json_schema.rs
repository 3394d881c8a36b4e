//! JSON Schema schemas: a record's data is JSON text already; it is parsed and validated
//! against its schema, and passed on as it is.
//!
//! Not supported yet: schemas whose `$ref`s point at other registered schemas (registry
//! references); such a schema fails to compile, naming the reference, instead of fetching it
//! over the network.

/// A compiled JSON Schema.
#[derive(Debug)]
pub struct JsonSchema {
    validator: jsonschema::Validator,
}

impl JsonSchema {
    /// Compiles the schema `text`.
    ///
    /// # Errors
    /// The text is not JSON, or not a valid schema.
    pub fn compile(text: &str) -> Result<Self, String> {
        let schema: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
        let validator = jsonschema::options()
            .should_validate_formats(false)
            .build(&schema)
            .map_err(|e| format!("is not a valid JSON Schema: {e}"))?;
        Ok(JsonSchema { validator })
    }

    /// Parses `data` and checks it against the schema; returns the value.
    ///
    /// # Errors
    /// The data is not JSON, or not valid against the schema (the first violation is named,
    /// with its place in the document).
    pub fn validate(&self, data: &[u8]) -> Result<serde_json::Value, String> {
        let value: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| format!("is not JSON: {e}"))?;
        if let Some(error) = self.validator.iter_errors(&value).next() {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            return Err(format!(
                "is not valid against its JSON Schema at {at}: {error}"
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_data_passes_and_invalid_data_names_the_place() {
        let s = JsonSchema::compile(
            r#"{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
                "required": ["id"]}"#,
        )
        .unwrap();
        assert_eq!(
            s.validate(br#"{"id": 3, "tags": ["a"]}"#).unwrap(),
            serde_json::json!({"id": 3, "tags": ["a"]})
        );
        let e = s.validate(br#"{"id": 3, "tags": [1]}"#).unwrap_err();
        assert!(e.contains("/tags/0"), "{e}");
        assert!(s.validate(br#"{"tags": []}"#).unwrap_err().contains("id"));
        assert!(s.validate(b"{not json").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused() {
        assert!(JsonSchema::compile("nope").is_err());
        assert!(JsonSchema::compile(r#"{"type": 12}"#).is_err());
    }
}
