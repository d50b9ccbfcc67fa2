r"""The demo report: Markdown + self-contained HTML (PNG figures embedded), and its score table.

Every demo section appends text, tables and figures to one :class:`Report` and returns
:class:`Score` rows; the report ends with one table scoring every model on the three
desiderata of a generative model — probability evaluation, sampling cost, training cost.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Report", "Score"]


@dataclass(frozen=True)
class Score:
    """One model's line in the closing table (log-likelihoods in nats per example)."""

    model: str
    data: str
    evaluation: str  # how log p(x) is obtained: "exact", "ELBO bound", "AIS estimate", ...
    test_log_likelihood: float
    sample_ms_per_1000: float
    train_seconds: float


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


@dataclass
class Report:
    """Collects sections, then writes ``report.md``, ``report.html`` and ``figures/*.png``."""

    out_dir: Path
    _md: list[str] = field(default_factory=list)
    _html: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        (self.out_dir / "figures").mkdir(parents=True, exist_ok=True)

    def section(self, title: str) -> None:
        self._md.append(f"\n## {title}\n")
        self._html.append(f"<h2>{html.escape(title)}</h2>")

    def text(self, markdown: str) -> None:
        self._md.append(markdown + "\n")
        self._html.append(f"<p>{html.escape(markdown)}</p>")

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        if any(len(row) != len(header) for row in rows):
            raise ValueError(f"rows must have {len(header)} cells each, as the header")
        cells = [[_fmt(v) for v in row] for row in rows]

        def md_row(row: list[str]) -> str:  # a "|" inside a cell would split it
            return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

        md = [md_row(header), "|" + "---|" * len(header)] + [md_row(row) for row in cells]
        self._md.append("\n".join(md) + "\n")
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells
        )
        self._html.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, fig: Any, name: str, caption: str) -> Path:
        """Save a matplotlib figure as ``figures/{name}.png``, link it and embed it."""
        if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", name):
            raise ValueError(f"name must be a plain file name (letters, digits, _.-), got {name!r}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        data = buf.getvalue()
        path = self.out_dir / "figures" / f"{name}.png"
        path.write_bytes(data)
        self._md.append(f"![{caption}](figures/{name}.png)\n\n*{caption}*\n")
        b64 = base64.b64encode(data).decode()
        self._html.append(
            f'<figure><img src="data:image/png;base64,{b64}"/>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return path

    def scores(self, scores: list[Score]) -> None:
        """The closing table: every model on the three desiderata."""
        self.section("Scores: probability evaluation, sampling cost, training cost")
        self.table(
            [
                "model",
                "data",
                "log p(x) by",
                "test log-lik. (nats/example)",
                "sampling (ms / 1000)",
                "training (s)",
            ],
            [
                [
                    s.model,
                    s.data,
                    s.evaluation,
                    s.test_log_likelihood,
                    s.sample_ms_per_1000,
                    s.train_seconds,
                ]
                for s in scores
            ],
        )

    def write(self, title: str = "flowdist demo report") -> Path:
        """Write ``report.md`` and ``report.html``; returns the HTML path."""
        (self.out_dir / "report.md").write_text(f"# {title}\n" + "\n".join(self._md))
        style = "body{font-family:sans-serif;max-width:60em;margin:auto}td,th{padding:2px 8px}"
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            + "\n".join(self._html)
            + "</body></html>"
        )
        path = self.out_dir / "report.html"
        path.write_text(page)
        return path
