//! Amazon MSK IAM authentication: SASL/OAUTHBEARER with a token that is a SigV4-presigned
//! `kafka-cluster:Connect` request (made by `aws-msk-iam-sasl-signer`), refreshed through
//! librdkafka's token refresh callback.
//!
//! The callback ([`rdkafka::ClientContext::generate_oauth_token`]) is synchronous and runs on
//! whichever thread polls the client — often a Tokio worker, sometimes inside `block_on`. So
//! signing never touches the caller's runtime: each [`MskIamTokenProvider`] owns a small thread
//! with its own single-threaded runtime, started on first use, and the callback hands it a
//! request and waits for the answer (bounded by a timeout). No nested `block_on`, and no
//! deadlock whatever runtime, if any, the caller is on.
//!
//! Credentials are cached until five minutes before they expire; a token's lifetime is capped at
//! its credentials' expiry, so librdkafka (which refreshes at 80 % of a token's remaining
//! lifetime) never presents a token signed with expired keys.

use crate::error::{ConfigError, TokenError, invalid, join};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_types::error::display::DisplayErrorContext;
use rdkafka::client::OAuthToken;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc as async_mpsc;

/// How long obtaining credentials and signing may take before the callback reports a failure
/// (librdkafka then asks again in 10 seconds).
pub const DEFAULT_TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Credentials closer than this to their expiry are fetched again.
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// `mechanism = "AWS_MSK_IAM"`: where the AWS credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MskIamConfig {
    /// AWS region of the MSK cluster, e.g. `us-east-1` (required: the token is signed for it).
    pub region: String,
    /// Named profile from `~/.aws/config` / `~/.aws/credentials` (or `AWS_CONFIG_FILE`,
    /// `AWS_SHARED_CREDENTIALS_FILE`). Default: the standard credential chain (environment,
    /// profile from `AWS_PROFILE`, web identity, ECS/EKS container credentials, EC2 instance
    /// profile; inside Lambda, the function's role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// IAM role to assume (with the credentials found through `profile` or the chain) before
    /// signing, e.g. `arn:aws:iam::123456789012:role/kafka-reader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Session name for `role_arn` (2-64 of `[A-Za-z0-9+=,.@-]`). Default `kafka-lambda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_session_name: Option<String>,
}

impl MskIamConfig {
    /// Checks the table found at `path` (e.g. `kafka.auth.sasl`).
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if !is_region(&self.region) {
            return Err(invalid(
                join(path, "region"),
                format!(
                    "is `{}`, not an AWS region (like `us-east-1` or `eu-central-1`)",
                    self.region
                ),
            ));
        }
        if let Some(profile) = &self.profile
            && profile.trim().is_empty()
        {
            return Err(invalid(
                join(path, "profile"),
                "is empty; remove it to use the default credential chain",
            ));
        }
        if let Some(arn) = &self.role_arn {
            let valid =
                arn.starts_with("arn:aws") && arn.split(':').count() == 6 && arn.contains(":role/");
            if !valid {
                return Err(invalid(
                    join(path, "role_arn"),
                    format!("is `{arn}`, not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
                ));
            }
        }
        if let Some(name) = &self.role_session_name {
            if self.role_arn.is_none() {
                return Err(invalid(
                    join(path, "role_session_name"),
                    "is only used with role_arn",
                ));
            }
            let valid = (2..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b));
            if !valid {
                return Err(invalid(
                    join(path, "role_session_name"),
                    format!("is `{name}`; allowed: 2-64 of [A-Za-z0-9+=,.@_-]"),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `region` looks like an AWS region: `xx-name-N`, with optional partition parts
/// (`us-gov-west-1`, `us-isob-east-1`, `cn-north-1`).
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && lower(parts[0])
        && parts[1..parts.len() - 1].iter().all(|p| lower(p))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A signed MSK IAM token. `Debug` redacts it: it is a bearer credential for 15 minutes.
#[derive(Clone)]
pub struct MskIamToken {
    /// The token (base64url of the presigned URL) as sent in SASL/OAUTHBEARER.
    pub token: String,
    /// When the token stops being accepted, epoch milliseconds.
    pub expires_at_ms: i64,
}

impl fmt::Debug for MskIamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MskIamToken")
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// Where the provider gets credentials.
#[derive(Clone)]
enum CredentialSource {
    /// The standard chain, a profile and/or an assumed role, built on first use.
    Config(MskIamConfig, Option<Box<SdkConfig>>),
    /// A provider the caller built (tests, or applications that manage credentials).
    Provider(SharedCredentialsProvider),
}

/// One request to the signer thread: where to send the answer.
type Reply = mpsc::SyncSender<Result<MskIamToken, TokenError>>;

/// Makes MSK IAM tokens on demand, for librdkafka's OAUTHBEARER refresh callback. Cheap to share
/// (`Arc`); see the module documentation for how the synchronous callback is bridged to the
/// asynchronous signer.
pub struct MskIamTokenProvider {
    region: Region,
    source: CredentialSource,
    timeout: Duration,
    signer: OnceLock<Result<async_mpsc::UnboundedSender<Reply>, String>>,
}

impl fmt::Debug for MskIamTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            CredentialSource::Config(config, _) => format!("{config:?}"),
            CredentialSource::Provider(_) => "custom credentials provider".to_owned(),
        };
        f.debug_struct("MskIamTokenProvider")
            .field("region", &self.region.as_ref())
            .field("credentials", &source)
            .finish_non_exhaustive()
    }
}

impl MskIamTokenProvider {
    /// A provider for a validated `[auth.sasl]` table of mechanism `AWS_MSK_IAM`. Nothing runs
    /// until the first token is asked for.
    pub fn new(config: &MskIamConfig) -> Self {
        Self::with_source(
            &config.region,
            CredentialSource::Config(config.clone(), None),
        )
    }

    /// Like [`new`](Self::new), but building the credential chain (and the STS client for
    /// `role_arn`) from `sdk_config` instead of the environment: its credentials provider is the
    /// base, its endpoint and HTTP settings are used for STS.
    pub fn with_sdk_config(config: &MskIamConfig, sdk_config: SdkConfig) -> Self {
        Self::with_source(
            &config.region,
            CredentialSource::Config(config.clone(), Some(Box::new(sdk_config))),
        )
    }

    /// A provider that signs for `region` with credentials from `provider`.
    pub fn with_credentials_provider(
        region: impl Into<String>,
        provider: impl ProvideCredentials + 'static,
    ) -> Self {
        Self::with_source(
            &region.into(),
            CredentialSource::Provider(SharedCredentialsProvider::new(provider)),
        )
    }

    fn with_source(region: &str, source: CredentialSource) -> Self {
        MskIamTokenProvider {
            region: Region::new(region.to_owned()),
            source,
            timeout: DEFAULT_TOKEN_TIMEOUT,
            signer: OnceLock::new(),
        }
    }

    /// Sets how long one token may take (default [`DEFAULT_TOKEN_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The region tokens are signed for.
    pub fn region(&self) -> &str {
        self.region.as_ref()
    }

    /// A fresh token. Blocks the calling thread until it is signed or the timeout passes; safe
    /// to call from any thread, inside a Tokio runtime or not.
    pub fn token(&self) -> Result<MskIamToken, TokenError> {
        let signer = self
            .signer
            .get_or_init(|| self.start_signer())
            .as_ref()
            .map_err(|e| TokenError::Signer(e.clone()))?;
        let (reply, answer) = mpsc::sync_channel(1);
        signer
            .send(reply)
            .map_err(|_| TokenError::Signer("its thread has stopped".to_owned()))?;
        // The signer enforces the timeout itself; the margin covers a queue of requests.
        match answer.recv_timeout(self.timeout * 2 + Duration::from_secs(1)) {
            Ok(result) => result,
            Err(_) => Err(TokenError::Timeout(self.timeout)),
        }
    }

    /// [`token`](Self::token) in the shape librdkafka's refresh callback returns. Failures are
    /// also logged here (at warn), since librdkafka only reports them as a generic
    /// authentication error.
    pub fn oauth_token(&self) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        match self.token() {
            Ok(token) => {
                tracing::debug!(
                    region = self.region(),
                    expires_at_ms = token.expires_at_ms,
                    "MSK IAM token refreshed"
                );
                Ok(OAuthToken {
                    token: token.token,
                    // MSK takes the principal from the signature; librdkafka only needs a value.
                    principal_name: "kafka-lambda".to_owned(),
                    lifetime_ms: token.expires_at_ms,
                })
            }
            Err(error) => {
                tracing::warn!(region = self.region(), %error, "MSK IAM token refresh failed; librdkafka retries in 10 s");
                Err(Box::new(error))
            }
        }
    }

    fn start_signer(&self) -> Result<async_mpsc::UnboundedSender<Reply>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build its runtime: {e}"))?;
        let (requests, mut queue) = async_mpsc::unbounded_channel::<Reply>();
        let mut state = SignerState {
            region: self.region.clone(),
            source: self.source.clone(),
            provider: None,
            cached: None,
        };
        let timeout = self.timeout;
        std::thread::Builder::new()
            .name("msk-iam-signer".to_owned())
            .spawn(move || {
                // Ends when the provider (the only sender) is dropped.
                runtime.block_on(async move {
                    while let Some(reply) = queue.recv().await {
                        let result = tokio::time::timeout(timeout, state.token())
                            .await
                            .unwrap_or(Err(TokenError::Timeout(timeout)));
                        let _ = reply.send(result);
                    }
                });
            })
            .map_err(|e| format!("cannot start its thread: {e}"))?;
        Ok(requests)
    }
}

/// What the signer thread keeps between requests.
struct SignerState {
    region: Region,
    source: CredentialSource,
    provider: Option<SharedCredentialsProvider>,
    cached: Option<Credentials>,
}

impl SignerState {
    async fn token(&mut self) -> Result<MskIamToken, TokenError> {
        let credentials = self.credentials().await?;
        let credentials_expiry = credentials.expiry();
        let (token, expires_at_ms) =
            aws_msk_iam_sasl_signer::generate_auth_token_from_credentials_provider(
                self.region.clone(),
                SharedCredentialsProvider::new(credentials),
            )
            .await
            .map_err(|e| TokenError::Sign(DisplayErrorContext(&e).to_string()))?;
        let expires_at_ms = match credentials_expiry.map(epoch_ms) {
            Some(limit) => expires_at_ms.min(limit),
            None => expires_at_ms,
        };
        Ok(MskIamToken {
            token,
            expires_at_ms,
        })
    }

    async fn credentials(&mut self) -> Result<Credentials, TokenError> {
        if let Some(cached) = &self.cached
            && cached
                .expiry()
                .is_some_and(|at| at > SystemTime::now() + CREDENTIALS_REFRESH_MARGIN)
        {
            return Ok(cached.clone());
        }
        let provider = match &self.provider {
            Some(provider) => provider.clone(),
            None => {
                let provider = build_provider(&self.region, &self.source).await?;
                self.provider = Some(provider.clone());
                provider
            }
        };
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| TokenError::Credentials(DisplayErrorContext(&e).to_string()))?;
        // Long-lived keys are read again each time (cheap, and picks up rotation); temporary
        // ones are kept until shortly before they expire.
        self.cached = credentials.expiry().is_some().then(|| credentials.clone());
        Ok(credentials)
    }
}

async fn build_provider(
    region: &Region,
    source: &CredentialSource,
) -> Result<SharedCredentialsProvider, TokenError> {
    let (config, sdk_config) = match source {
        CredentialSource::Provider(provider) => return Ok(provider.clone()),
        CredentialSource::Config(config, sdk_config) => (config, sdk_config),
    };
    let sdk_config = match sdk_config {
        Some(sdk_config) => (**sdk_config).clone(),
        None => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region.clone());
            if let Some(profile) = &config.profile {
                loader = loader.profile_name(profile);
            }
            loader.load().await
        }
    };
    let base = sdk_config.credentials_provider().ok_or_else(|| {
        TokenError::Credentials("the AWS configuration has no credentials provider".to_owned())
    })?;
    let Some(role_arn) = &config.role_arn else {
        return Ok(base);
    };
    let session_name = config
        .role_session_name
        .clone()
        .unwrap_or_else(|| "kafka-lambda".to_owned());
    let assume_role = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(session_name)
        .region(region.clone())
        .configure(&sdk_config)
        .build_from_provider(base)
        .await;
    Ok(SharedCredentialsProvider::new(assume_role))
}

fn epoch_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Delegates librdkafka's refresh callback to `provider`, or fails clearly when none is
/// configured (the mechanism was set to OAUTHBEARER by hand through `options`). For contexts
/// of your own: call it from [`rdkafka::ClientContext::generate_oauth_token`] and set
/// `ENABLE_REFRESH_OAUTH_TOKEN` to true.
pub fn generate_oauth_token(
    provider: Option<&Arc<MskIamTokenProvider>>,
) -> Result<OAuthToken, Box<dyn std::error::Error>> {
    match provider {
        Some(provider) => provider.oauth_token(),
        None => Err(
            "sasl.mechanism is OAUTHBEARER but no token source is configured; use \
             [auth.sasl] mechanism = \"AWS_MSK_IAM\""
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_of_every_partition_are_accepted_and_other_text_is_not() {
        for good in [
            "us-east-1",
            "eu-central-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "cn-north-1",
            "us-isob-east-1",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us_east_1",
            "useast1",
            "kafka.us-east-1.amazonaws.com",
            "us-east-1 ",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
