"""Condense a `fastnn bench --json` file into one markdown table: a row per case, the
median of every contender, and jit's ratio to the fastest other contender.

    python docs/bench/summarize.py docs/bench/full.json > docs/bench/summary.md
"""
import json
import sys

COLS = ["loop", "vectorized", "jit", "mlp", "scipy", "blas", "axpy", "torch", "jax"]


def fmt(s):
    if s is None:
        return ""
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def main(path):
    d = json.load(open(path))
    rows, order = {}, []
    for r in d["results"]:
        key = (r["op"], r.get("variant", ""), r["shape"])
        if key not in rows:
            rows[key] = {}
            order.append(key)
        if r.get("status") == "ok":
            rows[key][r["contender"]] = r["median_s"]
        elif r["contender"] == "loop":
            rows[key]["loop"] = None
    s = d["settings"]
    print(f"float{'32' if '32' in s.get('dtype', 'float32') else '64'}, {s.get('threads')} thread(s), "
          f"median time per call; last column: the fastest other contender's time / jit's (> 1: jit is faster)\n")
    print("| operation | shape | " + " | ".join(COLS) + " | jit vs best other |")
    print("|---|---|" + "---:|" * (len(COLS) + 1))
    for key in order:
        row = rows[key]
        if "jit" not in row and "mlp" not in row:
            continue
        ours = "jit" if "jit" in row else "mlp"      # the epoch rows have mlp only
        others = {k: v for k, v in row.items() if k not in ("jit", "mlp", "loop") and v}
        best = min(others, key=others.get) if others else None
        ratio = f"{others[best] / row[ours]:.2f}× ({best})" if best and row[ours] else ""
        cells = []
        for c in COLS:
            if c not in row:
                cells.append("")
            elif row[c] is None:
                cells.append("too slow")
            else:
                cells.append(fmt(row[c]))
        op = key[0] + (f" {key[1]}" if key[1] else "")
        print(f"| {op} | {key[2]} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
