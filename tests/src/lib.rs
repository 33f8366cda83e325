//! Harness for the end-to-end tests: a static file server for trunk's `dist/` and a headless
//! Chromium pointed at it.
//!
//! The web app must be built first (`scripts/test.sh` does: `trunk build`). Chromium is Debian's
//! (`scripts/setup.sh` installs it); `AMORTIZE_CHROMIUM` overrides its path and `AMORTIZE_DIST`
//! the directory served.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

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

/// Damaged copies of the shipped regression weights, served beside the real ones as
/// `weights/corrupt.amz` (one flipped bit) and `weights/truncated.amz` (the first third).
pub fn damaged_weights() -> anyhow::Result<HashMap<String, Vec<u8>>> {
    let weights = std::fs::read(dist_dir()?.join("weights/regression-parametric.amz"))
        .context("dist/ holds the shipped weights")?;
    let mut corrupt = weights.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x10;
    let truncated = weights[..weights.len() / 3].to_vec();
    Ok(HashMap::from([
        ("weights/corrupt.amz".to_string(), corrupt),
        ("weights/truncated.amz".to_string(), truncated),
    ]))
}

/// Where screenshots go (kept as test artifacts).
pub fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("artifacts");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Media type of a served file, and whether it is worth compressing (the weights are not:
/// float32 data barely shrinks, and the app's progress bar reads their `Content-Length`).
fn mime(path: &Path) -> (&'static str, bool) {
    match path.extension().and_then(OsStr::to_str) {
        Some("html") => ("text/html; charset=utf-8", true),
        Some("js") => ("text/javascript", true),
        Some("wasm") => ("application/wasm", true),
        Some("css") => ("text/css", true),
        Some("svg") => ("image/svg+xml", true),
        Some("png") => ("image/png", false),
        Some("json") => ("application/json", true),
        Some("md") => ("text/markdown; charset=utf-8", true),
        _ => ("application/octet-stream", false),
    }
}

/// A file as served: its media type, its bytes, their gzip encoding (made once, for the
/// compressible types) and an entity tag from their checksum.
struct Entry {
    content_type: &'static str,
    raw: Arc<Vec<u8>>,
    gzip: Option<Arc<Vec<u8>>>,
    etag: String,
}

fn entry(bytes: Vec<u8>, path: &Path) -> Entry {
    let (content_type, compress) = mime(path);
    let etag = format!("\"{:08x}-{}\"", crc32fast::hash(&bytes), bytes.len());
    let gzip = compress.then(|| {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&bytes).expect("writing to memory");
        Arc::new(enc.finish().expect("writing to memory"))
    });
    Entry {
        content_type,
        raw: Arc::new(bytes),
        gzip,
        etag,
    }
}

/// What a request asks for: the file's path under the root (`index.html` for `/`), or `None`
/// for a path that tries to leave the root.
fn requested(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|part| part == "..") || rel.contains('\\') {
        return None;
    }
    Some(if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_string()
    })
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name, value).expect("valid header")
}

/// The files a [`Server`] serves: `root` on disk (each read and compressed once, again when
/// its modification time or length changes) and the in-memory extras.
struct Files {
    root: PathBuf,
    extra: HashMap<String, Arc<Entry>>,
    #[allow(clippy::type_complexity)]
    cache: Mutex<HashMap<String, (Option<SystemTime>, u64, Arc<Entry>)>>,
}

impl Files {
    fn load(&self, rel: &str) -> Option<Arc<Entry>> {
        if let Some(e) = self.extra.get(rel) {
            return Some(e.clone());
        }
        let path = self.root.join(rel);
        let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
        let stamp = (meta.modified().ok(), meta.len());
        if let Some((t, n, e)) = self.cache.lock().ok()?.get(rel) {
            if (*t, *n) == stamp {
                return Some(e.clone());
            }
        }
        let e = Arc::new(entry(std::fs::read(&path).ok()?, &path));
        self.cache
            .lock()
            .ok()?
            .insert(rel.to_string(), (stamp.0, stamp.1, e.clone()));
        Some(e)
    }
}

/// A static file server on 127.0.0.1, as a web host serves the app: gzip `Content-Encoding`
/// for the text and WebAssembly when the browser accepts it (so the download is the compressed
/// size), and an `ETag` with `Cache-Control: no-cache`, so the browser keeps what it fetched and
/// a reload only revalidates (`304 Not Modified`). Serves `root` plus extra in-memory files
/// (path → bytes). A file changed on disk is served anew (its tag changes).
pub struct Server {
    /// Base URL, ending in `/`.
    pub url: String,
}

impl Server {
    /// Serves `root` on an ephemeral port in background threads until the process ends.
    pub fn start(root: PathBuf, extra: HashMap<String, Vec<u8>>) -> anyhow::Result<Self> {
        Self::start_on(root, extra, 0)
    }

    /// Serves `root` on `port` (0: any free port) in background threads until the process ends.
    pub fn start_on(
        root: PathBuf,
        extra: HashMap<String, Vec<u8>>,
        port: u16,
    ) -> anyhow::Result<Self> {
        let server = tiny_http::Server::http(("127.0.0.1", port))
            .map_err(|e| anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let port = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow!("server has no IP address"))?
            .port();
        let server = Arc::new(server);
        let extra: HashMap<String, Arc<Entry>> = extra
            .into_iter()
            .map(|(k, v)| {
                let e = Arc::new(entry(v, Path::new(&k)));
                (k, e)
            })
            .collect();
        let files = Arc::new(Files {
            root,
            extra,
            cache: Mutex::new(HashMap::new()),
        });
        // Compress everything once before the first request, so that no page load waits for it.
        let mut dirs = vec![PathBuf::new()];
        while let Some(dir) = dirs.pop() {
            let path = files.root.join(&dir);
            let items =
                std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))?;
            for item in items.flatten() {
                let rel = dir.join(item.file_name());
                if item.file_type()?.is_dir() {
                    dirs.push(rel);
                } else if let Some(rel) = rel.to_str() {
                    files.load(rel);
                }
            }
        }
        for _ in 0..4 {
            let (server, files) = (server.clone(), files.clone());
            thread::spawn(move || {
                for req in server.incoming_requests() {
                    let Some(e) = requested(req.url()).and_then(|rel| files.load(&rel)) else {
                        let _ = req.respond(
                            tiny_http::Response::from_data(b"not found".to_vec())
                                .with_status_code(404),
                        );
                        continue;
                    };
                    let wants = |name: &'static str, pred: &dyn Fn(&str) -> bool| {
                        req.headers()
                            .iter()
                            .any(|h| h.field.equiv(name) && pred(h.value.as_str()))
                    };
                    let fresh = wants("If-None-Match", &|v| {
                        v.split(',').any(|t| t.trim() == e.etag || t.trim() == "*")
                    });
                    let gzip = e.gzip.as_ref().filter(|_| {
                        wants("Accept-Encoding", &|v| {
                            v.split(',')
                                .any(|c| c.split(';').next().unwrap_or("").trim() == "gzip")
                        })
                    });
                    let headers = [
                        header("Content-Type", e.content_type),
                        header("ETag", &e.etag),
                        header("Cache-Control", "no-cache"),
                        header("Vary", "Accept-Encoding"),
                    ];
                    let mut response = if fresh {
                        tiny_http::Response::from_data(Vec::new()).with_status_code(304)
                    } else {
                        let body = gzip.unwrap_or(&e.raw);
                        // With a `Content-Length`, not chunked: the app's progress bar reads it.
                        tiny_http::Response::from_data(body.as_slice().to_vec())
                            .with_chunked_threshold(usize::MAX)
                    };
                    for h in headers {
                        response.add_header(h);
                    }
                    if gzip.is_some() && !fresh {
                        response.add_header(header("Content-Encoding", "gzip"));
                    }
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

/// What drags on the page: a mouse, a pen (mouse events of pointer type pen) or a finger
/// (Chrome DevTools Protocol touch events, which the page sees as touch pointer events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pointer {
    /// The left mouse button.
    Mouse,
    /// A pen in contact.
    Pen,
    /// One finger.
    Touch,
}

/// A drag with the left mouse button from `from` to `to` (page pixels) in `moves` moves.
pub fn drag(tab: &Tab, from: (f64, f64), to: (f64, f64), moves: usize) -> anyhow::Result<()> {
    drag_with(tab, Pointer::Mouse, from, to, moves)
}

/// A drag by `pointer` from `from` to `to` (page pixels) in `moves` moves.
pub fn drag_with(
    tab: &Tab,
    pointer: Pointer,
    from: (f64, f64),
    to: (f64, f64),
    moves: usize,
) -> anyhow::Result<()> {
    use headless_chrome::protocol::cdp::Input::{
        DispatchMouseEventPointer_TypeOption as P, DispatchMouseEventTypeOption as T,
        DispatchTouchEvent, DispatchTouchEventTypeOption as TT, MouseButton, TouchPoint,
    };
    let at = |i: usize| {
        let f = i as f64 / moves.max(1) as f64;
        (from.0 + f * (to.0 - from.0), from.1 + f * (to.1 - from.1))
    };
    if pointer == Pointer::Touch {
        let touch = |kind: TT, points: Vec<(f64, f64)>| -> anyhow::Result<()> {
            let touch_points = points
                .into_iter()
                .map(|(x, y)| {
                    serde_json::from_value::<TouchPoint>(serde_json::json!({ "x": x, "y": y }))
                })
                .collect::<Result<Vec<_>, _>>()?;
            tab.call_method(DispatchTouchEvent {
                Type: kind,
                touch_points,
                modifiers: None,
                timestamp: None,
            })?;
            Ok(())
        };
        touch(TT::TouchStart, vec![from])?;
        for i in 1..=moves {
            touch(TT::TouchMove, vec![at(i)])?;
            thread::sleep(Duration::from_millis(20));
        }
        return touch(TT::TouchEnd, Vec::new());
    }
    let event = |t: T, at: (f64, f64), buttons: u32| {
        let mut e = mouse_event(t, at, MouseButton::Left, buttons);
        if pointer == Pointer::Pen {
            e.force = Some(0.5);
            e.pointer_Type = Some(P::Pen);
        }
        e
    };
    tab.call_method(event(T::MousePressed, from, 1))?;
    for i in 1..=moves {
        tab.call_method(event(T::MouseMoved, at(i), 1))?;
        thread::sleep(Duration::from_millis(20));
    }
    tab.call_method(event(T::MouseReleased, to, 0))?;
    Ok(())
}

/// A right click (press and release of the right mouse button) at `at` (page pixels).
pub fn right_click(tab: &Tab, at: (f64, f64)) -> anyhow::Result<()> {
    use headless_chrome::protocol::cdp::Input::{DispatchMouseEventTypeOption as T, MouseButton};
    tab.call_method(mouse_event(T::MousePressed, at, MouseButton::Right, 2))?;
    tab.call_method(mouse_event(T::MouseReleased, at, MouseButton::Right, 0))?;
    Ok(())
}

/// A CDP mouse event of `button` at `at` (page pixels) with `buttons` held.
fn mouse_event(
    t: headless_chrome::protocol::cdp::Input::DispatchMouseEventTypeOption,
    (x, y): (f64, f64),
    button: headless_chrome::protocol::cdp::Input::MouseButton,
    buttons: u32,
) -> headless_chrome::protocol::cdp::Input::DispatchMouseEvent {
    headless_chrome::protocol::cdp::Input::DispatchMouseEvent {
        Type: t,
        x,
        y,
        modifiers: None,
        timestamp: None,
        button: Some(button),
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
    }
}
