//! The browser around the app: the clock, timers, the keyboard, downloads with progress, files the
//! visitor chooses and the panel that reports a panic. Every demo uses these; they use nothing of
//! the app.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Milliseconds since the page loaded.
pub fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}

/// Resolves after `ms` milliseconds (a browser timer).
pub async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Space plays or pauses, → steps, ← goes back one step (not while typing in a field).
pub fn keyboard(
    ready: impl Fn() -> bool + 'static,
    play: impl Fn() + 'static,
    step: impl Fn() + 'static,
    back: impl Fn() + 'static,
) {
    let handle = window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
        let key = ev.key();
        // Fields keep their keys; a checkbox keeps Space (it toggles) but not the arrows.
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .map(|e| match e.tag_name().as_str() {
                "TEXTAREA" | "SELECT" => true,
                "INPUT" => !(e.get_attribute("type").as_deref() == Some("checkbox") && key != " "),
                _ => false,
            })
            .unwrap_or(false);
        if typing || ev.ctrl_key() || ev.meta_key() || ev.alt_key() || !ready() {
            return;
        }
        match key.as_str() {
            " " => {
                ev.prevent_default();
                play();
            }
            "ArrowRight" => {
                ev.prevent_default();
                step();
            }
            "ArrowLeft" => {
                ev.prevent_default();
                back();
            }
            _ => {}
        }
    });
    // The demo lives as long as the page.
    std::mem::forget(handle);
}

/// Shows a message in the page even when the app itself has died (used by the panic hook).
pub fn show_fatal(message: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Some(el) = doc.get_element_by_id("fatal") {
        el.set_text_content(Some(&format!("The app stopped with an error: {message}")));
        let _ = el.remove_attribute("hidden");
    }
}

/// The file chosen in the `<input type=file>` that `ev` comes from (None when none is), the
/// input emptied so that choosing the same file again is another change.
pub fn chosen_file(ev: &web_sys::Event) -> Option<web_sys::File> {
    let input = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())?;
    let file = input.files().and_then(|f| f.get(0))?;
    input.set_value("");
    Some(file)
}

/// The bytes of a file the visitor chose.
pub async fn file_bytes(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buf = wasm_bindgen_futures::JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// The text of a file the visitor chose.
pub async fn file_text(file: &web_sys::File) -> Result<String, String> {
    let text = wasm_bindgen_futures::JsFuture::from(file.text())
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(text.as_string().unwrap_or_default())
}

/// Downloads `url` as bytes, reading the body as a stream and calling `progress(bytes so far,
/// total when the server says it)` after each chunk (for the loading screen's progress bar).
/// The browser's HTTP cache serves repeated loads.
pub async fn fetch_bytes(
    url: &str,
    progress: impl Fn(usize, Option<usize>),
) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("could not fetch {url}: {e:?}"))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "fetch gave no response")?;
    if !resp.ok() {
        return Err(format!("could not fetch {url}: HTTP {}", resp.status()));
    }
    let total = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<usize>().ok());
    let reader = resp.body().and_then(|b| {
        b.get_reader()
            .dyn_into::<web_sys::ReadableStreamDefaultReader>()
            .ok()
    });
    let Some(reader) = reader else {
        // No streaming body: read it whole.
        let buf = JsFuture::from(resp.array_buffer().map_err(|e| format!("{e:?}"))?)
            .await
            .map_err(|e| format!("reading {url}: {e:?}"))?;
        let bytes = js_sys::Uint8Array::new(&buf).to_vec();
        progress(bytes.len(), total);
        return Ok(bytes);
    };
    let mut bytes = Vec::with_capacity(total.unwrap_or(0).min(64 << 20));
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("reading {url}: {e:?}"))?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into())
            .map_err(|e| format!("reading {url}: {e:?}"))?;
        bytes.extend(js_sys::Uint8Array::new(&value).to_vec());
        progress(bytes.len(), total);
    }
    Ok(bytes)
}

/// The loading screen's words for a download in progress.
pub fn progress_text(got: usize, total: Option<usize>) -> String {
    match total {
        Some(t) if t > 0 => format!("Fetching the model… {} of {} kB", got / 1024, t / 1024),
        _ => format!("Fetching the model… {} kB", got / 1024),
    }
}
