//! The orders `avro-orders` reads, what it sums, and its configuration.

use kafka_lambda_handler::Outcome;
use kafka_lambda_handler::env::{EnvVarError, EnvVars, FromEnv};
use kafka_lambda_handler::schema::ConfluentAuth;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The Avro schema the orders are written with (`orders.avsc`); the function takes any schema
/// the registry holds that reads into [`Order`] (fields added later with defaults are fine).
pub const ORDER_SCHEMA: &str = include_str!("../orders.avsc");

/// An order, as the Avro record reads into it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: i64,
    /// Where it stands.
    pub status: Status,
    /// Its total, in cents.
    pub total_cents: i64,
    /// A note, when the customer left one (an Avro union with null).
    pub note: Option<String>,
}

/// The Avro enum `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Placed.
    New,
    /// Paid.
    Paid,
    /// On its way.
    Shipped,
}

/// Orders and cents per status, over a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Orders read.
    pub orders: usize,
    /// `(orders, cents)` per status.
    pub by_status: BTreeMap<Status, (usize, i64)>,
}

impl Summary {
    /// Counts `order`.
    pub fn add(&mut self, order: &Order) {
        self.orders += 1;
        let entry = self.by_status.entry(order.status).or_default();
        entry.0 += 1;
        entry.1 += order.total_cents;
    }

    /// The invocation's answer: the partial batch response of `outcome` plus the summary.
    pub fn into_response(self, outcome: &Outcome) -> serde_json::Value {
        let mut response = serde_json::to_value(outcome.batch_response())
            .unwrap_or_else(|_| serde_json::json!({"batchItemFailures": []}));
        response["orders"] = self.orders.into();
        response["byStatus"] = self
            .by_status
            .iter()
            .map(|(status, (orders, cents))| {
                (
                    format!("{status:?}").to_uppercase(),
                    serde_json::json!({"orders": orders, "totalCents": cents}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        response
    }
}

/// The registry variable.
pub const REGISTRY_URL_VAR: &str = "SCHEMA_REGISTRY_URL";
/// Basic authentication's user.
pub const USER_VAR: &str = "SCHEMA_REGISTRY_USER";
/// Basic authentication's password.
pub const PASSWORD_VAR: &str = "SCHEMA_REGISTRY_PASSWORD";

/// The function's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Confluent-compatible registry's base URL.
    pub registry_url: String,
    /// Basic authentication, when both variables are set.
    pub basic: Option<(String, String)>,
}

impl Config {
    /// How to authenticate to the registry.
    pub fn auth(&self) -> ConfluentAuth {
        ConfluentAuth {
            basic: self.basic.clone(),
            ..ConfluentAuth::default()
        }
    }
}

impl FromEnv for Config {
    type Error = EnvVarError;

    fn from_vars(env: &EnvVars) -> Result<Self, EnvVarError> {
        let registry_url = env.required(
            REGISTRY_URL_VAR,
            "is not set: give the schema registry's base URL, e.g. https://registry:8081",
        )?;
        let basic = match (env.get(USER_VAR)?, env.get(PASSWORD_VAR)?) {
            (Some(user), Some(password)) => Some((user, password)),
            _ => None,
        };
        Ok(Config {
            registry_url,
            basic,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_required_and_basic_auth_optional() {
        assert!(Config::from_vars(&EnvVars::from_pairs([("X", "y")])).is_err());
        let c = Config::from_vars(&EnvVars::from_pairs([
            (REGISTRY_URL_VAR, "http://sr:8081"),
            (USER_VAR, "u"),
            (PASSWORD_VAR, "p"),
        ]))
        .unwrap();
        assert_eq!(c.registry_url, "http://sr:8081");
        assert_eq!(c.auth().basic, Some(("u".into(), "p".into())));
    }
}
