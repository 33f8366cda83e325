//! Export and import, shared by the demos (with the refinement controls and a checkbox): PNG and SVG of the plot, the refinement as an
//! animated GIF (steps 0..=k), JSON and CSV of the points, and an import of either. The last export stays on the page as a link (`data-testid=
//! "export-link"`) so it can be downloaded again.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::animation::{self, Frames, Gif};
use crate::io;
use crate::state::{Demo, Settings, MAX_BATCH, MAX_STEP};

/// The export/import bar. `reset` runs after an import replaced the points.
#[component]
pub fn PointsIo(
    points: RwSignal<Vec<(f32, f32)>>,
    demo: Demo,
    error: RwSignal<Option<String>>,
    reset: Callback<()>,
    /// The refinement, for the animation.
    frames: Frames,
) -> impl IntoView {
    let io = Exports {
        points,
        demo,
        error,
        reset,
        last: RwSignal::new(None),
        making: RwSignal::new(None),
    };
    let (last, making, last_step) = (io.last, io.making, frames.last);
    view! {
        <div class="io" role="group" aria-label="Export and import">
            <span class="io-label">"Export"</span>
            <button data-testid="export-png" on:click=move |_| io.png()>"PNG"</button>
            <button data-testid="export-svg" on:click=move |_| io.svg()>"SVG"</button>
            <button data-testid="export-gif" on:click=move |_| io.gif(frames.clone())
                title="The refinement as an animated GIF, one frame per step from 0 to k, for slides"
                disabled=move || making.get().is_some() || last_step.get() == 0>
                {move || match making.get() {
                    Some((i, n)) => format!("GIF {i}/{n}"),
                    None => "GIF".to_string(),
                }}
            </button>
            <button data-testid="export-json" on:click=move |_| io.json()>"JSON"</button>
            <button data-testid="export-csv" on:click=move |_| io.csv()>"CSV"</button>
            <label class="import">
                "Import points (JSON/CSV) "
                <input type="file" accept=".json,.csv,application/json,text/csv"
                    data-testid="import-input" on:change=move |ev| io.import(&ev) />
            </label>
            {move || last.get().map(|(name, url)| view! {
                <a data-testid="export-link" href=url download=name.clone()>{format!("Download {name} again")}</a>
            })}
        </div>
    }
}

/// What the export/import bar reads and writes; all handles are `Copy`.
#[derive(Clone, Copy)]
struct Exports {
    points: RwSignal<Vec<(f32, f32)>>,
    demo: Demo,
    error: RwSignal<Option<String>>,
    /// Runs after an import replaced the points.
    reset: Callback<()>,
    /// The last export: (file name, object URL), offered again as a link.
    last: RwSignal<Option<(String, String)>>,
    /// (frame being drawn, frames in all) while the animation is made.
    making: RwSignal<Option<(usize, usize)>>,
}

impl Exports {
    /// The file names' stem: `amortize-<demo>`.
    fn base(self) -> String {
        format!("amortize-{}", self.demo.key())
    }

    /// Downloads `bytes` as `name`, or says why it could not.
    fn offer(self, name: String, mime: &str, bytes: &[u8]) {
        if let Err(e) = io::offer(self.last, name, mime, bytes) {
            self.error.set(Some(format!("Export failed: {e}")));
        }
    }

    fn json(self) {
        let text = io::points_json(&self.points.get_untracked());
        let name = format!("{}-points.json", self.base());
        self.offer(name, "application/json", text.as_bytes());
    }

    fn csv(self) {
        let text = io::points_csv(&self.points.get_untracked());
        let name = format!("{}-points.csv", self.base());
        self.offer(name, "text/csv", text.as_bytes());
    }

    fn svg(self) {
        match io::plot_svg() {
            Ok(svg) => self.offer(
                format!("{}.svg", self.base()),
                "image/svg+xml",
                svg.as_bytes(),
            ),
            Err(e) => self.error.set(Some(format!("Export failed: {e}"))),
        }
    }

    fn png(self) {
        spawn_local(async move {
            match io::plot_png(1200).await {
                Ok(bytes) => self.offer(format!("{}.png", self.base()), "image/png", &bytes),
                Err(e) => self.error.set(Some(format!("Export failed: {e}"))),
            }
        });
    }

    /// The refinement as an animated GIF, then back to the step the visitor was looking at.
    fn gif(self, frames: Frames) {
        if self.making.get_untracked().is_some() {
            return;
        }
        if self.points.with_untracked(|p| p.is_empty()) {
            self.error.set(Some(
                "Add points first: the animation shows the refinement of your points.".to_string(),
            ));
            return;
        }
        spawn_local(async move {
            let k = frames.last.get_untracked();
            let back_to = (frames.current)();
            self.making.set(Some((0, k + 1)));
            let made = animate(&frames, k, self.making).await;
            (frames.show)(back_to).await;
            self.making.set(None);
            match made {
                Ok(bytes) => {
                    let name = format!("{}-steps-0-{k}.gif", self.base());
                    self.offer(name, "image/gif", &bytes);
                }
                Err(e) => self.error.set(Some(format!("Animation failed: {e}"))),
            }
        });
    }

    /// Replaces the points with those of the file chosen in the import input.
    fn import(self, ev: &web_sys::Event) {
        let Some(file) = crate::browser::chosen_file(ev) else {
            return;
        };
        spawn_local(async move {
            let text = match crate::browser::file_text(&file).await {
                Ok(t) => t,
                Err(e) => {
                    return self
                        .error
                        .set(Some(format!("Could not read the file: {e}")))
                }
            };
            let (max, bounds) = self.demo.limits();
            match io::parse_points(&text, max, bounds) {
                Ok(p) => {
                    self.error.set(None);
                    self.points.set(p);
                    self.reset.run(());
                }
                Err(e) => self.error.set(Some(format!("Import failed: {e}"))),
            }
        });
    }
}

/// Draws steps 0..=k on the page one after another and encodes each as a frame.
async fn animate(
    frames: &Frames,
    k: usize,
    making: RwSignal<Option<(usize, usize)>>,
) -> Result<Vec<u8>, String> {
    let mut gif: Option<Gif> = None;
    for s in 0..=k {
        making.set(Some((s + 1, k + 1)));
        if !(frames.show)(s).await {
            return Err(format!("step {s} could not be shown"));
        }
        // Let the view draw the step before it is read.
        crate::browser::sleep(30).await;
        let caption = format!("step {s} of {k}");
        let (w, h, rgba) = io::plot_rgba(animation::WIDTH, &caption).await?;
        let gif = match &mut gif {
            Some(g) => g,
            None => gif.insert(Gif::new(w, h)?),
        };
        gif.push(rgba, s == k)?;
    }
    gif.ok_or("no frames".to_string())?.finish()
}

/// Steps k and the mini-batch size. A change reloads the view with the new values in its link
/// (the weights come back from the browser's cache); values outside the limits are clamped.
#[component]
pub fn RefineControls(
    settings: Settings,
    points: RwSignal<Vec<(f32, f32)>>,
    /// (k, b) in use; (0, 0) until the model loads.
    refine: RwSignal<(usize, usize)>,
) -> impl IntoView {
    let seed = settings.seed;
    let apply = move |k: Option<usize>, b: Option<usize>, seed: Option<u64>| {
        let mut s = settings.clone();
        if let Some(seed) = seed {
            s.seed = seed;
        }
        if let Some(k) = k {
            s.steps = Some(k.clamp(1, MAX_STEP));
        }
        if let Some(b) = b {
            s.batch = Some(b.clamp(1, MAX_BATCH));
        }
        let query = s.view_query(&points.get_untracked(), 0);
        if let Some(w) = web_sys::window() {
            let _ = w.location().set_search(&query);
        }
    };
    let apply_k = apply.clone();
    let apply_b = apply.clone();
    view! {
        <div class="refine-controls">
            {refine_field("Steps k ", "k-input", MAX_STEP, "Number of refinement steps k", refine, |r| r.0,
                move |v| apply_k(Some(v), None, None))}
            {refine_field("Mini-batch ", "batch-input", MAX_BATCH, "Points per mini-batch", refine, |r| r.1,
                move |v| apply_b(None, Some(v), None))}
            <label>"Seed "
                <input type="number" data-testid="seed-input" min="0"
                    prop:value=seed.to_string()
                    disabled=move || refine.get().0 == 0
                    aria-label="Seed of the mini-batch order (and of the generation noise)"
                    on:change=move |ev| {
                        if let Ok(v) = event_target_value(&ev).trim().parse::<u64>() {
                            apply(None, None, Some(v));
                        }
                    } />
            </label>
        </div>
    }
}

/// A number field of the refinement controls: k (`k-input`) or the mini-batch size
/// (`batch-input`), showing `pick` of `refine` and disabled until the model loads.
fn refine_field(
    label: &'static str,
    testid: &'static str,
    max: usize,
    aria: &'static str,
    refine: RwSignal<(usize, usize)>,
    pick: fn((usize, usize)) -> usize,
    apply: impl Fn(usize) + 'static,
) -> impl IntoView {
    view! {
        <label>{label}
            <input type="number" data-testid=testid min="1" max=max.to_string()
                prop:value=move || pick(refine.get()).to_string()
                disabled=move || refine.get().0 == 0
                aria-label=aria
                on:change=move |ev| {
                    if let Ok(v) = event_target_value(&ev).trim().parse::<usize>() {
                        apply(v);
                    }
                } />
        </label>
    }
}

/// A labelled checkbox (`testid`) that shows and sets `on`.
pub fn checkbox(testid: &'static str, on: RwSignal<bool>, label: &'static str) -> impl IntoView {
    view! {
        <label>
            <input type="checkbox" data-testid=testid
                prop:checked=move || on.get()
                on:change=move |ev| on.set(event_target_checked(&ev)) />
            {label}
        </label>
    }
}
