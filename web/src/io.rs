//! Points in and out of the page: the compact form kept in the URL (`pts=x,y;x,y`, from
//! `amortize_web_state::points`), JSON and CSV exports, imports of either, and browser downloads.
//! Every reader checks its input: at most `max` points, finite coordinates inside the demo's
//! plot, and a message naming the problem.

use wasm_bindgen::JsCast;

pub use amortize_web_state::points::{quantize, Bounds};

/// `[{"x": …, "y": …}, …]`.
pub fn points_json(points: &[(f32, f32)]) -> String {
    let items: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{{\"x\":{x},\"y\":{y}}}"))
        .collect();
    format!("[{}]", items.join(","))
}

/// `x,y` header, one point per line.
pub fn points_csv(points: &[(f32, f32)]) -> String {
    let mut s = String::from("x,y\n");
    for (x, y) in points {
        s += &format!("{x},{y}\n");
    }
    s
}

/// Reads an export back (`amortize::points`, the command line's rules): JSON (an array of
/// `{"x", "y"}` objects or `[x, y]` pairs) or CSV (an optional header, then `x,y` lines), each
/// point inside the demo's plot.
pub fn parse_points(text: &str, max: usize, bounds: Bounds) -> Result<Vec<(f32, f32)>, String> {
    let rows = amortize::points::parse_rows(text, max)?;
    rows.iter()
        .enumerate()
        .map(|(i, r)| match r.as_slice() {
            &[x, y] => bounds.check(i, quantize(x as f32), quantize(y as f32)),
            _ => Err(format!(
                "point {}: expected 2 coordinates (x, y), got {}",
                i + 1,
                r.len()
            )),
        })
        .collect()
}

/// Offers `bytes` as a download named `name`.
pub fn download(name: &str, mime: &str, bytes: &[u8]) -> Result<(), String> {
    let url = blob_url(mime, bytes)?;
    let a: web_sys::HtmlAnchorElement = create("a", "not an anchor")?;
    a.set_href(&url);
    a.set_download(name);
    a.click();
    Ok(())
}

/// Offers `bytes` as a download named `name`, and keeps it in `last` (file name, object URL)
/// so that the page can offer it again; the URL it replaces is revoked.
pub fn offer(
    last: leptos::prelude::RwSignal<Option<(String, String)>>,
    name: String,
    mime: &str,
    bytes: &[u8],
) -> Result<(), String> {
    use leptos::prelude::*;
    let url = blob_url(mime, bytes)?;
    if let Some((_, old)) = last.get_untracked() {
        let _ = web_sys::Url::revoke_object_url(&old);
    }
    let _ = download(&name, mime, bytes);
    last.set(Some((name, url)));
    Ok(())
}

/// A new `<tag>` element of the page's document, as the element type `T` (`wrong` is the
/// error when it is not one).
fn create<T: JsCast>(tag: &str, wrong: &str) -> Result<T, String> {
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    doc.create_element(tag)
        .map_err(|e| format!("{e:?}"))?
        .dyn_into()
        .map_err(|_| wrong.to_string())
}

/// An object URL for `bytes`.
pub fn blob_url(mime: &str, bytes: &[u8]) -> Result<String, String> {
    let array = js_sys::Uint8Array::from(bytes);
    let parts = js_sys::Array::of1(&array);
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts)
        .map_err(|e| format!("{e:?}"))?;
    web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))
}

/// The SVG markup of the plot (`data-testid="plot"`), standalone, with its styles inlined for
/// the classes the plots use. Several plots (the regimes side by side) go in one row, each
/// under its caption.
pub fn plot_svg() -> Result<String, String> {
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let list = doc
        .query_selector_all("[data-testid=\"plot\"]")
        .map_err(|e| format!("{e:?}"))?;
    let plots: Vec<web_sys::Element> = (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<web_sys::Element>().ok())
        .collect();
    let first = plots.first().ok_or("no plot on the page")?;
    let view_box = first.get_attribute("viewBox").unwrap_or_default();
    if plots.len() == 1 {
        let inner = first.inner_html();
        return Ok(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"{view_box}\"><style>{SVG_STYLE}</style>{inner}</svg>"
        ));
    }
    // "0 0 w h": every panel has the same size.
    let size: Vec<f64> = view_box
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [_, _, w, h] = size[..] else {
        return Err(format!("unexpected plot viewBox {view_box:?}"));
    };
    const GAP: f64 = 20.0;
    const CAPTION: f64 = 28.0;
    let mut body = String::new();
    for (i, plot) in plots.iter().enumerate() {
        let caption = plot
            .parent_element()
            .and_then(|f| f.query_selector("figcaption").ok().flatten())
            .and_then(|c| c.text_content())
            .unwrap_or_default();
        let x = i as f64 * (w + GAP);
        body += &format!(
            "<text x=\"{x}\" y=\"20\" font-family=\"sans-serif\" font-size=\"16\" font-weight=\"600\">{}</text><g transform=\"translate({x},{CAPTION})\">{}</g>",
            escape_xml(&caption),
            plot.inner_html()
        );
    }
    let total_w = plots.len() as f64 * (w + GAP) - GAP;
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {total_w} {}\"><style>{SVG_STYLE}</style>{body}</svg>",
        h + CAPTION
    ))
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const SVG_STYLE: &str =
    ".frame{fill:#fff;stroke:#dedad2}.axis{stroke:#ced4da;stroke-dasharray:4 4}\
.curve{fill:none;stroke:#1c7ed6}.curve.current{stroke-width:3}.curve.past{stroke-width:1.5}\
.curve.bayes{stroke:#2b8a3e;stroke-dasharray:6 4;stroke-width:2}\
.point{fill:#343a40}.point.in-batch{fill:#e8590c;stroke:#fff;stroke-width:2}\
.sample{fill:#1c7ed6;opacity:.55}";

/// Renders the plot's SVG on a canvas `width` pixels wide (the height keeps the plot's aspect),
/// on white, through an image: what the page shows, pixel for pixel.
async fn plot_canvas(
    width: u32,
) -> Result<
    (
        web_sys::HtmlCanvasElement,
        web_sys::CanvasRenderingContext2d,
    ),
    String,
> {
    let svg = plot_svg()?;
    let url = blob_url("image/svg+xml", svg.as_bytes())?;
    let img = web_sys::HtmlImageElement::new().map_err(|e| format!("{e:?}"))?;
    img.set_src(&url);
    let decoded = wasm_bindgen_futures::JsFuture::from(img.decode()).await;
    let _ = web_sys::Url::revoke_object_url(&url);
    decoded.map_err(|e| format!("the plot did not render as an image: {e:?}"))?;
    let canvas: web_sys::HtmlCanvasElement = create("canvas", "not a canvas")?;
    let (w, h) = (img.natural_width().max(1), img.natural_height().max(1));
    let height = ((width as f64 * h as f64 / w as f64).round() as u32).max(1);
    canvas.set_width(width);
    canvas.set_height(height);
    let ctx: web_sys::CanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(|e| format!("{e:?}"))?
        .ok_or("no 2d context")?
        .dyn_into()
        .map_err(|_| "not a 2d context")?;
    ctx.set_fill_style_str("#ffffff");
    ctx.fill_rect(0.0, 0.0, width as f64, height as f64);
    ctx.draw_image_with_html_image_element_and_dw_and_dh(
        &img,
        0.0,
        0.0,
        width as f64,
        height as f64,
    )
    .map_err(|e| format!("{e:?}"))?;
    Ok((canvas, ctx))
}

/// The plot as a PNG `width` pixels wide.
pub async fn plot_png(width: u32) -> Result<Vec<u8>, String> {
    let (canvas, _) = plot_canvas(width).await?;
    let data_url = canvas
        .to_data_url_with_type("image/png")
        .map_err(|e| format!("{e:?}"))?;
    let b64 = data_url
        .split_once(',')
        .map(|x| x.1)
        .ok_or("bad data URL")?;
    let bin = web_sys::window()
        .ok_or("no window")?
        .atob(b64)
        .map_err(|e| format!("{e:?}"))?;
    Ok(bin.chars().map(|c| c as u32 as u8).collect())
}

/// The plot's pixels, `width` wide, with `caption` in its top left corner: (width, height,
/// RGBA bytes).
pub async fn plot_rgba(width: u32, caption: &str) -> Result<(u32, u32, Vec<u8>), String> {
    let (canvas, ctx) = plot_canvas(width).await?;
    let height = canvas.height();
    ctx.set_font("bold 18px sans-serif");
    ctx.set_fill_style_str("#343a40");
    ctx.fill_text(caption, 12.0, 28.0)
        .map_err(|e| format!("{e:?}"))?;
    let data = ctx
        .get_image_data(0.0, 0.0, width as f64, height as f64)
        .map_err(|e| format!("{e:?}"))?;
    Ok((width, height, data.data().0))
}

/// Replaces the page's query string (no reload, no history entry).
pub fn replace_query(query: &str) {
    if let Some(h) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(query));
    }
}
