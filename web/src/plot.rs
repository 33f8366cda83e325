//! Plot geometry shared by the demos: where a pointer falls on a plot, and the start of a
//! drawing gesture on it.

use wasm_bindgen::JsCast;

/// Where a pointer event falls on the plot it targets, in the units of the plot's `w × h`
/// view box (None while the plot has no size).
pub fn pointer_at(ev: &web_sys::MouseEvent, w: f64, h: f64) -> Option<(f64, f64)> {
    let target = ev
        .current_target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())?;
    let rect = target.get_bounding_client_rect();
    if rect.width() <= 0.0 || rect.height() <= 0.0 {
        return None;
    }
    Some((
        (ev.client_x() as f64 - rect.left()) / rect.width() * w,
        (ev.client_y() as f64 - rect.top()) / rect.height() * h,
    ))
}

/// Starts a drawing gesture: no text selection or page scroll, and the plot keeps receiving
/// the pointer's events until it is lifted, even outside the plot.
pub fn capture(ev: &web_sys::PointerEvent) {
    ev.prevent_default();
    if let Some(el) = ev
        .current_target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
    {
        let _ = el.set_pointer_capture(ev.pointer_id());
    }
}
