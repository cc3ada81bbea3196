"""The pytest11 entry point: options, policy, header, the ``gate`` fixture, the verdict.

Gate results ride on each test report's ``user_properties`` (like junitxml's
``record_property``), so they cross ``pytest -n`` worker boundaries; the controller collects
them, decides at session end, writes the verdict JSON and shows a summary table (with one line
per component decision when the policy has ``components``). A verdict other than *promote*
turns an otherwise green session red. ``--guardrails-apply`` promotes a promote verdict; for
any other verdict it promotes only the components whose own decision is promote.

Importing this module must stay cheap: no torch, transformers, sentence_transformers or faiss
(a test asserts it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from guardrails.errors import GateError, GuardrailsError, PolicyError
from guardrails.gates import Gate, GateResult
from guardrails.policy import Policy, load_policy
from guardrails.stack import StackConfig, load_stack
from guardrails.verdict import Decision, TestOutcome, Verdict, decide, write_verdict

FAILURE_KEY = "guardrails_failure"
GATES = pytest.StashKey[list[dict[str, Any]]]()  # item -> its gate results (full, with samples)
SENT = pytest.StashKey[int]()  # item -> how many of them earlier phase reports already carried
# JUnit gets flat scalar properties per gate (guardrails.<gate>.<field>, JSON values); the
# full results travel on the report's ``guardrails_gates`` attribute, which pytest-xdist
# serialises with the report like any other report attribute.
JUNIT_FIELDS = ("status", "metric", "delta", "ci_low", "ci_high", "p", "threshold", "n")


@dataclass
class SessionState:
    """What the controller accumulates during a session (kept in ``config.stash``)."""

    policy: Policy
    verdict_path: Path | None
    stack: StackConfig
    config_path: Path | None = None  # the pyproject the policy and the stack came from
    started: float = field(default_factory=time.time)
    gates: list[GateResult] = field(
        default_factory=list
    )  # every result: a re-run never replaces one
    outcomes: dict[str, TestOutcome] = field(default_factory=dict)
    verdict: Verdict | None = None
    applied: list[str] = field(default_factory=list)  # what --guardrails-apply did, for the summary
    report_path: Path | None = None
    # facts a session fixture recorded (e.g. the trigger decision), carried by the next gate
    # result this process records: results are what reaches the verdict, xdist workers included
    pending_facts: dict[str, Any] = field(default_factory=dict)


STATE = pytest.StashKey[SessionState]()
PROGRESS = pytest.StashKey[Any]()  # the terminal log handler, removed at unconfigure


def pytest_unconfigure(config: pytest.Config) -> None:
    handler = config.stash.get(PROGRESS, None)
    if handler is not None:
        import logging

        logging.getLogger("guardrails").removeHandler(handler)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from guardrails import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("guardrails", "release gates (guardrails)")
    group.addoption(
        "--guardrails-policy",
        metavar="NAME",
        default=None,
        help="policy from [tool.guardrails.policies] to judge by",
    )
    group.addoption(
        "--guardrails-config",
        metavar="PATH",
        default=None,
        help="pyproject.toml holding [tool.guardrails] (default: the rootdir's)",
    )
    group.addoption(
        "--guardrails-verdict",
        metavar="PATH",
        default=None,
        help="write the verdict JSON here at session end",
    )
    group.addoption(
        "--guardrails-report",
        metavar="PATH",
        default=None,
        help="write the HTML report here (default: beside --guardrails-verdict, as .html; "
        "'none' to skip)",
    )
    group.addoption(
        "--guardrails-seed",
        metavar="N",
        type=int,
        default=None,
        help="seed for resampling (default: the policy's)",
    )
    group.addoption(
        "--guardrails-candidate",
        metavar="PATH",
        default=None,
        help="candidate artifact (adapter / model folder) to judge",
    )
    group.addoption(
        "--guardrails-exit-status",
        choices=("verdict", "pytest"),
        default="verdict",
        help="verdict (default): exit 0 promote, 10 hold, 11 rollback (pytest's 2-5 kept: no "
        "decision); pytest: exit 0 promote, 1 otherwise",
    )
    group.addoption(
        "--guardrails-apply",
        action="store_true",
        default=False,
        help="after a promote verdict, switch the registry aliases (otherwise switch only "
        "the components whose own decision is promote, and roll back each component whose "
        "production regressed after a promote: see `guardrails watch`)",
    )
    group.addoption(
        "--guardrails-monitor",
        action="store_true",
        default=False,
        help="monitoring run after a promote: the registry's production is judged as the "
        "candidate against its previous production as the baseline (nothing is trained); "
        "with --guardrails-apply a regressed component is rolled back (see `guardrails watch`)",
    )
    group.addoption(
        "--guardrails-registry",
        metavar="PATH",
        default=None,
        help="registry SQLite file (default: [tool.guardrails.stack] registry, else "
        "<artifacts>/registry.sqlite)",
    )


def _config_path(config: pytest.Config) -> Path | None:
    given = config.getoption("--guardrails-config")
    if given:
        path = Path(given)
        if not path.is_file():
            raise pytest.UsageError(f"--guardrails-config={given}: file not found")
        return path
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "guardrails: a release-gate test (guardrails)")
    path = _config_path(config)
    try:
        policy = load_policy(path, config.getoption("--guardrails-policy"))
        stack = load_stack(path)
    except (PolicyError, GuardrailsError) as exc:
        raise pytest.UsageError(f"guardrails: {exc}") from None
    seed = config.getoption("--guardrails-seed")
    if seed is not None:
        if seed < 0:
            raise pytest.UsageError(f"guardrails: --guardrails-seed={seed}; allowed: >= 0")
        from dataclasses import replace

        policy = replace(policy, seed=seed)
    verdict = config.getoption("--guardrails-verdict")
    config.stash[STATE] = SessionState(policy, Path(verdict) if verdict else None, stack, path)
    if not config.getini("log_cli"):  # log_cli already shows the guardrails records live
        from guardrails.report.progress import install_terminal_handler

        config.stash[PROGRESS] = install_terminal_handler(config)
    from guardrails.components import fixtures

    config.pluginmanager.register(fixtures, "guardrails-stack-fixtures")
    if not _is_worker(config):
        config.pluginmanager.register(VerdictPlugin(config), "guardrails-verdict")


def pytest_report_header(config: pytest.Config) -> str:
    state = config.stash[STATE]
    p = state.policy
    where = f", verdict={state.verdict_path}" if state.verdict_path else ""
    return (
        f"guardrails: policy={p.name} alpha={p.alpha:g} seed={p.seed} "
        f"resamples={p.n_resamples} required={len(p.required)}{where}"
    )


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def guardrails_policy(pytestconfig: pytest.Config) -> Policy:
    """The policy this session judges by."""
    return pytestconfig.stash[STATE].policy


@pytest.fixture(scope="session")
def guardrails_stack(pytestconfig: pytest.Config) -> StackConfig:
    """The ``[tool.guardrails.stack]`` section: the deployment's domains and artifact folder."""
    return pytestconfig.stash[STATE].stack


@pytest.hookimpl(trylast=True)  # after @parametrize marks: ids read "[<mark>-<domain>]"
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes a ``domain`` argument runs once per configured domain (ids = names),
    so suites never name a domain."""
    if "domain" not in metafunc.fixturenames or _parametrized(metafunc, "domain"):
        return
    names = metafunc.config.stash[STATE].stack.names()
    if not names:
        raise pytest.UsageError(
            f"guardrails: {metafunc.definition.nodeid} takes a 'domain' but "
            "[tool.guardrails.stack.domains] declares none"
        )
    metafunc.parametrize("domain", names, ids=list(names))


def _parametrized(metafunc: pytest.Metafunc, name: str) -> bool:
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if name in names:
            return True
    return False


@pytest.fixture
def gate(request: pytest.FixtureRequest, guardrails_policy: Policy) -> Gate:
    """Evaluate gates in a test; results are recorded on the report and in the verdict."""
    node = request.node
    pending = request.config.stash[STATE].pending_facts

    def record(result: GateResult) -> None:
        data = result.to_dict()
        if pending:  # a session fixture's facts ride on the first result recorded after them
            data["extra"]["facts"] = {**pending, **data["extra"].get("facts", {})}
            pending.clear()
        node.stash.setdefault(GATES, []).append(data)
        node.user_properties.extend(junit_properties(result))

    return Gate(guardrails_policy, record=record, default_name=node.name, nodeid=node.nodeid)


def record_session_facts(config: pytest.Config, facts: Mapping[str, Any]) -> None:
    """Record JSON-able ``facts`` from a session fixture (which has no ``gate``): the next gate
    result this process records carries them into the verdict (``gates[].extra.facts``)."""
    config.stash[STATE].pending_facts.update(facts)


@pytest.fixture(scope="session")
def guardrails_candidate(pytestconfig: pytest.Config) -> Path | None:
    """``--guardrails-candidate PATH`` (None when not given)."""
    value = pytestconfig.getoption("--guardrails-candidate")
    if value and not Path(value).exists():
        raise pytest.UsageError(f"--guardrails-candidate={value}: path not found")
    return Path(value) if value else None


# ----------------------------------------------------------------------------- reporting


def junit_properties(result: GateResult) -> list[tuple[str, str]]:
    """A gate as flat JUnit properties: ``guardrails.<gate>.<field>`` = a JSON scalar."""
    import json
    import math

    def scalar(value: Any) -> str:
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        return json.dumps(value)

    values = {
        "status": result.status.value,
        "metric": result.metric,
        "delta": result.delta,
        "ci_low": result.ci[0],
        "ci_high": result.ci[1],
        "p": result.p_value,
        "threshold": result.threshold,
        "n": result.n,
    }
    return [(f"guardrails.{result.name}.{k}", scalar(values[k])) for k in JUNIT_FIELDS]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    # each phase's report carries the gate results recorded since the previous phase, so a
    # result crosses the xdist wire once and a gate run twice is two results
    gates: list[dict[str, Any]] = item.stash.get(GATES, [])
    sent = item.stash.get(SENT, 0)
    report.guardrails_gates = gates[sent:]
    item.stash[SENT] = len(gates)
    if call.excinfo is not None and report.failed:
        if call.excinfo.errisinstance(GateError):
            kind = "gate"
        elif call.when == "call" and call.excinfo.errisinstance(AssertionError):
            kind = "assertion"
        else:
            kind = "error"
        report.user_properties.append((FAILURE_KEY, kind))
    return report


_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def _record_outcome(state: SessionState, report: pytest.TestReport) -> None:
    """Fold setup / call / teardown reports into one outcome per test (worst wins)."""
    if report.passed and report.when != "call":
        return
    if report.skipped:
        outcome = "skipped"
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    else:
        outcome = "passed"
    failure = ""
    if report.failed:
        failure = str(next((v for k, v in report.user_properties if k == FAILURE_KEY), "error"))
        failure = failure if report.when == "call" else "error"
    lines = (report.longreprtext or "").strip().splitlines() if report.failed else []
    gate_names = tuple(sorted({g.name for g in state.gates if g.nodeid == report.nodeid}))
    prev = state.outcomes.get(report.nodeid)
    duration = report.duration + (prev.duration if prev else 0.0)
    if prev is not None and _RANK[prev.outcome] >= _RANK[outcome]:
        state.outcomes[report.nodeid] = TestOutcome(
            prev.nodeid, prev.outcome, prev.failure, prev.message, duration, gate_names
        )
        return
    state.outcomes[report.nodeid] = TestOutcome(
        report.nodeid, outcome, failure, lines[-1][:300] if lines else "", duration, gate_names
    )


def build_verdict(config: pytest.Config) -> Verdict:
    """Decide from what the session recorded (gates sorted by name for determinism)."""
    from guardrails.verdict.provenance import collect_provenance

    state = config.stash[STATE]
    gates = sorted(state.gates, key=lambda g: (g.name, g.nodeid))
    tests = sorted(state.outcomes.values(), key=lambda t: t.nodeid)
    provenance = collect_provenance(config.rootpath, gates, tests, state.started, state.policy.seed)
    return decide(gates, state.policy, tests, provenance)


def _hooked(config: pytest.Config, verdict: Verdict) -> Verdict:
    """The verdict the first ``pytest_guardrails_decide`` implementation returns (in pluggy's
    call order; recorded in the provenance with what the rules decided), else ``verdict``."""
    from dataclasses import replace

    hook = config.pluginmanager.hook.pytest_guardrails_decide
    for impl in reversed(hook.get_hookimpls()):  # pluggy calls the last registered first
        if impl.hookwrapper or impl.wrapper:
            continue
        args = {"verdict": verdict, "config": config}
        override = impl.function(**{name: args[name] for name in impl.argnames})
        if override is None:
            continue
        if not isinstance(override, Verdict):
            raise pytest.UsageError(
                f"guardrails: pytest_guardrails_decide in {impl.plugin_name} returned "
                f"{type(override).__name__}, not a guardrails.verdict.Verdict (or None)"
            )
        original = {"decision": verdict.decision.value, "reason": verdict.reason}
        provenance = {
            **override.provenance,
            "decided_by_hook": impl.plugin_name,
            "rules_decided": original,
        }
        return replace(override, provenance=provenance)
    return verdict


class VerdictPlugin:
    """Per-session hooks (registered in ``pytest_configure``, like junitxml's LogXML)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.state = config.stash[STATE]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for value in getattr(report, "guardrails_gates", None) or []:  # new since last phase
            self.state.gates.append(GateResult.from_dict(value))
        _record_outcome(self.state, report)

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes: the decision is a suite property
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        state = self.state
        if not state.gates and state.verdict_path is None:
            return
        from guardrails.report.progress import timed

        with timed("verdict and report", quiet=True):
            state.verdict = verdict = _hooked(self.config, build_verdict(self.config))
            _junit_suite_properties(self.config, verdict)
            if state.verdict_path is not None:
                write_verdict(verdict, state.verdict_path)
            state.report_path = _write_report(self.config, verdict, state.verdict_path)
        self.config.hook.pytest_guardrails_verdict_written(
            verdict=verdict, path=state.verdict_path, report=state.report_path, config=self.config
        )
        session.exitstatus = _exit_status(self.config, verdict, int(session.exitstatus))
        if self.config.getoption("--guardrails-apply"):
            try:
                if verdict.decision is Decision.PROMOTE:
                    state.applied = _apply(self.config, verdict)
                elif verdict.promotable():
                    state.applied = _apply_components(self.config, verdict)
                if verdict.decision is not Decision.PROMOTE:
                    state.applied = [*state.applied, *_apply_watch(self.config, verdict)]
            except Exception as exc:
                # a stale verdict, a missing or damaged registry, ...: the verdict and its
                # report are written; say what failed where the summary is read, and fail
                kind = "" if isinstance(exc, GuardrailsError) else f"{type(exc).__name__}: "
                state.applied = [f"guardrails apply: FAILED, nothing switched: {kind}{exc}"]
                if session.exitstatus == 0:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.state.verdict is None:
            return
        from guardrails.report.markdown import summary_lines

        terminalreporter.write_sep("=", "guardrails verdict")
        for line in summary_lines(self.state.verdict):
            terminalreporter.write_line(line)
        for line in self.state.applied:
            terminalreporter.write_line(line)
        if self.state.verdict_path is not None:
            terminalreporter.write_line(f"verdict written to {self.state.verdict_path}")
        if self.state.report_path is not None:
            terminalreporter.write_line(f"report written to {self.state.report_path}")


def _exit_status(config: pytest.Config, verdict: Verdict, status: int) -> int:
    """0 promote, 10 hold, 11 rollback (``EXIT_STATUS``) when the tests ran (pytest's 0 or 1);
    pytest's own 2-5 (interrupted, internal or usage error, no tests) are kept: no decision.
    ``--guardrails-exit-status=pytest`` keeps pytest's 0 / 1 (non-promote fails the run)."""
    from guardrails.verdict.schema import EXIT_STATUS

    if status not in (0, 1):
        return status
    if config.getoption("--guardrails-exit-status") == "pytest":
        return 0 if verdict.decision is Decision.PROMOTE and status == 0 else 1
    return EXIT_STATUS[verdict.decision.value]


def _junit_suite_properties(config: pytest.Config, verdict: Verdict) -> None:
    """The decision and its reason as JUnit test-suite properties (with ``--junitxml``)."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is not None:
        xml.add_global_property("guardrails.decision", verdict.decision.value)
        xml.add_global_property("guardrails.reason", verdict.reason)


def _write_report(
    config: pytest.Config, verdict: Verdict, verdict_path: Path | None
) -> Path | None:
    """The self-contained HTML report for release managers, atomically, or None if not asked."""
    from guardrails.artifacts import atomic_write_text
    from guardrails.report.html import render_html

    option = config.getoption("--guardrails-report")
    if option is None:
        if verdict_path is None:
            return None
        path = verdict_path.with_suffix(".html")
    elif str(option).lower() == "none":
        return None
    else:
        path = Path(option)
    atomic_write_text(path, render_html(verdict))
    return path


def _short(fp: str) -> str:
    return fp.split(":", 1)[-1][:12]


def _registry_path(config: pytest.Config) -> Path:
    option = config.getoption("--guardrails-registry")
    return Path(option) if option else config.stash[STATE].stack.registry_path


def _open_registry(config: pytest.Config) -> Any:
    """The registry ``--guardrails-apply`` switches: the stack's (or the option's) file, paths
    relative to the project, aliases mirrored to MLflow when configured."""
    from guardrails.registry import Registry

    root = config.stash[STATE].stack.root
    return Registry(_registry_path(config), mirror=_mirror(config), root=root)


def _mirror(config: pytest.Config) -> Any:
    """The MLflow alias mirror when ``[tool.guardrails.stack.mlflow]`` is configured."""
    settings = config.stash[STATE].stack.mlflow
    if settings is None:
        return None
    from guardrails.integrations.mlflow import MlflowMirror

    return MlflowMirror(settings)


def _apply(config: pytest.Config, verdict: Verdict) -> list[str]:
    """Switch registry aliases for a promote verdict (``--guardrails-apply``); returns summary
    lines saying what happened (a failed MLflow mirror, after the SQLite switch, is one)."""
    from guardrails.errors import MirrorError
    from guardrails.registry import Registry
    from guardrails.verdict.schema import verdict_document

    if not verdict.provenance.get("artifacts"):
        return ["guardrails apply: nothing switched: the verdict lists no artifacts"]
    with Registry(
        _registry_path(config), mirror=_mirror(config), root=config.stash[STATE].stack.root
    ) as registry:
        if _already_production(registry, verdict):
            return [
                "guardrails apply: nothing switched: every candidate already is production "
                "(a monitoring run of it)"
            ]
        try:
            switches = registry.promote(verdict_document(verdict))
        except MirrorError as exc:
            return [f"guardrails apply: {exc}"]
    return [
        f"guardrails apply: promoted {s.component}: "
        f"{_short(s.from_fingerprint)} -> {_short(s.to_fingerprint)}"
        for s in switches
    ]


def _already_production(registry: Any, verdict: Verdict) -> bool:
    """Every candidate the verdict lists is its component's production already: a passing
    monitoring run of production, which has nothing to switch (not a stale verdict)."""
    candidates = [
        (a.get("component"), a.get("fingerprint"))
        for a in verdict.provenance.get("artifacts", ())
        if isinstance(a, dict) and a.get("role") == "candidate"
    ]
    current = {c: registry.resolve(c, "production") for c, _ in candidates}
    return bool(candidates) and all(
        current[c] is not None and current[c].fingerprint == fp for c, fp in candidates
    )


def _apply_watch(config: pytest.Config, verdict: Verdict) -> list[str]:
    """``--guardrails-apply`` on a verdict that is not promote: roll back every component whose
    current production (the verdict's candidate, a monitoring run) regressed after a promote
    (:meth:`Registry.watch <guardrails.registry.Registry.watch>`, evidence in the history).
    A candidate evaluation's rollback leaves production alone and prints nothing."""
    from guardrails.errors import MirrorError
    from guardrails.registry import Registry
    from guardrails.verdict.schema import verdict_document

    path = _registry_path(config)
    if not path.is_file():  # no registry: no production to roll back (and none is created)
        return []
    root = config.stash[STATE].stack.root
    try:
        with Registry(path, mirror=_mirror(config), root=root) as registry:
            results = registry.watch(verdict_document(verdict), apply=True)
    except MirrorError as exc:
        return [f"guardrails apply: {exc}"]
    except GuardrailsError as exc:
        return [f"guardrails apply: nothing rolled back: {exc}"]
    lines = []
    for r in results:
        if r.action == "rollback":
            lines.append(
                f"guardrails apply: rolled back {r.component} (production regressed after a "
                f"promote): {_short(str(r.from_fingerprint))} -> {_short(str(r.to_fingerprint))}"
            )
        elif r.judged_production:
            lines.append(f"guardrails apply: not rolled back {r.component}: {r.reason}")
    return lines


def _apply_components(config: pytest.Config, verdict: Verdict) -> list[str]:
    """``--guardrails-apply`` on a non-promote verdict: switch only the components whose own
    decision is promote (one transaction); returns summary lines saying what happened."""
    from guardrails.errors import MirrorError
    from guardrails.registry import Registry
    from guardrails.verdict.schema import verdict_document

    if not verdict.provenance.get("artifacts"):
        return ["guardrails apply: nothing switched: the verdict lists no artifacts"]
    try:
        with Registry(
            _registry_path(config), mirror=_mirror(config), root=config.stash[STATE].stack.root
        ) as registry:
            switches = registry.promote_components(verdict_document(verdict))
    except MirrorError as exc:
        return [f"guardrails apply: {exc}"]
    except GuardrailsError as exc:
        return [f"guardrails apply: nothing switched: {exc}"]
    return [
        f"guardrails apply: promoted {s.component} (its own decision is promote): "
        f"{_short(s.from_fingerprint)} -> {_short(s.to_fingerprint)}"
        for s in switches
    ]
