//! The refinement as an animated GIF for slides that must run offline: one frame per step
//! 0..=k, each the plot exactly as the page draws it (rendered through `io::plot_rgba`).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use leptos::prelude::*;

/// A step being shown: resolves to false when it cannot be.
pub type Showing = Pin<Box<dyn Future<Output = bool>>>;

/// How a demo hands its refinement to the animation export.
#[derive(Clone)]
pub struct Frames {
    /// k, the last step (0 until the model loads).
    pub last: RwSignal<usize>,
    /// The step on screen.
    pub current: Rc<dyn Fn() -> usize>,
    /// Shows step s, computing it when needed; resolves to false when it cannot.
    pub show: Rc<dyn Fn(usize) -> Showing>,
}

/// Width of the animation in pixels (the height follows the plot's aspect).
pub const WIDTH: u32 = 640;
/// How long each step stays on screen, in hundredths of a second; the last one stays longer.
const DELAY: u16 = 70;
const LAST_DELAY: u16 = 250;

/// A GIF being assembled frame by frame; every frame has the first one's size.
pub struct Gif {
    encoder: gif::Encoder<Vec<u8>>,
    size: (u32, u32),
}

impl Gif {
    /// A looping animation of `width × height` pixels.
    pub fn new(width: u32, height: u32) -> Result<Self, String> {
        let (w, h) = (
            u16::try_from(width).map_err(|_| "animation too wide")?,
            u16::try_from(height).map_err(|_| "animation too tall")?,
        );
        let mut encoder = gif::Encoder::new(Vec::new(), w, h, &[]).map_err(|e| e.to_string())?;
        encoder
            .set_repeat(gif::Repeat::Infinite)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            encoder,
            size: (width, height),
        })
    }

    /// Adds one frame of RGBA pixels (quantized to its own 256-colour palette).
    pub fn push(&mut self, mut rgba: Vec<u8>, last: bool) -> Result<(), String> {
        let (w, h) = self.size;
        if rgba.len() != (w * h * 4) as usize {
            return Err(format!(
                "a frame of {} bytes for a {w}×{h} animation",
                rgba.len()
            ));
        }
        // Speed 10 of 1..=30: the plots have few colours, so a fast quantizer loses nothing visible.
        let mut frame = gif::Frame::from_rgba_speed(w as u16, h as u16, &mut rgba, 10);
        frame.delay = if last { LAST_DELAY } else { DELAY };
        self.encoder.write_frame(&frame).map_err(|e| e.to_string())
    }

    /// The file's bytes.
    pub fn finish(self) -> Result<Vec<u8>, String> {
        self.encoder.into_inner().map_err(|e| e.to_string())
    }
}
