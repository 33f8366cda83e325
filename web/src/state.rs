//! The page's settings, read from the URL: the `amortize-web-state` crate (pure, so that its
//! tests run natively; the web crate itself only builds for wasm32).

pub use amortize_web_state::*;
