//! Points in the URL: the compact form `pts=x,y;x,y` with three decimals, read back with the
//! checks every reader of points makes (at most `max` points, finite coordinates inside the
//! demo's plot, and a message naming the problem).

/// The plot's extent in data units: x and y ranges a point must fall in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Smallest and largest x.
    pub x: (f32, f32),
    /// Smallest and largest y.
    pub y: (f32, f32),
}

impl Bounds {
    /// Point `i` (counted from 0, named from 1) if it is finite and inside the plot; otherwise
    /// a message naming it.
    pub fn check(&self, i: usize, x: f32, y: f32) -> Result<(f32, f32), String> {
        if !(x.is_finite() && y.is_finite()) {
            return Err(format!(
                "point {}: coordinates must be finite numbers",
                i + 1
            ));
        }
        if x < self.x.0 || x > self.x.1 || y < self.y.0 || y > self.y.1 {
            // 1e30, not thirty-one digits.
            let show = |v: f32| {
                if v.abs() >= 1e6 {
                    format!("{v:e}")
                } else {
                    format!("{v}")
                }
            };
            return Err(format!(
                "point {} ({}, {}) is outside the plot (x in [{}, {}], y in [{}, {}])",
                i + 1,
                show(x),
                show(y),
                self.x.0,
                self.x.1,
                self.y.0,
                self.y.1
            ));
        }
        Ok((x, y))
    }
}

/// Rounds a coordinate to the URL's three decimals, so a link restores exactly what was drawn.
pub fn quantize(v: f32) -> f32 {
    (v * 1000.0).round() / 1000.0
}

/// `x,y;x,y;…` with three decimals: the URL form.
pub fn encode_points(points: &[(f32, f32)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{},{}", trim(*x), trim(*y)))
        .collect::<Vec<_>>()
        .join(";")
}

fn trim(v: f32) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Parses the URL form.
pub fn decode_points(text: &str, max: usize, bounds: Bounds) -> Result<Vec<(f32, f32)>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = text.split(';').collect();
    if items.len() > max {
        return Err(format!("{} points; at most {max}", items.len()));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let (x, y) = item
                .split_once(',')
                .ok_or_else(|| format!("point {}: expected x,y, got {item:?}", i + 1))?;
            let parse = |v: &str| {
                v.trim()
                    .parse::<f32>()
                    .map_err(|_| format!("point {}: {v:?} is not a number", i + 1))
            };
            bounds.check(i, quantize(parse(x)?), quantize(parse(y)?))
        })
        .collect()
}
