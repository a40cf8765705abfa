//! Every dataflow against the brute-force reference, on generated worlds with
//! several seeds, with 1 and 2 workers giving identical outputs.

mod common;

use common::reference::Reference;
use common::{lines, replay, small_world};
use feedflow::connectors::config::Config;
use feedflow::gen::load_truth;
use std::collections::{BTreeMap, BTreeSet};

/// Replays the engine's trending change stream up to (and including) tick `t`.
fn engine_pool_at(changes: &[serde_json::Value], t: u64, tick_ms: u64) -> BTreeMap<(String, u64), (f64, f64)> {
    let mut pool: BTreeMap<(String, u64, String, String), i64> = BTreeMap::new();
    for c in changes {
        if c["ts"].as_u64().unwrap() <= (t + 1) * tick_ms {
            let key = (
                c["category"].as_str().unwrap().to_string(),
                c["post_id"].as_u64().unwrap(),
                c["velocity_ratio"].to_string(),
                c["recent"].to_string(),
            );
            *pool.entry(key).or_default() += c["diff"].as_i64().unwrap();
        }
    }
    let mut out = BTreeMap::new();
    for ((category, post, ratio, recent), n) in pool {
        assert!(n == 0 || n == 1, "multiplicity {n} for post {post} at tick {t}");
        if n == 1 {
            let prev = out.insert((category, post), (ratio.parse().unwrap(), recent.parse().unwrap()));
            assert!(prev.is_none(), "post {post} twice in the pool at tick {t}");
        }
    }
    out
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

fn check_world(seed: u64) {
    let world = small_world(seed);
    // One-hour half-lives so decay matters over a three-hour world.
    let mut config = Config::default();
    config.interest.half_life_ms = 3_600_000;
    config.pools.popular_half_life_ms = 3_600_000;
    // A bound small enough that the oldest co-engagement pairs leave each shard.
    config.serving.related_max_pairs = 4_000;
    let tick_ms = config.engine.tick_ms;
    let reference = Reference::from_log(&world.text, &config);
    let out1 = world.dir.path().join("out1");
    let out2 = world.dir.path().join("out2");
    let one = replay(&config, &world.log, &out1, 1);
    let two = replay(&config, &world.log, &out2, 2);

    // 1 and 2 workers: byte-identical outputs and equal final state.
    for file in ["trending.jsonl", "dlq.jsonl", "responses.jsonl", "impressions.jsonl"] {
        assert_eq!(
            std::fs::read(out1.join(file)).unwrap(),
            std::fs::read(out2.join(file)).unwrap(),
            "{file} differs between 1 and 2 workers (seed {seed})"
        );
    }
    let (s1, s2) = (one.snapshot.unwrap(), two.snapshot.unwrap());
    assert_eq!(s1.index.keys().collect::<Vec<_>>(), s2.index.keys().collect::<Vec<_>>());
    assert_eq!(s1.trending, s2.trending);
    assert_eq!(s1.fresh, s2.fresh);
    assert_eq!(s1.popular, s2.popular);
    assert_eq!(s1.users.len(), s2.users.len());
    for (u, v) in &s1.users {
        assert_eq!(Some(v), s2.users.get(u), "user {u} differs between worker counts");
    }
    assert_eq!(s1.last_tick, reference.last_tick);

    // Trending: the pool replayed from the change stream equals the reference
    // pool at every tick where either changes, plus every 97th tick.
    let changes = lines(&out1.join("trending.jsonl"));
    assert!(!changes.is_empty(), "seed {seed}: nothing ever trended");
    let first = reference.engagements.iter().map(|e| e.tick).min().unwrap();
    let mut ticks: BTreeSet<u64> = changes.iter().map(|c| c["ts"].as_u64().unwrap() / tick_ms - 1).collect();
    ticks.extend((first..=reference.last_tick).step_by(97));
    let window = config.trending.window_ms / tick_ms;
    let changed: Vec<u64> = ticks.iter().copied().collect();
    for t in changed {
        ticks.insert(t.saturating_sub(1));
        ticks.insert(t + window);
    }
    let mut compared = 0;
    for &t in ticks.iter().filter(|t| **t <= reference.last_tick) {
        let engine = engine_pool_at(&changes, t, tick_ms);
        let expected = reference.pool_at(t);
        let expected_flat: BTreeMap<(String, u64), (f64, f64)> = expected
            .iter()
            .flat_map(|(c, v)| v.iter().map(move |(p, ratio, recent)| ((c.clone(), *p), (*ratio, *recent))))
            .collect();
        assert_eq!(
            engine.keys().collect::<Vec<_>>(),
            expected_flat.keys().collect::<Vec<_>>(),
            "seed {seed}: pool differs at tick {t}"
        );
        for (k, (ratio, recent)) in &engine {
            let (r, w) = expected_flat[k];
            assert!(
                close(*ratio, r, 1e-9) && close(*recent, w, 1e-9),
                "seed {seed} tick {t} {k:?}: {ratio}/{recent} vs {r}/{w}"
            );
        }
        compared += 1;
    }
    assert!(compared > 50);
    // The final pool of the snapshot is the reference pool at the last tick.
    let last = reference.pool_at(reference.last_tick);
    let snap: BTreeMap<String, Vec<u64>> =
        s1.trending.iter().map(|(c, v)| (c.clone(), v.iter().map(|e| e.post_id).collect())).collect();
    let refr: BTreeMap<String, Vec<u64>> =
        last.iter().map(|(c, v)| (c.clone(), v.iter().map(|x| x.0).collect())).collect();
    assert_eq!(snap, refr);

    // Index: exactly the public, unblocked uploads, each in its shard, vectors as uploaded (i8 quantized).
    assert_eq!(s1.index.keys().copied().collect::<Vec<_>>(), reference.index_at_end(), "seed {seed}: index contents");
    for (shard, members) in &s1.shard_members {
        for p in members {
            assert_eq!(feedflow::dataflows::posts::shard_of(*p, config.index.shards), *shard);
        }
    }
    for (p, stored) in &s1.index {
        let original = &reference.posts[p].embedding;
        let dot: f64 = stored.iter().zip(original).map(|(a, b)| *a as f64 * *b as f64).sum();
        let na: f64 = stored.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = original.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().sqrt();
        assert!(dot / (na * nb) > 0.995, "post {p}: stored vector drifted (cos {})", dot / (na * nb));
    }

    // Pools at the end.
    assert_eq!(s1.fresh, reference.fresh_at(reference.last_tick), "seed {seed}: fresh pool");
    // Co-engagement counts: the pairs of the log's positives, bounded per shard.
    let want_related = reference.related_counts();
    assert!(want_related.values().sum::<i64>() > 4 * 4_000 / 2, "seed {seed}: the bound is reached");
    assert_eq!(s1.related, want_related, "seed {seed}: co-engagement counts");
    assert_eq!(s1.related, s2.related, "seed {seed}: co-engagement counts, 1 vs 2 workers");
    // Decayed sums agree to rounding; where two posts' values are that close their order may differ.
    let want = reference.popular_at(reference.last_tick);
    assert_eq!(s1.popular.len(), want.len(), "seed {seed}: popular list length");
    for (i, ((_, got), (_, expected))) in s1.popular.iter().zip(&want).enumerate() {
        assert!(close(*got, *expected, 1e-9), "seed {seed}: popular #{i}: {got} vs {expected}");
    }
    let floor = want.last().map_or(0.0, |(_, w)| *w) * (1.0 + 1e-9);
    let above = |list: &[(u64, f64)]| -> Vec<u64> {
        let mut v: Vec<u64> = list.iter().filter(|(_, w)| *w > floor).map(|(p, _)| *p).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(above(&s1.popular), above(&want), "seed {seed}: popular posts");

    // Interest: every user's long-term vector and session delta to 1e-5.
    let users = reference.users();
    assert_eq!(s1.users.keys().copied().collect::<Vec<_>>(), users);
    for u in users {
        let (lt, session) = reference.user_vectors(u, s1.at_ts);
        let got = &s1.users[&u];
        for i in 0..lt.len() {
            assert!(
                close(got.long_term[i], lt[i], 1e-5),
                "seed {seed} user {u} long-term[{i}]: {} vs {}",
                got.long_term[i],
                lt[i]
            );
            assert!(
                close(got.session[i], session[i], 1e-5),
                "seed {seed} user {u} session[{i}]: {} vs {}",
                got.session[i],
                session[i]
            );
        }
    }

    // Bursts: above-threshold ones enter the pool within one tick of crossing;
    // below-threshold ones never do.
    let truth = load_truth(feedflow::gen::truth_path_for(&world.log)).unwrap();
    let entered: BTreeMap<u64, u64> = changes.iter().filter(|c| c["diff"] == 1).fold(BTreeMap::new(), |mut m, c| {
        m.entry(c["post_id"].as_u64().unwrap()).or_insert(c["ts"].as_u64().unwrap());
        m
    });
    for burst in &truth.bursts {
        if burst.above_threshold {
            let crossing = (burst.start_ts as u64 / tick_ms..=burst.end_ts as u64 / tick_ms + 1)
                .find(|t| reference.pool_at(*t).values().flatten().any(|(p, _, _)| *p == burst.post_id))
                .unwrap_or_else(|| panic!("seed {seed}: burst on {} never crosses in the reference", burst.post_id));
            // The engagement that crossed the threshold happened during tick `crossing`.
            let seen = entered.get(&burst.post_id).copied().unwrap_or(u64::MAX);
            assert!(
                seen <= (crossing + 1) * tick_ms,
                "seed {seed}: burst on {} crossed in tick {crossing} but entered the pool at {seen}",
                burst.post_id
            );
        } else {
            assert!(!entered.contains_key(&burst.post_id), "seed {seed}: quiet post {} trended", burst.post_id);
        }
    }
}

#[test]
fn dataflows_match_the_reference_seed_1() {
    check_world(1);
}

#[test]
fn dataflows_match_the_reference_seed_2() {
    check_world(2);
}

#[test]
fn dataflows_match_the_reference_seed_3() {
    check_world(3);
}
