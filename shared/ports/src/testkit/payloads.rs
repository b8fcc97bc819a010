//! Conformance checks for [`PayloadStore`] adapters.
//!
//! Each check writes under its own random key prefix, so the checks may share a bucket
//! or folder and need no cleanup.

use crate::{PayloadStore, PortError};

/// A key prefix no other check uses.
fn prefix() -> String {
    format!("conformance/{:016x}", fastrand::u64(..))
}

fn assert_not_found(result: Result<Vec<u8>, PortError>, key: &str) {
    match result {
        Err(PortError::NotFound(_)) => {}
        Err(e) => panic!("get {key:?}: expected NotFound, got error {e}"),
        Ok(bytes) => panic!("get {key:?}: expected NotFound, got {} bytes", bytes.len()),
    }
}

/// Bytes put under a key are what a get returns, including an empty payload.
pub async fn put_then_get_round_trips<S: PayloadStore + ?Sized>(store: &S) {
    let p = prefix();
    let key = format!("{p}/output.json");
    let bytes = br#"{"rows": 3, "name": "d\u00e9j\u00e0"}"#.to_vec();
    store.put(&key, bytes.clone()).await.expect("put");
    assert_eq!(store.get(&key).await.expect("get"), bytes);

    let empty = format!("{p}/empty");
    store.put(&empty, Vec::new()).await.expect("put empty");
    assert_eq!(store.get(&empty).await.expect("get empty"), b"");
}

/// A second put under a key replaces the first, also with shorter bytes.
pub async fn put_overwrites<S: PayloadStore + ?Sized>(store: &S) {
    let key = format!("{}/result", prefix());
    store
        .put(&key, b"first, the longer one".to_vec())
        .await
        .expect("put");
    store
        .put(&key, b"second".to_vec())
        .await
        .expect("put again");
    assert_eq!(store.get(&key).await.expect("get"), b"second");
}

/// A key never put is [`PortError::NotFound`].
pub async fn missing_key_is_not_found<S: PayloadStore + ?Sized>(store: &S) {
    let p = prefix();
    assert_not_found(store.get(&format!("{p}/never-put")).await, "never-put");
    store
        .put(&format!("{p}/present"), b"x".to_vec())
        .await
        .expect("put");
    assert_not_found(store.get(&format!("{p}/absent")).await, "absent");
}

/// A 20 MB payload comes back byte for byte.
pub async fn large_payload_is_intact<S: PayloadStore + ?Sized>(store: &S) {
    const SIZE: usize = 20 * 1024 * 1024;
    let mut rng = fastrand::Rng::with_seed(20);
    let bytes: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(SIZE).collect();
    let key = format!("{}/large.bin", prefix());
    store.put(&key, bytes.clone()).await.expect("put 20 MB");
    let got = store.get(&key).await.expect("get 20 MB");
    assert_eq!(got.len(), SIZE, "length");
    // Not assert_eq!: a failure would print 40 MB.
    let first_difference = got.iter().zip(&bytes).position(|(a, b)| a != b);
    assert!(
        first_difference.is_none(),
        "bytes differ from offset {first_difference:?}"
    );
}

/// Keys with slashes are independent keys, and a prefix of keys is not itself a key.
pub async fn keys_with_slashes_are_distinct<S: PayloadStore + ?Sized>(store: &S) {
    let p = prefix();
    let keys = [
        format!("{p}/runs/r1/steps/a/output"),
        format!("{p}/runs/r1/steps/b/output"),
        format!("{p}/runs/r1/input"),
        format!("{p}/runs/r2/steps/a/output"),
    ];
    for key in &keys {
        store.put(key, key.as_bytes().to_vec()).await.expect("put");
    }
    for key in &keys {
        assert_eq!(
            store.get(key).await.expect("get"),
            key.as_bytes(),
            "get {key}"
        );
    }
    for folder in [
        format!("{p}/runs"),
        format!("{p}/runs/r1"),
        format!("{p}/runs/r1/steps/a"),
    ] {
        assert_not_found(store.get(&folder).await, &folder);
    }
}

/// Renewing counts and keeps the payloads under the prefix written before the instant
/// given, bytes intact, and touches nothing else.
pub async fn renew_keeps_older_payloads_under_the_prefix<S: PayloadStore + ?Sized>(store: &S) {
    let p = prefix();
    let run = format!("{p}/runs/r1");
    store
        .put(&format!("{run}/a/1/output.json"), b"a".to_vec())
        .await
        .expect("put");
    store
        .put(&format!("{run}/b/items.json"), b"b".to_vec())
        .await
        .expect("put");
    store
        .put(&format!("{p}/runs/r10/x"), b"x".to_vec())
        .await
        .expect("put");
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        store.renew(&format!("{run}/"), past).await.expect("renew"),
        0,
        "nothing was written before an hour ago"
    );
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(
        store.renew(&format!("{run}/"), later).await.expect("renew"),
        2,
        "both payloads of the run, not those of a run whose id it prefixes"
    );
    assert_eq!(
        store.get(&format!("{run}/a/1/output.json")).await.unwrap(),
        b"a"
    );
    assert_eq!(
        store.get(&format!("{run}/b/items.json")).await.unwrap(),
        b"b"
    );
    assert_eq!(
        store
            .renew(&format!("{p}/nothing/"), later)
            .await
            .expect("renew"),
        0,
        "an empty prefix renews nothing"
    );
}
