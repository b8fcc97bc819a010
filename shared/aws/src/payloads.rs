//! [`S3Payloads`]: the payload store in an S3 bucket, under a key prefix.
//!
//! One PutObject per payload: S3 takes up to 5 GB in a single request, far above what a
//! step's input or output may reach, so multipart uploads would add requests and
//! cleanup of abandoned parts for nothing.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use braid_ports::{PayloadStore, PortError, PortResult};

/// Payloads in one bucket, each key under `prefix`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct S3Payloads {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Payloads {
    /// Payloads in `bucket` under `prefix` (e.g. `payloads`; empty for the bucket's
    /// root). A trailing `/` on the prefix is optional.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Payloads {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The object key of payload `key`.
    fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn backend(&self, action: &str, key: &str, e: impl std::error::Error) -> PortError {
        PortError::backend_msg(format!(
            "s3 {action} s3://{}/{key}: {}",
            self.bucket,
            DisplayErrorContext(e)
        ))
    }
}

#[async_trait]
impl PayloadStore for S3Payloads {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()> {
        let key = self.object_key(key);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.backend("PutObject", &key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> PortResult<Vec<u8>> {
        let key = self.object_key(key);
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Err(PortError::NotFound(format!("s3://{}/{key}", self.bucket)));
            }
            Err(e) => return Err(self.backend("GetObject", &key, e)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.backend("GetObject", &key, e))?;
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> S3Payloads {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .build();
        S3Payloads::new(Client::from_conf(conf), "bucket", prefix)
    }

    #[test]
    fn keys_sit_under_the_prefix_with_one_slash() {
        assert_eq!(store("payloads").object_key("runs/r1"), "payloads/runs/r1");
        assert_eq!(store("payloads/").object_key("runs/r1"), "payloads/runs/r1");
        assert_eq!(store("").object_key("runs/r1"), "runs/r1");
    }
}
