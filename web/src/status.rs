//! The loading, error and ready states every demo shows above its plot, in one place.

use leptos::prelude::*;

/// Where a demo's model stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Downloading or preparing, with the words to show.
    Loading(String),
    /// Interactive (`data-testid="ready"`, for tests and scripts).
    Ready,
    /// Could not load: the message.
    Failed(String),
}

/// A note above the plot: one plain sentence, and the technical detail behind a disclosure.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// What a visitor needs to know.
    pub text: String,
    /// What a developer needs (an adapter's error), shown on request.
    pub detail: Option<String>,
}

impl Note {
    /// A note without detail.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            detail: None,
        }
    }
}

/// A demo's model as the page shows it: where it stands, the download's progress, the note on
/// the backend and the backend's name. All handles are `Copy`.
#[derive(Clone, Copy)]
pub struct ModelState {
    pub status: RwSignal<Status>,
    /// Bytes of the weights downloaded so far, and the total when known.
    pub fetched: RwSignal<Option<(usize, Option<usize>)>>,
    pub note: RwSignal<Option<Note>>,
    /// The backend in use, in words ("—" until the model loads).
    pub backend: RwSignal<String>,
}

impl ModelState {
    /// A model about to be fetched.
    pub fn fetching() -> Self {
        Self {
            status: RwSignal::new(Status::Loading("Fetching the model…".to_string())),
            fetched: RwSignal::new(None),
            note: RwSignal::new(None),
            backend: RwSignal::new(String::from("—")),
        }
    }

    /// Downloads the weights `file`, the panel showing the progress (`of` after the words, such
    /// as " (1 of 2)"), then that the model is being prepared; None, the panel saying why, when
    /// the download fails.
    pub async fn fetch(self, file: &str, of: &str) -> Option<Vec<u8>> {
        let bytes = match crate::browser::fetch_bytes(file, |got, total| {
            self.fetched.set(Some((got, total)));
            self.status.set(Status::Loading(format!(
                "{}{of}",
                crate::browser::progress_text(got, total)
            )));
        })
        .await
        {
            Ok(b) => b,
            Err(e) => {
                self.status.set(Status::Failed(e));
                return None;
            }
        };
        self.status.set(Status::Loading(format!(
            "Preparing the model{of} ({} kB)…",
            bytes.len() / 1024
        )));
        Some(bytes)
    }
}

/// The status panel: a spinner with the download's progress bar while loading, the message
/// on failure; then the error of the last action and the backend note, when there are any.
#[component]
pub fn StatusView(
    status: RwSignal<Status>,
    /// Bytes of the weights downloaded so far, and the total when known.
    fetched: RwSignal<Option<(usize, Option<usize>)>>,
    /// The last action's error (a failed step, an import), shown until replaced.
    error: RwSignal<Option<String>>,
    /// What the backend choice found (`backend=auto`), or a fallback.
    note: RwSignal<Option<Note>>,
) -> impl IntoView {
    view! {
        {move || match status.get() {
            Status::Loading(msg) => view! {
                <div class="loading" data-testid="loading" role="status">
                    <div class="spinner"></div>{msg}
                    {move || fetched.get().map(|(got, total)| view! {
                        <progress data-testid="progress" max=total.unwrap_or(got).max(1).to_string()
                            value=got.to_string()></progress>
                    })}
                </div>
            }.into_any(),
            Status::Failed(msg) => view! {
                <div class="error" data-testid="error" role="alert">{msg}</div>
            }.into_any(),
            Status::Ready => view! { <span data-testid="ready" hidden=true></span> }.into_any(),
        }}
        {move || error.get().map(|e| view! {
            <div class="error" data-testid="error" role="alert">{e}</div>
        })}
        {move || note.get().map(|n| view! {
            <div class="warning" data-testid="note" role="status">
                {n.text}
                {n.detail.map(|d| view! {
                    <details data-testid="note-detail"><summary>"Details"</summary>{d}</details>
                })}
            </div>
        })}
    }
}
