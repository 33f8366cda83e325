//! Harness for the end-to-end tests: a static file server for trunk's `dist/` and a headless
//! Chromium pointed at it.
//!
//! The web app must be built first (`scripts/test.sh` does: `trunk build`). Chromium is Debian's
//! (`scripts/setup.sh` installs it); `AMORTIZE_CHROMIUM` overrides its path and `AMORTIZE_DIST`
//! the directory served.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};

/// The repository root. Read from `CARGO_MANIFEST_DIR` at run time (cargo sets it for tests):
/// the compile-time value is baked into the binary, and a binary reused from a build in another
/// checkout that shares the target directory would look there.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf())
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The built web app.
pub fn dist_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("AMORTIZE_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("dist"));
    if !dir.join("index.html").is_file() {
        bail!(
            "no built web app at {} (index.html missing): run scripts/test.sh, which builds it with trunk first",
            dir.display()
        );
    }
    Ok(dir)
}

/// Where screenshots go (kept as test artifacts).
pub fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("artifacts");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(OsStr::to_str) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("md") => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A static server for `root` on 127.0.0.1, plus extra in-memory files (path → bytes).
pub struct Server {
    /// Base URL, ending in `/`.
    pub url: String,
}

impl Server {
    /// Serves `root` in a background thread until the process ends.
    pub fn start(root: PathBuf, extra: HashMap<String, Vec<u8>>) -> anyhow::Result<Self> {
        let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow!("{e}"))?;
        let port = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow!("server has no IP address"))?
            .port();
        let server = Arc::new(server);
        let extra = Arc::new(extra);
        for _ in 0..4 {
            let (server, root, extra) = (server.clone(), root.clone(), extra.clone());
            thread::spawn(move || {
                for req in server.incoming_requests() {
                    let path = req.url().split('?').next().unwrap_or("/").to_string();
                    let rel = path.trim_start_matches('/');
                    let rel = if rel.is_empty() { "index.html" } else { rel };
                    let body = if let Some(bytes) = extra.get(rel) {
                        Some(bytes.clone())
                    } else if rel.contains("..") {
                        None
                    } else {
                        std::fs::read(root.join(rel)).ok()
                    };
                    let response = match body {
                        Some(bytes) => {
                            let header =
                                tiny_http::Header::from_bytes("Content-Type", mime(Path::new(rel)))
                                    .expect("valid header");
                            tiny_http::Response::from_data(bytes).with_header(header)
                        }
                        None => tiny_http::Response::from_data(b"not found".to_vec())
                            .with_status_code(404),
                    };
                    let _ = req.respond(response);
                }
            });
        }
        Ok(Self {
            url: format!("http://127.0.0.1:{port}/"),
        })
    }
}

/// Launches Debian's Chromium headless, with WebGPU enabled (SwiftShader on a CPU-only machine).
pub fn browser() -> anyhow::Result<Browser> {
    let path = std::env::var_os("AMORTIZE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !path.is_file() {
        bail!(
            "Chromium not found at {} (scripts/setup.sh installs Debian's chromium; AMORTIZE_CHROMIUM overrides the path)",
            path.display()
        );
    }
    let profile = std::env::temp_dir().join(format!("amortize-chromium-{}", std::process::id()));
    let args: Vec<&OsStr> = [
        "--enable-unsafe-webgpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1000, 900)))
        .user_data_dir(Some(profile))
        .idle_browser_timeout(Duration::from_secs(900))
        .args(args)
        .build()
        .context("launch options")?;
    Browser::new(options).context("starting Chromium")
}

/// Runs the expression `js` in the page (awaiting a promise) and returns its value when it is
/// a string, a number or a boolean (CDP returns those by value), else `Null`.
pub fn eval(tab: &Tab, js: &str) -> anyhow::Result<serde_json::Value> {
    let obj = tab
        .evaluate(js, true)
        .with_context(|| format!("evaluating {js}"))?;
    Ok(obj.value.unwrap_or(serde_json::Value::Null))
}

/// Numbers that `js` returns joined by commas.
pub fn eval_numbers(tab: &Tab, js: &str) -> anyhow::Result<Vec<f64>> {
    let v = eval(tab, js)?;
    let text = v
        .as_str()
        .ok_or_else(|| anyhow!("{js} gave {v}, not a string of numbers"))?;
    text.split(',')
        .map(|n| {
            n.trim()
                .parse::<f64>()
                .with_context(|| format!("{n:?} in {text:?}"))
        })
        .collect()
}

/// The text of the element with this `data-testid`, if present.
pub fn testid_text(tab: &Tab, id: &str) -> anyhow::Result<Option<String>> {
    let v = eval(
        tab,
        &format!(
            "(() => {{ const e = document.querySelector('[data-testid=\"{id}\"]'); return e ? e.textContent : null; }})()"
        ),
    )?;
    Ok(v.as_str().map(str::to_string))
}

/// Polls until the element with this `data-testid` exists and `accept` holds for its text.
pub fn wait_for_text(
    tab: &Tab,
    id: &str,
    timeout: Duration,
    accept: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        if let Some(t) = testid_text(tab, id)? {
            if accept(&t) {
                return Ok(t);
            }
        }
        if let Some(err) = testid_text(tab, "fatal")?.filter(|t| !t.is_empty()) {
            bail!("the app stopped: {err}");
        }
        if start.elapsed() > timeout {
            let body = eval(tab, "document.body.innerText")?;
            bail!("timed out after {timeout:?} waiting for [data-testid={id}]; page text: {body}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Saves a PNG screenshot of the page under `artifacts/`.
pub fn screenshot(tab: &Tab, name: &str) -> anyhow::Result<PathBuf> {
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)?;
    let path = artifacts_dir().join(format!("{name}.png"));
    std::fs::write(&path, png)?;
    Ok(path)
}

/// Drags the mouse with the left button held from `from` to `to` through `moves` intermediate
/// positions (real input events: pressed, moved with the button down, released).
pub fn drag(tab: &Tab, from: (f64, f64), to: (f64, f64), moves: usize) -> anyhow::Result<()> {
    use headless_chrome::protocol::cdp::Input::{
        DispatchMouseEvent, DispatchMouseEventTypeOption as T, MouseButton,
    };
    let event = |kind: T, (x, y): (f64, f64), buttons: u32| DispatchMouseEvent {
        Type: kind,
        x,
        y,
        modifiers: None,
        timestamp: None,
        button: Some(MouseButton::Left),
        buttons: Some(buttons),
        click_count: Some(1),
        force: None,
        tangential_pressure: None,
        tilt_x: None,
        tilt_y: None,
        twist: None,
        delta_x: None,
        delta_y: None,
        pointer_Type: None,
    };
    tab.call_method(event(T::MousePressed, from, 1))?;
    for i in 1..=moves {
        let f = i as f64 / moves as f64;
        let p = (from.0 + f * (to.0 - from.0), from.1 + f * (to.1 - from.1));
        tab.call_method(event(T::MouseMoved, p, 1))?;
        thread::sleep(Duration::from_millis(20));
    }
    tab.call_method(event(T::MouseReleased, to, 0))?;
    Ok(())
}
