//! A **mock MSK broker** for tests, since Amazon MSK cannot be reached from here. It terminates
//! TLS itself (OpenSSL, with a server certificate for 127.0.0.1 from a CA it makes with rcgen)
//! and speaks just enough of the Kafka protocol (ApiVersions, SaslHandshake for OAUTHBEARER,
//! SaslAuthenticate) to capture the bearer token a real client sends; it serves nothing else.
//! The client's tests and the poller's use it.

use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslMethod};
use openssl::x509::X509;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// A mock MSK broker behind its own TLS: answers ApiVersions, SaslHandshake (OAUTHBEARER only)
/// and SaslAuthenticate, and reports every bearer token it receives. A client that does not
/// complete a TLS handshake trusting [`MockMsk::ca_file`] gets nothing from it.
#[derive(Debug)]
pub struct MockMsk {
    /// Where it accepts TLS connections, on 127.0.0.1.
    pub port: u16,
    /// The PEM file of the CA that signed its certificate (for `127.0.0.1` and `localhost`).
    pub ca_file: PathBuf,
    /// Every bearer token received, in order.
    pub tokens: mpsc::Receiver<String>,
}

impl MockMsk {
    /// Makes a CA and a server certificate (the CA's PEM written into `dir`), then listens on a
    /// free port; runs until the test process ends.
    pub fn start(dir: &Path) -> MockMsk {
        let (acceptor, ca_file) = tls_acceptor(dir, "mock-msk");
        let acceptor = Arc::new(acceptor.build());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock MSK");
        let port = listener.local_addr().expect("address").port();
        let (sender, tokens) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sender = sender.clone();
                let acceptor = acceptor.clone();
                std::thread::spawn(move || {
                    // A client that fails the handshake just goes away; it sent no token.
                    if let Ok(tls) = acceptor.accept(stream) {
                        let _ = serve(tls, &sender);
                    }
                });
            }
        });
        MockMsk {
            port,
            ca_file,
            tokens,
        }
    }

    /// The next bearer token received, waiting at most `timeout`.
    ///
    /// # Panics
    ///
    /// When none comes within `timeout`; the message ends with `what_the_client_said()` (its
    /// log).
    pub fn expect_token(
        &self,
        timeout: Duration,
        what_the_client_said: impl FnOnce() -> String,
    ) -> String {
        self.tokens.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "the mock MSK broker received no token in {timeout:?}; {}",
                what_the_client_said()
            )
        })
    }
}

/// A TLS acceptor for a server called `name` on `127.0.0.1` and `localhost`, with a certificate
/// from a CA made for it, and that CA's PEM file (`dir/<name>-ca.pem`), which clients must trust.
/// The builder is returned so that a server can ask more of its clients (a certificate).
pub(crate) fn tls_acceptor(dir: &Path, name: &str) -> (SslAcceptorBuilder, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct subjects: a leaf named like its issuer looks self-signed to OpenSSL.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("kafka-lambda {name} CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name}.localhost"));
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let ca_file = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_file, ca.pem()).expect("write the server's CA");

    let mut acceptor =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("TLS acceptor");
    acceptor
        .set_certificate(&X509::from_pem(cert.pem().as_bytes()).expect("parse certificate"))
        .expect("set certificate");
    acceptor
        .set_private_key(
            &PKey::private_key_from_pem(key.serialize_pem().as_bytes()).expect("parse key"),
        )
        .expect("set key");
    acceptor
        .check_private_key()
        .expect("key matches certificate");
    (acceptor, ca_file)
}

fn serve(mut stream: impl Read + Write, tokens: &mpsc::Sender<String>) -> std::io::Result<()> {
    loop {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size)?;
        let mut request = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        stream.read_exact(&mut request)?;
        let field = |at: usize| i16::from_be_bytes([request[at], request[at + 1]]);
        let (api_key, version) = (field(0), field(2));
        let correlation = &request[4..8];
        let client_id = field(8).max(0) as usize;
        let body_at = 10 + client_id;
        let mut response = correlation.to_vec();
        match api_key {
            18 => api_versions(&mut response, version),
            17 => {
                // SaslHandshake v0/v1: accept OAUTHBEARER only.
                let length = field(body_at) as usize;
                let mechanism =
                    String::from_utf8_lossy(&request[body_at + 2..body_at + 2 + length]);
                let error: i16 = if mechanism == "OAUTHBEARER" { 0 } else { 33 };
                response.extend(error.to_be_bytes());
                response.extend(1i32.to_be_bytes());
                response.extend(11i16.to_be_bytes());
                response.extend(b"OAUTHBEARER");
            }
            36 => {
                // SaslAuthenticate v0/v1: `n,,\x01auth=Bearer <token>\x01\x01` (RFC 7628).
                let length =
                    i32::from_be_bytes(request[body_at..body_at + 4].try_into().expect("4 bytes"))
                        as usize;
                let message = String::from_utf8_lossy(&request[body_at + 4..body_at + 4 + length]);
                if let Some(token) = message
                    .split('\u{1}')
                    .find_map(|part| part.strip_prefix("auth=Bearer "))
                {
                    let _ = tokens.send(token.to_owned());
                }
                response.extend(0i16.to_be_bytes()); // error code
                response.extend((-1i16).to_be_bytes()); // no error message
                response.extend(0i32.to_be_bytes()); // no auth bytes
                if version >= 1 {
                    response.extend(0i64.to_be_bytes()); // session lifetime: unlimited
                }
            }
            // Anything after authentication (metadata...) is left unanswered.
            _ => continue,
        }
        stream.write_all(&(response.len() as i32).to_be_bytes())?;
        stream.write_all(&response)?;
        stream.flush()?;
    }
}

/// An ApiVersions response (header v0 at every version) offering only what the mock serves.
fn api_versions(response: &mut Vec<u8>, version: i16) {
    let apis: [(i16, i16, i16); 4] = [(18, 0, 3), (17, 0, 1), (36, 0, 1), (3, 0, 4)];
    response.extend(0i16.to_be_bytes());
    if version >= 3 {
        response.push(apis.len() as u8 + 1); // compact array length (unsigned varint, n + 1)
        for (key, min, max) in apis {
            response.extend(key.to_be_bytes());
            response.extend(min.to_be_bytes());
            response.extend(max.to_be_bytes());
            response.push(0); // no tagged fields
        }
        response.extend(0i32.to_be_bytes()); // throttle time
        response.push(0); // no tagged fields
    } else {
        response.extend((apis.len() as i32).to_be_bytes());
        for (key, min, max) in apis {
            response.extend(key.to_be_bytes());
            response.extend(min.to_be_bytes());
            response.extend(max.to_be_bytes());
        }
        if version >= 1 {
            response.extend(0i32.to_be_bytes());
        }
    }
}
