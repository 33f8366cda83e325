#!/usr/bin/env bash
# Trains and evaluates every model behind docs/results.md, on this machine's CPU, at the budgets
# written there. Usage: scripts/results.sh [PART...] (parts: protocol linreg gmm alphabet mnist scm bench; all
# by default). Outputs go to runs/results/; evaluation tables to runs/results/*.md.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${AMORTIZE:-target/release/amortize}
R=runs/results
mkdir -p "$R"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(protocol linreg gmm alphabet mnist scm bench)
small=(--tasks-per-step 32 --n-layers 2 --d-ff 128 --warmup 50 --eval-every 0 --eval-tasks 200 --seed 0 --device cpu)

for part in "${parts[@]}"; do
case $part in
protocol)
  # The paper's protocol: every step reads 8 points no step read before. The parametric model
  # trains on 10 to 20 steps per meta-step (--horizon 20), so it stays stable past k = 10; a
  # control without the horizon; the explicit model with the bilinear latent readout; the paper's
  # one-step baseline (k = 1 over all 80 points).
  proto=(--task linear-regression --tasks-per-step 32 --n-layers 2 --d-ff 128 --warmup 200
         --eval-every 1000 --eval-tasks 300 --checkpoint-every 1000 --seed 0 --device cpu)
  $A train "${proto[@]}" --regime parametric --signal observations --k 10 --batch-size 8 \
    --horizon 20 --steps 15000 --data-parallel 2 --out "$R/lin-po"
  $A train "${proto[@]}" --regime parametric --signal observations --k 10 --batch-size 8 \
    --steps 15000 --data-parallel 2 --out "$R/lin-po-k10"
  $A train "${proto[@]}" --regime parametric --signal observations --k 1 --batch-size 80 \
    --steps 15000 --data-parallel 2 --out "$R/lin-p1"
  $A train --task linear-regression --regime explicit --signal both --latent-readout bilinear \
    --k 10 --batch-size 8 --steps 5000 --tasks-per-step 32 --n-layers 2 --d-ff 128 --warmup 100 \
    --eval-every 500 --eval-tasks 300 --checkpoint-every 500 --seed 0 --device cpu --out "$R/lin-eb"
  $A eval --weights "$R/lin-po/model.amz" "$R/lin-eb/model.amz" "$R/lin-p1/model.amz" \
    --tasks 1000 --seed 1234 --device cpu > "$R/protocol.md"
  $A eval --weights "$R/lin-po/model.amz" "$R/lin-po-k10/model.amz" --steps 40 --tasks 1000 \
    --seed 1234 --device cpu > "$R/protocol-40.md"
  $A eval --weights "$R/lin-po/model.amz" --context 32 --tasks 1000 --seed 1234 --device cpu \
    > "$R/protocol-epochs.md"
  # The headline model trained further from lin-po's weights.
  $A train --init "$R/lin-po/model.amz" --horizon 20 --steps 40000 --tasks-per-step 32 --lr 0.0005 \
    --warmup 500 --eval-every 2000 --eval-tasks 300 --checkpoint-every 1000 --seed 1 --device cpu \
    --data-parallel 2 --out "$R/lin-po2"
  $A eval --weights "$R/lin-po2/model.amz" "$R/lin-p1/model.amz" --tasks 1000 --test-time-tasks 200 \
    --seed 1234 --device cpu > "$R/protocol-long.md"
  $A eval --weights "$R/lin-po2/model.amz" --steps 40 --tasks 1000 --seed 1234 --device cpu \
    > "$R/protocol-long-40.md"
  # And further again from lin-po2's, at a lower peak learning rate, with another seed.
  $A train --init "$R/lin-po2/model.amz" --horizon 20 --steps 40000 --tasks-per-step 32 --lr 0.0003 \
    --warmup 500 --eval-every 2000 --eval-tasks 300 --checkpoint-every 1000 --seed 2 --device cpu \
    --data-parallel 2 --out "$R/lin-po3"
  $A eval --weights "$R/lin-po3/model.amz" "$R/lin-p1/model.amz" --tasks 1000 --test-time-tasks 200 \
    --seed 1234 --device cpu > "$R/protocol-long3.md"
  # The same protocol at twice the width and three layers (width 64 had flattened near 0.72),
  # from scratch, then trained further from its weights at a lower peak learning rate.
  $A train --task linear-regression --tasks-per-step 32 --n-layers 3 --d-model 128 --d-ff 256 \
    --warmup 200 --eval-every 1000 --eval-tasks 300 --checkpoint-every 1000 --seed 0 --device cpu \
    --regime parametric --signal observations --k 10 --batch-size 8 --horizon 20 --steps 20000 \
    --data-parallel 2 --out "$R/lin-pw"
  $A eval --weights "$R/lin-pw/model.amz" --tasks 1000 --test-time-tasks 200 --seed 1234 \
    --device cpu > "$R/protocol-wide.md"
  $A train --init "$R/lin-pw/model.amz" --horizon 20 --steps 15000 --tasks-per-step 32 --lr 0.0003 \
    --warmup 200 --eval-every 1000 --eval-tasks 300 --checkpoint-every 1000 --seed 1 --device cpu \
    --data-parallel 2 --out "$R/lin-pw2"
  $A eval --weights "$R/lin-pw2/model.amz" --tasks 1000 --test-time-tasks 200 --seed 1234 \
    --device cpu > "$R/protocol-wide2.md"
  # The paper's gradient token (Table 2, parametric, gradients) under the same protocol.
  $A train "${proto[@]}" --regime parametric --signal gradients --k 10 --batch-size 8 \
    --horizon 20 --steps 30000 --data-parallel 2 --out "$R/lin-pg"
  $A eval --weights "$R/lin-pg/model.amz" --tasks 1000 --test-time-tasks 200 --seed 1234 \
    --device cpu > "$R/protocol-pg.md"
  # Both signals (Table 2, parametric, Grad + Data) under the same protocol.
  $A train "${proto[@]}" --regime parametric --signal both --k 10 --batch-size 8 \
    --horizon 20 --steps 30000 --data-parallel 2 --out "$R/lin-pb"
  $A eval --weights "$R/lin-pb/model.amz" --tasks 1000 --test-time-tasks 200 --seed 1234 \
    --device cpu > "$R/protocol-pb.md"
  # The implicit regime (Table 4) under the same protocol; stopped at 9,021 steps, its curve flat.
  $A train "${proto[@]}" --regime implicit --signal observations --k 10 --batch-size 8 \
    --horizon 20 --steps 20000 --data-parallel 2 --out "$R/lin-io"
  $A eval --weights "$R/lin-io/model.amz" --tasks 1000 --seed 1234 --device cpu > "$R/protocol-io.md"
  # The explicit regime reading observations only (Table 3), the lin-eb recipe otherwise.
  $A train --task linear-regression --regime explicit --signal observations --latent-readout bilinear \
    --k 10 --batch-size 8 --steps 8000 --tasks-per-step 32 --n-layers 2 --d-ff 128 --warmup 100 \
    --eval-every 500 --eval-tasks 300 --checkpoint-every 500 --seed 0 --device cpu --data-parallel 2 \
    --out "$R/lin-eo"
  $A eval --weights "$R/lin-eo/model.amz" --tasks 1000 --seed 1234 --device cpu > "$R/protocol-eo.md"
  # The explicit regime reading the paper's gradient token only (Table 3, Grad), the lin-eo recipe.
  $A train --task linear-regression --regime explicit --signal gradients --latent-readout bilinear \
    --k 10 --batch-size 8 --steps 8000 --tasks-per-step 32 --n-layers 2 --d-ff 128 --warmup 100 \
    --eval-every 500 --eval-tasks 300 --checkpoint-every 500 --seed 0 --device cpu --data-parallel 2 \
    --out "$R/lin-eg"
  $A eval --weights "$R/lin-eg/model.amz" --tasks 1000 --seed 1234 --device cpu > "$R/protocol-eg.md"
  ;;
linreg)
  for rs in parametric:observations parametric:gradients parametric:both \
            explicit:observations explicit:gradients explicit:both implicit:observations; do
    r=${rs%%:*}; s=${rs##*:}
    case $r in parametric) steps=1000 ;; explicit) steps=400 ;; implicit) steps=500 ;; esac
    $A train --task linear-regression --regime "$r" --signal "$s" --steps $steps "${small[@]}" \
      --out "$R/linreg-$r-$s"
  done
  $A eval --weights "$R"/linreg-*/model.amz --tasks 1000 --seed 1234 --device cpu > "$R/linreg.md"
  $A eval --weights "$R/linreg-parametric-observations/model.amz" --tasks 1000 --steps 40 \
    --seed 1234 --device cpu > "$R/linreg-streaming.md"
  $A eval --weights "$R/linreg-parametric-gradients/model.amz" "$R/linreg-parametric-both/model.amz" \
    --tasks 1000 --test-time-tasks 200 --seed 1234 --device cpu > "$R/linreg-test-time.md"
  ;;
gmm)
  # The exact empirical field as the target, a hidden-vector state, 80 points in 10 mini-batches of 8.
  $A train --task gmm --regime implicit --state-form pre-mlp --flow-target empirical --flow-sigma 0.1 \
    --context 80 --queries 64 --k 10 --batch-size 8 --d-model 64 --n-layers 2 --d-ff 128 \
    --tasks-per-step 32 --steps 8000 --warmup 200 --eval-every 500 --eval-tasks 200 \
    --checkpoint-every 500 --step-weighting balanced --full-context-share 0.5 --seed 0 --device cpu \
    --out "$R/gmm"
  $A eval --weights "$R/gmm/model.amz" --tasks 200 --sample-tasks 200 --ode euler --ode-steps 10 \
    --seed 1234 --device cpu > "$R/gmm.md"
  # The paper's 5-D mixtures of up to 100 components, the same recipe; precision and recall at
  # sigma * sqrt(2d) = 0.95, the typical distance between two points of one component.
  $A train --task gmm --dim 5 --max-components 100 --regime implicit --state-form pre-mlp \
    --flow-target empirical --flow-sigma 0.1 --context 80 --queries 64 --k 10 --batch-size 8 \
    --d-model 64 --n-layers 2 --d-ff 128 --tasks-per-step 32 --steps 8000 --warmup 200 \
    --eval-every 500 --eval-tasks 200 --checkpoint-every 500 --step-weighting balanced \
    --full-context-share 0.5 --seed 0 --device cpu --data-parallel 2 --out "$R/gmm5"
  $A eval --weights "$R/gmm5/model.amz" --tasks 200 --sample-tasks 200 --ode euler --ode-steps 10 \
    --delta 0.95 --seed 1234 --device cpu > "$R/gmm5.md"
  # Trained on from gmm5's weights at a lower rate (its curve was still falling at the end).
  $A train --init "$R/gmm5/model.amz" --steps 3000 --tasks-per-step 32 --lr 0.0003 --warmup 100 \
    --eval-every 500 --eval-tasks 200 --checkpoint-every 500 --seed 1 --device cpu --data-parallel 2 \
    --step-weighting balanced --full-context-share 0.5 --out "$R/gmm5b"
  $A eval --weights "$R/gmm5b/model.amz" --tasks 200 --sample-tasks 200 --ode euler --ode-steps 10 \
    --delta 0.95 --seed 1234 --device cpu > "$R/gmm5b.md"
  ;;
alphabet)
  $A train --task alphabet --regime implicit --state-form pre-mlp --flow-target empirical \
    --flow-sigma 0.03 --context 80 --queries 64 --k 10 --batch-size 8 --d-model 64 --n-layers 2 \
    --d-ff 128 --tasks-per-step 32 --steps 12000 --warmup 200 --eval-every 500 --eval-tasks 200 \
    --checkpoint-every 500 --step-weighting balanced --full-context-share 0.5 --seed 0 --device cpu \
    --data-parallel 2 --out "$R/alphabet"
  $A eval --weights "$R/alphabet/model.amz" --ood --tasks 200 --sample-tasks 200 --ode euler \
    --ode-steps 10 --seed 1234 --device cpu > "$R/alphabet.md"
  ;;
mnist)
  $A train --task projection --dataset mnist --regime implicit --context 64 --queries 32 --steps 400 \
    "${small[@]}" --out "$R/mnist-implicit"
  $A eval --weights "$R/mnist-implicit/model.amz" --ood --tasks 500 --seed 1234 --device cpu > "$R/mnist.md"
  # Under the paper's protocol (80 fresh points, k = 10 of 8), longer.
  $A train --task projection --dataset mnist --regime implicit --k 10 --batch-size 8 --queries 32 \
    --tasks-per-step 32 --n-layers 2 --d-ff 128 --warmup 200 --eval-every 1000 --eval-tasks 200 \
    --checkpoint-every 500 --steps 15000 --data-parallel 2 --seed 0 --device cpu --out "$R/mnist-impl"
  $A eval --weights "$R/mnist-impl/model.amz" --ood --tasks 500 --seed 1234 --device cpu \
    > "$R/mnist-protocol.md"
  # The parametric regime (Table 2's MNIST columns), the same recipe.
  $A train --task projection --dataset mnist --regime parametric --signal observations --k 10 \
    --batch-size 8 --queries 32 --tasks-per-step 32 --n-layers 2 --d-ff 128 --warmup 200 \
    --eval-every 1000 --eval-tasks 200 --checkpoint-every 500 --steps 15000 --data-parallel 2 \
    --seed 0 --device cpu --out "$R/mnist-param"
  $A eval --weights "$R/mnist-param/model.amz" --ood --tasks 500 --seed 1234 --device cpu \
    > "$R/mnist-param.md"
  # The classical baselines on more points (the points table of the MNIST section).
  $A eval --weights "$R/mnist-param/model.amz" --batch-size 100 --tasks 200 --seed 1234 \
    --device cpu > "$R/mnist-points-100.md"
  $A eval --weights "$R/mnist-param/model.amz" --batch-size 500 --tasks 100 --seed 1234 \
    --device cpu > "$R/mnist-points-500.md"
  # Four times as wide, a shorter schedule (no better: the section says so).
  $A train --task projection --dataset mnist --regime parametric --signal observations --k 10 \
    --batch-size 8 --queries 32 --tasks-per-step 32 --d-model 256 --d-ff 512 --n-layers 2 \
    --warmup 200 --eval-every 1000 --eval-tasks 200 --checkpoint-every 500 --steps 6000 \
    --data-parallel 2 --seed 0 --device cpu --out "$R/mnist-param256"
  $A eval --weights "$R/mnist-param256/model.amz" --ood --tasks 500 --seed 1234 --device cpu \
    > "$R/mnist-param256.md"
  ;;
scm)
  $A train --task scm --nodes 20 --mechanism both --k 10 --batch-size 16 --steps 1500 \
    --tasks-per-step 8 --d-model 32 --n-heads 4 --n-layers 2 --d-ff 64 --lr 1e-3 --warmup 50 \
    --eval-every 500 --eval-tasks 32 --seed 0 --device cpu --out "$R/scm20"
  $A eval --weights "$R/scm20/model.amz" --ood --tasks 200 --seed 1234 --device cpu > "$R/scm.md"
  $A eval --weights "$R/scm20/model.amz" --ood --nodes 50 --tasks 50 --seed 1234 --device cpu \
    > "$R/scm-50.md"
  # Twice the width on a 5,000-step schedule; stopped at 1,019 (held-out order error flat at chance).
  $A train --task scm --nodes 20 --mechanism both --k 10 --batch-size 16 --steps 5000 \
    --tasks-per-step 8 --d-model 64 --n-heads 4 --n-layers 2 --d-ff 128 --lr 1e-3 --warmup 200 \
    --eval-every 250 --eval-tasks 64 --checkpoint-every 250 --seed 0 --device cpu --out "$R/scm20b"
  $A eval --weights "$R/scm20b/model.amz" --ood --tasks 200 --seed 1234 --device cpu > "$R/scm20b.md"
  ;;
bench)
  # The standard configuration, beside PyTorch on the same machine in the same run: on both cores
  # (two data-parallel replicas, as PyTorch uses two threads), then on one device; three runs of
  # each, in turn, and a summary of the three ratios with their median (issue 28's targets).
  for run in 1 2 3; do
    $A bench --task linear-regression --regime parametric --signal observations --tasks-per-step 64 \
      --device cpu --iters 20 --data-parallel 2 --pytorch "${PYTHON:-python3}" > "$R/bench-run$run.md"
    $A bench --task linear-regression --regime parametric --signal observations --tasks-per-step 64 \
      --device cpu --iters 20 --pytorch "${PYTHON:-python3}" > "$R/bench-one-device-run$run.md"
  done
  cp "$R/bench-run1.md" "$R/bench.md"
  cp "$R/bench-one-device-run1.md" "$R/bench-one-device.md"
  {
    echo "| meta-training step | run 1 | run 2 | run 3 | median ratio | target |"
    echo "|---|---|---|---|---|---|"
    for kind in "two replicas:bench-run:≤ 0.8×" "one device:bench-one-device-run:≤ 1.5×"; do
      IFS=: read -r label stem target <<< "$kind"
      for run in 1 2 3; do
        # The comparison row: | meta-training step | ours | PyTorch | ratio |
        grep -E '^\| meta-training step +\|' "$R/$stem$run.md" | awk -F'|' '{
          for (i = 3; i <= 5; i++) gsub(/^ +| +$/, "", $i); print $3 "|" $4 "|" $5 }'
      done | awk -F'|' -v label="$label" -v target="$target" '{
          cell[NR] = $1 " against " $2 " (" $3 ")"; r[NR] = $3 + 0 }
        END {
          hi = r[1]; lo = r[1]
          for (i = 2; i <= 3; i++) { if (r[i] > hi) hi = r[i]; if (r[i] < lo) lo = r[i] }
          printf "| %s | %s | %s | %s | %.2f× | %s |\n", label, cell[1], cell[2], cell[3],
            r[1] + r[2] + r[3] - hi - lo, target }'
    done
  } > "$R/bench-summary.md"
  # The runtime claim: k = 10 steps over 10 x 8 points against one step over all 80.
  $A bench --task linear-regression --regime parametric --signal observations --tasks-per-step 64 \
    --context 80 --device cpu --iters 5 --warmup-iters 1 > "$R/bench-k-steps.md"
  ;;
*) echo "unknown part $part" >&2; exit 2 ;;
esac
done
# Paste the tables into docs/results.md (the template holds the text around them).
python3 scripts/results_doc.py
"$A" plot --run "$R/linreg-parametric-gradients" --out docs/linreg-parametric-gradients.svg
