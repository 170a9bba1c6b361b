"""Engine for any OpenAI-compatible `/chat/completions` endpoint (OpenAI, vLLM, Ollama, llama.cpp ...).

Each pass is one structured-output call. With `structured_outputs="auto"` the engine first asks
for `response_format: json_schema`; a server that rejects it (HTTP 400/422 naming response_format
or json_schema) is switched, for the life of this engine instance, to `json_object` with the
schema in the prompt; answers are validated locally with `jsonschema` either way.

The engine never retries: it classifies failures as `EngineError`s (`transient` tells the runner
whether a retry makes sense, `retry_after` how long the provider asked to wait). Concurrency and
requests/tokens-per-minute limits live on the instance, so every run routed here shares them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiohttp
import anyio
import orjson

from orchestrator.engines.base import EngineError, JudgeAnswer, JudgeRequest, PassOutput, PassRequest, Usage
from orchestrator.engines.openai.prompts import (
    StructuredTask,
    decode_content,
    judge_task,
    task_for,
)
from orchestrator.engines.openai.schema import unparseable
from orchestrator.engines.ratelimit import ProviderLimiter, parse_retry_after

log = logging.getLogger(__name__)

StructuredOutputs = Literal["auto", "json_schema", "json_object"]
_REJECTION_HINTS = ("response_format", "json_schema")


def pass_temperature(request: PassRequest) -> float:
    """The block's temperature, else sampled passes for consensus and a deterministic single pass (§4.1)."""
    configured = request.config.get("temperature")
    if isinstance(configured, int | float) and not isinstance(configured, bool):
        return float(configured)
    return 1.0 if request.n_passes > 1 else 0.0


def pass_seed(request: PassRequest) -> int:
    # Each pass gets its own seed: a provider honouring `seed` would otherwise return n identical
    # samples and consensus would measure nothing.
    return (request.seed * 1_000_003 + request.pass_index) % 2**31


def _extra(request: PassRequest) -> dict[str, Any]:
    if request.config.get("reasoning_effort"):
        return {"reasoning_effort": request.config["reasoning_effort"]}
    return {}


def _provider_message(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return text[:500] or "(empty response body)"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        for key in ("message", "detail"):
            if data.get(key):
                return str(data[key])
    return text[:500]


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model_override: str | None = None,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        timeout_s: float = 120.0,
        structured_outputs: StructuredOutputs = "auto",
    ) -> None:
        if structured_outputs not in ("auto", "json_schema", "json_object"):
            raise ValueError(f"structured_outputs must be auto, json_schema or json_object, not {structured_outputs!r}")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.model_override = model_override
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.structured_outputs: StructuredOutputs = structured_outputs
        self.limiter = ProviderLimiter(requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute)
        self._url = f"{self.base_url}/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._mode: Literal["json_schema", "json_object"] = (
            "json_object" if structured_outputs == "json_object" else "json_schema"
        )
        # Created on first use, inside the event loop that will use them.
        self._session: aiohttp.ClientSession | None = None
        self._slots: anyio.CapacityLimiter | None = None

    @property
    def response_format_mode(self) -> str:
        """`json_schema`, or `json_object` once the server has refused structured outputs."""
        return self._mode

    def immediate(self, config: Mapping[str, Any]) -> bool:
        return False

    async def run_pass(self, request: PassRequest) -> PassOutput:
        model = self._model(request.config)
        task = task_for(request)
        output, usage = await self._ask(
            model, task, temperature=pass_temperature(request), seed=pass_seed(request), extra=_extra(request)
        )
        return PassOutput(output=output, engine=self.name, model=str(request.config.get("model") or model), usage=usage)

    def cache_identity(self, request: PassRequest) -> Any:
        """The request as it would be posted (endpoint, body: model, messages with the documents, schema,
        temperature, parameters), in the response format this route is configured for rather than the one
        a server's refusal may have switched it to: the question is the same either way. The per-pass
        seed follows from the run's seed and the pass index. Never the key."""
        mode = "json_object" if self.structured_outputs == "json_object" else "json_schema"
        task = task_for(request)
        body = self._body(self._model(request.config), task, mode, pass_temperature(request), None, _extra(request))
        return {"url": self._url, "body": body, "run_seed": request.seed}

    def set_share(self, fraction: float) -> None:
        """Several workers use this route: each keeps `fraction` of its requests/tokens per minute and of
        its concurrency, so the route's limits hold for all of them together."""
        self.limiter.scale(fraction)
        slots = max(1, round(self.max_concurrency * fraction))
        if self._slots is None:
            self._slots = anyio.CapacityLimiter(slots)
        else:
            self._slots.total_tokens = slots

    async def judge(self, request: JudgeRequest) -> JudgeAnswer:
        answer, _ = await self._ask(self._model(request.config), judge_task(request), temperature=0.0)
        if not isinstance(answer, JudgeAnswer):  # pragma: no cover - judge_task always builds one
            raise unparseable("the judge answer could not be read")
        return answer

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ------------------------------------------------------------ internals

    def _model(self, config: Mapping[str, Any]) -> str:
        model = self.model_override or config.get("model")
        if not model:
            raise EngineError(kind="config", code="model_missing", message="the block config names no model")
        return str(model)

    async def _ask(
        self,
        model: str,
        task: StructuredTask,
        *,
        temperature: float,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[Any, Usage | None]:
        mode = self._mode
        estimate = task.estimate_tokens()
        try:
            data = await self._post(self._body(model, task, mode, temperature, seed, extra), estimate)
        except EngineError as exc:
            fallback = self.structured_outputs == "auto" and mode == "json_schema"
            if not (fallback and exc.details.get("response_format_rejected")):
                raise
            if self._mode == "json_schema":
                log.warning("%s rejected json_schema output (%s); using json_object mode", self.base_url, exc.message)
                self._mode = "json_object"
            data = await self._post(self._body(model, task, "json_object", temperature, seed, extra), estimate)
        content, usage = self._read(data)
        return task.finish(decode_content(content)), usage

    def _body(
        self,
        model: str,
        task: StructuredTask,
        mode: str,
        temperature: float,
        seed: int | None,
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if mode == "json_schema" and task.wire_schema is not None:
            response_format: dict[str, Any] = {
                "type": "json_schema",
                "json_schema": {"name": task.name, "schema": task.wire_schema, "strict": task.strict},
            }
        else:
            response_format = {"type": "json_object"}
        body: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": task.system_for(mode)},
                {"role": "user", "content": task.content},
            ],
            "temperature": temperature,
            "response_format": response_format,
        }
        if seed is not None:
            body["seed"] = seed
        body.update(extra or {})
        return body

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),  # `timeout_s` is enforced around each call
                connector=aiohttp.TCPConnector(limit=self.max_concurrency),
            )
        return self._session

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._slots is None:
            self._slots = anyio.CapacityLimiter(self.max_concurrency)
        async with self._slots:
            yield

    async def _post(self, body: dict[str, Any], estimate: int) -> dict[str, Any]:
        session = self._client()
        async with self._slot():
            await self.limiter.acquire(estimate)
            try:
                with anyio.fail_after(self.timeout_s):
                    async with session.post(self._url, data=orjson.dumps(body), headers=self._headers) as resp:
                        status, headers, raw = resp.status, dict(resp.headers), await resp.read()
            except TimeoutError:
                raise EngineError(
                    kind="timeout",
                    code="pass_timeout",
                    message=f"no answer from {self.base_url} within {self.timeout_s:g}s",
                    transient=True,
                ) from None
            except aiohttp.ClientError as exc:
                raise EngineError(
                    kind="provider",
                    code="provider_unavailable",
                    message=f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}",
                    transient=True,
                ) from None
        if status >= 400:
            raise self._http_error(status, headers, raw)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise EngineError(
                kind="unparseable",  # the provider answered: its answer is what cannot be read
                code="provider_bad_response",
                message=f"{self.base_url} answered HTTP {status} with a body that is not a JSON object",
                transient=True,
            )
        usage = data.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
            self.limiter.settle(estimate, usage["total_tokens"])
        return data

    def _http_error(self, status: int, headers: Mapping[str, str], raw: bytes) -> EngineError:
        message = _provider_message(raw)
        details: dict[str, Any] = {"status": status}
        if status == 429:
            retry_after = parse_retry_after(headers)
            return EngineError(
                kind="rate_limited",
                code="rate_limited",
                message=f"rate limited by {self.base_url}: {message}",
                transient=True,
                retry_after=retry_after,
                details=details,
            )
        if status >= 500 or status == 408:
            return EngineError(
                kind="provider",
                code="provider_unavailable",
                message=f"{self.base_url} answered HTTP {status}: {message}",
                transient=True,
                details=details,
            )
        lowered = raw.decode("utf-8", "replace").lower()
        if status in (400, 422) and any(hint in lowered for hint in _REJECTION_HINTS):
            details["response_format_rejected"] = True
        return EngineError(
            kind="provider",
            code="provider_rejected",
            message=f"{self.base_url} rejected the request (HTTP {status}): {message}",
            details=details,
        )

    @staticmethod
    def _read(data: Mapping[str, Any]) -> tuple[str, Usage | None]:
        raw_usage = data.get("usage")
        usage = None
        if isinstance(raw_usage, dict):
            usage = Usage(
                prompt_tokens=int(raw_usage.get("prompt_tokens") or 0),
                completion_tokens=int(raw_usage.get("completion_tokens") or 0),
                total_tokens=int(raw_usage.get("total_tokens") or 0),
            )
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise EngineError(
                kind="unparseable",  # the provider answered: its answer is what cannot be read
                code="provider_bad_response",
                message="the provider's answer has no choices",
                transient=True,
            )
        message = choices[0].get("message") or {}
        content = message.get("content")
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if choices[0].get("finish_reason") == "length":
            raise unparseable("the answer was cut off (finish_reason=length)", content=str(content)[:500])
        if not isinstance(content, str) or not content.strip():
            refusal = message.get("refusal")
            raise unparseable(f"the model refused: {refusal}" if refusal else "the model returned no content")
        return content, usage
