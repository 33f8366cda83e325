//! Alphabets (paper §9.5, after Atanackovic et al.): a task is one capital letter drawn as a point
//! cloud along its strokes, with small jitter, a random scale and a random rotation. The letters
//! D, H, N, T, X and Y never appear in training tasks: they form the out-of-distribution set.
//!
//! The glyphs are written here as strokes — polylines and elliptic arcs in a box of height 2
//! centred on the origin — the way a person draws the letter with a mouse; no font file is read.

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::flow_matching::FlowTarget;

/// Letters reserved for evaluation (never in training tasks).
pub const HELD_OUT: [char; 6] = ['D', 'H', 'N', 'T', 'X', 'Y'];

/// One stroke of a glyph.
#[derive(Debug, Clone, Copy)]
enum Stroke {
    /// Straight segments through the points.
    Line(&'static [(f32, f32)]),
    /// Elliptic arc: centre, radii, from and to angle in degrees (counter-clockwise when
    /// to > from).
    Arc((f32, f32), (f32, f32), f32, f32),
}

use Stroke::{Arc, Line};

fn strokes(letter: char) -> Option<&'static [Stroke]> {
    Some(match letter {
        'A' => &[
            Line(&[(-0.7, -1.0), (0.0, 1.0), (0.7, -1.0)]),
            Line(&[(-0.38, -0.1), (0.38, -0.1)]),
        ],
        'B' => &[
            Line(&[(0.1, 0.0), (-0.6, 0.0), (-0.6, 1.0), (0.1, 1.0)]),
            Arc((0.1, 0.5), (0.5, 0.5), 90.0, -90.0),
            Line(&[(0.1, 0.0), (0.15, 0.0)]),
            Arc((0.15, -0.5), (0.5, 0.5), 90.0, -90.0),
            Line(&[(0.15, -1.0), (-0.6, -1.0), (-0.6, 0.0)]),
        ],
        'C' => &[Arc((0.0, 0.0), (0.8, 1.0), 45.0, 315.0)],
        'D' => &[
            Line(&[(-0.1, 1.0), (-0.6, 1.0), (-0.6, -1.0), (-0.1, -1.0)]),
            Arc((-0.1, 0.0), (0.7, 1.0), 90.0, -90.0),
        ],
        'E' => &[
            Line(&[(0.6, 1.0), (-0.6, 1.0), (-0.6, -1.0), (0.6, -1.0)]),
            Line(&[(-0.6, 0.0), (0.4, 0.0)]),
        ],
        'F' => &[
            Line(&[(0.6, 1.0), (-0.6, 1.0), (-0.6, -1.0)]),
            Line(&[(-0.6, 0.0), (0.4, 0.0)]),
        ],
        'G' => &[
            Arc((0.0, 0.0), (0.8, 1.0), 40.0, 360.0),
            Line(&[(0.8, 0.0), (0.1, 0.0)]),
        ],
        'H' => &[
            Line(&[(-0.6, -1.0), (-0.6, 1.0)]),
            Line(&[(0.6, -1.0), (0.6, 1.0)]),
            Line(&[(-0.6, 0.0), (0.6, 0.0)]),
        ],
        'I' => &[
            Line(&[(0.0, -1.0), (0.0, 1.0)]),
            Line(&[(-0.4, 1.0), (0.4, 1.0)]),
            Line(&[(-0.4, -1.0), (0.4, -1.0)]),
        ],
        'J' => &[
            Line(&[(0.5, 1.0), (0.5, -0.4)]),
            Arc((0.0, -0.4), (0.5, 0.6), 0.0, -180.0),
        ],
        'K' => &[
            Line(&[(-0.6, -1.0), (-0.6, 1.0)]),
            Line(&[(0.6, 1.0), (-0.6, 0.0), (0.6, -1.0)]),
        ],
        'L' => &[Line(&[(-0.6, 1.0), (-0.6, -1.0), (0.6, -1.0)])],
        'M' => &[Line(&[
            (-0.7, -1.0),
            (-0.7, 1.0),
            (0.0, -0.2),
            (0.7, 1.0),
            (0.7, -1.0),
        ])],
        'N' => &[Line(&[(-0.6, -1.0), (-0.6, 1.0), (0.6, -1.0), (0.6, 1.0)])],
        'O' => &[Arc((0.0, 0.0), (0.8, 1.0), 0.0, 360.0)],
        'P' => &[
            Line(&[(-0.6, -1.0), (-0.6, 1.0), (0.1, 1.0)]),
            Arc((0.1, 0.5), (0.5, 0.5), 90.0, -90.0),
            Line(&[(0.1, 0.0), (-0.6, 0.0)]),
        ],
        'Q' => &[
            Arc((0.0, 0.0), (0.8, 1.0), 0.0, 360.0),
            Line(&[(0.3, -0.5), (0.85, -1.15)]),
        ],
        'R' => &[
            Line(&[(-0.6, -1.0), (-0.6, 1.0), (0.1, 1.0)]),
            Arc((0.1, 0.5), (0.5, 0.5), 90.0, -90.0),
            Line(&[(0.1, 0.0), (-0.6, 0.0)]),
            Line(&[(-0.05, 0.0), (0.6, -1.0)]),
        ],
        'S' => &[
            Arc((0.0, 0.5), (0.55, 0.5), 20.0, 270.0),
            Arc((0.0, -0.5), (0.55, 0.5), 90.0, -160.0),
        ],
        'T' => &[
            Line(&[(-0.7, 1.0), (0.7, 1.0)]),
            Line(&[(0.0, 1.0), (0.0, -1.0)]),
        ],
        'U' => &[
            Line(&[(-0.6, 1.0), (-0.6, -0.4)]),
            Arc((0.0, -0.4), (0.6, 0.6), 180.0, 360.0),
            Line(&[(0.6, -0.4), (0.6, 1.0)]),
        ],
        'V' => &[Line(&[(-0.7, 1.0), (0.0, -1.0), (0.7, 1.0)])],
        'W' => &[Line(&[
            (-0.8, 1.0),
            (-0.4, -1.0),
            (0.0, 0.4),
            (0.4, -1.0),
            (0.8, 1.0),
        ])],
        'X' => &[
            Line(&[(-0.7, 1.0), (0.7, -1.0)]),
            Line(&[(0.7, 1.0), (-0.7, -1.0)]),
        ],
        'Y' => &[
            Line(&[(-0.7, 1.0), (0.0, 0.0), (0.7, 1.0)]),
            Line(&[(0.0, 0.0), (0.0, -1.0)]),
        ],
        'Z' => &[Line(&[(-0.6, 1.0), (0.6, 1.0), (-0.6, -1.0), (0.6, -1.0)])],
        _ => return None,
    })
}

/// A straight piece of a stroke, from one point to another.
pub type Segment = ((f32, f32), (f32, f32));

/// Segments of a letter's strokes, arcs cut into 48 chords each.
pub fn segments(letter: char) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for s in strokes(letter)? {
        match *s {
            Line(pts) => out.extend(pts.windows(2).map(|w| (w[0], w[1]))),
            Arc((cx, cy), (rx, ry), from, to) => {
                let n = 48;
                let at = |i: usize| {
                    let a = (from + (to - from) * i as f32 / n as f32).to_radians();
                    (cx + rx * a.cos(), cy + ry * a.sin())
                };
                out.extend((0..n).map(|i| (at(i), at(i + 1))));
            }
        }
    }
    Some(out)
}

/// Which letters tasks are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LetterSet {
    /// The 20 training letters.
    #[default]
    Train,
    /// The 6 held-out letters D, H, N, T, X, Y (out of distribution).
    HeldOut,
    /// All 26.
    All,
}

impl LetterSet {
    /// The letters of the set.
    pub fn letters(self) -> Vec<char> {
        ('A'..='Z')
            .filter(|c| match self {
                LetterSet::Train => !HELD_OUT.contains(c),
                LetterSet::HeldOut => HELD_OUT.contains(c),
                LetterSet::All => true,
            })
            .collect()
    }
}

/// The alphabet task family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlphabetConfig {
    /// Letters to draw tasks from. Default: the training letters.
    pub letters: LetterSet,
    /// Standard deviation of the jitter around the strokes (glyph height 2). Default 0.04.
    pub jitter: f64,
    /// Scale drawn uniformly from [min_scale, max_scale]. Default 0.7..1.3.
    pub min_scale: f64,
    /// See `min_scale`.
    pub max_scale: f64,
    /// Rotation drawn uniformly from ±max_rotation degrees. Default 30.
    pub max_rotation: f64,
    /// Context points per task. Default 128.
    pub context: usize,
    /// Query points per task (the flow-matching targets). Default 128.
    pub queries: usize,
    /// What the queries are trained to predict. Default: the paper's conditional target.
    #[serde(skip_serializing_if = "FlowTarget::is_sample")]
    pub field: FlowTarget,
}

impl Default for AlphabetConfig {
    fn default() -> Self {
        Self {
            letters: LetterSet::Train,
            jitter: 0.04,
            min_scale: 0.7,
            max_scale: 1.3,
            max_rotation: 30.0,
            context: 128,
            queries: 128,
            field: FlowTarget::Sample,
        }
    }
}

/// One sampled letter task.
#[derive(Debug, Clone)]
pub struct LetterTask {
    /// The letter.
    pub letter: char,
    /// Context points `[n, 2]`.
    pub context: Vec<f32>,
    /// Query points `[q, 2]`.
    pub queries: Vec<f32>,
}

impl AlphabetConfig {
    /// Checks the parameters a user may set.
    pub fn validate(&self) -> Result<(), String> {
        let finite = [
            self.jitter,
            self.min_scale,
            self.max_scale,
            self.max_rotation,
        ];
        if finite.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err("jitter, scales and rotation must be finite and >= 0".into());
        }
        if self.min_scale <= 0.0 || self.min_scale > self.max_scale {
            return Err(format!(
                "scales must satisfy 0 < min_scale <= max_scale, got {}..{}",
                self.min_scale, self.max_scale
            ));
        }
        if self.context == 0 || self.queries == 0 {
            return Err("context and queries must be at least 1".into());
        }
        self.field.validate()
    }

    /// Points of `letter` under one random scale and rotation, with jitter.
    pub fn sample_letter<R: Rng + ?Sized>(&self, letter: char, rng: &mut R) -> LetterTask {
        let segs = segments(letter).expect("a capital letter");
        let lengths: Vec<f32> = segs
            .iter()
            .map(|(a, b)| ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt())
            .collect();
        let total: f32 = lengths.iter().sum();
        let scale = rng.random_range(self.min_scale..=self.max_scale) as f32;
        let angle = (rng.random_range(-self.max_rotation..=self.max_rotation) as f32).to_radians();
        let (sin, cos) = angle.sin_cos();
        let jitter = Normal::new(0.0f32, self.jitter as f32).expect("finite jitter");
        let draw = |n: usize, rng: &mut R| {
            let mut pts = Vec::with_capacity(2 * n);
            for _ in 0..n {
                // Uniform along the strokes' total length.
                let mut s = rng.random_range(0.0..total);
                let mut i = 0;
                while i + 1 < lengths.len() && s > lengths[i] {
                    s -= lengths[i];
                    i += 1;
                }
                let ((ax, ay), (bx, by)) = segs[i];
                let f = if lengths[i] > 0.0 {
                    s / lengths[i]
                } else {
                    0.0
                };
                let x = ax + f * (bx - ax) + jitter.sample(rng);
                let y = ay + f * (by - ay) + jitter.sample(rng);
                pts.push(scale * (cos * x - sin * y));
                pts.push(scale * (sin * x + cos * y));
            }
            pts
        };
        let context = draw(self.context, rng);
        let queries = draw(self.queries, rng);
        LetterTask {
            letter,
            context,
            queries,
        }
    }

    /// A task: a letter of the configured set, uniformly.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> LetterTask {
        let letters = self.letters.letters();
        let letter = letters[rng.random_range(0..letters.len())];
        self.sample_letter(letter, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn every_letter_has_strokes_inside_its_box() {
        for c in 'A'..='Z' {
            let segs = segments(c).unwrap_or_else(|| panic!("{c} has no strokes"));
            assert!(!segs.is_empty());
            for ((ax, ay), (bx, by)) in segs {
                for v in [ax, ay, bx, by] {
                    assert!(v.abs() <= 1.2, "{c}: {v}");
                }
            }
        }
        assert!(segments('a').is_none());
    }

    #[test]
    fn held_out_letters_never_appear_in_training_tasks() {
        let cfg = AlphabetConfig::default();
        let mut rng = StdRng::seed_from_u64(5);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let t = cfg.sample(&mut rng);
            assert!(
                !HELD_OUT.contains(&t.letter),
                "{} drawn in training",
                t.letter
            );
            seen.insert(t.letter);
        }
        assert_eq!(seen.len(), 20, "all 20 training letters appear");
        let ood = AlphabetConfig {
            letters: LetterSet::HeldOut,
            ..Default::default()
        };
        for _ in 0..200 {
            assert!(HELD_OUT.contains(&ood.sample(&mut rng).letter));
        }
    }

    #[test]
    fn points_lie_near_the_transformed_strokes() {
        let cfg = AlphabetConfig {
            jitter: 0.0,
            max_rotation: 0.0,
            min_scale: 1.0,
            max_scale: 1.0,
            ..Default::default()
        };
        let t = cfg.sample_letter('L', &mut StdRng::seed_from_u64(1));
        for p in t.context.chunks(2) {
            let on_stem = (p[0] + 0.6).abs() < 1e-4 && p[1] >= -1.0001 && p[1] <= 1.0001;
            let on_foot = (p[1] + 1.0).abs() < 1e-4 && p[0] >= -0.6001 && p[0] <= 0.6001;
            assert!(on_stem || on_foot, "{p:?} is off the strokes of L");
        }
    }
}
