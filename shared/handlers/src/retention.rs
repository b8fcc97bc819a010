//! Payloads live as long as the records that name them.
//!
//! A payload expires a fixed time after it was last written (on AWS the bucket's
//! lifecycle rule, [`PAYLOAD_LIFETIME_DAYS`]); the records naming it expire a time
//! after their run *ends*. So as a run ends, its payloads written more than
//! [`RENEW_OLDER_THAN`] before are renewed (count as written now, see
//! [`braid_ports::PayloadStore::renew`]): every payload of the run then lives at least
//! `PAYLOAD_LIFETIME_DAYS - RENEW_OLDER_THAN` after the run's end, which the lifetime
//! is chosen to cover. A run shorter than `RENEW_OLDER_THAN` has nothing to renew and
//! costs no request at all; a longer one a listing of its payloads and a server-side
//! copy of each old one.
//!
//! The renewal comes before the write that ends the run: a crash in between leaves a
//! run that is ended again, renewing again, rather than an ended run whose payloads
//! were never renewed.

use super::{HandlerResult, Handlers, span};
use braid_engine::model::RunRecord;
use std::time::Duration;

/// Payloads of a run written this long before its end are renewed as it ends.
pub const RENEW_OLDER_THAN: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long the stack keeps a payload after it was last written (the payload
/// bucket's lifecycle rule in `infra/template.yaml`, which a test compares): the
/// records' retention after their run's end (90 days, 30 more for a step's), plus
/// [`RENEW_OLDER_THAN`].
pub const PAYLOAD_LIFETIME_DAYS: u64 = 90 + 30 + 7;

impl Handlers {
    /// Renews the payloads of `run`, about to end, that are older than
    /// [`RENEW_OLDER_THAN`] (see the module docs).
    pub(super) async fn keep_payloads(&self, run: &RunRecord) -> HandlerResult<()> {
        let cutoff = self.now() - span(RENEW_OLDER_THAN);
        if run.created_at >= cutoff {
            return Ok(());
        }
        let renewed = self
            .ports
            .payloads
            .renew(&format!("runs/{}/", run.id), cutoff)
            .await?;
        tracing::debug!(run = %run.id, renewed, "renewed the payloads of a long run");
        Ok(())
    }
}
