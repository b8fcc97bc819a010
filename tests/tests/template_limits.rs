//! Limits the code relies on, checked against the stack's template: what one is
//! changed without the other breaks here.

use braid_e2e::template::Template;

/// A step's timeout is at most `MAX_STEP_TIMEOUT` because its task runs in the step
/// dispatcher: the function must run that long and a minute more to record the
/// outcome (and Lambda runs a function at most 15 minutes).
#[test]
fn the_dispatcher_runs_longer_than_the_longest_step_timeout() {
    let t = Template::load();
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
