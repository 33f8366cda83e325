//! The URL's settings: links round-trip, bad parameters are named with what is used instead, and
//! the refinement controls clamp like the URL does.

use super::*;
use amortize::refine::RefineConfig;

/// The settings of `query`, which must read without a warning.
fn clean(query: &str) -> Settings {
    let s = Settings::from_query(query);
    assert!(s.warnings.is_empty(), "{query}: {:?}", s.warnings);
    s
}

/// The settings of `query` and its one warning.
fn warned(query: &str) -> (Settings, String) {
    let s = Settings::from_query(query);
    assert_eq!(s.warnings.len(), 1, "{query}: {:?}", s.warnings);
    let w = s.warnings[0].clone();
    (s, w)
}

/// `s` written as a link (its own points and step) and read back.
fn round_trip(s: &Settings) -> Settings {
    let query = s.view_query(&s.points, s.step);
    let back = clean(&query);
    assert_eq!(&back, s, "{query}");
    back
}

#[test]
fn no_parameters_give_the_defaults() {
    let s = clean("");
    assert_eq!(s, Settings::defaults_with_weights());
    assert_eq!(s.demo, Demo::Regression);
    assert_eq!(s.backend, BackendChoice::Auto);
    assert_eq!(s.weights, DEFAULT_WEIGHTS);
    assert_eq!((s.seed, s.step, s.samples), (0, 0, DEFAULT_SAMPLES));
    assert_eq!((s.steps, s.batch, s.field), (None, None, None));
    assert!(s.bayes && !s.embed && !s.optimal && !s.compare);
    assert_eq!(clean("?"), s);
    // The defaults write the shortest link.
    assert_eq!(s.view_query(&[], 0), "?demo=regression");
}

impl Settings {
    /// What a URL without parameters reads as (the demo's shipped model filled in).
    fn defaults_with_weights() -> Self {
        let mut s = Settings::defaults();
        s.weights = DEFAULT_WEIGHTS.to_string();
        s
    }
}

#[test]
fn regression_views_round_trip() {
    let mut s = clean("?demo=regression&backend=cpu&seed=42&k=5&batch=3&bayes=0&embed=1");
    s.points = vec![(-0.9, 0.5), (0.125, -1.5), (0.0, 3.5), (1.0, -3.5)];
    s.step = 4;
    let back = round_trip(&s);
    assert_eq!(back.backend, BackendChoice::Cpu);
    assert_eq!((back.seed, back.steps, back.batch), (42, Some(5), Some(3)));
    assert!(!back.bayes && back.embed);

    // Side by side, and the other shipped regime.
    let compare = round_trip(&clean("?demo=regression&compare=1&pts=0.1,0.2"));
    assert_eq!(compare.models().len(), 2);
    let implicit = round_trip(&clean("?regime=implicit&backend=webgpu"));
    assert_eq!(implicit.weights, "weights/regression-implicit.amz");
    assert_eq!(implicit.backend, BackendChoice::WebGpu);
    assert!(implicit.view_query(&[], 0).contains("&regime=implicit"));
    // A model of the visitor's stays named by its path.
    let own = round_trip(&clean("?weights=weights/my-model_2.amz"));
    assert_eq!(own.weights, "weights/my-model_2.amz");
    assert_eq!(own.models(), vec!["weights/my-model_2.amz".to_string()]);
}

#[test]
fn generation_views_round_trip() {
    let mut gmm = clean("?demo=gmm&seed=7&samples=64&field=0.3&optimal=1&k=12&batch=16");
    gmm.points = vec![(-12.0, 12.0), (3.25, -4.5), (0.001, 0.0)];
    gmm.step = 12;
    let back = round_trip(&gmm);
    assert_eq!(back.demo, Demo::Gmm);
    assert_eq!(back.weights, "weights/gmm-implicit.amz");
    assert_eq!(
        (back.samples, back.field, back.optimal),
        (64, Some(0.3), true)
    );

    let mut alphabet = clean("?demo=alphabet&backend=cpu&field=1&embed=1");
    alphabet.points = vec![(-2.0, 2.0), (1.5, -0.75)];
    let back = round_trip(&alphabet);
    assert_eq!(back.demo, Demo::Alphabet);
    assert_eq!(back.field, Some(1.0));
}

#[test]
fn train_views_round_trip() {
    let s = round_trip(&clean(
        "?demo=train&preset=small&tasks=64&lr=0.005&regime=implicit&seed=3",
    ));
    assert_eq!(s.train.preset.name, "small");
    assert_eq!(s.train.tasks_per_step(), 64);
    assert_eq!(s.train.peak_lr(), 0.005);
    assert_eq!(s.train.regime, amortize::regime::Regime::Implicit);
    assert_eq!(s.weights, "", "the Train tab trains its own model");
    // The preset's own numbers when the link names none.
    let plain = round_trip(&clean("?demo=train"));
    assert_eq!(plain.train, TrainSettings::default());
    assert_eq!(
        plain.train.tasks_per_step(),
        amortize::meta::PRESETS[0].tasks_per_step
    );
}

#[test]
fn percent_encoded_points_decode() {
    let s = clean("?pts=0.1%2C0.5%3B-0.2%2C1%3B0.3333%2C-3.5");
    assert_eq!(s.points, vec![(0.1, 0.5), (-0.2, 1.0), (0.333, -3.5)]);
    // Written back with three decimals, the encoded link reads the same.
    let written = s.view_query(&s.points, 0);
    assert!(
        written.ends_with("&pts=0.1,0.5;-0.2,1;0.333,-3.5"),
        "{written}"
    );
    assert_eq!(clean(&written).points, s.points);
    assert_eq!(clean("?pts=").points, Vec::new());
}

#[test]
fn unknown_parameters_are_named_and_ignored() {
    let (s, w) = warned("?backend=cpu&color=red");
    assert_eq!(w, "unknown URL parameter \"color\" was ignored");
    assert_eq!(s.backend, BackendChoice::Cpu);
}

#[test]
fn bad_points_are_named_and_the_view_starts_without_points() {
    for (query, message) in [
        (
            "?pts=0.1%2CNaN",
            "pts: point 1: coordinates must be finite numbers; starting without points",
        ),
        (
            "?pts=0,0;5,0",
            "pts: point 2 (5, 0) is outside the plot (x in [-1, 1], y in [-3.5, 3.5]); starting without points",
        ),
        (
            "?demo=gmm&pts=40,0",
            "pts: point 1 (40, 0) is outside the plot (x in [-12, 12], y in [-12, 12]); starting without points",
        ),
        (
            "?pts=0.5",
            "pts: point 1: expected x,y, got \"0.5\"; starting without points",
        ),
        (
            "?pts=0.5,y",
            "pts: point 1: \"y\" is not a number; starting without points",
        ),
    ] {
        let (s, w) = warned(query);
        assert_eq!(w, message, "{query}");
        assert!(s.points.is_empty(), "{query}");
    }
    let many: Vec<String> = (0..300)
        .map(|i| format!("{},0", i as f64 / 300.0))
        .collect();
    let (s, w) = warned(&format!("?pts={}", many.join(";")));
    assert_eq!(w, "pts: 300 points; at most 256; starting without points");
    assert!(s.points.is_empty());
}

#[test]
fn bad_numbers_are_named_with_what_is_used_instead() {
    let defaults = Settings::defaults_with_weights();
    for (query, message) in [
        (
            "k=0",
            "k=\"0\" is not a whole number in 1..=100; using the model's k",
        ),
        (
            "k=101",
            "k=\"101\" is not a whole number in 1..=100; using the model's k",
        ),
        (
            "k=-3",
            "k=\"-3\" is not a whole number in 1..=100; using the model's k",
        ),
        (
            "batch=lots",
            "batch=\"lots\" is not a whole number in 1..=256; using the model's mini-batch size",
        ),
        (
            "batch=257",
            "batch=\"257\" is not a whole number in 1..=256; using the model's mini-batch size",
        ),
        (
            "step=99999999999",
            "step=\"99999999999\" is not a whole number in 0..=100; showing step 0",
        ),
        (
            "samples=8",
            "samples=\"8\" is not a whole number in 16..=2048; using 512",
        ),
        ("seed=abc", "seed=\"abc\" is not a whole number; using 0"),
        ("seed=-1", "seed=\"-1\" is not a whole number; using 0"),
        (
            "field=2",
            "field=\"2\" is not a flow time in [0, 1]; no field arrows",
        ),
        (
            "field=NaN",
            "field=\"NaN\" is not a flow time in [0, 1]; no field arrows",
        ),
        ("bayes=maybe", "bayes=\"maybe\" is not 0 or 1; ignored"),
        ("embed=yes", "embed=\"yes\" is not 0 or 1; ignored"),
    ] {
        let (mut s, w) = warned(&format!("?{query}"));
        assert_eq!(w, message, "{query}");
        s.warnings.clear();
        assert_eq!(s, defaults, "{query}: the defaults stay");
    }
}

#[test]
fn bad_choices_are_named_with_what_is_used_instead() {
    let defaults = Settings::defaults_with_weights();
    for (query, message) in [
        (
            "backend=gpu",
            "backend=\"gpu\" is not one of auto, webgpu, cpu; using auto",
        ),
        (
            "demo=tetris",
            "demo=\"tetris\" is not one of regression, gmm, alphabet, train; showing regression",
        ),
        (
            "regime=bogus",
            "regime=\"bogus\" has no shipped model for this demo (shipped: parametric, implicit); using parametric",
        ),
    ] {
        let (mut s, w) = warned(&format!("?{query}"));
        assert_eq!(w, message, "{query}");
        s.warnings.clear();
        assert_eq!(s, defaults, "{query}: the defaults stay");
    }
    let (s, w) = warned("?demo=gmm&compare=1");
    assert_eq!(w, "compare=1: the gmm demo ships one regime only");
    assert!(!s.compare);
    let (s, w) = warned("?regime=implicit&weights=weights/mine.amz");
    assert_eq!(
        w,
        "regime=\"implicit\" and weights= both given; using the weights"
    );
    assert_eq!(s.weights, "weights/mine.amz");
}

#[test]
fn unsafe_weights_paths_fall_back_to_the_shipped_model() {
    for path in [
        "../x",
        "weights/../x.amz",
        "http://evil.example/x.amz",
        "https%3A%2F%2Fevil.example%2Fx.amz",
        "weights//x.amz",
        "/weights/x.amz",
        "weights/x.bin",
        "weights/x%20y.amz",
    ] {
        let (s, w) = warned(&format!("?weights={path}"));
        assert!(
            w.starts_with("weights=\"")
                && w.ends_with("\" must be a .amz file under weights/; using the shipped model"),
            "{path}: {w}"
        );
        assert_eq!(s.weights, DEFAULT_WEIGHTS, "{path}");
    }
    let (_, w) = warned("?weights=..%2Fx");
    assert_eq!(
        w,
        "weights=\"../x\" must be a .amz file under weights/; using the shipped model"
    );
}

#[test]
fn the_train_tab_names_what_it_ignores() {
    let (s, w) = warned("?demo=train&preset=huge");
    assert_eq!(
        w,
        "preset=\"huge\" is not one of tiny, small, shipped; using tiny"
    );
    assert_eq!(s.train.preset, amortize::meta::PRESETS[0]);
    let (s, w) = warned("?demo=train&tasks=0");
    assert_eq!(
        w,
        "tasks=\"0\" is not a whole number in 1..=256; using the preset's"
    );
    assert_eq!(s.train.tasks, None);
    let (s, w) = warned("?demo=train&lr=1");
    assert_eq!(
        w,
        "lr=\"1\" is not a learning rate in (0, 0.1]; using the preset's"
    );
    assert_eq!(s.train.lr, None);
    let (s, w) = warned("?demo=train&regime=explicit");
    assert_eq!(
        w,
        "regime=\"explicit\": the Train tab trains parametric or implicit; training parametric"
    );
    assert_eq!(s.train.regime, amortize::regime::Regime::Parametric);
    let (s, w) = warned("?demo=train&compare=1&weights=weights/x.amz");
    assert_eq!(
        w,
        "compare=, weights= ignored: the Train tab trains a model of its own"
    );
    assert!(!s.compare && s.weights.is_empty());
}

#[test]
fn several_problems_are_all_named() {
    let s = Settings::from_query("?k=0&batch=lots&color=red&backend=gpu");
    let all = s.warnings.join(" · ");
    for word in ["k=", "batch=", "\"color\"", "backend="] {
        assert!(all.contains(word), "{word}: {all}");
    }
    assert_eq!(s.warnings.len(), 4);
}

#[test]
fn tab_links_keep_the_backend_and_the_seed_only() {
    let mut s =
        clean("?demo=regression&backend=cpu&seed=7&k=5&batch=2&embed=1&bayes=0&regime=implicit");
    s.points = vec![(0.1, 0.2)];
    assert_eq!(s.tab_query(Demo::Gmm), "?demo=gmm&backend=cpu&seed=7");
    assert_eq!(s.tab_query(Demo::Train), "?demo=train&backend=cpu&seed=7");
    // The defaults are left out.
    assert_eq!(
        clean("?demo=gmm").tab_query(Demo::Alphabet),
        "?demo=alphabet"
    );
    assert_eq!(
        clean("?backend=webgpu").tab_query(Demo::Regression),
        "?demo=regression&backend=webgpu"
    );
    // A tab link opens that demo with the backend and seed, and nothing else of this view.
    let opened = clean(&s.tab_query(Demo::Alphabet));
    assert_eq!(opened.demo, Demo::Alphabet);
    assert_eq!((opened.backend, opened.seed), (BackendChoice::Cpu, 7));
    assert_eq!((opened.steps, opened.batch), (None, None));
    assert!(opened.points.is_empty() && !opened.embed && opened.bayes);
}

#[test]
fn the_controls_clamp_like_the_url_and_the_link_follows() {
    let mut s = clean("?backend=cpu&k=3&batch=4&pts=0.1,0.2");
    assert_eq!(s.set(Control::Steps(5)), "5");
    assert_eq!(s.set(Control::Batch(2)), "2");
    assert_eq!(s.set(Control::Seed(7)), "7");
    let back = round_trip(&s);
    assert_eq!((back.steps, back.batch, back.seed), (Some(5), Some(2), 7));
    let link = s.view_query(&s.points, 0);
    assert!(link.contains("k=5") && link.contains("batch=2") && link.contains("seed=7"));
    // Out of range: clamped.
    assert_eq!(s.set(Control::Steps(0)), "1");
    assert_eq!(s.steps, Some(1));
    assert_eq!(s.set(Control::Steps(MAX_STEP + 1)), MAX_STEP.to_string());
    assert_eq!(s.steps, Some(MAX_STEP));
    assert_eq!(s.set(Control::Batch(0)), "1");
    assert_eq!(s.set(Control::Batch(10_000)), MAX_BATCH.to_string());
    assert_eq!(s.batch, Some(MAX_BATCH));
    assert_eq!(s.set(Control::Seed(u64::MAX)), u64::MAX.to_string());
    round_trip(&s);
}

#[test]
fn the_links_k_and_batch_override_the_models() {
    let trained = RefineConfig::new();
    let mut r = trained.clone();
    clean("").apply_refine(&mut r);
    assert_eq!((r.steps, r.batch_size), (trained.steps, trained.batch_size));
    let mut r = trained.clone();
    clean("?k=3").apply_refine(&mut r);
    assert_eq!((r.steps, r.batch_size), (3, trained.batch_size));
    let mut r = trained.clone();
    clean("?k=3&batch=4").apply_refine(&mut r);
    assert_eq!((r.steps, r.batch_size), (3, 4));
}
