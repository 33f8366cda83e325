//! Plot geometry shared by the demos: where a pointer falls on a plot, the start of a drawing
//! gesture on it, and the regression plot's coordinates (the regression and Train tabs draw it).

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

/// The regression plot: x in [-1, 1] across `W`, y in [-`Y_MAX`, `Y_MAX`] down `H` (SVG units),
/// and a model's curve drawn through `CURVE_POINTS + 1` evenly spaced x.
pub mod regression {
    /// Plot area in SVG units.
    pub const W: f64 = 600.0;
    pub const H: f64 = 360.0;
    /// Visible y range.
    pub const Y_MAX: f64 = 3.5;
    /// Segments of a drawn curve.
    pub const CURVE_POINTS: usize = 200;

    /// The x of the curve's i-th vertex.
    pub fn curve_x(i: usize) -> f32 {
        -1.0 + 2.0 * i as f32 / CURVE_POINTS as f32
    }

    /// Data to plot units.
    pub fn to_px(x: f64, y: f64) -> (f64, f64) {
        ((x + 1.0) / 2.0 * W, (Y_MAX - y) / (2.0 * Y_MAX) * H)
    }

    /// Plot units to data.
    pub fn from_px(px: f64, py: f64) -> (f64, f64) {
        (px / W * 2.0 - 1.0, Y_MAX - py / H * 2.0 * Y_MAX)
    }

    /// The SVG path of a curve given at `curve_x(0..=CURVE_POINTS)` (values far off the plot are
    /// clamped, so that the path stays drawable).
    pub fn path(ys: &[f32]) -> String {
        let mut d = String::new();
        for (i, &y) in ys.iter().enumerate().take(CURVE_POINTS + 1) {
            let y = (y as f64).clamp(-2.0 * Y_MAX, 2.0 * Y_MAX);
            let (px, py) = to_px(curve_x(i) as f64, y);
            d += &format!("{}{px:.1},{py:.1}", if i == 0 { "M" } else { "L" });
        }
        d
    }
}
