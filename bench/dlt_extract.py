"""dlt reading the same deals the bridge stages, for ``bench/extract_stage.py`` (run in the bench-only
environment ``.venv-bench``, made by ``make bench`` from ``bench/requirements-dlt.txt``).

The source sends the bridge's own requests (``bench/crm_pages.py``: the same search pages, the same
properties, one association batch read per page), flattens each deal to one row (id, modified ms,
the properties, the company ids) and loads with ``write_disposition="merge"`` on ``id``, incremental
on the modified time, into one of:

- ``duckdb``: dlt's duckdb destination with parquet load files (``loader_file_format="parquet"``);
- ``sqlite``: dlt's sqlalchemy destination on a SQLite file.

Prints one JSON line: records, seconds, requests.

    .venv-bench/bin/python bench/dlt_extract.py --url http://127.0.0.1:8101 --destination duckdb \\
        --dir /tmp/dlt --properties dealname,dealstage,amount --client-id … --client-secret … --refresh-token …
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.crm_pages import modified_ms, pages, session


def main(argv: list[str] | None = None) -> int:
    import dlt

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--destination", choices=("duckdb", "sqlite"), required=True)
    parser.add_argument("--dir", type=Path, required=True, help="pipelines and data (kept between runs)")
    parser.add_argument("--properties", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--refresh-token", required=True)
    args = parser.parse_args(argv)
    props = [p for p in args.properties.split(",") if p]
    s = session(args.url, args.client_id, args.client_secret, args.refresh_token)
    counter = {"records": 0, "requests": 0}

    @dlt.resource(name="deals", write_disposition="merge", primary_key="id")
    def deals(updated: Any = dlt.sources.incremental("modified_ms", initial_value=0)) -> Any:
        for objects, companies in pages(s, args.url, props, since_ms=int(updated.last_value or 0)):
            counter["requests"] += 2
            counter["records"] += len(objects)
            yield [{"id": o["id"], "modified_ms": modified_ms(o), **(o.get("properties") or {}),
                    "company_ids": ",".join(companies.get(o["id"], []))} for o in objects]

    args.dir.mkdir(parents=True, exist_ok=True)
    if args.destination == "duckdb":
        destination = dlt.destinations.duckdb(str(args.dir / "deals.duckdb"))
        run_args: dict[str, Any] = {"loader_file_format": "parquet"}
    else:
        destination = dlt.destinations.sqlalchemy(f"sqlite:///{args.dir / 'deals.sqlite'}")
        run_args = {}
    pipeline = dlt.pipeline(pipeline_name=f"bench_deals_{args.destination}", destination=destination,
                            dataset_name="crm", pipelines_dir=str(args.dir / "pipelines"), progress=None)
    started = time.perf_counter()
    pipeline.run(deals(), **run_args)
    seconds = time.perf_counter() - started
    print(json.dumps({"records": counter["records"], "seconds": round(seconds, 3), "requests": counter["requests"],
                      "dlt": dlt.__version__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
