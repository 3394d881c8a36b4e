//! Authentication against real brokers: SCRAM against tansu with authentication on, TLS and
//! mTLS through stunnel in front of it, MSK IAM tokens seen on the wire by a mock MSK broker,
//! and secrets kept out of everything the client prints.

mod config;
mod mock_msk;
mod msk_iam;
mod scram;
mod secrets;
mod support;
mod tls;
