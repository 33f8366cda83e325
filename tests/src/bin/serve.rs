//! Serves the built web app (`dist/`, or `AMORTIZE_DIST`) on http://127.0.0.1:$PORT/ (8080 by
//! default) the way a web host does: gzip-compressed text and WebAssembly, and entity tags so
//! the browser caches what it fetched. `scripts/serve.sh` builds the app and runs this.
//!
//! Usage: `cargo run --release -p amortize-e2e --bin serve` after `trunk build`.

use std::collections::HashMap;

use amortize_e2e::{dist_dir, Server};

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
    let dist = dist_dir()?;
    let server = Server::start_on(dist.clone(), HashMap::new(), port)?;
    println!("serving {} on {}", dist.display(), server.url);
    loop {
        std::thread::park();
    }
}
