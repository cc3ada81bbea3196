"""``[tool.guardrails.stack]``: domains parsed in order with their files, mistakes named, and
the plugin parametrizing ``domain`` from it (pytester)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardrails.errors import PolicyError
from guardrails.policy import parse_policies
from guardrails.stack import load_stack, parse_stack

TABLE = {
    "artifacts": "out/artifacts",
    "domains": {
        "zeta": {"golden": "g/zeta", "role": "new", "qa": "elsewhere/qa.jsonl"},
        "alpha": {"golden": "g/alpha"},
    },
}


def test_domains_keep_their_order_roles_and_default_files(tmp_path: Path) -> None:
    stack = parse_stack(TABLE, tmp_path)
    assert stack.names() == ("zeta", "alpha")  # configuration order, not sorted
    assert stack.names("new") == ("zeta",) and stack.names("established") == ("alpha",)
    zeta, alpha = stack.domains["zeta"], stack.domains["alpha"]
    assert zeta.qa == tmp_path / "elsewhere" / "qa.jsonl"
    assert zeta.canaries == tmp_path / "g" / "zeta" / "canaries.jsonl"
    assert alpha.golden == tmp_path / "g" / "alpha" and not alpha.is_new
    assert stack.artifacts == tmp_path / "out" / "artifacts"


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"domains": {"a": {"role": "new"}}}, "golden=None: give the BEIR folder's path"),
        ({"domains": {"a": {"golden": "g", "role": "old"}}}, "role='old'; allowed values"),
        ({"domains": {"a": {"golden": "g", "gold": 1}}}, "unknown key(s) ['gold']"),
        ({"domain": {}}, "unknown key(s) ['domain']"),
        ({"domains": ["a"]}, "domains must be a table"),
        ({"domains": {"a": {"golden": "g", "qa": 3}}}, "qa=3 must be a file path"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, table: dict, needle: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_stack(table, tmp_path)
    assert needle in str(err.value)


def test_the_stack_table_is_allowed_beside_the_policies(tmp_path: Path) -> None:
    parse_policies({"stack": TABLE, "policies": {}})  # not an unknown top-level key
    assert load_stack(tmp_path / "absent.toml").domains == {}


PYPROJECT = """
[tool.guardrails.stack.domains.billing]
golden = "golden/billing"
[tool.guardrails.stack.domains.devices]
golden = "golden/devices"
role = "new"
"""

SUITE = """
import pytest

@pytest.mark.parametrize("metric", ["ndcg@10", "mrr"])
def test_each_domain(domain, metric, guardrails_stack):
    assert domain in guardrails_stack.domains

@pytest.mark.parametrize("domain", ["only-this"])
def test_explicit(domain):
    assert domain == "only-this"
"""


def test_the_plugin_runs_a_domain_test_once_per_configured_domain(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makepyfile(test_domains=SUITE)
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "*test_each_domain[[]ndcg@10-billing[]] PASSED*",
            "*test_each_domain[[]ndcg@10-devices[]] PASSED*",
            "*test_explicit[[]only-this[]] PASSED*",
        ]
    )


def test_a_domain_test_without_domains_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.guardrails]\n")
    pytester.makepyfile(test_domains="def test_x(domain):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*takes a 'domain' but [[]tool.guardrails.stack.domains[]]*"])


def test_a_bad_stack_section_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.guardrails.stack.domains.a]\nrole = "new"\n')
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*golden=None: give the BEIR folder's path*"])


def test_index_kind_is_checked(tmp_path: Path) -> None:
    assert parse_stack({}, tmp_path).index_kind == "flat"
    assert parse_stack({"index": {"kind": "hnsw"}}, tmp_path).index_kind == "hnsw"
    with pytest.raises(
        PolicyError, match=r"kind='annoy'; allowed values: \['flat', 'hnsw', 'ivf'\]"
    ):
        parse_stack({"index": {"kind": "annoy"}}, tmp_path)


LOGS_PYPROJECT = """
[tool.guardrails]
n-resamples = 1000
[tool.guardrails.stack]
artifacts = "store"
registry = "state/registry.sqlite"
[tool.guardrails.stack.domains.alpha]
golden = "golden/alpha"
[tool.guardrails.stack.logs]
reference = "logs/ref.jsonl"
current = "logs/cur.jsonl"
[tool.guardrails.stack.reranker]
factory = "myreranker:Overlap"
[tool.guardrails.stack.reranker.candidate]
boost = 2.0
"""

RERANKER = '''
class Overlap:
    """Scores a document by the words it shares with the query (times ``boost``)."""

    def __init__(self, boost=1.0):
        self.boost = boost

    @property
    def fingerprint(self):
        return f"overlap:{self.boost}"

    def rerank_run(self, run, queries, docs, *, top_k=20):
        out = {}
        for qid, ranked in run.items():
            words = set(queries[qid].split())
            best = sorted(ranked, key=lambda d: -ranked[d])[:top_k]
            out[qid] = {d: self.boost * len(words & set(docs[d].split())) for d in best}
        return out
'''

LOGS_SUITE = """
import json
from pathlib import Path

def test_logs_registry_reranker(drift_windows, trigger_decision, logged_queries, registry,
                                production_reranker, candidate_reranker, canaries, curated,
                                retrain_branch):
    reference, current = drift_windows
    assert len(reference.batch.records) == 300 and len(current.batch.records) == 300
    assert len(logged_queries) == 300
    # two windows from one distribution: no trigger fires (the family-wise drift control)
    assert not trigger_decision.fire and trigger_decision.components == ()
    assert retrain_branch is None and registry.branches() == []  # so no branch is opened
    assert Path(registry.path).name == "registry.sqlite"
    assert Path(registry.path).parent.name == "state"
    assert production_reranker.fingerprint == "overlap:1.0"
    assert candidate_reranker.fingerprint == "overlap:2.0"
    run = production_reranker.rerank_run({"q": {"a": 1.0, "b": 0.5}}, {"q": "red fox"},
                                         {"a": "blue sky", "b": "the red fox"})
    assert run["q"]["b"] > run["q"]["a"]
    assert set(canaries) == {"alpha"}
    # liked answers of the current window are curated (the golden question is excluded)
    assert 0 < len(curated["sft"].rows) <= 60
    assert all(r.data["prompt"].startswith("how do I reset device") for r in curated["sft"].rows)
"""


def _log_lines(seed: int) -> str:
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(300):
        rows.append(
            {
                "timestamp": 1772323200 + 60 * i + seed * 86400,
                "session_id": f"s{seed}-{i}",
                "query": f"how do I reset device {i % 17}",
                "query_embedding": [round(float(x), 5) for x in rng.normal(size=16)],
                "domain": "alpha",
                "latency_ms": {"total": float(rng.gamma(4.0, 50.0))},
                "answer": f"Hold the power button of device {i % 17} for ten seconds.",
                "feedback": "like" if i % 5 == 0 else None,
            }
        )
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_the_stack_provides_logs_triggers_registry_and_a_reranker(
    pytester: pytest.Pytester,
) -> None:
    """Configuration alone (no conftest) gives the log windows, the triggers, the logged
    queries, curated sets, the registry at its configured path, and a custom reranker built
    by a factory (its candidate with the candidate table's options)."""
    _logs_project(pytester)
    pytester.makepyfile(myreranker=RERANKER, test_logs=LOGS_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    assert result.ret == 0, result.stdout.str()
    assert (pytester.path / "state" / "registry.sqlite").is_file()
    from guardrails.errors import RegistryError
    from guardrails.registry import Registry

    # production was registered with what rebuilds it; the candidate with production as parent
    with Registry(pytester.path / "state" / "registry.sqlite") as reg:
        production = reg.resolve("reranker", "production")
        candidate = reg.resolve("reranker", "candidate")
        assert production is not None and candidate is not None
        assert production.metadata["factory"] == "myreranker:Overlap"
        assert (production.fingerprint, candidate.fingerprint) == ("overlap:1.0", "overlap:2.0")
        assert candidate.parent_fingerprint == "overlap:1.0"
        assert candidate.metadata["options"] == {"boost": 2.0}
    # production is what the registry names, not the edited configuration: changing the
    # configured production options does not change what is judged as production
    pyproject = pytester.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'factory = "myreranker:Overlap"\n', 'factory = "myreranker:Overlap"\nboost = 3.0\n'
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    assert result.ret == 0, result.stdout.str()
    # a recorded recipe that no longer builds the registered artifact is refused, named
    (pytester.path / "myreranker.py").write_text(RERANKER.replace('f"overlap:', 'f"v2:'))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*production reranker is overlap:1.0*now builds v2:1.0*"])
    assert RegistryError.__name__ in result.stdout.str()


TRIGGERS_SUITE = """
def test_first(gate, trigger_decision):
    gate.no_drift("ks", reference=[0.1, 0.2, 0.3] * 20, current=[0.1, 0.2, 0.3] * 20,
                  name="first", maximum=0.5)

def test_second(gate, trigger_decision):
    gate.no_drift("ks", reference=[0.1, 0.2] * 20, current=[0.1, 0.2] * 20,
                  name="second", maximum=0.5)
"""


def test_the_stack_trigger_decision_reaches_the_verdict_and_report(
    pytester: pytest.Pytester,
) -> None:
    """The stack's trigger_decision fixture records the decision (findings, key signals per
    window, drift statistics) once, on the next gate result: the reports show why the run
    happened with no gate.record in the suite."""
    _logs_project(pytester)
    pytester.makepyfile(test_triggers=TRIGGERS_SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "--guardrails-verdict=verdict.json"
    )
    assert result.ret == 0, result.stdout.str()
    verdict = json.loads((pytester.path / "verdict.json").read_text())
    facts = {g["name"]: g["extra"].get("facts", {}) for g in verdict["gates"]}
    assert "triggers" not in facts["second"]  # recorded once, not on every gate
    triggers = facts["first"]["triggers"]
    assert triggers["fire"] is False and triggers["findings"] == []
    ref, cur = triggers["signals"]["reference"], triggers["signals"]["current"]
    assert ref["n_queries"] == cur["n_queries"] == 300
    assert ref["like_rate"] == pytest.approx(0.2) and "total" in ref["latency_ms"]
    assert {s["name"] for s in triggers["drift"]} >= {"mmd", "ks_max", "norm_psi"}
    page = (pytester.path / "verdict.html").read_text()
    assert "Why this run happened" in page and "No trigger fired" in page
    assert "Key signals per window" in page and "latency total p95" in page
    assert "drift statistics against their alarm floors" in page


def _logs_project(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(LOGS_PYPROJECT)
    golden = pytester.path / "golden" / "alpha"
    (golden / "qrels").mkdir(parents=True)
    (golden / "corpus.jsonl").write_text('{"_id": "d1", "text": "reset by holding power"}\n')
    (golden / "queries.jsonl").write_text('{"_id": "q1", "text": "how to reset"}\n')
    (golden / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    (golden / "qa.jsonl").write_text('{"id": "a1", "question": "reset?", "answers": ["hold"]}\n')
    (golden / "canaries.jsonl").write_text(
        '{"id": "c1", "kind": "factual", "prompt": "reset?", "expect": ["hold"]}\n'
    )
    (pytester.path / "logs").mkdir()
    (pytester.path / "logs" / "ref.jsonl").write_text(_log_lines(0))
    (pytester.path / "logs" / "cur.jsonl").write_text(_log_lines(1))


def test_logs_section_mistakes_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"\[tool.guardrails.stack.logs\] current=None"):
        parse_stack({"logs": {"reference": "a.jsonl"}}, tmp_path)
    with pytest.raises(PolicyError, match=r"unknown key\(s\) \['window'\]"):
        parse_stack({"logs": {"reference": "a", "current": "b", "window": 1}}, tmp_path)
    with pytest.raises(PolicyError, match="registry=3 must be a file path"):
        parse_stack({"registry": 3}, tmp_path)
    stack = parse_stack({"artifacts": "out"}, tmp_path)
    assert stack.registry_path == tmp_path / "out" / "registry.sqlite" and stack.logs is None


def test_scaleout_section_parses_and_defaults_in_process(tmp_path: Path) -> None:
    assert not parse_stack({}, tmp_path).scaleout.on_ray
    body = {"backend": "ray", "address": "auto", "block-rows": 1000, "batch-size": 32}
    scaleout = parse_stack({"scaleout": {**body, "concurrency": 2}}, tmp_path).scaleout
    assert scaleout.on_ray and scaleout.address == "auto"
    assert (scaleout.block_rows, scaleout.batch_size, scaleout.concurrency) == (1000, 32, 2)
    assert scaleout.num_cpus is None


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"backend": "spark"}, "scaleout] backend='spark'; allowed values: ['in-process', 'ray']"),
        ({"block-rows": 0}, "scaleout] block-rows=0 must be an integer >= 1"),
        ({"batch-size": "big"}, "scaleout] batch-size='big' must be an integer >= 1"),
        ({"concurrency": True}, "scaleout] concurrency=True must be an integer >= 1"),
        ({"num-cpus": -1}, "scaleout] num-cpus=-1 must be an integer >= 1"),
        ({"address": ""}, "scaleout] address='': give 'auto' or 'ray://host:10001'"),
        ({"adress": "auto"}, "unknown key(s) ['adress']"),
    ],
)
def test_scaleout_mistakes_name_the_key(tmp_path: Path, body: dict, needle: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_stack({"scaleout": body}, tmp_path, "p.toml")
    assert str(err.value).startswith("p.toml: [tool.guardrails.stack.scaleout] ")
    assert needle in str(err.value)


# ------------------------------------------------------------------- [tool.guardrails.training]

TRAINING_TOML = """
[tool.guardrails.training.retriever]
method = "ia3"
learning-rate = 5e-3
feedforward-modules = ["value"]
target-modules = ["key", "value"]

[tool.guardrails.training.reranker]
epochs = 3

[tool.guardrails.training.generator]
method = "cpt+sft"
epochs = 1
[tool.guardrails.training.generator.cpt]
max-length = 256

[tool.guardrails.training.alignment]
method = "rloo"
num-generations = 2
batch-size = 2
"""


def test_training_tables_override_the_defaults_per_component(tmp_path: Path) -> None:
    from guardrails.training.config import (
        GeneratorCPTConfig,
        GeneratorSFTConfig,
        RetrieverTrainingConfig,
        RLOOConfig,
    )
    from guardrails.training.reranker import RERANKER_CANDIDATE_CONFIG

    (tmp_path / "pyproject.toml").write_text(TRAINING_TOML, encoding="utf-8")
    stack = load_stack(tmp_path / "pyproject.toml")
    assert stack.training_method("retriever") == "ia3"
    assert stack.training_config("retriever") == RetrieverTrainingConfig(
        method="ia3",
        learning_rate=5e-3,
        feedforward_modules=("value",),
        target_modules=("key", "value"),
    )
    # the reranker's table overrides the demo's candidate recipe, not the class defaults
    assert stack.training_config("reranker") == RERANKER_CANDIDATE_CONFIG.with_(epochs=3.0)
    assert stack.training_method("generator") == "cpt+sft"
    assert stack.training_config("generator") == GeneratorSFTConfig(epochs=1.0)
    assert stack.training_config("generator-cpt") == GeneratorCPTConfig(max_length=256)
    assert stack.training_method("alignment") == "rloo"
    assert stack.training_config("alignment") == RLOOConfig(num_generations=2, batch_size=2)


def test_without_training_tables_every_component_gets_todays_config(tmp_path: Path) -> None:
    from guardrails.training.config import (
        DPOConfig,
        GeneratorCPTConfig,
        GeneratorSFTConfig,
        RetrieverTrainingConfig,
    )
    from guardrails.training.reranker import RERANKER_CANDIDATE_CONFIG

    stack = parse_stack(TABLE, tmp_path)
    assert [stack.training_method(c) for c in ("retriever", "generator", "alignment")] == [
        "lora",
        "sft",
        "dpo",
    ]
    assert stack.training_config("retriever") == RetrieverTrainingConfig()
    assert stack.training_config("reranker") == RERANKER_CANDIDATE_CONFIG
    assert stack.training_config("generator") == GeneratorSFTConfig()
    assert stack.training_config("generator-cpt") == GeneratorCPTConfig()
    assert stack.training_config("alignment") == DPOConfig()
    parse_policies({"training": {"retriever": {}}, "policies": {}})  # a known top-level key


@pytest.mark.parametrize(
    ("training", "needle"),
    [
        ({"retreiver": {}}, "[tool.guardrails.training] unknown key(s) ['retreiver']"),
        ({"retriever": 3}, "[tool.guardrails.training.retriever] must be a table"),
        (
            {"retriever": {"method": "adapterh"}},
            "[tool.guardrails.training.retriever] method='adapterh'; allowed values",
        ),
        (
            {"retriever": {"learning-rate": "fast"}},
            "[tool.guardrails.training.retriever] RetrieverTrainingConfig: learning-rate='fast'",
        ),
        (
            {"alignment": {"method": "ppo"}},
            "[tool.guardrails.training.alignment] method='ppo'; allowed values: "
            "['dpo', 'grpo', 'kto', 'rloo']",
        ),
        (
            {"alignment": {"method": "kto", "num-generations": 4}},
            "KTOConfig: unknown field(s) ['num_generations']",
        ),
        (
            {"generator": {"cpt": {"epochs": 1}}},
            "a cpt table is read only with the generator's method = 'cpt+sft'",
        ),
        (
            {"generator": {"method": "cpt+sft", "cpt": {"packing": "yes"}}},
            "GeneratorCPTConfig: packing='yes'; allowed values: true or false",
        ),
    ],
)
def test_training_mistakes_name_the_table_key_and_value(
    tmp_path: Path, training: dict, needle: str
) -> None:
    with pytest.raises(PolicyError) as err:
        parse_stack(TABLE, tmp_path, "pyproject.toml", training)
    assert needle in str(err.value) and str(err.value).startswith("pyproject.toml: ")
