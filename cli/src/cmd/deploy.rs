//! `braid deploy FILE... [--state DIR | --stack NAME]`: register workflow definitions in
//! the local state or in a deployed stack, each becoming its workflow's current
//! definition (what `braid start`, the API and triggers run).
//!
//! A stack's dispatcher may invoke only the Lambda functions its role allows: a
//! workflow naming another is refused here, before anything is registered, rather than
//! failing `lambda.access_denied` when a run reaches the step.

#[cfg(feature = "aws")]
use super::invoke_scope::InvokeScope;
use super::local::tokio;
use super::target::{Target, TargetArgs};
use super::{Exit, read_file};
use braid_engine::model::Definition;
use braid_handlers::definition;
use braid_lang::Workflow;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow files (YAML or JSON).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Who deploys, for the audit trail (default: the OS user; refused on a stack).
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Every file is checked before any is registered: one invalid file registers nothing,
/// so a deploy never leaves half of a set of related workflows updated.
pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let Some(definitions) = check(&args.files) else {
        return Ok(Exit::Invalid);
    };
    tokio()?.block_on(async {
        let target = Target::open_or_create(&args.target).await?;
        #[cfg(feature = "aws")]
        if let Target::Stack(_, place, Some(scope)) = &target {
            let refused = uninvokable(&definitions, scope, place);
            refused.iter().for_each(|why| eprintln!("error: {why}"));
            if !refused.is_empty() {
                return Ok(Exit::Invalid);
            }
        }
        let by = target.actor(args.by.as_deref()).await?;
        for (def, _) in &definitions {
            match target.handlers().deploy(def, &by).await {
                Ok(()) => {}
                // Refused as it stands: a workflow that would call itself.
                Err(braid_handlers::HandlerError::Invalid(why)) => {
                    eprintln!("error: {}: {why}", def.file);
                    return Ok(Exit::Invalid);
                }
                Err(e) => return Err(e.into()),
            }
            println!(
                "registered {} {} in {}",
                def.workflow,
                def.version,
                target.place()
            );
        }
        Ok(Exit::Success)
    })
}

/// The definitions of all files with their workflows, or `None` after printing every
/// problem on stderr as `braid validate` prints them.
fn check(files: &[PathBuf]) -> Option<Vec<(Definition, Workflow)>> {
    let mut definitions = Vec::new();
    let mut all_valid = true;
    for path in files {
        let name = path.display().to_string();
        match read_file(path).map(|text| definition(&name, &text)) {
            Ok(Ok(checked)) => definitions.push(checked),
            Ok(Err(invalid)) => {
                eprintln!("{invalid}");
                all_valid = false;
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                all_valid = false;
            }
        }
    }
    all_valid.then_some(definitions)
}

/// A message for each `lambda` step naming a function the stack's dispatcher may not
/// invoke, naming the stack parameters that would allow it. A name made by an
/// expression is known only at run time, where the dispatcher's role decides.
#[cfg(feature = "aws")]
fn uninvokable(
    definitions: &[(Definition, Workflow)],
    scope: &InvokeScope,
    place: &str,
) -> Vec<String> {
    let mut refused = Vec::new();
    for (def, wf) in definitions {
        for step in &wf.steps {
            let braid_lang::StepKind::Lambda { function } = &step.kind else {
                continue;
            };
            if function.contains("{{") || scope.allows(function) {
                continue;
            }
            refused.push(format!(
                "{}: step `{}` invokes `{function}`, which the dispatcher of {place} may not \
                 invoke (it may invoke {}): allow it with the stack parameter \
                 InvokableFunctionPrefix (a name prefix) or InvokableFunctions (ARN patterns)",
                def.file,
                step.id,
                scope.patterns()
            ));
        }
    }
    refused
}
