//! `braid validate FILE...`: check files without running anything — workflow files,
//! and the function maps (`functions.yaml`) that sit beside them.

use super::{Exit, read_file};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow files (YAML or JSON).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Prints `ok FILE` for each valid file on stdout and every problem on stderr; every
/// file is checked even after one fails, so one call reports everything.
pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let mut all_valid = true;
    for path in &args.files {
        let text = match read_file(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e:#}");
                all_valid = false;
                continue;
            }
        };
        let name = path.display().to_string();
        if is_function_map(&text) {
            match braid_local::lambda::FunctionMap::parse(&text, path) {
                Ok(_) => println!("ok {name} (a function map)"),
                Err(e) => {
                    eprintln!("{e}");
                    all_valid = false;
                }
            }
            continue;
        }
        match braid_lang::parse(&name, &text) {
            Ok(_) => println!("ok {name}"),
            Err(invalid) => {
                eprintln!("{invalid}");
                all_valid = false;
            }
        }
    }
    Ok(if all_valid {
        Exit::Success
    } else {
        Exit::Invalid
    })
}

/// Whether `text` is a function map (a top-level `functions:` and no `steps:`), which
/// `braid validate examples/*.yaml` meets beside the workflows.
fn is_function_map(text: &str) -> bool {
    let top = |key: &str| text.lines().any(|l| l.starts_with(key));
    top("functions:") && !top("steps:")
}
