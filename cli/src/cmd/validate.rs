//! `braid validate FILE...`: check files without running anything.

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
