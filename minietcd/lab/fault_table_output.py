"""The fault-tolerance table for people: a rich table on the terminal, the failures under it,
and (``--png``) the same table as an image, drawn with matplotlib.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from minietcd.errors import LabError
from minietcd.lab.fault_table_results import TableResult

MATPLOTLIB_PIN = "matplotlib==3.11.2"


def _mark(ok: bool) -> str:
    return "[green]✓[/]" if ok else "[red]✗[/]"


def table_rows(result: TableResult) -> list[list[str]]:
    """Plain-text rows (for the PNG): size, majority, documented, observed per variant, verdict."""
    rows = []
    for s in result.sizes:
        observed = [str(s.observed(v)) if s.observed(v) is not None else "-" for v in result.options.variants]
        rows.append(
            [
                str(s.size),
                str(s.majority),
                str(s.documented_tolerance),
                *observed,
                "ok" if s.ok else "MISMATCH",
            ]
        )
    return rows


def header(result: TableResult) -> list[str]:
    observed = (f"observed\n{v}" for v in result.options.variants)
    return ["Size", "Majority", "Failures tolerated\n(etcd docs)", *observed, "result"]


def print_table(result: TableResult, console: Console) -> None:
    table = Table(title="Fault tolerance: etcd's documented table beside the measured one")
    for col in ("Size", "Majority", "Failures tolerated\n(etcd docs)"):
        table.add_column(col, justify="right")
    for v in result.options.variants:
        table.add_column(f"observed\n{v}", justify="right")
    for col in ("minority refuses,\nserializable ok", "even split:\nno leader", "converged", "time"):
        table.add_column(col, justify="center")
    for s in result.sizes:
        steps = [st for v in s.variants for st in v.steps]
        minority = [side for st in steps for side in st.sides if not side.majority]
        evens = [
            side
            for st in steps
            for side in st.sides
            if "either side" in side.outcome or "even split" in side.outcome
        ]
        observed = []
        for v in result.options.variants:
            o = s.observed(v)
            text = "-" if o is None else str(o)
            observed.append(text if o == s.documented_tolerance else f"[red]{text}[/]")
        table.add_row(
            str(s.size),
            str(s.majority),
            str(s.documented_tolerance),
            *observed,
            _mark(all(x.ok for x in minority)) if minority else "-",
            _mark(all(x.ok for x in evens)) if evens else "-",
            _mark(all(v.converged for v in s.variants)) if s.variants else "[red]✗[/]",
            f"{s.seconds:.0f}s",
        )
    console.print(table)
    for s in result.sizes:
        if s.error:
            console.print(f"[red]N={s.size}: {s.error}[/]")
        for vr in s.variants:
            if not vr.converged:
                console.print(f"[red]N={s.size} {vr.variant}: not converged: {vr.convergence}[/]")
            for st in vr.steps:
                if not st.ok:
                    sides = "; ".join(f"{','.join(x.members)}: {x.outcome}" for x in st.sides)
                    console.print(
                        f"[red]N={s.size} {vr.variant} k={st.k} (away {','.join(st.away) or '-'}): "
                        f"expected {'success' if st.expected else 'refusal'}, sides: {sides}[/]"
                    )
    verdict = "[green]all as documented[/]" if result.ok else "[red]MISMATCH[/]"
    where = " in containers (docker compose)" if result.options.backend == "compose" else ""
    console.print(
        f"{verdict} ({result.seconds:.0f}s for sizes {','.join(str(s.size) for s in result.sizes)}{where})"
    )


def require_png_support() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LabError(
            f"--png needs matplotlib, which is not installed (pip install '{MATPLOTLIB_PIN}')"
        ) from None


def write_png(result: TableResult, path: Path) -> None:
    """The table as an image (matplotlib, Agg backend)."""
    require_png_support()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = header(result)
    rows = table_rows(result)
    fig, ax = plt.subplots(figsize=(2 + 1.7 * len(cols), 1.2 + 0.4 * max(1, len(rows))))
    ax.axis("off")
    cells = ax.table(cellText=rows or [["-"] * len(cols)], colLabels=cols, loc="center", cellLoc="center")
    cells.auto_set_font_size(False)
    cells.set_fontsize(9)
    cells.scale(1, 1.6)
    for c in range(len(cols)):
        cells[0, c].set_height(cells[0, c].get_height() * 1.8)
    for (r, c), cell in cells.get_celld().items():
        if r == 0:
            cell.set_text_props(weight="bold")
        elif c == len(cols) - 1:
            cell.set_facecolor("#c8f0c8" if cell.get_text().get_text() == "ok" else "#f5b7b1")
    verdict = "all as documented" if result.ok else "MISMATCH"
    ax.set_title(f"minietcd fault tolerance, measured ({verdict}, {result.seconds:.0f}s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
