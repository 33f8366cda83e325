//! `amortize`: meta-train, evaluate and export iterative amortized inference models.

/// mimalloc: Burn allocates and frees many short-lived tensor buffers per step; the system
/// allocator hands large ones back to the kernel each time (page faults on every reuse).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod baseline;
mod bench;
mod cli;
mod commands;
mod data;
mod device;
mod eval;
mod export;
mod order;
mod paper;
mod points;
mod run;
mod train;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command, DataCommand};
use commands::plot;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Train(a) => matches
            .subcommand_matches("train")
            .ok_or_else(|| anyhow::anyhow!("no train arguments"))
            .and_then(|m| commands::train::run(a, m)),
        Command::Eval(a) => commands::eval::run(a).map(|_| ()),
        Command::Export(a) => commands::export::run(a),
        Command::Data(DataCommand::Verify(a)) => commands::data::run(a, None),
        Command::Data(DataCommand::Download(a)) => commands::data::run(a.data, Some(a.mirror)),
        Command::Data(DataCommand::Embed(a)) => commands::data::embed(a),
        Command::Bench(a) => matches
            .subcommand_matches("bench")
            .ok_or_else(|| anyhow::anyhow!("no bench arguments"))
            .and_then(|m| commands::bench::run(a, m)),
        Command::Plot(a) => plot::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
