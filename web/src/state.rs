//! The page's state: the settings of the `amortize-web-state` crate (read from the URL, written
//! back to it), held in one signal that the controls change in place.

use leptos::prelude::*;

pub use amortize_web_state::*;

/// Runs `apply` each time the visitor changes k, the mini-batch size or the seed in `settings`
/// (not at first: loading the model applies the link's own).
pub fn on_refine_change(settings: RwSignal<Settings>, apply: impl Fn() + 'static) {
    Effect::watch(
        move || settings.with(|s| (s.steps, s.batch, s.seed)),
        move |now, before, _| {
            if before != Some(now) {
                apply();
            }
        },
        false,
    );
}

/// Puts in use the k and mini-batch size of `settings` over the model's `trained` ones:
/// `refine` becomes (k, b) and `last` (the timeline's end) k.
pub fn set_refine_in_use(
    settings: RwSignal<Settings>,
    trained: &amortize::RefineConfig,
    refine: RwSignal<(usize, usize)>,
    last: RwSignal<usize>,
) {
    let mut r = trained.clone();
    settings.with_untracked(|s| s.apply_refine(&mut r));
    refine.set((r.steps, r.batch_size));
    last.set(r.steps);
}
