//! Validation diagnostics: what is wrong and where.

use super::located::Pos;
use std::fmt;

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

/// Every problem found in one file; never empty.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct Invalid {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if d.pos.is_known() {
                write!(f, "{}:{}: {}", self.file, d.pos, d.message)?;
            } else {
                write!(f, "{}: {}", self.file, d.message)?;
            }
        }
        Ok(())
    }
}

/// Collects diagnostics while a file is checked.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub(crate) items: Vec<Diagnostic>,
}

impl Collector {
    pub(crate) fn push(&mut self, pos: Pos, message: impl Into<String>) {
        self.items.push(Diagnostic {
            pos,
            message: message.into(),
        });
    }

    pub(crate) fn finish(mut self, file: &str) -> Result<(), Invalid> {
        if self.items.is_empty() {
            return Ok(());
        }
        self.items.sort_by_key(|d| d.pos);
        self.items.dedup();
        Err(Invalid {
            file: file.to_string(),
            diagnostics: self.items,
        })
    }
}
