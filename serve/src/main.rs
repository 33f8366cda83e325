//! Serves the built web app (`dist/`, or `AMORTIZE_DIST`) on http://127.0.0.1:$PORT/ (8080 by
//! default) the way a web host does: gzip-compressed text and WebAssembly, and entity tags so
//! the browser caches what it fetched. `scripts/serve.sh` builds the app and runs this.
//!
//! Usage: `cargo run --release -p amortize-serve` after `trunk build`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use amortize_serve::Server;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    if let Some(arg) = std::env::args().nth(1) {
        anyhow::bail!(
            "unexpected argument {arg:?}: this server takes no arguments (PORT sets the port, AMORTIZE_DIST the directory)"
        );
    }
    let port = match std::env::var("PORT") {
        Ok(p) => p
            .trim()
            .parse::<u16>()
            .map_err(|_| anyhow::anyhow!("PORT={p:?} is not a port number (1-65535)"))?,
        Err(_) => 8080,
    };
    // `cargo run` sets CARGO_MANIFEST_DIR (serve/); the repository is its parent.
    let dist = std::env::var_os("AMORTIZE_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_MANIFEST_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf())
                .join("../dist")
        });
    anyhow::ensure!(
        dist.join("index.html").is_file(),
        "no built web app at {} (index.html missing): run scripts/serve.sh, which builds it with trunk first",
        dist.display()
    );
    let dist = dist.canonicalize().unwrap_or(dist);
    let server = Server::start_on(dist.clone(), HashMap::new(), port)?;
    println!("serving {} on {}", dist.display(), server.url);
    loop {
        std::thread::park();
    }
}
