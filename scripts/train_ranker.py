#!/usr/bin/env python3
"""Train feedflow's multi-task ranking model from served impressions and export ONNX.

Usage:
  .venv/bin/python scripts/train_ranker.py --impressions IMPRESSIONS.jsonl \\
      --log EVENTS.jsonl --out-model models/ranker.onnx --out-meta models/ranker.json \\
      [--seed 1] [--horizon-ms 3600000] [--epochs 12] [--hidden 32] \\
      [--batch-size 256] [--lr 0.003]

Rows are the items of the impressions log (one JSON line per served response,
written by `feedflow run`). The labels of an item shown to user u at time t are
u's engagements on that post with t < ts <= t + horizon in the event log:
heads like, comment, save, share, follow (1 if such an engagement exists), hide
(hide or report) and dwell = min(max view dwell_ms, 60000) / 60000.

Model: standardize (train-split mean/std; std 0 -> 1) -> Gemm -> ReLU -> Gemm ->
Sigmoid, trained with mini-batch Adam on binary cross-entropy averaged over the
seven heads (dwell uses BCE on its fractional label). Positive labels of the six
binary heads are weighted by min(20, negatives / positives) of the training
split (dwell is unweighted); the weights are written to the metadata as
`training.pos_weight`, so those heads' outputs are ranking scores whose odds are
inflated by that factor (divide the odds by it to recalibrate). Users are split
90/10 into train/validation by a hash of user_id; validation reports per-head
AUC (dwell: viewed vs not) and unweighted log loss.

Everything is deterministic for a given input and seed (numpy Generator, BLAS
forced single-threaded, fixed ONNX producer fields): the .onnx file is
byte-identical across runs. Exit status 2 with a message for unusable input.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # single-threaded BLAS keeps float results bit-reproducible

import argparse
import hashlib
import json
import sys
import time

import numpy as np

HEADS = ["like", "comment", "save", "share", "follow", "hide", "dwell"]
KIND_HEAD = {"like": 0, "comment": 1, "save": 2, "share": 3, "follow": 4, "hide": 5, "report": 5}
DWELL = 6
MAX_DWELL_MS = 60000.0
MAX_POS_WEIGHT = 20.0
OPSET, IR_VERSION = 17, 10


class UserError(Exception):
    """Bad input or arguments: reported as one line, exit status 2."""


def parse_items(items, width):
    """(post ids, feature matrix, number of rejected items) of one impression's items."""
    try:  # fast path: every item well-formed
        posts = [item["post_id"] for item in items]
        set(posts)  # TypeError on unhashable ids
        feats = np.array([item["features"] for item in items], dtype=np.float64)
        if feats.shape == (len(items), width):
            return posts, feats, 0
    except (ValueError, KeyError, TypeError):
        pass
    posts, rows = [], []
    for item in items:
        try:
            post, row = item["post_id"], [float(x) for x in item["features"]]
            hash(post)
        except (ValueError, KeyError, TypeError):
            continue
        if len(row) == width:
            posts.append(post)
            rows.append(row)
    return posts, np.array(rows, dtype=np.float64).reshape(len(rows), width), len(items) - len(rows)


def read_impressions(path):
    """Returns (feature names, user ids, post ids, ts array, feature matrix, stats)."""
    names, users, posts, times, chunks = None, [], [], [], []
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
            except (ValueError, KeyError, TypeError):
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
            stats["lines"] += 1
            if width is None:  # no names yet: the first item's length decides
                first = items[0] if items and isinstance(items[0], dict) else {}
                width = len(first["features"]) if isinstance(first.get("features"), list) else None
                if width is None:
                    stats["bad_items"] += len(items)
                    continue
            item_posts, feats, bad = parse_items(items, width)
            stats["bad_items"] += bad
            users.extend([user] * len(item_posts))
            posts.extend(item_posts)
            times.extend([ts] * len(item_posts))
            chunks.append(feats)
    X = np.concatenate(chunks) if chunks else np.zeros((0, width or 0))
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        stats["bad_items"] += int((~finite).sum())
        keep = np.flatnonzero(finite)
        X = X[keep]
        users, posts, times = [users[i] for i in keep], [posts[i] for i in keep], [times[i] for i in keep]
    if names is None and len(X):
        print(f"warning: {path} names no features; calling them f0..f{X.shape[1] - 1}")
        names = [f"f{i}" for i in range(X.shape[1])]
    elif names is not None and len(names) != X.shape[1]:
        raise UserError(f"{path}: {len(names)} feature names but items carry {X.shape[1]} features")
    return names, users, posts, np.array(times, dtype=np.int64), X, stats


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
            except (ValueError, KeyError, TypeError, AttributeError):
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
            if t < ts <= t + horizon:
                if kind == "view":
                    Y[i, DWELL] = max(Y[i, DWELL], min(max(dwell, 0.0), MAX_DWELL_MS) / MAX_DWELL_MS)
                else:
                    Y[i, KIND_HEAD[kind]] = 1.0
    return Y


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))


def forward(params, X):
    W1, b1, W2, b2 = params
    return np.maximum(X @ W1 + b1, 0.0) @ W2 + b2  # logits


def train(X, Y, pos_weight, hidden, epochs, batch, lr, rng):
    n, F = X.shape
    W1 = rng.normal(0.0, np.sqrt(2.0 / F), (F, hidden))
    W2 = rng.normal(0.0, 0.1 / np.sqrt(hidden), (hidden, len(HEADS)))
    # start each head at its (weighted) base rate so rare heads do not spend epochs getting there
    pos = Y.sum(axis=0)
    rate = np.clip(pos * pos_weight / (pos * pos_weight + (n - pos)), 1e-4, 1 - 1e-4)
    params = [W1, np.zeros(hidden), W2, np.log(rate / (1 - rate))]
    m, v = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
    for epoch in range(epochs):
        perm, total = rng.permutation(n), 0.0
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            x, y = X[idx], Y[idx]
            W1, b1, W2, b2 = params
            h = x @ W1 + b1
            a = np.maximum(h, 0.0)
            z = a @ W2 + b2
            w = 1.0 + (pos_weight - 1.0) * y  # positives weigh pos_weight, negatives 1
            total += float((w * bce(z, y)).sum())
            g = w * (sigmoid(z) - y) / (len(idx) * len(HEADS))
            ga = (g @ W2.T) * (h > 0)
            grads = [x.T @ ga, ga.sum(axis=0), a.T @ g, g.sum(axis=0)]
            step += 1
            for k, gk in enumerate(grads):
                m[k] = beta1 * m[k] + (1 - beta1) * gk
                v[k] = beta2 * v[k] + (1 - beta2) * gk * gk
                mhat, vhat = m[k] / (1 - beta1 ** step), v[k] / (1 - beta2 ** step)
                params[k] = params[k] - lr * mhat / (np.sqrt(vhat) + eps)
        print(f"  epoch {epoch + 1:3d}/{epochs}  weighted train loss {total / (n * len(HEADS)):.5f}")
    return params


def bce(z, y):
    """Binary cross-entropy from logits, elementwise (stable for large |z|)."""
    return np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))


def auc(scores, labels):
    """Rank-based ROC AUC (Mann-Whitney U, ties averaged); None without both classes."""
    labels = labels.astype(bool)
    npos = int(labels.sum())
    nneg = len(labels) - npos
    if npos == 0 or nneg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, weights=ranks) / counts)[inverse]  # average rank per tie group
    return float((ranks[labels].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def build_onnx(mean, std, params, names):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    W1, b1, W2, b2 = (p.astype(np.float32) for p in params)
    inits = [numpy_helper.from_array(a.astype(np.float32), name) for a, name in
             [(mean, "mean"), (std, "std"), (W1, "W1"), (b1, "b1"), (W2, "W2"), (b2, "b2")]]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centered"], name="standardize_sub"),
        helper.make_node("Div", ["centered", "std"], ["scaled"], name="standardize_div"),
        helper.make_node("Gemm", ["scaled", "W1", "b1"], ["hidden_pre"], name="dense1"),
        helper.make_node("Relu", ["hidden_pre"], ["hidden"], name="relu"),
        helper.make_node("Gemm", ["hidden", "W2", "b2"], ["logits"], name="dense2"),
        helper.make_node("Sigmoid", ["logits"], ["heads"], name="sigmoid"),
    ]
    graph = helper.make_graph(
        nodes, "feedflow_ranker",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", len(names)])],
        [helper.make_tensor_value_info("heads", TensorProto.FLOAT, ["batch", len(HEADS)])],
        initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="feedflow-train_ranker", producer_version="1",
        doc_string="feedflow multi-task ranker: features -> heads " + ",".join(HEADS))
    helper.set_model_props(model, {"features": ",".join(names), "heads": ",".join(HEADS)})
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def write_file(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impressions", required=True, help="impressions JSONL written by feedflow")
    ap.add_argument("--log", required=True, help="event log JSONL (engagements are the labels)")
    ap.add_argument("--out-model", required=True)
    ap.add_argument("--out-meta", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--horizon-ms", type=int, default=3_600_000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.003)
    args = ap.parse_args(argv)
    for name in ("horizon_ms", "epochs", "hidden", "batch_size", "lr"):
        if not getattr(args, name) > 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    started = time.monotonic()

    try:
        names, users, posts, times, X, istats = read_impressions(args.impressions)
        if not len(X):
            raise UserError(f"{args.impressions}: no usable impression items "
                            f"({istats['lines']} impressions, {istats['bad_lines']} bad lines, "
                            f"{istats['bad_items']} bad items)")
        engagements, estats = read_engagements(args.log, set(zip(users, posts)))
    except OSError as err:
        raise UserError(f"cannot read {err.filename}: {err.strerror}") from None
    Y = make_labels(users, posts, times, engagements, args.horizon_ms)
    positives = {h: int((Y[:, k] > 0).sum()) for k, h in enumerate(HEADS)}
    if not (Y > 0).any():
        raise UserError(f"none of the {len(X)} impression items has an engagement within "
                        f"{args.horizon_ms} ms in {args.log} (do the log and impressions match?)")
    print(f"read {istats['lines']} impressions, {len(X)} items x {X.shape[1]} features "
          f"(skipped {istats['bad_lines']} bad lines, {istats['bad_items']} bad items, "
          f"{istats['duplicates']} duplicate impressions); "
          f"{estats['engagements']} engagements ({estats['bad_lines']} bad lines) in the log")

    # users whose sha256(str(user_id)) is 0 mod 10 validate (~10 %), the others train
    val_users = {u for u in set(users) if int(hashlib.sha256(str(u).encode()).hexdigest(), 16) % 10 == 0}
    is_val = np.fromiter((u in val_users for u in users), dtype=bool, count=len(users))
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if not len(tr):
        raise UserError(f"all {len(set(users))} users fell into the validation split; need more users")
    mean, std = X[tr].mean(axis=0), X[tr].std(axis=0)
    std[~(std > 1e-12)] = 1.0
    Z = (X - mean) / std
    npos = Y[tr].sum(axis=0)
    pos_weight = np.clip((len(tr) - npos) / np.maximum(npos, 1), 1.0, MAX_POS_WEIGHT)
    pos_weight[(npos == 0) | (np.arange(len(HEADS)) == DWELL)] = 1.0
    print(f"training on {len(tr)} rows, validating on {len(va)} rows "
          f"({len(val_users)} of {len(set(users))} users)")
    rng = np.random.Generator(np.random.PCG64(args.seed))
    params = train(Z[tr], Y[tr], pos_weight, args.hidden, args.epochs, args.batch_size, args.lr, rng)

    val_auc, val_loss = {}, {}
    if len(va):
        logits = forward(params, Z[va])
        for k, h in enumerate(HEADS):
            a = auc(logits[:, k], Y[va, k] > 0)
            val_auc[h] = None if a is None else round(a, 6)
            val_loss[h] = round(float(bce(logits[:, k], Y[va, k]).mean()), 6)

    data = build_onnx(mean, std, params, names)
    onnx_check(data, X[va if len(va) else tr[:50_000]].astype(np.float32), mean, std, params)
    sha = hashlib.sha256(data).hexdigest()
    F, H = X.shape[1], args.hidden
    meta = {
        "name": "ranker", "version": f"1-seed{args.seed}-{sha[:8]}",
        "file": os.path.basename(args.out_model),
        "input": "features", "output": "heads", "features": names, "heads": HEADS, "sha256": sha,
        "training": {
            "seed": args.seed, "horizon_ms": args.horizon_ms, "impressions": istats["lines"],
            "rows": len(X), "train_rows": len(tr), "validation_rows": len(va),
            "positives": positives,
            "pos_weight": {h: round(float(w), 6) for h, w in zip(HEADS, pos_weight)},
            "validation": {"auc": val_auc, "logloss": val_loss},
            "hidden": H, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            # Sub+Div, Gemm (2FH + H bias), ReLU, Gemm (2H*7 + 7 bias), Sigmoid (~4 per head)
            "flops_per_row": 2 * (F * H + H * 7) + 2 * F + 2 * H + 7 + 4 * 7,
        },
    }
    try:
        write_file(args.out_model, data)
        write_file(args.out_meta, (json.dumps(meta, indent=2) + "\n").encode())
    except OSError as err:
        raise UserError(f"cannot write {err.filename}: {err.strerror}") from None

    print(f"\n{'head':8s} {'positives':>9s} {'pos_weight':>10s} {'val AUC':>8s} {'val logloss':>11s}")
    for k, h in enumerate(HEADS):
        a, loss = val_auc.get(h), val_loss.get(h)
        note = "  (no positives: learns a low constant)" if positives[h] == 0 else ""
        print(f"{h:8s} {positives[h]:9d} {pos_weight[k]:10.2f} {'-' if a is None else f'{a:.4f}':>8s} "
              f"{'-' if loss is None else f'{loss:.5f}':>11s}{note}")
    if not len(va):
        print("warning: no validation users; validation metrics are empty")
    print(f"\nwrote {args.out_model} ({len(data)} bytes, sha256 {sha[:16]}…) and {args.out_meta} "
          f"in {time.monotonic() - started:.1f}s")
    return 0


def onnx_check(data, X, mean, std, params):
    """Runs the exported model with onnxruntime and compares it with numpy (float32)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    got = sess.run(["heads"], {"features": X})[0]
    p32 = [p.astype(np.float32) for p in params]
    Z = (X - mean.astype(np.float32)) / std.astype(np.float32)
    want = sigmoid(forward(p32, Z))
    diff = float(np.abs(got - want).max()) if len(X) else 0.0
    if got.shape != want.shape or diff > 1e-4:
        raise RuntimeError(f"onnxruntime output differs from numpy by {diff} (shape {got.shape})")
    print(f"onnxruntime check: {len(X)} rows match numpy within {diff:.2e}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"train_ranker: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        sys.exit(1)
