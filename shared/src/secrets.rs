//! Where `secret(name)` in expressions finds its values: the environment variable
//! `BRAID_SECRET_<NAME>` — locally, and in the Lambda functions, whose environment the
//! stack sets. Secret values are never logged nor stored in definitions or records.

use crate::expr::Renderer;
use std::sync::Arc;

/// The environment secret resolver: `secret('orders-hook')` reads `BRAID_SECRET_ORDERS_HOOK`.
pub fn env_secrets() -> Renderer {
    Renderer::new(Arc::new(|name: &str| {
        std::env::var(secret_env_name(name)).ok()
    }))
}

/// The environment variable holding secret `name`.
pub fn secret_env_name(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("BRAID_SECRET_{upper}")
}
