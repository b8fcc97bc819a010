//! One module per command, plus what they share: exit statuses, loading a workflow
//! file, reporting errors, and where runs live ([`local`] state, a deployed [`stack`]).

pub mod audit;
pub mod backend;
pub mod backfill;
pub mod bench;
pub mod continue_run;
pub mod deploy;
pub mod dev;
#[cfg(feature = "aws")]
pub mod emulated;
pub mod graph;
pub mod interrupt;
#[cfg(feature = "aws")]
pub mod invoke_scope;
pub mod local;
pub mod logs;
pub mod pause;
pub mod progress;
pub mod report;
pub mod retry;
pub mod run;
pub mod runs;
pub mod schema;
pub mod show;
#[cfg(feature = "aws")]
pub mod stack;
pub mod start;
pub mod target;
pub mod undeploy;
pub mod validate;
pub mod waits;
pub mod workflows;

use anyhow::Context;
use braid_lang::{Invalid, Workflow};
use std::path::Path;
use std::process::ExitCode;

/// What a command tells the shell (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command worked, or the run succeeded.
    Success,
    /// The run ended failed, cancelled or timed out.
    RunFailed,
    /// Bad usage, an invalid workflow or invalid input.
    Invalid,
    /// Stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
    Interrupted,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(match e {
            Exit::Success => 0,
            Exit::RunFailed => 1,
            Exit::Invalid => 2,
            Exit::Interrupted => 130,
        })
    }
}

/// Reads and validates a workflow file. The file is named in errors as the user wrote
/// it, so `file:line:col` points where they can jump to.
pub fn load_workflow(path: &Path) -> anyhow::Result<Workflow> {
    let text = read_file(path)?;
    Ok(braid_lang::parse(&path.display().to_string(), &text)?)
}

/// Reads a file, naming it in the error.
pub fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
}

/// The OS user, as who acted when nobody is named (`--as`, a request's `by`): from
/// the environment, else (a service or a container, where `USER` is often unset) the
/// account of the process's user id in `/etc/passwd`.
pub fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(account_of_process)
        .unwrap_or_else(|| "unknown".into())
}

/// The name `/etc/passwd` gives the process's user id (Linux: the owner of
/// `/proc/self`).
fn account_of_process() -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").ok()?.uid();
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        account_named(uid, &passwd)
    }
    #[cfg(not(unix))]
    None
}

/// The account of user id `uid` in `passwd` (`name:x:uid:...` lines).
fn account_named(uid: u32, passwd: &str) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// Prints an error that ended a command on stderr and picks the exit status.
///
/// An invalid workflow prints as its diagnostics, one `file:line:col: message` a line,
/// exactly as `braid validate` prints them; anything else as `error: ...` with causes.
pub fn report(e: &anyhow::Error) -> Exit {
    match e.downcast_ref::<Invalid>() {
        Some(invalid) => eprintln!("{invalid}"),
        None => eprintln!("error: {e:#}"),
    }
    Exit::Invalid
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_account_is_found_by_its_user_id() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n# note\nana:x:1000:1000::/home/ana:/bin/sh\n";
        assert_eq!(super::account_named(1000, passwd).as_deref(), Some("ana"));
        assert_eq!(super::account_named(0, passwd).as_deref(), Some("root"));
        assert_eq!(super::account_named(7, passwd), None);
    }
}
