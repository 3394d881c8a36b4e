//! A **stand-in** for a schema registry's access control. Apicurio Registry, the registry the
//! tests run, authenticates only through an OIDC server, which does not run here; Confluent
//! Schema Registry and its peers check HTTP basic credentials, bearer tokens and client
//! certificates. This front does those checks the way they do (401 with a Confluent error body,
//! or no TLS session at all for a client without a trusted certificate), behind TLS with a
//! certificate from its own CA, and relays every request it lets through to the real Apicurio.
//! It speaks just enough HTTP/1.1 for GET requests, one per connection.

use crate::mock_msk::tls_acceptor;
use openssl::ssl::{SslStream, SslVerifyMode};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What a client must show to be let through.
#[derive(Debug, Clone)]
pub enum RegistryAccess {
    /// `Authorization: Basic` with this username and password.
    Basic {
        /// The username.
        username: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer` with this token.
    Bearer(String),
    /// A client certificate signed by the CA in this PEM file (mutual TLS).
    ClientCertificate(PathBuf),
}

/// A TLS front for the Confluent-compatible registry of the services (see the module
/// documentation). Runs until the test process ends.
#[derive(Debug)]
pub struct RegistryFront {
    /// The registry's base URL through the front (`https://127.0.0.1:<port>/apis/ccompat/v7`).
    pub url: String,
    /// The PEM file of the CA that signed the front's certificate: the client's
    /// `server_root_ca`.
    pub ca_file: PathBuf,
    refused: Arc<AtomicUsize>,
    relayed: Arc<AtomicUsize>,
}

impl RegistryFront {
    /// Starts a front for `upstream` (the registry's base URL, `http://host:port/path`) that
    /// lets through the clients that show `access`; its CA is written into `dir`.
    ///
    /// # Panics
    ///
    /// When the upstream URL is not `http://host:port/path`, or the front cannot listen.
    pub fn start(dir: &Path, upstream: &str, access: RegistryAccess) -> RegistryFront {
        let (authority, path) = upstream
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
            .unwrap_or_else(|| {
                panic!("the upstream registry {upstream} is not http://host:port/path")
            });
        let (mut acceptor, ca_file) = tls_acceptor(dir, "registry-front");
        if let RegistryAccess::ClientCertificate(ca) = &access {
            acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
            acceptor
                .set_ca_file(ca)
                .unwrap_or_else(|e| panic!("the client CA {}: {e}", ca.display()));
        }
        let acceptor = Arc::new(acceptor.build());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the registry front");
        let port = listener.local_addr().expect("address").port();
        let front = RegistryFront {
            url: format!("https://127.0.0.1:{port}/{path}"),
            ca_file,
            refused: Arc::default(),
            relayed: Arc::default(),
        };
        let (refused, relayed) = (front.refused.clone(), front.relayed.clone());
        let upstream = format!("http://{authority}");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (acceptor, access, upstream) =
                    (acceptor.clone(), access.clone(), upstream.clone());
                let (refused, relayed) = (refused.clone(), relayed.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    // A client without a trusted certificate gets no TLS session.
                    let Ok(tls) = acceptor.accept(stream) else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    let counter = if serve(tls, &access, &upstream) {
                        relayed
                    } else {
                        refused
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        front
    }

    /// How many requests (or TLS handshakes) the front has refused.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// How many requests the front has relayed to the registry.
    pub fn relayed(&self) -> usize {
        self.relayed.load(Ordering::Relaxed)
    }
}

/// Reads one request, checks its credentials and answers it: relayed, or 401. Whether it was
/// relayed.
fn serve(tls: SslStream<TcpStream>, access: &RegistryAccess, upstream: &str) -> bool {
    let mut reader = BufReader::new(tls);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return false;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let allowed = match access {
        RegistryAccess::Basic { username, password } => {
            use base64::Engine;
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            authorization.as_deref() == Some(&format!("Basic {expected}"))
        }
        RegistryAccess::Bearer(token) => {
            authorization.as_deref() == Some(&format!("Bearer {token}"))
        }
        // The TLS handshake checked the certificate.
        RegistryAccess::ClientCertificate(_) => true,
    };
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = if !allowed {
        (
            401,
            "application/json".to_owned(),
            br#"{"error_code":401,"message":"Unauthorized"}"#.to_vec(),
        )
    } else {
        relay(&format!("{upstream}{path}"))
    };
    let mut tls = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        if status == 401 {
            "Unauthorized"
        } else {
            "Relayed"
        },
        body.len()
    );
    let _ = tls
        .write_all(head.as_bytes())
        .and_then(|()| tls.write_all(&body));
    let _ = tls.shutdown();
    allowed
}

/// GETs `url` from the registry: status, content type and body; 502 when it does not answer.
fn relay(url: &str) -> (u16, String, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(url).call() {
        Ok(mut response) => {
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let body = response.body_mut().read_to_vec().unwrap_or_default();
            (response.status().as_u16(), content_type, body)
        }
        Err(e) => (502, "text/plain".to_owned(), e.to_string().into_bytes()),
    }
}
