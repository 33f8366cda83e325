//! Seeded monkey tests: hundreds of random actions on each demo in headless Chromium (clicks,
//! drags and right clicks on the plot by mouse, pen and finger, every button, select, checkbox
//! and number field, keys, timeline moves, imports of malformed files, edited addresses), from
//! an empty and from a full set of points. After every action the app must not have stopped
//! (no panic panel), must show something, and any message must be plain words. A failing run
//! prints its seed; `MONKEY_SEED=<seed>` replays it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use amortize_e2e::{
    browser, dist_dir, drag_with, eval, right_click, screenshot, testid_text, wait_for_text,
    Pointer, Server,
};
use headless_chrome::browser::tab::point::Point;
use headless_chrome::Tab;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One Chromium at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

const LOAD: Duration = Duration::from_secs(180);

/// A demo as the monkey sees it: its address and its plot's data range.
struct Demo {
    query: &'static str,
    /// Data x range and y range of the plot.
    x: (f64, f64),
    y: (f64, f64),
    max_points: usize,
}

const REGRESSION: Demo = Demo {
    query: "demo=regression",
    x: (-1.0, 1.0),
    y: (-3.5, 3.5),
    max_points: 256,
};
const GMM: Demo = Demo {
    query: "demo=gmm&samples=64",
    x: (-12.0, 12.0),
    y: (-12.0, 12.0),
    max_points: 256,
};
const TRAIN: Demo = Demo {
    query: "demo=train",
    x: (-1.0, 1.0),
    y: (-3.5, 3.5),
    max_points: 256,
};
const ALPHABET: Demo = Demo {
    query: "demo=alphabet&samples=64",
    x: (-2.0, 2.0),
    y: (-2.0, 2.0),
    max_points: 256,
};

/// Fragments that only a panic, a trap or a debug dump would put in a message.
const NOT_PLAIN: [&str; 6] = [
    "panicked",
    "unreachable",
    "RuntimeError",
    "JsValue(",
    "WgpuDevice {",
    "called `Option::unwrap()`",
];

/// What the page shows, as JSON `[fatal panel text, messages, visible text length]`.
const LOOK: &str = "JSON.stringify([(() => { const f = document.getElementById('fatal'); return f && !f.hidden ? f.textContent : ''; })(), [...document.querySelectorAll('[data-testid=\"error\"],[data-testid=\"warning\"],[data-testid=\"note\"]')].map(e => e.textContent).join(' | '), document.readyState === 'complete' && document.body ? document.body.innerText.trim().length : 0])";

struct Monkey<'a> {
    tab: &'a Tab,
    base: String,
    demo: &'a Demo,
    rng: StdRng,
    seed: u64,
    /// The last actions, for the failure message.
    log: Vec<String>,
    /// What the page showed right after the last action, when that action could tell (one
    /// DevTools round trip costs ~100 ms here, so an action done in the page's JavaScript
    /// looks at the page in the same call).
    seen: Option<Look>,
}

impl Monkey<'_> {
    fn fail(&self, what: &str) -> ! {
        let last: Vec<&String> = self.log.iter().rev().take(12).rev().collect();
        panic!(
            "monkey on ?{} failed after {} actions: {what}\nlast actions: {last:#?}\nreplay with MONKEY_SEED={}",
            self.demo.query,
            self.log.len(),
            self.seed
        );
    }

    /// Goes to `query` and waits until the page is ready or says why it is not.
    fn open(&mut self, query: &str) {
        self.log.push(format!("open ?{query}"));
        let url = format!("{}?{query}", self.base);
        if let Err(e) = self.tab.navigate_to(&url) {
            self.fail(&format!("navigate to {url}: {e}"));
        }
        self.wait_settled();
    }

    /// The plot's box in page pixels: (left, top, width, height); None while there is no plot.
    fn plot_box(&self) -> Option<(f64, f64, f64, f64)> {
        let v = eval(
            self.tab,
            "(() => { const p = document.querySelector('[data-testid=\"plot\"]'); if (!p) return ''; const r = p.getBoundingClientRect(); return [r.left, r.top, r.width, r.height].join(','); })()",
        )
        .ok()?;
        let n: Vec<f64> = v
            .as_str()?
            .split(',')
            .filter_map(|x| x.parse().ok())
            .collect();
        (n.len() == 4 && n[2] > 0.0).then(|| (n[0], n[1], n[2], n[3]))
    }

    /// A random spot on the plot, a little outside it now and then.
    fn spot(&mut self) -> Option<(f64, f64)> {
        let (l, t, w, h) = self.plot_box()?;
        let (u, v) = (
            self.rng.random_range(-0.05..1.05),
            self.rng.random_range(-0.05..1.05),
        );
        Some((l + u * w, t + v * h))
    }

    /// A random point set of `n` points in the demo's data range, as the address writes it.
    fn points(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| {
                let x = self.rng.random_range(self.demo.x.0..self.demo.x.1);
                let y = self.rng.random_range(self.demo.y.0..self.demo.y.1);
                format!("{x:.2},{y:.2}")
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    /// An address a visitor might type: the demo's, with good, bad and unknown parameters.
    fn edited_query(&mut self) -> String {
        let mut q = vec![self.demo.query.to_string(), "backend=cpu".to_string()];
        let pool: [&[&str]; 11] = [
            &["k=1", "k=3", "k=12", "k=0", "k=1000", "k=x"],
            &["batch=1", "batch=4", "batch=300", "batch=-2"],
            &["seed=7", "seed=abc", "seed=18446744073709551615"],
            &["step=0", "step=2", "step=99", "step=1000"],
            &[
                "regime=implicit",
                "regime=explicit",
                "regime=nope",
                "compare=1",
                "compare=yes",
            ],
            &["samples=16", "samples=64", "samples=99999"],
            &["bayes=0", "field=0.5", "field=7", "optimal=1", "embed=1"],
            &["pts=", "pts=nan,1", "pts=1,2;3", "pts=1e9,1e9", "pts=%ZZ"],
            &[
                "weights=weights/corrupt.amz",
                "weights=weights/truncated.amz",
                "weights=../x",
            ],
            &["zoom=2", "demo=nope", "backend=quantum", "&&", "=="],
            &[
                "preset=small",
                "preset=huge",
                "tasks=1",
                "tasks=0",
                "lr=0.01",
                "lr=5",
            ],
        ];
        for options in pool {
            if self.rng.random_bool(0.3) {
                q.push(options[self.rng.random_range(0..options.len())].to_string());
            }
        }
        if self.rng.random_bool(0.4) {
            let n = self.rng.random_range(1..=40);
            let pts = self.points(n);
            q.push(format!("pts={pts}"));
        }
        q.join("&")
    }

    /// Runs `action` on a random enabled control matching `selector` (in the page's
    /// JavaScript) and looks at the page in the same call.
    fn js_on_random(&mut self, selector: &str, action: &str) -> Option<String> {
        let pick = self.rng.random_range(0.0..1.0);
        self.js(&format!(
            "const all = [...document.querySelectorAll('{selector}')].filter(e => !e.disabled && e.offsetParent !== null); if (!all.length) return ''; const e = all[Math.floor({pick} * all.length)]; {action}; return e.dataset.testid || e.outerHTML.slice(0, 60);"
        ))
    }

    /// Runs `body` (a function body returning a string) in the page and looks at the page in
    /// the same call; returns the body's string, if not empty.
    fn js(&mut self, body: &str) -> Option<String> {
        let v = eval(
            self.tab,
            &format!("(() => {{ const did = (() => {{ {body} }})(); return JSON.stringify([did || '', {LOOK}]); }})()"),
        )
        .ok()?;
        let (did, look): (String, String) = serde_json::from_str(v.as_str()?).ok()?;
        self.seen = Look::parse(&look);
        (!did.is_empty()).then_some(did)
    }

    /// A gesture on the plot as the page's own pointer events (one round trip): a press at
    /// (u0, v0), `moves` moves to (u1, v1), a release; `button` 0 (left) or 2 (right), from a
    /// pointer of type `kind`. Positions are fractions of the plot's box.
    fn synthetic_gesture(
        &mut self,
        kind: &str,
        button: u8,
        from: (f64, f64),
        to: (f64, f64),
        moves: usize,
    ) -> String {
        let buttons = if button == 2 { 2 } else { 1 };
        let body = format!(
            "const p = document.querySelector('[data-testid=\"plot\"]'); if (!p) return 'no plot'; const r = p.getBoundingClientRect(); \
             const ev = (type, u, v, buttons) => p.dispatchEvent(new PointerEvent(type, {{bubbles: true, cancelable: true, composed: true, pointerId: 9, isPrimary: true, pointerType: '{kind}', button: type === 'pointermove' ? -1 : {button}, buttons, clientX: r.left + u * r.width, clientY: r.top + v * r.height}})); \
             ev('pointerdown', {u0}, {v0}, {buttons}); \
             for (let i = 1; i <= {moves}; i++) {{ const f = i / {moves}; ev('pointermove', {u0} + f * ({u1} - {u0}), {v0} + f * ({v1} - {v0}), {buttons}); }} \
             ev('pointerup', {u1}, {v1}, 0); return 'ok';",
            u0 = from.0, v0 = from.1, u1 = to.0, v1 = to.1,
        );
        let did = self.js(&body).unwrap_or_default();
        format!("{kind} gesture (page events, button {button}) {from:.2?} → {to:.2?} in {moves} moves: {did}")
    }

    /// A random spot as fractions of the plot's box, a little outside it now and then.
    fn fraction(&mut self) -> (f64, f64) {
        (
            self.rng.random_range(-0.05..1.05),
            self.rng.random_range(-0.05..1.05),
        )
    }

    /// One random action; returns what it did.
    fn act(&mut self) -> String {
        let roll = self.rng.random_range(0..100);
        let tab = self.tab;
        match roll {
            // Plot gestures: one in three through DevTools input (a real mouse, pen or finger
            // as Chromium delivers it), the others as the page's own pointer events.
            0..=36 if self.rng.random_bool(0.67) => {
                let kinds = ["mouse", "pen", "touch"];
                let kind = kinds[self.rng.random_range(0..3)];
                let button = if roll >= 32 && kind == "mouse" { 2 } else { 0 };
                let from = self.fraction();
                let (to, moves) = if roll < 20 {
                    (from, 0)
                } else {
                    (self.fraction(), self.rng.random_range(1..12))
                };
                self.synthetic_gesture(kind, button, from, to, moves.max(1))
            }
            0..=19 => match self.spot() {
                Some((x, y)) => {
                    let _ = tab.click_point(Point { x, y });
                    format!("click at ({x:.0}, {y:.0})")
                }
                None => "click (no plot)".into(),
            },
            20..=31 => {
                let pointer =
                    [Pointer::Mouse, Pointer::Pen, Pointer::Touch][self.rng.random_range(0..3)];
                match (self.spot(), self.spot()) {
                    (Some(a), Some(b)) => {
                        let moves = self.rng.random_range(1..6);
                        let _ = drag_with(tab, pointer, a, b, moves);
                        format!("{pointer:?} drag {a:.0?} → {b:.0?}")
                    }
                    _ => "drag (no plot)".into(),
                }
            }
            32..=36 => match self.spot() {
                Some(at) => {
                    let _ = right_click(tab, at);
                    format!("right click at {at:.0?}")
                }
                None => "right click (no plot)".into(),
            },
            37..=56 => {
                let did = self.js_on_random("button", "e.click()");
                format!("button {did:?}")
            }
            57..=62 => {
                let pick = self.rng.random_range(0.0..1.0);
                let did = self.js_on_random(
                    "select",
                    &format!("e.selectedIndex = Math.floor({pick} * e.options.length); e.dispatchEvent(new Event('change', {{bubbles: true}}))"),
                );
                format!("select {did:?}")
            }
            63..=67 => {
                let did = self.js_on_random("input[type=checkbox]", "e.click()");
                format!("checkbox {did:?}")
            }
            68..=75 => {
                let pick = self.rng.random_range(0.0..1.0);
                let did = self.js_on_random(
                    "input[type=range]",
                    &format!("e.value = String(Math.round({pick} * Number(e.max))); e.dispatchEvent(new Event('input', {{bubbles: true}})); e.dispatchEvent(new Event('change', {{bubbles: true}}))"),
                );
                format!("timeline {did:?} to {pick:.2}")
            }
            76..=79 => {
                let values = [
                    "0",
                    "1",
                    "3",
                    "-4",
                    "1e9",
                    "abc",
                    "",
                    "2.5",
                    "99999999999999999999",
                ];
                let value = values[self.rng.random_range(0..values.len())];
                let did = self.js_on_random(
                    "input[type=number]",
                    &format!("e.value = '{value}'; e.dispatchEvent(new Event('change', {{bubbles: true}}))"),
                );
                // A good value changes the view in place (no reload); the view settles.
                std::thread::sleep(Duration::from_millis(300));
                self.wait_settled();
                format!("number {did:?} = {value:?}")
            }
            80..=89 => {
                let keys = [
                    "Space",
                    "ArrowRight",
                    "ArrowLeft",
                    "Enter",
                    "Escape",
                    "a",
                    "Delete",
                ];
                let key = keys[self.rng.random_range(0..keys.len())];
                let key = if key == "Space" { " " } else { key };
                let _ = tab.press_key(key);
                format!("key {key:?}")
            }
            90..=94 => {
                let files = [
                    ("bad.json", "{\"x\": 1,"),
                    ("bad.json", "[{\"x\": \"NaN\", \"y\": 2}]"),
                    ("bad.csv", "x,y\n1,2\n3\n"),
                    ("bad.csv", "x,y\nnan,inf\n"),
                    ("far.csv", "x,y\n1e30,1e30\n"),
                    ("empty.json", ""),
                    ("binary.csv", "\u{0}\u{1}\u{2}\u{fffd}"),
                ];
                let (name, text) = files[self.rng.random_range(0..files.len())];
                let many = self.rng.random_bool(0.15);
                let text = if many {
                    // More points than any demo takes.
                    let rows: Vec<String> = (0..self.demo.max_points + 5)
                        .map(|i| format!("{:.2},0", (i % 10) as f64 / 10.0))
                        .collect();
                    format!("x,y\n{}", rows.join("\n"))
                } else {
                    text.to_string()
                };
                let did = self.js_on_random(
                    "input[type=file]",
                    &format!(
                        "const dt = new DataTransfer(); dt.items.add(new File([{}], '{name}')); e.files = dt.files; e.dispatchEvent(new Event('change', {{bubbles: true}}))",
                        serde_json::to_string(&text).unwrap()
                    ),
                );
                format!("import {name} ({} bytes) into {did:?}", text.len())
            }
            _ => {
                let query = self.edited_query();
                self.open(&query);
                format!("address ?{query}")
            }
        }
    }

    /// Waits (a little) for a reload the last action may have started.
    fn wait_settled(&mut self) {
        let started = Instant::now();
        while started.elapsed() < LOAD {
            let settled = eval(
                self.tab,
                "document.readyState === 'complete' && !!document.querySelector('[data-testid=\"ready\"],[data-testid=\"error\"],#fatal:not([hidden])')",
            )
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
            if settled {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.fail("the page neither became ready nor said why");
    }

    /// The app still runs, shows something and speaks plainly. A page that is (re)loading is
    /// given time to show itself.
    fn check(&mut self) {
        if let Some(Look::Fine) = self.seen.take() {
            return;
        }
        let started = Instant::now();
        loop {
            match self.look() {
                Some(Look::Fatal(text)) => self.fail(&format!("the app stopped: {text}")),
                Some(Look::NotPlain(bad, msgs)) => self.fail(&format!(
                    "a message that is not plain words ({bad}): {msgs}"
                )),
                Some(Look::Fine) => return,
                Some(Look::Blank) | None if started.elapsed() > LOAD => self.fail("blank page"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// What the page shows now; None while a navigation keeps it from answering.
    fn look(&self) -> Option<Look> {
        let v = eval(self.tab, LOOK).ok()?;
        Look::parse(v.as_str()?)
    }
}

enum Look {
    Fine,
    Blank,
    Fatal(String),
    NotPlain(&'static str, String),
}

impl Look {
    /// Reads the JSON that [`LOOK`] makes.
    fn parse(json: &str) -> Option<Self> {
        let (fatal, msgs, shown): (String, String, usize) = serde_json::from_str(json).ok()?;
        Some(if !fatal.is_empty() {
            Look::Fatal(fatal)
        } else if let Some(bad) = NOT_PLAIN.iter().find(|b| msgs.contains(**b)) {
            Look::NotPlain(bad, msgs)
        } else if shown == 0 {
            Look::Blank
        } else {
            Look::Fine
        })
    }
}

/// Runs `actions` random actions on `demo` (half from an empty page, half from a full set of
/// points), then checks that the app still refines a fresh set of points.
fn monkey(demo: &Demo, backend: &str, actions: usize, default_seed: u64, shot: &str) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = std::env::var("MONKEY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    let server = Server::start(
        dist_dir().expect("the web app is built"),
        amortize_e2e::damaged_weights().expect("damaged weights"),
    )
    .expect("server starts");
    let browser = browser().expect("Chromium starts");
    let tab = browser.new_tab().expect("tab");
    tab.set_default_timeout(LOAD);
    let mut m = Monkey {
        tab: &tab,
        base: server.url.clone(),
        demo,
        rng: StdRng::seed_from_u64(seed),
        seed,
        log: Vec::new(),
        seen: None,
    };
    let home = format!("{}&backend={backend}", demo.query);
    m.open(&home);
    m.check();
    // Time spent per kind of action, printed with the test's output.
    let mut spent = std::collections::BTreeMap::<String, (usize, Duration)>::new();
    for i in 0..actions {
        if i == actions / 2 {
            let pts = m.points(demo.max_points);
            m.open(&format!("{home}&pts={pts}"));
            m.check();
        }
        let started = Instant::now();
        let did = m.act();
        let kind = did
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        m.log.push(did);
        let acted = started.elapsed();
        m.check();
        let e = spent.entry(kind).or_default();
        e.0 += 1;
        e.1 += acted;
        let c = spent.entry("(checks)".to_string()).or_default();
        c.0 += 1;
        c.1 += started.elapsed() - acted;
    }
    println!("seed {seed}: {spent:?}");
    // Let running work finish, then look at what the visitor would see.
    std::thread::sleep(Duration::from_secs(2));
    m.check();
    screenshot(&tab, shot).expect("screenshot");
    // The app still works: a fresh page refines a few points by one step.
    let pts = m.points(12);
    m.open(&format!("{home}&pts={pts}"));
    if testid_text(&tab, "ready").ok().flatten().is_none() {
        m.fail("a fresh page with 12 points is not ready");
    }
    // (The Train tab: a fresh page trains.)
    let (button, readout, want) = if demo.query.starts_with("demo=train") {
        ("train-toggle", "meta-step", "3")
    } else {
        ("step-button", "step", "1")
    };
    if let Ok(b) = tab.find_element(&format!("[data-testid=\"{button}\"]")) {
        let _ = b.click();
    }
    if let Err(e) = wait_for_text(&tab, readout, LOAD, |t| {
        t.parse::<usize>().is_ok_and(|n| n >= want.parse().unwrap())
    }) {
        m.fail(&format!(
            "after the monkey, a fresh page does not step: {e}"
        ));
    }
    m.check();
}

#[test]
fn monkey_on_regression_cpu() {
    monkey(&REGRESSION, "cpu", 300, 1, "monkey-regression-cpu");
}

#[test]
fn monkey_on_mixtures_cpu() {
    monkey(&GMM, "cpu", 300, 2, "monkey-gmm-cpu");
}

#[test]
fn monkey_on_letters_cpu() {
    monkey(&ALPHABET, "cpu", 300, 3, "monkey-alphabet-cpu");
}

/// The Train tab: training started, paused, reset and reconfigured in any order while the
/// plot and the downloads are used.
#[test]
fn monkey_on_training_cpu() {
    monkey(&TRAIN, "cpu", 150, 5, "monkey-train-cpu");
}

/// A shorter run on WebGPU (software in headless Chromium).
#[test]
fn monkey_on_regression_webgpu() {
    monkey(&REGRESSION, "webgpu", 60, 4, "monkey-regression-webgpu");
}
