//! How a visitor walks through a refinement, shared by the regression and generation demos:
//! Step, Play/Pause and Reset, the keys, the timeline and the step readout. Each demo says what
//! a step is; the player runs it.

use std::future::Future;
use std::pin::Pin;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::browser::{keyboard, sleep};
use crate::status::Status;

/// A step being taken: resolves to false when there was nothing to do.
pub type Stepping = Pin<Box<dyn Future<Output = bool>>>;

/// A demo's player; all handles are `Copy`.
#[derive(Clone, Copy)]
pub struct Player {
    /// Playing now.
    pub playing: RwSignal<bool>,
    /// The demo's model: the buttons and keys work once it is ready.
    pub status: RwSignal<Status>,
    /// Milliseconds between two steps while playing.
    pause_ms: u32,
    /// Runs the next step.
    step: UnsyncCallback<(), Stepping>,
    /// Back one step (nothing at step 0).
    back: UnsyncCallback<()>,
}

impl Player {
    /// A player that takes a step with `step`, goes back with `back`, and plays a step every
    /// `pause_ms` milliseconds.
    pub fn new(
        status: RwSignal<Status>,
        playing: RwSignal<bool>,
        pause_ms: u32,
        step: impl Fn() -> Stepping + 'static,
        back: impl Fn() + 'static,
    ) -> Self {
        Self {
            playing,
            status,
            pause_ms,
            step: UnsyncCallback::new(move |()| step()),
            back: UnsyncCallback::new(move |()| back()),
        }
    }

    /// One step (play stops).
    pub fn step_once(self) {
        self.playing.set(false);
        spawn_local(async move {
            self.step.run(()).await;
        });
    }

    /// Plays, a step every `pause_ms` until the last one; pauses when playing.
    pub fn play(self) {
        if self.playing.get_untracked() {
            self.playing.set(false);
            return;
        }
        self.playing.set(true);
        spawn_local(async move {
            while self.playing.get_untracked() && self.step.run(()).await {
                sleep(self.pause_ms).await;
            }
            self.playing.set(false);
        });
    }

    /// Space plays or pauses, → steps, ← goes back, once the demo is ready.
    pub fn keys(self) {
        keyboard(
            move || self.status.get_untracked() == Status::Ready,
            move || self.play(),
            move || self.step_once(),
            move || self.back.run(()),
        );
    }

    /// Whether the demo is ready (tracked).
    pub fn ready(self) -> bool {
        self.status.get() == Status::Ready
    }
}

/// A demo's controls: Step, Play/Pause and Reset, then the demo's own (`children`).
#[component]
pub fn Controls(player: Player, on_reset: Callback<()>, children: Children) -> impl IntoView {
    view! {
        <div class="controls">
            <button data-testid="step-button" on:click=move |_| player.step_once()
                disabled=move || !player.ready()>"Step"</button>
            <button data-testid="play-button" on:click=move |_| player.play()
                disabled=move || !player.ready()>
                {move || if player.playing.get() { "Pause" } else { "Play" }}
            </button>
            <button data-testid="reset-button" on:click=move |_| on_reset.run(())
                disabled=move || !player.ready()>"Reset"</button>
            {children()}
        </div>
    }
}

/// The timeline: a slider over steps 0..=`last` showing `current`; moving it runs `seek`.
/// Disabled until the demo is ready, and while there are no points.
#[component]
pub fn Timeline(
    player: Player,
    last: RwSignal<usize>,
    current: Signal<usize>,
    points: RwSignal<Vec<(f32, f32)>>,
    seek: Callback<usize>,
) -> impl IntoView {
    view! {
        <label class="timeline">
            <span>"Timeline"</span>
            <input type="range" data-testid="timeline" min="0"
                max=move || last.get().to_string()
                prop:value=move || current.get().to_string()
                disabled=move || !player.ready() || points.get().is_empty()
                aria-label="Refinement step shown"
                on:change=move |ev| {
                    if let Ok(v) = event_target_value(&ev).parse::<usize>() {
                        seek.run(v);
                    }
                } />
        </label>
    }
}

/// The step readout: "`current` / `last`".
#[component]
pub fn StepReadout(current: Signal<usize>, last: RwSignal<usize>) -> impl IntoView {
    view! {
        <div><dt>"Step"</dt><dd>
            <span data-testid="step">{move || current.get()}</span>" / "{move || last.get()}
        </dd></div>
    }
}

/// One readout of a demo's list: `label`, and `text` in an element `testid` names.
pub fn readout(
    label: &'static str,
    testid: &'static str,
    text: impl Fn() -> String + Send + Sync + 'static,
) -> impl IntoView {
    view! { <div><dt>{label}</dt><dd data-testid=testid>{text}</dd></div> }
}
