"""A tiny run of every bench code path (N≈50) so `scripts/bench` cannot rot. No timing assertions."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench import __main__ as bench_main
from bench import peers, report
from bench.floor import run_floor
from bench.stats import median, percentile
from bench.subscribers import finished_count
from tests.pg_cluster import Cluster


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([3.0, 1.0, 2.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 99, 4.0),
        ([5.0], 1, 5.0),
        ([1.0, None, 3.0], 50, 1.0),
    ],
)
def test_percentile(values: list[Any], pct: float, expected: float) -> None:
    assert percentile(values, pct) == expected


@pytest.mark.parametrize(("values", "expected"), [([1.0, 3.0], 2.0), ([None, 2.0, math.nan], 2.0)])
def test_median_skips_missing(values: list[Any], expected: float) -> None:
    assert median(values) == expected


def test_median_of_nothing_is_nan() -> None:
    assert math.isnan(median([]))


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"run": {"counts": {"lifecycle_counts": {"completed": 3, "error": 1, "cancelled": 0}}}}, 4),
        ({"body": {"run": {"c_completed": 2, "c_error": 0, "c_cancelled": 1}}}, 3),
        ({"type": "lagged"}, -1),
    ],
)
def test_finished_count(event: dict[str, Any], expected: int) -> None:
    assert finished_count(event) == expected


async def test_floor_writes_every_row(tmp_path: Path) -> None:
    result = await run_floor(50, passes=5, concurrency=8, workdir=tmp_path)
    assert result.rows == 50
    assert result.passes_per_s > 0


def test_promptfoo_config_has_one_test_per_item() -> None:
    config = peers.promptfoo_config(7)
    assert len(config["tests"]) == 7
    assert config["providers"] == ["echo"]


@pytest.mark.e2e
async def test_every_section_runs_and_reports(tmp_path: Path) -> None:
    args = argparse.Namespace(
        quick=False,
        peers=False,
        only="throughput,latency,stuck,fairness,efficiency",
        scale="smoke",
        reps=0,
        out="",
        workers="1,2",
    )
    sections = await bench_main.run(args, "pytest smoke")
    rows = sections["throughput"]["rows"]
    assert [(r["workers"], r["passes"]) for r in rows] == [(1, 250), (2, 250)]
    assert all(r["worker_peak_rss_mb"] > 0 and r["api_p99_ms"] > 0 for r in rows)
    assert [sc["to_workers"] for sc in sections["throughput"]["scaling"]] == [2]
    assert all(r["all_finished"] for r in sections["latency"]["rows"])
    assert {(r["transport"], r["workers"]) for r in sections["latency"]["rows"]} == {
        (t, w) for t in ("sse", "ws") for w in (1, 2)
    }
    assert sections["stuck"]["none_s"] > 0
    assert {(r["workers"], r["latency_ms"]) for r in sections["fairness"]["rows"]} == {
        (w, ms) for w in (1, 2) for ms in (0, 50)
    }
    assert all(r["solo_ms"] > 0 for r in sections["fairness"]["rows"])
    assert all(0 < r["efficiency"] for r in sections["efficiency"]["rows"])
    results = report.write(tmp_path, "smoke", sections)
    text = (tmp_path / "latest.md").read_text()
    for name, (title, _render) in report.RENDERERS.items():
        if name not in ("peers", "cluster", "rerun", "metrics"):  # on request (--peers, --db); others: own tests
            assert title in text
    assert orjson.loads((tmp_path / "latest.json").read_bytes())["sections"].keys() == results["sections"].keys()


@pytest.mark.e2e
async def test_the_rerun_section_runs_and_reports(tmp_path: Path) -> None:
    args = argparse.Namespace(quick=False, peers=False, only="rerun", scale="smoke", reps=0, out="", workers="1")
    sections = await bench_main.run(args, "pytest smoke")
    rows = sections["rerun"]["rows"]
    assert [(r["workers"], r["latency_ms"]) for r in rows] == [(1, 0), (1, 20)]
    assert all((r["first_calls"], r["second_calls"], r["second_hits"]) == (250, 0, 250) for r in rows)
    report.write(tmp_path, "smoke", sections)
    text = (tmp_path / "latest.md").read_text()
    assert report.RENDERERS["rerun"][0] in text and "| unchanged re-run of 50 documents, engine 0 ms" in text


@pytest.mark.e2e
async def test_the_metrics_readers_section_runs_and_reports(tmp_path: Path) -> None:
    args = argparse.Namespace(quick=False, peers=False, only="metrics", scale="smoke", reps=0, out="", workers="1")
    sections = await bench_main.run(args, "pytest smoke")
    metrics = sections["metrics"]
    assert metrics["n_docs"] == 300 and metrics["alone_s"] > 0 and metrics["with_readers_s"] > 0
    assert metrics["metrics_requests"] > 0 and metrics["ratio"] > 0
    report.write(tmp_path, "smoke", sections)
    assert report.RENDERERS["metrics"][0] in (tmp_path / "latest.md").read_text()


@pytest.mark.e2e
async def test_the_postgresql_section_runs_and_reports(tmp_path: Path, pg_cluster: Cluster) -> None:
    args = argparse.Namespace(
        quick=False, peers=False, only="cluster", scale="smoke", reps=0, out="", db=pg_cluster.url()
    )
    sections = await bench_main.run(args, "pytest smoke")
    c = sections["cluster"]
    assert {(r["store"], r["workers"]) for r in c["throughput"]} == {
        (s, w) for s in ("sqlite", "postgres") for w in (1, 2)
    }
    assert c["cross_node"]["all_finished"] and c["cross_node"]["events"] > 50
    assert c["kill9"]["exactly_once"] and c["kill9"]["orphans"] > 0
    report.write(tmp_path, "smoke", sections)
    assert "| kill -9 of a worker: results |" in (tmp_path / "latest.md").read_text()


def test_report_keeps_sections_of_earlier_runs(tmp_path: Path) -> None:
    peer_rows = {"rows": [{"tool": "x", "n_docs": 10, "note": "not measured: test"}], "reps": 1}
    report.write(tmp_path, "smoke", {"peers": peer_rows})
    fair = {"small": 5, "big": 200, "solo_ms": 10.0, "loaded_ms": math.nan, "ratio": math.nan, "big_run_s": 1.0}
    fair |= {"workers": 2, "latency_ms": 0}
    results = report.write(tmp_path, "smoke", {"fairness": {"rows": [fair]}})
    assert set(results["sections"]) == {"peers", "fairness"}
    text = (tmp_path / "latest.md").read_text()
    row = "| 5-child run beside a 200-child run, engine 0 ms, 2 workers | 10 → – ms (–×) | ≤ 3× | **not met** |"
    assert row in text
