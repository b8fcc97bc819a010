use super::PortResult;
use async_trait::async_trait;
use braid_engine::model::Timestamp;
use braid_engine::timeline::Stream;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which attempt a task is carried out for. A runner that keeps a function's own
/// output files it under this, so `braid logs` can print it beside that attempt.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Invocation {
    pub run_id: String,
    /// The step, or `step[i]` for an iteration.
    pub step: String,
    pub attempt: u32,
}

impl Invocation {
    pub fn new(run_id: impl Into<String>, step: impl Into<String>, attempt: u32) -> Self {
        Invocation {
            run_id: run_id.into(),
            step: step.into(),
            attempt,
        }
    }
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} attempt {}", self.run_id, self.step, self.attempt)
    }
}

/// One line a function wrote while it ran an invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    pub at: Timestamp,
    pub stream: Stream,
    pub text: String,
}

/// The output functions wrote while they ran steps' attempts: locally, what the
/// Runtime API captured from the processes it launched; on AWS, the functions' lines
/// in CloudWatch Logs.
#[async_trait]
pub trait FunctionOutput: Send + Sync {
    /// The lines written for `call`, an attempt that started at `started`, oldest
    /// first; none when nothing was kept or can be found.
    async fn lines(&self, call: &Invocation, started: Timestamp) -> PortResult<Vec<OutputLine>>;
}

/// Keeps no output (a backend that cannot read it back).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOutput;

#[async_trait]
impl FunctionOutput for NoOutput {
    async fn lines(&self, _: &Invocation, _: Timestamp) -> PortResult<Vec<OutputLine>> {
        Ok(Vec::new())
    }
}
