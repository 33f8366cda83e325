//! The names of a setting's choices (regime, signal, state form, …): each enum derives its
//! kebab-case names (`strum`), and one parser reads them back for the command line, config files
//! and links, naming every choice when a name is none of them.

use strum::{IntoEnumIterator, VariantNames};

/// `FromStr` for a choice enum through [`parse`]: `from_name!(Regime, "regime")`.
macro_rules! from_name {
    ($t:ty, $what:literal) => {
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $crate::choice::parse($what, s)
            }
        }
    };
}
pub(crate) use from_name;

/// The choice of `T` named `s`, or "unknown {what} "s" (expected a, b or c)".
pub fn parse<T>(what: &str, s: &str) -> Result<T, String>
where
    T: IntoEnumIterator + VariantNames + std::fmt::Display,
{
    T::iter().find(|v| v.to_string() == s).ok_or_else(|| {
        let expected = match T::VARIANTS.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => T::VARIANTS.join(""),
        };
        format!("unknown {what} {s:?} (expected {expected})")
    })
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::flow::OdeMethod;
    use crate::refine::StepWeighting;
    use crate::regime::explicit::LatentReadout;
    use crate::regime::implicit::StateForm;
    use crate::regime::Regime;
    use crate::signal::Signal;
    use strum::IntoEnumIterator;

    /// Every choice reads back from its name, which is also its serde name (config files and
    /// weights headers), and a name that is none of them is refused with the whole list.
    #[test]
    fn names_round_trip_and_bad_names_list_the_choices() {
        fn check<T>(what: &str, list: &str)
        where
            T: IntoEnumIterator
                + strum::VariantNames
                + std::fmt::Display
                + std::str::FromStr<Err = String>
                + serde::Serialize
                + PartialEq
                + std::fmt::Debug,
        {
            for v in T::iter() {
                let name = v.to_string();
                assert_eq!(name.parse::<T>().unwrap(), v);
                assert_eq!(serde_json::to_value(&v).unwrap(), name.as_str());
            }
            let err = "nope".parse::<T>().unwrap_err();
            assert_eq!(err, format!("unknown {what} \"nope\" (expected {list})"));
        }
        check::<Regime>("regime", "parametric, explicit or implicit");
        check::<Signal>(
            "signal",
            "observations, gradients, both, point-gradients or both-point-gradients",
        );
        check::<StateForm>("state form", "logits, softmax or pre-mlp");
        check::<LatentReadout>("latent readout", "concat or bilinear");
        check::<StepWeighting>("step weighting", "mean or balanced");
        check::<OdeMethod>("ODE method", "euler, heun or rk4");
        // The paper's short names of two signals.
        assert_eq!(
            parse::<Signal>("signal", "observations"),
            Ok(Signal::Observations)
        );
        assert_eq!("data".parse::<Signal>(), Ok(Signal::Observations));
        assert_eq!("grad".parse::<Signal>(), Ok(Signal::Gradients));
    }
}
