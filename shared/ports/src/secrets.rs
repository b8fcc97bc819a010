use super::PortResult;
use async_trait::async_trait;

/// Named secrets — webhook signing keys — resolved where they are kept: the environment
/// or a secrets file locally; SSM Parameter Store or Secrets Manager on AWS. A secret is
/// never stored in a definition nor in a record, and never logged.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret's value; `None` when no such secret is set.
    async fn secret(&self, name: &str) -> PortResult<Option<String>>;
}
