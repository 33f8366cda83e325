//! Export and import, shared by the demos: PNG and SVG of the plot, JSON and CSV of the points,
//! and an import of either. The last export stays on the page as a link (`data-testid=
//! "export-link"`) so it can be downloaded again.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::io;
use crate::state::{Demo, Settings, MAX_BATCH, MAX_STEP};

/// The export/import bar. `reset` runs after an import replaced the points.
#[component]
pub fn PointsIo(
    points: RwSignal<Vec<(f32, f32)>>,
    demo: Demo,
    error: RwSignal<Option<String>>,
    reset: Callback<()>,
) -> impl IntoView {
    let last = RwSignal::new(None::<(String, String)>);
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
            io::plot_png(1200, move |r| match r {
                Ok(bytes) => offer(format!("{base}.png"), "image/png", &bytes),
                Err(e) => error.set(Some(format!("Export failed: {e}"))),
            });
        }
    };
    let on_import = move |ev: web_sys::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            return;
        };
        input.set_value("");
        spawn_local(async move {
            let text = match JsFuture::from(file.text()).await {
                Ok(t) => t.as_string().unwrap_or_default(),
                Err(e) => return error.set(Some(format!("Could not read the file: {e:?}"))),
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
