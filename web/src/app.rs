//! The page: the header with the demo tabs, the URL's warnings and the demo chosen (each demo
//! shows its own loading screen and errors through `status::StatusView`). The settings read from
//! the URL are the page's one state, in a signal: the demos change them in place and keep the
//! address bar in step.

use leptos::prelude::*;

use crate::demos::generation::{GenDemo, GenKind};
use crate::demos::regression::RegressionDemo;
use crate::demos::train::TrainDemo;
use crate::state::{Demo, Settings};

/// The app: header, demo tabs (each its own URL), URL warnings, the chosen demo.
#[component]
pub fn App() -> impl IntoView {
    let query = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let settings = Settings::from_query(&query);
    let state = RwSignal::new(settings.clone());
    let tab = |demo: Demo, label: &'static str| {
        let selected = settings.demo == demo;
        view! {
            <a class="tab" role="tab" href=move || state.with(|s| s.tab_query(demo))
                aria-selected=selected.to_string()
                data-testid=format!("tab-{}", demo.key())>{label}</a>
        }
    };
    let warnings = settings.warnings.clone();
    let embed = settings.embed;
    if embed {
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            body.set_class_name("embed");
        }
    }
    view! {
        <header hidden=embed>
            <h1>"amortize"</h1>
            <p class="tagline">
                "A transformer that learns to learn: it refines a solution step by step over mini-batches of your points, like SGD with a learned update."
            </p>
            <nav class="tabs" role="tablist" aria-label="Demos">
                {tab(Demo::Regression, "Regression")}
                {tab(Demo::Gmm, "Gaussian mixture")}
                {tab(Demo::Alphabet, "Alphabet")}
                {tab(Demo::Train, "Train")}
            </nav>
        </header>
        <main>
            {(!warnings.is_empty()).then(|| view! {
                <div class="warning" data-testid="warning" role="status">
                    {warnings.join(" · ")}
                </div>
            })}
            {match settings.demo {
                Demo::Regression => view! { <RegressionDemo settings=state /> }.into_any(),
                Demo::Gmm => view! { <GenDemo settings=state kind=GenKind::Gmm /> }.into_any(),
                Demo::Alphabet => view! { <GenDemo settings=state kind=GenKind::Alphabet /> }.into_any(),
                Demo::Train => view! { <TrainDemo settings=settings.clone() /> }.into_any(),
            }}
        </main>
    }
}
