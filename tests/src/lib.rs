//! Harness for the end-to-end tests: the app's static server (crate `amortize-serve`) on trunk's
//! `dist/` and a headless Chromium pointed at it.
//!
//! The web app must be built first (`scripts/test.sh` does: `trunk build`). Chromium is Debian's
//! (`scripts/setup.sh` installs it); `AMORTIZE_CHROMIUM` overrides its path and `AMORTIZE_DIST`
//! the directory served.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

pub use amortize_serve::Server;
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
