//! `amortize plot`: a run's training curve (greedy loss per meta-training step) and the error
//! after each number of refinement steps at its last evaluation, as SVG or PNG (plotters).

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::cli::PlotArgs;

/// DejaVu Sans (its licence is beside it), so text renders the same on every machine.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The parts of log.jsonl the plot draws.
struct Curves {
    loss: Vec<(f64, f64)>,
    loss_last_step: Vec<(f64, f64)>,
    /// (refinement steps, value) at the last evaluation, with its metric and the Bayes line.
    per_step: Vec<(f64, f64)>,
    metric: String,
    bayes: Option<f64>,
    eval_at: usize,
}

fn read(run: &Path) -> anyhow::Result<Curves> {
    let path = run.join("log.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut c = Curves {
        loss: Vec::new(),
        loss_last_step: Vec::new(),
        per_step: Vec::new(),
        metric: String::new(),
        bayes: None,
        eval_at: 0,
    };
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {}: not JSON", path.display(), i + 1))?;
        let step = v["step"]
            .as_u64()
            .with_context(|| format!("{}: line {}: no step", path.display(), i + 1))?
            as f64;
        let finite = |x: Option<f64>| x.filter(|x| x.is_finite() && *x > 0.0);
        if let Some(l) = finite(v["loss"].as_f64()) {
            c.loss.push((step, l));
        }
        if let Some(l) = finite(v["loss_last_step"].as_f64()) {
            c.loss_last_step.push((step, l));
        }
        let eval = &v["eval"];
        if eval.is_object() {
            let series = if eval["error_rate"].is_array() {
                c.metric = "query error %".into();
                &eval["error_rate"]
            } else {
                c.metric = format!("query {}", eval["metric"].as_str().unwrap_or("loss"));
                &eval["model"]
            };
            c.per_step = series
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p[0].as_f64()?, finite(p[1].as_f64())?)))
                .collect();
            c.bayes = if eval["error_rate"].is_array() {
                None
            } else {
                finite(eval["bayes"].as_f64())
            };
            c.eval_at = step as usize;
        }
    }
    anyhow::ensure!(
        !c.loss.is_empty(),
        "{}: no finite losses to plot",
        path.display()
    );
    Ok(c)
}

fn bounds(points: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = points.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    (lo * 0.8, hi * 1.25)
}

/// One curve of a panel.
struct Series<'a> {
    points: Vec<(f64, f64)>,
    color: RGBColor,
    label: &'a str,
    /// A dot at each point (the evaluated step counts).
    dots: bool,
}

/// A panel on `area`: `series` over `x` with a log-scale y axis spanning their values, and a
/// legend.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    x: (f64, f64, &str),
    y_desc: &str,
    series: &[Series],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing: {e:?}");
    let (lo, hi) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(x.0..x.1, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x.2)
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    for s in series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), &color))
            .map_err(err)?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        if s.dots {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The training curve on the left; the last evaluation per refinement step on the right.
fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &Curves) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let last = c.loss.last().map(|p| p.0).unwrap_or(1.0).max(2.0);
    let line = |points: &[(f64, f64)], color, label| Series {
        points: points.to_vec(),
        color,
        label,
        dots: false,
    };
    panel(
        &left,
        "training: greedy k-step loss",
        (1.0, last, "meta-training step"),
        "loss",
        &[
            line(&c.loss, BLUE, "mean over the k steps"),
            line(&c.loss_last_step, RED, "after step k"),
        ],
    )?;
    if !c.per_step.is_empty() {
        let kmax = c.per_step.iter().map(|p| p.0).fold(1.0, f64::max);
        let mut series = vec![Series {
            dots: true,
            ..line(&c.per_step, BLUE, "amortizer")
        }];
        if let Some(b) = c.bayes {
            series.push(line(&[(0.0, b), (kmax, b)], BLACK, "Bayes posterior mean"));
        }
        panel(
            &right,
            &format!("evaluation at step {}: {}", c.eval_at, c.metric),
            (0.0, kmax, "refinement steps"),
            &c.metric,
            &series,
        )?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Runs `amortize plot`.
pub fn run(a: PlotArgs) -> anyhow::Result<()> {
    if !(200..=8000).contains(&a.width) {
        anyhow::bail!("--width must be in 200..=8000, got {}", a.width);
    }
    let curves = read(&a.run)?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("loading the bundled font"))?;
    let size = (a.width, a.width * 2 / 5);
    match a.out.extension().and_then(|e| e.to_str()) {
        Some("svg") => draw(SVGBackend::new(&a.out, size).into_drawing_area(), &curves)?,
        Some("png") => draw(
            BitMapBackend::new(&a.out, size).into_drawing_area(),
            &curves,
        )?,
        _ => anyhow::bail!("--out: write .svg or .png, got {}", a.out.display()),
    }
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
