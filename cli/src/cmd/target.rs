//! Where `runs`, `show`, `workflows` and `backfill` work: the local state, or a
//! deployed stack when one is named (`--stack` or the resource flags; built with the
//! `aws` feature).

#[cfg(feature = "aws")]
use super::invoke_scope::InvokeScope;
use super::local::{StateArgs, open, open_existing, open_read_only};
#[cfg(feature = "aws")]
use super::stack::StackArgs;
use braid_handlers::Handlers;
use braid_local::runtime::LocalRuntime;
use std::path::PathBuf;

/// `--state`, and the stack options.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub stack: StackArgs,
}

/// The opened target and a description of it for messages; a stack with what its
/// dispatcher may invoke, when its outputs say.
pub enum Target {
    Local(LocalRuntime, String),
    #[cfg(feature = "aws")]
    Stack(Box<Handlers>, String, Option<InvokeScope>),
}

impl Target {
    /// The target to act on: a local state must exist already.
    pub async fn open(args: &TargetArgs) -> anyhow::Result<Target> {
        Self::open_with(args, None).await
    }

    /// The target to read only (`runs`, `show`, `workflows`): a local state must exist,
    /// and is opened read-only.
    pub async fn read(args: &TargetArgs) -> anyhow::Result<Target> {
        #[cfg(feature = "aws")]
        if args.stack.is_set() {
            return Self::open(args).await;
        }
        let state = &args.state.state;
        Ok(Target::Local(
            open_read_only(state)?,
            format!("`{}`", state.display()),
        ))
    }

    /// The target to write to: a local state is created when missing.
    pub async fn open_or_create(args: &TargetArgs) -> anyhow::Result<Target> {
        Self::opened(args, None, true).await
    }

    /// [`Target::open`], with where `lambda` steps run when the local runtime drives
    /// runs (`braid backfill`).
    pub async fn open_with(
        args: &TargetArgs,
        functions: Option<PathBuf>,
    ) -> anyhow::Result<Target> {
        Self::opened(args, functions, false).await
    }

    async fn opened(
        args: &TargetArgs,
        functions: Option<PathBuf>,
        create: bool,
    ) -> anyhow::Result<Target> {
        #[cfg(feature = "aws")]
        if args.stack.is_set() {
            let (handlers, scope) = args.stack.open().await?;
            return Ok(Target::Stack(Box::new(handlers), args.stack.place(), scope));
        }
        let state = &args.state.state;
        let rt = if create {
            open(state, functions)?
        } else {
            open_existing(state, functions)?
        };
        Ok(Target::Local(rt, format!("`{}`", state.display())))
    }

    pub fn handlers(&self) -> &Handlers {
        match self {
            Target::Local(rt, _) => rt.handlers(),
            #[cfg(feature = "aws")]
            Target::Stack(h, ..) => h,
        }
    }

    /// Who acts, for the audit trail and the records: locally `named` (`--as`) or the
    /// OS user; on a stack the IAM principal of the credentials in use. A name is
    /// refused there: it would be anyone's word, and approvers are judged by it.
    pub async fn actor(&self, named: Option<&str>) -> anyhow::Result<String> {
        match self {
            Target::Local(..) => Ok(named.map_or_else(super::os_user, str::to_string)),
            #[cfg(feature = "aws")]
            Target::Stack(..) => {
                let arn = super::stack::caller_arn().await?;
                match named {
                    Some(n) => anyhow::bail!(
                        "--as {n}: on a stack, whoever the AWS credentials are acts ({arn}); --as names who acts in a local state"
                    ),
                    None => Ok(arn),
                }
            }
        }
    }

    /// Whether the runs are in a local state (nothing drives them unless a braid
    /// process does).
    pub fn is_local(&self) -> bool {
        matches!(self, Target::Local(..))
    }

    /// Where the runs are: "`.braid`", "stack `prod`".
    pub fn place(&self) -> &str {
        match self {
            Target::Local(_, place) => place,
            #[cfg(feature = "aws")]
            Target::Stack(_, place, _) => place,
        }
    }
}
