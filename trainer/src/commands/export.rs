//! `amortize export`: evaluate a model and write it, with its card, for the web app.

use crate::cli::*;
use crate::export;

pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    let name = a.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        anyhow::bail!("--name: letters, digits, '-' and '_' only, got {name:?}");
    }
    if a.eval.weights.len() != 1 {
        anyhow::bail!(
            "--weights: export takes one model, got {}",
            a.eval.weights.len()
        );
    }
    let (bundle, report) = super::eval::run(a.eval)?;
    let Some(bundle) = bundle else {
        anyhow::bail!("export: topological-order (SCM) models have no web demo to export to");
    };
    export::export(bundle, &report, &command_line(), &a.dir, &name)?;
    eprintln!("exported {}/{name}.amz and {name}.md", a.dir.display());
    Ok(())
}
