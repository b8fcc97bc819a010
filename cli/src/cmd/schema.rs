//! `braid schema`: the JSON Schema of the workflow file, for editors and CI.

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: &Args) -> anyhow::Result<Exit> {
    let schema = braid_lang::json_schema();
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(Exit::Success)
}
