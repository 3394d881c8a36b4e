//! Ad-view events as each producer writes them, and the one row they all become.
//!
//! Three producers write to the same topic, each in its own shape (`README.md` has examples):
//!
//! | shape      | recognized by | time                        | price                          |
//! |------------|---------------|-----------------------------|--------------------------------|
//! | `web`      | `adId`        | `ts`, epoch milliseconds    | `price`, decimal, `currency`?  |
//! | `mobile`   | `ad_id`       | `viewed_at`, RFC 3339       | `price_micros`, `currency`?    |
//! | `exchange` | `creative_id` | `timestamp_s`, epoch seconds| `price: {amount, currency}`    |
//!
//! Unknown extra fields are ignored (producers add fields); a missing currency means USD.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Currency of the shapes that may leave it out.
const DEFAULT_CURRENCY: &str = "USD";

/// Timestamps before this (2001-09-09) are refused: in milliseconds it is where a value given
/// in seconds by mistake would land (1970), in seconds it is older than any ad server.
const EARLIEST_EPOCH_SECONDS: i64 = 1_000_000_000;

/// One ad view, whatever shape it came in: the row written to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdView {
    /// The ad (creative) that was viewed.
    pub(crate) ad_id: String,
    /// Who viewed it; `None` for an anonymous view.
    pub(crate) user_id: Option<String>,
    /// When it was viewed.
    pub(crate) viewed_at: DateTime<Utc>,
    /// What the view cost, in millionths of `currency`'s unit (exact, no floating point).
    pub(crate) price_micros: i64,
    /// ISO 4217 code, upper case.
    pub(crate) currency: String,
    /// The shape it came in.
    pub(crate) shape: Shape,
}

/// The producer shapes this function understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The browser tag: camelCase, epoch milliseconds, decimal price.
    Web,
    /// The mobile SDK: snake_case, nested user, RFC 3339 time, price in micros.
    Mobile,
    /// The ad exchange's server-to-server feed: epoch seconds, price object with currency.
    Exchange,
}

impl Shape {
    /// The name stored in the `source_shape` column.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Shape::Web => "web",
            Shape::Mobile => "mobile",
            Shape::Exchange => "exchange",
        }
    }

    /// The field whose presence identifies the shape.
    fn marker(self) -> &'static str {
        match self {
            Shape::Web => "adId",
            Shape::Mobile => "ad_id",
            Shape::Exchange => "creative_id",
        }
    }
}

const SHAPES: [Shape; 3] = [Shape::Web, Shape::Mobile, Shape::Exchange];

/// Why a record's value is not an ad view. All of these are permanent: retrying the record
/// gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NormalizeError {
    /// The record is a tombstone.
    #[error("the value is null (a tombstone), not an ad view")]
    Null,
    /// The value does not parse as JSON, or is not an object.
    #[error("the value is not a JSON object: {0}")]
    NotAnObject(String),
    /// No shape's marker field is there, or several are.
    #[error("unrecognized ad-view shape: {0}")]
    Unrecognized(String),
    /// The shape is known but a field is missing or wrong.
    #[error("{shape} ad view: {problem}")]
    Invalid {
        /// The shape's name.
        shape: &'static str,
        /// What is wrong, naming the field.
        problem: String,
    },
}

/// Turns a record's value into an [`AdView`], or says why it cannot.
pub(crate) fn normalize(value: Option<&[u8]>) -> Result<AdView, NormalizeError> {
    let value = value.ok_or(NormalizeError::Null)?;
    let json: serde_json::Value = serde_json::from_slice(value)
        .map_err(|error| NormalizeError::NotAnObject(error.to_string()))?;
    let object = json
        .as_object()
        .ok_or_else(|| NormalizeError::NotAnObject(format!("found {}", kind(&json))))?;
    let matching: Vec<Shape> = SHAPES
        .into_iter()
        .filter(|shape| object.contains_key(shape.marker()))
        .collect();
    let shape = match matching[..] {
        [shape] => shape,
        [] => {
            let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
            fields.truncate(10);
            return Err(NormalizeError::Unrecognized(format!(
                "none of the fields `adId` (web), `ad_id` (mobile), `creative_id` (exchange); \
                 found {fields:?}"
            )));
        }
        _ => {
            let markers: Vec<&str> = matching.iter().map(|s| s.marker()).collect();
            return Err(NormalizeError::Unrecognized(format!(
                "the fields {markers:?} belong to different shapes"
            )));
        }
    };
    let invalid = |problem: String| NormalizeError::Invalid {
        shape: shape.as_str(),
        problem,
    };
    match shape {
        Shape::Web => {
            let web: Web = parse(json).map_err(invalid)?;
            if web.ts < EARLIEST_EPOCH_SECONDS * 1000 {
                return Err(invalid(format!(
                    "`ts` {} is before 2001 in milliseconds (seconds given by mistake?)",
                    web.ts
                )));
            }
            Ok(AdView {
                ad_id: non_empty("adId", web.ad_id).map_err(invalid)?,
                user_id: web.user_id.filter(|u| !u.is_empty()),
                viewed_at: DateTime::from_timestamp_millis(web.ts)
                    .ok_or_else(|| invalid(format!("`ts` {} is out of range", web.ts)))?,
                price_micros: price_micros("price", &web.price).map_err(invalid)?,
                currency: currency("currency", web.currency).map_err(invalid)?,
                shape,
            })
        }
        Shape::Mobile => {
            let mobile: Mobile = parse(json).map_err(invalid)?;
            let viewed_at = DateTime::parse_from_rfc3339(&mobile.viewed_at)
                .map_err(|e| {
                    invalid(format!(
                        "`viewed_at` {:?} is not an RFC 3339 time: {e}",
                        mobile.viewed_at
                    ))
                })?
                .with_timezone(&Utc);
            if mobile.price_micros < 0 {
                return Err(invalid(format!(
                    "`price_micros` {} is negative",
                    mobile.price_micros
                )));
            }
            Ok(AdView {
                ad_id: non_empty("ad_id", mobile.ad_id).map_err(invalid)?,
                user_id: mobile.user.and_then(|u| u.id).filter(|u| !u.is_empty()),
                viewed_at,
                price_micros: mobile.price_micros,
                currency: currency("currency", mobile.currency).map_err(invalid)?,
                shape,
            })
        }
        Shape::Exchange => {
            let exchange: Exchange = parse(json).map_err(invalid)?;
            if exchange.timestamp_s < EARLIEST_EPOCH_SECONDS {
                return Err(invalid(format!(
                    "`timestamp_s` {} is before 2001",
                    exchange.timestamp_s
                )));
            }
            Ok(AdView {
                ad_id: non_empty("creative_id", exchange.creative_id).map_err(invalid)?,
                user_id: exchange.viewer_id.filter(|u| !u.is_empty()),
                viewed_at: DateTime::from_timestamp(exchange.timestamp_s, 0).ok_or_else(|| {
                    invalid(format!(
                        "`timestamp_s` {} is out of range",
                        exchange.timestamp_s
                    ))
                })?,
                price_micros: price_micros("price.amount", &exchange.price.amount)
                    .map_err(invalid)?,
                currency: currency("price.currency", Some(exchange.price.currency))
                    .map_err(invalid)?,
                shape,
            })
        }
    }
}

/// The browser tag's shape.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Web {
    ad_id: String,
    #[serde(default)]
    user_id: Option<String>,
    ts: i64,
    price: Decimal,
    #[serde(default)]
    currency: Option<String>,
}

/// The mobile SDK's shape.
#[derive(Deserialize)]
struct Mobile {
    ad_id: String,
    #[serde(default)]
    user: Option<MobileUser>,
    viewed_at: String,
    price_micros: i64,
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Deserialize)]
struct MobileUser {
    #[serde(default)]
    id: Option<String>,
}

/// The ad exchange's shape.
#[derive(Deserialize)]
struct Exchange {
    creative_id: String,
    #[serde(default)]
    viewer_id: Option<String>,
    timestamp_s: i64,
    price: ExchangePrice,
}

#[derive(Deserialize)]
struct ExchangePrice {
    amount: Decimal,
    currency: String,
}

/// A decimal amount as producers send it: a string (`"0.25"`, exact) or a JSON number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Decimal {
    Text(String),
    Number(serde_json::Number),
}

fn parse<T: DeserializeOwned>(json: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(json).map_err(|e| e.to_string())
}

fn non_empty(field: &str, value: String) -> Result<String, String> {
    if value.trim().is_empty() {
        Err(format!("`{field}` is empty"))
    } else {
        Ok(value)
    }
}

fn currency(field: &str, value: Option<String>) -> Result<String, String> {
    let Some(value) = value else {
        return Ok(DEFAULT_CURRENCY.to_owned());
    };
    if value.len() == 3 && value.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(format!(
            "`{field}` {value:?} is not an ISO 4217 code (three letters)"
        ))
    }
}

/// An exact decimal amount in millionths: `"0.25"` → 250 000. Negative amounts and more than
/// six significant decimals are refused.
fn price_micros(field: &str, amount: &Decimal) -> Result<i64, String> {
    let text = match amount {
        Decimal::Text(text) => text.trim().to_owned(),
        // serde_json prints the shortest text that reads back as the same number: 0.25 → "0.25".
        Decimal::Number(number) => number.to_string(),
    };
    let refuse = |why: &str| format!("`{field}` {text:?} {why}");
    let (units, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if units.is_empty() && fraction.is_empty()
        || !units.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
    {
        return Err(refuse("is not a non-negative decimal amount"));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 6 {
        return Err(refuse("has more than six decimals (below a micro-unit)"));
    }
    let units: i64 = if units.is_empty() {
        0
    } else {
        units.parse().map_err(|_| refuse("is too large"))?
    };
    let micros: i64 = format!("{fraction:0<6}").parse().unwrap_or(0);
    units
        .checked_mul(1_000_000)
        .and_then(|u| u.checked_add(micros))
        .ok_or_else(|| refuse("is too large"))
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(value: serde_json::Value) -> Result<AdView, NormalizeError> {
        normalize(Some(value.to_string().as_bytes()))
    }

    /// 2023-11-14T22:13:20Z.
    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn the_three_shapes_become_the_same_view() {
        let expected = |shape, currency: &str| AdView {
            ad_id: "a1".into(),
            user_id: Some("u1".into()),
            viewed_at: at(),
            price_micros: 250_000,
            currency: currency.into(),
            shape,
        };
        assert_eq!(
            view(json!({"adId":"a1","userId":"u1","ts":1_700_000_000_000_i64,"price":"0.25"})),
            Ok(expected(Shape::Web, "USD"))
        );
        assert_eq!(
            view(
                json!({"ad_id":"a1","user":{"id":"u1"},"viewed_at":"2023-11-14T22:13:20Z",
                        "price_micros":250_000})
            ),
            Ok(expected(Shape::Mobile, "USD"))
        );
        assert_eq!(
            view(
                json!({"creative_id":"a1","viewer_id":"u1","timestamp_s":1_700_000_000,
                        "price":{"amount":"0.25","currency":"eur"},"bid_id":"b-77"})
            ),
            Ok(expected(Shape::Exchange, "EUR"))
        );
    }

    #[test]
    fn optional_fields_default() {
        let web =
            view(json!({"adId":"a2","ts":1_700_000_000_123_i64,"price":1.5,"currency":"gbp"}))
                .unwrap();
        assert_eq!(web.user_id, None);
        assert_eq!(web.price_micros, 1_500_000);
        assert_eq!(web.currency, "GBP");
        assert_eq!(web.viewed_at.timestamp_millis(), 1_700_000_000_123);

        let mobile = view(
            json!({"ad_id":"a3","user":null,"viewed_at":"2023-11-15T07:13:20+09:00",
                                 "price_micros":0}),
        )
        .unwrap();
        assert_eq!(mobile.user_id, None);
        assert_eq!(mobile.viewed_at, at(), "offsets are converted to UTC");

        let exchange = view(
            json!({"creative_id":"a4","viewer_id":null,"timestamp_s":1_700_000_000,
                                   "price":{"amount":"2","currency":"USD"}}),
        )
        .unwrap();
        assert_eq!(exchange.user_id, None);
        assert_eq!(exchange.price_micros, 2_000_000);
    }

    #[test]
    fn unrecognized_values_say_what_they_are() {
        let cases: [(Option<&[u8]>, &str); 5] = [
            (None, "the value is null"),
            (Some(b"not json"), "not a JSON object"),
            (Some(b"[1,2]"), "not a JSON object: found an array"),
            (
                Some(br#"{"campaign":"c1"}"#),
                "unrecognized ad-view shape: none of the fields",
            ),
            (
                Some(br#"{"adId":"a","ad_id":"a"}"#),
                r#"the fields ["adId", "ad_id"] belong to different shapes"#,
            ),
        ];
        for (value, message) in cases {
            let error = normalize(value).unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
        }
    }

    #[test]
    fn invalid_fields_of_a_known_shape_are_named() {
        let cases = [
            (
                json!({"adId":"a","ts":1_700_000_000,"price":"0.25"}),
                "web ad view: `ts` 1700000000 is before 2001 in milliseconds",
            ),
            (
                json!({"adId":"a","ts":1_700_000_000_000_i64,"price":"-1"}),
                "`price` \"-1\" is not a non-negative decimal",
            ),
            (
                json!({"adId":"a","ts":1_700_000_000_000_i64,"price":"0.0000001"}),
                "more than six decimals",
            ),
            (
                json!({"adId":"","ts":1_700_000_000_000_i64,"price":"1"}),
                "`adId` is empty",
            ),
            (
                json!({"adId":"a","ts":1_700_000_000_000_i64}),
                "missing field `price`",
            ),
            (
                json!({"ad_id":"a","viewed_at":"yesterday","price_micros":1}),
                "mobile ad view: `viewed_at` \"yesterday\" is not an RFC 3339 time",
            ),
            (
                json!({"ad_id":"a","viewed_at":"2023-11-14T22:13:20Z","price_micros":"1"}),
                "invalid type: string",
            ),
            (
                json!({"creative_id":"a","timestamp_s":1_700_000_000,"price":{"amount":"1","currency":"dollars"}}),
                "`price.currency` \"dollars\" is not an ISO 4217 code",
            ),
        ];
        for (value, message) in cases {
            let error = view(value.clone()).unwrap_err().to_string();
            assert!(error.contains(message), "{value}: {error}");
        }
    }

    #[test]
    fn prices_are_exact() {
        let micros = |text: &str| price_micros("p", &Decimal::Text(text.into()));
        assert_eq!(micros("0.25"), Ok(250_000));
        assert_eq!(micros("12"), Ok(12_000_000));
        assert_eq!(micros(".5"), Ok(500_000));
        assert_eq!(micros("0.123456"), Ok(123_456));
        assert_eq!(micros("0.1234560"), Ok(123_456));
        assert!(micros("").is_err());
        assert!(micros(".").is_err());
        assert!(micros("1e3").is_err());
        assert!(micros("99999999999999999999").is_err());
    }
}
