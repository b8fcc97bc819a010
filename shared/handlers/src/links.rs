//! Signed approval links: a token that carries one decision on one waiting attempt of
//! an approval step, so that someone without credentials (the reader of a Slack
//! message, an email) can decide by opening a URL.
//!
//! A token is `<claims>.<tag>`, both base64url without padding: the claims are a small
//! JSON object (run, step key, attempt, decision, expiry in unix seconds) and the tag
//! is an HMAC-SHA256 over a fixed label and the claims, keyed with the
//! `approval-links` secret. Nothing is stored per link: the signature makes it
//! unforgeable, the expiry bounds it, and naming the attempt makes it single-use (once
//! that attempt is decided, or has timed out, the link no longer matches a waiting
//! step). The same claims always give the same token, so the run view can show the
//! links the `step.waiting` event carried without keeping them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use braid_lang::triggers::signature::{hmac_matches, hmac_sha256};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The secret whose value keys the links (and callback tokens, under their own
/// label); without it no link or callback token is made.
pub const LINK_KEY_SECRET: &str = "approval-links";

/// Signed into every tag, so a MAC made with the same key for another purpose can
/// never pass as a link's.
const LABEL: &[u8] = b"braid-approval-link.v1.";

/// What a link may do, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The run id.
    pub run: String,
    /// The step key: `id`, or `id[i]` for an iteration.
    pub step: String,
    /// The waiting attempt the link decides; any other is refused.
    pub attempt: u32,
    /// Approve (`true`) or reject.
    pub approve: bool,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this approval link is not valid")]
    Forged,
    #[error("this approval link expired at {0}")]
    Expired(DateTime<Utc>),
}

/// The token for `claims`, signed with `key`.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    seal(key, LABEL, claims)
}

/// The claims of `token` if `key` signed it and it has not expired at `now`. The tag
/// is checked first, in constant time, so nothing about unsigned claims is revealed.
pub fn open(key: &[u8], token: &str, now: DateTime<Utc>) -> Result<Claims, LinkError> {
    let claims: Claims = unseal(key, LABEL, token).ok_or(LinkError::Forged)?;
    if now.timestamp() > claims.expires {
        let at = DateTime::from_timestamp(claims.expires, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
        return Err(LinkError::Expired(at));
    }
    Ok(claims)
}

/// `claims` as `<claims>.<tag>`, both base64url without padding, the tag an
/// HMAC-SHA256 keyed with `key` over `label` and the claims' JSON. The label keeps a
/// token made for one purpose (a link, a callback) from passing as another's.
pub fn seal(key: &[u8], label: &[u8], claims: &impl Serialize) -> String {
    let body = serde_json::to_vec(claims).expect("claims serialize");
    let tag = hmac_sha256(key, &[label, &body]);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&body),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The claims `token` carries if `key` sealed them under `label`; `None` for anything
/// else (forged, altered, garbage). The tag is checked first, in constant time.
pub fn unseal<T: DeserializeOwned>(key: &[u8], label: &[u8], token: &str) -> Option<T> {
    let (body, tag) = token.split_once('.')?;
    let body = URL_SAFE_NO_PAD.decode(body).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if !hmac_matches(key, &[label, &body], &tag) {
        return None;
    }
    serde_json::from_slice(&body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"link-key";

    fn claims() -> Claims {
        Claims {
            run: "01RUN".into(),
            step: "manager".into(),
            attempt: 1,
            approve: true,
            expires: 2_000,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_signed_token_opens_to_its_claims_until_it_expires() {
        let token = sign(KEY, &claims());
        assert_eq!(open(KEY, &token, at(2_000)), Ok(claims()));
        assert_eq!(
            open(KEY, &token, at(2_001)),
            Err(LinkError::Expired(at(2_000)))
        );
    }

    #[test]
    fn altered_claims_another_key_or_garbage_are_forged() {
        let token = sign(KEY, &claims());
        assert_eq!(open(b"other", &token, at(0)), Err(LinkError::Forged));
        let mut rejecting = claims();
        rejecting.approve = false;
        let (_, tag) = token.split_once('.').unwrap();
        let (body, _) = sign(b"x", &rejecting)
            .split_once('.')
            .map(|(b, t)| (b.to_string(), t.to_string()))
            .unwrap();
        assert_eq!(
            open(KEY, &format!("{body}.{tag}"), at(0)),
            Err(LinkError::Forged)
        );
        for garbage in ["", ".", "abc", "a.b", &format!("{token}x")] {
            assert_eq!(
                open(KEY, garbage, at(0)),
                Err(LinkError::Forged),
                "{garbage}"
            );
        }
    }

    #[test]
    fn the_same_claims_give_the_same_token() {
        assert_eq!(sign(KEY, &claims()), sign(KEY, &claims()));
    }
}
