//! `amortize data verify|download|embed`: the MNIST / FashionMNIST files, md5-checked, and
//! embedding sets made from them for `--task embeddings`.

use anyhow::Context;

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

/// `data embed`: every image of both splits as `dim` features, x ↦ P (x / 255) with one fixed
/// Gaussian projection P ~ N(0, 1/784) drawn from `seed`, written as the embedding files of
/// `--task embeddings`.
pub fn embed(a: EmbedArgs) -> anyhow::Result<()> {
    use amortize::task::embeddings::Embeddings;
    use amortize::task::mnist::{ImageSet, Images};
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, Normal};
    let set = match a.dataset.as_str() {
        "mnist" => ImageSet::Mnist,
        "fashion" => ImageSet::Fashion,
        other => anyhow::bail!("--dataset: unknown {other:?} (expected mnist or fashion)"),
    };
    if a.dim == 0 || a.dim > 8192 {
        anyhow::bail!("--dim must be in 1..=8192, got {}", a.dim);
    }
    let name = a
        .name
        .unwrap_or_else(|| format!("{}-proj{}", a.dataset, a.dim));
    amortize::task::embeddings::EmbeddingConfig {
        name: name.clone(),
        dim: a.dim,
        ..Default::default()
    }
    .validate()
    .map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let dir = data::data_dir(a.data.as_deref());
    let images = data::load_images(set, &dir)?;
    const PIXELS: usize = 784;
    let mut rng = StdRng::seed_from_u64(a.seed);
    let normal = Normal::new(0.0f32, 1.0 / (PIXELS as f32).sqrt()).expect("a valid σ");
    let projection: Vec<f32> = (0..PIXELS * a.dim)
        .map(|_| normal.sample(&mut rng))
        .collect();
    let project = |images: &Images| -> Embeddings {
        let features = images
            .pixels
            .chunks(PIXELS)
            .flat_map(|x| {
                (0..a.dim).map(|j| {
                    x.iter()
                        .zip(&projection[j * PIXELS..(j + 1) * PIXELS])
                        .map(|(&p, w)| p as f32 / 255.0 * w)
                        .sum::<f32>()
                })
            })
            .collect();
        Embeddings {
            dim: a.dim,
            features,
            labels: images.labels.iter().map(|&l| l as usize).collect(),
        }
    };
    let out = dir.join("embeddings");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for (split, images) in [("train", &images.train), ("test", &images.test)] {
        let path = out.join(format!("{name}-{split}.safetensors"));
        let bytes = project(images).encode().map_err(|e| anyhow::anyhow!(e))?;
        crate::run::write_atomic(&path, &bytes)?;
        println!(
            "{}: {} images, {} features",
            path.display(),
            images.labels.len(),
            a.dim
        );
    }
    Ok(())
}
