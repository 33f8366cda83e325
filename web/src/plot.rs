//! Plot geometry shared by the demos: a plot's frame (data <-> SVG units), where a pointer
//! falls on a plot, the start of a drawing gesture on it, and the regression plot (the
//! regression and Train tabs draw it, and a click adds or removes its points).

use wasm_bindgen::JsCast;

/// A plot's frame: data in `x` × `y` drawn across `w × h` SVG units, y up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    /// Width and height in SVG units.
    pub w: f64,
    pub h: f64,
    /// The data's x and y ranges, (smallest, largest).
    pub x: (f64, f64),
    pub y: (f64, f64),
}

impl Frame {
    /// A square plot `side` units wide showing [-r, r]² (the generation demos').
    pub const fn square(side: f64, r: f64) -> Self {
        Self {
            w: side,
            h: side,
            x: (-r, r),
            y: (-r, r),
        }
    }

    /// The plot units of the data point (x, y).
    pub fn pixel(self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.x.0) / (self.x.1 - self.x.0) * self.w,
            (self.y.1 - y) / (self.y.1 - self.y.0) * self.h,
        )
    }

    /// The data point at plot units (px, py).
    pub fn data(self, px: f64, py: f64) -> (f64, f64) {
        (
            px / self.w * (self.x.1 - self.x.0) + self.x.0,
            self.y.1 - py / self.h * (self.y.1 - self.y.0),
        )
    }

    /// The SVG `viewBox`.
    pub fn view_box(self) -> String {
        format!("0 0 {} {}", self.w, self.h)
    }
}

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
    use leptos::prelude::*;

    use crate::state::MAX_POINTS;

    /// Plot area in SVG units.
    pub const W: f64 = 600.0;
    pub const H: f64 = 360.0;
    /// Visible y range.
    pub const Y_MAX: f64 = 3.5;
    /// Segments of a drawn curve.
    pub const CURVE_POINTS: usize = 200;
    /// Plot units within which a press of the eraser (or the right button) removes a point.
    pub const ERASE_RADIUS: f64 = 16.0;

    /// The x of the curve's i-th vertex.
    pub fn curve_x(i: usize) -> f32 {
        -1.0 + 2.0 * i as f32 / CURVE_POINTS as f32
    }

    /// The plot's frame.
    pub const FRAME: super::Frame = super::Frame {
        w: W,
        h: H,
        x: (-1.0, 1.0),
        y: (-Y_MAX, Y_MAX),
    };

    /// Data to plot units.
    pub fn to_px(x: f64, y: f64) -> (f64, f64) {
        FRAME.pixel(x, y)
    }

    /// Plot units to data.
    pub fn from_px(px: f64, py: f64) -> (f64, f64) {
        FRAME.data(px, py)
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

    /// Adds a point at `(px, py)` (plot units) to `points`, rounded as a link keeps it; false
    /// when that is off the plot's x range, or when `points` holds `MAX_POINTS` already (then
    /// `error` says so).
    pub fn add_point(
        points: RwSignal<Vec<(f32, f32)>>,
        error: RwSignal<Option<String>>,
        (px, py): (f64, f64),
    ) -> bool {
        let (x, y) = from_px(px, py);
        if !(x.is_finite() && y.is_finite() && (-1.0..=1.0).contains(&x)) {
            return false;
        }
        if points.get_untracked().len() >= MAX_POINTS {
            error.set(Some(format!("At most {MAX_POINTS} points.")));
            return false;
        }
        points.update(|p| p.push((crate::io::quantize(x as f32), crate::io::quantize(y as f32))));
        true
    }

    /// Removes the point nearest to `(px, py)` (plot units) from `points`; false when none is
    /// within `ERASE_RADIUS`.
    pub fn erase_point(points: RwSignal<Vec<(f32, f32)>>, (px, py): (f64, f64)) -> bool {
        let near = points.with_untracked(|pts| {
            pts.iter()
                .enumerate()
                .map(|(i, &(x, y))| {
                    let (qx, qy) = to_px(x as f64, y as f64);
                    (i, (qx - px).hypot(qy - py))
                })
                .filter(|&(_, d)| d <= ERASE_RADIUS)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
        });
        let Some(i) = near else {
            return false;
        };
        points.update(|p| {
            p.remove(i);
        });
        true
    }
}
