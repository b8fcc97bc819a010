//! Task runners that work the same locally and on AWS.
//!
//! - [`http`]: `http` steps, with reqwest.
//!
//! Lambda steps need a backend-specific runner: see `crate::local::lambda` for the
//! embedded backend.

pub mod http;

pub use http::HttpRunner;

/// An error and its chain of causes on one line (`a: b: c`), skipping a cause whose
/// text its parent already shows.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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
