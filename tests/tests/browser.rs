//! The built web app in headless Chromium: click points, step the refinement, read the readouts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use amortize_e2e::{
    browser, dist_dir, eval_numbers, screenshot, testid_text, wait_for_text, Server,
};
use headless_chrome::browser::tab::point::Point;

/// One Chromium at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

const LOAD: Duration = Duration::from_secs(180);
const STEP: Duration = Duration::from_secs(60);

fn server() -> Server {
    let dist = dist_dir().expect("the web app is built");
    let weights = std::fs::read(dist.join("weights/regression-parametric.amz"))
        .expect("dist/ holds the shipped weights");
    let mut corrupt = weights.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x10;
    let truncated = weights[..weights.len() / 3].to_vec();
    let extra = HashMap::from([
        ("weights/corrupt.amz".to_string(), corrupt),
        ("weights/truncated.amz".to_string(), truncated),
    ]);
    Server::start(dist, extra).expect("server starts")
}

/// Clicks at data coordinates (x ∈ [-1, 1], y ∈ [-3.5, 3.5]) on the plot.
fn click_data(tab: &headless_chrome::Tab, x: f64, y: f64) {
    let r = eval_numbers(
        tab,
        "(() => { const r = document.querySelector('[data-testid=\"plot\"]').getBoundingClientRect(); return [r.left, r.top, r.width, r.height].join(','); })()",
    )
    .expect("plot rect");
    let px = r[0] + (x + 1.0) / 2.0 * r[2];
    let py = r[1] + (3.5 - y) / 7.0 * r[3];
    tab.click_point(Point { x: px, y: py }).expect("click");
}

fn mse(tab: &headless_chrome::Tab) -> f64 {
    testid_text(tab, "mse")
        .expect("read mse")
        .expect("mse readout present")
        .parse()
        .expect("mse is a number")
}

/// Loads the app with `query`, clicks 8 points, steps 6 times and checks the fit improves.
fn refine_in_browser(query: &str, backend_word: &str, shot: &str) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = server();
    let browser = browser().expect("Chromium starts");
    let tab = browser.new_tab().expect("tab");
    tab.set_default_timeout(LOAD);
    tab.navigate_to(&format!("{}{query}", server.url))
        .expect("navigate");
    wait_for_text(&tab, "ready", LOAD, |_| true).expect("the model loads");
    let backend = testid_text(&tab, "backend").unwrap().unwrap();
    assert!(
        backend.contains(backend_word),
        "backend {backend:?}, wanted {backend_word}"
    );

    // Eight points on a smooth curve.
    let xs: [f64; 8] = [-0.85, -0.6, -0.35, -0.1, 0.15, 0.4, 0.65, 0.9];
    for (i, &x) in xs.iter().enumerate() {
        let y = 1.5 * (2.5 * x).sin() + 0.3;
        click_data(&tab, x, y);
        let want = (i + 1).to_string();
        wait_for_text(&tab, "points", STEP, |t| t == want).expect("point added");
    }
    let mut per_step = Vec::new();
    for step in 1..=6 {
        tab.find_element("[data-testid=\"step-button\"]")
            .expect("step button")
            .click()
            .expect("click step");
        let want = step.to_string();
        wait_for_text(&tab, "step", STEP, |t| t == want).expect("step advances");
        per_step.push(mse(&tab));
    }
    screenshot(&tab, shot).expect("screenshot");
    let (first, last) = (per_step[0], per_step[per_step.len() - 1]);
    assert!(
        last < first,
        "MSE to the points after step 6 ({last}) is not below step 1 ({first}): {per_step:?}"
    );
    assert!(
        testid_text(&tab, "error").unwrap().is_none(),
        "no error shown"
    );
}

#[test]
fn refinement_improves_the_fit_on_webgpu() {
    refine_in_browser("?backend=webgpu", "WebGPU", "regression-webgpu");
}

#[test]
fn refinement_improves_the_fit_on_the_cpu_backend() {
    refine_in_browser("?backend=cpu", "CPU", "regression-cpu");
}

#[test]
fn damaged_weights_and_bad_parameters_show_messages() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = server();
    let browser = browser().expect("Chromium starts");
    let tab = browser.new_tab().expect("tab");
    for (file, word) in [("corrupt", "corrupt"), ("truncated", "truncated")] {
        tab.navigate_to(&format!(
            "{}?backend=cpu&weights=weights/{file}.amz",
            server.url
        ))
        .expect("navigate");
        let msg = wait_for_text(&tab, "error", LOAD, |_| true).expect("an error is shown");
        assert!(msg.contains(word), "{file}: {msg}");
        screenshot(&tab, &format!("weights-{file}")).expect("screenshot");
    }
    // A missing file, an unknown parameter and a hostile path: messages, never a blank page.
    tab.navigate_to(&format!(
        "{}?backend=cpu&weights=weights/missing.amz&color=red",
        server.url
    ))
    .expect("navigate");
    let msg = wait_for_text(&tab, "error", LOAD, |_| true).expect("an error is shown");
    assert!(msg.contains("404"), "{msg}");
    let warn = wait_for_text(&tab, "warning", LOAD, |_| true).expect("a warning is shown");
    assert!(warn.contains("color"), "{warn}");
    tab.navigate_to(&format!(
        "{}?backend=cpu&weights=https%3A%2F%2Fevil.example%2Fx.amz",
        server.url
    ))
    .expect("navigate");
    let warn = wait_for_text(&tab, "warning", LOAD, |_| true).expect("a warning is shown");
    assert!(warn.contains("weights"), "{warn}");
    wait_for_text(&tab, "ready", LOAD, |_| true).expect("falls back to the shipped model");
}
