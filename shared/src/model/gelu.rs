//! The exact (erf) GELU of every feed-forward layer and token encoder, fused on the CPU.
//!
//! Burn's `flex` backend evaluates the GELU and its derivative one element at a time through
//! libm's scalar `erff`, about an eighth of a CPU meta-step. With the `flex` feature this module
//! adds a backend extension, [`FusedGelu`], whose `flex` kernels compute Φ(x) and φ(x) from one
//! shared exponential with branch-free arithmetic the compiler vectorises: erf by Abramowitz and
//! Stegun 7.1.26 (absolute error below 1.5·10⁻⁷; PyTorch's vectorised CPU `erf` uses the same
//! formula), so the GELU and its derivative are within a few 10⁻⁷ times max(1, |x|) of the exact
//! ones (a test checks this against a double-precision erf). Under autodiff the extension records its own
//! backward step, which calls the fused derivative. Every other device (wgpu, WebGPU) keeps
//! Burn's own GELU, and so does a build without the feature.

use burn::tensor::Tensor;

/// The exact GELU, `x Φ(x)`, of every element: the fused kernels on a `flex` device (with or
/// without autodiff), Burn's `activation::gelu` elsewhere.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if fused::applies(&x) {
        return fused::gelu(x);
    }
    burn::tensor::activation::gelu(x)
}

/// The scalar kernels: one exponential gives both the normal tail and the density.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
pub(crate) mod kernel {
    use core::f32::consts::FRAC_1_SQRT_2;

    /// 1 / √(2π).
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    // Abramowitz and Stegun 7.1.26.
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;

    /// `e^x` for `x ≤ 0` without branches or table lookups (Cephes' `expf` polynomial after
    /// the range reduction `x = n ln 2 + r`); below −87 it returns e^−87 ≈ 1.6·10⁻³⁸, which
    /// every caller multiplies by a number of order one and adds to 1 or a finite value.
    #[inline(always)]
    pub fn exp_nonpositive(x: f32) -> f32 {
        const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
        let x = x.max(-87.0);
        let t = x * core::f32::consts::LOG2_E + MAGIC;
        let n = t - MAGIC;
        let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
        let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
            * r
            + 0.166_666_65)
            * r
            + 0.5;
        let e_r = p * r * r + r + 1.0;
        // n sits in the low mantissa bits of t; 2ⁿ is (n + 127) in the exponent field.
        let n_int = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
        e_r * f32::from_bits((n_int.wrapping_add(127) << 23) as u32)
    }

    /// The standard normal's CDF Φ(x) and density φ(x).
    #[inline(always)]
    pub fn cdf_pdf(x: f32) -> (f32, f32) {
        let a = x.abs() * FRAC_1_SQRT_2;
        let e = exp_nonpositive(-(a * a)); // e^(−x²/2)
        let t = 1.0 / (1.0 + P * a);
        let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
        // erfc(|x|/√2) / 2, the tail beyond |x|; the lower tail is taken as it is, not as 1 − Φ.
        let tail = 0.5 * poly * e;
        let cdf = if x < 0.0 { tail } else { 1.0 - tail };
        (cdf, INV_SQRT_2PI * e)
    }

    /// GELU: x Φ(x).
    #[inline(always)]
    pub fn gelu(x: f32) -> f32 {
        x * cdf_pdf(x).0
    }

    /// The GELU's derivative times the incoming gradient: g (Φ(x) + x φ(x)).
    #[inline(always)]
    pub fn gelu_backward(x: f32, grad: f32) -> f32 {
        let (cdf, pdf) = cdf_pdf(x);
        grad * (cdf + x * pdf)
    }
}

#[cfg(feature = "flex")]
mod fused {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
    use burn::backend::ops::ActivationOps;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::TensorMetadata;
    use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, DispatchDevice, Flex};
    use burn::tensor::{DType, Tensor};

    use super::{flex_loops, kernel};

    /// The fused GELU as a backend operation, with its derivative.
    #[backend_extension(Flex, Autodiff)]
    pub trait FusedGelu: Backend {
        /// x Φ(x), elementwise.
        fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
        /// grad · (Φ(x) + x φ(x)), elementwise.
        fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
    }

    impl FusedGelu for Flex {
        fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
            if x.dtype() != DType::F32 {
                return <Flex as ActivationOps<Flex>>::gelu(x);
            }
            flex_loops::map(x, kernel::gelu)
        }

        fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
            if x.dtype() != DType::F32 || grad.dtype() != DType::F32 || x.shape() != grad.shape() {
                return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
            }
            flex_loops::zip(x, grad, kernel::gelu_backward)
        }
    }

    /// The backward step of [`FusedGelu::fused_gelu`]: its state is the input.
    #[derive(Debug)]
    struct GeluStep;

    impl<B: FusedGelu> Backward<B, 1> for GeluStep {
        type State = FloatTensor<B>;

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let input = ops.state;
            unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                B::fused_gelu_backward(input, grad)
            });
        }
    }

    impl<B: FusedGelu, C: CheckpointStrategy> FusedGelu for Autodiff<B, C> {
        fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
            let node = x.node();
            match GeluStep.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let input = x.into_primitive();
                    prep.finish(input.clone(), B::fused_gelu(input))
                }
                OpsKind::UnTracked(prep) => prep.finish(B::fused_gelu(x.into_primitive())),
            }
        }

        fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
            // Only ever called on the inner backend by `GeluStep`; not differentiated again.
            FloatTensor::<Self>::new(B::fused_gelu_backward(
                x.into_primitive(),
                grad.into_primitive(),
            ))
        }
    }

    /// Whether `x` lives on a `flex` device (autodiff or not), where the extension runs.
    pub fn applies<const D: usize>(x: &Tensor<D>) -> bool {
        matches!(
            x.device().as_dispatch().clone().inner(),
            DispatchDevice::Flex(_)
        )
    }

    pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        Tensor::from_dispatch(<Dispatch as FusedGelu>::fused_gelu(x.into_dispatch()))
    }
}

/// Elementwise loops over `f32` flex tensors, compiled for the widest vector unit the CPU has.
#[cfg(feature = "flex")]
mod flex_loops {
    use burn::backend::TensorMetadata;
    use burn::tensor::{Bytes, DType};
    use burn_flex::{FlexTensor, Layout};

    /// `x` as a contiguous tensor starting at the beginning of its storage.
    fn dense(x: FlexTensor) -> FlexTensor {
        if x.layout().is_contiguous() && x.layout().start_offset() == 0 {
            x
        } else {
            x.to_contiguous()
        }
    }

    /// `f` of every element: in place when `x` owns its storage, else into a new tensor.
    pub fn map(x: FlexTensor, f: impl Fn(f32) -> f32 + Copy) -> FlexTensor {
        let mut x = dense(x);
        let n = x.layout().num_elements();
        if x.is_unique() {
            let values: &mut [f32] = &mut x.storage_mut()[..n];
            wide(|| values.iter_mut().for_each(|v| *v = f(*v)));
            return x;
        }
        let src: &[f32] = &x.storage()[..n];
        let mut out = Vec::with_capacity(n);
        let slots = &mut out.spare_capacity_mut()[..n];
        wide(|| {
            slots.iter_mut().zip(src).for_each(|(o, &v)| {
                o.write(f(v));
            })
        });
        // SAFETY: the loop above wrote all n elements.
        unsafe { out.set_len(n) };
        FlexTensor::new(
            Bytes::from_elems(out),
            Layout::contiguous(x.shape()),
            DType::F32,
        )
    }

    /// `f(a, b)` of every pair of elements of two tensors of one shape, written over `b` or
    /// `a` when one of them owns its storage, else into a new tensor.
    pub fn zip(a: FlexTensor, b: FlexTensor, f: impl Fn(f32, f32) -> f32 + Copy) -> FlexTensor {
        let (mut a, mut b) = (dense(a), dense(b));
        let n = a.layout().num_elements();
        if b.is_unique() {
            let (src, dst): (&[f32], &mut [f32]) = (&a.storage()[..n], &mut b.storage_mut()[..n]);
            wide(|| dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f(s, *d)));
            return b;
        }
        if a.is_unique() {
            let (src, dst): (&[f32], &mut [f32]) = (&b.storage()[..n], &mut a.storage_mut()[..n]);
            wide(|| dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f(*d, s)));
            return a;
        }
        let (sa, sb): (&[f32], &[f32]) = (&a.storage()[..n], &b.storage()[..n]);
        let mut out = Vec::with_capacity(n);
        let slots = &mut out.spare_capacity_mut()[..n];
        wide(|| {
            slots
                .iter_mut()
                .zip(sa.iter().zip(sb))
                .for_each(|(o, (&x, &y))| {
                    o.write(f(x, y));
                })
        });
        // SAFETY: the loop above wrote all n elements.
        unsafe { out.set_len(n) };
        FlexTensor::new(
            Bytes::from_elems(out),
            Layout::contiguous(a.shape()),
            DType::F32,
        )
    }

    /// Runs `body` compiled with AVX-512 or AVX2 enabled where the CPU has them (detected at
    /// run time), so that its loop is vectorised 16 or 8 lanes wide; as it is elsewhere.
    #[inline(always)]
    fn wide(body: impl FnOnce()) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, the only feature `avx512` enables beyond
                // the baseline.
                return unsafe { avx512(body) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA, the features `avx2` enables.
                return unsafe { avx2(body) };
            }
        }
        body()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(body: impl FnOnce()) {
        body()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(body: impl FnOnce()) {
        body()
    }
}

#[cfg(test)]
mod tests {
    use super::kernel;

    /// erf in double precision: the Maclaurin series below 3, erfc's continued fraction
    /// beyond, both far more accurate than `f32`.
    fn erf64(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let mut sum = 0.0;
            let mut term = x;
            let mut n = 0.0;
            while term.abs() > 1e-17 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc by Lentz's continued fraction.
            let z = x.abs();
            let mut f = z;
            for k in (1..60).rev() {
                f = z + (k as f64 / 2.0) / f;
            }
            let erfc = (-z * z).exp() / (f * std::f64::consts::PI.sqrt());
            (1.0 - erfc).copysign(x)
        }
    }

    fn exact(x: f64) -> (f64, f64) {
        let cdf = 0.5 * (1.0 + erf64(x / std::f64::consts::SQRT_2));
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (x * cdf, cdf + x * pdf)
    }

    #[test]
    fn kernels_match_the_exact_gelu_and_its_derivative() {
        let mut worst = (0.0f64, 0.0f64);
        let mut x = -12.0f32;
        while x <= 12.0 {
            let (g, d) = exact(x as f64);
            let scale = 1.0f64.max((x as f64).abs());
            worst.0 = worst.0.max((kernel::gelu(x) as f64 - g).abs() / scale);
            worst.1 = worst
                .1
                .max((kernel::gelu_backward(x, 1.0) as f64 - d).abs() / scale);
            x += 0.001_3;
        }
        assert!(worst.0 < 4e-7, "GELU error {:e}", worst.0);
        assert!(worst.1 < 4e-7, "derivative error {:e}", worst.1);
    }

    #[test]
    fn exp_matches_std_over_its_range() {
        let mut x = -87.0f32;
        while x <= 0.0 {
            let rel = ((kernel::exp_nonpositive(x) - x.exp()) / x.exp()).abs();
            assert!(rel < 5e-7, "e^{x}: relative error {rel:e}");
            x += 0.017;
        }
        assert!(kernel::exp_nonpositive(-1e30) < 2e-38);
        assert_eq!(kernel::exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn special_values() {
        assert!(kernel::gelu(f32::NAN).is_nan());
        assert!(kernel::gelu_backward(f32::NAN, 1.0).is_nan());
        assert_eq!(kernel::gelu(f32::INFINITY), f32::INFINITY);
        assert_eq!(kernel::gelu(0.0), 0.0);
        assert_eq!(kernel::gelu_backward(0.0, 2.0), 1.0);
        assert!(kernel::gelu(-30.0).abs() < 1e-37);
        assert_eq!(kernel::gelu_backward(30.0, 1.0), 1.0);
    }

    /// On a flex device the fused op runs (forward and, under autodiff, backward) and agrees
    /// with Burn's own exact GELU: values and input gradients, on seeded normal draws with a
    /// wide spread, with and without autodiff.
    #[cfg(feature = "flex")]
    #[test]
    fn the_fused_op_agrees_with_burns_gelu_and_its_gradient() {
        use burn::tensor::{Device, Distribution, Tensor};

        let device = Device::flex();
        device.seed(11);
        let x = Tensor::<2>::random([64, 257], Distribution::Normal(0.0, 3.0), &device);
        let w = Tensor::<2>::random([64, 257], Distribution::Normal(0.0, 1.0), &device);
        assert!(super::fused::applies(&x));
        // Errors are judged against max(1, |x|), times max(1, |w|) for gradients.
        let x_scale = x.clone().abs().clamp_min(1.0);
        let w_scale = x_scale.clone() * w.clone().abs().clamp_min(1.0);
        let close = |a: Tensor<2>, b: Tensor<2>, scale: &Tensor<2>, what: &str| {
            let err: f32 = ((a - b).abs() / scale.clone()).max().into_scalar();
            assert!(err < 4e-7, "{what}: error {err:e}");
        };
        close(
            super::gelu(x.clone()),
            burn::tensor::activation::gelu(x.clone()),
            &x_scale,
            "values",
        );

        // A transposed view (not contiguous) and a shared input (not its storage's only
        // owner) take the copying paths.
        let xt = x.clone().transpose();
        let tt = x_scale.clone().transpose();
        close(
            super::gelu(xt.clone()),
            burn::tensor::activation::gelu(xt),
            &tt,
            "transposed",
        );
        let shared = x.clone();
        close(
            super::gelu(shared.clone()),
            burn::tensor::activation::gelu(shared),
            &x_scale,
            "shared",
        );

        let ad = device.clone().autodiff();
        let grad_of = |fused: bool| {
            let xa = Tensor::<2>::from_data(x.to_data(), &ad).require_grad();
            let y = if fused {
                super::gelu(xa.clone())
            } else {
                burn::tensor::activation::gelu(xa.clone())
            };
            let value = y.clone().inner();
            let grads = (y * Tensor::from_data(w.to_data(), &ad)).sum().backward();
            (value, xa.grad(&grads).expect("the input has a gradient"))
        };
        let (fused_value, fused_grad) = grad_of(true);
        let (burn_value, burn_grad) = grad_of(false);
        close(fused_value, burn_value, &x_scale, "values under autodiff");
        close(fused_grad, burn_grad, &w_scale, "input gradients");
    }
}
