//! Signed webhooks: checking that a delivery to `POST /hooks/{path}` was sent by someone
//! holding the trigger's secret, recently, and naming the delivery for replay detection.
//!
//! Three forms are accepted, chosen per trigger (`signature: braid|github|stripe`); each
//! is an HMAC-SHA256 keyed with the secret, in lowercase or uppercase hex:
//!
//! | scheme   | header                | value                                        | signed bytes     |
//! |----------|-----------------------|----------------------------------------------|------------------|
//! | `braid`  | `Braid-Signature`     | `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`    | `<t>.<raw body>` |
//! | `github` | `X-Hub-Signature-256` | `sha256=<hex>`                               | `<raw body>`     |
//! | `stripe` | `Stripe-Signature`    | `t=<unix seconds>,v1=<hex>[,v1=...][,v0=...]`| `<t>.<raw body>` |
//!
//! * Several `v1=` entries may be sent (a sender rotating its key signs with both); the
//!   delivery passes when any of them matches. Stripe's `v0=` entries and any other keys
//!   are ignored, and so is a `v1=` entry that is not 64 hex digits.
//! * `braid` and `stripe` deliveries are rejected when their timestamp is more than
//!   [`TOLERANCE_SECS`] (5 minutes) from now, in either direction. GitHub sends no
//!   timestamp, so a captured GitHub delivery can be replayed at any time: replay
//!   protection then rests entirely on remembering the delivery id (`X-GitHub-Delivery`).
//! * Every MAC comparison is made in constant time.
//! * Header names are matched case-insensitively; values are trimmed.
//!
//! [`verify`] is pure: the caller (the API Gateway handler, or `braid dev`'s server)
//! passes the headers, the raw body exactly as received, the resolved secret and the
//! time, and maps every [`Rejection`] to `401`. On success, [`delivery_key`] names the
//! delivery for replay detection: the sender's delivery id (`Braid-Delivery`,
//! `X-GitHub-Delivery`, or the `id` of a Stripe event) or, lacking one, a hash of the
//! body. Note that the delivery headers are not covered by the signature;
//! [`Verified::signature`] is, and can serve as a second replay key.
//!
//! # Signing a Braid delivery
//!
//! [`sign_braid`] computes the `Braid-Signature` value. From a shell, with the body in
//! `body.json` and the secret in `$SECRET`:
//!
//! ```sh
//! t=$(date +%s)
//! mac=$({ printf '%s.' "$t"; cat body.json; } | openssl dgst -sha256 -hmac "$SECRET" | awk '{print $NF}')
//! curl https://HOST/hooks/orders \
//!   -H "Braid-Signature: t=$t,v1=$mac" \
//!   -H "Braid-Delivery: $(uuidgen)" \
//!   -H 'Content-Type: application/json' \
//!   --data-binary @body.json
//! ```
//!
//! (`--data-binary` sends the file byte for byte; `-d` would strip its newlines and the
//! signature would no longer match.)

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::decl::SignatureScheme;

type HmacSha256 = Hmac<Sha256>;

/// How far a signature's timestamp may be from now, either way, in seconds.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The header carrying a `braid` signature.
pub const BRAID_SIGNATURE: &str = "Braid-Signature";
/// The header naming a `braid` delivery.
pub const BRAID_DELIVERY: &str = "Braid-Delivery";
/// The header carrying a `github` signature.
pub const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
/// The header naming a `github` delivery.
pub const GITHUB_DELIVERY: &str = "X-GitHub-Delivery";
/// The header carrying a `stripe` signature.
pub const STRIPE_SIGNATURE: &str = "Stripe-Signature";

/// Longest delivery id taken from a header or a Stripe event, in bytes; a longer or
/// otherwise unusable one is ignored and the body hash is used instead.
const MAX_DELIVERY_ID_LEN: usize = 200;

/// Length of an HMAC-SHA256 tag in bytes.
const MAC_LEN: usize = 32;

/// A request's headers, looked up by name without regard to ASCII case.
///
/// Implemented for lists of name/value pairs and for maps keyed by name, so callers can
/// pass what their HTTP layer gives them (after converting values to text) without this
/// module depending on an HTTP crate.
pub trait Headers {
    /// The value of the first header called `name` (ASCII case-insensitive), if any.
    fn header(&self, name: &str) -> Option<&str>;
}

fn find<'a, K, V>(pairs: impl IntoIterator<Item = (&'a K, &'a V)>, name: &str) -> Option<&'a str>
where
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    pairs
        .into_iter()
        .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        find(self.iter().map(|(k, v)| (k, v)), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, S: BuildHasher> Headers for HashMap<K, V, S> {
    fn header(&self, name: &str) -> Option<&str> {
        find(self.iter(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for BTreeMap<K, V> {
    fn header(&self, name: &str) -> Option<&str> {
        find(self.iter(), name)
    }
}

/// A delivery whose signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The scheme it was checked against.
    pub scheme: SignatureScheme,
    /// The sender's id for this delivery, for replay detection: the `Braid-Delivery`
    /// header (braid), `X-GitHub-Delivery` (github), the event's `id` in the body
    /// (stripe). `None` when absent, empty, longer than 200 bytes or containing control
    /// characters; [`delivery_key`] then falls back to a hash of the body.
    ///
    /// The headers are not signed: someone replaying a captured delivery can change
    /// them (the Stripe `id`, being in the body, cannot be changed).
    pub delivery_id: Option<String>,
    /// When the sender signed it (braid, stripe); GitHub sends no timestamp.
    pub signed_at: Option<DateTime<Utc>>,
    /// The MAC that matched, lowercase hex. It covers the body (and the timestamp), so
    /// unlike the delivery id it cannot be altered by someone replaying a capture.
    pub signature: String,
}

/// Why a delivery was refused. Every variant is a `401` to the sender; none carries the
/// expected MAC, the secret or the header's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The signature header is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// The signature header is present but cannot be read.
    #[error("malformed {header} header: {reason}")]
    Malformed {
        header: &'static str,
        reason: &'static str,
    },
    /// The signature is older than the tolerance.
    #[error(
        "signature timestamp is {skew_secs} s in the past, more than the {TOLERANCE_SECS} s allowed"
    )]
    TooOld { skew_secs: i64 },
    /// The signature is dated further in the future than the tolerance.
    #[error(
        "signature timestamp is {skew_secs} s in the future, more than the {TOLERANCE_SECS} s allowed"
    )]
    InFuture { skew_secs: i64 },
    /// No signature in the header matches the body under the secret.
    #[error("no signature in the {header} header matches the body")]
    NoMatch { header: &'static str },
    /// The trigger's secret is empty: anyone could sign, so nothing is accepted.
    #[error("the hook's secret is empty; no delivery can be verified")]
    EmptySecret,
}

/// Checks a delivery's signature under `scheme` with the trigger's `secret`.
///
/// `body` must be the raw request body, byte for byte as received (before any JSON
/// parsing or re-encoding); `now` is the current time, against which timestamps are
/// held to [`TOLERANCE_SECS`].
pub fn verify(
    scheme: SignatureScheme,
    secret: &[u8],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Rejection> {
    if secret.is_empty() {
        return Err(Rejection::EmptySecret);
    }
    match scheme {
        SignatureScheme::Braid => {
            let mut v = verify_timestamped(scheme, BRAID_SIGNATURE, secret, headers, body, now)?;
            v.delivery_id = headers.header(BRAID_DELIVERY).and_then(usable_id);
            Ok(v)
        }
        SignatureScheme::Stripe => {
            let mut v = verify_timestamped(scheme, STRIPE_SIGNATURE, secret, headers, body, now)?;
            v.delivery_id = stripe_event_id(body);
            Ok(v)
        }
        SignatureScheme::Github => {
            let tag = required(headers, GITHUB_SIGNATURE)?
                .strip_prefix("sha256=")
                .and_then(decode_mac)
                .ok_or(Rejection::Malformed {
                    header: GITHUB_SIGNATURE,
                    reason: "expected sha256=<64 hex digits>",
                })?;
            if mac(secret, &[body]).verify_slice(&tag).is_err() {
                return Err(Rejection::NoMatch {
                    header: GITHUB_SIGNATURE,
                });
            }
            Ok(Verified {
                scheme,
                delivery_id: headers.header(GITHUB_DELIVERY).and_then(usable_id),
                signed_at: None,
                signature: hex::encode(tag),
            })
        }
    }
}

/// The key under which to remember a verified delivery for replay detection: the
/// sender's delivery id when there is one, else `sha256:<hex of the body>`.
pub fn delivery_key(verified: &Verified, body: &[u8]) -> String {
    match &verified.delivery_id {
        Some(id) => id.clone(),
        None => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

/// The `Braid-Signature` header value for `body` signed with `secret` at `t` (unix
/// seconds): `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign_braid(secret: &[u8], body: &[u8], t: i64) -> String {
    let t = t.to_string();
    let tag = mac(secret, &[t.as_bytes(), b".", body])
        .finalize()
        .into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// HMAC-SHA256 of `parts` in order, keyed with `secret`: the MAC webhooks carry, and
/// the one other signed values (approval links) use, so there is one way to make it.
pub fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    mac(secret, parts).finalize().into_bytes().into()
}

/// Whether `tag` is [`hmac_sha256`] of `parts` keyed with `secret`, compared in
/// constant time (a byte-by-byte comparison would tell a forger how much matched).
pub fn hmac_matches(secret: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    mac(secret, parts).verify_slice(tag).is_ok()
}

/// Checks a `t=<unix>,v1=<hex>[,...]` header (braid and stripe): some `v1` must match
/// `HMAC(secret, "<t>.<body>")`, and `t` must be within the tolerance of `now`.
fn verify_timestamped(
    scheme: SignatureScheme,
    header: &'static str,
    secret: &[u8],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Rejection> {
    let parsed = parse_timestamped(header, required(headers, header)?)?;
    let signed = mac(secret, &[parsed.t_text.as_bytes(), b".", body]);
    let matched = parsed
        .v1
        .iter()
        .find(|tag| signed.clone().verify_slice(tag.as_slice()).is_ok())
        .ok_or(Rejection::NoMatch { header })?;
    // Checked after the MAC, so a stale or future timestamp is only reported for a
    // delivery that really came from the secret's holder (a sender's clock, a retry).
    let skew_secs = now.timestamp().saturating_sub(parsed.t);
    if skew_secs > TOLERANCE_SECS {
        return Err(Rejection::TooOld { skew_secs });
    }
    if skew_secs < -TOLERANCE_SECS {
        return Err(Rejection::InFuture {
            skew_secs: skew_secs.saturating_neg(),
        });
    }
    Ok(Verified {
        scheme,
        delivery_id: None,
        signed_at: DateTime::from_timestamp(parsed.t, 0),
        signature: hex::encode(matched),
    })
}

/// A parsed `t=...,v1=...` header.
struct Timestamped<'a> {
    /// The timestamp as sent: the signed text is built from it verbatim.
    t_text: &'a str,
    t: i64,
    /// The well-formed `v1` tags, in header order.
    v1: Vec<[u8; MAC_LEN]>,
}

fn parse_timestamped<'a>(
    header: &'static str,
    value: &'a str,
) -> Result<Timestamped<'a>, Rejection> {
    let malformed = |reason| Rejection::Malformed { header, reason };
    let mut t = None;
    let mut v1 = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, val) = entry
            .split_once('=')
            .ok_or_else(|| malformed("expected key=value entries separated by commas"))?;
        match key.trim() {
            "t" => {
                if t.is_some() {
                    return Err(malformed("more than one t= timestamp"));
                }
                let val = val.trim();
                let seconds = (!val.is_empty() && val.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| val.parse::<i64>().ok())
                    .flatten()
                    .ok_or_else(|| malformed("t= is not a unix time in seconds"))?;
                t = Some((val, seconds));
            }
            "v1" => v1.extend(decode_mac(val.trim())),
            // Stripe's v0 (test-mode scheme) and anything newer: not ours to check.
            _ => {}
        }
    }
    let (t_text, t) = t.ok_or_else(|| malformed("no t= timestamp"))?;
    if v1.is_empty() {
        return Err(malformed("no v1= signature of 64 hex digits"));
    }
    Ok(Timestamped { t_text, t, v1 })
}

fn required<'h>(
    headers: &'h (impl Headers + ?Sized),
    name: &'static str,
) -> Result<&'h str, Rejection> {
    headers
        .header(name)
        .map(str::trim)
        .ok_or(Rejection::MissingHeader(name))
}

/// An HMAC-SHA256 keyed with `secret`, fed `parts` in order, not yet finalized.
fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    for part in parts {
        Mac::update(&mut mac, part);
    }
    mac
}

fn decode_mac(hex: &str) -> Option<[u8; MAC_LEN]> {
    let mut tag = [0u8; MAC_LEN];
    hex::decode_to_slice(hex, &mut tag).ok()?;
    Some(tag)
}

/// A delivery id fit to key a replay record: non-empty, short, no control characters.
fn usable_id(id: &str) -> Option<String> {
    let id = id.trim();
    (!id.is_empty() && id.len() <= MAX_DELIVERY_ID_LEN && !id.chars().any(char::is_control))
        .then(|| id.to_string())
}

/// The `id` of a Stripe event (`{"id": "evt_...", ...}`), if the body is one.
fn stripe_event_id(body: &[u8]) -> Option<String> {
    let event: serde_json::Value = serde_json::from_slice(body).ok()?;
    usable_id(event.get("id")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"whsec_test";
    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = b"{\"id\":\"evt_1\"}\n";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW, 0).unwrap()
    }

    fn hex_mac(secret: &[u8], parts: &[&[u8]]) -> String {
        hex::encode(mac(secret, parts).finalize().into_bytes())
    }

    fn sign_github(secret: &[u8], body: &[u8]) -> String {
        format!("sha256={}", hex_mac(secret, &[body]))
    }

    /// Stripe's header carries the same `t=,v1=` form as Braid's.
    fn sign_stripe(secret: &[u8], body: &[u8], t: i64) -> String {
        sign_braid(secret, body, t)
    }

    /// A correctly signed delivery for `scheme`, signed with `secret` at `t`.
    fn signed(
        scheme: SignatureScheme,
        secret: &[u8],
        body: &[u8],
        t: i64,
    ) -> Vec<(String, String)> {
        let (name, value) = match scheme {
            SignatureScheme::Braid => (BRAID_SIGNATURE, sign_braid(secret, body, t)),
            SignatureScheme::Github => (GITHUB_SIGNATURE, sign_github(secret, body)),
            SignatureScheme::Stripe => (STRIPE_SIGNATURE, sign_stripe(secret, body, t)),
        };
        vec![(name.to_string(), value)]
    }

    fn one(name: &str, value: &str) -> Vec<(String, String)> {
        vec![(name.to_string(), value.to_string())]
    }

    const SCHEMES: [SignatureScheme; 3] = [
        SignatureScheme::Braid,
        SignatureScheme::Github,
        SignatureScheme::Stripe,
    ];

    fn header_of(scheme: SignatureScheme) -> &'static str {
        match scheme {
            SignatureScheme::Braid => BRAID_SIGNATURE,
            SignatureScheme::Github => GITHUB_SIGNATURE,
            SignatureScheme::Stripe => STRIPE_SIGNATURE,
        }
    }

    #[test]
    fn braid_signature_verifies_and_names_the_delivery() {
        let mut headers = signed(SignatureScheme::Braid, SECRET, BODY, NOW - 10);
        headers.push((BRAID_DELIVERY.into(), "d-42".into()));
        let v = verify(SignatureScheme::Braid, SECRET, &headers, BODY, now()).unwrap();
        assert_eq!(v.scheme, SignatureScheme::Braid);
        assert_eq!(v.delivery_id.as_deref(), Some("d-42"));
        assert_eq!(v.signed_at, DateTime::from_timestamp(NOW - 10, 0));
        assert_eq!(delivery_key(&v, BODY), "d-42");
    }

    #[test]
    fn sign_braid_matches_the_openssl_recipe() {
        // { printf '1700000000.'; printf '{"id":"evt_1"}\n'; } |
        //   openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign_braid(SECRET, BODY, NOW),
            "t=1700000000,v1=43254038ee0c29a6b41f03e16cf3db9953d3c604502b038a3c9f0456c766728c"
        );
    }

    #[test]
    fn github_signature_verifies_and_names_the_delivery() {
        let mut headers = signed(SignatureScheme::Github, SECRET, BODY, NOW);
        headers.push((
            GITHUB_DELIVERY.into(),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
        ));
        let v = verify(SignatureScheme::Github, SECRET, &headers, BODY, now()).unwrap();
        assert_eq!(v.scheme, SignatureScheme::Github);
        assert_eq!(
            v.delivery_id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_eq!(v.signed_at, None);
    }

    #[test]
    fn github_documented_test_vector_verifies() {
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        assert_eq!(sign_github(secret, body), format!("sha256={expected}"));
        let headers = one(GITHUB_SIGNATURE, &format!("sha256={expected}"));
        let v = verify(SignatureScheme::Github, secret, &headers, body, now()).unwrap();
        assert_eq!(v.signature, expected);
    }

    #[test]
    fn github_signature_in_uppercase_hex_verifies() {
        let value = sign_github(SECRET, BODY);
        let upper = format!("sha256={}", value["sha256=".len()..].to_ascii_uppercase());
        let headers = one(GITHUB_SIGNATURE, &upper);
        assert!(verify(SignatureScheme::Github, SECRET, &headers, BODY, now()).is_ok());
    }

    #[test]
    fn github_delivery_without_time_verifies_whatever_the_clock_says() {
        let headers = signed(SignatureScheme::Github, SECRET, BODY, NOW);
        let much_later = DateTime::from_timestamp(NOW + 86_400 * 365, 0).unwrap();
        assert!(verify(SignatureScheme::Github, SECRET, &headers, BODY, much_later).is_ok());
    }

    #[test]
    fn stripe_signature_verifies_and_takes_the_event_id_from_the_body() {
        let headers = signed(SignatureScheme::Stripe, SECRET, BODY, NOW);
        let v = verify(SignatureScheme::Stripe, SECRET, &headers, BODY, now()).unwrap();
        assert_eq!(v.scheme, SignatureScheme::Stripe);
        assert_eq!(v.delivery_id.as_deref(), Some("evt_1"));
        assert_eq!(v.signed_at, Some(now()));
        assert_eq!(delivery_key(&v, BODY), "evt_1");
    }

    #[test]
    fn stripe_v0_entries_and_unknown_keys_are_ignored() {
        let t = NOW - 3;
        let v1 = hex_mac(SECRET, &[t.to_string().as_bytes(), b".", BODY]);
        let value = format!("t={t},v0={},v1={v1},v9=whatever", "0".repeat(64));
        let headers = one(STRIPE_SIGNATURE, &value);
        assert!(verify(SignatureScheme::Stripe, SECRET, &headers, BODY, now()).is_ok());
        let only_v0 = one(STRIPE_SIGNATURE, &format!("t={t},v0={v1}"));
        assert_eq!(
            verify(SignatureScheme::Stripe, SECRET, &only_v0, BODY, now()),
            Err(Rejection::Malformed {
                header: STRIPE_SIGNATURE,
                reason: "no v1= signature of 64 hex digits"
            })
        );
    }

    #[test]
    fn stripe_body_without_an_event_id_falls_back_to_the_body_hash() {
        for body in [
            &b"not json"[..],
            b"{\"id\":7}",
            b"{\"object\":\"event\"}",
            b"[]",
        ] {
            let headers = signed(SignatureScheme::Stripe, SECRET, body, NOW);
            let v = verify(SignatureScheme::Stripe, SECRET, &headers, body, now()).unwrap();
            assert_eq!(v.delivery_id, None);
            let key = delivery_key(&v, body);
            assert_eq!(key, format!("sha256:{}", hex::encode(Sha256::digest(body))));
        }
    }

    #[test]
    fn delivery_key_without_a_delivery_id_is_the_body_hash() {
        let headers = signed(SignatureScheme::Braid, SECRET, b"", NOW);
        let v = verify(SignatureScheme::Braid, SECRET, &headers, b"", now()).unwrap();
        assert_eq!(v.delivery_id, None);
        assert_eq!(
            delivery_key(&v, b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn unusable_delivery_ids_are_ignored() {
        for id in ["", "   ", "a\u{7}b", &"x".repeat(MAX_DELIVERY_ID_LEN + 1)] {
            let mut headers = signed(SignatureScheme::Braid, SECRET, BODY, NOW);
            headers.push((BRAID_DELIVERY.into(), id.to_string()));
            let v = verify(SignatureScheme::Braid, SECRET, &headers, BODY, now()).unwrap();
            assert_eq!(v.delivery_id, None, "{id:?}");
        }
    }

    #[test]
    fn wrong_secret_is_rejected_for_every_scheme() {
        for scheme in SCHEMES {
            let headers = signed(scheme, b"another secret", BODY, NOW);
            assert_eq!(
                verify(scheme, SECRET, &headers, BODY, now()),
                Err(Rejection::NoMatch {
                    header: header_of(scheme)
                }),
                "{scheme:?}"
            );
        }
    }

    #[test]
    fn body_altered_by_one_byte_is_rejected_for_every_scheme() {
        for scheme in SCHEMES {
            let headers = signed(scheme, SECRET, BODY, NOW);
            for i in 0..BODY.len() {
                let mut altered = BODY.to_vec();
                altered[i] ^= 1;
                assert_eq!(
                    verify(scheme, SECRET, &headers, &altered, now()),
                    Err(Rejection::NoMatch {
                        header: header_of(scheme)
                    }),
                    "{scheme:?} byte {i}"
                );
            }
            let mut longer = BODY.to_vec();
            longer.push(b' ');
            assert!(verify(scheme, SECRET, &headers, &longer, now()).is_err());
        }
    }

    #[test]
    fn timestamp_changed_after_signing_is_rejected() {
        let value = sign_braid(SECRET, BODY, NOW).replace("t=1700000000", "t=1700000001");
        let headers = one(BRAID_SIGNATURE, &value);
        assert_eq!(
            verify(SignatureScheme::Braid, SECRET, &headers, BODY, now()),
            Err(Rejection::NoMatch {
                header: BRAID_SIGNATURE
            })
        );
    }

    #[test]
    fn stale_timestamp_is_rejected_with_its_age() {
        for scheme in [SignatureScheme::Braid, SignatureScheme::Stripe] {
            let headers = signed(scheme, SECRET, BODY, NOW - TOLERANCE_SECS - 1);
            assert_eq!(
                verify(scheme, SECRET, &headers, BODY, now()),
                Err(Rejection::TooOld { skew_secs: 301 }),
                "{scheme:?}"
            );
            let headers = signed(scheme, SECRET, BODY, NOW - 86_400);
            assert_eq!(
                verify(scheme, SECRET, &headers, BODY, now()),
                Err(Rejection::TooOld { skew_secs: 86_400 })
            );
        }
    }

    #[test]
    fn future_timestamp_is_rejected_with_its_lead() {
        for scheme in [SignatureScheme::Braid, SignatureScheme::Stripe] {
            let headers = signed(scheme, SECRET, BODY, NOW + TOLERANCE_SECS + 1);
            assert_eq!(
                verify(scheme, SECRET, &headers, BODY, now()),
                Err(Rejection::InFuture { skew_secs: 301 }),
                "{scheme:?}"
            );
        }
        let far = signed(SignatureScheme::Braid, SECRET, BODY, i64::MAX);
        assert!(matches!(
            verify(SignatureScheme::Braid, SECRET, &far, BODY, now()),
            Err(Rejection::InFuture { .. })
        ));
    }

    #[test]
    fn timestamp_exactly_five_minutes_off_is_accepted() {
        for t in [NOW - TOLERANCE_SECS, NOW + TOLERANCE_SECS] {
            let headers = signed(SignatureScheme::Braid, SECRET, BODY, t);
            assert!(verify(SignatureScheme::Braid, SECRET, &headers, BODY, now()).is_ok());
        }
    }

    #[test]
    fn missing_signature_header_is_rejected_naming_it() {
        for scheme in SCHEMES {
            // The other schemes' headers don't count.
            let others: Vec<(String, String)> = SCHEMES
                .into_iter()
                .filter(|s| *s != scheme)
                .flat_map(|s| signed(s, SECRET, BODY, NOW))
                .collect();
            for headers in [vec![], others] {
                assert_eq!(
                    verify(scheme, SECRET, &headers, BODY, now()),
                    Err(Rejection::MissingHeader(header_of(scheme))),
                    "{scheme:?}"
                );
            }
        }
    }

    #[test]
    fn malformed_timestamped_headers_are_rejected() {
        let v1 = hex_mac(SECRET, &[b"1700000000.", BODY]);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "no t= timestamp"),
            (
                "garbage".into(),
                "expected key=value entries separated by commas",
            ),
            (format!("v1={v1}"), "no t= timestamp"),
            ("t=1700000000".into(), "no v1= signature of 64 hex digits"),
            (
                "t=1700000000,v1=".into(),
                "no v1= signature of 64 hex digits",
            ),
            (
                "t=1700000000,v1=zz".into(),
                "no v1= signature of 64 hex digits",
            ),
            (
                format!("t=1700000000,v1={}", &v1[..62]),
                "no v1= signature of 64 hex digits",
            ),
            (
                format!("t=1700000000,v1={v1}00"),
                "no v1= signature of 64 hex digits",
            ),
            (format!("t=abc,v1={v1}"), "t= is not a unix time in seconds"),
            (format!("t=,v1={v1}"), "t= is not a unix time in seconds"),
            (format!("t=-5,v1={v1}"), "t= is not a unix time in seconds"),
            (
                format!("t=+1700000000,v1={v1}"),
                "t= is not a unix time in seconds",
            ),
            (
                format!("t=99999999999999999999,v1={v1}"),
                "t= is not a unix time in seconds",
            ),
            (
                format!("t=1700000000,t=1700000000,v1={v1}"),
                "more than one t= timestamp",
            ),
            (
                format!("t=1700000000;v1={v1}"),
                "t= is not a unix time in seconds",
            ),
        ];
        for scheme in [SignatureScheme::Braid, SignatureScheme::Stripe] {
            let header = header_of(scheme);
            for (value, reason) in &cases {
                assert_eq!(
                    verify(scheme, SECRET, &one(header, value), BODY, now()),
                    Err(Rejection::Malformed { header, reason }),
                    "{scheme:?} {value:?}"
                );
            }
        }
    }

    #[test]
    fn padding_and_empty_entries_in_timestamped_headers_are_tolerated() {
        let v1 = hex_mac(SECRET, &[b"1700000000.", BODY]);
        let value = format!("  t = 1700000000 , , v1 = {v1} ,");
        let headers = one(BRAID_SIGNATURE, &value);
        assert!(verify(SignatureScheme::Braid, SECRET, &headers, BODY, now()).is_ok());
    }

    #[test]
    fn malformed_github_headers_are_rejected() {
        let hex = hex_mac(SECRET, &[BODY]);
        for value in [
            String::new(),
            hex.clone(),
            format!("sha1={hex}"),
            format!("SHA256={hex}"),
            format!("sha256={}", &hex[..63]),
            format!("sha256={hex}0"),
            "sha256=".to_string(),
            format!("sha256={}", "g".repeat(64)),
        ] {
            assert_eq!(
                verify(
                    SignatureScheme::Github,
                    SECRET,
                    &one(GITHUB_SIGNATURE, &value),
                    BODY,
                    now()
                ),
                Err(Rejection::Malformed {
                    header: GITHUB_SIGNATURE,
                    reason: "expected sha256=<64 hex digits>"
                }),
                "{value:?}"
            );
        }
    }

    #[test]
    fn multiple_v1_entries_pass_when_one_matches() {
        let t = NOW.to_string();
        let old = hex_mac(b"old secret", &[t.as_bytes(), b".", BODY]);
        let new = hex_mac(SECRET, &[t.as_bytes(), b".", BODY]);
        for value in [
            format!("t={t},v1={old},v1={new}"),
            format!("t={t},v1={new},v1={old}"),
            format!("v1={old},v1=nothex,t={t},v1={new}"),
        ] {
            for scheme in [SignatureScheme::Braid, SignatureScheme::Stripe] {
                let v = verify(scheme, SECRET, &one(header_of(scheme), &value), BODY, now())
                    .unwrap_or_else(|e| panic!("{scheme:?} {value:?}: {e}"));
                assert_eq!(v.signature, new);
            }
        }
    }

    #[test]
    fn multiple_v1_entries_none_matching_are_rejected() {
        let t = NOW.to_string();
        let a = hex_mac(b"secret a", &[t.as_bytes(), b".", BODY]);
        let b = hex_mac(b"secret b", &[t.as_bytes(), b".", BODY]);
        let headers = one(BRAID_SIGNATURE, &format!("t={t},v1={a},v1={b}"));
        assert_eq!(
            verify(SignatureScheme::Braid, SECRET, &headers, BODY, now()),
            Err(Rejection::NoMatch {
                header: BRAID_SIGNATURE
            })
        );
    }

    #[test]
    fn header_names_are_case_insensitive() {
        for scheme in SCHEMES {
            let value = signed(scheme, SECRET, BODY, NOW).remove(0).1;
            let name = header_of(scheme);
            for spelled in [name.to_ascii_lowercase(), name.to_ascii_uppercase()] {
                let headers = [
                    (spelled.as_str(), value.as_str()),
                    ("x-github-delivery", "g-1"),
                ];
                let v = verify(scheme, SECRET, &headers, BODY, now()).unwrap();
                if scheme == SignatureScheme::Github {
                    assert_eq!(v.delivery_id.as_deref(), Some("g-1"));
                }
            }
        }
        let mut braid = signed(SignatureScheme::Braid, SECRET, BODY, NOW);
        braid.push(("BRAID-DELIVERY".into(), "d-1".into()));
        let v = verify(SignatureScheme::Braid, SECRET, &braid, BODY, now()).unwrap();
        assert_eq!(v.delivery_id.as_deref(), Some("d-1"));
    }

    #[test]
    fn maps_of_headers_are_accepted() {
        let value = sign_braid(SECRET, BODY, NOW);
        let hash: HashMap<String, String> = [("braid-signature".to_string(), value.clone())]
            .into_iter()
            .collect();
        let tree: BTreeMap<&str, &str> =
            [("Braid-Signature", value.as_str())].into_iter().collect();
        assert!(verify(SignatureScheme::Braid, SECRET, &hash, BODY, now()).is_ok());
        assert!(verify(SignatureScheme::Braid, SECRET, &tree, BODY, now()).is_ok());
    }

    #[test]
    fn empty_secret_is_refused() {
        for scheme in SCHEMES {
            let headers = signed(scheme, b"", BODY, NOW);
            assert_eq!(
                verify(scheme, b"", &headers, BODY, now()),
                Err(Rejection::EmptySecret)
            );
        }
    }

    #[test]
    fn rejections_reveal_neither_the_expected_mac_nor_the_secret() {
        let secret = b"s3cr3t-value";
        let expected = hex_mac(secret, &[b"1700000000.", BODY]);
        let rejections = [
            verify(
                SignatureScheme::Braid,
                secret,
                &signed(SignatureScheme::Braid, b"x", BODY, NOW),
                BODY,
                now(),
            ),
            verify(
                SignatureScheme::Braid,
                secret,
                &one(BRAID_SIGNATURE, "t=1,v1=zz"),
                BODY,
                now(),
            ),
            verify(
                SignatureScheme::Braid,
                secret,
                &signed(SignatureScheme::Braid, secret, BODY, NOW - 999),
                BODY,
                now(),
            ),
            verify(
                SignatureScheme::Github,
                secret,
                &signed(SignatureScheme::Github, b"x", BODY, NOW),
                BODY,
                now(),
            ),
        ];
        for r in rejections {
            let r = r.unwrap_err();
            for text in [r.to_string(), format!("{r:?}")] {
                assert!(!text.contains(&expected), "{text}");
                assert!(!text.contains(&expected[..16]), "{text}");
                assert!(!text.contains("s3cr3t"), "{text}");
            }
        }
        assert_eq!(
            Rejection::TooOld { skew_secs: 301 }.to_string(),
            "signature timestamp is 301 s in the past, more than the 300 s allowed"
        );
        assert_eq!(
            Rejection::MissingHeader(BRAID_SIGNATURE).to_string(),
            "missing Braid-Signature header"
        );
    }

    fn scheme_strategy() -> impl Strategy<Value = SignatureScheme> {
        prop_oneof![
            Just(SignatureScheme::Braid),
            Just(SignatureScheme::Github),
            Just(SignatureScheme::Stripe),
        ]
    }

    /// Header values an attacker might send: noise, and well-formed signatures made
    /// with some other key, for times around `NOW`.
    fn value_strategy() -> impl Strategy<Value = String> {
        // Never equal to a secret drawn below (1 to 63 bytes): empty, or longer than a
        // SHA-256 block, which HMAC first hashes down to 32 bytes.
        let forged_key = prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec(any::<u8>(), 65..80),
        ];
        prop_oneof![
            any::<String>(),
            "[tv0-9a-f=, ]{0,160}",
            (forged_key.clone(), -600i64..600, any::<Vec<u8>>())
                .prop_map(|(k, dt, body)| sign_braid(&k, &body, NOW + dt)),
            (forged_key, any::<Vec<u8>>())
                .prop_map(|(k, body)| { format!("sha256={}", hex_mac(&k, &[body.as_slice()])) }),
        ]
    }

    fn headers_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        let name = prop_oneof![
            Just(BRAID_SIGNATURE.to_string()),
            Just(GITHUB_SIGNATURE.to_ascii_lowercase()),
            Just(STRIPE_SIGNATURE.to_ascii_uppercase()),
            Just(BRAID_DELIVERY.to_string()),
            Just(GITHUB_DELIVERY.to_string()),
            any::<String>(),
        ];
        proptest::collection::vec((name, value_strategy()), 0..6)
    }

    proptest! {
        #[test]
        fn arbitrary_deliveries_never_panic_nor_verify_without_the_secret(
            scheme in scheme_strategy(),
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            headers in headers_strategy(),
            body in any::<Vec<u8>>(),
            dt in -1_000i64..1_000,
        ) {
            let now = DateTime::from_timestamp(NOW + dt, 0).unwrap();
            prop_assert!(verify(scheme, &secret, &headers, &body, now).is_err());
        }

        #[test]
        fn what_sign_braid_produces_verifies(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            body in any::<Vec<u8>>(),
            dt in -TOLERANCE_SECS..=TOLERANCE_SECS,
        ) {
            let headers = one(BRAID_SIGNATURE, &sign_braid(&secret, &body, NOW + dt));
            let v = verify(SignatureScheme::Braid, &secret, &headers, &body, now());
            prop_assert!(v.is_ok(), "{:?}", v);
        }
    }
}
