"""The OpenAI-compatible generator against a real HTTP server on loopback, and a stack whose
production and candidate generators are configured by factory, judged end to end (pytester).

The server answers like a served model would: model ``grounded`` repeats the first context
passage (a good answer on these QA cases), ``lost`` says it does not know.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from guardrails.components.protocols import TextGenerator
from guardrails.components.remote import OpenAICompatibleGenerator
from guardrails.errors import ComponentError, PolicyError
from guardrails.stack import build_component, parse_stack


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"body": body, "auth": self.headers.get("Authorization")})
        if self.path != "/v1/chat/completions" or body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"internal error")
            return
        user = body["messages"][-1]["content"]
        first = user.split("[1] ", 1)[1].split("\n", 1)[0] if "[1] " in user else ""
        answer = first if body["model"] == "grounded" else "I do not know."
        payload = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
        if body["model"] == "malformed":
            payload = {"choices": []}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_answers_come_from_the_endpoint_in_order_with_context(server: str) -> None:
    gen = OpenAICompatibleGenerator(server, "grounded")
    assert isinstance(gen, TextGenerator)
    answers = gen.generate(["q1", "q2"], contexts=[["alpha beta"], ["gamma"]])
    assert answers == ["alpha beta", "gamma"]
    body = _Handler.seen[-1]["body"]
    assert body["temperature"] == 0 and body["max_tokens"] == 64
    assert body["messages"][0]["role"] == "system"


def test_errors_name_the_endpoint(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ComponentError, match=r"answered HTTP 500"):
        OpenAICompatibleGenerator(server, "broken").generate(["q"])
    with pytest.raises(ComponentError, match=r"no choices\[0\]\.message\.content"):
        OpenAICompatibleGenerator(server, "malformed").generate(["q"])
    with pytest.raises(ComponentError, match=r"127\.0\.0\.1:1/chat/completions"):
        OpenAICompatibleGenerator("http://127.0.0.1:1", "x", timeout=2).generate(["q"])
    with pytest.raises(ComponentError, match="api_key_env='SERVING_KEY' is not set"):
        OpenAICompatibleGenerator(server, "grounded", api_key_env="SERVING_KEY").generate(["q"])
    monkeypatch.setenv("SERVING_KEY", "s3cret")
    OpenAICompatibleGenerator(server, "grounded", api_key_env="SERVING_KEY").generate(["q"])
    assert _Handler.seen[-1]["auth"] == "Bearer s3cret"
    with pytest.raises(ComponentError, match="must start with http"):
        OpenAICompatibleGenerator("serving:8000", "x")


def test_the_fingerprint_follows_model_revision_and_prompt(server: str) -> None:
    a = OpenAICompatibleGenerator(server, "grounded")
    assert a.fingerprint == OpenAICompatibleGenerator(server, "grounded").fingerprint
    others = [
        OpenAICompatibleGenerator(server, "lost"),
        OpenAICompatibleGenerator(server, "grounded", revision="2"),
        OpenAICompatibleGenerator(server, "grounded", system_prompt="Be brief."),
    ]
    assert len({a.fingerprint, *(o.fingerprint for o in others)}) == 4


FACTORY = "guardrails.components.remote:OpenAICompatibleGenerator"


def test_factories_are_built_and_checked(server: str, tmp_path: Path) -> None:
    table = {
        "generator": {
            "factory": FACTORY,
            "url": server,
            "model": "grounded",
            "max-tokens": 32,
            "candidate": {"model": "lost"},
        }
    }
    spec = parse_stack(table, tmp_path).components["generator"]
    production, candidate = build_component(spec), build_component(spec, "candidate")
    assert (production.model, candidate.model, candidate.max_tokens) == ("grounded", "lost", 32)
    with pytest.raises(PolicyError, match="cannot be imported"):
        build_component(
            parse_stack({"generator": {"factory": "nope.mod:X"}}, tmp_path).components["generator"]
        )
    with pytest.raises(PolicyError, match=r"built a PosixPath, which is not a TextGenerator"):
        build_component(
            parse_stack({"generator": {"factory": "pathlib:Path"}}, tmp_path).components[
                "generator"
            ]
        )
    with pytest.raises(PolicyError, match="refused options"):
        bad = {"generator": {"factory": FACTORY, "url": server, "modle": "x"}}
        build_component(parse_stack(bad, tmp_path).components["generator"])
    with pytest.raises(PolicyError, match=r"give 'package\.module:callable'"):
        parse_stack({"generator": {"url": server}}, tmp_path)


QA = [
    {
        "id": f"c{i}",
        "question": f"What is item {i}?",
        "answer": f"Item {i} is the blue one.",
        "context": [f"Item {i} is the blue one."],
    }
    for i in range(30)
]

SUITE = """
import json
from pathlib import Path

QA = [json.loads(line) for line in Path("qa.jsonl").read_text().splitlines()]

def test_generation(gate, production_generator, candidate_generator):
    questions = [q["question"] for q in QA]
    contexts = [q["context"] for q in QA]
    refs = [q["answer"] for q in QA]
    gate.noninferior(
        "rouge_l",
        candidate=candidate_generator.generate(questions, contexts=contexts),
        baseline=production_generator.generate(questions, contexts=contexts),
        references=refs,
        name="generation",
    )
"""


@pytest.mark.parametrize(("candidate", "decision"), [("grounded", "promote"), ("lost", "rollback")])
def test_a_configured_remote_stack_is_judged_without_python_wiring(
    pytester: pytest.Pytester, server: str, candidate: str, decision: str
) -> None:
    pytester.makepyprojecttoml(
        f"""
[tool.guardrails]
n-resamples = 1000
[tool.guardrails.stack.generator]
factory = "{FACTORY}"
url = "{server}"
model = "grounded"
[tool.guardrails.stack.generator.candidate]
model = "{candidate}"
"""
    )
    (pytester.path / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QA))
    pytester.makepyfile(test_generation=SUITE)
    pytester.runpytest("--guardrails-verdict=v.json", "-p", "no:cacheprovider")
    verdict = json.loads((pytester.path / "v.json").read_text())
    assert verdict["decision"] == decision, verdict["reason"]
