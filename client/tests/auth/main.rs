//! Authentication against real listeners: the shared Apache Kafka broker of
//! `scripts/services.sh` (SASL/PLAIN and SASL/SCRAM over SASL_PLAINTEXT and SASL_SSL, SSL and
//! mTLS), MSK IAM tokens seen on the wire by a **mock MSK broker** behind its own TLS (Amazon
//! MSK cannot be reached from here), and secrets kept out of everything the client prints.

//!
//! Everything they share comes from `kafka_lambda_tests`: the broker's listeners and users, the
//! clients that record what librdkafka reports (`kafka_lambda_tests::client`), the mock MSK
//! broker, and certificates the broker does not trust.

mod config;
mod msk_iam;
mod sasl;
mod secrets;
mod tls;
