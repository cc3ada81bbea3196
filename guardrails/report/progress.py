"""Progress of long work (training, embedding, generation, scoring, index builds) as log lines.

Everything reports through the ``guardrails`` logger, never a bare progress bar: a bar drawn
inside a fixture is swallowed by pytest's output capture, a log record is not. The plugin
(:func:`install_terminal_handler`) shows the ``guardrails`` records live on pytest's terminal
the way ``log_cli`` does, even under capture, and stays quiet with ``-q``. Outside pytest the
records go wherever the application's logging sends them (``guardrails`` CLI: stderr).

A line looks like ``generator LoRA-SFT: step 40/45, 6.1 s/step, ETA 31 s``; a task logs at
its start, then at most once every ``every`` seconds, then once at the end with the total.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = [
    "LOGGER_NAME",
    "Progress",
    "TerminalHandler",
    "chunks",
    "install_terminal_handler",
    "timed",
    "track",
]

LOGGER_NAME = "guardrails"
PHASES_ENV = "GUARDRAILS_PHASES"
"""When set to a file path, every finished task appends one JSON line there (task, unit, units,
wall and CPU seconds of this process, its facts): what ``benchmarks/bench_main_job.py`` reads to
build the main job's phase table."""
log = logging.getLogger(LOGGER_NAME)
T = TypeVar("T")


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")


def _fact(key: str, value: Any) -> str:
    return f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Counts the units of one task and logs its rate and ETA (see the module docstring)."""

    def __init__(
        self,
        task: str,
        total: int | None,
        *,
        unit: str = "step",
        every: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.task, self.total, self.unit, self.every = task, total, unit, every
        self.log = logger or log
        self.done = 0
        self.cpu_started = time.process_time()
        self.started = self._last = time.perf_counter()
        of = f" of {total} {_plural(unit)}" if total else ""
        self.log.info("%s: started%s", task, of)

    def update(self, n: int = 1, **facts: Any) -> None:
        """Count ``n`` more units; log when ``every`` seconds passed since the last line."""
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every and (self.total is None or self.done < self.total):
            self._last = now
            self.log.info("%s", self.line(now, facts))

    def line(self, now: float | None = None, facts: dict[str, Any] | None = None) -> str:
        now = time.perf_counter() if now is None else now
        elapsed = now - self.started
        rate = elapsed / self.done if self.done else float("nan")
        unit, units = self.unit, _plural(self.unit)
        count = f"{unit} {self.done}/{self.total}" if self.total else f"{self.done} {units}"
        parts = [f"{self.task}: {count}"]
        if self.done:
            parts.append(f"{rate:.2g} s/{unit}" if rate >= 0.1 else f"{1 / rate:.3g} {units}/s")
        if self.total and self.done:
            parts.append(f"ETA {_duration(rate * (self.total - self.done))}")
        parts += [
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (facts or {}).items()
        ]
        return ", ".join(parts)

    def finish(self, **facts: Any) -> None:
        elapsed = time.perf_counter() - self.started
        cpu = time.process_time() - self.cpu_started
        extra = "".join(", " + _fact(k, v) for k, v in facts.items())
        self.log.info(
            "%s: done, %d %s in %s (CPU %s)%s",
            self.task,
            self.done,
            _plural(self.unit),
            _duration(elapsed),
            _duration(cpu),
            extra,
        )
        _record_phase(self.task, self.unit, self.done, elapsed, cpu, facts)


def _record_phase(
    task: str, unit: str, units: int, wall: float, cpu: float, facts: dict[str, Any]
) -> None:
    """Append the finished task to the ``GUARDRAILS_PHASES`` file, when one is set (one
    ``write`` of one line in append mode: lines of concurrent processes do not interleave)."""
    path = os.environ.get(PHASES_ENV)
    if not path:
        return
    row = {
        "task": task,
        "unit": unit,
        "units": units,
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "pid": os.getpid(),
        "facts": {k: v for k, v in facts.items() if isinstance(v, int | float | str)},
    }
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row, sort_keys=True) + "\n")
    except OSError as exc:  # accounting must never fail the work it accounts for
        log.warning("%s=%s: cannot record phase %r (%s)", PHASES_ENV, path, task, exc)


@contextmanager
def timed(task: str, *, quiet: bool = False, **facts: Any) -> Iterator[dict[str, Any]]:
    """Time one piece of work (a log simulation, an index build, a gate's resampling) as a
    phase: logged when done unless ``quiet``, and recorded like a finished :class:`Progress`
    task. Yields ``facts``, which the caller may add to."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield facts
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not quiet:
        extra = "".join(", " + _fact(k, v) for k, v in facts.items())
        log.info("%s: done in %s (CPU %s)%s", task, _duration(wall), _duration(cpu), extra)
    _record_phase(task, "call", 1, wall, cpu, facts)


def track(
    items: Iterable[T],
    task: str,
    *,
    total: int | None = None,
    unit: str = "batch",
    every: float = 10.0,
    facts: dict[str, Any] | None = None,
) -> Iterator[T]:
    """Yield ``items``, logging progress as :class:`Progress` does; ``facts`` (a dict the
    caller may fill while iterating, e.g. tokens processed) is logged with the total."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    progress = Progress(task, total, unit=unit, every=every)
    for item in items:
        yield item
        progress.update()
    progress.finish(**(facts or {}))


def chunks(
    items: Sequence[T],
    size: int,
    task: str,
    *,
    progress: bool = True,
    unit: str = "batch",
    facts: dict[str, Any] | None = None,
) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``, logging progress (as :func:`track`) when asked and there
    is more than one slice: the one way the components batch long work visibly."""
    if size <= 0:
        raise ValueError(f"size={size} must be > 0")
    parts = [items[i : i + size] for i in range(0, len(items), size)]
    if progress and len(parts) > 1:
        yield from track(parts, task, unit=unit, facts=facts)
    else:
        yield from parts


def trainer_callback(task: str, every: float = 10.0) -> Any:
    """A transformers ``TrainerCallback`` that logs ``task: step i/n, s/step, ETA, loss``."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        progress: Progress | None = None
        loss: float | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.progress = Progress(task, int(state.max_steps) or None, every=every)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.progress is not None:
                facts = {} if self.loss is None else {"loss": self.loss}
                self.progress.update(int(state.global_step) - self.progress.done, **facts)

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.progress is not None:
                facts: dict[str, Any] = {} if self.loss is None else {"loss": self.loss}
                if getattr(state, "total_flos", 0):  # the Trainer's 6·params·tokens estimate
                    facts["flos"] = float(state.total_flos)
                self.progress.finish(**facts)

    return _Callback()


class TerminalHandler(logging.Handler):
    """Writes records on pytest's terminal with capture suspended (as ``log_cli`` does)."""

    def __init__(self, config: Any) -> None:
        super().__init__(logging.INFO)
        self.config = config
        self.setFormatter(logging.Formatter("[guardrails] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        try:
            message = self.format(record)
            if capman is None:
                reporter.write_line(message)
                return
            with capman.global_and_fixture_disabled():
                reporter.ensure_newline()
                reporter.write_line(message)
        except Exception:  # a logging failure must never fail the run
            self.handleError(record)


def install_terminal_handler(config: Any) -> TerminalHandler | None:
    """Show ``guardrails`` INFO records live in a pytest run (not with ``-q``, not on xdist
    workers, whose terminal nobody sees); returns the handler, to remove at unconfigure."""
    if config.getoption("verbose", 0) < 0 or hasattr(config, "workerinput"):
        return None
    handler = TerminalHandler(config)
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler
