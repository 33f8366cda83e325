//! The order in which a refinement reads a task's points: k mini-batches of b.

use rand::seq::SliceRandom;
use rand::Rng;

/// The mini-batches of k steps over n points: shuffled passes over the data, like SGD's epochs,
/// chopped into batches of min(b, n) indices. When n ≤ b every step reads all n points.
pub fn schedule<R: Rng + ?Sized>(n: usize, b: usize, k: usize, rng: &mut R) -> Vec<Vec<usize>> {
    let b = b.min(n);
    let mut pass: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        if n == 0 {
            out.push(Vec::new());
            continue;
        }
        if n <= b {
            let mut all: Vec<usize> = (0..n).collect();
            all.shuffle(rng);
            out.push(all);
            continue;
        }
        let mut batch = Vec::with_capacity(b);
        while batch.len() < b {
            if pass.is_empty() {
                pass = (0..n).collect();
                pass.shuffle(rng);
            }
            let i = pass.pop().expect("refilled above");
            // A point may end one pass and start the next; never twice in one batch.
            if batch.contains(&i) {
                pass.insert(0, i);
                continue;
            }
            batch.push(i);
        }
        out.push(batch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn schedule_walks_passes_without_repeats_in_a_batch() {
        let mut rng = StdRng::seed_from_u64(1);
        let s = schedule(32, 8, 8, &mut rng);
        assert_eq!(s.len(), 8);
        // Two full passes: every point exactly twice.
        let mut counts = [0; 32];
        for b in &s {
            assert_eq!(b.len(), 8);
            let mut sorted = b.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 8);
            for &i in b {
                counts[i] += 1;
            }
        }
        assert!(counts.iter().all(|&c| c == 2));
        // The paper's protocol: a context of k·b points (training's default, and eval's), or
        // more (a horizon longer than this meta-step's steps): no point is read twice.
        for (n, k) in [(40, 5), (60, 7), (320, 40)] {
            let mut all = schedule(n, 8.min(n / k), k, &mut rng).concat();
            let len = all.len();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), len, "{n} points, {k} steps: a point read twice");
        }
        // Fewer points than a batch: every step reads them all.
        let s = schedule(5, 8, 3, &mut rng);
        assert!(s.iter().all(|b| b.len() == 5));
        // Awkward sizes never repeat a point within a batch.
        for b in schedule(10, 8, 20, &mut rng) {
            let mut sorted = b.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 8);
        }
    }
}
