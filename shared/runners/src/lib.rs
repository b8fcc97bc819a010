//! Task runners that work the same locally and on AWS.
//!
//!
//! # Layout
//! - [`http`]: `http` steps, with reqwest.
//! - [`lambda`]: how a Lambda function's answer and errors are read, for the
//!   backend-specific Lambda runners (`braid_local::lambda` for the embedded backend,
//!   `braid_aws::lambda` on AWS), so a function error fails an attempt alike on both.

pub mod http;
pub mod lambda;

pub use http::HttpRunner;

/// An error and its chain of causes on one line (`a: b: c`), skipping a cause whose
/// text its parent already shows.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
