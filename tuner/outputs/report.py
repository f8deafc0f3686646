"""`tune report`: an offline HTML page and PNG images of a study, for people.

The HTML embeds plotly.js once (no CDN: it opens without network) and holds the optimization
history, parameter importances, parallel coordinates, the learning curves of the intermediate
eval metric, and the trials table. PNGs of the main plots come from Optuna's matplotlib backend.
A plot that needs more than the study has (importances with one trial) is replaced by a sentence
saying so, never by a crash.
"""

from __future__ import annotations

import html
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.outputs.summary import format_params
from tuner.study.store import StudyStore

log = logging.getLogger(__name__)


@dataclass
class Report:
    html: Path
    pngs: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # plot -> why it could not be drawn


@dataclass(frozen=True)
class _Plot:
    key: str
    title: str
    needs_complete: int  # COMPLETE trials required
    needs_params: int = 0  # distinct tuned parameters required
    needs_intermediate: bool = False


PLOTS = (
    _Plot("pareto", "Pareto front (several objectives)", 1),
    _Plot("history", "Optimization history", 1),
    _Plot("importances", "Parameter importances", 2, needs_params=2),
    _Plot("parallel", "Parallel coordinates", 2, needs_params=1),
    _Plot("curves", "Learning curves (intermediate eval metric vs samples seen)", 0, needs_intermediate=True),
)


def _why_not(plot: _Plot, trials: list[Any], objectives: int = 1) -> str | None:
    if plot.key == "pareto" and objectives > 3:
        return "a Pareto front is drawn for studies of 2 or 3 objectives"
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if len(complete) < plot.needs_complete:
        return f"needs at least {plot.needs_complete} COMPLETE trial(s); this study has {len(complete)}"
    if plot.needs_params and len({k for t in complete for k in t.params}) < plot.needs_params:
        return f"needs at least {plot.needs_params} tuned parameter(s)"
    if plot.needs_intermediate and not any(t.intermediate_values for t in trials):
        return "no trial reported intermediate values"
    return None


def _figure(kind: str, backend: Any, study: Any, names: list[str]) -> Any:
    """One plot. A multi-objective study's history, importances and parallel coordinates are of
    its first objective (Optuna draws one target at a time); the Pareto front shows them all."""
    target = (lambda t: t.values[0]) if len(names) > 1 else None
    metric = names[0]
    calls: dict[str, Callable[[], Any]] = {
        "pareto": lambda: backend.plot_pareto_front(study, target_names=names),
        "history": lambda: backend.plot_optimization_history(study, target=target, target_name=metric),
        "importances": lambda: backend.plot_param_importances(study, target=target, target_name=metric),
        "parallel": lambda: backend.plot_parallel_coordinate(study, target=target, target_name=metric),
        "curves": lambda: backend.plot_intermediate_values(study),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
        figure = calls[kind]()
    if kind == "curves":  # tuner reports intermediate values against samples seen, not steps
        if hasattr(figure, "update_xaxes"):
            figure.update_xaxes(title_text="samples seen")
        else:
            figure.set_xlabel("samples seen")
    return figure


def _trials_table(trials: list[Any], names: list[str]) -> str:
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        values = [f"{v:.5f}" for v in t.values] if t.values is not None else [""] * len(names)
        attrs = t.user_attrs
        cells = [
            str(t.number),
            t.state.name,
            str(attrs.get("exit_class", "")),
            *values,
            format_params(t.params),
            f"{attrs['wall_s']:.0f}" if "wall_s" in attrs else "",
            str(attrs.get("reason", ""))[:160],
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("#", "state", "exit", *names, "params", "wall s", "reason"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _own_trials(store: StudyStore, trials: list[Any]) -> Any:
    """The study as Optuna's plots should see it: its own trials only, without the copies a warm
    start added (another study's history, for the sampler). An in-memory copy: nothing is written."""
    import optuna

    if len(trials) == len(store.trials(warm=True)):
        return store.study
    study = optuna.create_study(directions=store.directions)
    study.add_trials(trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is experimental in Optuna
        study.set_metric_names(store.metric_names())
    return study


def write_report(store: StudyStore, out_dir: Path) -> Report:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization as plotly_backend
    import optuna.visualization.matplotlib as mpl_backend

    out_dir.mkdir(parents=True, exist_ok=True)
    trials = store.trials()
    study = _own_trials(store, trials)
    attrs = store.attrs()
    names = store.metric_names()
    report = Report(out_dir / "report.html")
    sections, plotly_js_included = [], False
    for plot in (p for p in PLOTS if p.key != "pareto" or len(names) > 1):
        reason = _why_not(plot, trials, len(names))
        if reason is None:
            try:
                figure = _figure(plot.key, plotly_backend, study, names)
                sections.append(
                    f"<h2>{plot.title}</h2>"
                    + figure.to_html(
                        full_html=False, include_plotlyjs=not plotly_js_included, config={"displaylogo": False}
                    )
                )
                plotly_js_included = True
                axes = _figure(plot.key, mpl_backend, study, names)
                png = out_dir / f"{plot.key}.png"
                axes.figure.set_size_inches(9, 5.5)
                axes.figure.tight_layout()
                axes.figure.savefig(png, dpi=110)
                plt.close(axes.figure)
                report.pngs.append(png)
                continue
            except (ValueError, RuntimeError, ZeroDivisionError) as e:  # Optuna refuses degenerate inputs
                reason = f"could not be drawn: {e}"
        report.skipped[plot.key] = reason
        sections.append(f"<h2>{plot.title}</h2><p class='skip'>Not shown: {html.escape(reason)}.</p>")
    front = store.pareto_front()
    summary = (
        "No COMPLETE trial yet."
        if not front
        else f"Best: trial #{front[0].number}, {html.escape(names[0])} = {front[0].values[0]:.6f} "
        f"({html.escape(format_params(front[0].params))})"
        if len(names) == 1
        else f"Pareto front ({html.escape(', '.join(names))}): "
        + "; ".join(f"#{t.number} " + ", ".join(f"{v:.6g}" for v in t.values) for t in front)
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tuner report: {html.escape(store.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:90%}}
td,th{{border:1px solid #ccc;padding:3px 6px}}.skip{{color:#a60}}</style></head><body>
<h1>Study {html.escape(store.name)}</h1><p>{summary}</p>
<p>{len(trials)} trials; sampler {html.escape(str(attrs.get("sampler", "-")))}, scheduler
{html.escape(str(attrs.get("scheduler", "-")))}, budget {html.escape(str(attrs.get("budget", "-")))}.</p>
{"".join(sections)}<h2>Trials</h2>{_trials_table(trials, names)}</body></html>"""
    report.html.write_text(page, encoding="utf-8")
    return report
