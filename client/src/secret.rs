//! Secrets and where they come from: an environment variable or a file, never the configuration
//! file itself and never the command line, so a config can be printed, committed or shown by
//! `ps` without giving anything away.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Where a secret is read from. In TOML: `{ env = "KAFKA_PASSWORD" }` or
/// `{ file = "/run/secrets/kafka-password" }`.
///
/// A literal value (`password = "hunter2"`) is rejected, and the error does not repeat it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// The value of this environment variable.
    Env(String),
    /// The contents of this file (one trailing line break is dropped), e.g. a mounted Kubernetes,
    /// Docker or systemd credential.
    File(PathBuf),
}

/// Why a literal is refused; shared by every literal type so no value ever reaches a message.
const LITERAL_REFUSED: &str = "a secret (password) is given as a literal value, which is not \
     accepted: give { env = \"VARIABLE\" } or { file = \"/path/to/secret\" } so it never sits in a \
     config file or on a command line";

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretSourceVisitor)
    }
}

struct SecretSourceVisitor;

/// The error for a secret written as a literal value, which never quotes the value.
fn refuse_literal<E: de::Error>() -> Result<SecretSource, E> {
    Err(E::custom(LITERAL_REFUSED))
}

/// `Visitor` methods that refuse a literal of their type: `visit_str(&str), …`.
macro_rules! refuse_literals {
    ($($method:ident($literal:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, _: $literal) -> Result<SecretSource, E> {
                refuse_literal()
            }
        )*
    };
}

// Every `visit_*` for a scalar is overridden: serde's default messages quote the value
// ("invalid type: string \"hunter2\""), which for a password is the leak this type prevents.
impl<'de> Visitor<'de> for SecretSourceVisitor {
    type Value = SecretSource;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{ env = \"VARIABLE\" } or { file = \"/path/to/secret\" }")
    }

    refuse_literals!(
        visit_str(&str),
        visit_bytes(&[u8]),
        visit_i64(i64),
        visit_u64(u64),
        visit_i128(i128),
        visit_u128(u128),
        visit_f64(f64),
        visit_bool(bool),
        visit_char(char),
    );

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<SecretSource, A::Error> {
        refuse_literal()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretSource, A::Error> {
        let mut source = None;
        while let Some(key) = map.next_key::<String>()? {
            let value = match key.as_str() {
                "env" => SecretSource::Env(map.next_value()?),
                "file" => SecretSource::File(map.next_value()?),
                other => return Err(de::Error::unknown_field(other, &["env", "file"])),
            };
            if source.replace(value).is_some() {
                return Err(de::Error::custom(
                    "names more than one source; give exactly one of `env` and `file`",
                ));
            }
        }
        source.ok_or_else(|| {
            de::Error::custom("is empty; give { env = \"VARIABLE\" } or { file = \"/path\" }")
        })
    }
}

impl SecretSource {
    /// Reads the secret. The error describes the problem (variable unset, file unreadable,
    /// empty value) without the value.
    pub fn read(&self) -> Result<Secret, String> {
        let value = match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!(
                        "names the environment variable `{name}`, which is not set"
                    ));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!(
                        "names the environment variable `{name}`, whose value is not UTF-8"
                    ));
                }
            },
            SecretSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    format!(
                        "names the file `{}`, which cannot be read: {e}",
                        path.display()
                    )
                })?;
                let mut text = String::from_utf8(bytes).map_err(|_| {
                    format!("names the file `{}`, which is not UTF-8", path.display())
                })?;
                // Secret files are usually written with a trailing newline (`echo`, editors).
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        if value.is_empty() {
            return Err(match self {
                SecretSource::Env(name) => {
                    format!("names the environment variable `{name}`, which is empty")
                }
                SecretSource::File(path) => {
                    format!("names the file `{}`, which is empty", path.display())
                }
            });
        }
        Ok(Secret(value))
    }
}

/// A secret value, read from its [`SecretSource`]. `Debug` prints `Secret(<redacted>)` and there
/// is no `Display`, so it cannot end up in a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value obtained elsewhere (e.g. from a secrets manager).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for handing to the Kafka client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        password: SecretSource,
    }

    #[test]
    fn env_and_file_sources_parse_from_toml() {
        let env: Holder = toml::from_str("password = { env = \"PW\" }").unwrap();
        assert_eq!(env.password, SecretSource::Env("PW".into()));
        let file: Holder = toml::from_str("password = { file = \"/run/pw\" }").unwrap();
        assert_eq!(file.password, SecretSource::File("/run/pw".into()));
    }

    #[test]
    fn a_literal_password_is_rejected_without_repeating_it() {
        for literal in ["\"hunter2-literal\"", "914377345", "[\"hunter2-literal\"]"] {
            let error = toml::from_str::<Holder>(&format!("password = {literal}"))
                .unwrap_err()
                .message()
                .to_owned();
            assert!(error.contains("not accepted"), "{error}");
            assert!(
                !error.contains("hunter2") && !error.contains("914377345"),
                "{error}"
            );
        }
    }

    #[test]
    fn two_sources_or_none_are_rejected() {
        let both = toml::from_str::<Holder>("password = { env = \"A\", file = \"/b\" }");
        assert!(both.unwrap_err().message().contains("exactly one"));
        let none = toml::from_str::<Holder>("password = {}");
        assert!(none.unwrap_err().message().contains("is empty"));
    }

    #[test]
    fn a_file_secret_loses_its_trailing_line_break_only() {
        let dir = std::env::temp_dir().join(format!("kl-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, " pass word \r\n").unwrap();
        let secret = SecretSource::File(path.clone()).read().unwrap();
        assert_eq!(secret.expose(), " pass word ");
        std::fs::write(&path, "\n").unwrap();
        assert!(
            SecretSource::File(path)
                .read()
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn an_unset_variable_is_named_in_the_error() {
        let error = SecretSource::Env("KL_SURELY_UNSET_VARIABLE_1234".into())
            .read()
            .unwrap_err();
        assert!(
            error.contains("`KL_SURELY_UNSET_VARIABLE_1234`, which is not set"),
            "{error}"
        );
    }

    #[test]
    fn debug_of_a_secret_is_redacted() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }
}
