"""Real eval and experiment runs against a chat-completions server: the OpenAI engine end to end,
with retries, rate limits, timeouts and unparseable output counted on the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import INVOICE_SCHEMA, Api, AppFactory
from tests.engines.chat_server import ChatServer, Reply, answer, error

GOOD = {"invoice_number": "INV-1", "vendor": "ACME", "total": 10.5}
USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


@pytest.fixture
async def chat() -> AsyncIterator[ChatServer]:
    server = ChatServer()
    await server.start()
    yield server
    await server.stop()


async def _api(make_api: AppFactory, tmp_path: Path, chat: ChatServer, timeout_s: float = 5.0) -> Api:
    models = tmp_path / "models.toml"
    models.write_text(
        f'[[routes]]\nmatch = "gpt-test*"\nengine = "openai"\nbase_url = "{chat.base_url}"\n'
        f"timeout_s = {timeout_s}\nmax_concurrency = 4\n"
    )
    return await make_api(models=str(models), retry_base_s=0.001, pass_retries=3)


async def _eval_run(api: Api, model: str = "gpt-test-mini", expected: Any = 10.5) -> tuple[dict[str, Any], Any]:
    wf, block = await api.workflow_with_extract({"model": model})
    ev = await api.post(
        "/v1/workflows/evals",
        {
            "workflow_id": wf,
            "target": {"type": "block", "block_id": block},
            "source": {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"t": 1}}}},
            "assertion": {
                "target": {"output_handle_id": "output-json-0", "path": "total"},
                "condition": {"kind": "equals", "expected": expected},
            },
        },
        expect=201,
    )
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    done = await api.wait_run(run["id"])
    results = await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=200)
    assert ev["id"] == results["data"][0]["eval_id"]
    return done, results["data"][0]


async def test_structured_extraction_passes_and_records_usage(
    make_api: AppFactory, tmp_path: Path, chat: ChatServer
) -> None:
    api = await _api(make_api, tmp_path, chat)
    chat.script(answer(GOOD, usage=USAGE))
    run, result = await _eval_run(api)
    assert result["verdict"] == "passed" and result["engine"] == "openai"
    assert chat.seen[0].body["response_format"]["type"] == "json_schema"
    artifact = await api.get(f"/v1/workflows/artifacts/{result['artifact']['id']}", expect=200)
    assert artifact["usage"]["total_tokens"] == 120 and artifact["engine"] == "openai"
    assert not {k for k in run["stats"] if k in ("retried", "rate_limited", "provider_failed", "failed_passes")}
    u = run["usage"]
    assert (u["input_tokens"], u["output_tokens"], u["engine_calls"]) == (100, 20, 1)
    assert u["cost_usd"] is None and u["estimated"] is False  # a real model's tokens, no price in this models file


@pytest.mark.parametrize(
    ("first", "stat"),
    [
        (error(429, "slow down", {"Retry-After": "0"}), "rate_limited"),
        (error(500, "boom"), "provider_failed"),
        (error(503, "unavailable"), "provider_failed"),
    ],
)
async def test_transient_failures_are_retried_and_counted(
    make_api: AppFactory, tmp_path: Path, chat: ChatServer, first: Reply, stat: str
) -> None:
    api = await _api(make_api, tmp_path, chat)
    chat.script(first, answer(GOOD, usage=USAGE))
    run, result = await _eval_run(api)
    assert result["verdict"] == "passed"
    assert run["stats"][stat] == 1 and run["stats"]["retried"] == 1
    assert len(chat.seen) == 2


async def test_json_mode_fallback(make_api: AppFactory, tmp_path: Path, chat: ChatServer) -> None:
    api = await _api(make_api, tmp_path, chat)
    chat.script(error(400, "response_format json_schema is not supported"), answer(GOOD))
    _, result = await _eval_run(api)
    assert result["verdict"] == "passed"
    assert chat.seen[1].body["response_format"]["type"] == "json_object"


async def test_timeout_is_retried(make_api: AppFactory, tmp_path: Path, chat: ChatServer) -> None:
    api = await _api(make_api, tmp_path, chat, timeout_s=0.2)
    chat.script(Reply(hang=True), answer(GOOD))
    run, result = await _eval_run(api)
    assert result["verdict"] == "passed"
    assert run["stats"]["timed_out"] == 1


async def test_unparseable_output_blocks_the_eval(make_api: AppFactory, tmp_path: Path, chat: ChatServer) -> None:
    api = await _api(make_api, tmp_path, chat)
    chat.script(answer("this is not json"))
    run, result = await _eval_run(api)
    assert run["lifecycle"]["status"] == "completed"
    assert result["verdict"] == "blocked"
    assert result["assertion_result"]["failure"]["code"] == "block_execution_failed"
    assert run["stats"]["unparseable"] == 1 and run["stats"]["failed_passes"] == 1


async def test_permanent_4xx_is_not_retried(make_api: AppFactory, tmp_path: Path, chat: ChatServer) -> None:
    api = await _api(make_api, tmp_path, chat)
    chat.script(error(401, "bad key"))
    run, result = await _eval_run(api)
    assert result["verdict"] == "blocked" and len(chat.seen) == 1
    assert "retried" not in run["stats"]


async def test_model_without_route_errors_with_a_named_setting(
    make_api: AppFactory, tmp_path: Path, chat: ChatServer
) -> None:
    api = await _api(make_api, tmp_path, chat)
    run, result = await _eval_run(api, model="no-such-model")
    assert result["lifecycle"]["status"] == "error"
    assert result["error"]["error_code"] == "model_not_configured"
    assert "models" in result["lifecycle"]["message"]
    assert run["counts"]["lifecycle_counts"]["error"] == 1


async def test_experiment_on_openai_engine_scores_disagreement(
    make_api: AppFactory, tmp_path: Path, chat: ChatServer
) -> None:
    api = await _api(make_api, tmp_path, chat)
    totals = iter([10.5, 10.5, 99.0, 20.0, 20.0, 20.0])

    def reply(body: dict[str, Any]) -> Reply:
        assert body["temperature"] > 0  # n_consensus > 1 samples
        return answer({**GOOD, "total": next(totals)}, usage=USAGE)

    chat.script(*([reply] * 6))
    wf, block = await api.workflow_with_extract({"model": "gpt-test-mini", "json_schema": INVOICE_SCHEMA})
    docs = [{"handle_inputs": {"input-json-0": {"type": "json", "data": {"doc": i}}}} for i in range(2)]
    exp = await api.post(
        "/v1/workflows/experiments",
        {"workflow_id": wf, "block_id": block, "name": "e", "n_consensus": 3, "documents": docs},
        expect=201,
    )
    api_run = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    run = await api.wait_run(api_run["id"])
    assert run["lifecycle"]["status"] == "completed" and run["completed_document_count"] == 2
    assert run["score"] is not None and run["score"] < 1
    summary = await api.get(
        "/v1/workflows/experiments/metrics", params={"run_id": run["id"], "view": "summary"}, expect=200
    )
    assert summary["kind"] == "summary"
    assert min(summary["aggregate"]["likelihoods"].values()) < 1


async def test_python_function_engine_through_a_run(
    make_api: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_rules.py").write_text(
        "def extract(config, inputs, pass_index):\n"
        "    data = inputs['input-json-0']\n"
        "    return {'invoice_number': data['n'], 'vendor': None, 'total': data['t'] * 2}\n"
        "def broken(config, inputs, pass_index):\n"
        "    raise ValueError('no total here')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    api = await make_api(python_modules="my_rules")
    wf, block = await api.workflow_with_extract({"model": "python:my_rules:extract"})
    source = {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"n": "A", "t": 2}}}}
    assertion = {
        "target": {"output_handle_id": "output-json-0", "path": "total"},
        "condition": {"kind": "equals", "expected": 4},
    }
    await api.post(
        "/v1/workflows/evals",
        {"workflow_id": wf, "target": {"type": "block", "block_id": block}, "source": source, "assertion": assertion},
        expect=201,
    )
    run = await api.wait_run((await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201))["id"])
    assert run["counts"]["outcome"]["passed"] == 1
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"model": "python:my_rules:broken"}}, expect=200)
    run = await api.wait_run((await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201))["id"])
    results = await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=200)
    failure = results["data"][0]["assertion_result"]["failure"]
    assert results["data"][0]["verdict"] == "blocked" and "no total here" in failure["message"]
