//! The amortize web app: panic hook and mount.

mod animation;
mod app;
mod browser;
mod engine;
mod gmm;
mod io;
mod plot;
mod state;
mod status;
mod toolbar;
mod train;

fn main() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        browser::show_fatal(&info.to_string());
    }));
    leptos::mount::mount_to_body(app::App);
}
