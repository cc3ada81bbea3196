"""The plugin end to end with pytester: options, usage errors, summary, verdict, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PYPROJECT = """
[tool.guardrails]
policy = "release"
seed = 11
n-resamples = 2000
[tool.guardrails.policies.release]
required = ["quality*"]
[tool.guardrails.policies.release.metrics."ndcg@10"]
max-drop = 0.05
min = 0.2
[tool.guardrails.policies.strict]
extends = "release"
[tool.guardrails.policies.strict.metrics."ndcg@10"]
max-drop = 0.0001
"""

TESTS = """
import numpy as np
import pytest

def scores(seed, shift=0.0, n=200):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, n)
    return np.clip(base + shift + rng.normal(0, 0.03, n), 0, 1), base

def test_quality(gate):
    cand, base = scores(0)
    gate.noninferior("ndcg@10", candidate=cand, baseline=base, name="quality")

@pytest.mark.parametrize("i", range(3))
def test_more(gate, i):
    cand, base = scores(10 + i)
    gate.noninferior("ndcg@10", candidate=cand, baseline=base, name=f"quality-{i}")
"""

REGRESSION = """
def test_regression(gate):
    from test_gates import scores
    cand, base = scores(5, shift=-0.2)
    gate.noninferior("ndcg@10", candidate=cand, baseline=base, name="regressed")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makepyfile(test_gates=TESTS)
    return pytester


def _verdict(pytester: pytest.Pytester, name: str = "v.json") -> dict:
    return json.loads((pytester.path / name).read_text())


def test_promote_writes_verdict_and_summary(project: pytest.Pytester) -> None:
    result = project.runpytest("--guardrails-verdict=v.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*guardrails: policy=release alpha=0.05 seed=11*",
            "*guardrails verdict*",
            "*quality-0*ndcg@10*passed*",
            "decision: PROMOTE*",
        ]
    )
    v = _verdict(project)
    assert v["schema_version"] == 1 and v["decision"] == "promote" and v["seed"] == 11
    gate = v["gates"][0]
    for key in (
        "metric",
        "baseline",
        "candidate",
        "delta",
        "ci",
        "p_value",
        "passed",
        "per_sample",
    ):
        assert key in gate
    assert len(gate["per_sample"]["candidate"]) == 200
    assert v["provenance"]["libraries"]["pytest"] == pytest.__version__


def test_html_report_is_written_beside_the_verdict_or_where_asked(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest("--guardrails-verdict=out/v.json", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["report written to *out/v.html"])
    html = (project.path / "out" / "v.html").read_text()
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:200]
    assert "PROMOTE" in html.upper()
    project.runpytest("--guardrails-report=r/page.html", "-p", "no:cacheprovider")
    assert (project.path / "r" / "page.html").is_file()
    (project.path / "out" / "v.html").unlink()
    project.runpytest(
        "--guardrails-verdict=out/v.json", "--guardrails-report=none", "-p", "no:cacheprovider"
    )
    assert not (project.path / "out" / "v.html").exists()


def test_failed_gate_rolls_back_with_numbers(project: pytest.Pytester) -> None:
    project.makepyfile(test_regression=REGRESSION)
    result = project.runpytest("--guardrails-verdict=v.json")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*GateFailed: gate regressed: ndcg@10 dropped 0.1*CI*policy: max-drop 0.05*",
            "*status=failed: baseline=* candidate=*p=*",
            "*worst samples*",
            "decision: ROLLBACK*",
        ]
    )
    assert _verdict(project)["decision"] == "rollback"
    assert result.ret == 11


def test_inconclusive_under_strict_policy_holds_and_exits_nonzero(project: pytest.Pytester) -> None:
    result = project.runpytest("--guardrails-verdict=v.json", "--guardrails-policy=strict")
    result.stdout.fnmatch_lines(["*GateInconclusive*", "decision: HOLD*"])
    assert _verdict(project)["decision"] == "hold"
    assert result.ret != 0


def test_required_gate_skipped_holds(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makepyfile("""
        import pytest
        def test_other(gate):
            gate.noninferior("ndcg@10", candidate=[0.5] * 50, baseline=[0.5] * 50, name="other")
        @pytest.mark.skip(reason="model missing")
        def test_quality(gate):
            pass
    """)
    result = pytester.runpytest("--guardrails-verdict=v.json")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == 10
    v = _verdict(pytester)
    assert v["decision"] == "hold" and "required gate 'quality*' did not run" in v["reason"]


def test_no_gate_ran_holds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--guardrails-verdict=v.json")
    assert _verdict(pytester)["decision"] == "hold"
    assert "no gate ran" in _verdict(pytester)["reason"]
    assert result.ret == 10


def test_errors_hold_and_plain_assertions_roll_back(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_err="""
        import pytest
        @pytest.fixture
        def broken():
            raise RuntimeError("model failed to load")
        def test_uses_broken(broken):
            pass
    """
    )
    project.runpytest("--guardrails-verdict=v.json")
    v = _verdict(project)
    assert v["decision"] == "hold" and "errored" in v["reason"]
    project.makepyfile(test_err="def test_canary():\n    assert 'refuse' == 'answer'\n")
    project.runpytest("--guardrails-verdict=v.json")
    assert _verdict(project)["decision"] == "rollback"


def test_bad_policy_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.guardrails.policies.x.metrics."ndcg@10"]\nmax-drop = "a"\n')
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*guardrails:*max-drop='a'; allowed values: a finite number*"])
    result = pytester.runpytest("--guardrails-policy=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_unknown_policy_name_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest("--guardrails-policy=relase")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown policy 'relase'; did you mean 'release'?*"])


def test_xdist_gives_the_same_verdict_as_serial(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    project.makepyfile(test_regression=REGRESSION)
    project.runpytest("--guardrails-verdict=serial.json")
    project.runpytest("-n", "2", "--guardrails-verdict=parallel.json")
    serial, parallel = _verdict(project, "serial.json"), _verdict(project, "parallel.json")
    assert serial["decision"] == parallel["decision"] == "rollback"
    assert serial["gates"] == parallel["gates"]


def test_importing_the_plugin_pulls_no_heavy_library() -> None:
    code = (
        "import sys, guardrails.plugin, guardrails.cli, guardrails.gates, guardrails.verdict;"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'faiss', "
        "'peft', 'trl') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


COMPONENT_PYPROJECT = """
[tool.guardrails]
policy = "release"
seed = 11
n-resamples = 2000
[tool.guardrails.components]
embedder = ["quality*"]
generator = ["answers*"]
[tool.guardrails.policies.release]
required = ["quality*", "answers*"]
[tool.guardrails.policies.release.metrics."ndcg@10"]
max-drop = 0.05
min = 0.2
"""

COMPONENT_TESTS = """
import numpy as np

def scores(seed, shift=0.0, n=200):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, n)
    return np.clip(base + shift + rng.normal(0, 0.03, n), 0, 1), base

def _artifacts(gate, component):
    for role, fp in (("baseline", f"sha256:{component}-0"), ("candidate", f"sha256:{component}-1")):
        gate.record(artifact={"component": component, "role": role, "fingerprint": fp})

def test_quality(gate):
    _artifacts(gate, "embedder")
    cand, base = scores(0)
    gate.noninferior("ndcg@10", candidate=cand, baseline=base, name="quality")

def test_answers(gate):
    _artifacts(gate, "generator")
    cand, base = scores(5, shift=-0.2)
    gate.noninferior("ndcg@10", candidate=cand, baseline=base, name="answers")
"""


def _component_registry(path: object) -> None:
    from guardrails.registry import Registry

    with Registry(path) as reg:  # type: ignore[arg-type]
        for comp in ("embedder", "generator"):
            for i in (0, 1):
                reg.register("adapter", comp, f"{comp}-{i}", f"sha256:{comp}-{i}")
            reg.set_alias(comp, "production", f"sha256:{comp}-0")


def _production(path: object) -> dict[str, str]:
    from guardrails.registry import Registry

    with Registry(path) as reg:  # type: ignore[arg-type]
        return {a.component: a.fingerprint for a in reg.aliases() if a.alias == "production"}


def test_component_decisions_in_summary_and_partial_apply(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(COMPONENT_PYPROJECT)
    pytester.makepyfile(test_components=COMPONENT_TESTS)
    db = pytester.path / "registry.sqlite"
    _component_registry(db)
    result = pytester.runpytest("--guardrails-verdict=v.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "decision: ROLLBACK — gate answers failed*",
            "decision per component:",
            "  embedder: PROMOTE — all 1 gates of component 'embedder' passed*",
            "  generator: ROLLBACK — gate answers failed*",
        ]
    )
    v = _verdict(pytester)
    assert v["decision"] == "rollback"
    assert {c: e["decision"] for c, e in v["components"].items()} == {
        "embedder": "promote",
        "generator": "rollback",
    }
    assert _production(db) == {"embedder": "sha256:embedder-0", "generator": "sha256:generator-0"}

    result = pytester.runpytest(
        "--guardrails-verdict=v.json",
        "--guardrails-apply",
        f"--guardrails-registry={db}",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 11  # still the overall rollback
    result.stdout.fnmatch_lines(["guardrails apply: promoted embedder*embedder-0 -> embedder-1"])
    assert "promoted generator" not in result.stdout.str()
    assert _production(db) == {"embedder": "sha256:embedder-1", "generator": "sha256:generator-0"}

    result = pytester.runpytest(  # again: the embedder's baseline is stale now
        "--guardrails-apply", f"--guardrails-registry={db}", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(["guardrails apply: nothing switched: *stale verdict*"])
    assert _production(db) == {"embedder": "sha256:embedder-1", "generator": "sha256:generator-0"}


def test_apply_switches_nothing_when_no_component_is_promotable(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml(COMPONENT_PYPROJECT.replace('embedder = ["quality*"]', ""))
    pytester.makepyfile(test_components=COMPONENT_TESTS)
    db = pytester.path / "registry.sqlite"
    _component_registry(db)
    result = pytester.runpytest("--guardrails-apply", f"--guardrails-registry={db}")
    result.stdout.fnmatch_lines(["  generator: ROLLBACK*"])
    assert "guardrails apply" not in result.stdout.str()
    assert _production(db) == {"embedder": "sha256:embedder-0", "generator": "sha256:generator-0"}


def test_a_gate_rerun_after_failing_does_not_replace_the_failure(pytester: pytest.Pytester) -> None:
    """A test that catches GateFailed and re-runs the gate under the same name: both results
    reach the verdict and the failure rolls back (before: only the pass was kept -> PROMOTE)."""
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makepyfile(
        """
import numpy as np
from guardrails.errors import GateFailed

def test_sneaky(gate):
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)
    try:
        gate.noninferior("ndcg@10", candidate=base - 0.3, baseline=base, name="quality")
    except GateFailed:
        gate.noninferior("ndcg@10", candidate=base, baseline=base, name="quality")
"""
    )
    result = pytester.runpytest("--guardrails-verdict=v.json", "-p", "no:cacheprovider")
    v = _verdict(pytester)
    assert v["decision"] == "rollback"
    assert [g["status"] for g in v["gates"]] == ["failed", "passed"]
    assert any("recorded 2 times" in r for r in v["reasons"])
    assert result.ret != 0


def test_guardrails_promote_refuses_a_forged_plugin_verdict(
    project: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The verdict the plugin writes is promotable as written; the same file with its
    decision edited, or signed then altered, is refused by `guardrails promote`."""
    from guardrails.registry import Registry

    project.makepyfile(test_regression=REGRESSION)
    result = project.runpytest("--guardrails-verdict=v.json", "-p", "no:cacheprovider")
    assert _verdict(project)["decision"] == "rollback"
    v = _verdict(project)
    v["provenance"]["artifacts"] = [
        {"component": "embedder", "role": "candidate", "fingerprint": "sha256:new"},
        {"component": "embedder", "role": "baseline", "fingerprint": "sha256:old"},
    ]
    db = tmp_path_factory.mktemp("reg") / "r.sqlite"
    with Registry(db) as reg:
        reg.register("adapter", "embedder", "old", "sha256:old")
        reg.register("adapter", "embedder", "new", "sha256:new")
        reg.set_alias("embedder", "production", "sha256:old")
    forged = project.path / "forged.json"
    forged.write_text(json.dumps({**v, "decision": "promote"}))
    run = subprocess.run(
        [sys.executable, "-m", "guardrails.cli", "promote", str(forged), "--registry", str(db)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "does not follow from its gates" in run.stderr
    with Registry(db) as reg:
        assert reg.resolve("embedder", "production").fingerprint == "sha256:old"
    assert result.ret != 0


PROMOTE_TESTS = """
import numpy as np

def test_quality(gate):
    for role, i in (("baseline", 0), ("candidate", 1)):
        gate.record(artifact={"component": "embedder", "role": role,
                              "fingerprint": f"sha256:embedder-{i}"})
    base = np.random.default_rng(0).uniform(0, 1, 200)
    gate.noninferior("ndcg@10", candidate=base, baseline=base, name="quality")
"""


@pytest.mark.parametrize("registry", ["stale", "corrupt"])
def test_apply_failure_is_in_the_summary_and_the_exit_status(
    pytester: pytest.Pytester, registry: str
) -> None:
    from guardrails.registry import Registry

    pytester.makepyprojecttoml(
        '[tool.guardrails]\npolicy = "release"\nn-resamples = 2000\n'
        '[tool.guardrails.policies.release.metrics."ndcg@10"]\nmax-drop = 0.05\n'
    )
    pytester.makepyfile(test_promote=PROMOTE_TESTS)
    db = pytester.path / "registry.sqlite"
    if registry == "corrupt":
        db.write_bytes(b"not an sqlite file" * 100)
    else:  # production is embedder-2, not the verdict's baseline embedder-0
        with Registry(db) as reg:
            for i in (0, 1, 2):
                reg.register("adapter", "embedder", f"e{i}", f"sha256:embedder-{i}")
            reg.set_alias("embedder", "production", "sha256:embedder-2")
    result = pytester.runpytest(
        "--guardrails-verdict=v.json", "--guardrails-apply", f"--guardrails-registry={db}"
    )
    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out
    result.stdout.fnmatch_lines(
        ["decision: PROMOTE*", "guardrails apply: FAILED, nothing switched: *", "verdict written*"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert (pytester.path / "v.json").is_file()


def test_junit_has_flat_gate_properties_and_the_decision(project: pytest.Pytester) -> None:
    """With --junitxml: each gate as flat JSON-scalar properties on its test case, the decision
    and reason as test-suite properties, no per-sample arrays (parsed as XML); under xdist too."""
    import xml.etree.ElementTree as ET

    project.makepyfile(test_regression=REGRESSION)
    for extra in ((), ("-n", "2")):
        result = project.runpytest(
            "--guardrails-verdict=v.json", "--junitxml=j.xml", "-p", "no:cacheprovider", *extra
        )
        assert result.ret == 11  # the regression rolls back
        root = ET.parse(project.path / "j.xml").getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        assert suite is not None
        suite_props = {
            p.get("name"): p.get("value") for p in suite.findall("./properties/property")
        }
        assert suite_props["guardrails.decision"] == "rollback"
        assert "regressed" in suite_props["guardrails.reason"]
        case = next(c for c in suite.iter("testcase") if c.get("name") == "test_regression")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        fields = {k.split(".")[-1]: json.loads(v) for k, v in props.items()}
        assert set(fields) == {
            "status",
            "metric",
            "delta",
            "ci_low",
            "ci_high",
            "p",
            "threshold",
            "n",
        }
        assert fields["status"] == "failed" and fields["metric"] == "ndcg@10"
        assert fields["n"] == 200 and fields["delta"] < 0 and fields["ci_low"] < fields["ci_high"]
        assert all(not isinstance(v, list | dict) for v in fields.values())
        assert (project.path / "j.xml").stat().st_size < 20_000  # no per-sample arrays
        assert json.loads((project.path / "v.json").read_text())["decision"] == "rollback"
