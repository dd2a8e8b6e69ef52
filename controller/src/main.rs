//! The `wufb-operator` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "wufb-operator",
    version,
    about = "Declarative expedited Windows quality updates through Microsoft Graph"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the CRD YAML generated from the API types (to crds/ and the chart's crds/).
    Crdgen {
        /// Directories to write into (default: crds/ and charts/wufb-operator/crds/ when the chart exists).
        #[arg(long = "out")]
        out: Vec<PathBuf>,
        /// Print the CRDs to stdout instead of writing files.
        #[arg(long)]
        stdout: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out, stdout } => {
            if stdout {
                match wufb_operator::cli::crdgen::expected() {
                    Ok(docs) => {
                        for (_, yaml) in docs {
                            println!("---\n{yaml}");
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            } else {
                let dirs = if out.is_empty() {
                    wufb_operator::cli::crdgen::default_targets(&PathBuf::from("."))
                } else {
                    out
                };
                match wufb_operator::cli::crdgen::write(&dirs) {
                    Ok(files) => {
                        for f in files {
                            println!("wrote {}", f.display());
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}
