//! `amortize data verify|download`: the MNIST / FashionMNIST files, md5-checked.

use crate::cli::*;
use crate::data;

pub fn run(a: DataArgs, download: Option<Vec<String>>) -> anyhow::Result<()> {
    use amortize::task::mnist::ImageSet;
    let sets = match a.dataset.as_str() {
        "mnist" => vec![ImageSet::Mnist],
        "fashion" => vec![ImageSet::Fashion],
        "all" => vec![ImageSet::Mnist, ImageSet::Fashion],
        other => anyhow::bail!("--dataset: unknown {other:?} (expected mnist, fashion or all)"),
    };
    let dir = data::data_dir(a.data.as_deref());
    for set in sets {
        let lines = match &download {
            None => data::verify(set, &dir)?,
            Some(custom) => {
                let mirrors: Vec<String> = if custom.is_empty() {
                    data::mirrors(set).iter().map(|m| m.to_string()).collect()
                } else {
                    custom.clone()
                };
                data::download(set, &dir, &mirrors)?
            }
        };
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}
