//! What authentication tests need: the shared broker's authenticated listeners and test users,
//! secrets in files and the TOML tables that read them, certificates the broker does not trust
//! (made with rcgen), a TCP relay on an address the broker's certificate does not name, and a
//! capture of what `tracing` logs.

use crate::tools::scratch_file;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The shared broker's authenticated listeners (`scripts/services.sh env`): each `host:port`,
/// and the directory of the test PKI's PEM files. The users are [`users`]'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// SASL_PLAINTEXT, mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
    /// (`KAFKA_SASL_PLAINTEXT_SERVERS`).
    pub sasl_plaintext: String,
    /// SSL with the broker's certificate only (`KAFKA_SSL_SERVERS`).
    pub ssl: String,
    /// SSL that requires a client certificate from the test CA (`KAFKA_MTLS_SERVERS`).
    pub mtls: String,
    /// SASL_SSL, the same mechanisms as SASL_PLAINTEXT (`KAFKA_SASL_SSL_SERVERS`).
    pub sasl_ssl: String,
    /// `ca.pem` (the CA of every listener's certificate), `client.pem` and `client.key` (the
    /// certificate the mTLS listener trusts) (`KAFKA_TLS_DIR`).
    pub tls_dir: PathBuf,
}

impl Listeners {
    /// The CA every listener's certificate comes from (`ca.pem`).
    pub fn ca_file(&self) -> PathBuf {
        self.tls_dir.join("ca.pem")
    }

    /// The client certificate and key the mTLS listener trusts (`client.pem`, `client.key`).
    pub fn trusted_client_cert(&self) -> (PathBuf, PathBuf) {
        (
            self.tls_dir.join("client.pem"),
            self.tls_dir.join("client.key"),
        )
    }
}

/// The test users of the shared broker, as `scripts/services.sh` creates them.
pub mod users {
    /// A SASL/PLAIN user that may do anything.
    pub const PLAIN: (&str, &str) = ("kl-plain", "kl-plain-secret");
    /// A SCRAM-SHA-256 and SCRAM-SHA-512 user that may do anything.
    pub const SCRAM: (&str, &str) = ("kl-scram", "kl-scram-secret");
    /// A PLAIN and SCRAM-SHA-512 user that may do only what an ACL grants it
    /// ([`crate::grant`]); its principal is `User:kl-restricted`.
    pub const RESTRICTED: (&str, &str) = ("kl-restricted", "kl-restricted-secret");
    /// The principal of the mTLS listener's client certificate (`client.pem`).
    pub const MTLS_PRINCIPAL: &str = "User:CN=kafka-lambda-test-client";
}

/// `secret` and a line break in a new scratch file, as the TOML source that reads it:
/// `{ file = "<path>" }`.
pub fn secret_file(secret: &str) -> String {
    let path = scratch_file("secret", &format!("{secret}\n"));
    format!("{{ file = \"{}\" }}", path.display())
}

/// A `[table]` of SASL settings (`kafka.auth.sasl`, `auth.sasl`, `mapping.on_failure_auth.sasl`):
/// `mechanism`, `username` and `password`, a TOML password source (see [`secret_file`]).
pub fn sasl_table(table: &str, mechanism: &str, username: &str, password: &str) -> String {
    format!(
        "[{table}]\nmechanism = \"{mechanism}\"\nusername = \"{username}\"\npassword = {password}\n"
    )
}

/// A CA made by the test with rcgen, which the shared broker knows nothing about, its PEM
/// written to a file: a broker certificate checked against it fails, and a client certificate
/// it signs is refused by the mTLS listener.
#[derive(Debug)]
pub struct OwnCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA's certificate, PEM.
    pub pem: PathBuf,
}

impl OwnCa {
    /// A new CA called `name`, written to `dir/<name>.pem`.
    ///
    /// # Panics
    ///
    /// When the certificate cannot be made or written.
    pub fn create(dir: &Path, name: &str) -> OwnCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA cert");
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, issuer.pem()).expect("write CA");
        OwnCa { issuer, pem }
    }

    /// A client certificate with common name `cn` signed by this CA, as `dir/<stem>.pem` and
    /// `dir/<stem>.key`.
    ///
    /// # Panics
    ///
    /// When the certificate cannot be made or written.
    pub fn client_cert(&self, dir: &Path, cn: &str, stem: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

/// A plain TCP relay to a service (a listener of the shared broker, a registry). It copies bytes
/// both ways and never looks at them: a TLS session is the service's own, end to end. Runs
/// until the test process ends.
#[derive(Debug)]
pub struct Relay {
    /// Where it listens (`host:port`).
    pub address: String,
}

impl Relay {
    /// Relays to `target` (`host:port`) from a free port on 127.0.0.2: loopback, but an address
    /// the broker's certificate does not name.
    ///
    /// # Panics
    ///
    /// When 127.0.0.2 cannot be bound (not Linux's loopback).
    pub fn to(target: &str) -> Relay {
        Relay::serve(
            TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2 (Linux loopback)"),
            target,
        )
    }

    /// Relays what `listener` accepts to `target` (`host:port`): a service that comes up at an
    /// address its clients were already given.
    ///
    /// # Panics
    ///
    /// When the listener has no local address.
    pub fn serve(listener: TcpListener, target: &str) -> Relay {
        let address = listener.local_addr().expect("address").to_string();
        let target = target.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay { address }
    }
}

/// Runs `f` with a `tracing` subscriber (this thread only) that captures everything at debug
/// and above; returns `f`'s result and the captured text.
pub fn capture_tracing<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || CaptureWriter(writer.clone()))
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text =
        String::from_utf8_lossy(&buffer.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    (result, text)
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_holds_the_secret_and_a_line_break() {
        let source = secret_file("s3cret");
        let path = source
            .strip_prefix("{ file = \"")
            .and_then(|rest| rest.strip_suffix("\" }"))
            .expect("a file source");
        assert_eq!(std::fs::read_to_string(path).expect("written"), "s3cret\n");
        assert_eq!(
            sasl_table("auth.sasl", "PLAIN", "u", &source),
            format!("[auth.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = {source}\n")
        );
    }
}
