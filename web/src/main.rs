//! The amortize web app: panic hook and mount.

mod animation;
mod app;
mod browser;
mod demos;
mod engine;
mod io;
mod player;
mod plot;
mod state;
mod status;
mod toolbar;

fn main() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        browser::show_fatal(&info.to_string());
    }));
    leptos::mount::mount_to_body(app::App);
}
