"""``guardrails``: the command line for release managers and CI.

Subcommands register themselves in :data:`COMMANDS` (name -> (add_arguments, run)), one
small function pair each. Exit statuses: 0 success (promote), 1 drift alarm, 2 bad input
(every :class:`GuardrailsError` and unreadable file prints as one line ``guardrails:
<message>``), 10 hold, 11 rollback (:data:`EXIT_STATUS`, the same as ``pytest`` with the
plugin), and :data:`EXIT_INTERNAL` (70, ``EX_SOFTWARE``) for an
untyped exception: one line ``guardrails: internal error: ...`` — a bug in guardrails, or an
input it does not yet name; ``--debug`` (before the command) prints the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from guardrails.errors import GuardrailsError
from guardrails.verdict.schema import EXIT_BAD_INPUT, EXIT_STATUS

__all__ = ["COMMANDS", "EXIT_BAD_INPUT", "EXIT_INTERNAL", "EXIT_STATUS", "main"]


EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE: distinct from every decision and from bad input

Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, tuple[str, Command]] = {}


def command(
    name: str, help_text: str
) -> Callable[
    [Callable[[argparse.ArgumentParser], None]], Callable[[argparse.ArgumentParser], None]
]:
    """Decorator for an ``add_arguments`` function; its ``run`` is ``run_<name>``."""

    def wrap(
        add: Callable[[argparse.ArgumentParser], None],
    ) -> Callable[[argparse.ArgumentParser], None]:
        COMMANDS[name] = (help_text, (add, globals()[f"run_{name.replace('-', '_')}"]))
        return add

    return wrap


# ------------------------------------------------------------------------------ shared


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=Path("pyproject.toml"),
        help="pyproject.toml with [tool.guardrails] (default ./pyproject.toml; absent: the "
        "built-in default policy)",
    )


def _add_relevance_level(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-l",
        "--relevance-level",
        type=int,
        default=1,
        help="minimum grade counted relevant by binary measures (trec_eval -l)",
    )


_LOCAL_RAY = "local"  # the value of a bare --ray


def _add_scaleout(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group(
        "scale-out",
        f"where {what} runs; default: [tool.guardrails.stack.scaleout] of --config, else "
        "in-process",
    )
    g.add_argument(
        "--backend",
        choices=["in-process", "ray"],
        default=None,
        help="in-process, or Ray Data at the configured address (none: a local Ray)",
    )
    g.add_argument(
        "--ray",
        nargs="?",
        const=_LOCAL_RAY,
        default=None,
        metavar="ADDRESS",
        help="run on Ray: at ADDRESS ('auto' for the cluster this machine is in, "
        "'ray://head:10001' for Ray Client, which needs ray[client]) or, with no ADDRESS, a local "
        "Ray on this machine",
    )


def _scaleout(args: argparse.Namespace) -> Any:
    """The :class:`~guardrails.stack.ScaleoutConfig` of the configuration, overridden by
    ``--backend`` / ``--ray``."""
    from guardrails.errors import PolicyError
    from guardrails.stack import load_stack

    config = load_stack(args.config).scaleout
    if args.ray is not None:
        if args.backend == "in-process":
            raise PolicyError(f"--ray {args.ray} contradicts --backend in-process; give one")
        address = None if args.ray == _LOCAL_RAY else args.ray
        return replace(config, backend="ray", address=address)
    if args.backend is not None:
        return replace(config, backend=args.backend)
    return config


# --------------------------------------------------------------------------------- eval


def run_eval(args: argparse.Namespace) -> int:
    from guardrails.golden import load_trec_qrels, load_trec_run
    from guardrails.metrics import parse_metric
    from guardrails.metrics.ranking import evaluate_ranking

    qrels = load_trec_qrels(args.qrels)
    run = load_trec_run(args.run)
    judged = [q for q, d in qrels.items() if any(r >= args.relevance_level for r in d.values())]
    qids = sorted(judged if args.complete else [q for q in judged if q in run])
    _require_overlap(args, qrels, run, judged, qids)
    asked = list(dict.fromkeys(args.metric or ["ndcg@10", "mrr", "recall@100", "map"]))
    canonical = {name: parse_metric(name).name for name in asked}
    by_canonical = evaluate_ranking(
        qrels, run, sorted(set(canonical.values())), qids=qids, relevance_level=args.relevance_level
    )
    scores = {name: by_canonical[canonical[name]] for name in asked}  # keyed as asked
    means = {m: float(v.mean()) if v.size else 0.0 for m, v in scores.items()}
    if args.json:
        out: dict[str, object] = {"mean": means, "num_queries": len(qids)}
        if args.per_query:
            out["per_query"] = {
                m: dict(zip(qids, map(float, v), strict=True)) for m, v in scores.items()
            }
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    if args.per_query:
        for m, values in scores.items():
            for qid, v in zip(qids, values, strict=True):
                print(f"{m}\t{qid}\t{v:.6f}")
    for m, value in means.items():
        print(f"{m}\tall\t{value:.6f}")
    print(f"num_q\tall\t{len(qids)}")
    return 0


def _require_overlap(
    args: argparse.Namespace,
    qrels: Mapping[str, Any],
    run: Mapping[str, Any],
    judged: Sequence[str],
    qids: Sequence[str],
) -> None:
    """Scores of nothing are not zeros: empty or disjoint inputs are bad input."""
    from guardrails.errors import GoldenDataError

    if not qrels:
        raise GoldenDataError(args.qrels, None, "no judgements: the qrels file is empty")
    if not judged:
        raise GoldenDataError(
            args.qrels,
            None,
            f"no query has a document with relevance >= {args.relevance_level} (-l); "
            "nothing can be scored",
        )
    if not run:
        raise GoldenDataError(args.run, None, "no results: the run file is empty")
    if not qids:
        raise GoldenDataError(
            args.run,
            None,
            f"no query in common with {args.qrels} (run has {len(run)} queries, e.g. "
            f"{sorted(run)[0]!r}; qrels judge {len(judged)}, e.g. {sorted(judged)[0]!r}): "
            "check that both files use the same query ids",
        )


@command("eval", "score a TREC run against TREC qrels (trec_eval style)")
def add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("qrels", type=Path, help="TREC qrels (qid iter docid rel) or BEIR tsv")
    p.add_argument("run", type=Path, help="TREC run (qid Q0 docid rank score tag)")
    p.add_argument(
        "-m",
        "--metric",
        action="append",
        help="metric, e.g. ndcg@10 or trec_eval's ndcg_cut_10, P_5, recip_rank (repeatable); "
        "output is keyed by the names given",
    )
    p.add_argument("--per-query", action="store_true", help="also print per-query scores")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "-c",
        "--complete",
        action="store_true",
        help="score judged queries missing from the run as 0 (trec_eval -c)",
    )
    _add_relevance_level(p)


# ------------------------------------------------------------------------------ compare

# exit status by decision (compare, check, redecide --exit-code): EXIT_STATUS, as for pytest


def _compare_gates(args: argparse.Namespace, policy: Any) -> list[Any]:
    """One paired gate per metric: candidate run vs baseline run on the judged queries (a query
    missing from a run scores 0 there, as with trec_eval -c)."""
    from guardrails.artifacts import fingerprint_file
    from guardrails.gates import evaluate_gate
    from guardrails.golden import load_trec_qrels, load_trec_run
    from guardrails.metrics import parse_metric
    from guardrails.metrics.ranking import evaluate_ranking, per_query_ids

    qrels = load_trec_qrels(args.qrels)
    paths = {"baseline": args.baseline, "candidate": args.candidate}
    qids = per_query_ids(qrels, relevance_level=args.relevance_level)
    asked = list(dict.fromkeys(args.metric or ["ndcg@10", "recall@100"]))
    canonical = {name: parse_metric(name).name for name in asked}
    scores = {
        side: evaluate_ranking(
            qrels,
            load_trec_run(path),
            sorted(set(canonical.values())),
            qids=qids,
            relevance_level=args.relevance_level,
        )
        for side, path in paths.items()
    }
    golden = {str(args.qrels): fingerprint_file(args.qrels)}
    artifacts = [
        {"component": "run", "role": side, "fingerprint": fingerprint_file(p), "path": str(p)}
        for side, p in paths.items()
    ]
    overrides = {"max_drop": args.max_drop, "min_gain": args.min_gain}
    gates = []
    for name in asked:
        gate = evaluate_gate(
            args.kind,
            canonical[name],
            candidate=scores["candidate"][canonical[name]],
            baseline=scores["baseline"][canonical[name]],
            policy=policy,
            name=f"compare:{name}",
            ids=qids,
            overrides=overrides,
        )
        gates.append(replace(gate, golden=golden, extra={**gate.extra, "artifacts": artifacts}))
    return gates


def run_compare(args: argparse.Namespace) -> int:
    import time

    from guardrails.policy import load_policy
    from guardrails.report.markdown import summary_lines
    from guardrails.verdict import decide, write_verdict
    from guardrails.verdict.provenance import collect_provenance

    started = time.time()
    policy = load_policy(args.config, args.policy)
    gates = _compare_gates(args, policy)
    provenance = collect_provenance(Path.cwd(), gates, (), started, policy.seed)
    verdict = decide(gates, replace(policy, required=()), provenance=provenance)
    if args.verdict:
        write_verdict(verdict, args.verdict)
    if args.report:
        from guardrails.artifacts import atomic_write_text
        from guardrails.report.html import render_html

        atomic_write_text(args.report, render_html(verdict))
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(summary_lines(verdict)))
    return EXIT_STATUS[verdict.decision.value]


@command(
    "compare",
    "paired gates of a candidate run against a baseline run on the same qrels: a verdict, "
    "exit 0 promote, 10 hold, 11 rollback, 2 bad input",
)
def add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("qrels", type=Path, help="TREC qrels (qid iter docid rel) or BEIR tsv")
    p.add_argument("baseline", type=Path, help="the production run (TREC run format)")
    p.add_argument("candidate", type=Path, help="the candidate run (TREC run format)")
    p.add_argument(
        "-m",
        "--metric",
        action="append",
        help="ranking metric, e.g. ndcg@10, mrr@10 or trec_eval's ndcg_cut_10 (repeatable; "
        "default ndcg@10 and recall@100)",
    )
    p.add_argument("--kind", choices=["noninferior", "superior"], default="noninferior")
    p.add_argument("--max-drop", type=float, default=None, help="non-inferiority margin")
    p.add_argument("--min-gain", type=float, default=None, help="superiority margin")
    p.add_argument("--policy", default=None, help="policy name (default: the configured one)")
    _add_config(p)
    p.add_argument("--verdict", type=Path, default=None, help="write the verdict JSON here")
    p.add_argument("--report", type=Path, default=None, help="write the HTML report here")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    _add_relevance_level(p)


# --------------------------------------------------------------------------------- init


def run_init(args: argparse.Namespace) -> int:
    from guardrails.scaffold import init_project

    for path in init_project(args.folder):
        print(f"wrote {path}")
    print(f"next: cd {args.folder} && pytest   (writes out/verdict.json and out/verdict.html)")
    return 0


@command("init", "write a starter project (policy, tiny golden set, two runs, a suite)")
def add_init(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", nargs="?", type=Path, default=Path("."), help="default: here")


# ------------------------------------------------------------------------------- report


def run_report(args: argparse.Namespace) -> int:
    from guardrails.artifacts import atomic_write_text
    from guardrails.verdict import load_verdict

    verdict = load_verdict(args.verdict)
    if args.format == "markdown":
        from guardrails.report.markdown import render_markdown

        text = render_markdown(verdict)
    else:
        from guardrails.report.html import render_html

        text = render_html(verdict)
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


@command("report", "render a verdict as Markdown (PR comment) or a self-contained HTML page")
def add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("verdict", type=Path)
    p.add_argument("--format", choices=["markdown", "html"], default="markdown")
    p.add_argument("-o", "--output", type=Path, default=None, help="write here (atomically)")


# ----------------------------------------------------------------------------- redecide


def run_redecide(args: argparse.Namespace) -> int:
    from guardrails.policy import load_policy
    from guardrails.report.markdown import summary_lines
    from guardrails.verdict import load_verdict, redecide, write_verdict

    verdict = redecide(load_verdict(args.verdict), load_policy(args.config, args.policy))
    if args.output:
        write_verdict(verdict, args.output)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(summary_lines(verdict)))
    return EXIT_STATUS[verdict.decision.value] if args.exit_code else 0


def run_check(args: argparse.Namespace) -> int:
    from guardrails.report.markdown import summary_lines
    from guardrails.verdict.integrity import verify_verdict

    try:
        data = json.loads(Path(args.verdict).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise GuardrailsError(f"{args.verdict}: verdict file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GuardrailsError(f"{args.verdict}: not a JSON verdict ({exc})") from None
    verdict = verify_verdict(data, str(args.verdict))
    if args.json:
        print(json.dumps({"decision": verdict.decision.value, "reason": verdict.reason}))
    else:
        print("\n".join(summary_lines(verdict)))
        print(f"verified: the decision follows from the verdict's own evidence ({args.verdict})")
    return EXIT_STATUS[verdict.decision.value]


@command(
    "check",
    "verify a verdict (parses, signature when $GUARDRAILS_VERDICT_KEY is set, decision "
    "re-derived from its evidence) and exit with its decision: 0 promote, 10 hold, "
    "11 rollback, 2 bad or forged verdict",
)
def add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("verdict", type=Path)
    p.add_argument("--json", action="store_true", help="print the decision and reason as JSON")


@command("redecide", "re-decide a verdict under another policy from its per-sample scores")
def add_redecide(p: argparse.ArgumentParser) -> None:
    p.add_argument("verdict", type=Path)
    p.add_argument("--policy", required=True, help="policy name in [tool.guardrails.policies]")
    _add_config(p)
    p.add_argument("-o", "--output", type=Path, default=None, help="write the new verdict")
    p.add_argument("--json", action="store_true")
    p.add_argument("--exit-code", action="store_true", help="exit 0 promote, 10 hold, 11 rollback")


# ------------------------------------------------------------------------------ reembed


def _reembed_corpus(paths: Sequence[Path]) -> dict[str, str]:
    """``{doc_id: full_text}`` of BEIR corpus files; an id in two files is refused."""
    from guardrails.errors import GoldenDataError
    from guardrails.golden import load_corpus

    texts: dict[str, str] = {}
    for path in paths:
        for doc_id, doc in load_corpus(path).items():
            if doc_id in texts:
                raise GoldenDataError(path, None, f"doc id {doc_id!r} is in an earlier --corpus")
            texts[doc_id] = doc.full_text
    return texts


def run_reembed(args: argparse.Namespace) -> int:
    from guardrails.components.embedder import Embedder, EmbeddingCache, minilm_path
    from guardrails.components.index import VectorIndex
    from guardrails.components.reembed import apply_reembed, most_retrieved, plan_reembed

    if args.refresh_hot and args.hot_from_logs is None:
        print("guardrails: --refresh-hot needs --hot-from-logs", file=sys.stderr)
        return 2
    index = VectorIndex.load(args.index)
    corpus = _reembed_corpus(args.corpus)
    model_path = args.model or minilm_path()
    embedder = Embedder.load(model_path, args.adapter)
    index.check_embedder(embedder.fingerprint)  # refuse before planning, dry run included
    hot: list[str] = []
    if args.hot_from_logs is not None:
        from guardrails.monitoring.logs import read_logs

        hot = most_retrieved(read_logs(args.hot_from_logs).records, args.refresh_hot)
    plan = plan_reembed(index, corpus, hot_ids=hot, refresh_hot=args.refresh_hot)
    report = None
    scaleout = _scaleout(args)
    if not args.dry_run:
        cache = EmbeddingCache(args.cache) if args.cache is not None else None
        encode = None
        if scaleout.on_ray and plan.to_embed:
            from functools import partial

            from guardrails.monitoring.scaleout import encoder

            # each actor loads the same model + adapter (the paths must exist on the workers)
            encode = encoder(scaleout, partial(Embedder.load, model_path, args.adapter))
        report = apply_reembed(
            index, plan, embedder, corpus, cache=cache, progress=not args.json, encode=encode
        )
        if report.index_fingerprint != report.previous_fingerprint:
            report.index.save(args.index)
    if args.json:
        out = {"index": str(args.index), "dry_run": args.dry_run, "plan": plan.to_dict()}
        out["report"] = report.to_dict() if report is not None else None
        out["backend"] = scaleout.backend
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    index = report.index if report is not None else index
    print(f"index {args.index}: {index!r}, embedder {_short_fp(index.embedder_fingerprint)}")
    if scaleout.on_ray and report is not None:
        print(f"backend: ray ({scaleout.address or 'local'})")
    print("\n".join(plan.summary()))
    print(report.summary() if report is not None else "dry run: the index was not changed")
    return 0


@command("reembed", "re-embed only new / changed / deleted documents of an index's corpus")
def add_reembed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=Path, required=True, help="index folder (manifest.json)")
    p.add_argument(
        "--corpus", type=Path, action="append", required=True, help="BEIR corpus.jsonl (repeatable)"
    )
    p.add_argument("--model", type=Path, default=None, help="embedder folder (default: MiniLM)")
    p.add_argument("--adapter", type=Path, default=None, help="LoRA adapter folder")
    p.add_argument("--hot-from-logs", type=Path, default=None, help="production log (JSONL)")
    p.add_argument(
        "--refresh-hot", type=int, default=0, help="also refresh the N most-retrieved documents"
    )
    p.add_argument("--cache", type=Path, default=None, help="embedding cache folder")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--json", action="store_true")
    _add_config(p)
    _add_scaleout(p, "the embedding of new / changed documents")


# -------------------------------------------------------------------------------- drift


# exit status of `guardrails drift`; 2 stays the usage / input error of every command
DRIFT_EXIT_STATUS = {"no alarm": 0, "alarm": 1, "incomplete": 3}
_DRIFT_EPILOG = """\
An alarm needs a statistic's Holm-adjusted p-value below alpha (over every statistic of the
report and, for two log windows, every tested retrain trigger: CTR, complaint, hallucination
and error rates, complaint topics) and its effect-size floor, so one call's family-wise
false-alarm rate is at most alpha. Permutation p-values are (1 + b) / (1 + B).

exit status:
  0  no alarm, every statistic computed
  1  alarm (a drift statistic or a retrain trigger)
  2  usage or input error
  3  no alarm but incomplete: a statistic was skipped (e.g. the current window has no
     query_embedding), the reason is printed; absence of evidence is not a pass
"""


def _drift_decision(reference: object, current: object, report: object, args) -> object:
    """Trigger decision when both sides are logs (signals need records), else None."""
    from guardrails.monitoring.triggers import decide_triggers, load_trigger_policy, window_pair

    ref_batch, cur_batch = reference.batch, current.batch  # type: ignore[attr-defined]
    if ref_batch is None or cur_batch is None or not ref_batch.records or not cur_batch.records:
        return None
    ref_signals, cur_signals = window_pair(ref_batch.records, cur_batch.records)
    return decide_triggers(
        ref_signals, cur_signals, report, policy=load_trigger_policy(args.config)
    )


def run_drift(args: argparse.Namespace) -> int:
    from guardrails.monitoring.drift import (
        DriftThresholds,
        compare_windows,
        load_window,
        profile_reference,
    )
    from guardrails.policy import load_policy

    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.permutations is not None:
        overrides["n_permutations"] = args.permutations
    if args.policy is not None:
        thresholds = DriftThresholds.from_policy(load_policy(args.config, args.policy), **overrides)
    else:
        thresholds = DriftThresholds(**overrides)
    scaleout = _scaleout(args)
    summarize = None
    if scaleout.on_ray:
        from guardrails.monitoring.scaleout import summarizer

        summarize = summarizer(scaleout)
    reference, current = load_window(args.reference), load_window(args.current)
    report = compare_windows(
        profile_reference(reference, thresholds),
        current,
        projections=args.projections,
        summarize=summarize,
    )
    decision = _drift_decision(reference, current, report, args)
    if decision is not None and decision.drift is not None:  # type: ignore[attr-defined]
        report = decision.drift  # type: ignore[attr-defined]  # adjusted over the joint family
    alarm = report.alarm or bool(decision is not None and decision.alarm)  # type: ignore[attr-defined]
    state = "alarm" if alarm else ("no alarm" if report.complete else "incomplete")
    if args.json:
        out = report.to_dict()
        out["triggers"] = decision.to_dict() if decision is not None else None  # type: ignore[attr-defined]
        out["status"] = state
        out["backend"] = scaleout.backend
        print(json.dumps(out, indent=2, sort_keys=True))
        return DRIFT_EXIT_STATUS[state]
    for error in report.log_errors:
        print(f"malformed: {error}")
    if scaleout.on_ray:
        print(f"backend: ray ({scaleout.address or 'local'})")
    print("\n".join(report.summary_lines()))
    if decision is not None:
        print("\n".join(decision.summary_lines()))  # type: ignore[attr-defined]
    skipped = ", ".join(s.name for s in report.skipped)
    print({"alarm": "ALARM", "no alarm": "no alarm"}.get(state, f"INCOMPLETE: skipped {skipped}"))
    return DRIFT_EXIT_STATUS[state]


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be an integer >= {low}")
        return value

    return parse


@command("drift", "drift of a current window vs a reference (logs or .npy) and retrain triggers")
def add_drift(p: argparse.ArgumentParser) -> None:
    p.epilog = _DRIFT_EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--reference", type=Path, required=True, help="log (JSONL/Parquet) or .npy")
    p.add_argument("--current", type=Path, required=True, help="log (JSONL/Parquet) or .npy")
    p.add_argument("--policy", default=None, help="policy whose alpha / psi max to use")
    _add_config(p)
    p.add_argument(
        "--seed", type=int, default=None, help="seed of splits, subsamples, permutations (0)"
    )
    p.add_argument(
        "--permutations",
        type=_at_least(2),
        default=None,
        help="permutations of the MMD and novel-share tests (default 999; p >= 1/(B+1))",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--projections", action="store_true", help="with --json: add 2-D projections (large)"
    )
    _add_scaleout(p, "the current window's histograms and sums")


# ----------------------------------------------------------------------------- registry


def _registry(args: argparse.Namespace, *, read_only: bool = False) -> object:
    """The registry at ``--registry``; it must exist (a mistyped path is an error, not a new
    empty registry); read-only commands open it read-only (a registry of an older schema is
    migrated first, once, as any writable open does); switches are mirrored to MLflow when
    the config has [tool.guardrails.stack.mlflow]."""
    from guardrails.registry import SCHEMA_VERSION, Registry
    from guardrails.stack import load_stack

    stack = load_stack(args.config)
    mirror = None if read_only else _mlflow_mirror(stack)
    # artifact paths are stored relative to the project (the config's folder), as the plugin does
    root = stack.root if Path(args.config).is_file() else None
    found = Registry.stored_schema_version(args.registry)
    if read_only and found is not None and found < SCHEMA_VERSION:
        Registry(args.registry, create=False, root=root).close()
        print(
            f"guardrails: migrated {args.registry} from schema_version={found} to {SCHEMA_VERSION}",
            file=sys.stderr,
        )
    return Registry(args.registry, read_only=read_only, create=False, mirror=mirror, root=root)


def _mlflow_mirror(stack: Any) -> Any:
    if stack.mlflow is None:
        return None
    from guardrails.integrations.mlflow import MlflowMirror

    return MlflowMirror(stack.mlflow)


def _switched(run: Callable[[], Any], line: Callable[[Any], str]) -> list[Any]:
    """Run a promote / rollback; on a MirrorError print the committed switches, then raise."""
    from guardrails.errors import MirrorError

    try:
        result = run()
    except MirrorError as exc:
        for s in exc.switches:  # type: ignore[attr-defined]
            print(line(s))
        raise
    switches = result if isinstance(result, list) else [result]
    for s in switches:
        print(line(s))
    return switches


def _short_fp(fp: str | None) -> str:
    return "—" if fp is None else fp.split(":", 1)[-1][:12]


def run_status(args: argparse.Namespace) -> int:
    reg = _registry(args, read_only=True)
    aliases = reg.aliases()  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps([a.__dict__ for a in aliases], indent=2, sort_keys=True))
        return 0
    if not aliases:
        print(f"registry {args.registry}: no aliases yet")
        return 0
    print(f"{'component':<12} {'alias':<11} {'fingerprint':<13} {'updated (UTC)':<26} verdict")
    for a in aliases:
        art = reg.get(a.fingerprint, a.component)  # type: ignore[attr-defined]
        print(
            f"{a.component:<12} {a.alias:<11} {_short_fp(a.fingerprint):<13} "
            f"{a.updated_at:<26} {(a.verdict_sha256 or '—')[:12]}  {art.path if art else ''}"
        )
    return 0


def _add_registry(p: argparse.ArgumentParser) -> None:
    from guardrails.registry import DEFAULT_REGISTRY_PATH

    p.add_argument(
        "--registry",
        type=Path,
        default=DEFAULT_REGISTRY_PATH,
        help=f"registry SQLite file (default: {DEFAULT_REGISTRY_PATH})",
    )
    _add_config(p)  # its [tool.guardrails.stack.mlflow] table, if any, mirrors switches


@command("status", "aliases per component: fingerprints, when, by which verdict")
def add_status(p: argparse.ArgumentParser) -> None:
    _add_registry(p)
    p.add_argument("--json", action="store_true")


def run_promote(args: argparse.Namespace) -> int:
    reg: Any = _registry(args)
    if args.promotable:
        run = lambda: reg.promote_components(args.verdict)  # noqa: E731
    else:
        run = lambda: reg.promote(args.verdict, component=args.component)  # noqa: E731
    _switched(
        run,
        lambda s: (
            f"promoted {s.component}: {_short_fp(s.from_fingerprint)} -> "
            f"{_short_fp(s.to_fingerprint)} (verdict {(s.verdict_sha256 or '')[:12]})"
        ),
    )
    return 0


@command("promote", "switch production to the candidates of a promote verdict (atomic)")
def add_promote(p: argparse.ArgumentParser) -> None:
    p.add_argument("verdict", type=Path)
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--component",
        default=None,
        help="only this component (also allowed when the verdict is not promote but this "
        "component's own decision is)",
    )
    which.add_argument(
        "--promotable",
        action="store_true",
        help="every component whose own decision is promote, in one transaction",
    )
    _add_registry(p)


def run_rollback(args: argparse.Namespace) -> int:
    reg: Any = _registry(args)
    _switched(
        lambda: reg.rollback(args.component, verdict=args.verdict),
        lambda s: (
            f"rolled back {s.component}: {_short_fp(s.from_fingerprint)} -> "
            f"{_short_fp(s.to_fingerprint)}"
        ),
    )
    return 0


@command("rollback", "restore a component's previous production (atomic)")
def add_rollback(p: argparse.ArgumentParser) -> None:
    p.add_argument("component")
    p.add_argument("--verdict", type=Path, default=None, help="a rollback verdict to record")
    _add_registry(p)


def run_mlflow_sync(args: argparse.Namespace) -> int:
    from guardrails.errors import PolicyError
    from guardrails.integrations.mlflow import sync_mlflow

    reg: Any = _registry(args)
    if reg.mirror is None:
        raise PolicyError(f"{args.config}: no [tool.guardrails.stack.mlflow] table to sync to")
    for line in sync_mlflow(reg, reg.mirror):
        print(line)
    return 0


@command("mlflow-sync", "point MLflow's aliases at the registry's production / previous again")
def add_mlflow_sync(p: argparse.ArgumentParser) -> None:
    _add_registry(p)


def run_history(args: argparse.Namespace) -> int:
    rows = _registry(args, read_only=True).history(args.component, args.limit)  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2, sort_keys=True))
        return 0
    for r in rows:
        print(
            f"{r.at}  {r.actor:<20} {r.action:<9} {r.component:<12} {r.alias or '':<10} "
            f"{_short_fp(r.from_fingerprint)} -> {_short_fp(r.to_fingerprint)}  "
            f"{r.verdict_decision or ''} {(r.verdict_sha256 or '')[:12]}"
        )
        if r.evidence:  # an automatic rollback: say why under its row
            print(f"    {r.note}")
    return 0


@command("history", "the append-only audit trail of registrations and switches")
def add_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("component", nargs="?", default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", action="store_true")
    _add_registry(p)


def _jsonable(record: Any) -> dict[str, Any]:
    """A frozen registry record as JSON (mapping proxies as dicts, tuples as lists)."""
    from dataclasses import fields

    values = {f.name: getattr(record, f.name) for f in fields(record)}
    return json.loads(json.dumps(values, default=dict, sort_keys=True))


def run_branches(args: argparse.Namespace) -> int:
    reg: Any = _registry(args, read_only=True)
    branches = [reg.branch(args.name)] if args.name else reg.branches()
    if args.name and branches[0] is None:
        from guardrails.errors import RegistryError

        known = [b.name for b in reg.branches()]
        raise RegistryError(f"branch={args.name!r} is not in {args.registry}; branches: {known}")
    rows = [
        _jsonable(b) | {"artifacts": [_jsonable(a) for a in reg.branch_artifacts(b.name)]}
        for b in branches
    ]
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    if not rows:
        print(f"registry {args.registry}: no branches yet")
    for b in rows:
        parent = f" (from {b['parent']})" if b["parent"] else ""
        print(f"{b['name']}{parent}  opened {b['opened_at']} by {b['actor']}")
        print(f"  components: {', '.join(b['components'])}  reason: {b['reason'] or '—'}")
        for comp, fp in sorted(b["base"].items()):
            print(f"  base {comp:<12} {_short_fp(fp)}")
        for a in b["artifacts"]:
            print(f"  artifact {a['component']:<12} {_short_fp(a['fingerprint'])}  {a['path']}")
    return 0


@command("branches", "lineage: the branches retrain triggers opened and their candidates")
def add_branches(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, help="only this branch")
    p.add_argument("--json", action="store_true")
    _add_registry(p)


def run_lineage(args: argparse.Namespace) -> int:
    chain = _registry(args, read_only=True).lineage(args.fingerprint, args.component)  # type: ignore[attr-defined]
    if not chain:
        from guardrails.errors import RegistryError

        raise RegistryError(f"fingerprint={args.fingerprint!r} is not in {args.registry}")
    if args.json:
        print(json.dumps([_jsonable(a) for a in chain], indent=2, sort_keys=True))
        return 0
    for depth, a in enumerate(chain):
        print(
            f"{'  ' * depth}{a.component:<12} {_short_fp(a.fingerprint)}  "
            f"branch={a.branch or '—'}  {a.kind}  {a.path}"
        )
    return 0


@command("lineage", "an artifact and its parents, with the branch each was built on")
def add_lineage(p: argparse.ArgumentParser) -> None:
    p.add_argument("fingerprint", help="the full fingerprint (sha256:...)")
    p.add_argument("--component", default=None, help="the registration of this component")
    p.add_argument("--json", action="store_true")
    _add_registry(p)


def run_watch(args: argparse.Namespace) -> int:
    """Exit 0: production did not regress; 11 (rollback): a regressed production was rolled
    back (or would be, without --apply); 10 (hold): production regressed but cannot be rolled
    back automatically (it did not come from a promote: the reason is printed)."""
    reg: Any = _registry(args, read_only=not args.apply)
    run = lambda: reg.watch(args.verdict, apply=args.apply)  # noqa: E731
    results = _watched(run) if args.apply else run()
    if args.json:
        print(json.dumps([_jsonable(r) for r in results], indent=2, sort_keys=True))
    for r in [] if args.json else results:
        if r.action == "rollback":
            done = "rolled back" if args.apply else "would roll back"
            print(
                f"{done} {r.component}: {_short_fp(r.from_fingerprint)} -> "
                f"{_short_fp(r.to_fingerprint)}  {r.reason}"
            )
            if not args.apply:
                print("  (dry run: nothing changed; --apply rolls back)")
        else:
            print(f"not rolled back {r.component}: {r.reason}")
    if not any(r.judged_production for r in results) and not args.json:
        print(f"{args.verdict}: production did not regress; it stays")
    if any(r.action == "rollback" for r in results):
        return EXIT_STATUS["rollback"]
    stuck = any(r.judged_production for r in results)
    return EXIT_STATUS["hold"] if stuck else EXIT_STATUS["promote"]


def _watched(run: Callable[[], Any]) -> list[Any]:
    """Apply a watch; on a MirrorError print the committed rollbacks, then raise."""
    from guardrails.errors import MirrorError

    try:
        return list(run())
    except MirrorError as exc:
        for s in exc.switches:  # type: ignore[attr-defined]
            print(
                f"rolled back {s.component}: {_short_fp(s.from_fingerprint)} -> "
                f"{_short_fp(s.to_fingerprint)}"
            )
        raise


_WATCH_EPILOG = """\
VERDICT is a verdict of a monitoring run of the current production (e.g. the suites re-run on
replayed logs after a promote, production as the candidate). A component is rolled back
(production <- previous, with the verdict's sha256 and the failing gates' delta and CI in the
history) when its decision is rollback or one of its gates failed, the verdict's candidate for
it is its current production, and that production came from a promote.

exit status:
  0   no production regressed (a regressed candidate that is not production is left alone)
  2   bad input (unreadable, unverified or forged verdict; no registry)
  10  a production regressed but cannot be rolled back automatically (reason printed)
  11  a regressed production was rolled back (--apply) or would be (dry run)
"""


@command("watch", "roll back production that a monitoring verdict shows regressed after a promote")
def add_watch(p: argparse.ArgumentParser) -> None:
    p.epilog = _WATCH_EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("verdict", type=Path, help="verdict of a monitoring run of production")
    p.add_argument("--apply", action="store_true", help="roll back (default: dry run)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    _add_registry(p)


# --------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardrails", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print the full traceback instead of the one-line message",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, (add, _run)) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _, (_, run) = COMMANDS[args.command]
    try:
        return run(args)
    except (GuardrailsError, OSError, UnicodeError) as exc:
        if args.debug:
            raise
        print(f"guardrails: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"guardrails: internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
