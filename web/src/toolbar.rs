//! Export and import, shared by the demos: PNG and SVG of the plot, the refinement as an
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
    let last = RwSignal::new(None::<(String, String)>);
    // (frame being drawn, frames in all) while the animation is made.
    let making = RwSignal::new(None::<(usize, usize)>);
    let last_step = frames.last;
    let offer = move |name: String, mime: &str, bytes: &[u8]| match io::blob_url(mime, bytes) {
        Ok(url) => {
            if let Some((_, old)) = last.get_untracked() {
                let _ = web_sys::Url::revoke_object_url(&old);
            }
            let _ = io::download(&name, mime, bytes);
            last.set(Some((name, url)));
        }
        Err(e) => error.set(Some(format!("Export failed: {e}"))),
    };
    let base = format!("amortize-{}", demo.key());
    let on_json = {
        let base = base.clone();
        move |_| {
            let text = io::points_json(&points.get_untracked());
            offer(
                format!("{base}-points.json"),
                "application/json",
                text.as_bytes(),
            );
        }
    };
    let on_csv = {
        let base = base.clone();
        move |_| {
            let text = io::points_csv(&points.get_untracked());
            offer(format!("{base}-points.csv"), "text/csv", text.as_bytes());
        }
    };
    let on_svg = {
        let base = base.clone();
        move |_| match io::plot_svg() {
            Ok(svg) => offer(format!("{base}.svg"), "image/svg+xml", svg.as_bytes()),
            Err(e) => error.set(Some(format!("Export failed: {e}"))),
        }
    };
    let on_png = {
        let base = base.clone();
        move |_| {
            let base = base.clone();
            spawn_local(async move {
                match io::plot_png(1200).await {
                    Ok(bytes) => offer(format!("{base}.png"), "image/png", &bytes),
                    Err(e) => error.set(Some(format!("Export failed: {e}"))),
                }
            });
        }
    };
    let on_gif = {
        let base = base.clone();
        move |_| {
            if making.get_untracked().is_some() {
                return;
            }
            if points.with_untracked(|p| p.is_empty()) {
                error.set(Some(
                    "Add points first: the animation shows the refinement of your points."
                        .to_string(),
                ));
                return;
            }
            let (base, frames) = (base.clone(), frames.clone());
            spawn_local(async move {
                let k = frames.last.get_untracked();
                let back_to = (frames.current)();
                making.set(Some((0, k + 1)));
                let made = animate(&frames, k, making).await;
                // Back to the step the visitor was looking at.
                (frames.show)(back_to).await;
                making.set(None);
                match made {
                    Ok(bytes) => offer(format!("{base}-steps-0-{k}.gif"), "image/gif", &bytes),
                    Err(e) => error.set(Some(format!("Animation failed: {e}"))),
                }
            });
        }
    };
    let on_import = move |ev: web_sys::Event| {
        let Some(file) = crate::browser::chosen_file(&ev) else {
            return;
        };
        spawn_local(async move {
            let text = match crate::browser::file_text(&file).await {
                Ok(t) => t,
                Err(e) => return error.set(Some(format!("Could not read the file: {e}"))),
            };
            let (max, bounds) = demo.limits();
            match io::parse_points(&text, max, bounds) {
                Ok(p) => {
                    error.set(None);
                    points.set(p);
                    reset.run(());
                }
                Err(e) => error.set(Some(format!("Import failed: {e}"))),
            }
        });
    };

    view! {
        <div class="io" role="group" aria-label="Export and import">
            <span class="io-label">"Export"</span>
            <button data-testid="export-png" on:click=on_png>"PNG"</button>
            <button data-testid="export-svg" on:click=on_svg>"SVG"</button>
            <button data-testid="export-gif" on:click=on_gif
                title="The refinement as an animated GIF, one frame per step from 0 to k, for slides"
                disabled=move || making.get().is_some() || last_step.get() == 0>
                {move || match making.get() {
                    Some((i, n)) => format!("GIF {i}/{n}"),
                    None => "GIF".to_string(),
                }}
            </button>
            <button data-testid="export-json" on:click=on_json>"JSON"</button>
            <button data-testid="export-csv" on:click=on_csv>"CSV"</button>
            <label class="import">
                "Import points (JSON/CSV) "
                <input type="file" accept=".json,.csv,application/json,text/csv"
                    data-testid="import-input" on:change=on_import />
            </label>
            {move || last.get().map(|(name, url)| view! {
                <a data-testid="export-link" href=url download=name.clone()>{format!("Download {name} again")}</a>
            })}
        </div>
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
            <label>"Steps k "
                <input type="number" data-testid="k-input" min="1" max=MAX_STEP.to_string()
                    prop:value=move || refine.get().0.to_string()
                    disabled=move || refine.get().0 == 0
                    aria-label="Number of refinement steps k"
                    on:change=move |ev| {
                        if let Ok(v) = event_target_value(&ev).trim().parse::<usize>() {
                            apply_k(Some(v), None, None);
                        }
                    } />
            </label>
            <label>"Mini-batch "
                <input type="number" data-testid="batch-input" min="1" max=MAX_BATCH.to_string()
                    prop:value=move || refine.get().1.to_string()
                    disabled=move || refine.get().0 == 0
                    aria-label="Points per mini-batch"
                    on:change=move |ev| {
                        if let Ok(v) = event_target_value(&ev).trim().parse::<usize>() {
                            apply_b(None, Some(v), None);
                        }
                    } />
            </label>
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
