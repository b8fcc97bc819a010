//! The emulated stack for one test: [`braid_emulated::stack::Stack`] under a name of its
//! own, with every client counting its requests ([`RequestCounter`]).

use crate::requests::RequestCounter;
use braid_emulated::stack::Stack;
use std::ops::Deref;

/// The emulator's endpoint; the suite refuses to run without one.
pub fn endpoint() -> String {
    braid_emulated::sdk::endpoint()
        .unwrap_or_else(|e| panic!("{e} (./scripts/test starts an emulator)"))
}

/// The SDK configuration for the emulator.
pub async fn sdk() -> aws_config::SdkConfig {
    endpoint();
    braid_emulated::sdk::emulator_sdk()
        .await
        .expect("an emulator endpoint is set")
}

/// One copy of the stack on the emulator, unique to a test, counting requests.
pub struct TestStack {
    pub stack: Stack,
    pub requests: RequestCounter,
}

impl TestStack {
    /// Makes every table, queue, bucket and bus of the template under a fresh name.
    pub async fn create(tag: &str) -> TestStack {
        let requests = RequestCounter::default();
        let clients = requests.clients(&sdk().await);
        // Unique across tests and processes sharing one emulator; lowercase for S3.
        let name = format!(
            "braid-{tag}-{}",
            &ulid::Ulid::generate().to_string().to_lowercase()[16..]
        );
        let stack = Stack::ensure(&name, clients)
            .await
            .unwrap_or_else(|e| panic!("cannot make stack {name}: {e}"));
        TestStack { stack, requests }
    }

    /// The backend's ports over this stack, as the functions build them.
    pub fn ports(&self) -> braid_handlers::Ports {
        self.stack.ports().expect("ports")
    }

    /// Messages waiting in queue `logical_id`.
    pub async fn depth(&self, logical_id: &str) -> u64 {
        self.stack.depth(logical_id).await.expect("queue depth")
    }
}

impl Deref for TestStack {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}
