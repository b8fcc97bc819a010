//! Limits the code relies on, checked against the stack's template: what one is
//! changed without the other breaks here.

use braid_emulated::template::Template;

/// A step's timeout is at most `MAX_STEP_TIMEOUT` because its task runs in the step
/// dispatcher: the function must run that long and a minute more to record the
/// outcome (and Lambda runs a function at most 15 minutes).
#[test]
fn the_dispatcher_runs_longer_than_the_longest_step_timeout() {
    let t = Template::embedded();
    let timeout = t.resource("StepDispatcherFunction")["Properties"]["Timeout"]
        .as_u64()
        .expect("the dispatcher's Timeout is a number");
    assert!(timeout <= 900, "Lambda runs a function at most 15 minutes");
    assert!(
        timeout >= braid_lang::MAX_STEP_TIMEOUT.as_secs() + 60,
        "the dispatcher ({timeout}s) cannot honour a step timeout of {:?}",
        braid_lang::MAX_STEP_TIMEOUT
    );
}

/// Payloads expire a fixed time after their last write; a run's records, a time after
/// the run ends. The lifecycle rule must cover the records' retention after a run's
/// end plus the age under which a run's payloads are not renewed as it ends.
#[test]
fn payloads_outlive_the_records_that_name_them() {
    let t = Template::embedded();
    let rules = t.resource("PayloadBucket")["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_array()
        .expect("lifecycle rules");
    let days: Vec<u64> = rules
        .iter()
        .filter_map(|r| r["ExpirationInDays"].as_u64())
        .collect();
    assert_eq!(
        days,
        [braid_handlers::PAYLOAD_LIFETIME_DAYS],
        "one expiry rule, the handlers'"
    );
    let day = 24 * 3600;
    let records = braid_aws::store::RETENTION.as_secs() + braid_aws::store::STEP_MARGIN.as_secs();
    assert!(
        braid_handlers::PAYLOAD_LIFETIME_DAYS * day
            >= records + braid_handlers::RENEW_OLDER_THAN.as_secs(),
        "a payload must outlive the step record naming it"
    );
}
