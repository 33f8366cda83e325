//! The `amortize` command as a user runs it: a tiny training run end to end, and bad input.

use std::path::Path;
use std::process::{Command, Output};

fn amortize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amortize"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

const TINY: &[&str] = &[
    "--steps",
    "6",
    "--tasks-per-step",
    "4",
    "--d-model",
    "16",
    "--n-heads",
    "2",
    "--n-layers",
    "1",
    "--d-ff",
    "32",
    "--eval-tasks",
    "8",
    "--eval-every",
    "3",
    "--checkpoint-every",
    "3",
    "--device",
    "cpu",
    "--seed",
    "5",
];

fn train_tiny(out: &Path) {
    let mut args = vec!["train", "--out", out.to_str().unwrap()];
    args.extend_from_slice(TINY);
    let o = amortize(&args);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
}

#[test]
fn train_eval_export_end_to_end_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    train_tiny(&a);
    train_tiny(&b);
    let log = std::fs::read_to_string(a.join("log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert!(lines[2]["eval"]["model"].is_array(), "evaluation at step 3");
    assert!(lines
        .iter()
        .all(|l| l["loss"].as_f64().unwrap().is_finite()));
    // Same seed, same losses.
    let losses = |p: &Path| -> Vec<f64> {
        std::fs::read_to_string(p.join("log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(losses(&a), losses(&b));

    let weights = a.join("model.amz");
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--tasks",
        "20",
        "--device",
        "cpu",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    for row in [
        "amortizer, 1 step ",
        "amortizer, 5 steps",
        "amortizer, 10 steps",
        "Bayes posterior mean",
        "least squares",
    ] {
        assert!(out.contains(row), "missing {row:?} in {out}");
    }
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--tasks",
        "20",
        "--device",
        "cpu",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert!(report["bayes"].as_f64().unwrap() > 0.0);

    let export_dir = dir.path().join("public");
    let o = amortize(&[
        "export",
        "--weights",
        weights.to_str().unwrap(),
        "--tasks",
        "20",
        "--device",
        "cpu",
        "--name",
        "tiny",
        "--dir",
        export_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let card = std::fs::read_to_string(export_dir.join("tiny.md")).unwrap();
    assert!(
        card.contains("amortize train") && card.contains("Bayes posterior mean"),
        "{card}"
    );
    let bytes = std::fs::read(export_dir.join("tiny.amz")).unwrap();
    let bundle = amortize::ModelBundle::decode(&bytes).unwrap();
    assert!(bundle.header.provenance["eval"]["bayes"].is_number());
}

#[test]
fn damaged_weights_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    train_tiny(&dir.path().join("run"));
    let good = std::fs::read(dir.path().join("run/model.amz")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    let cases = [
        (write("corrupt.amz", &flipped), "corrupt"),
        (
            write("truncated.amz", &good[..good.len() - 100]),
            "truncated",
        ),
        (write("empty.amz", b""), "not an amortize weights file"),
        (
            write("text.amz", b"hello world, not weights"),
            "not an amortize weights file",
        ),
    ];
    for (path, needle) in cases {
        let o = amortize(&[
            "eval",
            "--weights",
            &path,
            "--device",
            "cpu",
            "--tasks",
            "5",
        ]);
        assert_clean_failure(&o, needle);
    }
    let o = amortize(&[
        "eval",
        "--weights",
        "/nonexistent/model.amz",
        "--device",
        "cpu",
    ]);
    assert_clean_failure(&o, "reading /nonexistent/model.amz");
}

#[test]
fn bad_flags_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["train", "--out", out, "--d-model", "30", "--n-heads", "4"],
            "n_heads",
        ),
        (&["train", "--out", out, "--lr", "NaN"], "lr"),
        (&["train", "--out", out, "--features", "0"], "features"),
        (&["train", "--out", out, "--k", "0"], "steps"),
        (&["train", "--out", out, "--steps", "many"], "--steps"),
    ];
    for (args, needle) in cases {
        let o = amortize(args);
        assert_clean_failure(&o, needle);
    }
}
