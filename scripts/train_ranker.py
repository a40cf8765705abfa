#!/usr/bin/env python3
"""Train feedflow's multi-task ranking model (LightGBM) from served impressions and export ONNX.

Usage:
  .venv/bin/python scripts/train_ranker.py --impressions IMPRESSIONS.jsonl \\
      --log EVENTS.jsonl --out-model models/ranker.onnx --out-meta models/ranker.json \\
      [--seed 1] [--horizon-ms 60000] [--validation-from-ts MS] \\
      [--head-weights 1,1.5,2,2,2.5,-3,0.5] [--allow-worse]

Rows are the items of the impressions log (one JSON line per served response,
written by `feedflow run` / `feedflow train`); repeated impression_ids, bad
lines and bad or non-finite items are skipped and counted. Feature values are
rounded to float32, the type the engine scores with. The labels of an item
shown to user u at request time t are u's engagements on that post with
t <= ts <= t + horizon in the event log (ts == t counts: `feedflow train`
places its shadow requests at the ts of the engagement they precede): heads
like, comment, save, share, follow (1 if such an engagement exists), hide (hide
or report) and dwell = min(max view dwell_ms, 60000) / 60000. The horizon
(60 s by default) is a human time scale, not the log's: it holds what the user
did next, in the same sitting, whether the log has a few hundred events a day
or thousands a second. On MovieLens-100K (ratings a few seconds apart within a
sitting) 60 s labels gave a validation next-positive HR@10 of 0.184 against
0.161 with 1 h labels, which also mark what the user rated an hour later and
teach the model what is popular that hour rather than what comes next.

Split by time, not by user: rows whose request ts >= --validation-from-ts are
the validation period (default: the last 20 % of the impressions' time span);
the rest train. Validation is a pure holdout: nothing is tuned or stopped on it.

Model: one LightGBM booster per head, 150 rounds each by default (--rounds;
fixed: no early stopping), 15 leaves, learning rate 0.05 (--learning-rate), lambda_l2 1, feature_fraction 0.8
(seeded), min_data_in_leaf =
training rows / 2000 clamped to [20, 500]. The six binary heads use the
`binary` objective, unweighted, so their outputs are probabilities (weighting
positives by negatives / positives, capped at 20, was tried: it ranked worse
on held-out periods of MovieLens-100K, 0.166 against 0.189, and of a generated
world, 0.399 against 0.417, as it spends the trees on separating the rare
positives from every easy negative rather than ordering the top). dwell uses the
`regression` (L2) objective on its fractional label, i.e. it estimates the
expected dwell fraction, clipped to [0, 1] in the graph (`xentropy` would fit a
fraction too, but onnxmltools cannot convert it). A head with fewer than 10
positives in the training split is a one-leaf booster: a constant, its
training base rate. Each split threshold t is then replaced by the largest
float32 <= t, which leaves every prediction on float32 inputs unchanged
(checked) and makes the float32 thresholds of the ONNX tree ensembles exact.

Export: each booster is converted by onnxmltools.convert_lightgbm (zipmap off);
the per-head graphs are prefixed with onnx.compose.add_prefix and glued into one
graph: float input "features" [N, F] -> Slice (P(positive) of each classifier)
/ Clip (dwell) -> Concat -> float output "heads" [N, 7] in head order. Opset 15
(the highest onnxmltools 1.16 targets; ai.onnx.ml 1 for the tree ensembles), IR
version 8. Before anything is written, onnxruntime runs the graph on 2000 rows
and must match LightGBM's own predictions within 1e-4 (exit status 1 if not).

Validation (printed, and stored under training.validation): per head ROC AUC
(sklearn; dwell: viewed vs not) and log loss; and HR@10 over the validation
requests with at least one item positive for like, comment, save, share or
follow: items ranked by the model's heads combined with --head-weights, and by
the items' `fallback_score` (where every item of the request carries one; else
the served `rank`), a hit being a positive in the top 10 (ties go to the
better served rank). The requests only one of the two hits are counted too. If
the model's HR@10 is below the fallback's, no model is written and the exit
status is 3 (unless --allow-worse); this is a plain comparison, not a
significance test. Without validation rows or validation requests with a
positive there is nothing to compare: exit status 2 (unless --allow-worse).

Metadata (--out-meta): name, version, file, input, output, features, heads,
sha256 of the .onnx bytes, and training: seed, horizon_ms, row counts,
positives, the LightGBM version and parameters, the validation
metrics and flops_per_row (for trees: expected comparisons plus one addition
per tree, summed over the heads).

Deterministic for a given input and seed (LightGBM deterministic, row-wise,
one thread; fixed ONNX producer fields; metadata without timestamps): the
.onnx and .json files are byte-identical across runs. Exit status 2 with a
one-line message for unusable input or arguments.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: the machine is shared with the Rust build and the engine

import argparse
import hashlib
import json
import math
import re
import sys
import time
import warnings

import numpy as np

HEADS = ["like", "comment", "save", "share", "follow", "hide", "dwell"]
KIND_HEAD = {"like": 0, "comment": 1, "save": 2, "share": 3, "follow": 4, "hide": 5, "report": 5}
DWELL = 6
ENGAGING = [0, 1, 2, 3, 4]  # heads whose positives make a request count for HR@10
DEFAULT_HEAD_WEIGHTS = "1,1.5,2,2,2.5,-3,0.5"
MAX_DWELL_MS = 60000.0
MIN_POSITIVES = 10  # fewer positives in training: the head is its base rate
VALIDATION_FRACTION = 0.2
TOP_K = 10
NUM_BOOST_ROUND = 150
CHECK_ROWS = 2000
OPSET, IR_VERSION = 15, 8  # the highest default opset onnxmltools 1.16 converts to
MAX_ABS_DIFF = 1e-4


class UserError(Exception):
    """Bad input or arguments: reported as one line, exit status 2."""


class ExportError(Exception):
    """The exported graph does not reproduce LightGBM: exit status 1."""


def _num(value):
    """A JSON number as float; NaN for anything else (missing, null, bool, string)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def parse_items(items, width):
    """(post ids, feature matrix, served ranks, fallback scores, number of rejected items) of one
    impression's items. A missing rank is the item's position (1-based); a missing fallback score NaN."""
    try:  # fast path: every item well-formed
        posts = [item["post_id"] for item in items]
        set(posts)  # TypeError on unhashable ids
        feats = np.array([item["features"] for item in items], dtype=np.float64)
        if feats.shape == (len(items), width):
            ranks = [_num(item.get("rank")) for item in items]
            fallback = [_num(item.get("fallback_score")) for item in items]
            ranks = [r if r == r else float(k + 1) for k, r in enumerate(ranks)]
            return posts, feats, ranks, fallback, 0
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    posts, rows, ranks, fallback = [], [], [], []
    for k, item in enumerate(items):
        try:
            post, row = item["post_id"], [float(x) for x in item["features"]]
            hash(post)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if len(row) == width:
            rank = _num(item.get("rank"))
            posts.append(post)
            rows.append(row)
            ranks.append(rank if rank == rank else float(k + 1))
            fallback.append(_num(item.get("fallback_score")))
    feats = np.array(rows, dtype=np.float64).reshape(len(rows), width)
    return posts, feats, ranks, fallback, len(items) - len(rows)


def read_impressions(path):
    """Returns (feature names, rows, stats); rows: users, posts (lists), and arrays ts, request
    (index of the impression), rank, fallback and X (float32 values held as float64)."""
    names, users, posts, times, reqs, ranks, fallback, chunks = None, [], [], [], [], [], [], []
    request_ids = []
    stats = {"lines": 0, "bad_lines": 0, "duplicates": 0, "bad_items": 0}
    seen, width = set(), None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                user, ts, items = rec["user_id"], int(rec["ts"]), rec["items"]
                hash(user)
                if not isinstance(items, list):
                    raise TypeError
            except (ValueError, KeyError, TypeError, OverflowError):
                stats["bad_lines"] += 1
                continue
            if names is None and isinstance(rec.get("features"), list):
                names = [str(n) for n in rec["features"]]
                width = len(names) if width is None else width
            iid = rec.get("impression_id")
            if isinstance(iid, str):
                if iid in seen:  # at-least-once writers may repeat an impression
                    stats["duplicates"] += 1
                    continue
                seen.add(iid)
            request = stats["lines"]
            stats["lines"] += 1
            if width is None:  # no names yet: the first item's length decides
                first = items[0] if items and isinstance(items[0], dict) else {}
                width = len(first["features"]) if isinstance(first.get("features"), list) else None
                if width is None:
                    stats["bad_items"] += len(items)
                    continue
            item_posts, feats, item_ranks, item_fallback, bad = parse_items(items, width)
            stats["bad_items"] += bad
            n = len(item_posts)
            users.extend([user] * n)
            posts.extend(item_posts)
            times.extend([ts] * n)
            reqs.extend([request] * n)
            request_ids.extend([rec.get("request_id")] * n)
            ranks.extend(item_ranks)
            fallback.extend(item_fallback)
            chunks.append(feats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow to inf: rejected just below
        X = np.concatenate(chunks).astype(np.float32).astype(np.float64) if chunks else np.zeros((0, width or 0))
    rows = {"users": users, "posts": posts, "ts": np.array(times, dtype=np.int64),
            "request": np.array(reqs, dtype=np.int64), "rank": np.array(ranks, dtype=np.float64),
            "fallback": np.array(fallback, dtype=np.float64), "X": X, "request_id": request_ids}
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        stats["bad_items"] += int((~finite).sum())
        keep = np.flatnonzero(finite)
        rows = {k: ([v[i] for i in keep] if isinstance(v, list) else v[keep]) for k, v in rows.items()}
    X = rows["X"]
    if names is None and len(X):
        print(f"warning: {path} names no features; calling them f0..f{X.shape[1] - 1}")
        names = [f"f{i}" for i in range(X.shape[1])]
    elif names is not None and len(names) != X.shape[1]:
        raise UserError(f"{path}: {len(names)} feature names but items carry {X.shape[1]} features")
    return names, rows, stats


def read_engagements(path, pairs):
    """Engagements on the (user, post) pairs of interest: {(u, p): [(ts, kind, dwell_ms)]}."""
    found, stats = {}, {"engagements": 0, "bad_lines": 0}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if '"engagement"' not in line:
                continue
            try:
                ev = json.loads(line)
                if ev.get("type") != "engagement":
                    continue
                key, ts, kind = (ev["user_id"], ev["post_id"]), int(ev["ts"]), ev["kind"]
                wanted = key in pairs
            except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
                stats["bad_lines"] += 1
                continue
            stats["engagements"] += 1
            if not wanted or (kind != "view" and kind not in KIND_HEAD):
                continue
            dwell = ev.get("dwell_ms")
            dwell = float(dwell) if isinstance(dwell, (int, float)) and np.isfinite(dwell) else 0.0
            found.setdefault(key, []).append((ts, kind, dwell))
    return found, stats


def make_labels(users, posts, times, engagements, horizon):
    Y = np.zeros((len(users), len(HEADS)), dtype=np.float64)
    for i, (u, p, t) in enumerate(zip(users, posts, times.tolist())):
        for ts, kind, dwell in engagements.get((u, p), ()):
            if t <= ts <= t + horizon:  # inclusive: a shadow request shares its engagement's ts
                if kind == "view":
                    Y[i, DWELL] = max(Y[i, DWELL], min(max(dwell, 0.0), MAX_DWELL_MS) / MAX_DWELL_MS)
                else:
                    Y[i, KIND_HEAD[kind]] = 1.0
    return Y


def lgb_params(seed, min_data_in_leaf, learning_rate=0.05):
    """Parameters shared by every head (the objective is per head)."""
    return {
        "boosting": "gbdt", "learning_rate": learning_rate, "num_leaves": 15, "max_depth": -1,
        "min_data_in_leaf": min_data_in_leaf, "min_sum_hessian_in_leaf": 1e-3, "lambda_l2": 1.0,
        "feature_fraction": 0.8, "bagging_fraction": 1.0, "bagging_freq": 0, "max_bin": 255,
        "feature_pre_filter": False, "deterministic": True, "force_row_wise": True,
        "num_threads": 1, "seed": seed, "verbosity": -1,
    }


def train_heads(lgb, X, Y, seed, num_rounds=NUM_BOOST_ROUND, learning_rate=0.05):
    """One booster per head on the training rows; returns (boosters, constant heads, params)."""
    n = len(X)
    min_data_in_leaf = int(min(500, max(20, n // 2000)))
    base = lgb_params(seed, min_data_in_leaf, learning_rate)
    dataset = lgb.Dataset(X, label=np.zeros(n), params=dict(base), free_raw_data=False).construct()
    boosters, constant = [], []
    for k, head in enumerate(HEADS):
        y = Y[:, k] if k == DWELL else (Y[:, k] > 0).astype(np.float64)
        npos = int((y > 0).sum())
        params = dict(base, objective="regression" if k == DWELL else "binary")
        rounds = num_rounds
        if npos < MIN_POSITIVES:  # no split can gain: one leaf holding the base rate
            params["min_gain_to_split"] = 1e300
            rounds = 1
            constant.append(head)
        dataset.set_label(y)
        started = time.monotonic()
        trained = lgb.train(params, dataset, num_boost_round=rounds)
        booster = snap_thresholds(lgb, trained)
        sample = X[::max(1, n // CHECK_ROWS)]
        if not np.array_equal(trained.predict(sample, num_threads=1), booster.predict(sample, num_threads=1)):
            raise ExportError(f"head {head}: float32 thresholds change LightGBM's own predictions")
        boosters.append(booster)
        note = "  (constant: fewer than %d positives)" % MIN_POSITIVES if head in constant else ""
        print(f"  {head:8s} {params['objective']:10s} {booster.num_trees():4d} trees "
              f"in {time.monotonic() - started:6.1f}s{note}")
    return boosters, constant, base


def f32_floor(text):
    """The largest float32 <= the double `text`, as text (float32 inputs compare the same with it)."""
    t = float(text)
    f = np.float32(t)
    if not np.isfinite(f) or not math.isfinite(t):  # beyond float32's range: keep the double
        return text
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return repr(float(f))


def snap_thresholds(lgb, booster):
    """The booster with each split threshold t replaced by the largest float32 <= t.

    The engine scores float32 features and the ONNX tree ensembles store float32 thresholds. For a
    float32 x, `x <= t` and `x <= f32_floor(t)` agree, so the booster's predictions on float32 inputs
    are unchanged, and the exporter's float32 cast of the new thresholds is exact: without this, a
    threshold that rounds up to a feature value seen in the data sends that value the other way in
    onnxruntime than in LightGBM (a few rows in 10^5, errors up to ~0.02 measured)."""
    text = booster.model_to_string(num_iteration=-1)
    if re.search(r"^num_cat=[1-9]", text, flags=re.M):
        raise ExportError("categorical splits are not expected (no categorical features are declared)")
    text = re.sub(r"^threshold=(.*)$", lambda m: "threshold=" + " ".join(
        f32_floor(v) for v in m.group(1).split()), text, flags=re.M)
    # the header's byte sizes of the trees no longer hold: without them LightGBM reads the trees in turn
    text = re.sub(r"^tree_sizes=.*\n", "", text, count=1, flags=re.M)
    return lgb.Booster(model_str=text)


def predict_heads(boosters, X):
    """LightGBM's own predictions, as the ONNX graph computes them: P(positive), dwell clipped to [0, 1]."""
    P = np.column_stack([b.predict(X, num_threads=1) for b in boosters]) if len(X) else np.zeros((0, len(HEADS)))
    P[:, DWELL] = np.clip(P[:, DWELL], 0.0, 1.0)
    return P


def log_loss(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean())


def read_targets(path):
    """request_id -> the post of the engagement the shadow request was placed before."""
    targets = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    targets[str(rec["request_id"])] = int(rec["post_id"])
                except (ValueError, KeyError, TypeError) as err:
                    raise UserError(f"{path}:{n}: not a {{request_id, post_id}} record ({err})") from None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from None
    if not targets:
        raise UserError(f"{path} holds no targets")
    return targets


def hit_rate(requests, positive, model_score, fallback, rank):
    """HR@10 of the model's score and of the fallback over the requests with a positive item."""
    order = np.argsort(requests, kind="stable")
    bounds = np.flatnonzero(np.diff(requests[order])) + 1
    evaluated = model_hits = fallback_hits = by_rank = model_only = fallback_only = 0
    for idx in np.split(order, bounds):
        pos = positive[idx]
        if not pos.any():
            continue
        evaluated += 1
        r = rank[idx]
        top = np.lexsort((r, -model_score[idx]))[:TOP_K]
        model_hit = bool(pos[top].any())
        fb = fallback[idx]
        if np.isfinite(fb).all():
            top = np.lexsort((r, -fb))[:TOP_K]
        else:  # no fallback scores logged: the served order
            top = np.argsort(r, kind="stable")[:TOP_K]
            by_rank += 1
        fallback_hit = bool(pos[top].any())
        model_hits += model_hit
        fallback_hits += fallback_hit
        model_only += model_hit and not fallback_hit
        fallback_only += fallback_hit and not model_hit
    return evaluated, model_hits, fallback_hits, by_rank, model_only, fallback_only


def tree_ops_per_row(boosters):
    """Comparisons (expected depth, weighted by the training rows reaching each leaf) plus one
    addition per tree, summed over all heads: the model's operations per scored row."""
    total = 0.0
    for booster in boosters:
        for tree in booster.dump_model()["tree_info"]:
            stack, weighted, rows = [(tree["tree_structure"], 0)], 0.0, 0.0
            while stack:
                node, depth = stack.pop()
                if "leaf_value" in node:
                    count = float(node.get("leaf_count", 1)) or 1.0
                    weighted += count * depth
                    rows += count
                else:
                    stack.extend([(node["left_child"], depth + 1), (node["right_child"], depth + 1)])
            total += weighted / rows + 1.0
    return max(1, int(round(total + 2 * len(HEADS))))  # + sigmoid/clip and concat per head


def build_onnx(onnx, onnxmltools, FloatTensorType, boosters, names):
    """Per-head graphs from onnxmltools, prefixed and glued into features [N, F] -> heads [N, 7]."""
    from onnx import TensorProto, compose, helper, numpy_helper

    F = len(names)
    nodes, inits, columns, ml_opset = [], [], [], 1
    for k, (head, booster) in enumerate(zip(HEADS, boosters)):
        part = onnxmltools.convert_lightgbm(
            booster, name=f"lightgbm_{head}", initial_types=[("features", FloatTensorType([None, F]))],
            target_opset=OPSET, zipmap=False)
        ml_opset = max([ml_opset] + [o.version for o in part.opset_import if o.domain == "ai.onnx.ml"])
        part = compose.add_prefix(part, f"{head}_", rename_inputs=False)  # all parts read "features"
        outputs = [o.name for o in part.graph.output]
        nodes.extend(part.graph.node)
        inits.extend(part.graph.initializer)
        col = f"{head}_column"
        if k == DWELL:  # TreeEnsembleRegressor: [N, 1]
            (value,) = [o for o in outputs if o.endswith("variable")]
            nodes.append(helper.make_node("Clip", [value, "zero", "one"], [col], name=f"{head}_clip"))
        else:  # TreeEnsembleClassifier probabilities [N, 2]: P(positive) is column 1
            (probs,) = [o for o in outputs if o.endswith("probabilities")]
            nodes.append(helper.make_node("Slice", [probs, "col_start", "col_end", "col_axis"], [col],
                                          name=f"{head}_positive"))
        columns.append(col)
    nodes.append(helper.make_node("Concat", columns, ["heads"], name="concat_heads", axis=1))
    inits += [numpy_helper.from_array(np.array(v, dtype=dt), name) for name, v, dt in [
        ("zero", 0.0, np.float32), ("one", 1.0, np.float32), ("col_start", [1], np.int64),
        ("col_end", [2], np.int64), ("col_axis", [1], np.int64)]]
    nodes = prune(nodes, "heads")
    used = {i for n in nodes for i in n.input}
    inits = [t for t in inits if t.name in used]
    graph = helper.make_graph(
        nodes, "feedflow_ranker",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", F])],
        [helper.make_tensor_value_info("heads", TensorProto.FLOAT, ["N", len(HEADS)])],
        initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ml_opset)],
        ir_version=IR_VERSION, producer_name="feedflow-train_ranker", producer_version="2",
        doc_string="feedflow multi-task ranker (LightGBM per head): features -> heads " + ",".join(HEADS))
    helper.set_model_props(model, {"features": ",".join(names), "heads": ",".join(HEADS)})
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def prune(nodes, output):
    """The nodes `output` depends on, in their order (drops the classifiers' unused label branches)."""
    producer = {o: n for n in nodes for o in n.output}
    needed, stack = set(), [output]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(node.input)
    return [n for n in nodes if id(n) in needed]


def onnx_check(ort, data, X, want, n_features):
    """Runs the exported model with onnxruntime: signature as the Rust loader checks it, values as LightGBM."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    if (inp.name, inp.type, len(inp.shape), inp.shape[-1]) != ("features", "tensor(float)", 2, n_features) or \
            (out.name, out.type, len(out.shape), out.shape[-1]) != ("heads", "tensor(float)", 2, len(HEADS)):
        raise ExportError(f"exported signature is {inp.name} {inp.type} {inp.shape} -> "
                          f"{out.name} {out.type} {out.shape}, expected features float [N, {n_features}] "
                          f"-> heads float [N, {len(HEADS)}]")
    got = sess.run(["heads"], {"features": X.astype(np.float32)})[0]
    if got.shape != want.shape:
        raise ExportError(f"onnxruntime returned shape {got.shape}, LightGBM {want.shape}")
    diff = np.abs(got.astype(np.float64) - want).max(axis=0) if len(X) else np.zeros(len(HEADS))
    if not (diff < MAX_ABS_DIFF).all():
        worst = int(np.argmax(diff))
        raise ExportError(f"onnxruntime output differs from LightGBM by {diff[worst]:.3g} on head "
                          f"{HEADS[worst]} ({len(X)} rows checked; limit {MAX_ABS_DIFF})")
    print(f"onnxruntime check: {len(X)} rows x {len(HEADS)} heads match LightGBM within {diff.max():.2e}")


def write_file(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def parse_head_weights(text):
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        weights = []
    if len(weights) != len(HEADS) or not all(math.isfinite(w) for w in weights):
        raise UserError(f"--head-weights needs {len(HEADS)} comma-separated numbers "
                        f"({','.join(HEADS)}), got {text!r}")
    return weights


def import_libraries():
    try:
        import lightgbm
        import onnx
        import onnxmltools
        import onnxruntime
        from onnxmltools.convert.common.data_types import FloatTensorType
        from sklearn.metrics import roc_auc_score
    except ImportError as err:
        raise UserError(f"{err}: install scripts/requirements.txt into .venv (scripts/setup)") from None
    return lightgbm, onnx, onnxmltools, onnxruntime, FloatTensorType, roc_auc_score


def r6(x):
    return None if x is None else round(float(x), 6)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impressions", required=True, help="impressions JSONL written by feedflow")
    ap.add_argument("--log", required=True, help="event log JSONL (engagements are the labels)")
    ap.add_argument("--out-model", required=True)
    ap.add_argument("--out-meta", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--horizon-ms", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=NUM_BOOST_ROUND,
                    help="boosting rounds per head (trees per head: the serving cost grows with them)")
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--validation-from-ts", type=int, default=None, metavar="MS",
                    help="rows whose request ts >= MS validate (default: the last 20%% of the time span)")
    ap.add_argument("--head-weights", default=DEFAULT_HEAD_WEIGHTS,
                    help=f"weights of {','.join(HEADS)} for the HR@10 comparison (default {DEFAULT_HEAD_WEIGHTS})")
    ap.add_argument("--targets", default=None, metavar="FILE",
                    help="JSONL of {request_id, post_id}: the engagement each shadow request was placed before. "
                         "HR@10 on validation then asks, as `feedflow eval` does, whether that post is in the "
                         "top 10 (default: any positive engagement of the item within the horizon)")
    ap.add_argument("--allow-worse", action="store_true",
                    help="write the model even when it ranks worse than the fallback on validation")
    args = ap.parse_args(argv)
    if not args.horizon_ms > 0:
        raise UserError("--horizon-ms must be positive")
    head_weights = parse_head_weights(args.head_weights)
    lgb, onnx, onnxmltools, ort, FloatTensorType, roc_auc_score = import_libraries()
    started = time.monotonic()

    try:
        names, rows, istats = read_impressions(args.impressions)
        X = rows["X"]
        if not len(X):
            raise UserError(f"{args.impressions}: no usable impression items "
                            f"({istats['lines']} impressions, {istats['bad_lines']} bad lines, "
                            f"{istats['bad_items']} bad items)")
        engagements, estats = read_engagements(args.log, set(zip(rows["users"], rows["posts"])))
    except OSError as err:
        raise UserError(f"cannot read {err.filename}: {err.strerror}") from None
    times = rows["ts"]
    Y = make_labels(rows["users"], rows["posts"], times, engagements, args.horizon_ms)
    positives = {h: int((Y[:, k] > 0).sum()) for k, h in enumerate(HEADS)}
    if not (Y > 0).any():
        raise UserError(f"none of the {len(X)} impression items has an engagement within "
                        f"{args.horizon_ms} ms in {args.log} (do the log and impressions match?)")
    print(f"read {istats['lines']} impressions, {len(X)} items x {X.shape[1]} features "
          f"(skipped {istats['bad_lines']} bad lines, {istats['bad_items']} bad items, "
          f"{istats['duplicates']} duplicate impressions); "
          f"{estats['engagements']} engagements ({estats['bad_lines']} bad lines) in the log "
          f"[{time.monotonic() - started:.1f}s]")

    first, last = int(times.min()), int(times.max())
    if args.validation_from_ts is None:
        cut = first + math.ceil((1.0 - VALIDATION_FRACTION) * (last - first))
    else:
        cut = args.validation_from_ts
    is_val = times >= cut
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if not len(tr):
        raise UserError(f"no impression is before the validation start ts {cut} "
                        f"(impressions span ts {first}..{last}); need a longer span or --validation-from-ts")
    train_pos = {h: int((Y[tr, k] > 0).sum()) for k, h in enumerate(HEADS)}
    if not any(train_pos[HEADS[k]] for k in ENGAGING):
        raise UserError(f"no training row (request ts < {cut}) has a like, comment, save, share or follow")
    engaged = (Y[:, ENGAGING] > 0).any(axis=1)
    # The model is compared with the fallback on every positive item of the horizon and, with
    # --targets, on what `feedflow eval` asks: is the post the user engaged with next on the page?
    comparisons = [("any positive in the horizon", "with a positive item", engaged)]
    if args.targets:
        targets = read_targets(args.targets)
        next_positive = np.array([targets.get(r) == p for r, p in zip(rows["request_id"], rows["posts"])],
                                 dtype=bool)
        comparisons.append(("next positive", "whose next positive is among the logged candidates", next_positive))
    unchecked = None  # why the model cannot be compared with the fallback (known before training)
    if not len(va):
        unchecked = f"no validation rows (no request ts >= {cut})"
    elif not engaged[va].any():
        unchecked = f"no validation request (ts >= {cut}) has an item with a like, comment, save, share or follow"
    if unchecked and not args.allow_worse:
        raise UserError(f"{unchecked}: cannot compare the model with the fallback "
                        f"(--validation-from-ts moves the split; --allow-worse writes a model anyway)")
    print(f"training on {len(tr)} rows (ts < {cut}), validating on {len(va)} rows (ts >= {cut}); "
          f"{args.rounds} rounds per head at learning rate {args.learning_rate}, 1 thread")
    boosters, constant, params = train_heads(lgb, X[tr], Y[tr], args.seed, args.rounds, args.learning_rate)
    print(f"trained in {time.monotonic() - started:.1f}s")

    val_auc, val_loss, hr = {}, {}, {}
    if len(va):
        P = predict_heads(boosters, X[va])
        for k, h in enumerate(HEADS):
            y = Y[va, k]
            both = 0 < int((y > 0).sum()) < len(y)
            val_auc[h] = r6(roc_auc_score(y > 0, P[:, k])) if both else None
            val_loss[h] = r6(log_loss(y if k == DWELL else (y > 0).astype(np.float64), P[:, k]))
        for label, _, positive in comparisons:
            evaluated, model_hits, fallback_hits, by_rank, model_only, fallback_only = hit_rate(
                rows["request"][va], positive[va], P @ np.array(head_weights),
                rows["fallback"][va], rows["rank"][va])
            if evaluated:
                m_hr, f_hr = model_hits / evaluated, fallback_hits / evaluated
                hr[label] = {"requests": evaluated, "model": r6(m_hr), "fallback": r6(f_hr),
                             "ratio": r6(m_hr / f_hr) if f_hr > 0 else None,
                             "model_only_hits": model_only, "fallback_only_hits": fallback_only,
                             "fallback_order": "served rank" if by_rank == evaluated else "fallback_score"
                             if by_rank == 0 else f"fallback_score ({by_rank} requests: served rank)"}

    print(f"\n{'head':8s} {'positives':>9s} {'train pos':>9s} {'val AUC':>8s} "
          f"{'val logloss':>11s}")
    for k, h in enumerate(HEADS):
        a, loss = val_auc.get(h), val_loss.get(h)
        note = "  (constant: its base rate)" if h in constant else ""
        print(f"{h:8s} {positives[h]:9d} {train_pos[h]:9d} "
              f"{'-' if a is None else f'{a:.4f}':>8s} {'-' if loss is None else f'{loss:.5f}':>11s}{note}")
    worse = []
    for label, which, _ in comparisons:
        if label not in hr:
            print(f"\nHR@{TOP_K} ({label}): no validation request {which}")
            continue
        h = hr[label]
        ratio = "-" if h["ratio"] is None else f"{h['ratio']:.3f}"
        print(f"\nHR@{TOP_K} ({label}) on {h['requests']} validation requests {which}: "
              f"model {h['model']:.4f} (heads weighted {args.head_weights}), "
              f"fallback {h['fallback']:.4f} (by {h['fallback_order']}); ratio {ratio}; requests hit by "
              f"the model only {h['model_only_hits']}, by the fallback only {h['fallback_only_hits']}")
        if h["model"] < h["fallback"]:
            worse.append(f"HR@{TOP_K} ({label}) {h['model']:.4f} vs {h['fallback']:.4f}")
    if unchecked or not hr:
        print(f"warning: {unchecked or 'no comparison possible'}; writing the model unchecked against the "
              f"fallback (--allow-worse)")
        if not args.allow_worse and not unchecked:
            print("train_ranker: the model cannot be compared with the fallback; not writing a model",
                  file=sys.stderr)
            return 3
    elif worse:
        text = "the trained model ranks worse than the fallback on the validation period: " + "; ".join(worse)
        if not args.allow_worse:
            print(f"train_ranker: {text}; not writing a model", file=sys.stderr)
            return 3
        print(f"warning: {text}; writing it anyway (--allow-worse)")

    data = build_onnx(onnx, onnxmltools, FloatTensorType, boosters, names)
    check = np.unique(np.linspace(0, len(X) - 1, min(CHECK_ROWS, len(X))).astype(np.int64))
    onnx_check(ort, data, X[check], predict_heads(boosters, X[check]), X.shape[1])
    sha = hashlib.sha256(data).hexdigest()
    meta = {
        "name": "ranker", "version": f"2-seed{args.seed}-{sha[:8]}",
        "file": os.path.basename(args.out_model),
        "input": "features", "output": "heads", "features": names, "heads": HEADS, "sha256": sha,
        "training": {
            "seed": args.seed, "horizon_ms": args.horizon_ms, "impressions": istats["lines"],
            "rows": len(X), "train_rows": len(tr), "validation_rows": len(va),
            "validation_from_ts": cut, "hr_labels": "next positive" if args.targets else "any positive in horizon",
            "positives": positives, "train_positives": train_pos,
            "constant_heads": constant,
            "library": f"lightgbm {lgb.__version__}", "exporter": f"onnxmltools {onnxmltools.__version__}",
            "objectives": {h: ("regression" if k == DWELL else "binary") for k, h in enumerate(HEADS)},
            "num_boost_round": args.rounds, "params": params,
            "trees": {h: b.num_trees() for h, b in zip(HEADS, boosters)},
            "head_weights": dict(zip(HEADS, head_weights)),
            "validation": {"auc": val_auc, "logloss": val_loss, f"hr@{TOP_K}": hr or None},
            # trees have no FLOPs: expected comparisons + one addition per tree, + 2 per head
            "flops_per_row": tree_ops_per_row(boosters),
        },
    }
    try:
        write_file(args.out_model, data)
        write_file(args.out_meta, (json.dumps(meta, indent=2) + "\n").encode())
    except OSError as err:
        raise UserError(f"cannot write {err.filename}: {err.strerror}") from None
    print(f"\nwrote {args.out_model} ({len(data)} bytes, sha256 {sha[:16]}…) and {args.out_meta} "
          f"in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"train_ranker: error: {err}", file=sys.stderr)
        sys.exit(2)
    except ExportError as err:
        print(f"train_ranker: error: the exported model is wrong, nothing written: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        sys.exit(1)
