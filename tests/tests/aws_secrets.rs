//! Webhook secrets on the emulated stack: Parameter Store first, then Secrets Manager,
//! then nothing.

use braid_aws::secrets::{AwsSecrets, SECRETS_MANAGER_PREFIX, SSM_PREFIX};
use braid_e2e::stack::TestStack;
use braid_ports::SecretStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_parameter_store_then_secrets_manager() {
    let stack = TestStack::create("secrets").await;
    let tag = &stack.name;
    let (in_ssm, in_sm, in_both) = (
        format!("{tag}-ssm"),
        format!("{tag}-sm"),
        format!("{tag}-both"),
    );
    let ssm = &stack.clients.ssm;
    for (name, value) in [(&in_ssm, "from-ssm"), (&in_both, "ssm-wins")] {
        ssm.put_parameter()
            .name(format!("{SSM_PREFIX}{name}"))
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    let sm = &stack.clients.secrets_manager;
    for (name, value) in [(&in_sm, "from-secrets-manager"), (&in_both, "sm-loses")] {
        sm.create_secret()
            .name(format!("{SECRETS_MANAGER_PREFIX}{name}"))
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let secrets = AwsSecrets::new(ssm.clone(), sm.clone());
    let get = |n: String| {
        let secrets = &secrets;
        async move { secrets.secret(&n).await.unwrap() }
    };
    assert_eq!(get(in_ssm).await.as_deref(), Some("from-ssm"));
    assert_eq!(get(in_sm).await.as_deref(), Some("from-secrets-manager"));
    assert_eq!(get(in_both).await.as_deref(), Some("ssm-wins"));
    assert_eq!(get(format!("{tag}-absent")).await, None);
}
