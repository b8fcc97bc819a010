//! Ids that cross layers as their own types, so a run id is never passed where a step
//! id, a workflow name or any other text is expected. Both are written as plain strings
//! in records, messages and JSON.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// An id type over a `String`: read as text where text is wanted (keys, paths,
/// messages), compared with text, made from text.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_string())
            }
        }

        impl From<&String> for $name {
            fn from(id: &String) -> Self {
                $name(id.clone())
            }
        }

        impl From<&$name> for $name {
            fn from(id: &$name) -> Self {
                id.clone()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> Self {
                id.0.clone()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<&String> for $name {
            fn eq(&self, other: &&String) -> bool {
                &self.0 == *other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }
    };
}

text_id! {
    /// A run's id: a ULID in text, sortable by start time.
    RunId
}

text_id! {
    /// A step's id, as the workflow file names it (`[a-z0-9][a-z0-9_-]*`); with an
    /// iteration index it makes a [`crate::model::StepKey`].
    StepId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_written_as_plain_strings() {
        let id = RunId::new("01hx");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"01hx\"");
        assert_eq!(serde_json::from_str::<RunId>("\"01hx\"").unwrap(), id);
        assert_eq!(id, "01hx");
        assert_eq!(id.to_string(), "01hx");
        let step = StepId::new("price");
        assert_eq!(serde_json::to_string(&step).unwrap(), "\"price\"");
        assert_eq!(step, "price".to_string());
    }
}
