"""Fitness of a merged model: graftkit.data evaluators on validation splits, or a user function.

Searching on a test split leaks it into the recipe, so test splits are refused unless the
config says ``force_test: true``. Experts fine-tuned on different tasks keep different
heads (2 classes, 4 classes, ...) while their encoders are merged: a task with ``head:
path/to/expert`` scores the merged encoder under that expert's head, so one search can
score a multi-task merge the way the merged model is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from graftkit.errors import ConfigError


@dataclass
class TaskSpec:
    dataset: str
    split: str = "validation"
    examples: int | None = 200
    seed: int = 0
    batch_size: int = 64
    max_length: int = 128
    head: str | None = None  # a *ForSequenceClassification folder: its head scores the merged encoder


@dataclass
class ObjectiveSpec:
    """``kind: accuracy`` (mean validation accuracy over ``tasks``), ``kind: python``
    (``function: module:callable`` taking the model and returning a float, larger is better) or
    ``kind: target`` (minus the mean relative squared distance of the parameters to the model
    ``target``: a known optimum, for checking that a search converges)."""

    kind: str = "accuracy"
    tasks: list[TaskSpec] = field(default_factory=list)
    function: str | None = None
    target: str | None = None
    force_test: bool = False

    def __post_init__(self) -> None:
        self.tasks = [t if isinstance(t, TaskSpec) else TaskSpec(**t) for t in self.tasks]
        if self.kind not in ("accuracy", "python", "target"):
            raise ConfigError(f"objective kind {self.kind!r} is unknown", hint="use accuracy, python or target")
        if self.kind == "target" and not self.target:
            raise ConfigError("objective 'target' needs 'target: path/to/model'")
        if self.kind == "accuracy" and not self.tasks:
            raise ConfigError("objective 'accuracy' lists no tasks",
                              hint="add 'tasks: [{dataset: sst2, split: validation, examples: 200}]'")
        if self.kind == "python" and (not self.function or ":" not in self.function):
            raise ConfigError(f"objective 'python' needs 'function: module:name', got {self.function!r}")
        for t in self.tasks:
            if t.split not in ("train", "validation", "test"):
                raise ConfigError(f"objective task {t.dataset}: split {t.split!r} is unknown",
                                  hint="use validation (or train)")
            if t.split == "test" and not self.force_test:
                raise ConfigError(
                    f"objective task {t.dataset} evaluates on the test split: the search would fit the test set",
                    hint="use split: validation, or set 'force_test: true' if you really mean it")


def _resolve(function: str) -> Callable[[Any], float]:
    module, _, name = function.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"objective function {function!r} cannot be imported: {exc}") from None


class Objective:
    """Callable: model -> fitness (larger is better). Data is loaded once, on first use."""

    def __init__(self, spec: ObjectiveSpec, tokenizer_path: str | None = None) -> None:
        self.spec = spec
        self.tokenizer_path = tokenizer_path
        self._splits: list[Any] | None = None
        self._tokenizer: Any = None
        self._function = _resolve(spec.function) if spec.kind == "python" else None
        self._target: dict[str, Any] | None = None
        self._heads: dict[str, Any] = {}

    def _data(self) -> list[Any]:
        if self._splits is None:
            import random

            from graftkit.data import load_dataset

            splits = []
            for t in self.spec.tasks:
                split = getattr(load_dataset(t.dataset), t.split)
                if t.examples is not None and t.examples < len(split):
                    idx = sorted(random.Random(t.seed).sample(range(len(split)), t.examples))
                    split = split.subset(idx)
                splits.append(split)
            self._splits = splits
            if self.tokenizer_path is not None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path)
        return self._splits

    def _distance(self, model: Any) -> float:
        if self._target is None:
            from graftkit.io import Checkpoint

            ck = Checkpoint.open(self.spec.target)
            self._target = {n: ck[n].float().clone() for n in ck.names()}
        errors = []
        for name, value in model.state_dict().items():
            ref = self._target.get(name)
            if ref is not None and ref.is_floating_point() and ref.shape == value.shape:
                errors.append(float(((value.float() - ref) ** 2).sum() / ((ref ** 2).sum() + 1e-12)))
        if not errors:
            raise ConfigError(f"objective target {self.spec.target} shares no tensor with the merged model")
        return -sum(errors) / len(errors)

    def _with_head(self, model: Any, head: str) -> Any:
        """The classifier of folder ``head`` with its encoder replaced by ``model``'s weights.

        ``model`` is the merged encoder (e.g. ``BertModel``) or a full model of the same
        family; its base model's tensors must match the head model's encoder name for name.
        """
        if head not in self._heads:
            from transformers import AutoModelForSequenceClassification

            self._heads[head] = AutoModelForSequenceClassification.from_pretrained(head).eval()
        classifier = self._heads[head]
        encoder = getattr(classifier, "base_model", classifier)
        source = getattr(model, "base_model", model).state_dict()
        try:
            result = encoder.load_state_dict(source, strict=False)
        except RuntimeError as exc:  # shapes differ
            raise ConfigError(f"objective head {head}: the merged model does not fit its encoder: {exc}",
                              hint="the head's model must be fine-tuned from the merged models' architecture") from None
        if result.missing_keys or result.unexpected_keys:
            raise ConfigError(
                f"objective head {head}: the merged model's tensors do not match its encoder "
                f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})",
                hint="give a head model fine-tuned from the merged models' architecture")
        return classifier

    def __call__(self, model: Any) -> float:
        if self._function is not None:
            return float(self._function(model))
        if self.spec.kind == "target":
            return self._distance(model)
        from graftkit.data.evaluate import classification_accuracy

        scores = []
        for task, split in zip(self.spec.tasks, self._data()):
            scored = model if task.head is None else self._with_head(model, task.head)
            res = classification_accuracy(scored, split, self._tokenizer, batch_size=task.batch_size,
                                          max_length=task.max_length)
            scores.append(res.value)
        return float(sum(scores) / len(scores))


def check_heads(spec: ObjectiveSpec) -> None:
    """Every task ``head`` is a model folder with a config.json: a ValidationError before any worker starts."""
    from pathlib import Path

    from graftkit.errors import ValidationError

    problems = [f"objective task {t.dataset}: head {t.head} is not a model folder (no config.json)"
                for t in spec.tasks if t.head is not None and not (Path(t.head) / "config.json").is_file()]
    if problems:
        raise ValidationError(problems, source="evolve objective")
