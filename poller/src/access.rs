//! Authorization errors: which permission the poller's principal lacks on which resource, told
//! so that an operator can grant it. The brokers answer an unauthorized request with a bare code
//! (`TOPIC_AUTHORIZATION_FAILED`, …); this module turns it, with what the caller knows (the
//! mapping's group, the partition's topic, the on-failure topic), into an [`AccessDenied`] that
//! names the resource, the operation and the ACL to add.
//!
//! What the poller does about one: a source topic or the consumer group the principal may not
//! READ stops the mapping ([`DenialStop`]): it drains, commits what was delivered and returns the
//! error, and the process exits non-zero. An on-failure topic it may not WRITE blocks the partition
//! (see `Deliverer::give_up`), which retries until the ACL is there; nothing is committed past it.

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::fmt;
use std::fmt::Write as _;
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;

/// What the poller asks of Amazon MSK IAM: the `kafka-cluster:*` actions, per resource it uses
/// them on. The one list behind the advice of [`AccessDenied`] and the task role of
/// `infra/poller-service.yaml` (the deploy tests derive what the role must grant from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MskIamGrant {
    /// The resource, as an IAM policy names it (`cluster`, `topic`, `group`) and what it is to
    /// the poller.
    pub resource: MskIamResource,
    /// The actions to allow on it.
    pub actions: &'static [&'static str],
}

/// A resource the poller needs MSK IAM actions on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MskIamResource {
    /// The cluster: connecting at all.
    Cluster,
    /// A mapping's source topic.
    SourceTopic,
    /// A mapping's consumer group.
    ConsumerGroup,
    /// A mapping's `on_failure` topic.
    DeadLetterTopic,
    /// The cluster again, for the idempotent producer of the `on_failure` topic (its producer id).
    ClusterForDeadLetters,
}

/// Every MSK IAM action the poller uses (see [`MskIamGrant`]); the dead-letter grants only apply
/// to mappings with an `on_failure` topic.
pub const MSK_IAM_GRANTS: [MskIamGrant; 5] = [
    MskIamGrant {
        resource: MskIamResource::Cluster,
        actions: &["kafka-cluster:Connect"],
    },
    MskIamGrant {
        resource: MskIamResource::SourceTopic,
        actions: &["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
    },
    MskIamGrant {
        resource: MskIamResource::ConsumerGroup,
        actions: &["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
    },
    MskIamGrant {
        resource: MskIamResource::DeadLetterTopic,
        actions: &["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
    },
    MskIamGrant {
        resource: MskIamResource::ClusterForDeadLetters,
        actions: &["kafka-cluster:WriteDataIdempotently"],
    },
];

/// `kafka-cluster:A and kafka-cluster:B on the topic, kafka-cluster:C on the cluster`: what to
/// allow on `resources`, from [`MSK_IAM_GRANTS`].
fn iam_actions(resources: &[MskIamResource]) -> String {
    let mut advice = String::new();
    for grant in MSK_IAM_GRANTS
        .iter()
        .filter(|grant| resources.contains(&grant.resource))
    {
        if !advice.is_empty() {
            advice.push_str(", ");
        }
        let on = match grant.resource {
            MskIamResource::Cluster | MskIamResource::ClusterForDeadLetters => "the cluster",
            MskIamResource::SourceTopic | MskIamResource::DeadLetterTopic => "the topic",
            MskIamResource::ConsumerGroup => "the group",
        };
        let _ = write!(advice, "{} on {on}", grant.actions.join(" and "));
    }
    advice
}

/// Who the brokers see, as far as the client's settings tell: what an ACL has to name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A SASL PLAIN or SCRAM user: `User:<name>` (unless the brokers map principals otherwise).
    User(String),
    /// The subject of the TLS client certificate: `User:<its distinguished name>` by default.
    Certificate,
    /// SASL/OAUTHBEARER, which the poller uses for Amazon MSK IAM: access is the IAM policy of
    /// the role, not Kafka ACLs.
    MskIam,
    /// No authentication: `User:ANONYMOUS`.
    Anonymous,
}

impl Principal {
    /// The principal a client made with `config` authenticates as (from `sasl.mechanism`,
    /// `sasl.username` and the client certificate settings, wherever they were set).
    pub fn of(config: &ClientConfig) -> Principal {
        let sasl = config
            .get("security.protocol")
            .is_some_and(|protocol| protocol.to_ascii_uppercase().starts_with("SASL"));
        match (
            sasl,
            config.get("sasl.mechanism"),
            config.get("sasl.username"),
        ) {
            (true, Some(mechanism), _) if mechanism.eq_ignore_ascii_case("OAUTHBEARER") => {
                Principal::MskIam
            }
            (true, _, Some(user)) => Principal::User(user.to_owned()),
            _ if [
                "ssl.certificate.location",
                "ssl.certificate.pem",
                "ssl.keystore.location",
            ]
            .iter()
            .any(|key| config.get(key).is_some()) =>
            {
                Principal::Certificate
            }
            _ => Principal::Anonymous,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(name) => write!(f, "User:{name}"),
            Principal::Certificate => {
                f.write_str("User:<distinguished name of the client certificate>")
            }
            Principal::MskIam => f.write_str("the poller's IAM role"),
            Principal::Anonymous => f.write_str("User:ANONYMOUS"),
        }
    }
}

/// The principal lacks a permission the poller needs. The message names the resource, the
/// missing operation and the ACL (or, with MSK IAM, the IAM actions) to add.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    /// READ on a source topic (it implies the DESCRIBE that metadata and offset look-ups need).
    #[error(
        "not authorized to read topic {topic}: grant {principal} READ on topic {topic} ({})",
        fix(
            principal,
            "Read",
            "--topic",
            topic,
            &iam_actions(&[MskIamResource::SourceTopic])
        )
    )]
    ReadTopic {
        /// The topic.
        topic: String,
        /// Who lacks it.
        principal: Principal,
    },
    /// READ on the consumer group: joining it, fetching and committing its offsets.
    #[error(
        "not authorized to use consumer group {group}: grant {principal} READ on group {group} ({})",
        fix(
            principal,
            "Read",
            "--group",
            group,
            &iam_actions(&[MskIamResource::ConsumerGroup])
        )
    )]
    ReadGroup {
        /// The consumer group.
        group: String,
        /// Who lacks it.
        principal: Principal,
    },
    /// WRITE on the `on_failure` topic. The idempotent dead-letter producer also needs it for
    /// its producer id (WRITE on any topic stands in for IDEMPOTENT_WRITE on the cluster).
    #[error(
        "not authorized to write the on_failure topic {topic}: grant {principal} WRITE on topic {topic} ({})",
        fix(
            principal,
            "Write",
            "--topic",
            topic,
            &iam_actions(&[
                MskIamResource::DeadLetterTopic,
                MskIamResource::ClusterForDeadLetters
            ])
        )
    )]
    WriteDeadLetter {
        /// The on-failure topic.
        topic: String,
        /// Who lacks it.
        principal: Principal,
    },
}

/// How to grant `operation` on a resource: the `kafka-acls.sh` command, or the IAM actions.
fn fix(principal: &Principal, operation: &str, flag: &str, name: &str, iam: &str) -> String {
    match principal {
        Principal::MskIam => format!("Amazon MSK IAM: allow {iam} in the role's policy"),
        _ => format!(
            "kafka-acls.sh --bootstrap-server <broker> --add --allow-principal {principal} \
             --operation {operation} {flag} {name}"
        ),
    }
}

/// What kind of resource an authorization error code is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// `TOPIC_AUTHORIZATION_FAILED`.
    Topic,
    /// `GROUP_AUTHORIZATION_FAILED`.
    Group,
    /// `CLUSTER_AUTHORIZATION_FAILED` (for the poller: an idempotent producer's producer id).
    Cluster,
}

impl Denied {
    /// The kind of `code`, when it is an authorization error the poller can name a fix for.
    pub(crate) fn of(code: RDKafkaErrorCode) -> Option<Denied> {
        match code {
            RDKafkaErrorCode::TopicAuthorizationFailed => Some(Denied::Topic),
            RDKafkaErrorCode::GroupAuthorizationFailed => Some(Denied::Group),
            RDKafkaErrorCode::ClusterAuthorizationFailed => Some(Denied::Cluster),
            _ => None,
        }
    }

    /// The kind of authorization error `error` reports. A client that stopped on a fatal error
    /// reports only `Fatal`; the code that stopped it is asked from `client`.
    pub(crate) fn of_error<C: ClientContext>(
        error: &KafkaError,
        client: &Client<C>,
    ) -> Option<Denied> {
        match error.rdkafka_error_code()? {
            RDKafkaErrorCode::Fatal => Denied::of(client.fatal_error()?.0),
            code => Denied::of(code),
        }
    }
}

/// A mapping's first authorization error, which stops it. Whichever part of the mapping meets
/// one (the consumer's poll loop, a partition worker) reports it here; the mapping drains,
/// commits what was delivered and returns it, so the process exits non-zero naming the ACL.
/// Stopping, rather than waiting for the ACL, makes the missing permission as visible as a
/// crash to the supervisor, and loses nothing: no offset past a delivered record is committed.
#[derive(Debug)]
pub(crate) struct DenialStop {
    principal: Principal,
    first: OnceLock<AccessDenied>,
    stop: CancellationToken,
}

impl DenialStop {
    /// Reports for `principal`, and cancels `stop` (the mapping's shutdown) on the first report.
    pub(crate) fn new(principal: Principal, stop: CancellationToken) -> Self {
        DenialStop {
            principal,
            first: OnceLock::new(),
            stop,
        }
    }

    /// Who the mapping's clients authenticate as.
    pub(crate) fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Logs `denied` at error and stops the mapping; a later report (each partition of a
    /// refused topic reports it) is logged at debug only.
    pub(crate) fn report(&self, mapping: &str, denied: AccessDenied) {
        let text = denied.to_string();
        if self.first.set(denied).is_ok() {
            tracing::error!(%mapping, "{text}; stopping the mapping: in-flight batches finish, what was delivered is committed, nothing else");
        } else {
            tracing::debug!(%mapping, "{text} (the mapping is stopping already)");
        }
        self.stop.cancel();
    }

    /// The first authorization error reported, if any.
    pub(crate) fn first(&self) -> Option<&AccessDenied> {
        self.first.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_config(settings: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in settings {
            config.set(*key, *value);
        }
        config
    }

    #[test]
    fn the_principal_follows_the_authentication_settings() {
        let cases = [
            (vec![], Principal::Anonymous),
            (
                vec![
                    ("security.protocol", "SASL_SSL"),
                    ("sasl.mechanism", "SCRAM-SHA-512"),
                    ("sasl.username", "poller"),
                ],
                Principal::User("poller".into()),
            ),
            (
                vec![
                    ("security.protocol", "sasl_plaintext"),
                    ("sasl.username", "poller"),
                ],
                Principal::User("poller".into()),
            ),
            (
                vec![
                    ("security.protocol", "SASL_SSL"),
                    ("sasl.mechanism", "OAUTHBEARER"),
                ],
                Principal::MskIam,
            ),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.certificate.location", "/c.pem"),
                ],
                Principal::Certificate,
            ),
            // A username without SASL is not used by librdkafka.
            (vec![("sasl.username", "poller")], Principal::Anonymous),
        ];
        for (settings, expected) in cases {
            assert_eq!(
                Principal::of(&client_config(&settings)),
                expected,
                "{settings:?}"
            );
        }
    }

    #[test]
    fn messages_name_the_resource_the_operation_and_the_acl() {
        let user = Principal::User("poller".into());
        let cases = [
            (
                AccessDenied::ReadTopic {
                    topic: "orders".into(),
                    principal: user.clone(),
                },
                "not authorized to read topic orders: grant User:poller READ on topic orders \
                 (kafka-acls.sh --bootstrap-server <broker> --add --allow-principal User:poller \
                 --operation Read --topic orders)",
            ),
            (
                AccessDenied::ReadGroup {
                    group: "etl".into(),
                    principal: user.clone(),
                },
                "not authorized to use consumer group etl: grant User:poller READ on group etl \
                 (kafka-acls.sh --bootstrap-server <broker> --add --allow-principal User:poller \
                 --operation Read --group etl)",
            ),
            (
                AccessDenied::WriteDeadLetter {
                    topic: "orders-dlq".into(),
                    principal: user,
                },
                "not authorized to write the on_failure topic orders-dlq: grant User:poller WRITE \
                 on topic orders-dlq (kafka-acls.sh --bootstrap-server <broker> --add \
                 --allow-principal User:poller --operation Write --topic orders-dlq)",
            ),
            (
                AccessDenied::ReadTopic {
                    topic: "orders".into(),
                    principal: Principal::MskIam,
                },
                "not authorized to read topic orders: grant the poller's IAM role READ on topic \
                 orders (Amazon MSK IAM: allow kafka-cluster:DescribeTopic and \
                 kafka-cluster:ReadData on the topic in the role's policy)",
            ),
            (
                AccessDenied::WriteDeadLetter {
                    topic: "orders-dlq".into(),
                    principal: Principal::MskIam,
                },
                "not authorized to write the on_failure topic orders-dlq: grant the poller's IAM \
                 role WRITE on topic orders-dlq (Amazon MSK IAM: allow \
                 kafka-cluster:DescribeTopic and kafka-cluster:WriteData on the topic, \
                 kafka-cluster:WriteDataIdempotently on the cluster in the role's policy)",
            ),
        ];
        for (denied, expected) in cases {
            assert_eq!(denied.to_string(), expected);
        }
    }

    #[test]
    fn only_authorization_codes_are_denials() {
        assert_eq!(
            Denied::of(RDKafkaErrorCode::TopicAuthorizationFailed),
            Some(Denied::Topic)
        );
        assert_eq!(
            Denied::of(RDKafkaErrorCode::GroupAuthorizationFailed),
            Some(Denied::Group)
        );
        assert_eq!(
            Denied::of(RDKafkaErrorCode::ClusterAuthorizationFailed),
            Some(Denied::Cluster)
        );
        assert_eq!(Denied::of(RDKafkaErrorCode::AllBrokersDown), None);
        assert_eq!(Denied::of(RDKafkaErrorCode::UnknownTopicOrPartition), None);
    }

    #[test]
    fn the_first_report_stops_the_mapping_and_is_kept() {
        let stop = CancellationToken::new();
        let denials = DenialStop::new(Principal::Anonymous, stop.clone());
        assert!(denials.first().is_none());
        let group = AccessDenied::ReadGroup {
            group: "g".into(),
            principal: Principal::Anonymous,
        };
        denials.report("mapping[0] f", group.clone());
        denials.report(
            "mapping[0] f",
            AccessDenied::ReadTopic {
                topic: "t".into(),
                principal: Principal::Anonymous,
            },
        );
        assert!(stop.is_cancelled());
        assert_eq!(denials.first(), Some(&group));
    }
}
