//! `[auth.tls]`: TLS to the brokers, optionally with a client certificate (mTLS).

use crate::error::{ConfigError, invalid, join};
use crate::secret::{Secret, SecretSource};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// TLS settings. An empty table (`[kafka.auth.tls]`) means TLS with the system's trusted roots
/// and full verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) that signed the brokers' certificates (librdkafka
    /// `ssl.ca.location`). Default: the system's trusted roots (OpenSSL's default locations, on
    /// Debian `/etc/ssl/certs` from `ca-certificates`; `SSL_CERT_FILE` and `SSL_CERT_DIR`
    /// override them). Amazon MSK's certificates are signed by public roots: leave it unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM file with the client certificate for mTLS (`ssl.certificate.location`); requires
    /// `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM file with the client certificate's private key (`ssl.key.location`); requires
    /// `cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted `key_file` (`ssl.key.password`), from `{ env = "VAR" }` or
    /// `{ file = "/path" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_password: Option<SecretSource>,
    /// Verify the broker's certificate chain (`enable.ssl.certificate.verification`). Default
    /// true. `false` also skips the hostname check and is logged at warn every time a client is
    /// configured: anyone on the path can then impersonate the broker.
    #[serde(default = "yes")]
    pub verify_certificate: bool,
    /// Check that the broker's certificate names the host connected to
    /// (`ssl.endpoint.identification.algorithm = https`). Default true; `false` is logged at warn.
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

const fn yes() -> bool {
    true
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_file: None,
            cert_file: None,
            key_file: None,
            key_password: None,
            verify_certificate: true,
            verify_hostname: true,
        }
    }
}

impl TlsConfig {
    /// Checks the table found at `path` (e.g. `kafka.auth.tls`): files exist and hold PEM of the
    /// right kind, the certificate comes with its key, and reads the key password.
    pub(crate) fn resolve(&self, path: &str) -> Result<Option<Secret>, ConfigError> {
        if let Some(ca) = &self.ca_file {
            check_pem(&join(path, "ca_file"), ca, "CERTIFICATE")?;
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                check_pem(&join(path, "cert_file"), cert, "CERTIFICATE")?;
                check_pem(&join(path, "key_file"), key, "PRIVATE KEY")?;
            }
            (Some(_), None) => {
                return Err(invalid(
                    join(path, "key_file"),
                    "is missing; a client certificate (cert_file) needs its private key",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    join(path, "cert_file"),
                    "is missing; a private key (key_file) needs its client certificate",
                ));
            }
            (None, None) => {}
        }
        match (&self.key_password, &self.key_file) {
            (Some(_), None) => Err(invalid(
                join(path, "key_password"),
                "is only used with key_file (an encrypted private key)",
            )),
            (Some(source), Some(_)) => source
                .read()
                .map(Some)
                .map_err(|problem| invalid(join(path, "key_password"), problem)),
            (None, _) => Ok(None),
        }
    }

    pub(crate) fn apply(&self, cc: &mut ClientConfig, key_password: Option<&Secret>) {
        if let Some(ca) = &self.ca_file {
            cc.set("ssl.ca.location", ca.display().to_string());
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            cc.set("ssl.certificate.location", cert.display().to_string());
            cc.set("ssl.key.location", key.display().to_string());
        }
        if let Some(password) = key_password {
            cc.set("ssl.key.password", password.expose());
        }
        if !self.verify_certificate {
            tracing::warn!(
                "TLS certificate verification is OFF (auth.tls.verify_certificate = false): \
                 the broker's identity is not checked and anyone on the network path can \
                 impersonate it"
            );
            cc.set("enable.ssl.certificate.verification", "false");
            cc.set("ssl.endpoint.identification.algorithm", "none");
        } else if !self.verify_hostname {
            tracing::warn!(
                "TLS hostname verification is OFF (auth.tls.verify_hostname = false): any \
                 certificate the CA signed is accepted for any broker"
            );
            cc.set("enable.ssl.certificate.verification", "true");
            cc.set("ssl.endpoint.identification.algorithm", "none");
        } else {
            cc.set("enable.ssl.certificate.verification", "true");
            cc.set("ssl.endpoint.identification.algorithm", "https");
        }
    }
}

/// Checks that `file` can be read and holds a PEM block whose label contains `label`, without
/// ever printing what it holds.
fn check_pem(field: &str, file: &Path, label: &str) -> Result<(), ConfigError> {
    let bytes = std::fs::read(file).map_err(|e| {
        invalid(
            field,
            format!("names `{}`, which cannot be read: {e}", file.display()),
        )
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text
        .lines()
        .any(|line| line.starts_with("-----BEGIN ") && line.contains(label));
    if !has_block {
        return Err(invalid(
            field,
            format!(
                "names `{}`, which holds no PEM `{label}` block",
                file.display()
            ),
        ));
    }
    Ok(())
}
