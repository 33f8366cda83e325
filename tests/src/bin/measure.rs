//! Browser benchmark: the built web app (`dist/`) in headless Chromium, on the CPU
//! (WebAssembly) backend and on WebGPU, measuring what issue 5 asks for:
//! - navigation to the first interactive frame (the page's "ready" marker), regression demo;
//! - the per-step latency of regression with 64 points (median of the 10 steps), alone and
//!   with every shipped regime side by side;
//! - a full 10-step GMM generation with 256 points and 512 samples (the timeline jumps to
//!   step 10, which generates it from noise).
//!
//! Usage: `cargo run --release -p amortize-e2e --bin measure [cpu] [webgpu]` (both by default)
//! after `trunk build`. Prints a Markdown table. Software WebGPU (SwiftShader, a machine without
//! a GPU) is slow: its GMM row takes minutes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use amortize_e2e::{browser, dist_dir, eval, eval_numbers, testid_text, wait_for_text, Server};

const LOAD: Duration = Duration::from_secs(600);

fn regression_points() -> String {
    (0..64)
        .map(|i| {
            let x = -1.0 + 2.0 * i as f64 / 63.0;
            format!("{x:.3},{:.3}", (3.0 * x).sin())
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn mixture_points() -> String {
    let centres = [(-5.0, 5.0), (5.0, 4.0), (-4.0, -5.0), (6.0, -6.0)];
    (0..256)
        .map(|i| {
            let (cx, cy) = centres[i % 4];
            let a = i as f64 * 2.399;
            let r = 0.3 * ((i / 4) as f64 / 64.0).sqrt() * 2.0;
            format!("{:.3},{:.3}", cx + r * a.cos(), cy + r * a.sin())
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn latency_ms(tab: &headless_chrome::Tab) -> anyhow::Result<f64> {
    let text = testid_text(tab, "latency")?.unwrap_or_default();
    text.trim_end_matches(" ms")
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("latency readout {text:?}"))
}

/// Ten regression steps with the button; the median of the latency readouts.
fn median_step(tab: &headless_chrome::Tab) -> anyhow::Result<f64> {
    let mut steps = Vec::new();
    for step in 1..=10 {
        tab.find_element("[data-testid=\"step-button\"]")?.click()?;
        let want = step.to_string();
        wait_for_text(tab, "step", LOAD, |t| t == want)?;
        steps.push(latency_ms(tab)?);
    }
    steps.sort_by(f64::total_cmp);
    Ok((steps[4] + steps[5]) / 2.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backends: Vec<&str> = if args.is_empty() {
        vec!["cpu", "webgpu"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    if let Some(bad) = backends.iter().find(|b| !matches!(**b, "cpu" | "webgpu")) {
        anyhow::bail!("unknown backend {bad:?}: use cpu and/or webgpu");
    }
    let server = Server::start(dist_dir()?, HashMap::new())?;
    let browser = browser()?;
    println!("| backend | navigation → interactive | regression step (64 points, median of 10) | side by side: both regimes' step (same points) | GMM 10-step generation (256 points, 512 samples) |");
    println!("|---|---|---|---|---|");
    let mut first_visit = None;
    for backend in backends {
        let tab = browser.new_tab()?;
        tab.set_default_timeout(LOAD);
        // Navigation to the first interactive frame.
        let url = format!(
            "{}?demo=regression&backend={backend}&pts={}",
            server.url,
            regression_points()
        );
        let started = Instant::now();
        tab.navigate_to(&url)?;
        wait_for_text(&tab, "ready", LOAD, |_| true)?;
        let nav = started.elapsed().as_secs_f64() * 1000.0;
        if first_visit.is_none() {
            // The browser's own account of the first (uncached) visit: bytes over the wire
            // (gzip-encoded where the server compressed) and after decoding.
            first_visit = Some(eval_numbers(
                &tab,
                "(() => { const e = [...performance.getEntriesByType('navigation'), \
                 ...performance.getEntriesByType('resource')]; \
                 return [e.reduce((s, x) => s + x.transferSize, 0), \
                 e.reduce((s, x) => s + x.decodedBodySize, 0), e.length].join(','); })()",
            )?);
        }
        let median = median_step(&tab)?;
        // The same points with every shipped regime side by side (one step runs all models).
        tab.navigate_to(&format!("{url}&compare=1"))?;
        wait_for_text(&tab, "ready", LOAD, |_| true)?;
        let compare = median_step(&tab)?;
        // GMM: jump to step 10 with the timeline.
        let url = format!(
            "{}?demo=gmm&backend={backend}&pts={}",
            server.url,
            mixture_points()
        );
        tab.navigate_to(&url)?;
        wait_for_text(&tab, "ready", LOAD, |_| true)?;
        let points = testid_text(&tab, "points")?.unwrap_or_default();
        anyhow::ensure!(points == "256", "the mixture page has {points} points");
        eval(
            &tab,
            "(() => { const t = document.querySelector('[data-testid=\"timeline\"]'); \
             t.value = t.max; t.dispatchEvent(new Event('change', { bubbles: true })); return 'ok'; })()",
        )?;
        wait_for_text(&tab, "step", LOAD, |t| t == "10")?;
        let gmm = latency_ms(&tab)?;
        let name = testid_text(&tab, "backend")?.unwrap_or_default();
        println!("| {name} | {nav:.0} ms | {median:.1} ms | {compare:.1} ms | {gmm:.0} ms |");
    }
    if let Some(v) = first_visit {
        println!();
        println!(
            "First visit to the regression demo (cold cache, {} requests): {:.0} bytes transferred, {:.0} bytes decoded.",
            v[2], v[0], v[1]
        );
    }
    Ok(())
}
