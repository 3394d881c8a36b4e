//! Clients of the two registry APIs, fetching a schema by the id a record's header carries:
//!
//! - a **Confluent-compatible** registry (Confluent Schema Registry, Apicurio's `ccompat` API,
//!   Redpanda, Karapace): `GET {url}/schemas/ids/{id}`, then each reference by
//!   `GET {url}/subjects/{subject}/versions/{version}`, recursively;
//! - **AWS Glue Schema Registry**: `GetSchemaVersion` by `SchemaVersionId`, signed with SigV4
//!   (service `glue`) with the credentials given.
//!
//! Answers are classified for the caller: 404 (Confluent error 40403) and Glue's
//! `EntityNotFoundException` are [`RegistryError::NotFound`]; connection errors, timeouts, 5xx
//! and throttling are [`RegistryError::Unavailable`] (ask again later); other 4xx are
//! [`RegistryError::Refused`] (fix the configuration). Nothing here caches: see
//! [`crate::Schemas`].

use crate::error::RegistryError;
use crate::wire::SchemaId;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use kafka_lambda_events::DataFormat;
use serde::Deserialize;
use std::fmt;
use std::time::{Duration, SystemTime};

/// Most references one schema may pull in, transitively: a guard against reference cycles and
/// runaway schemas, far above what real schemas use.
const MAX_REFERENCES: usize = 256;

/// A schema as the registry holds it, with every schema it references (transitively), those
/// first: what a decoder needs to compile it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The schema's id.
    pub id: SchemaId,
    /// Avro, Protobuf or JSON Schema.
    pub format: DataFormat,
    /// The schema's text as registered (Avro JSON, `.proto` text or a base64
    /// `FileDescriptorProto`, JSON Schema).
    pub text: String,
    /// The schemas it references, each under the name it is referenced by (an Avro full name, a
    /// `.proto` import path, a JSON Schema `$ref` URL), dependencies before their dependents.
    pub references: Vec<NamedSchema>,
}

/// A referenced schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSchema {
    /// The name the referencing schema uses for it.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// How to authenticate to a Confluent-compatible registry.
#[derive(Clone, Default)]
pub struct ConfluentAuth {
    /// HTTP basic authentication: user and password.
    pub basic: Option<(String, String)>,
    /// A bearer token (`Authorization: Bearer …`), for registries behind OAuth.
    pub bearer: Option<String>,
    /// A client certificate and its private key, both PEM, for mutual TLS.
    pub client_identity_pem: Option<Vec<u8>>,
    /// PEM certificates of the CAs to trust for the registry's own certificate, instead of the
    /// system's roots.
    pub server_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for ConfluentAuth {
    /// Says which methods are set, never their secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfluentAuth")
            .field("basic_user", &self.basic.as_ref().map(|(user, _)| user))
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("client_identity", &self.client_identity_pem.is_some())
            .field("server_ca", &self.server_ca_pem.is_some())
            .finish()
    }
}

/// A registry to fetch schemas from.
#[derive(Debug, Clone)]
pub enum Registry {
    /// A Confluent-compatible registry.
    Confluent(ConfluentRegistry),
    /// AWS Glue Schema Registry.
    Glue(GlueRegistry),
}

impl Registry {
    /// Fetches schema `id` with its references.
    ///
    /// # Errors
    /// See the module documentation for how answers are classified.
    pub async fn fetch(&self, id: SchemaId) -> Result<RegisteredSchema, RegistryError> {
        match (self, id) {
            (Registry::Confluent(r), SchemaId::Confluent(n)) => r.fetch(n).await,
            (Registry::Glue(r), SchemaId::Glue(uuid)) => r.fetch(uuid).await,
            (r, id) => Err(RegistryError::WrongRegistry {
                id,
                kind: match id {
                    SchemaId::Confluent(_) => "Confluent",
                    SchemaId::Glue(_) => "AWS Glue",
                },
                registry: r.to_string(),
            }),
        }
    }
}

impl fmt::Display for Registry {
    /// The registry's URL or ARN, without credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Registry::Confluent(r) => f.write_str(&r.url),
            Registry::Glue(r) => f.write_str(&r.arn),
        }
    }
}

/// A Confluent-compatible registry at a base URL.
#[derive(Debug, Clone)]
pub struct ConfluentRegistry {
    url: String,
    http: reqwest::Client,
    auth: ConfluentAuth,
}

/// `GET /schemas/ids/{id}` and `GET /subjects/{s}/versions/{v}` answers (the fields used).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfluentSchema {
    schema: String,
    /// Absent for Avro.
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<ConfluentReference>,
}

#[derive(Deserialize)]
struct ConfluentReference {
    name: String,
    subject: String,
    version: i64,
}

impl ConfluentRegistry {
    /// A client of the registry at `url` (its base: `…/apis/ccompat/v7` for Apicurio), asking
    /// with `auth` and giving up on a request after `timeout`.
    ///
    /// # Errors
    /// The URL is not http(s), or a PEM in `auth` does not parse.
    pub fn new(url: &str, auth: ConfluentAuth, timeout: Duration) -> Result<Self, String> {
        let url = url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout);
        if let Some(pem) = &auth.server_ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the server CA is not PEM certificates: {e}"))?;
            builder = builder.tls_certs_only(roots);
        }
        if let Some(pem) = &auth.client_identity_pem {
            let identity = reqwest::Identity::from_pem(pem).map_err(|e| {
                format!("the client certificate and key are not a PEM certificate and key: {e}")
            })?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(ConfluentRegistry { url, http, auth })
    }

    async fn get(&self, path: &str, id: SchemaId) -> Result<ConfluentSchema, RegistryError> {
        let mut request = self.http.get(format!("{}{path}", self.url)).header(
            "Accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some((user, password)) = &self.auth.basic {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(token) = &self.auth.bearer {
            request = request.bearer_auth(token);
        }
        let (status, body) = exchange(request, &self.url).await?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| RegistryError::Refused {
                registry: self.url.clone(),
                reason: format!("{path} answered {status} with a body that is not a schema: {e}"),
            });
        }
        let code = status.as_u16();
        Err(answer_error(
            &self.url,
            id,
            format!("{path} answered {status}"),
            &body,
            code == 404,
            status.is_server_error() || code == 429 || code == 408,
        ))
    }

    async fn fetch(&self, id: u32) -> Result<RegisteredSchema, RegistryError> {
        let schema_id = SchemaId::Confluent(id);
        let top = self.get(&format!("/schemas/ids/{id}"), schema_id).await?;
        let format = confluent_format(top.schema_type.as_deref());
        // Depth first, dependencies before dependents, each (subject, version) once.
        let mut references = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<(ConfluentReference, bool)> = top
            .references
            .into_iter()
            .rev()
            .map(|r| (r, false))
            .collect();
        let mut pending: Vec<(String, ConfluentSchema)> = Vec::new();
        while let Some((reference, expanded)) = stack.pop() {
            if expanded {
                let (name, schema) = pending.pop().expect("pushed when expanded");
                references.push(NamedSchema {
                    name,
                    text: schema.schema,
                });
                continue;
            }
            if !seen.insert((reference.subject.clone(), reference.version)) {
                continue;
            }
            if seen.len() > MAX_REFERENCES {
                return Err(RegistryError::Unusable {
                    id: schema_id,
                    reason: format!("it references more than {MAX_REFERENCES} schemas"),
                });
            }
            let version = if reference.version < 0 {
                "latest".to_owned()
            } else {
                reference.version.to_string()
            };
            let mut schema = self
                .get(
                    &format!(
                        "/subjects/{}/versions/{version}",
                        url_path_segment(&reference.subject)
                    ),
                    schema_id,
                )
                .await
                .map_err(|e| match e {
                    RegistryError::NotFound { .. } => RegistryError::Unusable {
                        id: schema_id,
                        reason: format!(
                            "its reference `{}` (subject {} version {version}) is not in the registry",
                            reference.name, reference.subject
                        ),
                    },
                    other => other,
                })?;
            let children = std::mem::take(&mut schema.references);
            pending.push((reference.name.clone(), schema));
            stack.push((reference, true));
            stack.extend(children.into_iter().rev().map(|r| (r, false)));
        }
        Ok(RegisteredSchema {
            id: schema_id,
            format,
            text: top.schema,
            references,
        })
    }
}

/// `schemaType` to a data format: absent means Avro.
fn confluent_format(schema_type: Option<&str>) -> DataFormat {
    schema_type.map_or(DataFormat::Avro, DataFormat::from)
}

/// Percent-encodes a subject for a URL path (subjects may hold `/`, `.`, spaces).
fn url_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An AWS Glue schema registry.
#[derive(Clone)]
pub struct GlueRegistry {
    arn: String,
    region: String,
    endpoint: String,
    http: reqwest::Client,
    credentials: SharedCredentialsProvider,
}

impl fmt::Debug for GlueRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlueRegistry")
            .field("arn", &self.arn)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// `GetSchemaVersion`'s answer (the fields used).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GlueSchemaVersion {
    schema_definition: String,
    data_format: String,
}

impl GlueRegistry {
    /// A client of the registry `arn` (`arn:aws:glue:REGION:ACCOUNT:registry/NAME`), in the
    /// ARN's region, at `endpoint` (default: `https://glue.REGION.amazonaws.com`), signing with
    /// `credentials`.
    ///
    /// # Errors
    /// The ARN is not a Glue registry ARN, or the endpoint not an http(s) URL.
    pub fn new(
        arn: &str,
        endpoint: Option<&str>,
        credentials: SharedCredentialsProvider,
        timeout: Duration,
    ) -> Result<Self, String> {
        let region = glue_registry_region(arn)?;
        let endpoint = match endpoint {
            Some(e) if e.starts_with("http://") || e.starts_with("https://") => {
                e.trim_end_matches('/').to_owned()
            }
            Some(e) => return Err(format!("the Glue endpoint `{e}` is not an http(s) URL")),
            None => format!("https://glue.{region}.amazonaws.com"),
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(GlueRegistry {
            arn: arn.to_owned(),
            region,
            endpoint,
            http,
            credentials,
        })
    }

    async fn fetch(&self, version: uuid::Uuid) -> Result<RegisteredSchema, RegistryError> {
        let id = SchemaId::Glue(version);
        let body =
            serde_json::json!({ "SchemaVersionId": version.hyphenated().to_string() }).to_string();
        let credentials =
            self.credentials
                .provide_credentials()
                .await
                .map_err(|e| RegistryError::Refused {
                    registry: self.arn.clone(),
                    reason: format!(
                        "no AWS credentials to sign with: {}",
                        kafka_lambda_events::error_chain(&e)
                    ),
                })?;
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "AWSGlue.GetSchemaVersion"),
        ];
        let signed = sign_glue(
            &self.endpoint,
            &self.region,
            &headers,
            body.as_bytes(),
            credentials,
        )
        .map_err(|reason| RegistryError::Refused {
            registry: self.arn.clone(),
            reason,
        })?;
        let mut request = self.http.post(format!("{}/", self.endpoint)).body(body);
        for (name, value) in headers.iter().copied().chain(
            signed
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        ) {
            request = request.header(name, value);
        }
        let (status, bytes) = exchange(request, &self.arn).await?;
        if status.is_success() {
            let v: GlueSchemaVersion =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Refused {
                    registry: self.arn.clone(),
                    reason: format!("GetSchemaVersion answered {status} with no schema: {e}"),
                })?;
            return Ok(RegisteredSchema {
                id,
                format: DataFormat::from(v.data_format.as_str()),
                text: v.schema_definition,
                references: Vec::new(),
            });
        }
        // The error's type: `__type` in the body (`…#EntityNotFoundException`) or the header.
        let text = String::from_utf8_lossy(&bytes);
        Err(answer_error(
            &self.arn,
            id,
            format!("GetSchemaVersion answered {status}"),
            &bytes,
            text.contains("EntityNotFoundException"),
            status.is_server_error()
                || status.as_u16() == 429
                || text.contains("ThrottlingException"),
        ))
    }
}

/// Sends `request` and reads the whole answer; a request that gets no answer (connection,
/// timeout) is [`RegistryError::Unavailable`].
async fn exchange(
    request: reqwest::RequestBuilder,
    registry: &str,
) -> Result<(reqwest::StatusCode, Vec<u8>), RegistryError> {
    // With its sources: reqwest's own message alone ("error sending request") hides the cause.
    let unavailable = |e: reqwest::Error| RegistryError::Unavailable {
        registry: registry.to_owned(),
        reason: kafka_lambda_events::error_chain(&e),
    };
    let response = request.send().await.map_err(unavailable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unavailable)?;
    Ok((status, body.to_vec()))
}

/// The error of a registry's failed answer (`what`, with the start of its `body`): the schema
/// is not there (`not_found`), asking again later may succeed (`transient`), or the registry
/// refused the request.
fn answer_error(
    registry: &str,
    id: SchemaId,
    what: String,
    body: &[u8],
    not_found: bool,
    transient: bool,
) -> RegistryError {
    let registry = registry.to_owned();
    let reason = || {
        format!(
            "{what}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        )
    };
    if not_found {
        RegistryError::NotFound { id, registry }
    } else if transient {
        RegistryError::Unavailable {
            registry,
            reason: reason(),
        }
    } else {
        RegistryError::Refused {
            registry,
            reason: reason(),
        }
    }
}

/// The region of a Glue registry ARN (`arn:PARTITION:glue:REGION:ACCOUNT:registry/NAME`).
///
/// # Errors
/// It is not such an ARN; the message says what one looks like.
pub fn glue_registry_region(arn: &str) -> Result<String, String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _partition, "glue", region, _account, resource]
            if !region.is_empty()
                && resource
                    .strip_prefix("registry/")
                    .is_some_and(|n| !n.is_empty()) =>
        {
            Ok((*region).to_owned())
        }
        _ => Err(format!(
            "`{arn}` is not an AWS Glue registry ARN (arn:aws:glue:REGION:ACCOUNT:registry/NAME)"
        )),
    }
}

/// The SigV4 headers for a Glue JSON request.
fn sign_glue(
    endpoint: &str,
    region: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: aws_credential_types::Credentials,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("glue")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the Glue request: {e}"))?
        .into();
    let url = format!("{endpoint}/");
    let request = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("cannot sign the Glue request: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("cannot sign the Glue request: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glue_arns_give_their_region_and_others_are_refused() {
        assert_eq!(
            glue_registry_region("arn:aws:glue:eu-west-1:123456789012:registry/orders").unwrap(),
            "eu-west-1"
        );
        for bad in [
            "arn:aws:glue:eu-west-1:123456789012:schema/orders/x",
            "arn:aws:kafka:eu-west-1:123456789012:registry/orders",
            "https://registry.example.com",
            "arn:aws:glue::123456789012:registry/orders",
            "arn:aws:glue:eu-west-1:123456789012:registry/",
        ] {
            assert!(glue_registry_region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subjects_are_escaped_for_the_path() {
        assert_eq!(url_path_segment("orders-value"), "orders-value");
        assert_eq!(url_path_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn schema_type_absent_is_avro() {
        assert_eq!(confluent_format(None), DataFormat::Avro);
        assert_eq!(confluent_format(Some("PROTOBUF")), DataFormat::Protobuf);
        assert_eq!(confluent_format(Some("JSON")), DataFormat::Json);
    }

    #[test]
    fn auth_debug_never_shows_secrets() {
        let auth = ConfluentAuth {
            basic: Some(("user".into(), "hunter2".into())),
            bearer: Some("tok3n".into()),
            ..Default::default()
        };
        let text = format!("{auth:?}");
        assert!(text.contains("user") && !text.contains("hunter2") && !text.contains("tok3n"));
    }
}
