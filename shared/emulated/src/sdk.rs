//! The SDK configuration for the emulator.

use crate::{EmulatorError, EmulatorResult};

/// The emulator's endpoint (`AWS_ENDPOINT_URL`); an error without one.
pub fn endpoint() -> EmulatorResult<String> {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or(EmulatorError::NoEndpoint)
}

/// The SDK configuration for the emulator at `AWS_ENDPOINT_URL`: credentials and
/// region from the environment when set, else the dummy ones emulators accept
/// (`test`, `us-east-1`), so nothing else needs configuring.
pub async fn emulator_sdk() -> EmulatorResult<aws_config::SdkConfig> {
    endpoint()?;
    let var = |k: &str, default: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let creds = aws_sdk_sqs::config::Credentials::new(
        var("AWS_ACCESS_KEY_ID", "test"),
        var("AWS_SECRET_ACCESS_KEY", "test"),
        std::env::var("AWS_SESSION_TOKEN").ok(),
        None,
        "emulator",
    );
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(var("AWS_REGION", "us-east-1")))
        .credentials_provider(creds)
        .load()
        .await)
}
