"""``densepose models``: the DensePose model zoo, with published metrics and cache state.

    densepose models            # a table: name, config, box AP, GPS AP, GPSm AP, dataset, cached
    densepose models --json     # the registry entries plus cache state, as JSON

Any name listed works wherever weights are expected (``--weights R_50_FPN_s1x``) and with
``densepose fetch``; the first use downloads and imports it into the cache.
"""

from __future__ import annotations

import argparse
import json

from densepose_ros.inference.model_zoo import list_models, load_registry, models_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the registry entries with their cache state as JSON")


def _ap(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def run(args: argparse.Namespace) -> int:
    registry = load_registry()
    rows = []
    for entry, cached in list_models():
        size = cached.stat().st_size if cached is not None else None
        rows.append((entry, cached, size))
    if args.json:
        print(json.dumps({
            "base_url": registry.base_url,
            "license": registry.license,
            "source": registry.source,
            "cache_dir": str(models_dir()),
            "models": [{**entry.to_dict(), "cached": cached is not None,
                        "cached_path": None if cached is None else str(cached),
                        "cached_bytes": size} for entry, cached, size in rows],
        }, indent=2))
        return 0
    header = ("name", "config", "box AP", "GPS AP", "GPSm AP", "dataset", "cached")
    table = [header] + [
        (entry.name, entry.config, _ap(entry.box_ap), _ap(entry.gps_ap), _ap(entry.gpsm_ap),
         entry.dataset, "-" if size is None else f"yes ({size / 1e6:.1f} MB)")
        for entry, _, size in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    print(f"\n{len(rows)} models, cache: {models_dir()}; weights: {registry.license}")
    return 0
