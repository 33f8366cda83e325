//! The Train tab in headless Chromium: a model meta-trained from scratch in the page learns to
//! learn within a minute, the page answers clicks while it trains, and the model it offers loads in
//! the regression tab and in the `amortize` command (`eval` and `train --init`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use amortize_e2e::{
    artifacts_dir, browser, dist_dir, eval, eval_numbers, screenshot, testid_text, wait_for_text,
    Server,
};
use headless_chrome::browser::tab::point::Point;
use headless_chrome::Tab;

const LOAD: Duration = Duration::from_secs(180);
/// How long the page trains before the error is read.
const TRAIN: Duration = Duration::from_secs(60);

fn number(tab: &Tab, id: &str) -> f64 {
    let t = testid_text(tab, id)
        .unwrap()
        .unwrap_or_else(|| panic!("{id} shown"));
    t.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{id} is a number: {t:?}"))
}

fn click(tab: &Tab, id: &str) {
    tab.find_element(&format!("[data-testid=\"{id}\"]"))
        .unwrap_or_else(|e| panic!("{id}: {e}"))
        .click()
        .unwrap_or_else(|e| panic!("click {id}: {e}"));
}

/// The page's point on the Train tab's plot at fraction (fx, fy) of its box.
fn plot_point(tab: &Tab, fx: f64, fy: f64) -> Point {
    let b = eval_numbers(
        tab,
        "(() => { const p = document.querySelector('[data-testid=\"plot\"]'); p.scrollIntoView({block: 'center'}); const r = p.getBoundingClientRect(); return [r.left, r.top, r.width, r.height].join(','); })()",
    )
    .unwrap();
    Point {
        x: b[0] + fx * b[2],
        y: b[1] + fy * b[3],
    }
}

/// Records, for each pointer press on the plot, the milliseconds from the input event to the
/// page's answer: the points readout changing (the press added a point).
const LATENCY_PROBE: &str = r#"(() => {
  window.__latency = [];
  document.addEventListener('pointerdown', (e) => {
    if (!e.target.closest('[data-testid="plot"]')) return;
    const t = e.timeStamp;
    const target = document.querySelector('[data-testid="points"]');
    const before = target.textContent;
    const obs = new MutationObserver(() => {
      if (target.textContent !== before) { window.__latency.push(performance.now() - t); obs.disconnect(); }
    });
    obs.observe(target, { childList: true, characterData: true, subtree: true });
  }, true);
  return true;
})()"#;

/// The `amortize` binary built beside this test (`cargo test` builds the workspace's binaries).
fn amortize_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("amortize");
    assert!(
        bin.is_file(),
        "{} missing: build the trainer first (cargo test --release builds it)",
        bin.display()
    );
    bin
}

#[test]
fn a_model_meta_trained_in_the_page_learns_and_loads_everywhere() {
    let server = Server::start(
        dist_dir().expect("the web app is built"),
        Default::default(),
    )
    .expect("server starts");
    let browser = browser().expect("Chromium starts");
    let tab = browser.new_tab().expect("tab");
    tab.set_default_timeout(LOAD);
    let url = format!("{}?demo=train&backend=cpu&seed=1", server.url);
    tab.navigate_to(&url).unwrap();
    wait_for_text(&tab, "ready", LOAD, |_| true).expect("the Train tab became ready");
    let start = number(&tab, "eval-start-10");
    assert_eq!(number(&tab, "eval-now-10"), start);
    let (ls, bayes) = (number(&tab, "eval-ls-10"), number(&tab, "eval-bayes-10"));
    assert!(
        bayes <= ls && bayes < start,
        "Bayes {bayes}, LS {ls}, start {start}"
    );
    assert!(eval(&tab, LATENCY_PROBE).unwrap().as_bool().unwrap());

    click(&tab, "train-toggle");
    let began = Instant::now();
    wait_for_text(&tab, "train-toggle", LOAD, |t| t == "Pause").expect("training runs");
    // While it trains, add a point every few seconds and time the page's answer.
    let mut clicks = 0;
    while began.elapsed() < TRAIN {
        std::thread::sleep(Duration::from_secs(6));
        let n = number(&tab, "points") as usize;
        let at = plot_point(&tab, 0.1 + 0.08 * clicks as f64, 0.3 + 0.04 * clicks as f64);
        tab.click_point(at).unwrap();
        clicks += 1;
        wait_for_text(&tab, "points", LOAD, |t| t == (n + 1).to_string()).expect("point added");
    }
    let rate = number(&tab, "steps-per-second");
    let steps = number(&tab, "meta-step");
    screenshot(&tab, "train-cpu-plot").unwrap();
    eval(&tab, "window.scrollTo(0, 0)").unwrap();
    screenshot(&tab, "train-cpu").unwrap();
    click(&tab, "train-toggle");
    wait_for_text(&tab, "train-toggle", LOAD, |t| t == "Resume").expect("paused");
    // The evaluation after the pause is of the final weights.
    wait_for_text(&tab, "eval-table", LOAD, |t| {
        t.contains(&format!("step {}", number(&tab, "meta-step")))
    })
    .expect("evaluated after pausing");
    let now = number(&tab, "eval-now-10");
    let latency = eval_numbers(&tab, "window.__latency.join(',')").unwrap();
    println!(
        "Train tab, CPU: {steps} meta-steps in {:.0} s ({rate} /s shown); 10-step MSE {start} → {now} (least squares {ls}, Bayes {bayes}); click latency {latency:?} ms",
        began.elapsed().as_secs_f64()
    );
    assert!(rate > 0.0, "meta-steps/s {rate}");
    assert!(
        now < start / 3.0,
        "10-step MSE on fresh tasks {start} → {now} after {TRAIN:?}: not below a third"
    );
    assert_eq!(latency.len(), clicks, "every click answered: {latency:?}");
    let worst = latency.iter().cloned().fold(0.0, f64::max);
    assert!(
        worst < 100.0,
        "a click took {worst:.0} ms to answer while training"
    );
    assert!(testid_text(&tab, "error").unwrap().is_none());

    // The model as a file: its bytes, as the download link serves them.
    click(&tab, "model-download");
    let name =
        wait_for_text(&tab, "model-link", LOAD, |t| t.contains(".amz")).expect("model offered");
    let bytes: Vec<u8> = eval_numbers(
        &tab,
        "fetch(document.querySelector('[data-testid=\"model-link\"]').href).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)).join(','))",
    )
    .unwrap()
    .into_iter()
    .map(|b| b as u8)
    .collect();
    let file = artifacts_dir().join("trained-in-page.amz");
    std::fs::write(&file, &bytes).unwrap();
    assert!(name.contains("amortize-trained-parametric-tiny-"), "{name}");

    // The regression tab opens it.
    tab.navigate_to(&format!("{}?demo=regression&backend=cpu", server.url))
        .unwrap();
    wait_for_text(&tab, "ready", LOAD, |_| true).expect("regression tab ready");
    let js_bytes = bytes
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",");
    eval(
        &tab,
        &format!(
            "(() => {{ const e = document.querySelector('[data-testid=\"model-file\"]'); const dt = new DataTransfer(); dt.items.add(new File([new Uint8Array([{js_bytes}])], 'trained-in-page.amz')); e.files = dt.files; e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()"
        ),
    )
    .unwrap();
    wait_for_text(&tab, "title", LOAD, |t| t.contains("trained-in-page.amz"))
        .expect("the regression tab shows the file's model");
    for (i, x) in [-0.8, -0.4, 0.0, 0.4, 0.8].iter().enumerate() {
        let at = plot_point(&tab, (x + 1.0) / 2.0, 0.4);
        tab.click_point(at).unwrap();
        wait_for_text(&tab, "points", LOAD, |t| t == (i + 1).to_string()).expect("point");
    }
    click(&tab, "step-button");
    wait_for_text(&tab, "step", LOAD, |t| t == "1").expect("the file's model steps");
    assert!(testid_text(&tab, "error").unwrap().is_none());
    screenshot(&tab, "train-model-in-regression-tab").unwrap();

    // And the command line: `amortize eval` and `amortize train --init` read it.
    let bin = amortize_bin();
    let out = Command::new(&bin)
        .args([
            "eval",
            "--tasks",
            "100",
            "--seed",
            "3",
            "--device",
            "cpu",
            "--weights",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "amortize eval failed: {}{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A row for step 10 in the report's table (cells padded to their column's width).
    let step_10 = report
        .lines()
        .any(|l| l.trim_start_matches('|').split('|').next().map(str::trim) == Some("10"));
    assert!(step_10 && report.contains("amortizer"), "{report}");
    let run = std::env::temp_dir().join(format!("amortize-train-init-{}", std::process::id()));
    let out = Command::new(&bin)
        .args([
            "train",
            "--steps",
            "3",
            "--eval-every",
            "0",
            "--eval-tasks",
            "8",
            "--device",
            "cpu",
            "--init",
        ])
        .arg(&file)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "amortize train --init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run.join("model.amz").is_file());
    let _ = std::fs::remove_dir_all(&run);
}

/// On WebGPU the same loop trains: meta-steps go by, the loss is a number, and nothing errs. On
/// SwiftShader (WebGPU in software, this machine's) a meta-step takes tens of seconds, so the test
/// trains on one task a step until two steps are done.
#[test]
fn the_train_tab_trains_on_webgpu() {
    let server = Server::start(
        dist_dir().expect("the web app is built"),
        Default::default(),
    )
    .expect("server starts");
    let browser = browser().expect("Chromium starts");
    let tab = browser.new_tab().expect("tab");
    tab.set_default_timeout(LOAD);
    tab.navigate_to(&format!(
        "{}?demo=train&backend=webgpu&seed=2&tasks=1",
        server.url
    ))
    .unwrap();
    wait_for_text(&tab, "ready", LOAD, |_| true).expect("the Train tab became ready");
    let backend = testid_text(&tab, "backend").unwrap().unwrap();
    assert_eq!(backend, "WebGPU");
    click(&tab, "train-toggle");
    wait_for_text(&tab, "meta-step", LOAD, |t| {
        t.parse::<usize>().is_ok_and(|n| n >= 2)
    })
    .expect("two meta-steps on WebGPU");
    let rate = wait_for_text(&tab, "steps-per-second", LOAD, |t| t.parse::<f64>().is_ok())
        .expect("a rate shown");
    click(&tab, "train-toggle");
    wait_for_text(&tab, "train-toggle", LOAD, |t| t == "Resume").expect("paused");
    let loss = number(&tab, "train-loss");
    println!("Train tab, WebGPU: {rate} meta-steps/s, loss {loss}");
    assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
    assert!(rate.parse::<f64>().unwrap() > 0.0);
    assert!(testid_text(&tab, "error").unwrap().is_none());
    screenshot(&tab, "train-webgpu").unwrap();
}
