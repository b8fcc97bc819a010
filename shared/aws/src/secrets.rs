//! Webhook secrets on AWS: an SSM Parameter Store parameter `/braid/secrets/<name>`
//! (a `SecureString`, read with decryption), else a Secrets Manager secret
//! `braid/<name>` (its string value), else the function's environment
//! (`BRAID_SECRET_<NAME>`, see [`braid_ports::env_secrets`]).
//!
//! Values found are kept for [`CACHE_FOR`] in the warm function, so a burst of webhooks
//! costs one lookup; a rotated secret applies within that time. A secret not found is
//! not remembered, so one created after a failed delivery works at once.

use async_trait::async_trait;
use braid_ports::env_secrets::EnvSecrets;
use braid_ports::{PortError, PortResult, SecretStore};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The Parameter Store path prefix of Braid's secrets.
pub const SSM_PREFIX: &str = "/braid/secrets/";
/// The Secrets Manager name prefix of Braid's secrets.
pub const SECRETS_MANAGER_PREFIX: &str = "braid/";
/// How long a warm function keeps a secret it read.
pub const CACHE_FOR: Duration = Duration::from_secs(300);

/// [`SecretStore`] over Parameter Store, Secrets Manager and the environment.
#[derive(Debug)]
pub struct AwsSecrets {
    ssm: aws_sdk_ssm::Client,
    secrets_manager: aws_sdk_secretsmanager::Client,
    cache: Mutex<HashMap<String, (Instant, String)>>,
}

impl AwsSecrets {
    pub fn new(ssm: aws_sdk_ssm::Client, secrets_manager: aws_sdk_secretsmanager::Client) -> Self {
        AwsSecrets {
            ssm,
            secrets_manager,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Both clients from one SDK configuration.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(
            aws_sdk_ssm::Client::new(sdk),
            aws_sdk_secretsmanager::Client::new(sdk),
        )
    }

    fn cached(&self, name: &str) -> Option<String> {
        let cache = self.cache.lock().expect("cache lock");
        cache
            .get(name)
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, v)| v.clone())
    }

    async fn parameter(&self, name: &str) -> PortResult<Option<String>> {
        let res = self
            .ssm
            .get_parameter()
            .name(format!("{SSM_PREFIX}{name}"))
            .with_decryption(true)
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(None)
            }
            Err(e) => Err(PortError::backend_msg(format!(
                "reading parameter {SSM_PREFIX}{name}: {}",
                aws_sdk_ssm::error::DisplayErrorContext(e)
            ))),
        }
    }

    async fn managed_secret(&self, name: &str) -> PortResult<Option<String>> {
        let res = self
            .secrets_manager
            .get_secret_value()
            .secret_id(format!("{SECRETS_MANAGER_PREFIX}{name}"))
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.secret_string),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(PortError::backend_msg(format!(
                "reading secret {SECRETS_MANAGER_PREFIX}{name}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            ))),
        }
    }
}

#[async_trait]
impl SecretStore for AwsSecrets {
    async fn secret(&self, name: &str) -> PortResult<Option<String>> {
        if let Some(v) = self.cached(name) {
            return Ok(Some(v));
        }
        let found = match self.parameter(name).await? {
            Some(v) => Some(v),
            None => match self.managed_secret(name).await? {
                Some(v) => Some(v),
                None => EnvSecrets::env_only().secret(name).await?,
            },
        };
        if let Some(v) = &found {
            self.cache
                .lock()
                .expect("cache lock")
                .insert(name.to_string(), (Instant::now(), v.clone()));
        }
        Ok(found)
    }
}
