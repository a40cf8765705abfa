#!/usr/bin/env python3
"""Turn MovieLens-100K (as shipped in the recbole 1.2.1 wheel) into a feedflow event log.

Usage: import_movielens.py --data DIR --out LOG.jsonl [--dimensions 64]

DIR holds recbole's atomic files ml-100k.inter (user, item, rating, timestamp in s)
and ml-100k.item (item, title, release year, genres). The log has, ordered by ts:

- one upload per movie, all 1 s before the first rating (every movie exists when the
  log starts; uploading each just before its first rating would tell the engine which
  movies are about to be rated). creator_id = 1,000,000 + item id (a movie has no
  creator; the offset keeps creators apart from user ids, so no user "owns" a movie).
  Category: the movie's rarest genre (the most specific one); content type "movie".
  Embedding: genres (one-hot, each 1/sqrt(#genres)) and release-year buckets (0.5),
  normalised, zero-padded to --dimensions. Content only: no rating goes into it.
- one engagement per rating: 5 save, 4 like, 3 view (dwell 5 s, a mild positive),
  2 skip, 1 hide; event_id "ml-USER-ITEM"; ts = rating time in ms.
Ratings at the same second are ordered by (user, item). Exit status 2 on unusable input.
"""
import argparse
import json
import math
import os
import sys

KIND = {5: "save", 4: "like", 3: "view", 2: "skip", 1: "hide"}
GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western"]
YEAR_BUCKETS = [1950, 1960, 1970, 1980, 1990, 1995, 1996, 1997, 1998]  # upper bounds; last bucket: later
CREATOR_OFFSET = 1_000_000


def fail(message):
    print(f"import_movielens: {message}", file=sys.stderr)
    sys.exit(2)


def read_table(path):
    try:
        with open(path, encoding="latin-1") as f:
            header = f.readline().rstrip("\n").split("\t")
            names = [h.split(":")[0] for h in header]
            return [dict(zip(names, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    except OSError as e:
        fail(f"cannot read {path}: {e}")


def bucket(year):
    for i, bound in enumerate(YEAR_BUCKETS):
        if year < bound:
            return i
    return len(YEAR_BUCKETS)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dimensions", type=int, default=64)
    args = ap.parse_args()
    if args.dimensions < len(GENRES) + len(YEAR_BUCKETS) + 1:
        fail(f"--dimensions must be at least {len(GENRES) + len(YEAR_BUCKETS) + 1}")
    ratings = []
    for row in read_table(os.path.join(args.data, "ml-100k.inter")):
        try:
            user, item = int(row["user_id"]), int(row["item_id"])
            rating, ts = int(float(row["rating"])), int(float(row["timestamp"]))
        except (KeyError, ValueError):
            continue
        if rating in KIND:
            ratings.append((ts * 1000, user, item, rating))
    if not ratings:
        fail("no ratings found")
    ratings.sort()
    movies = {}
    for row in read_table(os.path.join(args.data, "ml-100k.item")):
        try:
            item = int(row["item_id"])
        except (KeyError, ValueError):
            continue
        genres = [g for g in (row.get("class") or "").split() if g in GENRES] or ["unknown"]
        try:
            year = int(row.get("release_year") or 0)
        except ValueError:
            year = 0
        movies[item] = (genres, year)
    counts = {g: 0 for g in GENRES}
    for genres, _ in movies.values():
        for g in genres:
            counts[g] += 1
    start = ratings[0][0] - 1000
    rated = sorted({r[2] for r in ratings})
    with open(args.out, "w") as out:
        for item in rated:
            genres, year = movies.get(item, (["unknown"], 0))
            vec = [0.0] * args.dimensions
            for g in genres:
                vec[GENRES.index(g)] = 1.0 / math.sqrt(len(genres))
            if year > 0:
                vec[len(GENRES) + bucket(year)] = 0.5
            norm = math.sqrt(sum(x * x for x in vec))
            vec = [round(x / norm, 6) for x in vec]
            category = min(genres, key=lambda g: (counts[g], g))
            out.write(json.dumps({
                "type": "upload", "ts": start, "post_id": item, "creator_id": CREATOR_OFFSET + item,
                "embedding": vec, "category": category.lower(), "content_type": "movie", "is_public": True,
                "safety": {"nudity": 0.0, "violence": 0.0, "hate": 0.0, "borderline": 0.0},
                "event_id": f"ml-upload-{item}"}, separators=(",", ":")) + "\n")
        for ts, user, item, rating in ratings:
            e = {"type": "engagement", "ts": ts, "user_id": user, "post_id": item, "kind": KIND[rating],
                 "event_id": f"ml-{user}-{item}"}
            if rating == 3:
                e["dwell_ms"] = 5000
            out.write(json.dumps(e, separators=(",", ":")) + "\n")
    print(f"import_movielens: {len(rated)} movies, {len(ratings)} ratings -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
