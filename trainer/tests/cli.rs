//! The `amortize` command as a user runs it: a tiny training run end to end, and bad input.

use std::path::Path;
use std::process::{Command, Output};

fn amortize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amortize"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The first report of `eval --json`.
fn first_report(o: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    v["reports"][0].clone()
}

/// Exports the model at `weights` into `dir` as `name` (scored on 8 tasks) and returns its card.
fn export_card(weights: &Path, dir: &Path, name: &str) -> String {
    let o = amortize(&[
        "export",
        "--weights",
        weights.to_str().unwrap(),
        "--tasks",
        "8",
        "--device",
        "cpu",
        "--dir",
        dir.to_str().unwrap(),
        "--name",
        name,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::read_to_string(dir.join(format!("{name}.md"))).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The rows of the Markdown tables in `text`, each as its trimmed cells (separator rows left out).
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|-"))
        .map(|l| {
            let inner = l.trim().trim_start_matches('|').trim_end_matches('|');
            inner.split('|').map(|c| c.trim().to_string()).collect()
        })
        .collect()
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
    // Each step beside Bayes and least squares on the points it has read: k = 10 steps of 8
    // fresh points.
    let rows = table_rows(&out);
    for (step, read) in [("1", "8"), ("5", "40"), ("10", "80")] {
        assert!(
            rows.iter().any(|r| r[0] == step && r[1] == read),
            "no row for step {step} reading {read} points in {out}"
        );
    }
    for row in [
        "Bayes posterior mean on the points read",
        "least squares on them",
        "On all 80 context points",
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
    let report = first_report(&o);
    assert!(report["bayes"].as_f64().unwrap() > 0.0);

    // Another mini-batch size than the trained one: the report says which, and bad sizes fail.
    let at = |b: &str| {
        amortize(&[
            "eval",
            "--weights",
            weights.to_str().unwrap(),
            "--tasks",
            "20",
            "--device",
            "cpu",
            "--batch-size",
            b,
        ])
    };
    let o = at("3");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("mini-batches of 3,"), "{out}");
    assert!(!out.contains("mini-batches of 8,"), "{out}");
    for bad in ["0", "100000"] {
        assert_clean_failure(&at(bad), "--batch-size must be in 1..=");
    }
    // Over more tasks than one evaluation chunk (250), another mini-batch size still scores the
    // same tasks: the baselines, which see only the tasks, agree to the last digit.
    let baselines = |b: &str| {
        let o = amortize(&[
            "eval",
            "--weights",
            weights.to_str().unwrap(),
            "--tasks",
            "300",
            "--device",
            "cpu",
            "--batch-size",
            b,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let r = first_report(&o);
        (
            r["bayes"].as_f64().unwrap(),
            r["least_squares"].as_f64().unwrap(),
        )
    };
    assert_eq!(baselines("3"), baselines("8"));

    // Two models in one paper-style table, with test-time Adam, SGD and MAML beside them.
    let other = b.join("model.amz");
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        other.to_str().unwrap(),
        "--tasks",
        "20",
        "--test-time-tasks",
        "6",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reports"].as_array().unwrap().len(), 2);
    let table = &v["table"];
    assert_eq!(table["columns"][0], "function-regression (ID)");
    assert_eq!(
        table["rows"].as_array().unwrap().len(),
        3,
        "steps 1, 5, 10: {table}"
    );
    let runs = v["reports"][0]["test_time"]["runs"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        5,
        "Adam and SGD from zero and from the prior, SGD from a MAML-learned θ₀"
    );
    assert_eq!(runs[4]["init"], "maml");
    assert_eq!(runs[4]["optimizer"], "sgd");
    assert!(
        v["reports"][0]["test_time"]["maml_meta_seconds"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    for r in runs {
        let loss = r["loss"].as_array().unwrap();
        let (start, end) = (
            loss[0][1].as_f64().unwrap(),
            loss.last().unwrap()[1].as_f64().unwrap(),
        );
        assert!(
            end.is_finite() && end < start,
            "test-time optimisation lowers the loss: {r}"
        );
        assert!(r["seconds"].as_f64().unwrap() > 0.0);
    }

    // Training curves and error per step, as SVG and PNG.
    for ext in ["svg", "png"] {
        let img = dir.path().join(format!("curves.{ext}"));
        let o = amortize(&[
            "plot",
            "--run",
            a.to_str().unwrap(),
            "--out",
            img.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let bytes = std::fs::read(&img).unwrap();
        if ext == "svg" {
            let svg = String::from_utf8(bytes).unwrap();
            assert!(
                svg.contains("<svg") && svg.contains("meta-training step"),
                "{svg}"
            );
            assert!(
                svg.contains("Bayes posterior mean"),
                "the Bayes line is drawn"
            );
        } else {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            assert!(bytes.len() > 5_000, "a real image");
        }
    }
    let o = amortize(&["plot", "--run", a.to_str().unwrap(), "--out", "x.gif"]);
    assert_clean_failure(&o, "--out");

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
    let cases: [(&[&str], &str); 9] = [
        (
            &["train", "--out", out, "--d-model", "30", "--n-heads", "4"],
            "n_heads",
        ),
        (&["train", "--out", out, "--lr", "NaN"], "lr"),
        (&["train", "--out", out, "--features", "0"], "features"),
        (&["train", "--out", out, "--k", "0"], "steps"),
        (&["train", "--out", out, "--steps", "many"], "--steps"),
        (
            &["train", "--out", out, "--step-weighting", "log"],
            "--step-weighting",
        ),
        (
            &["train", "--out", out, "--full-context-share", "1.5"],
            "full_context_share must be in [0, 1]",
        ),
        (
            &["train", "--out", out, "--full-context-share", "NaN"],
            "full_context_share must be in [0, 1]",
        ),
        (
            &["train", "--out", out, "--full-context-share", "0.5"],
            "full_context_share applies to the implicit regime",
        ),
    ];
    for (args, needle) in cases {
        let o = amortize(args);
        assert_clean_failure(&o, needle);
    }
}

/// Every regime trains from the command line, on linear regression, and evaluates.
#[test]
fn every_regime_trains_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    for (regime, signal) in [
        ("parametric", "gradients"),
        ("explicit", "both"),
        ("implicit", "observations"),
        ("implicit", "both-point-gradients"),
    ] {
        let out = dir.path().join(format!("{regime}-{signal}"));
        let mut args = vec![
            "train",
            "--out",
            out.to_str().unwrap(),
            "--task",
            "linear-regression",
            "--dim",
            "3",
            "--context",
            "12",
            "--queries",
            "6",
            "--k",
            "3",
            "--batch-size",
            "4",
            "--regime",
            regime,
            "--signal",
            signal,
        ];
        // One run with the balanced step weighting; its config records it.
        let weighting = if regime == "explicit" {
            "balanced"
        } else {
            "mean"
        };
        args.extend_from_slice(&["--step-weighting", weighting]);
        // The explicit run's predictor reads its latent multiplicatively too.
        if regime == "explicit" {
            args.extend_from_slice(&["--latent-readout", "bilinear"]);
        }
        // One implicit run trains half its queries on whole mini-batches; its config records it.
        let whole = regime == "implicit" && signal == "both-point-gradients";
        if whole {
            args.extend_from_slice(&["--full-context-share", "0.5"]);
        }
        args.extend_from_slice(TINY);
        let o = amortize(&args);
        assert!(o.status.success(), "{regime}: {}", stderr(&o));
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["step_weighting"], weighting, "{regime}");
        assert_eq!(config["model"]["signal"], signal, "{regime}");
        if regime == "explicit" {
            assert_eq!(config["model"]["latent_readout"], "bilinear", "{config}");
        }
        if whole {
            assert_eq!(config["full_context_share"], 0.5, "{config}");
        } else {
            assert!(config.get("full_context_share").is_none(), "{config}");
        }
        let weights = out.join("model.amz");
        let o = amortize(&[
            "eval",
            "--weights",
            weights.to_str().unwrap(),
            "--tasks",
            "10",
            "--device",
            "cpu",
            "--json",
        ]);
        assert!(o.status.success(), "{regime}: {}", stderr(&o));
        let report = first_report(&o);
        assert_eq!(report["task"], "linear-regression");
        assert!(report["bayes"].as_f64().unwrap() > 0.0);
    }
    // A generative task refuses a parametric model, naming why.
    let o = amortize(&["train", "--task", "gmm", "--device", "cpu"]);
    assert_clean_failure(&o, "implicit regime");
    // A generative task's samples have no targets to differentiate a loss of.
    let o = amortize(&[
        "train",
        "--task",
        "gmm",
        "--regime",
        "implicit",
        "--signal",
        "point-gradients",
        "--device",
        "cpu",
    ]);
    assert_clean_failure(&o, "no targets");
    // The paper's mini-batch gradient needs task parameters; the implicit regime has none.
    let o = amortize(&[
        "train",
        "--regime",
        "implicit",
        "--signal",
        "gradients",
        "--device",
        "cpu",
    ]);
    assert_clean_failure(&o, "point-gradients");
    for (flag, value, needle) in [
        ("--signal", "gradient", "point-gradients"),
        ("--latent-readout", "product", "concat or bilinear"),
        ("--horizon", "5", "--horizon 5: expected k (10)"),
        ("--horizon", "many", "--horizon"),
    ] {
        assert_clean_failure(
            &amortize(&["train", flag, value, "--device", "cpu"]),
            needle,
        );
    }
    let o = amortize(&["train", "--latent-readout", "bilinear", "--device", "cpu"]);
    assert_clean_failure(&o, "latent_readout applies to the explicit regime");
}

/// The paper's protocol: every refinement step reads a mini-batch no earlier step read, in
/// training (the default context is k × b, or --horizon × b) and in evaluation, also past the
/// trained k (`eval --steps 40` draws 40 × b points per task).
#[test]
fn every_step_reads_a_fresh_mini_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fresh");
    let mut args = vec![
        "train",
        "--out",
        out.to_str().unwrap(),
        "--task",
        "linear-regression",
        "--dim",
        "3",
        "--k",
        "4",
        "--batch-size",
        "5",
        "--horizon",
        "6",
    ];
    args.extend_from_slice(TINY);
    let o = amortize(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    // Room for the longest refinement trained, 6 steps of 5 fresh points.
    assert_eq!(config["task"]["context"], 30, "{config}");
    assert_eq!(config["horizon"], 6, "{config}");
    // The number of steps per meta-step varies between k and the horizon: every training step
    // logs its per-step losses' first and last, and the run is still reproducible.
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 6);

    let weights = out.join("model.amz");
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--tasks",
        "12",
        "--steps",
        "40",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = first_report(&o);
    assert_eq!(r["context"], 200, "40 steps of 5 points: {r}");
    // Points read by each reported step: 5 new ones per step, 200 distinct by step 40.
    let read = r["points_read"].as_array().unwrap();
    let steps: Vec<u64> = read.iter().map(|x| x[0].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40]);
    for x in read {
        assert_eq!(x[1].as_u64().unwrap(), 5 * x[0].as_u64().unwrap(), "{x}");
    }
    // Bayes and least squares on exactly those points, per step: the Bayes error falls as the
    // points grow, and the amortizer's row and both baselines cover every step.
    let bayes: Vec<f64> = r["bayes_read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[1].as_f64().unwrap())
        .collect();
    assert_eq!(bayes.len(), steps.len());
    assert_eq!(
        r["least_squares_read"].as_array().unwrap().len(),
        steps.len()
    );
    assert!(bayes[1] < bayes[0] && bayes[13] < bayes[1], "{bayes:?}");
    assert!(
        (bayes[13] - r["bayes"].as_f64().unwrap()).abs() < 1e-9,
        "by step 40 every context point has been read"
    );
    // Beside the paper's numbers (Table 2), the settings line names this run's model, budget and
    // task, read from the file.
    assert!(
        r["paper"]["source"].as_str().unwrap().contains("Table 2"),
        "{r}"
    );
    let settings = r["settings"].as_str().unwrap();
    for part in [
        "width 16, 1 layer, 2 heads, feed-forward 32",
        "trained 6 meta-steps of 4 tasks",
        "k = 4 steps of 5",
        "d = 3 inputs",
    ] {
        assert!(settings.contains(part), "{part:?} not in {settings:?}");
    }
    // Fresh points for 10,000 steps would be 50,000 per task: refused, naming the way out.
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--steps",
        "10000",
        "--device",
        "cpu",
    ]);
    assert_clean_failure(&o, "give --context N to reread N points in epochs");
    // A smaller set than the steps ask for is read in epochs: 12 points, 5 per step.
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--tasks",
        "4",
        "--steps",
        "10",
        "--context",
        "12",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = first_report(&o);
    let read: Vec<u64> = r["points_read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[1].as_u64().unwrap())
        .collect();
    assert_eq!(read[1..4], [5, 10, 12], "{read:?}");

    // The paper's one-step baseline: a separately trained k = 1 model that reads all k·b points
    // of the iterative model in one pass, under a label of its own.
    let one = dir.path().join("one");
    let mut args = vec![
        "train",
        "--out",
        one.to_str().unwrap(),
        "--task",
        "linear-regression",
        "--dim",
        "3",
        "--k",
        "1",
        "--batch-size",
        "20",
    ];
    args.extend_from_slice(TINY);
    assert!(amortize(&args).status.success());
    let o = amortize(&[
        "eval",
        "--weights",
        one.join("model.amz").to_str().unwrap(),
        weights.to_str().unwrap(),
        "--tasks",
        "4",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["reports"][0];
    assert_eq!(
        r["label"],
        "parametric / observations, one step (hypernetwork)"
    );
    assert_eq!(r["points_read"], serde_json::json!([[0, 0], [1, 20]]));
    let labels: Vec<&str> = v["table"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"parametric / observations"), "{labels:?}");
    assert!(
        labels.contains(&"parametric / observations, one step (hypernetwork)"),
        "{labels:?}"
    );
}

fn fake_idx_dir(root: &Path) {
    // Files with the right names but not the published bytes.
    for set in ["mnist", "fashion"] {
        let d = root.join(set);
        std::fs::create_dir_all(&d).unwrap();
        for f in [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ] {
            std::fs::write(d.join(f), b"not the original file").unwrap();
        }
    }
}

/// The data commands check every file against the published md5 sums; a mirror serving other
/// bytes is refused and nothing is written. (No test downloads from the internet: the mirror
/// here is a local server.)
#[test]
fn data_files_are_checked_against_published_sums() {
    let dir = tempfile::tempdir().unwrap();
    fake_idx_dir(dir.path());
    let data = dir.path().to_str().unwrap();
    let o = amortize(&["data", "verify", "--data", data]);
    assert_clean_failure(&o, "does not match the published");
    let o = amortize(&[
        "train",
        "--task",
        "projection",
        "--data",
        data,
        "--device",
        "cpu",
    ]);
    assert_clean_failure(&o, "does not match the published");

    // A local mirror that serves the wrong bytes.
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let handle = std::thread::spawn(move || {
        for _ in 0..4 {
            let Ok(Some(rq)) = server.recv_timeout(std::time::Duration::from_secs(60)) else {
                return;
            };
            let _ = rq.respond(tiny_http::Response::from_data(b"corrupted".to_vec()));
        }
    });
    let empty = tempfile::tempdir().unwrap();
    let mirror = format!("http://127.0.0.1:{port}/");
    let o = amortize(&[
        "data",
        "download",
        "--data",
        empty.path().to_str().unwrap(),
        "--dataset",
        "mnist",
        "--mirror",
        &mirror,
    ]);
    assert_clean_failure(&o, "does not match the published");
    assert!(
        !empty
            .path()
            .join("mnist/train-images-idx3-ubyte.gz")
            .exists(),
        "a bad download leaves nothing behind"
    );
    drop(handle);
}

/// The data directory holding the real MNIST files (AMORTIZE_DATA, else ../shared/data here);
/// None, with a note, where they are absent.
fn mnist_root() -> Option<std::path::PathBuf> {
    let root = std::env::var_os("AMORTIZE_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_MANIFEST_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
                .join("../../shared/data")
        });
    if root.join("mnist/train-images-idx3-ubyte.gz").exists() {
        Some(root)
    } else {
        eprintln!(
            "SKIPPED: MNIST not found under {} (set AMORTIZE_DATA, or run `amortize data download`)",
            root.display()
        );
        None
    }
}

/// With the real MNIST files (../shared/data here, or AMORTIZE_DATA), the projection task trains
/// and evaluates in distribution and on FashionMNIST.
#[test]
fn projection_task_trains_on_the_real_images() {
    let Some(root) = mnist_root() else {
        return;
    };
    let data = root.to_str().unwrap();
    let o = amortize(&["data", "verify", "--data", data]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mnist");
    let mut args = vec![
        "train",
        "--out",
        out.to_str().unwrap(),
        "--task",
        "projection",
        "--data",
        data,
        "--dim",
        "16",
        "--context",
        "16",
        "--queries",
        "8",
        "--k",
        "2",
        "--batch-size",
        "8",
    ];
    args.extend_from_slice(TINY);
    let o = amortize(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    for ood in [false, true] {
        let weights = out.join("model.amz");
        let mut eval = vec![
            "eval",
            "--weights",
            weights.to_str().unwrap(),
            "--tasks",
            "40",
            "--device",
            "cpu",
            "--data",
            data,
            "--json",
        ];
        if ood {
            eval.push("--ood-only");
        }
        let o = amortize(&eval);
        assert!(o.status.success(), "{}", stderr(&o));
        let report = first_report(&o);
        // In distribution on MNIST; --ood-only scores the other image set.
        let split = if ood { "OoD: Fashion" } else { "ID" };
        assert_eq!(report["split"], split, "{report}");
        // A percentage of the 40 tasks × 8 queries answered wrong: a whole number of them.
        let whole = |err: f64| {
            let wrong = err / 100.0 * 320.0;
            (wrong - wrong.round()).abs() < 1e-6
        };
        let err = report["error_rate"][1][1].as_f64().unwrap();
        assert!(whole(err), "{report}");
        // The classical classifiers on the points the amortizer read: none at step 0 (no point
        // read), then at steps 1 and 2 (8 and 16 points). With 16 labelled points a nearest
        // neighbour is right far more often than chance (90 % wrong; mislabelled points would
        // score about that).
        for name in ["nearest_mean_read", "nearest_neighbour_read"] {
            let rows = report[name].as_array().expect(name);
            let steps: Vec<u64> = rows.iter().map(|r| r[0].as_u64().unwrap()).collect();
            assert_eq!(steps, [1, 2], "{name}: {report}");
            for r in rows {
                assert!(whole(r[1].as_f64().unwrap()), "{name}: {report}");
            }
            let at_two = rows[1][1].as_f64().unwrap();
            assert!(at_two < 80.0, "{name} after 16 points: {at_two} % wrong");
        }
    }
}

/// `data embed` turns the real MNIST files into an embedding set (a fixed random projection to 16
/// features), and `--task embeddings` trains on it end to end: after 400 meta-steps the query
/// error after 2 refinement steps is well below the learned initial state's (chance, ~90 %).
#[test]
fn embeddings_made_from_mnist_train_end_to_end() {
    let Some(root) = mnist_root() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(
        root.join("mnist").canonicalize().unwrap(),
        data.join("mnist"),
    )
    .unwrap();
    let data = data.to_str().unwrap();
    let o = amortize(&[
        "data", "embed", "--data", data, "--dim", "16", "--name", "t16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("60000 images, 16 features"), "{out}");
    assert!(out.contains("10000 images, 16 features"), "{out}");
    let o = amortize(&[
        "data", "embed", "--data", data, "--dim", "16", "--name", "a b",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--name"),
        "{}",
        stderr(&o)
    );
    let run = dir.path().join("run");
    let o = amortize(&[
        "train",
        "--out",
        run.to_str().unwrap(),
        "--task",
        "embeddings",
        "--embeddings",
        "t16",
        "--dim",
        "16",
        "--data",
        data,
        "--context",
        "16",
        "--queries",
        "16",
        "--k",
        "2",
        "--batch-size",
        "8",
        "--steps",
        "400",
        "--tasks-per-step",
        "16",
        "--d-model",
        "32",
        "--n-heads",
        "2",
        "--n-layers",
        "1",
        "--d-ff",
        "64",
        "--warmup",
        "10",
        "--lr",
        "0.003",
        "--eval-every",
        "0",
        "--eval-tasks",
        "50",
        "--seed",
        "0",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let weights = run.join("model.amz");
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--tasks",
        "200",
        "--device",
        "cpu",
        "--data",
        data,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = first_report(&o);
    assert_eq!(report["task"], "embeddings", "{report}");
    let err: Vec<f64> = report["error_rate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert_eq!(err.len(), 3, "{report}");
    assert!(
        err[2] < err[0] - 5.0,
        "no learning: error % per step {err:?}"
    );
    // Without the embedding files, eval names the file it looked for.
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--tasks",
        "5",
        "--device",
        "cpu",
        "--data",
        dir.path().join("nowhere").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("t16-train.safetensors"),
        "{}",
        stderr(&o)
    );
}

/// A generative model (Gaussian mixture, implicit regime, flow matching) trains and its samples
/// are scored by exact W1 and W2 against held-out points (W2 ≥ W1 always).
#[test]
fn generation_is_scored_by_exact_wasserstein_distances() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gmm");
    let mut args = vec![
        "train",
        "--out",
        out.to_str().unwrap(),
        "--task",
        "gmm",
        "--regime",
        "implicit",
        "--context",
        "16",
        "--queries",
        "12",
        "--k",
        "2",
        "--batch-size",
        "8",
    ];
    args.extend_from_slice(TINY);
    let o = amortize(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let weights = out.join("model.amz");
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--tasks",
        "6",
        "--sample-tasks",
        "3",
        "--samples",
        "40",
        "--ode",
        "rk4",
        "--ode-steps",
        "3",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = first_report(&o);
    let g = &report["generation"];
    assert_eq!(g["tasks"], 3);
    assert_eq!(g["samples"], 40);
    assert_eq!(
        g["compared"], 12,
        "W1 and W2 compare as many as the held-out queries"
    );
    let steps = g["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{report}");
    for row in steps {
        let v = &row[1];
        let (a, b) = (v["w1"].as_f64().unwrap(), v["w2"].as_f64().unwrap());
        assert!(a.is_finite() && a >= 0.0 && b >= a - 1e-9, "W1 {a}, W2 {b}");
    }
    // The baselines: N(0, I) noise (no information), a second sample of each task (its context,
    // 16 ≥ 12 points) and the exact field of the context; mixture means ~ N(0, 5²) put the noise
    // far off, so its precision is low where the optimal answer's is high.
    let w2_none = g["none"]["w2"].as_f64().unwrap();
    let w2_floor = g["floor"]["w2"].as_f64().unwrap();
    assert!(
        w2_floor >= 0.0 && w2_floor < w2_none,
        "floor {w2_floor}, none {w2_none}"
    );
    assert_eq!(g["delta"].as_f64().unwrap(), 0.6, "2 × the component std");
    let optimal = g["optimal"]["precision"].as_f64().unwrap();
    let none = g["none"]["precision"].as_f64().unwrap();
    // (three Euler steps of the exact field: near the points, not on them)
    assert!(
        optimal > 0.7 && none < 0.3,
        "optimal {optimal}, noise {none}"
    );
    let o = amortize(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--ode",
        "leapfrog",
    ]);
    assert_clean_failure(&o, "leapfrog");
}

/// Generation from the command line at the paper's other settings: 5-D mixtures with up to 100
/// components, trained on the exact empirical field (`--flow-target empirical`), recorded in
/// the run's config and the model's task, and evaluated; bad values get one-line errors.
#[test]
fn five_dimensional_mixtures_with_many_components_train_on_the_empirical_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gmm5");
    let mut args = vec![
        "train",
        "--out",
        out.to_str().unwrap(),
        "--task",
        "gmm",
        "--regime",
        "implicit",
        "--dim",
        "5",
        "--max-components",
        "100",
        "--flow-target",
        "empirical",
        "--flow-sigma",
        "0.2",
        "--context",
        "16",
        "--queries",
        "8",
        "--k",
        "2",
        "--batch-size",
        "8",
    ];
    args.extend_from_slice(TINY);
    let o = amortize(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let task = &config["task"];
    assert_eq!(task["dim"], 5, "{config}");
    assert_eq!(task["max_components"], 100, "{config}");
    assert_eq!(task["field"]["kind"], "empirical", "{config}");
    assert_eq!(task["field"]["sigma"], 0.2, "{config}");
    let o = amortize(&[
        "eval",
        "--weights",
        out.join("model.amz").to_str().unwrap(),
        "--tasks",
        "4",
        "--sample-tasks",
        "2",
        "--samples",
        "16",
        "--ode-steps",
        "2",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = first_report(&o);
    assert_eq!(report["generation"]["optimal_sigma"], 0.2, "{report}");
    assert_eq!(report["generation"]["samples"], 16, "{report}");
    for (flags, needle) in [
        (vec!["--max-components", "0"], "max_components"),
        (vec!["--max-components", "5000"], "max_components"),
        (
            vec!["--flow-target", "empirical", "--flow-sigma=-1"],
            "sigma",
        ),
        (
            vec!["--flow-target", "empirical", "--flow-sigma", "NaN"],
            "sigma",
        ),
        (vec!["--flow-sigma", "0.1"], "--flow-target empirical"),
        (vec!["--flow-target", "exact"], "exact"),
    ] {
        let elsewhere = dir.path().join("bad");
        let mut bad = vec![
            "train",
            "--out",
            elsewhere.to_str().unwrap(),
            "--task",
            "gmm",
        ];
        bad.extend(flags);
        bad.extend_from_slice(TINY);
        assert_clean_failure(&amortize(&bad), needle);
    }
    let o = amortize(&[
        "eval",
        "--weights",
        out.join("model.amz").to_str().unwrap(),
        "--tasks",
        "2",
        "--delta=-3",
    ]);
    assert_clean_failure(&o, "--delta");
}

/// The log's records without the wall-clock field, which differs between runs.
fn log_without_time(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

/// Data-parallel training (`--data-parallel N`: each meta-step's tasks split across N devices,
/// gradients summed on the first) and micro-batches (`--micro-batch M`: a device's share run M
/// tasks at a time) follow the one-pass run: same losses, step after step, up to float rounding,
/// under both step weightings. Here the N devices are replicas on the CPU.
#[test]
fn data_parallel_training_matches_one_device() {
    let dir = tempfile::tempdir().unwrap();
    for weighting in ["mean", "balanced"] {
        let losses = |n: &str, micro: &str| {
            let out = dir.path().join(format!("{weighting}-{n}-{micro}"));
            let mut args = vec![
                "train",
                "--out",
                out.to_str().unwrap(),
                "--step-weighting",
                weighting,
                "--data-parallel",
                n,
                "--micro-batch",
                micro,
            ];
            // TINY with six tasks per step: shares of 3 and 3, or 2, 2 and 2; with micro-batches
            // of 2, parts of 2, 2 and 2 on one device, or 1 and 2 on each of two.
            let at = TINY.iter().position(|a| *a == "--tasks-per-step").unwrap();
            args.extend(
                TINY.iter()
                    .enumerate()
                    .map(|(i, a)| if i == at + 1 { "6" } else { a }),
            );
            let o = amortize(&args);
            assert!(
                o.status.success(),
                "{weighting} × {n} × {micro}: {}",
                stderr(&o)
            );
            log_without_time(&out)
                .iter()
                .map(|r| r["loss"].as_f64().unwrap())
                .collect::<Vec<f64>>()
        };
        let one = losses("1", "0");
        assert_eq!(one.len(), 6);
        for (n, micro) in [("2", "0"), ("3", "0"), ("1", "2"), ("2", "2")] {
            let many = losses(n, micro);
            assert_eq!(many.len(), one.len());
            for (step, (a, b)) in one.iter().zip(&many).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * a.abs(),
                    "{weighting}, {n} devices, micro-batches of {micro}, step {}: {b} against {a} in one pass",
                    step + 1
                );
            }
        }
        assert!(one.iter().all(|l| l.is_finite()));
    }
    let o = amortize(&["train", "--data-parallel", "0", "--device", "cpu"]);
    assert_clean_failure(&o, "data_parallel");
    let o = amortize(&[
        "train",
        "--data-parallel",
        "8",
        "--tasks-per-step",
        "4",
        "--device",
        "cpu",
    ]);
    assert_clean_failure(&o, "every device needs a task");
}

/// `bench` times the meta-training step on one device or data-parallel over several (on the CPU,
/// replicas that share its cores), prints its table with every time positive, and refuses a
/// device count the step cannot use.
#[test]
fn bench_prints_its_table_on_one_device_and_data_parallel() {
    for n in ["1", "2"] {
        let mut args = vec![
            "bench",
            "--iters",
            "2",
            "--warmup-iters",
            "1",
            "--data-parallel",
            n,
        ];
        args.extend_from_slice(TINY);
        let o = amortize(&args);
        assert!(o.status.success(), "bench × {n}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(
            out.contains("2 data-parallel replicas"),
            n == "2",
            "device column: {out}"
        );
        let times: Vec<f64> = table_rows(&out)
            .iter()
            .filter_map(|r| r[1].strip_suffix(" ms"))
            .map(|ms| ms.parse::<f64>().unwrap())
            .collect();
        assert_eq!(times.len(), 4, "four timings: {out}");
        assert!(times.iter().all(|t| t.is_finite() && *t > 0.0), "{out}");
    }
    let mut args = vec!["bench", "--iters", "2", "--data-parallel", "5"];
    args.extend_from_slice(TINY);
    assert_clean_failure(&amortize(&args), "every device needs a task");
}

/// The first report's per-step scores of the model a run in `dir` ended with, on `tasks` tasks.
fn final_scores(dir: &Path, tasks: &str) -> serde_json::Value {
    let o = amortize(&[
        "eval",
        "--weights",
        dir.join("model.amz").to_str().unwrap(),
        "--tasks",
        tasks,
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    first_report(&o)["model"].clone()
}

/// Starts `amortize` with `args`, training into `out`, and kills it (SIGKILL: no chance to clean
/// up) once its log has `lines` steps, before the end of its `steps`.
fn kill_after(args: &[String], out: &Path, lines: usize, steps: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_amortize"))
        .args(args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = out.join("log.jsonl");
    let started = std::time::Instant::now();
    loop {
        let n = std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= lines {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(started.elapsed().as_secs() < 600, "the run is too slow");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The run writes model.amz at its checkpoints too; its log tells how far it got.
    let steps_done = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        steps_done < steps,
        "killed before the end ({steps_done} steps logged)"
    );
}

#[test]
fn a_killed_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--task",
            "linear-regression",
            "--dim",
            "4",
            "--context",
            "16",
            "--queries",
            "8",
            "--steps",
            "400",
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
            "--eval-every",
            "25",
            "--eval-tasks",
            "8",
            "--checkpoint-every",
            "7",
            "--warmup",
            "10",
            "--device",
            "cpu",
            "--seed",
            "11",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let o = amortize(&args(&whole).iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));

    // Kills the run past a checkpoint (7, 14, …) and an evaluation (25), not at a checkpoint
    // boundary.
    let kill_midway = |out: &Path| kill_after(&args(out), out, 31, 400);
    kill_midway(&killed);

    let mut resume = vec!["train", "--out", killed.to_str().unwrap(), "--resume"];
    resume.extend(["--device", "cpu"]);
    let o = amortize(&resume);
    assert!(o.status.success(), "resume failed: {}", stderr(&o));
    let (a, b) = (log_without_time(&whole), log_without_time(&killed));
    assert_eq!(a.len(), 400);
    assert_eq!(b.len(), 400, "the resumed log has each step once");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "the resumed run departs from the uninterrupted one");
    }
    // The final models predict the same (their files differ in provenance and parameter ids).
    let eval = |p: &Path| final_scores(p, "30");
    assert_eq!(
        eval(&whole),
        eval(&killed),
        "the resumed run ends with another model"
    );

    // Resumed on two devices: the steps up to the checkpoint are the one-device run's, the rest
    // follow it up to float rounding (this regime draws nothing per device), every loss is
    // finite, and config.json
    // records the change, which a further resume keeps.
    let moved = dir.path().join("moved");
    kill_midway(&moved);
    let o = amortize(&[
        "train",
        "--out",
        moved.to_str().unwrap(),
        "--resume",
        "--data-parallel",
        "2",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "resume on two devices: {}", stderr(&o));
    let config = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(moved.join("config.json")).unwrap()).unwrap()
    };
    let cfg = config();
    assert_eq!(cfg["data_parallel"], 1);
    let changes = cfg["data_parallel_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{cfg}");
    let from = changes[0]["from_step"].as_u64().unwrap() as usize;
    assert_eq!(changes[0]["data_parallel"], 2);
    assert!(
        from > 28 && (from - 1).is_multiple_of(7),
        "changed from step {from}"
    );
    assert!(stderr(&o).contains(&format!("from step {from} on: 2 data-parallel devices")));
    let c = log_without_time(&moved);
    assert_eq!(c.len(), 400, "the resumed log has each step once");
    for (i, (x, y)) in a.iter().zip(&c).enumerate() {
        assert_eq!(x["step"], y["step"]);
        if i + 1 < from {
            assert_eq!(x, y, "step {} ran before the change", i + 1);
        } else if i + 1 < from + 5 {
            // (Only the first steps: rounding differences grow over hundreds of updates.)
            let (l1, l2) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
            assert!(
                (l1 - l2).abs() <= 1e-4 * l1.abs(),
                "step {}: {l2} on two devices against {l1} on one",
                i + 1
            );
        }
        assert!(y["loss"].as_f64().unwrap().is_finite());
    }
    let o = amortize(&[
        "train",
        "--out",
        moved.to_str().unwrap(),
        "--resume",
        "--data-parallel",
        "0",
    ]);
    assert_clean_failure(&o, "data_parallel must be in 1..=64");
    // Its model card names the command that started the run and the resume, with its step.
    let card = export_card(&moved.join("model.amz"), dir.path(), "moved");
    let line = card
        .lines()
        .find(|l| l.starts_with("- Training command:"))
        .unwrap_or_else(|| panic!("{card}"));
    assert!(
        line.contains("--checkpoint-every 7")
            && line.contains(&format!(
                "--data-parallel 2 --device cpu` (from step {from})"
            )),
        "{line}"
    );
    let o = amortize(&["train", "--out", moved.to_str().unwrap(), "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        config(),
        cfg,
        "a finished run's configuration keeps its change"
    );

    // Resuming a finished run changes nothing; changing the configuration is refused.
    let o = amortize(&[
        "train",
        "--out",
        killed.to_str().unwrap(),
        "--resume",
        "--steps",
        "9",
    ]);
    assert_clean_failure(&o, "drop --steps");
    let o = amortize(&[
        "train",
        "--out",
        dir.path().join("none").to_str().unwrap(),
        "--resume",
    ]);
    assert_clean_failure(&o, "to resume");
}

#[test]
fn config_files_with_flags_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        "task = \"linear-regression\"\ndim = 3\nsteps = 4\ntasks-per-step = 2\nregime = \"explicit\"\nsignal = \"both\"\nd-model = 16\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let o = amortize(&["train", "--config", c, "--steps", "9", "--print-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8(o.stdout).unwrap();
    for line in [
        "steps = 9",
        "dim = 3",
        "tasks-per-step = 2",
        "regime = \"explicit\"",
        "signal = \"both\"",
        "d-model = 16",
        "n-layers = 3",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line:?} missing from:\n{printed}"
        );
    }
    // The printed configuration is itself a valid config file with the same effect.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &printed).unwrap();
    let o = amortize(&[
        "train",
        "--config",
        again.to_str().unwrap(),
        "--print-config",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), printed);

    let one_line = |o: &Output, needle: &str| {
        assert_clean_failure(o, needle);
        assert_eq!(
            stderr(o).trim().lines().count(),
            1,
            "one line: {}",
            stderr(o)
        );
    };
    for (text, needle) in [
        ("stpes = 3\n", "stpes"),
        ("steps = \"many\"\n", "`steps`"),
        ("regime = \"bayesian\"\n", "`regime`"),
        ("lr = 5.0\n", "lr must be in"),
        ("steps = 0\n", "steps must be at least 1"),
        ("d-model = 30\nn-heads = 4\n", "d_model"),
        ("steps = [\n", "line 1"),
        ("seed = -1\n", "`seed`"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        one_line(
            &amortize(&["train", "--config", c, "--device", "cpu"]),
            needle,
        );
    }
    one_line(
        &amortize(&[
            "train",
            "--config",
            dir.path().join("missing.toml").to_str().unwrap(),
        ]),
        "missing.toml",
    );
}

/// `eval --points`: a user's own context points, from CSV (with a header) or JSON (arrays or
/// objects), give the predicted curve per step as CSV; bad files give a one-line error.
#[test]
fn eval_runs_on_a_users_points() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fr");
    train_tiny(&out);
    let weights = out.join("model.amz");
    let w = weights.to_str().unwrap();
    let csv = dir.path().join("p.csv");
    std::fs::write(&csv, "x,y\n0.1,0.5\n-0.3,0.2\n0.7,-0.1\n").unwrap();
    let json = dir.path().join("p.json");
    std::fs::write(
        &json,
        r#"[{"x": 0.1, "y": 0.5}, [-0.3, 0.2], {"y": -0.1, "x": 0.7}]"#,
    )
    .unwrap();
    let run = |p: &Path| {
        let o = amortize(&[
            "eval",
            "--weights",
            w,
            "--points",
            p.to_str().unwrap(),
            "--device",
            "cpu",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let (a, b) = (run(&csv), run(&json));
    assert_eq!(
        a, b,
        "the same points from CSV and JSON give the same curves"
    );
    let mut lines = a.lines();
    assert_eq!(lines.next(), Some("x,steps_1,steps_5,steps_10"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 101);
    assert_eq!((rows[0][0], rows[100][0]), (-1.0, 1.0));
    assert!(rows.iter().flatten().all(|v| v.is_finite()));

    for (name, body, needle) in [
        (
            "nan.csv",
            "0.1,0.2\n0.3,nan\n",
            "point 2: coordinates must be finite",
        ),
        ("cols.csv", "0.1,0.2,0.3\n", "the file has 3"),
        ("word.json", r#"[[1, "a"]]"#, "is not a number"),
        ("empty.csv", "x,y\n", "no points"),
        ("broken.json", "[[1, 2]", "not valid JSON"),
        (
            "ragged.csv",
            "0.1,0.2\n0.3\n",
            "point 2 has 1 coordinates, the first has 2",
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let o = amortize(&[
            "eval",
            "--weights",
            w,
            "--points",
            p.to_str().unwrap(),
            "--device",
            "cpu",
        ]);
        assert_clean_failure(&o, needle);
    }
    let many: String = (0..5000)
        .map(|i| format!("{},{}\n", i as f64 / 5000.0, 0.0))
        .collect();
    let p = dir.path().join("many.csv");
    std::fs::write(&p, many).unwrap();
    let o = amortize(&[
        "eval",
        "--weights",
        w,
        "--points",
        p.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_clean_failure(&o, "at most 4096");
}

/// The order model trains through the same loop as the amortizer: a run killed midway resumes
/// from its checkpoint and ends exactly where the uninterrupted run ends (same log, same orders).
#[test]
fn a_killed_scm_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    let args = |out: &Path| -> Vec<String> {
        let flags = "train --task scm --nodes 5 --context 24 --k 2 --batch-size 8 --steps 80 \
                     --tasks-per-step 4 --d-model 16 --n-heads 2 --n-layers 1 --d-ff 32 \
                     --eval-tasks 8 --eval-every 25 --checkpoint-every 7 --seed 5 --device cpu";
        let mut a: Vec<String> = flags.split_whitespace().map(String::from).collect();
        a.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
        a
    };
    let o = amortize(&args(&whole).iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    kill_after(&args(&killed), &killed, 30, 80);
    let o = amortize(&[
        "train",
        "--out",
        killed.to_str().unwrap(),
        "--resume",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "resume failed: {}", stderr(&o));
    let (a, b) = (log_without_time(&whole), log_without_time(&killed));
    assert_eq!(a.len(), 80);
    assert_eq!(a, b, "the resumed run departs from the uninterrupted one");
    let eval = |p: &Path| final_scores(p, "16");
    assert_eq!(
        eval(&whole),
        eval(&killed),
        "the resumed run ends with another model"
    );
    // Its card keeps the command that started it, the resume and the last held-out evaluation.
    let bytes = std::fs::read(killed.join("model.amz")).unwrap();
    let card = amortize::weights::OrderBundle::decode(&bytes)
        .unwrap()
        .header
        .provenance;
    assert_eq!(card["meta_steps"], 80);
    assert!(
        card["resumed"][0].as_str().unwrap().contains("--resume"),
        "{card}"
    );
    assert_eq!(card["eval"]["metric"], "order error");
}

/// SCM topological order (paper §9.4): `train --task scm` writes an order model; `eval --ood`
/// reports the order accuracy per mechanism, in and out of distribution, in the paper table;
/// flags that do not apply and export are refused with one line.
#[test]
fn scm_order_model_trains_and_evaluates_in_and_out_of_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scm");
    let mut args = vec![
        "train",
        "--out",
        out.to_str().unwrap(),
        "--task",
        "scm",
        "--nodes",
        "5",
        "--context",
        "24",
        "--k",
        "2",
        "--batch-size",
        "8",
    ];
    args.extend_from_slice(TINY);
    let o = amortize(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 6);
    let weights = out.join("model.amz");
    let w = weights.to_str().unwrap();
    let o = amortize(&[
        "eval",
        "--weights",
        w,
        "--tasks",
        "8",
        "--ood",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reports = v["reports"].as_array().unwrap();
    let names: Vec<String> = reports
        .iter()
        .map(|r| {
            format!(
                "{} ({})",
                r["task"].as_str().unwrap(),
                r["split"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "scm-5 linear (ID)",
            "scm-5 linear (OoD: graphs, noise, weights)",
            "scm-5 rff (ID)",
            "scm-5 rff (OoD: graphs, noise, weights)"
        ]
    );
    for r in reports {
        // The paper's metric: the share of edges oriented wrong, at 0, 1 and 2 steps.
        assert_eq!(r["metric"], "order error");
        let err = r["model"].as_array().unwrap();
        assert_eq!(
            err.iter()
                .map(|x| x[0].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Beside it, on the same SCMs, the two sortability baselines.
        let names: Vec<&str> = r["baselines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[0].as_str().unwrap())
            .collect();
        assert!(names[0].starts_with("var-sortability"), "{r}");
        assert!(names[1].starts_with("R²-sortability"), "{r}");
    }
    assert_eq!(v["table"]["columns"].as_array().unwrap().len(), 4);
    // The 5-node model on 50-node SCMs (the paper tests its 20-node model on 50), with fresh
    // samples for each of 3 steps: 3 × 8 = 24 per dataset.
    let o = amortize(&[
        "eval",
        "--weights",
        w,
        "--tasks",
        "2",
        "--nodes",
        "50",
        "--steps",
        "3",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("scm-50 linear (ID)"), "{text}");
    assert!(
        table_rows(&text)
            .iter()
            .any(|r| r[0].starts_with("R²-sortability")),
        "{text}"
    );
    assert!(text.contains("order error"), "{text}");
    let o = amortize(&["eval", "--weights", w, "--nodes", "1", "--device", "cpu"]);
    assert_clean_failure(&o, "--nodes: nodes must be in 2..=200");

    let o = amortize(&[
        "train",
        "--task",
        "scm",
        "--signal",
        "gradients",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "--signal: does not apply to --task scm");
    let o = amortize(&[
        "train",
        "--task",
        "scm",
        "--mechanism",
        "cubic",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "--mechanism: unknown \"cubic\"");
    let o = amortize(&[
        "export",
        "--weights",
        w,
        "--dir",
        dir.path().to_str().unwrap(),
        "--name",
        "s",
    ]);
    assert_clean_failure(&o, "no web demo");
    let o = amortize(&[
        "train",
        "--out",
        out.to_str().unwrap(),
        "--resume",
        "--data-parallel",
        "2",
    ]);
    assert_clean_failure(&o, "--data-parallel: does not apply to --task scm");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    let bad = dir.path().join("bad.amz");
    std::fs::write(&bad, bytes).unwrap();
    let o = amortize(&[
        "eval",
        "--weights",
        bad.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_clean_failure(&o, "corrupt");
}

/// `train --init`: a run starts from a trained model's weights (fine-tuning), takes its
/// architecture, task, k and mini-batch size, records the file's checksum, and its card says where
/// it started. Architecture flags and a damaged or changed file are refused.
#[test]
fn fine_tuning_starts_from_a_trained_model() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut args = vec!["train", "--out", a.to_str().unwrap(), "--k", "5"];
    args.extend_from_slice(&["--batch-size", "4"]);
    args.extend_from_slice(TINY);
    let o = amortize(&args);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let parent = a.join("model.amz");
    let fine_tune = |out: &Path, extra: &[&str]| {
        let mut args = vec!["train", "--init", parent.to_str().unwrap()];
        args.extend_from_slice(&["--out", out.to_str().unwrap(), "--steps", "2"]);
        args.extend_from_slice(&["--tasks-per-step", "4", "--eval-tasks", "8"]);
        args.extend_from_slice(&["--device", "cpu", "--seed", "9"]);
        args.extend_from_slice(extra);
        amortize(&args)
    };
    // A learning rate too small to move the weights: the fine-tuned model is the parent.
    let o = fine_tune(&b, &["--lr", "1e-12"]);
    assert!(o.status.success(), "fine-tune failed: {}", stderr(&o));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model"]["d_model"], 16, "the parent's architecture");
    assert_eq!(cfg["refine"]["steps"], 5, "the parent's k");
    assert_eq!(
        cfg["refine"]["batch_size"], 4,
        "the parent's mini-batch size"
    );
    assert!(cfg["init"]["weights_crc32"].is_u64(), "{cfg}");
    let mse = |weights: &Path| {
        let o = amortize(&[
            "eval",
            "--weights",
            weights.to_str().unwrap(),
            "--tasks",
            "30",
            "--device",
            "cpu",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        first_report(&o)["model"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[1].as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let (before, after) = (mse(&parent), mse(&b.join("model.amz")));
    for (x, y) in before.iter().zip(&after) {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1e-3),
            "{before:?} vs {after:?}"
        );
    }
    // An ordinary learning rate moves them.
    let c = dir.path().join("c");
    let o = fine_tune(&c, &["--lr", "1e-2"]);
    assert!(o.status.success(), "fine-tune failed: {}", stderr(&o));
    assert_ne!(mse(&c.join("model.amz")), before);
    // The card names the starting model and the command that trained it.
    let card = export_card(&b.join("model.amz"), dir.path(), "tuned");
    let started = card
        .lines()
        .find(|l| l.starts_with("- Started from"))
        .unwrap_or_else(|| panic!("no starting model in {card}"));
    assert!(started.contains(parent.to_str().unwrap()), "{started}");
    assert!(
        started.contains("--batch-size 4") && started.contains(": 6 meta-steps of 4 tasks"),
        "{started}"
    );

    let o = fine_tune(&dir.path().join("d"), &["--d-ff", "64"]);
    assert_clean_failure(&o, "drop --d-ff");

    // `--n-layers` deepens the model: the added layer starts as the identity, so with a learning
    // rate too small to move the weights the deeper model scores what its parent scores; its card
    // says where the layers came from.
    let deeper = dir.path().join("deeper");
    let o = fine_tune(&deeper, &["--lr", "1e-12", "--n-layers", "2"]);
    assert!(o.status.success(), "deepening failed: {}", stderr(&o));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deeper.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["model"]["n_layers"], 2, "{cfg}");
    assert_eq!(cfg["init"]["n_layers"], 1, "{cfg}");
    let grown = mse(&deeper.join("model.amz"));
    for (x, y) in before.iter().zip(&grown) {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1e-3),
            "{before:?} vs {grown:?}"
        );
    }
    let card = export_card(&deeper.join("model.amz"), dir.path(), "deeper");
    assert!(
        card.contains("2 layers (the last 1 added to the starting model's 1"),
        "{card}"
    );
    // Layers can be added, not removed.
    let deeper_model = deeper.join("model.amz");
    let mut args = vec!["train", "--init", deeper_model.to_str().unwrap()];
    let shallower = dir.path().join("shallower");
    args.extend_from_slice(&["--out", shallower.to_str().unwrap(), "--n-layers", "1"]);
    args.extend_from_slice(&["--device", "cpu"]);
    assert_clean_failure(&amortize(&args), "can add layers, not remove them");
    // A model whose tasks hold fewer points than k mini-batches read (the web app's Train tab
    // trains on 32, k = 10 of 8) fine-tunes on tasks widened to k × b fresh points.
    let narrow = dir.path().join("narrow");
    let mut args = vec!["train", "--out", narrow.to_str().unwrap(), "--k", "5"];
    args.extend_from_slice(&["--batch-size", "4", "--context", "8"]);
    args.extend_from_slice(TINY);
    let o = amortize(&args);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let widened = dir.path().join("widened");
    let narrow_model = narrow.join("model.amz");
    let mut args = vec!["train", "--init", narrow_model.to_str().unwrap()];
    args.extend_from_slice(&["--out", widened.to_str().unwrap(), "--steps", "2"]);
    args.extend_from_slice(&[
        "--tasks-per-step",
        "4",
        "--eval-tasks",
        "8",
        "--device",
        "cpu",
    ]);
    let o = amortize(&args);
    assert!(o.status.success(), "fine-tune failed: {}", stderr(&o));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(widened.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["task"]["context"], 20, "{cfg}");
    let damaged = dir.path().join("damaged.amz");
    let mut bytes = std::fs::read(&parent).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let e = dir.path().join("e");
    let mut args = vec!["train", "--init", damaged.to_str().unwrap()];
    args.extend_from_slice(&["--out", e.to_str().unwrap()]);
    assert_clean_failure(&amortize(&args), "--init");
}
