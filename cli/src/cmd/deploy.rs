//! `braid deploy FILE... [--state DIR | --stack NAME]`: register workflow definitions in
//! the local state or in a deployed stack, each becoming its workflow's current
//! definition (what `braid start`, the API and triggers run).

use super::local::tokio;
use super::target::{Target, TargetArgs};
use super::{Exit, read_file};
use braid_engine::model::Definition;
use braid_handlers::definition;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow files (YAML or JSON).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
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
        for def in &definitions {
            match target.handlers().register(def).await {
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

/// The definitions of all files, or `None` after printing every problem on stderr as
/// `braid validate` prints them.
fn check(files: &[PathBuf]) -> Option<Vec<Definition>> {
    let mut definitions = Vec::new();
    let mut all_valid = true;
    for path in files {
        let name = path.display().to_string();
        match read_file(path).map(|text| definition(&name, &text)) {
            Ok(Ok((def, _))) => definitions.push(def),
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
