"""A generator behind an OpenAI-compatible ``/chat/completions`` endpoint (vLLM, TGI, llama.cpp
server, a hosted API): the production or candidate generator of a team that serves its models
over HTTP. Standard library only; greedy (temperature 0) so answers are repeatable.

The prompt is :func:`guardrails.components.generator.build_messages` (system + numbered context
passages + question), the same messages a local :class:`~guardrails.components.generator.Generator`
renders with its chat template, so local and remote answers are judged on equal terms.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from guardrails.artifacts import fingerprint_json
from guardrails.errors import ComponentError

__all__ = ["DEFAULT_SYSTEM_PROMPT", "OpenAICompatibleGenerator"]

DEFAULT_SYSTEM_PROMPT = (
    "Answer the question using only the given context. Be concise: one or two sentences. If "
    "the request is harmful, illegal or asks for another person's private data, refuse."
)


class OpenAICompatibleGenerator:
    """Answers from ``{url}/chat/completions`` with ``model``.

    ``api_key_env`` names the environment variable holding a bearer token (never the token
    itself: configuration is committed). ``revision`` is part of the fingerprint: bump it when
    the model behind the URL changes, since the URL alone cannot tell.
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        max_tokens: int = 64,
        timeout: float = 60.0,
        revision: str = "",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ComponentError(f"url={url!r} must start with http:// or https://")
        if max_tokens <= 0 or timeout <= 0:
            raise ComponentError(f"max_tokens={max_tokens} and timeout={timeout} must be > 0")
        self.url = url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.revision = revision

    @property
    def fingerprint(self) -> str:
        return fingerprint_json(
            {
                "kind": "openai-compatible",
                "url": self.url,
                "model": self.model,
                "revision": self.revision,
                "system_prompt": self.system_prompt,
                "max_tokens": self.max_tokens,
            }
        )

    def generate(
        self,
        prompts: Sequence[str],
        *,
        contexts: Sequence[Sequence[str]] | None = None,
        max_new_tokens: int | None = None,
        **_: Any,
    ) -> list[str]:
        """One greedy answer per question, grounded in its ``contexts`` row, in input order."""
        from guardrails.components.generator import build_messages

        if isinstance(prompts, str):
            raise ComponentError("prompts must be a list of strings, not one string")
        rows = contexts if contexts is not None else [()] * len(prompts)
        if len(rows) != len(prompts):
            raise ComponentError(f"len(contexts)={len(rows)} != len(prompts)={len(prompts)}")
        limit = max_new_tokens or self.max_tokens
        return [
            self._complete(build_messages(q, c, system=self.system_prompt), limit)
            for q, c in zip(prompts, rows, strict=True)
        ]

    def _complete(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        request = urllib.request.Request(
            f"{self.url}/chat/completions",
            data=json.dumps(body).encode(),
            headers=self._headers(),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ComponentError(
                f"{self.url}/chat/completions answered HTTP {exc.code}: {exc.read()[:200]!r}"
            ) from None
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise ComponentError(f"{self.url}/chat/completions: {exc}") from None
        return _content(data, self.url)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ComponentError(f"api_key_env={self.api_key_env!r} is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers


def _content(data: Any, url: str) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ComponentError(
            f"{url}/chat/completions: no choices[0].message.content in {str(data)[:200]!r}"
        ) from None
    if not isinstance(content, str):
        raise ComponentError(f"{url}/chat/completions: content={content!r} is not text")
    return content.strip()
