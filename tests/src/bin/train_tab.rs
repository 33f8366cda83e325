//! Measures the Train tab in headless Chromium: meta-steps/s and the error on fresh tasks after
//! 1, 5 and 10 refinement steps at chosen times, for a preset on a backend.
//!
//! Usage: `train_tab BACKEND PRESET SECONDS...` (e.g. `train_tab cpu tiny 60 180 600`), after
//! `trunk build`; prints one Markdown row per time. Times are wall-clock seconds since Start.
//! PRESET may carry more of the tab's parameters: `tiny&regime=implicit`.

use std::time::{Duration, Instant};

use amortize_e2e::{browser, dist_dir, testid_text, wait_for_text, Server};

const LOAD: Duration = Duration::from_secs(600);

fn text(tab: &headless_chrome::Tab, id: &str) -> String {
    testid_text(tab, id)
        .ok()
        .flatten()
        .unwrap_or_else(|| "—".to_string())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, preset, times @ ..] = args.as_slice() else {
        anyhow::bail!("usage: train_tab BACKEND PRESET SECONDS...");
    };
    let times: Vec<u64> = times.iter().map(|t| t.parse()).collect::<Result<_, _>>()?;
    anyhow::ensure!(!times.is_empty(), "give at least one time in seconds");
    let server = Server::start(dist_dir()?, Default::default())?;
    let browser = browser()?;
    let tab = browser.new_tab()?;
    tab.set_default_timeout(LOAD);
    tab.navigate_to(&format!(
        "{}?demo=train&backend={backend}&preset={preset}",
        server.url
    ))?;
    wait_for_text(&tab, "ready", LOAD, |_| true)?;
    println!(
        "| backend | preset | seconds | meta-steps | meta-steps/s | MSE after 1 / 5 / 10 steps | at start (10 steps) | least squares / Bayes (10 steps) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    tab.find_element("[data-testid=\"train-toggle\"]")?
        .click()?;
    let began = Instant::now();
    for &t in &times {
        while began.elapsed() < Duration::from_secs(t) {
            std::thread::sleep(Duration::from_millis(200));
        }
        let cells: Vec<String> = [1, 5, 10]
            .iter()
            .map(|k| text(&tab, &format!("eval-now-{k}")))
            .collect();
        println!(
            "| {} | {preset} | {t} | {} | {} | {} | {} | {} / {} |",
            text(&tab, "backend"),
            text(&tab, "meta-step"),
            text(&tab, "steps-per-second"),
            cells.join(" / "),
            text(&tab, "eval-start-10"),
            text(&tab, "eval-ls-10"),
            text(&tab, "eval-bayes-10"),
        );
    }
    if let Some(e) = testid_text(&tab, "error")? {
        anyhow::bail!("the page shows an error: {e}");
    }
    Ok(())
}
