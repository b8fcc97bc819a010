//! [`S3Payloads`]: the payload store in an S3 bucket, under a key prefix.
//!
//! One PutObject per payload: S3 takes up to 5 GB in a single request, far above what a
//! step's input or output may reach, so multipart uploads would add requests and
//! cleanup of abandoned parts for nothing.
//!
//! The bucket's lifecycle rule deletes a payload a fixed time after it was written;
//! [`PayloadStore::renew`] restarts that clock by copying a payload onto itself (a
//! server-side copy: no bytes pass through the function), which S3 counts as a new
//! write.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::MetadataDirective;
use braid_engine::model::Timestamp;
use braid_ports::{PayloadStore, PortError, PortResult};
use futures::{StreamExt, TryStreamExt};

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

/// Copies in flight at once while renewing.
const PARALLEL_COPIES: usize = 16;

/// `bucket/key` as CopyObject's `x-amz-copy-source` takes it: URL-encoded, `/` kept.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = format!("{bucket}/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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

    async fn renew(&self, prefix: &str, before: Timestamp) -> PortResult<usize> {
        let prefix = self.object_key(prefix);
        let before_ms = before.timestamp_millis();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut old = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.backend("ListObjectsV2", &prefix, e))?;
            old.extend(page.contents().iter().filter_map(|o| {
                let written = o.last_modified()?.to_millis().ok()?;
                (written < before_ms).then(|| o.key().map(str::to_owned))?
            }));
        }
        let renewed = old.len();
        futures::stream::iter(old.into_iter().map(|key| async move {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(&key)
                .copy_source(copy_source(&self.bucket, &key))
                // S3 refuses a copy onto itself that changes nothing: the metadata is
                // what changes (and says when the payload was renewed).
                .metadata_directive(MetadataDirective::Replace)
                .metadata("braid-renewed", chrono::Utc::now().to_rfc3339())
                .send()
                .await
                .map_err(|e| self.backend("CopyObject", &key, e))
        }))
        .buffer_unordered(PARALLEL_COPIES)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(renewed)
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
    fn copy_sources_are_url_encoded_but_for_slashes() {
        assert_eq!(
            copy_source("b", "payloads/runs/r1/a/1/output.json"),
            "b/payloads/runs/r1/a/1/output.json"
        );
        assert_eq!(copy_source("b", "a b+c"), "b/a%20b%2Bc");
    }

    #[test]
    fn keys_sit_under_the_prefix_with_one_slash() {
        assert_eq!(store("payloads").object_key("runs/r1"), "payloads/runs/r1");
        assert_eq!(store("payloads/").object_key("runs/r1"), "payloads/runs/r1");
        assert_eq!(store("").object_key("runs/r1"), "runs/r1");
    }
}
