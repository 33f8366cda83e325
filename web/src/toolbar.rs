//! Export and import, shared by the demos (with the refinement controls and a checkbox): PNG and SVG of the plot, the refinement as an
//! animated GIF (steps 0..=k), JSON and CSV of the points, and an import of either. The last export stays on the page as a link (`data-testid=
//! "export-link"`) so it can be downloaded again.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::animation::{self, Frames, Gif};
use crate::io;
use crate::state::{Control, Demo, Settings, MAX_BATCH, MAX_STEP};

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

/// Steps k, the mini-batch size and the seed. A change sets them in `settings`, in place: the
/// demo refines its points again with them and the address bar follows (no reload, the model
/// stays); values outside the limits are clamped.
#[component]
pub fn RefineControls(
    settings: RwSignal<Settings>,
    /// (k, b) in use; (0, 0) until the model loads.
    refine: RwSignal<(usize, usize)>,
) -> impl IntoView {
    view! {
        <div class="refine-controls">
            {STEPS_FIELD.view(settings, refine)}
            {BATCH_FIELD.view(settings, refine)}
            <label>"Seed "
                <input type="number" data-testid="seed-input" min="0"
                    prop:value=move || settings.with(|s| s.seed).to_string()
                    disabled=move || refine.get().0 == 0
                    aria-label="Seed of the mini-batch order (and of the generation noise)"
                    on:change=move |ev| set_control(&ev, settings, Control::Seed) />
            </label>
        </div>
    }
}

/// A number field of the refinement controls: k or the mini-batch size.
struct RefineField {
    label: &'static str,
    testid: &'static str,
    max: usize,
    aria: &'static str,
    /// Its value in the (k, b) in use.
    pick: fn((usize, usize)) -> usize,
    /// What a new value sets.
    control: fn(usize) -> Control,
}

const STEPS_FIELD: RefineField = RefineField {
    label: "Steps k ",
    testid: "k-input",
    max: MAX_STEP,
    aria: "Number of refinement steps k",
    pick: |r| r.0,
    control: Control::Steps,
};

const BATCH_FIELD: RefineField = RefineField {
    label: "Mini-batch ",
    testid: "batch-input",
    max: MAX_BATCH,
    aria: "Points per mini-batch",
    pick: |r| r.1,
    control: Control::Batch,
};

impl RefineField {
    /// The field, showing its value of `refine` and disabled until the model loads; a change
    /// sets it in `settings`.
    fn view(
        &self,
        settings: RwSignal<Settings>,
        refine: RwSignal<(usize, usize)>,
    ) -> impl IntoView {
        let (pick, control) = (self.pick, self.control);
        view! {
            <label>{self.label}
                <input type="number" data-testid=self.testid min="1" max=self.max.to_string()
                    prop:value=move || pick(refine.get()).to_string()
                    disabled=move || refine.get().0 == 0
                    aria-label=self.aria
                    on:change=move |ev| set_control(&ev, settings, control) />
            </label>
        }
    }
}

/// The number typed in the input `ev` comes from, as `control` of `settings`; the input then
/// shows the value set (clamped into its limits). Anything but a number is ignored.
fn set_control<T: std::str::FromStr>(
    ev: &web_sys::Event,
    settings: RwSignal<Settings>,
    control: fn(T) -> Control,
) {
    use wasm_bindgen::JsCast;
    if let Ok(v) = event_target_value(ev).trim().parse::<T>() {
        let shown = settings.try_update(|s| s.set(control(v)));
        let input = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
        if let (Some(input), Some(shown)) = (input, shown) {
            input.set_value(&shown);
        }
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
