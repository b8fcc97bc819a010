//! Errors bounded before they are recorded. A step's error is written on its record,
//! on its run's record when it fails the run, in a `step.finished` / `run.finished`
//! event (EventBridge takes 256 KB) and in result messages (SQS takes 256 KB); a
//! Lambda's `errorMessage` or a rendered `fail` message can be any size. So an error
//! keeps its JSON shape, `{"error", "message"}`, and a message over the inline limit is
//! cut to a prefix that says how long the whole one is and where it is kept: the whole
//! message goes to the payload store, like any other big value.

use super::{HandlerResult, Handlers};
use braid_engine::model::{ErrorInfo, Outcome, StepRecord};
use serde_json::Value;

/// The longest `error` (the code) kept, in bytes; a longer one is cut. A code is an
/// identifier (`http.500`, `Lambda.Unhandled`), never the place for details.
pub(super) const MAX_ERROR_CODE: usize = 256;

impl Handlers {
    /// `outcome` of attempt `rec` with its error bounded (see the module docs).
    pub(super) async fn bound_outcome(
        &self,
        rec: &StepRecord,
        outcome: Outcome,
    ) -> HandlerResult<Outcome> {
        match outcome {
            Outcome::Failed { error, retryable } => {
                let key = match rec.key.index {
                    Some(i) => format!(
                        "runs/{}/{}/{i}/{}/error.json",
                        rec.run_id, rec.key.step, rec.attempt
                    ),
                    None => format!(
                        "runs/{}/{}/{}/error.json",
                        rec.run_id, rec.key.step, rec.attempt
                    ),
                };
                Ok(Outcome::Failed {
                    error: self.bound_error(&key, error).await?,
                    retryable,
                })
            }
            other => Ok(other),
        }
    }

    /// `error` with its code cut to [`MAX_ERROR_CODE`] and, when its message is over the
    /// inline limit, the message cut to a prefix naming the payload `key` where the
    /// whole message is stored.
    pub(super) async fn bound_error(
        &self,
        key: &str,
        error: ErrorInfo,
    ) -> HandlerResult<ErrorInfo> {
        let code = cut(&error.error, MAX_ERROR_CODE).to_string();
        let limit = self.settings.inline_limit;
        if error.message.len() <= limit {
            return Ok(ErrorInfo::new(code, error.message));
        }
        let total = error.message.len();
        let prefix = cut(&error.message, limit).to_string();
        self.store_value(key, Value::String(error.message)).await?;
        Ok(ErrorInfo::new(
            code,
            format!(
                "{prefix}… [cut at {} of {total} bytes; the whole message is payload {key}]",
                prefix.len()
            ),
        ))
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn a_cut_never_splits_a_character() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }
}
