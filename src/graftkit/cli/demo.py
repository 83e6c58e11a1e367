"""`graft demo`: the main job on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Folder for experts, merges and the report."),
        steps: int = typer.Option(150, help="Fine-tuning steps per expert (more: better experts, slower)."),
        seed: int = typer.Option(0, help="Seed for fine-tuning and random sparsification."),
        limit: int = typer.Option(600, help="Test examples per task (0: all)."),
        method: list[str] = typer.Option(None, "--method", "-m", help="Merge method(s) to show; default: all demo methods."),
    ) -> None:
        """Fine-tune two experts from a real model, merge them several ways and compare.

        Materializes all-MiniLM-L6-v2 from the zoo, fine-tunes one expert on each of two
        synthetic tasks that graftkit generates (sentiment, topic), merges the two encoders
        with linear, task arithmetic, TIES, DARE-TIES and SLERP, and prints each encoder's
        test accuracy on both tasks with each task's own head. Writes report.json and
        report.png into OUT. Needs no dataset folder and no network after installation.

        Example: graft demo --out demo-output --steps 150
        """
        from graftkit.demo import render_table, run_demo
        from graftkit.progress import console

        report = run_demo(out, steps=steps, seed=seed, limit=limit or None, methods=method or None)
        console.print(render_table(report))
        console.print(f"report: {out / 'report.json'}  plot: {out / 'report.png'}")
