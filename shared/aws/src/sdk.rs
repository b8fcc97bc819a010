//! The SDK configuration every client is built from.

use aws_config::SdkConfig;

/// The SDK configuration from the environment: credentials, region, and the endpoint
/// (`AWS_ENDPOINT_URL`, which points the clients at an emulator).
pub async fn sdk_from_env() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
